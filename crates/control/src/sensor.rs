//! The state of one sensor and the single step function that decides its heater command.
//!
//! Both the live [`Controller`](crate::Controller) and the pure [`replay`](crate::replay) drive this same
//! function, which is why a what-if preview in the browser shows exactly what the server would have done.

use serde::{Deserialize, Serialize};

use crate::{Command, Config, Decision, DecisionCause, Reading, ReadingError, SensorId, Setpoint, TimeMs};

/// Everything the controller remembers about one sensor. Serializable so a snapshot carries it across a
/// restart, a partition handover or into a browser tab.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SensorState {
    /// The setpoint in force and the version it was published with.
    pub setpoint: Option<VersionedSetpoint>,
    /// The last command emitted for this sensor; a new command is emitted only when it differs.
    pub last_command: Option<Command>,
    /// Event time of the reading (or tick) that emitted `last_command`; the dwell time counts from here.
    pub last_change_ms: Option<TimeMs>,
    /// Newest event time processed; an older reading arrives out of order and is ignored.
    pub newest_ms: Option<TimeMs>,
    /// Temperature of the newest accepted reading; a failsafe decision reports it.
    pub last_temperature: Option<f64>,
    /// Set when the sensor fell silent for longer than the stale timeout; cleared by its next reading.
    pub stale: bool,
    /// Readings accepted for this sensor (with or without a setpoint).
    pub readings: u64,
    /// Readings ignored because they were older than `newest_ms`.
    pub out_of_order: u64,
}

/// A setpoint together with the version it was published under, so every decision can say which setpoint
/// it was made with.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionedSetpoint {
    pub setpoint: Setpoint,
    pub version: u64,
}

/// What a reading did to a sensor's state, beyond a possible decision. Lets callers count outcomes without
/// the controller allocating anything per reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadingOutcome {
    /// Processed; the band rule ran (or there was no setpoint).
    Accepted,
    /// Older than a reading already processed for this sensor; ignored and counted.
    OutOfOrder,
}

impl SensorState {
    /// The whole reference rule plus our extensions, for one reading of this sensor.
    ///
    /// Order matters: validation first (a bad reading must not touch state), then the out-of-order check,
    /// then bookkeeping that happens with or without a setpoint, then the band rule, dedup and dwell.
    pub fn step(
        &mut self,
        config: &Config,
        sensor: SensorId,
        reading: &Reading,
    ) -> Result<(ReadingOutcome, Option<Decision>), ReadingError> {
        if !reading.temperature.is_finite() {
            return Err(ReadingError::NonFiniteTemperature {
                sensor,
                value: reading.temperature,
            });
        }
        if reading.temperature < crate::ABSOLUTE_ZERO_C {
            return Err(ReadingError::BelowAbsoluteZero {
                sensor,
                value: reading.temperature,
            });
        }
        if let Some(newest) = self.newest_ms {
            if reading.t_ms < newest {
                self.out_of_order += 1;
                return Ok((ReadingOutcome::OutOfOrder, None));
            }
        }
        self.newest_ms = Some(reading.t_ms);
        self.last_temperature = Some(reading.temperature);
        self.readings += 1;
        self.stale = false;

        let Some(active) = self.setpoint else {
            return Ok((ReadingOutcome::Accepted, None));
        };
        let sp = active.setpoint;
        let wanted = if reading.temperature > sp.upper() {
            Command::Off
        } else if reading.temperature < sp.lower() {
            Command::On
        } else {
            return Ok((ReadingOutcome::Accepted, None));
        };
        if self.last_command == Some(wanted) {
            return Ok((ReadingOutcome::Accepted, None));
        }
        if let (Some(changed), Some(_)) = (self.last_change_ms, self.last_command) {
            // Anti short-cycling: hold the current command until it has been in force for the dwell time.
            // The first command ever has nothing to protect and goes out at once.
            if reading.t_ms.saturating_sub(changed) < config.min_dwell_ms {
                return Ok((ReadingOutcome::Accepted, None));
            }
        }
        self.last_command = Some(wanted);
        self.last_change_ms = Some(reading.t_ms);
        Ok((
            ReadingOutcome::Accepted,
            Some(Decision {
                sensor,
                command: wanted,
                t_ms: reading.t_ms,
                temperature: reading.temperature,
                setpoint_version: active.version,
                cause: DecisionCause::Band,
            }),
        ))
    }

    /// Staleness check at time `now_ms`. A sensor under control that has been silent for longer than the
    /// timeout gets one failsafe Off (unless Off is already in force) and stays flagged until it reports again.
    /// Dwell does not hold back a failsafe: a silent sensor may mean an unwatched heater.
    pub fn check_stale(&mut self, config: &Config, sensor: SensorId, now_ms: TimeMs) -> Option<Decision> {
        let timeout = config.stale_after_ms?;
        let last_seen = self.newest_ms?;
        if self.stale || now_ms.saturating_sub(last_seen) <= timeout {
            return None;
        }
        self.stale = true;
        let active = self.setpoint?;
        if self.last_command == Some(Command::Off) {
            return None;
        }
        self.last_command = Some(Command::Off);
        self.last_change_ms = Some(now_ms);
        Some(Decision {
            sensor,
            command: Command::Off,
            t_ms: now_ms,
            temperature: self.last_temperature.unwrap_or(f64::NAN),
            setpoint_version: active.version,
            cause: DecisionCause::Failsafe,
        })
    }
}
