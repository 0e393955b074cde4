//! Deterministic logs for stream tests and benchmarks: setpoint rounds and readings that wander across the
//! band, so every round sees both commands.

use setpoint_control::{Mode, Policy, SensorId, Setpoint, Tpi};

use crate::reference::{LoggedReading, LoggedSetpoint};

/// A room temperature that wanders across 17.5–24 °C (two hundredths of a degree resolution).
pub fn temperature(sensor: SensorId, i: usize) -> f64 {
    let phase = (i as f64) * 0.37 + f64::from(sensor) * 1.3;
    let t = 20.75 + 3.0 * phase.sin() + 0.8 * (phase * 2.9).cos();
    (t * 100.0).round() / 100.0
}

/// A setpoint (`desired` ± 1 °C) for each of sensors `1..=sensors`, all in force from `t_ms`.
pub fn setpoint_round(sensors: SensorId, t_ms: i64, desired: f64) -> Vec<LoggedSetpoint> {
    (1..=sensors)
        .map(|sensor| LoggedSetpoint {
            sensor,
            t_ms,
            setpoint: Setpoint::new(desired, 1.0, 1.0),
            version: 0,
        })
        .collect()
}

/// A building of mixed rooms: every seventh in mode off; every third under TPI, wanting 2 °C more so that
/// the wandering temperatures give partial shares (10 s cycles at 25 % per °C: most cycles switch On and
/// then Off, and the logs' readings cross several), half of them (4, 10, 16…) with 2 s minimum on and off
/// times, which a new round's setpoints must not cut short; the rest under hysteresis; all ± 1 °C.
pub fn mixed_setpoint(sensor: SensorId, desired: f64) -> Setpoint {
    let band = Setpoint::new(desired, 1.0, 1.0);
    if sensor % 7 == 0 {
        band.with_mode(Mode::Off)
    } else if sensor % 3 == 1 {
        let tpi = if sensor % 6 == 4 {
            Tpi {
                min_on_s: 2,
                min_off_s: 2,
                ..Tpi::new(10, 0.25)
            }
        } else {
            Tpi::new(10, 0.25)
        };
        Setpoint::new(desired + 2.0, 1.0, 1.0).with_policy(Policy::Tpi(tpi))
    } else {
        band
    }
}

/// [`setpoint_round`] for a building of mixed rooms ([`mixed_setpoint`]).
pub fn mixed_round(sensors: SensorId, t_ms: i64, desired: f64) -> Vec<LoggedSetpoint> {
    (1..=sensors)
        .map(|sensor| LoggedSetpoint {
            sensor,
            t_ms,
            setpoint: mixed_setpoint(sensor, desired),
            version: 0,
        })
        .collect()
}

/// `count` readings taking turns over sensors `1..=sensors`, one millisecond apart from `from_ms`.
pub fn readings(sensors: SensorId, from_ms: i64, count: usize) -> Vec<LoggedReading> {
    (0..count)
        .map(|i| {
            let sensor = (i % sensors as usize) as SensorId + 1;
            LoggedReading {
                sensor,
                t_ms: from_ms + i as i64,
                temperature: temperature(sensor, i / sensors as usize),
            }
        })
        .collect()
}
