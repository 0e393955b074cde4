use setpoint_control::{Command, Config, Decision, DecisionCause, Mode, Policy, Setpoint, Tpi};

use super::*;
use crate::bus::Record;
use crate::roles::gateway::devices;

const NOW: TimeMs = 1_700_000_000_000;

fn gateway() -> Gateway {
    let rooms = devices::parse(
        r#"
[[room]]
sensor = 9
name = "Living room"
temperature = { zigbee2mqtt = "living_sensor" }
heater = { zigbee2mqtt = "living_plug" }

[[room]]
sensor = 10
temperature = { topic = "home/hall/temp" }
heater = { tasmota = "hall_relay" }
"#,
    )
    .expect("valid devices");
    let opts = Options {
        topic_prefix: "setpoint".into(),
        discovery_prefix: Some("homeassistant".into()),
        resend_ms: 60_000,
        config: Config::default(),
        writer: "mqtt-test".into(),
        sw_version: "0.1.0".into(),
    };
    Gateway::new(opts, rooms)
}

fn connected() -> Gateway {
    let mut g = gateway();
    g.on_connected(NOW, &mut Vec::new());
    g
}

fn record(change: SetpointChange, offset: u64) -> Record<SetpointChange> {
    Record {
        partition: 0,
        offset,
        log_ms: NOW,
        value: change,
    }
}

fn decision(sensor: SensorId, command: Command) -> Decision {
    Decision {
        sensor,
        command,
        t_ms: NOW,
        temperature: 20.0,
        setpoint_version: 1,
        cause: DecisionCause::default(),
    }
}

fn published(out: &[Effect]) -> Vec<(&str, &str)> {
    out.iter()
        .filter_map(|e| match e {
            Effect::Publish(p) => Some((p.topic.as_str(), p.payload.as_str())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_zigbee_reading_becomes_a_reading_and_a_battery_report_is_no_error() {
    let mut g = connected();
    let mut out = Vec::new();
    g.on_message(
        "zigbee2mqtt/living_sensor",
        br#"{"temperature":19.25,"battery":80}"#,
        NOW,
        &mut out,
    );
    assert_eq!(
        out,
        vec![Effect::Reading(SensorReading {
            sensor: 9,
            t_ms: NOW,
            temperature: 19.25
        })]
    );
    out.clear();
    g.on_message("zigbee2mqtt/living_sensor", br#"{"battery":79}"#, NOW, &mut out);
    assert!(out.is_empty(), "{out:?}");
    g.on_message("home/hall/temp", b" 18.5\n", NOW, &mut out);
    assert!(
        matches!(out[..], [Effect::Reading(SensorReading { sensor: 10, .. })]),
        "{out:?}"
    );
}

#[test]
fn bad_payloads_are_refused_by_kind() {
    let mut g = connected();
    let cases: [(&str, &[u8], &str); 5] = [
        ("zigbee2mqtt/living_sensor", b"{not json", "payload_not_json"),
        (
            "zigbee2mqtt/living_sensor",
            br#"{"temperature":"warm"}"#,
            "temperature_not_a_number",
        ),
        (
            "zigbee2mqtt/living_sensor",
            br#"{"temperature":-300}"#,
            "temperature_implausible",
        ),
        ("home/hall/temp", b"NaN", "temperature_not_a_number"),
        (
            "zigbee2mqtt/living_plug",
            br#"{"state":"MAYBE"}"#,
            "relay_state_unknown",
        ),
    ];
    for (topic, payload, kind) in cases {
        let mut out = Vec::new();
        g.on_message(topic, payload, NOW, &mut out);
        assert!(
            matches!(&out[..], [Effect::Refused(r)] if r.kind == kind),
            "{topic} {payload:?}: {out:?}"
        );
    }
    let mut out = Vec::new();
    g.on_message(
        "home/hall/temp",
        &vec![b'1'; MAX_PAYLOAD_BYTES + 1],
        NOW,
        &mut out,
    );
    assert!(matches!(&out[..], [Effect::Refused(r)] if r.kind == "payload_too_large"));
}

#[test]
fn a_command_goes_to_the_heater_once_then_again_on_mismatch_availability_and_period() {
    let mut g = connected();
    let mut out = Vec::new();
    g.on_decision(&decision(9, Command::On), NOW, &mut out);
    assert!(published(&out).contains(&("zigbee2mqtt/living_plug/set", r#"{"state":"ON"}"#)));
    out.clear();
    // The same command again is not re-sent at once.
    g.on_decision(&decision(9, Command::On), NOW + 100, &mut out);
    assert!(published(&out).is_empty());
    // The plug rebooted and reports Off: sent again, but not more than once per MISMATCH_RESEND_MS.
    g.on_message(
        "zigbee2mqtt/living_plug",
        br#"{"state":"OFF"}"#,
        NOW + 1_000,
        &mut out,
    );
    assert!(published(&out).is_empty(), "too soon after the first send");
    g.on_tick(NOW + MISMATCH_RESEND_MS - 1, &mut out);
    assert!(published(&out).is_empty(), "still too soon");
    g.on_tick(NOW + MISMATCH_RESEND_MS, &mut out);
    assert_eq!(
        published(&out),
        vec![("zigbee2mqtt/living_plug/set", r#"{"state":"ON"}"#)]
    );
    out.clear();
    g.on_tick(NOW + MISMATCH_RESEND_MS + 1_000, &mut out);
    assert!(
        published(&out).is_empty(),
        "sent once, until the plug says it is wrong again"
    );
    g.on_message(
        "zigbee2mqtt/living_plug",
        br#"{"state":"OFF"}"#,
        NOW + 2 * MISMATCH_RESEND_MS,
        &mut out,
    );
    assert_eq!(
        published(&out),
        vec![("zigbee2mqtt/living_plug/set", r#"{"state":"ON"}"#)]
    );
    out.clear();
    g.on_message(
        "zigbee2mqtt/living_plug",
        br#"{"state":"ON"}"#,
        NOW + 20_000,
        &mut out,
    );
    assert!(published(&out).is_empty(), "agreeing state sends nothing");
    g.on_message(
        "zigbee2mqtt/living_plug/availability",
        br#"{"state":"online"}"#,
        NOW + 20_001,
        &mut out,
    );
    assert_eq!(published(&out).len(), 1);
    out.clear();
    // Tasmota's relay has no command yet; only the plug is re-sent, once its period is up.
    g.on_tick(NOW + 20_001 + 59_000, &mut out);
    assert!(published(&out).is_empty());
    g.on_tick(NOW + 20_001 + 60_000, &mut out);
    assert_eq!(
        published(&out),
        vec![("zigbee2mqtt/living_plug/set", r#"{"state":"ON"}"#)]
    );
}

#[test]
fn nothing_is_published_while_disconnected_and_everything_on_reconnection() {
    let mut g = connected();
    g.on_disconnected();
    let mut out = Vec::new();
    g.on_decision(&decision(10, Command::On), NOW, &mut out);
    assert!(published(&out).is_empty());
    g.on_connected(NOW + 1, &mut out);
    assert!(g.announcing());
    g.poll_announcements(1, &mut out);
    assert!(g.announcing(), "two rooms, one a turn");
    g.poll_announcements(1, &mut out);
    assert!(!g.announcing());
    let p = published(&out);
    assert_eq!(p[0], ("setpoint/status", "online"));
    assert!(p.contains(&("cmnd/hall_relay/POWER", "ON")), "{p:?}");
    assert!(p.contains(&("setpoint/room/10/action", "heating")), "{p:?}");
    assert!(p
        .iter()
        .any(|(t, _)| *t == "homeassistant/climate/setpoint_9/config"));
}

#[test]
fn set_temperature_is_a_conditional_write_keeping_the_deltas_and_a_lost_one_is_restated() {
    let mut g = connected();
    let mut out = Vec::new();
    let first = SetpointChange::new(9, Setpoint::new(20.0, 0.3, 0.7), 1, "admin", NOW);
    g.on_setpoint(&record(first, 0), NOW, &mut out);
    assert!(published(&out).contains(&("setpoint/room/9/target", "20")));
    out.clear();
    g.on_message("setpoint/room/9/target/set", b"21.5", NOW, &mut out);
    let Some(Effect::Setpoint(write)) = out.first().cloned() else {
        panic!("no write: {out:?}")
    };
    assert_eq!(
        (write.version, write.base_version, write.author.as_str()),
        (2, Some(1), AUTHOR)
    );
    assert_eq!(write.setpoint, Setpoint::new(21.5, 0.3, 0.7));
    // Someone else's write lands first; ours, read back, lost: restated, and HA told what is in force.
    let other = SetpointChange::new(9, Setpoint::new(19.0, 0.3, 0.7), 2, "admin", NOW).conditional(1, "x-1");
    out.clear();
    g.on_setpoint(&record(other, 1), NOW, &mut out);
    g.on_setpoint(&record(write, 2), NOW, &mut out);
    assert!(
        out.iter()
            .any(|e| matches!(e, Effect::Setpoint(r) if r.version == 2 && r.base_version == Some(2))),
        "{out:?}"
    );
    assert!(published(&out).contains(&("setpoint/room/9/target", "19")));
    // Out of range or not a number: refused, and the target in force shown again.
    for bad in [&b"500"[..], b"hot", b""] {
        out.clear();
        g.on_message("setpoint/room/9/target/set", bad, NOW, &mut out);
        assert!(matches!(out.first(), Some(Effect::Refused(_))), "{out:?}");
        assert_eq!(
            published(&out),
            vec![("setpoint/room/9/target", "19"), ("setpoint/room/9/mode", "heat")]
        );
    }
    out.clear();
    g.on_message("setpoint/room/77/target/set", b"20", NOW, &mut out);
    assert!(matches!(&out[..], [Effect::Refused(r)] if r.kind == "set_temperature_unknown_room"));
}

#[test]
fn temperatures_are_published_at_most_every_five_seconds_the_latest_kept() {
    let mut g = connected();
    let mut out = Vec::new();
    let r = |t: f64| SensorReading {
        sensor: 9,
        t_ms: NOW,
        temperature: t,
    };
    g.on_reading(&r(20.0), NOW, &mut out);
    g.on_reading(&r(20.1), NOW + 1_000, &mut out);
    g.on_reading(&r(20.2), NOW + 2_000, &mut out);
    assert_eq!(published(&out), vec![("setpoint/room/9/temperature", "20")]);
    out.clear();
    g.on_tick(NOW + 4_000, &mut out);
    assert!(published(&out).is_empty());
    g.on_tick(NOW + 5_000, &mut out);
    assert_eq!(published(&out), vec![("setpoint/room/9/temperature", "20.2")]);
    // A room nobody announced (no setpoint, no device) is not published.
    out.clear();
    g.on_reading(
        &SensorReading {
            sensor: 500,
            t_ms: NOW,
            temperature: 1.0,
        },
        NOW,
        &mut out,
    );
    assert!(out.is_empty());
}

/// Home Assistant's `set_hvac_mode`: off and back to heat are conditional writes that keep the room's
/// numbers and policy (a TPI room stays TPI), the mode and action are shown, and anything else is refused.
#[test]
fn set_hvac_mode_writes_the_mode_and_keeps_numbers_and_policy() {
    let mut g = connected();
    let mut out = Vec::new();
    let tpi = Setpoint::new(20.0, 0.3, 0.7).with_policy(Policy::Tpi(Tpi::new(600, 0.5)));
    g.on_setpoint(
        &record(SetpointChange::new(9, tpi, 1, "admin", NOW), 0),
        NOW,
        &mut out,
    );
    out.clear();
    g.on_message("setpoint/room/9/mode/set", b"off", NOW, &mut out);
    let Some(Effect::Setpoint(write)) = out.first().cloned() else {
        panic!("no write: {out:?}")
    };
    assert_eq!(write.setpoint, tpi.with_mode(Mode::Off));
    assert_eq!((write.version, write.base_version), (2, Some(1)));
    out.clear();
    g.on_setpoint(&record(write, 1), NOW, &mut out);
    let shown = published(&out);
    assert!(shown.contains(&("setpoint/room/9/mode", "off")), "{shown:?}");
    assert!(shown.contains(&("setpoint/room/9/action", "off")), "{shown:?}");
    for bad in [&b"cool"[..], b"", b"OFF"] {
        out.clear();
        g.on_message("setpoint/room/9/mode/set", bad, NOW, &mut out);
        assert!(
            matches!(out.first(), Some(Effect::Refused(r)) if r.kind == "set_hvac_mode_unknown"),
            "{out:?}"
        );
        assert!(published(&out).contains(&("setpoint/room/9/mode", "off")));
    }
    out.clear();
    g.on_message("setpoint/room/9/mode/set", b"heat", NOW, &mut out);
    assert!(matches!(out.first(), Some(Effect::Setpoint(w)) if w.setpoint == tpi));
    // A real room without a setpoint switched off starts from the default band, not from 0 °C.
    out.clear();
    g.on_message("setpoint/room/10/mode/set", b"off", NOW, &mut out);
    assert!(
        matches!(out.first(), Some(Effect::Setpoint(w))
            if w.setpoint == setpoint_control::DEFAULT_SETPOINT.with_mode(Mode::Off) && w.base_version == Some(0)),
        "{out:?}"
    );
}
