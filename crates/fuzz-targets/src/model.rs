//! A reference model of the control rule, written from the specification rather than from the code, and
//! the stateful check that drives the real `Controller` and the model side by side.
//!
//! The model is deliberately naive — a `BTreeMap` of plain structs, no hasher, no dedup tricks — so that a
//! disagreement points at the optimized controller, not at a second clever implementation.

use std::collections::BTreeMap;

use setpoint_control::{
    replay, Command, Config, Controller, Decision, DecisionCause, Limits, Reading, ReadingError, SensorId,
    Setpoint, TimeMs, VersionedSetpoint,
};

/// What the model remembers per sensor.
#[derive(Clone, Debug, Default)]
struct Sensor {
    setpoint: Option<(Setpoint, u64)>,
    last: Option<Command>,
    changed_at: Option<TimeMs>,
    newest: Option<TimeMs>,
    temperature: Option<f64>,
    stale: bool,
}

/// The model refused a reading.
#[derive(Debug)]
pub struct Refused;

/// The rule, spelled out:
/// * a reading that is not a finite number, or is below absolute zero, is refused and changes nothing;
/// * a reading older than the newest one seen for its sensor is ignored;
/// * above desired + up → Off, below desired − down → On, inside the band → nothing;
/// * a command equal to the last one is not repeated;
/// * a change is held back until the last one has been in force `min_dwell_ms` (the first never is);
/// * with `stale_after_ms`, a sensor silent longer than that gets one failsafe Off, unless Off is in force;
/// * release forgets everything about a sensor except its setpoint.
#[derive(Clone, Debug, Default)]
pub struct Model {
    config: Config,
    sensors: BTreeMap<SensorId, Sensor>,
}

impl Model {
    pub fn new(config: Config) -> Self {
        Self {
            config,
            sensors: BTreeMap::new(),
        }
    }

    fn valid(&self, sp: &Setpoint) -> bool {
        let l = self.config.limits;
        let finite = sp.desired.is_finite() && sp.up_delta.is_finite() && sp.down_delta.is_finite();
        finite
            && sp.desired >= l.desired_min
            && sp.desired <= l.desired_max
            && sp.up_delta >= 0.0
            && sp.up_delta <= l.max_delta
            && sp.down_delta >= 0.0
            && sp.down_delta <= l.max_delta
    }

    pub fn setpoint(&mut self, sensor: SensorId, sp: Setpoint, version: u64) -> bool {
        if !self.valid(&sp) {
            return false;
        }
        self.sensors.entry(sensor).or_default().setpoint = Some((sp, version));
        true
    }

    /// `Err(Refused)` when refused; otherwise the command emitted, if any, with the setpoint version.
    pub fn reading(
        &mut self,
        sensor: SensorId,
        t: TimeMs,
        temperature: f64,
    ) -> Result<Option<(Command, u64)>, Refused> {
        if !temperature.is_finite() || temperature < -273.15 {
            return Err(Refused);
        }
        let dwell = self.config.min_dwell_ms;
        let s = self.sensors.entry(sensor).or_default();
        if let Some(newest) = s.newest {
            if t < newest {
                return Ok(None);
            }
        }
        s.newest = Some(t);
        s.temperature = Some(temperature);
        s.stale = false;
        let Some((sp, version)) = s.setpoint else {
            return Ok(None);
        };
        let wanted = if temperature > sp.desired + sp.up_delta {
            Command::Off
        } else if temperature < sp.desired - sp.down_delta {
            Command::On
        } else {
            return Ok(None);
        };
        if s.last == Some(wanted) {
            return Ok(None);
        }
        if let (Some(_), Some(changed)) = (s.last, s.changed_at) {
            if t - changed < dwell {
                return Ok(None);
            }
        }
        s.last = Some(wanted);
        s.changed_at = Some(t);
        Ok(Some((wanted, version)))
    }

    /// Failsafe Offs at `now`, by sensor id.
    pub fn tick(&mut self, now: TimeMs) -> Vec<(SensorId, u64)> {
        let Some(timeout) = self.config.stale_after_ms else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (&id, s) in &mut self.sensors {
            let Some(newest) = s.newest else { continue };
            if s.stale || now - newest <= timeout {
                continue;
            }
            s.stale = true;
            let Some((_, version)) = s.setpoint else { continue };
            if s.last == Some(Command::Off) {
                continue;
            }
            s.last = Some(Command::Off);
            s.changed_at = Some(now);
            out.push((id, version));
        }
        out
    }

    pub fn release(&mut self, sensor: SensorId) {
        if let Some(s) = self.sensors.get_mut(&sensor) {
            *s = Sensor {
                setpoint: s.setpoint,
                ..Sensor::default()
            };
        }
    }
}

/// Reads the fuzzer's bytes as a sequence of choices; runs out gracefully.
struct Choices<'a>(&'a [u8]);

impl Choices<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn f64(&mut self) -> f64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.byte().unwrap_or(0);
        }
        f64::from_le_bytes(b)
    }
    fn sensor(&mut self) -> SensorId {
        [0, 1, 2, -1, SensorId::MAX, SensorId::MIN][usize::from(self.byte().unwrap_or(0)) % 6]
    }
    fn temperature(&mut self) -> f64 {
        const T: [f64; 15] = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -300.0,
            1e308,
            -0.0,
            0.0,
            18.0,
            19.0,
            19.5,
            20.0,
            20.5,
            21.0,
            22.0,
            25.0,
        ];
        match usize::from(self.byte().unwrap_or(0)) % 16 {
            15 => self.f64(),
            i => T[i],
        }
    }
    fn setpoint(&mut self) -> Setpoint {
        const D: [f64; 8] = [20.0, 19.5, -60.0, f64::NAN, 150.0, 151.0, 0.0, -50.0];
        const DELTA: [f64; 8] = [0.0, 0.5, 1.0, -1.0, 50.0, 51.0, f64::INFINITY, 2.0];
        let mut pick = |table: &[f64; 8]| table[usize::from(self.byte().unwrap_or(0)) % 8];
        Setpoint::new(pick(&D), pick(&DELTA), pick(&DELTA))
    }
}

fn same_temperature(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// Drives a `Controller` and the [`Model`] with the same operations and panics at the first disagreement.
pub fn check(data: &[u8]) {
    let mut c = Choices(data);
    let shape = c.byte().unwrap_or(0);
    let config = Config {
        limits: Limits::default(),
        min_dwell_ms: [0, 50, 500][usize::from(shape) % 3],
        stale_after_ms: [None, Some(100), Some(1_000)][usize::from(shape / 3) % 3],
        ..Config::default()
    };
    let mut real = Controller::new(config);
    let mut model = Model::new(config);
    let mut now: TimeMs = 0;
    let mut version = 0u64;
    let mut steps = 0;
    while let Some(op) = c.byte() {
        steps += 1;
        if steps > 2_000 {
            break;
        }
        match op % 8 {
            0..=2 => {
                let sensor = c.sensor();
                now += (i64::from(c.byte().unwrap_or(32)) - 32) * 10;
                let temperature = c.temperature();
                let got = real.on_reading(
                    sensor,
                    Reading {
                        t_ms: now,
                        temperature,
                    },
                );
                let want = model.reading(sensor, now, temperature);
                match (&got, &want) {
                    (Err(e), Err(Refused)) => assert!(matches!(
                        e,
                        ReadingError::NonFiniteTemperature { .. } | ReadingError::BelowAbsoluteZero { .. }
                    )),
                    (Ok(None), Ok(None)) => {}
                    (Ok(Some(d)), Ok(Some((command, version)))) => {
                        assert_eq!(
                            (d.sensor, d.command, d.t_ms, d.setpoint_version, d.cause),
                            (sensor, *command, now, *version, DecisionCause::Band)
                        );
                        assert!(same_temperature(d.temperature, temperature));
                    }
                    _ => {
                        panic!("reading {sensor} @{now} = {temperature}: controller {got:?}, model {want:?}")
                    }
                }
            }
            3 => {
                let sensor = c.sensor();
                let sp = c.setpoint();
                version += 1;
                let got = real.apply_setpoint(sensor, sp, version).is_ok();
                let want = model.setpoint(sensor, sp, version);
                assert_eq!(got, want, "setpoint {sp:?}");
            }
            4 => {
                now += i64::from(c.byte().unwrap_or(0)) * 10;
                let got: Vec<(SensorId, Command, TimeMs, u64, DecisionCause)> = real
                    .tick(now)
                    .iter()
                    .map(|d| (d.sensor, d.command, d.t_ms, d.setpoint_version, d.cause))
                    .collect();
                let want: Vec<_> = model
                    .tick(now)
                    .into_iter()
                    .map(|(s, v)| (s, Command::Off, now, v, DecisionCause::Failsafe))
                    .collect();
                assert_eq!(got, want, "tick @{now}");
            }
            5 => {
                let sensor = c.sensor();
                real.release(sensor);
                model.release(sensor);
            }
            6 => {
                // A snapshot restored elsewhere (another instance, a browser tab) continues identically.
                real = Controller::restore(real.snapshot());
            }
            _ => {
                // What-if preview: replaying readings under a proposed setpoint from the current state gives
                // what the live controller would decide — checked against a copy of the model.
                let sensor = c.sensor();
                let sp = c.setpoint();
                let n = c.byte().unwrap_or(0) % 8;
                let mut t = now;
                let readings: Vec<Reading> = (0..n)
                    .map(|_| {
                        t += (i64::from(c.byte().unwrap_or(32)) - 32) * 10;
                        Reading {
                            t_ms: t,
                            temperature: c.temperature(),
                        }
                    })
                    .collect();
                let initial = real.sensor(sensor).cloned().unwrap_or_default();
                let proposed = VersionedSetpoint {
                    setpoint: sp,
                    version: version + 1,
                };
                let got = replay(&config, sensor, &initial, proposed, &readings, &[]);
                let mut copy = model.clone();
                if copy.setpoint(sensor, sp, version + 1) {
                    let want: Vec<(Command, TimeMs)> = readings
                        .iter()
                        .filter_map(|r| match copy.reading(sensor, r.t_ms, r.temperature) {
                            Ok(Some((command, _))) => Some((command, r.t_ms)),
                            _ => None,
                        })
                        .collect();
                    let got: Vec<(Command, TimeMs)> = got
                        .expect("valid setpoint")
                        .iter()
                        .map(|d: &Decision| (d.command, d.t_ms))
                        .collect();
                    assert_eq!(got, want, "replay of {readings:?} under {sp:?}");
                } else {
                    assert!(got.is_err(), "replay accepted an invalid {sp:?}");
                }
            }
        }
    }
}
