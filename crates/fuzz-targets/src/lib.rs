//! Fuzz target bodies: every decoder that faces the outside, setpoint validation, and the `Controller`
//! against a deliberately simple reference model of the rule.
//!
//! The bodies live in an ordinary library so that two drivers share them: libFuzzer (`crates/fuzz`, nightly,
//! `cargo xtask fuzz`) explores with coverage feedback, and this crate's tests replay the saved corpus and
//! every crash found so far on stable, in `cargo xtask test`. Each body panics only when a property breaks.

pub mod model;

use setpoint_control::{Limits, Setpoint};
use setpoint_wire::proto::{self, HeaterControl, SensorData, TemperatureControl};
use setpoint_wire::ws::{ClientMessage, ServerMessage};

/// A fuzz target body: panics only when a property breaks.
pub type Target = fn(&[u8]);

/// The targets by name, as `crates/fuzz/fuzz_targets/<name>.rs` and the corpus folders call them.
pub const TARGETS: &[(&str, Target)] = &[
    ("protobuf", protobuf),
    ("ws_json", ws_json),
    ("setpoint", setpoint),
    ("controller", controller),
];

/// Kafka record values and keys: decoding never panics, and whatever decodes re-encodes to bytes that
/// decode to the same message (the canonical encoding is a fixed point).
pub fn protobuf(data: &[u8]) {
    let (key, value) = split_key(data);
    fn fixed_point<M: prost::Message + Default>(bytes: &[u8]) {
        if let Ok(m) = M::decode(bytes) {
            let once = m.encode_to_vec();
            let again = M::decode(once.as_slice()).expect("our own encoding decodes");
            assert_eq!(again.encode_to_vec(), once, "re-encoding is stable");
        }
    }
    if let Ok(m) = SensorData::decode_value(value) {
        let _ = proto::check_key(key, m.sensor_id);
        fixed_point::<SensorData>(value);
    }
    if let Ok(m) = TemperatureControl::decode_value(value) {
        let _ = proto::check_key(key, m.sensor_id);
        // What a setpoint record asks for goes through the same validation as a browser's write.
        let _ = Limits::default().validate(&m.setpoint());
        fixed_point::<TemperatureControl>(value);
    }
    if let Ok(m) = HeaterControl::decode_value(value) {
        if let Ok(d) = m.decision(0) {
            assert_eq!(HeaterControl::from_decision(&d).command, m.command);
        }
        fixed_point::<HeaterControl>(value);
    }
}

/// The first byte says how many of the following bytes are the record key (255 = no key).
fn split_key(data: &[u8]) -> (Option<&[u8]>, &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return (None, data);
    };
    if n == 255 {
        return (None, rest);
    }
    let n = usize::from(n).min(rest.len());
    (Some(&rest[..n]), &rest[n..])
}

/// WebSocket frames from browsers (and the server's frames, which the dashboard decodes): never a panic,
/// any error is one of the typed codes, and an accepted message survives a round trip unchanged.
pub fn ws_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return; // the transport refuses invalid UTF-8 before the protocol sees it
    };
    match ClientMessage::from_json(text) {
        Ok(m) => {
            let back = ClientMessage::from_json(&serde_json::to_string(&m).expect("serializes"))
                .expect("our own encoding decodes");
            assert_eq!(back, m);
        }
        Err(e) => {
            let _ = e.code();
        }
    }
    if let Ok(m) = ServerMessage::from_json(text) {
        let _ = m.to_json();
    }
}

/// Setpoint validation: whatever it accepts is usable by the rule (finite, ordered band), and it agrees
/// with the limits written out longhand.
pub fn setpoint(data: &[u8]) {
    let mut f = [0f64; 3];
    for (i, chunk) in data.chunks(8).take(3).enumerate() {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        f[i] = f64::from_le_bytes(b);
    }
    let sp = Setpoint::new(f[0], f[1], f[2]);
    let limits = Limits::default();
    let longhand = [sp.desired, sp.up_delta, sp.down_delta]
        .iter()
        .all(|v| v.is_finite())
        && sp.desired >= limits.desired_min
        && sp.desired <= limits.desired_max
        && (0.0..=limits.max_delta).contains(&sp.up_delta)
        && (0.0..=limits.max_delta).contains(&sp.down_delta);
    let verdict = limits.validate(&sp);
    assert_eq!(verdict.is_ok(), longhand, "{sp:?}: {verdict:?}");
    if verdict.is_ok() {
        assert!(sp.lower() <= sp.upper() && sp.lower().is_finite() && sp.upper().is_finite());
    }
}

/// Random interleavings of readings, setpoints, ticks, releases and snapshot/restore, checked step by step
/// against [`model::Model`].
pub fn controller(data: &[u8]) {
    model::check(data);
}
