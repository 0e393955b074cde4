//! The editor against every order in which an answer (`ack`, `conflict`, `unconfirmed`, a setpoint update,
//! a lost connection) can reach a pending write.

use super::*;
use setpoint_control::Mode;

fn committed(desired: f64, version: u64) -> SetpointMsg {
    SetpointMsg {
        sensor: 1,
        desired,
        up_delta: 0.5,
        down_delta: 0.5,
        mode: Mode::Heat,
        policy: Policy::Hysteresis,
        version,
        t_ms: None,
        author: None,
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn draft_commit_ack_and_echo() {
    let c = committed(20.0, 4);
    let mut e = Editor::default();
    assert!(!e.is_dirty(Some(&c)));
    e.edit(Some(&c), SetpointField::Desired, 21.2);
    assert!(e.is_dirty(Some(&c)));
    assert_eq!(e.shown(Some(&c)).map(|s| s.desired), Some(21.2));
    let req = e
        .commit(1, Some(&c), &Limits::default(), "r1".into(), 0.0)
        .expect("sent");
    assert_eq!((req.desired, req.base_version), (21.2, Some(4)));
    assert!(e.status.text().contains("pending"));
    assert!(!e.on_ack("other"));
    assert!(e.on_ack("r1"));
    assert_eq!(e.status.text(), "saved");
    assert!(e.draft.is_some(), "kept until the new value is in force");
    e.on_setpoint(&committed(21.2, 5));
    assert_eq!(e.draft, None);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn invalid_draft_is_not_sent_and_says_why() {
    let c = committed(20.0, 1);
    let mut e = Editor::default();
    e.edit(Some(&c), SetpointField::UpDelta, 80.0);
    assert!(e
        .commit(1, Some(&c), &Limits::default(), "r".into(), 0.0)
        .is_none());
    assert!(e.status.text().contains("up_delta"), "{}", e.status.text());
    e.edit(Some(&c), SetpointField::Desired, f64::NAN);
    assert_eq!(
        e.draft.map(|d| d.desired),
        Some(20.0),
        "half-typed input is ignored"
    );
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn conflict_keeps_draft_and_retries_from_the_current_version() {
    let c = committed(20.0, 1);
    let mut e = Editor::default();
    e.edit(Some(&c), SetpointField::Desired, 23.0);
    e.commit(1, Some(&c), &Limits::default(), "r1".into(), 0.0);
    let current = committed(19.0, 2);
    let err = ErrorMsg {
        request_id: Some("r1".into()),
        code: ErrorCode::Conflict,
        message: "base_version 1 is not 2".into(),
        current: Some(current.clone()),
    };
    e.on_setpoint(&current);
    assert!(e.on_error(&err));
    assert_eq!(e.draft.map(|d| d.desired), Some(23.0));
    assert!(e.status.text().contains("19.0"), "{}", e.status.text());
    let retry = e
        .commit(1, Some(&current), &Limits::default(), "r2".into(), 1.0)
        .expect("retry");
    assert_eq!(retry.base_version, Some(2));
    assert_eq!(retry.desired, 23.0);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn errors_disconnects_and_timeouts_are_reported() {
    let c = committed(20.0, 1);
    let mut e = Editor::default();
    e.edit(Some(&c), SetpointField::DownDelta, 1.0);
    e.commit(1, Some(&c), &Limits::default(), "r1".into(), 0.0);
    let err = ErrorMsg {
        request_id: Some("r1".into()),
        code: ErrorCode::RateLimited,
        message: String::new(),
        current: None,
    };
    assert!(e.on_error(&err));
    assert!(e.status.text().contains("too many changes"));
    e.commit(1, Some(&c), &Limits::default(), "r2".into(), 0.0);
    e.on_disconnect();
    assert!(e.status.text().contains("connection lost"));
    e.commit(1, Some(&c), &Limits::default(), "r3".into(), 0.0);
    // A publish that took the bus its whole 10 s still has its read-back answered: the page waits.
    assert!(!e.check_timeout(15_000.0));
    assert!(!e.check_timeout(PENDING_TIMEOUT_MS - 1.0));
    assert!(e.check_timeout(PENDING_TIMEOUT_MS + 1.0));
    assert!(e.status.is_error());
}
