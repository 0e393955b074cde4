//! The event-time (as-of) join: a reading is decided with the setpoint in force at its event time, whatever
//! order the two streams were fetched in. Checked against the offline reference in `setpoint-testkit`.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::HashMap;

use proptest::prelude::*;
use setpoint_control::{
    Command, Config, Controller, Mode, Policy, Reading, SensorId, Setpoint, Tpi, MAX_SETPOINT_VERSIONS,
};
use setpoint_testkit::reference::{compare, expected_commands, Expected, LoggedReading, LoggedSetpoint};

const BAND: Setpoint = Setpoint::new(20.0, 1.0, 1.0);

fn reading(t_ms: i64, temperature: f64) -> Reading {
    Reading { t_ms, temperature }
}

#[test]
fn a_reading_is_decided_with_the_setpoint_of_its_event_time_even_if_a_newer_one_arrived_first() {
    let mut c = Controller::new(Config::default());
    c.apply_setpoint_at(1, BAND, 1, 100).expect("valid");
    c.apply_setpoint_at(1, Setpoint::new(30.0, 1.0, 1.0), 2, 300)
        .expect("valid");
    // 25 °C is above v1's band (Off) and below v2's (On).
    let d = c
        .on_reading(1, reading(200, 25.0))
        .expect("ok")
        .expect("decision");
    assert_eq!((d.command, d.setpoint_version), (Command::Off, 1));
    let d = c
        .on_reading(1, reading(300, 25.0))
        .expect("ok")
        .expect("decision");
    assert_eq!((d.command, d.setpoint_version), (Command::On, 2));
    // Before the first version, no setpoint is in force.
    let mut c = Controller::new(Config::default());
    c.apply_setpoint_at(1, BAND, 1, 100).expect("valid");
    assert_eq!(c.on_reading(1, reading(99, 10.0)), Ok(None));
}

#[test]
fn a_setpoint_dated_before_decided_readings_applies_from_the_next_reading() {
    let mut c = Controller::new(Config::default());
    c.apply_setpoint_at(1, BAND, 1, 0).expect("valid");
    assert_eq!(
        c.on_reading(1, reading(500, 25.0))
            .expect("ok")
            .map(|d| d.command),
        Some(Command::Off)
    );
    // Dated 100, read after the reading of 500: it cannot change that decision, but decides the next one.
    c.apply_setpoint_at(1, Setpoint::new(30.0, 1.0, 1.0), 2, 100)
        .expect("valid");
    let d = c
        .on_reading(1, reading(600, 25.0))
        .expect("ok")
        .expect("decision");
    assert_eq!((d.command, d.setpoint_version), (Command::On, 2));
}

#[test]
fn equal_event_times_go_to_the_later_setpoint_and_a_reading_at_that_time_uses_it() {
    let mut c = Controller::new(Config::default());
    c.apply_setpoint_at(1, BAND, 1, 100).expect("valid");
    c.apply_setpoint_at(1, Setpoint::new(30.0, 1.0, 1.0), 2, 100)
        .expect("valid");
    let d = c
        .on_reading(1, reading(100, 25.0))
        .expect("ok")
        .expect("decision");
    assert_eq!(d.setpoint_version, 2);
}

#[test]
fn history_keeps_only_what_a_future_reading_can_use_and_is_bounded() {
    let mut c = Controller::new(Config::default());
    for v in 0..10 {
        c.apply_setpoint_at(1, BAND, v, v as i64 * 100).expect("valid");
    }
    assert_eq!(c.sensor(1).map(|s| s.setpoints.versions().len()), Some(10));
    c.on_reading(1, reading(450, 20.0)).expect("ok");
    // Versions 0..=3 can never be used again: 4 is in force at 450 and older readings are out of order.
    let kept: Vec<u64> = c
        .sensor(1)
        .map(|s| {
            s.setpoints
                .versions()
                .iter()
                .map(|v| v.setpoint.version)
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(kept, vec![4, 5, 6, 7, 8, 9]);
    for v in 0..(MAX_SETPOINT_VERSIONS as u64 + 10) {
        c.apply_setpoint_at(1, BAND, 100 + v, 10_000 + v as i64)
            .expect("valid");
    }
    assert_eq!(
        c.sensor(1).map(|s| s.setpoints.versions().len()),
        Some(MAX_SETPOINT_VERSIONS)
    );
    assert_eq!(c.stats().setpoint_versions_dropped, 16);
}

#[test]
fn a_restored_heater_memory_continues_exactly_where_the_other_instance_stopped() {
    let config = Config {
        min_dwell_ms: 1_000,
        ..Config::default()
    };
    let temps = [10.0, 25.0, 25.0, 10.0, 10.0, 25.0, 10.0, 25.0];
    let mut whole = Controller::new(config);
    whole.apply_setpoint_at(1, BAND, 1, 0).expect("valid");
    let all: Vec<_> = temps
        .iter()
        .enumerate()
        .filter_map(|(i, t)| whole.on_reading(1, reading(i as i64 * 400, *t)).expect("ok"))
        .collect();
    for split in 1..temps.len() {
        let mut first = Controller::new(config);
        first.apply_setpoint_at(1, BAND, 1, 0).expect("valid");
        let mut got: Vec<_> = temps[..split]
            .iter()
            .enumerate()
            .filter_map(|(i, t)| first.on_reading(1, reading(i as i64 * 400, *t)).expect("ok"))
            .collect();
        let memory = first.sensor(1).map(|s| s.heater_memory()).expect("known");
        let mut second = Controller::new(config);
        second.apply_setpoint_at(1, BAND, 1, 0).expect("valid");
        second.restore_heater(1, memory);
        // The new owner re-reads from an older committed offset: replayed readings change nothing.
        got.extend(
            temps
                .iter()
                .enumerate()
                .filter_map(|(i, t)| second.on_reading(1, reading(i as i64 * 400, *t)).expect("ok")),
        );
        assert_eq!(got, all, "split after {split} readings");
    }
}

/// A log: setpoints and readings, each with a time; `arrival` says when the controller happens to read
/// each setpoint (as an index into the readings), which is what fetch order decides in reality.
#[derive(Clone, Debug)]
struct Log {
    setpoints: Vec<(LoggedSetpoint, usize)>,
    readings: Vec<LoggedReading>,
}

fn log() -> impl Strategy<Value = Log> {
    let reading = (0..3i32, 0..300i64, 0..60i32);
    // The last number picks the room's mode and policy: hysteresis, TPI (three sets of parameters, one with
    // sensor 2 as the outdoor sensor) or off.
    let setpoint = (0..3i32, 0..6_000i64, 15..25i32, 0..4i32, 0..200usize, 0..6u8);
    (
        proptest::collection::vec(reading, 1..200),
        proptest::collection::vec(setpoint, 0..12),
    )
        .prop_map(|(rs, sps)| {
            let mut t = 0i64;
            let readings: Vec<LoggedReading> = rs
                .into_iter()
                .map(|(sensor, dt, temp)| {
                    t += dt;
                    LoggedReading {
                        sensor,
                        t_ms: t,
                        temperature: f64::from(temp) * 0.5,
                    }
                })
                .collect();
            let setpoints = sps
                .into_iter()
                .enumerate()
                .map(|(i, (sensor, t_ms, desired, delta, arrival, kind))| {
                    let band =
                        Setpoint::new(f64::from(desired), f64::from(delta) * 0.5, f64::from(delta) * 0.5);
                    let setpoint = match kind {
                        0 | 1 => band,
                        2 => band.with_policy(Policy::Tpi(Tpi::new(10, 0.4))),
                        3 => band.with_policy(Policy::Tpi(Tpi {
                            min_on_s: 2,
                            min_off_s: 3,
                            ..Tpi::new(12, 1.5)
                        })),
                        4 => band.with_policy(Policy::Tpi(Tpi {
                            k_ext: 0.1,
                            outdoor_sensor: Some(2),
                            ..Tpi::new(10, 0.3)
                        })),
                        _ => band.with_mode(Mode::Off),
                    };
                    let setpoint = LoggedSetpoint {
                        sensor,
                        t_ms,
                        setpoint,
                        version: i as u64 + 1,
                    };
                    (setpoint, arrival)
                })
                .collect();
            Log { setpoints, readings }
        })
}

fn run(
    config: Config,
    log: &Log,
    arrival_of: impl Fn(&LoggedSetpoint, usize) -> usize,
) -> HashMap<SensorId, Vec<Expected>> {
    let mut c = Controller::new(config);
    let mut pending: Vec<(usize, LoggedSetpoint)> = log
        .setpoints
        .iter()
        .map(|(s, a)| (arrival_of(s, *a), *s))
        .collect();
    // One sensor's records are in one partition, so they arrive in log order: a record arrives no later
    // than any later record of its sensor (moving it earlier keeps it in time).
    let mut earliest_later: HashMap<SensorId, usize> = HashMap::new();
    for (at, s) in pending.iter_mut().rev() {
        let bound = earliest_later.entry(s.sensor).or_insert(*at);
        *at = (*at).min(*bound);
        *bound = *at;
    }
    // Stable: setpoints arriving together keep their log order.
    pending.sort_by_key(|(at, _)| *at);
    let mut pending = pending.into_iter().peekable();
    let mut out: HashMap<SensorId, Vec<Expected>> = HashMap::new();
    for (i, r) in log.readings.iter().enumerate() {
        while let Some((_, s)) = pending.next_if(|(at, _)| *at <= i) {
            c.apply_setpoint_at(s.sensor, s.setpoint, s.version, s.t_ms)
                .expect("valid");
        }
        if let Ok(Some(d)) = c.on_reading(r.sensor, reading(r.t_ms, r.temperature)) {
            out.entry(r.sensor).or_default().push(Expected {
                t_ms: d.t_ms,
                command: d.command,
                version: d.setpoint_version,
            });
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whenever every setpoint is read before the first reading dated at or after it — which catching up
    /// on the setpoints before deciding guarantees — the commands are exactly the reference's, however
    /// early or late each setpoint was read. Reading all setpoints first is one such order.
    #[test]
    fn fetch_order_does_not_change_the_commands(log in log(), dwell in prop_oneof![Just(0i64), 1..800i64]) {
        let config = Config { min_dwell_ms: dwell, ..Config::default() };
        let setpoints: Vec<LoggedSetpoint> = log.setpoints.iter().map(|(s, _)| *s).collect();
        let expected = expected_commands(&config, &setpoints, &log.readings);
        let first_due = |s: &LoggedSetpoint| log.readings.iter().position(|r| r.t_ms >= s.t_ms).unwrap_or(log.readings.len());
        let all_first = run(config, &log, |_, _| 0);
        prop_assert!(compare(&expected, &all_first).is_ok(), "{:?}", compare(&expected, &all_first));
        let as_late_as_allowed = run(config, &log, |s, _| first_due(s));
        prop_assert!(compare(&expected, &as_late_as_allowed).is_ok(), "{:?}", compare(&expected, &as_late_as_allowed));
        let random_but_in_time = run(config, &log, |s, a| a.min(first_due(s)));
        prop_assert!(compare(&expected, &random_but_in_time).is_ok(), "{:?}", compare(&expected, &random_but_in_time));
    }
}
