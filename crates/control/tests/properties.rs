//! Property tests of the controller's invariants over random interleavings of events.
#![cfg(not(target_arch = "wasm32"))]

use proptest::prelude::*;
use setpoint_control::{
    replay, Command, Config, Controller, Decision, Reading, SensorState, Setpoint, VersionedSetpoint,
};
use std::collections::HashMap;

#[derive(Clone, Debug)]
enum Event {
    Reading { sensor: i32, dt: i64, temperature: f64 },
    Setpoint { sensor: i32, setpoint: Setpoint },
    Tick { dt: i64 },
}

fn event() -> impl Strategy<Value = Event> {
    let sensor = 0..4i32;
    // Coarse temperatures make boundary hits common.
    let temperature = (0..80i32).prop_map(|t| f64::from(t) * 0.5);
    prop_oneof![
        6 => (sensor.clone(), -50..500i64, temperature).prop_map(|(sensor, dt, temperature)| Event::Reading { sensor, dt, temperature }),
        1 => (sensor, 10..30i32, 0..6i32, 0..6i32).prop_map(|(sensor, d, u, w)| Event::Setpoint {
            sensor,
            setpoint: Setpoint::new(f64::from(d), f64::from(u) * 0.5, f64::from(w) * 0.5)
        }),
        1 => (0..3000i64).prop_map(|dt| Event::Tick { dt }),
    ]
}

fn config() -> impl Strategy<Value = Config> {
    (
        prop_oneof![Just(0i64), 1..1000i64],
        prop_oneof![Just(None), (100..2000i64).prop_map(Some)],
    )
        .prop_map(|(min_dwell_ms, stale_after_ms)| Config {
            min_dwell_ms,
            stale_after_ms,
            ..Config::default()
        })
}

/// Feeds events to a controller, returning every decision. `only` restricts the run to one sensor's events.
fn run(controller: &mut Controller, events: &[Event], only: Option<i32>) -> Vec<Decision> {
    let mut now = 0i64;
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        match *e {
            Event::Reading {
                sensor,
                dt,
                temperature,
            } => {
                now += dt.max(0);
                if only.is_none_or(|s| s == sensor) {
                    // dt < 0 produces out-of-order readings.
                    let t = now + dt.min(0);
                    if let Ok(Some(d)) = controller.on_reading(sensor, Reading { t_ms: t, temperature }) {
                        out.push(d);
                    }
                }
            }
            Event::Setpoint { sensor, setpoint } => {
                if only.is_none_or(|s| s == sensor) {
                    controller
                        .apply_setpoint(sensor, setpoint, i as u64)
                        .expect("generated setpoints are valid");
                }
            }
            Event::Tick { dt } => {
                now += dt;
                out.extend(
                    controller
                        .tick(now)
                        .into_iter()
                        .filter(|d| only.is_none_or(|s| s == d.sensor)),
                );
            }
        }
    }
    out
}

proptest! {
    #[test]
    fn never_two_equal_consecutive_commands_per_sensor(cfg in config(), events in prop::collection::vec(event(), 0..300)) {
        let decisions = run(&mut Controller::new(cfg), &events, None);
        let mut last: HashMap<i32, Command> = HashMap::new();
        for d in decisions {
            prop_assert_ne!(last.insert(d.sensor, d.command), Some(d.command), "{:?}", d);
        }
    }

    #[test]
    fn sensors_are_independent(cfg in config(), events in prop::collection::vec(event(), 0..300)) {
        let together = run(&mut Controller::new(cfg), &events, None);
        for sensor in 0..4 {
            let alone = run(&mut Controller::new(cfg), &events, Some(sensor));
            let mine: Vec<_> = together.iter().filter(|d| d.sensor == sensor).copied().collect();
            prop_assert_eq!(mine, alone);
        }
    }

    #[test]
    fn snapshot_and_restore_give_identical_future_decisions(
        cfg in config(),
        before in prop::collection::vec(event(), 0..150),
        after in prop::collection::vec(event(), 0..150),
    ) {
        let mut original = Controller::new(cfg);
        run(&mut original, &before, None);
        let json = serde_json::to_string(&original.snapshot()).expect("serializes");
        let mut restored = Controller::restore(serde_json::from_str(&json).expect("deserializes"));
        prop_assert_eq!(run(&mut original, &after, None), run(&mut restored, &after, None));
        prop_assert_eq!(original.snapshot(), restored.snapshot());
    }

    #[test]
    fn replay_equals_live_processing(
        cfg in config(),
        setpoint in (10..30i32, 0..6i32, 0..6i32).prop_map(|(d, u, w)| Setpoint::new(f64::from(d), f64::from(u) * 0.5, f64::from(w) * 0.5)),
        readings in prop::collection::vec((-50..500i64, (0..80i32).prop_map(|t| f64::from(t) * 0.5)), 0..300),
    ) {
        let mut t = 0;
        let readings: Vec<Reading> = readings.into_iter().map(|(dt, temperature)| { t += dt; Reading { t_ms: t, temperature } }).collect();
        let mut live = Controller::new(cfg);
        live.apply_setpoint(3, setpoint, 7).expect("valid");
        let live_decisions: Vec<_> = readings.iter().filter_map(|r| live.on_reading(3, *r).ok().flatten()).collect();
        let replayed = replay(&cfg, 3, &SensorState::default(), VersionedSetpoint { setpoint, version: 7 }, &readings, &[]).expect("valid");
        prop_assert_eq!(replayed, live_decisions);
    }
}
