//! The offline reference of the controller: what it must emit for a given log, computed the slow, obvious
//! way so that it shares no code with the implementation it checks (`setpoint-control` is used only for its
//! plain data types).
//!
//! The rule: per sensor, readings are taken in log order; a reading older than the newest one already taken
//! is ignored (out of order). A reading is decided with the setpoint in force at its event time — of the
//! sensor's valid setpoints whose event time is ≤ the reading's, the newest, ties going to the later one in
//! the log (an as-of join). Above `desired + up_delta` → Off, below `desired − down_delta` → On; a command
//! only when it differs from the previous one, and (with a minimum dwell) not before the previous one has
//! been in force that long. No setpoint, no command.
//!
//! Setpoint versions follow the stream (the rule of `setpoint_control::SetpointTable`, restated here for the
//! records these logs hold, which carry no base version): per sensor, in log order, a record that is
//! refused — its setpoint outside the limits, its version above 2⁵³ − 1, its time too far ahead — is
//! skipped and numbers nothing; an unversioned record (version 0, the reference thermostat's tools) takes
//! effect as the version in force + 1; a versioned one takes effect only above the version in force; the
//! first valid record of a sensor always takes effect.
//!
//! Mode and policy (the setpoint record's): in mode off the rule wants Off whatever the temperature. Under
//! TPI a sensor's cycle
//! starts at a reading when it has none, when the version in force is not the one it started under, or
//! when the reading is a whole cycle or more after its start (or before it); at its start the heater's
//! share is `clamp(k_int·(desired − T) + k_ext·(desired − T_out), 0, 1)` of the cycle — `T_out` the
//! newest reading taken of the outdoor sensor before, in log order (no term while there is none) —
//! rounded to the millisecond, made 0 if shorter
//! than `min_on_s` and the whole cycle if the rest is shorter than `min_off_s`; the rule wants On before
//! start + share, Off from then. Hysteresis and mode off end any cycle. Dedup and dwell as above; in a
//! heated TPI room a change is also held until the command in force has lasted `min_on_s` (an On) or
//! `min_off_s` (an Off).
//!
//! Clock errors: with [`expected_commands_logged_by`], a reading or setpoint dated more than
//! `config.max_clock_skew_ms` after the time by which every record was in the log is refused, as a live
//! reader refuses it (the test writes its log live, so its clock bounds the log times).

use std::collections::HashMap;

use setpoint_control::{Command, Config, Mode, Policy, SensorId, Setpoint, TimeMs};

/// A setpoint as written to the log.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoggedSetpoint {
    pub sensor: SensorId,
    pub t_ms: TimeMs,
    pub setpoint: Setpoint,
    pub version: u64,
}

/// A reading as written to the log.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoggedReading {
    pub sensor: SensorId,
    pub t_ms: TimeMs,
    pub temperature: f64,
}

/// One expected command: the event time of the reading that caused it, the command, and the version of
/// the setpoint it was decided with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Expected {
    pub t_ms: TimeMs,
    pub command: Command,
    pub version: u64,
}

/// The commands a correct controller emits for these logs, per sensor, in order. `setpoints` and
/// `readings` are each in log order (only the order within one sensor matters).
pub fn expected_commands(
    config: &Config,
    setpoints: &[LoggedSetpoint],
    readings: &[LoggedReading],
) -> HashMap<SensorId, Vec<Expected>> {
    expected_commands_logged_by(config, setpoints, readings, TimeMs::MAX / 2)
}

/// [`expected_commands`] for a log whose every record was in the log by `logged_by_ms`: records dated more
/// than the clock skew after it are refused.
pub fn expected_commands_logged_by(
    config: &Config,
    setpoints: &[LoggedSetpoint],
    readings: &[LoggedReading],
    logged_by_ms: TimeMs,
) -> HashMap<SensorId, Vec<Expected>> {
    let latest_ok = logged_by_ms.saturating_add(config.max_clock_skew_ms);
    let setpoints: Vec<LoggedSetpoint> = setpoints
        .iter()
        .filter(|s| s.t_ms <= latest_ok && config.limits.validate(&s.setpoint).is_ok())
        .copied()
        .collect();
    let setpoints = &numbered(&setpoints);
    let mut out: HashMap<SensorId, Vec<Expected>> = HashMap::new();
    let mut newest: HashMap<SensorId, TimeMs> = HashMap::new();
    // Per sensor: the temperature of its newest reading taken.
    let mut latest: HashMap<SensorId, f64> = HashMap::new();
    // Per sensor: (start, on until, version) of its TPI cycle.
    let mut cycles: HashMap<SensorId, (TimeMs, TimeMs, u64)> = HashMap::new();
    for r in readings {
        if !r.temperature.is_finite() || r.temperature < -273.15 || r.t_ms > latest_ok {
            continue;
        }
        if newest.get(&r.sensor).is_some_and(|n| r.t_ms < *n) {
            continue;
        }
        newest.insert(r.sensor, r.t_ms);
        // (A room that names itself its outdoor sensor sees its previous reading, as the controller does.)
        let previous = latest.insert(r.sensor, r.temperature);
        let mut in_force: Option<&LoggedSetpoint> = None;
        for s in setpoints {
            let valid = config.limits.validate(&s.setpoint).is_ok();
            if s.sensor == r.sensor && valid && s.t_ms <= r.t_ms && in_force.is_none_or(|f| s.t_ms >= f.t_ms)
            {
                in_force = Some(s);
            }
        }
        let Some(sp) = in_force else { continue };
        let wanted = match (sp.setpoint.mode, sp.setpoint.policy) {
            (Mode::Off, _) => {
                cycles.remove(&r.sensor);
                Command::Off
            }
            (Mode::Heat, Policy::Hysteresis) => {
                cycles.remove(&r.sensor);
                if r.temperature > sp.setpoint.desired + sp.setpoint.up_delta {
                    Command::Off
                } else if r.temperature < sp.setpoint.desired - sp.setpoint.down_delta {
                    Command::On
                } else {
                    continue;
                }
            }
            (Mode::Heat, Policy::Tpi(p)) => {
                let cycle_ms = p.cycle_s as i64 * 1000;
                let current = cycles
                    .get(&r.sensor)
                    .filter(|(start, _, version)| {
                        *version == sp.version
                            && r.t_ms >= *start
                            && r.t_ms.checked_sub(*start).is_some_and(|d| d < cycle_ms)
                    })
                    .copied();
                let (_, on_until, _) = current.unwrap_or_else(|| {
                    let desired = sp.setpoint.desired;
                    let outdoor = p.outdoor_sensor.and_then(|o| {
                        if o == r.sensor {
                            previous
                        } else {
                            latest.get(&o).copied()
                        }
                    });
                    let share = match outdoor {
                        Some(t_out) => p.k_int * (desired - r.temperature) + p.k_ext * (desired - t_out),
                        None => p.k_int * (desired - r.temperature),
                    }
                    .clamp(0.0, 1.0);
                    let mut on = (share * cycle_ms as f64).round() as i64;
                    if on < p.min_on_s as i64 * 1000 {
                        on = 0;
                    } else if cycle_ms - on < p.min_off_s as i64 * 1000 {
                        on = cycle_ms;
                    }
                    let started = (r.t_ms, r.t_ms.saturating_add(on), sp.version);
                    cycles.insert(r.sensor, started);
                    started
                });
                if r.t_ms < on_until {
                    Command::On
                } else {
                    Command::Off
                }
            }
        };
        let history = out.entry(r.sensor).or_default();
        if let Some(last) = history.last() {
            // The hold: the global dwell, and a heated TPI room's minimum time for the command in force.
            let min_s = match (sp.setpoint.mode, sp.setpoint.policy, last.command) {
                (Mode::Heat, Policy::Tpi(p), Command::On) => p.min_on_s,
                (Mode::Heat, Policy::Tpi(p), Command::Off) => p.min_off_s,
                _ => 0,
            };
            let hold_ms = config.min_dwell_ms.max(min_s as i64 * 1000);
            if last.command == wanted || r.t_ms - last.t_ms < hold_ms {
                continue;
            }
        }
        history.push(Expected {
            t_ms: r.t_ms,
            command: wanted,
            version: sp.version,
        });
    }
    out
}

/// The setpoint records that take effect, with the version each is in force under.
fn numbered(setpoints: &[LoggedSetpoint]) -> Vec<LoggedSetpoint> {
    let mut in_force: HashMap<SensorId, u64> = HashMap::new();
    let mut out = Vec::new();
    for s in setpoints {
        if s.version > (1 << 53) - 1 {
            continue;
        }
        let version = match (in_force.get(&s.sensor), s.version) {
            (None, 0) => 1,
            (None, v) => v,
            (Some(current), 0) => current + 1,
            (Some(current), v) if v > *current => v,
            (Some(_), _) => continue,
        };
        in_force.insert(s.sensor, version);
        out.push(LoggedSetpoint { version, ..*s });
    }
    out
}

/// Compares what a controller emitted with the reference, sensor by sensor; on a difference, says where the
/// first one is. `got` holds every command read back, per sensor in log order.
pub fn compare(
    expected: &HashMap<SensorId, Vec<Expected>>,
    got: &HashMap<SensorId, Vec<Expected>>,
) -> Result<(), String> {
    let mut sensors: Vec<SensorId> = expected.keys().chain(got.keys()).copied().collect();
    sensors.sort_unstable();
    sensors.dedup();
    let mut wrong = Vec::new();
    for sensor in &sensors {
        let (want, have) = (
            expected.get(sensor).map_or(&[][..], Vec::as_slice),
            got.get(sensor).map_or(&[][..], Vec::as_slice),
        );
        if want != have {
            let first = want
                .iter()
                .zip(have)
                .position(|(a, b)| a != b)
                .unwrap_or(want.len().min(have.len()));
            wrong.push(format!(
                "sensor {sensor}: expected {} commands, got {}; first difference at #{first}: expected {:?}, got {:?}",
                want.len(),
                have.len(),
                want.get(first),
                have.get(first)
            ));
        }
    }
    if wrong.is_empty() {
        return Ok(());
    }
    let total = wrong.len();
    wrong.truncate(5);
    Err(format!(
        "{total} of {} sensors differ from the reference:\n  {}",
        sensors.len(),
        wrong.join("\n  ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(sensor: SensorId, t_ms: TimeMs, desired: f64, version: u64) -> LoggedSetpoint {
        LoggedSetpoint {
            sensor,
            t_ms,
            setpoint: Setpoint::new(desired, 1.0, 1.0),
            version,
        }
    }

    fn r(sensor: SensorId, t_ms: TimeMs, temperature: f64) -> LoggedReading {
        LoggedReading {
            sensor,
            t_ms,
            temperature,
        }
    }

    /// Worked by hand: the reference must itself be right before it judges anything.
    #[test]
    fn the_reference_joins_as_of_the_readings_event_time() {
        let setpoints = [sp(1, 100, 20.0, 1), sp(1, 300, 30.0, 2), sp(2, 0, 20.0, 1)];
        let readings = [
            r(1, 50, 10.0),  // before any setpoint: nothing
            r(1, 100, 10.0), // v1: 10 < 19 → On
            r(1, 200, 25.0), // v1: 25 > 21 → Off
            r(1, 150, 10.0), // out of order: ignored
            r(1, 300, 25.0), // v2 (from 300): 25 < 29 → On
            r(1, 400, 30.5), // v2: inside the band → nothing
            r(2, 10, 22.0),  // sensor 2, v1: Off
        ];
        let got = expected_commands(&Config::default(), &setpoints, &readings);
        let e = |t_ms, command, version| Expected {
            t_ms,
            command,
            version,
        };
        assert_eq!(
            got[&1],
            vec![
                e(100, Command::On, 1),
                e(200, Command::Off, 1),
                e(300, Command::On, 2)
            ]
        );
        assert_eq!(got[&2], vec![e(10, Command::Off, 1)]);
        let dwell = Config {
            min_dwell_ms: 150,
            ..Config::default()
        };
        let got = expected_commands(&dwell, &setpoints, &readings);
        // 200 wants Off only 100 ms after the On; 300 wants On again, which is already in force.
        assert_eq!(got[&1], vec![e(100, Command::On, 1)]);
        assert!(compare(
            &expected_commands(&Config::default(), &setpoints, &readings),
            &got
        )
        .is_err());
    }

    /// TPI and mode off, worked by hand.
    #[test]
    fn the_reference_runs_tpi_cycles_and_mode_off() {
        use setpoint_control::Tpi;
        let tpi = |t_ms, version| {
            policy_of(
                Setpoint::new(20.0, 1.0, 1.0),
                Policy::Tpi(Tpi::new(10, 0.5)),
                t_ms,
                version,
            )
        };
        let setpoints = [
            tpi(0, 1),
            LoggedSetpoint {
                sensor: 1,
                t_ms: 25_000,
                setpoint: Setpoint::new(20.0, 1.0, 1.0).with_mode(Mode::Off),
                version: 2,
            },
        ];
        let readings = [
            r(1, 0, 19.0),      // cycle 0–10 s at 50 %: On until 5 s
            r(1, 4_000, 25.0),  // still On (the share is fixed for the cycle)
            r(1, 5_000, 10.0),  // Off from 5 s, however cold
            r(1, 10_000, 19.6), // new cycle at 20 %: On until 12 s
            r(1, 12_500, 19.6), // Off
            r(1, 20_000, 21.0), // new cycle at 0 %: Off already
            r(1, 25_000, 5.0),  // mode off: Off already, nothing
        ];
        let got = expected_commands(&Config::default(), &setpoints, &readings);
        let e = |t_ms, command| Expected {
            t_ms,
            command,
            version: 1,
        };
        assert_eq!(
            got[&1],
            vec![
                e(0, Command::On),
                e(5_000, Command::Off),
                e(10_000, Command::On),
                e(12_500, Command::Off)
            ]
        );
    }

    fn policy_of(setpoint: Setpoint, policy: Policy, t_ms: TimeMs, version: u64) -> LoggedSetpoint {
        LoggedSetpoint {
            sensor: 1,
            t_ms,
            setpoint: setpoint.with_policy(policy),
            version,
        }
    }
}
