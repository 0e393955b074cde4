//! The recorded reference trace must produce exactly the reference decisions — natively and in WASM.

mod common;

use common::{parse_decisions, parse_trace, run_trace};
use setpoint_control::{Config, Controller};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

#[test]
fn reference_trace_gives_reference_decisions() {
    let events = parse_trace();
    let expected = parse_decisions();
    assert!(events.len() > 1000, "trace has {} events", events.len());
    assert!(expected.len() > 800, "expected {} decisions", expected.len());
    let got = run_trace(&mut Controller::new(Config::default()), &events);
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "decision {i} differs");
    }
    assert_eq!(got.len(), expected.len());
}

#[test]
fn reference_trace_survives_snapshot_and_restore_midway() {
    let events = parse_trace();
    let expected = parse_decisions();
    let (first, second) = events.split_at(events.len() / 2);
    let mut controller = Controller::new(Config::default());
    let mut got = run_trace(&mut controller, first);
    let json = serde_json::to_string(&controller.snapshot()).expect("snapshot serializes");
    let mut restored = Controller::restore(serde_json::from_str(&json).expect("snapshot deserializes"));
    got.extend(run_trace(&mut restored, second));
    assert_eq!(got, expected);
}
