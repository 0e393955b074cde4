//! Group setpoints: the selection, "select all shown" under a filter, the one frame a group write sends and
//! each card's own outcome.

use super::*;
use crate::model::group::{GroupStatus, Outcomes};
use setpoint_wire::ws::SetpointWrite;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// Sensors 1..=n, each at version 1 (from `hello`), writable.
fn live(n: SensorId) -> Model {
    let mut m = Model::new("g".into());
    let ids: Vec<SensorId> = (1..=n).collect();
    m.connect(true, &ids, vec![], 0.0);
    m
}

fn selected(m: &Model) -> Vec<SensorId> {
    m.group.selected.iter().copied().collect()
}

/// The writes of the one `set_setpoints` frame in `sent`.
fn group_writes(sent: Vec<ClientMessage>) -> Vec<SetpointWrite> {
    match <[ClientMessage; 1]>::try_from(sent) {
        Ok([ClientMessage::SetSetpoints { writes }]) => writes,
        other => panic!("expected one set_setpoints frame, got {other:?}"),
    }
}

#[test]
fn selecting_cards_and_the_draft_starts_from_the_first() {
    let mut m = live(4);
    m.apply(ServerMessage::Setpoint(setpoint(3, 18.5, 2)), 0.0);
    let v = m.version();
    m.dispatch(Action::Select { sensor: 3, on: true });
    assert!(m.version() > v, "the page shows the selection");
    assert_eq!(m.group.draft.desired, 18.5, "starts from the first card selected");
    m.dispatch(Action::Select { sensor: 1, on: true });
    m.dispatch(Action::Select { sensor: 2, on: true });
    m.dispatch(Action::Select { sensor: 2, on: false });
    m.dispatch(Action::Select { sensor: 99, on: true });
    assert_eq!(
        selected(&m),
        vec![1, 3],
        "unticked and unknown sensors are not selected"
    );
    assert_eq!(m.group.draft.desired, 18.5, "later cards do not move the draft");
    m.dispatch(Action::ClearSelection);
    assert!(m.group.selected.is_empty());
    // Once the user has typed a value, selecting again keeps it.
    m.dispatch(Action::GroupEdit {
        field: SetpointField::Desired,
        value: 22.25,
    });
    m.dispatch(Action::Select { sensor: 1, on: true });
    assert_eq!(m.group.draft.desired, 22.25);
}

#[test]
fn select_all_shown_takes_the_page_the_bridge_answered_and_adds() {
    let mut m = live(30);
    m.apply(view(&[1, 10, 11, 12], &[], &[1, 10, 11, 12]), 0.0);
    m.dispatch(Action::SelectShown);
    assert_eq!(selected(&m), vec![1, 10, 11, 12]);
    m.apply(view(&[19, 21], &[], &[19, 21]), 0.0);
    m.dispatch(Action::SelectShown);
    assert_eq!(selected(&m), vec![1, 10, 11, 12, 19, 21], "adds to the selection");
    m.dispatch(Action::ClearSelection);
    m.apply(view(&[], &[], &[]), 0.0);
    m.dispatch(Action::SelectShown);
    assert!(m.group.selected.is_empty());
}

#[test]
fn a_group_write_is_one_frame_of_single_writes_each_on_its_own_version() {
    let mut m = live(4);
    m.apply(ServerMessage::Setpoint(setpoint(2, 19.0, 5)), 0.0);
    m.apply(ServerMessage::Setpoint(setpoint(3, 21.0, 3)), 0.0);
    // Sensor 3 has a single write of its own waiting for its debounce: the group's value replaces it.
    m.edit(3, SetpointField::Desired, 30.0);
    m.commit(3, 0.0);
    for s in [1, 2, 3] {
        m.dispatch(Action::Select { sensor: s, on: true });
    }
    for (field, value) in [
        (SetpointField::Desired, 23.5),
        (SetpointField::UpDelta, 0.75),
        (SetpointField::DownDelta, f64::NAN), // half typed: ignored
    ] {
        m.dispatch(Action::GroupEdit { field, value });
    }
    let revs: Vec<u64> = (1..=4).map(|s| m.sensors[&s].rev()).collect();
    let writes = group_writes(m.dispatch(Action::ApplyGroup { now: 10.0 }));
    let got: Vec<_> = writes
        .iter()
        .map(|w| (w.sensor, w.desired, w.up_delta, w.down_delta, w.base_version))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, 23.5, 0.75, 0.5, Some(1)),
            (2, 23.5, 0.75, 0.5, Some(5)),
            (3, 23.5, 0.75, 0.5, Some(3)),
        ]
    );
    let mut ids: Vec<&str> = writes.iter().map(|w| w.request_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "a request id each");
    for s in [1, 2, 3] {
        assert!(m.sensors[&s].editor.status.text().contains("pending"), "card {s}");
        assert!(m.sensors[&s].rev() > revs[s as usize - 1], "card {s} redraws");
    }
    assert_eq!(m.sensors[&4].rev(), revs[3], "an unselected card is untouched");
    assert_eq!(m.sensors[&4].editor.status, SaveStatus::Idle);
    assert_eq!(
        m.group.status,
        GroupStatus::Sent {
            sent: 3,
            unchanged: 0
        }
    );
    assert!(
        m.tick(5_000.0).is_empty(),
        "sensor 3's own write is not sent as well"
    );

    // Applying again: sensors already at the value are not written again.
    m.apply(
        ServerMessage::Setpoint(SetpointMsg::new(1, &m.group.draft.clone(), 2, None)),
        0.0,
    );
    let writes = group_writes(m.dispatch(Action::ApplyGroup { now: 20.0 }));
    assert_eq!(writes.iter().map(|w| w.sensor).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(
        m.group.status.text(),
        "sent to 2 sensors; 1 already had this setpoint"
    );
}

#[test]
fn a_group_write_is_validated_and_refused_like_a_single_one() {
    let mut m = live(2);
    assert!(m.dispatch(Action::ApplyGroup { now: 0.0 }).is_empty());
    assert!(m.group.status.text().contains("no sensor selected"));
    m.dispatch(Action::Select { sensor: 1, on: true });
    m.dispatch(Action::GroupEdit {
        field: SetpointField::UpDelta,
        value: 80.0,
    });
    assert!(m.dispatch(Action::ApplyGroup { now: 0.0 }).is_empty());
    // The same words a card shows for the same draft: both come from `Limits::validate`.
    let mut card = crate::model::editor::Editor::default();
    card.edit(None, SetpointField::UpDelta, 80.0);
    card.commit(1, None, &m.config.limits, "x".into(), 0.0);
    assert_eq!(m.group.status.text(), card.status.text());
    assert!(m.group.status.is_error());
    assert_eq!(
        m.sensors[&1].editor.status,
        SaveStatus::Idle,
        "no card was touched"
    );
    m.dispatch(Action::GroupEdit {
        field: SetpointField::UpDelta,
        value: 1.0,
    });
    assert_eq!(m.group.status, GroupStatus::Idle, "editing clears the complaint");

    let mut ro = Model::new("r".into());
    ro.connect(false, &[1], vec![], 0.0);
    ro.dispatch(Action::Select { sensor: 1, on: true });
    assert!(ro.dispatch(Action::ApplyGroup { now: 0.0 }).is_empty());
    assert!(ro.group.status.text().contains("read-only"));
    m.close();
    assert!(m.dispatch(Action::ApplyGroup { now: 0.0 }).is_empty());
    assert!(m.group.status.text().contains("not connected"));
}

#[test]
fn each_card_shows_its_own_outcome_of_a_group_write() {
    let mut m = live(4);
    for s in [1, 2, 3, 4] {
        m.dispatch(Action::Select { sensor: s, on: true });
    }
    m.dispatch(Action::GroupEdit {
        field: SetpointField::Desired,
        value: 22.0,
    });
    let writes = group_writes(m.dispatch(Action::ApplyGroup { now: 0.0 }));
    let id = |s: SensorId| writes[s as usize - 1].request_id.clone();
    assert_eq!(
        m.group_outcomes(),
        Outcomes {
            pending: 4,
            ..Outcomes::default()
        }
    );
    m.apply(
        ServerMessage::Ack {
            request_id: id(1),
            setpoint: None,
        },
        100.0,
    );
    m.apply(
        ServerMessage::Error(ErrorMsg {
            request_id: Some(id(2)),
            code: ErrorCode::Conflict,
            message: "stale base_version".into(),
            current: Some(setpoint(2, 18.5, 7)),
        }),
        100.0,
    );
    m.apply(
        ServerMessage::Error(ErrorMsg {
            request_id: Some(id(3)),
            code: ErrorCode::BrokerUnavailable,
            message: String::new(),
            current: None,
        }),
        100.0,
    );
    let text = |m: &Model, s: SensorId| m.sensors[&s].editor.status.text();
    assert_eq!(text(&m, 1), "saved");
    assert!(
        text(&m, 2).contains("conflict") && text(&m, 2).contains("18.5"),
        "{}",
        text(&m, 2)
    );
    assert_eq!(m.sensors[&2].setpoint.as_ref().map(|s| s.version), Some(7));
    assert!(text(&m, 3).contains("unavailable"), "{}", text(&m, 3));
    assert!(text(&m, 4).contains("pending"));
    assert_eq!(
        m.group_outcomes().text(),
        "1 pending · 1 saved · 1 conflict · 1 failed"
    );
    // The broadcast of sensor 1's new value ends its draft, as after a single write.
    m.apply(ServerMessage::Setpoint(setpoint(1, 22.0, 2)), 200.0);
    assert_eq!(m.sensors[&1].editor.draft, None);
    // The last one gets no answer in time (the server's bound on answering).
    m.tick(setpoint_wire::ws::WRITE_ANSWER_WITHIN_MS as f64 + 1_000.0);
    assert!(text(&m, 4).contains("no answer"), "{}", text(&m, 4));
    assert_eq!(m.group_outcomes().failed, 2);
}

#[test]
fn a_group_frame_the_socket_refuses_is_reported_on_every_card() {
    let mut m = live(3);
    for s in [1, 3] {
        m.dispatch(Action::Select { sensor: s, on: true });
    }
    m.dispatch(Action::GroupEdit {
        field: SetpointField::Desired,
        value: 24.0,
    });
    for msg in m.dispatch(Action::ApplyGroup { now: 0.0 }) {
        m.dispatch(Action::SendFailed {
            msg,
            why: "not connected".into(),
        });
    }
    for s in [1, 3] {
        let t = m.sensors[&s].editor.status.text();
        assert!(t.contains("not sent: not connected"), "card {s}: {t}");
    }
    assert_eq!(m.sensors[&2].editor.status, SaveStatus::Idle);
    // Nothing is left in flight: a late answer changes nothing.
    m.tick(20_000.0);
    assert!(m.sensors[&1].editor.status.text().contains("not sent"));
}

#[test]
fn a_group_larger_than_one_frame_is_sent_in_frames_the_bridge_accepts() {
    use setpoint_wire::ws::MAX_GROUP_WRITES;
    let n = (MAX_GROUP_WRITES + 20) as SensorId;
    let mut m = live(n);
    for s in 1..=n {
        m.dispatch(Action::Select { sensor: s, on: true });
    }
    m.dispatch(Action::GroupEdit {
        field: SetpointField::Desired,
        value: 23.5,
    });
    let frames = m.dispatch(Action::ApplyGroup { now: 10.0 });
    let sizes: Vec<usize> = frames
        .iter()
        .map(|f| match f {
            ClientMessage::SetSetpoints { writes } => writes.len(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(sizes, vec![MAX_GROUP_WRITES, 20]);
    // Each frame stays under the bridge's 64 KiB frame limit.
    for f in &frames {
        let json = serde_json::to_string(f).expect("json");
        assert!(json.len() < 64 * 1024, "{} bytes", json.len());
    }
}
