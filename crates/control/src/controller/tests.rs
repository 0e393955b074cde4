//! The controller's index of sensor ids.

use super::*;

/// Ids land in the direct array or the hash map depending on when they first appear; every id must
/// find its own state either way, including ids that were hashed before the array grew past them.
#[test]
fn every_id_finds_its_own_state_wherever_it_is_indexed() {
    let mut c = Controller::new(Config::default());
    let early = [i32::MIN, -1, 0, 5_000, i32::MAX, 1_023];
    let later: Vec<SensorId> = (1..3_000)
        .filter(|id| *id != 1_023)
        .chain([4_999, 5_001])
        .collect();
    let all: Vec<SensorId> = early.iter().copied().chain(later).collect();
    for (n, &id) in all.iter().enumerate() {
        let reading = Reading {
            t_ms: n as i64,
            temperature: f64::from(id % 100),
        };
        assert_eq!(c.on_reading(id, reading), Ok(None));
    }
    assert_eq!(c.sensors().count(), all.len());
    for (n, &id) in all.iter().enumerate() {
        let state = c.sensor(id).expect("known");
        assert_eq!(state.newest_ms, Some(n as i64), "sensor {id}");
        assert_eq!(state.last_temperature, Some(f64::from(id % 100)), "sensor {id}");
        assert_eq!(state.readings, 1, "sensor {id}");
    }
    assert!(c.sensor(7_000).is_none() && c.sensor(-2).is_none());
    let restored = Controller::restore(c.snapshot());
    assert_eq!(restored.snapshot(), c.snapshot());
}
