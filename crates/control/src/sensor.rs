//! The state of one sensor and the single step function that decides its heater command.
//!
//! Both the live [`Controller`](crate::Controller) and the pure [`replay`](crate::replay) drive this same
//! function, which is why a what-if preview in the browser shows exactly what the server would have done.
//!
//! A sensor's setpoints are a short history of versions ordered by event time ([`SetpointHistory`]): a
//! reading is decided with the version in force at the reading's event time (an as-of join, like Kafka
//! Streams' versioned-table join), so the answer does not depend on whether the setpoint or the reading was
//! fetched first.

use serde::{Deserialize, Serialize};

use crate::check_temperature;
use crate::policy::{Mode, Policy, TpiCycle};
use crate::{Command, Config, Decision, DecisionCause, Reading, ReadingError, SensorId, Setpoint, TimeMs};

/// Everything the controller remembers about one sensor. Serializable so a snapshot carries it across a
/// restart, a partition handover or into a browser tab.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SensorState {
    /// The setpoint versions that may still decide a reading, by event time.
    pub setpoints: SetpointHistory,
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
    /// When the newest accepted reading arrived, on the clock of the process deciding (not the device's):
    /// what the stale-sensor failsafe measures silence from. `None` where arrival and event time are one
    /// (a replay), and after a handover until the sensor's next reading.
    #[serde(default)]
    pub last_heard_ms: Option<TimeMs>,
    /// The TPI cycle in progress, when the room is under TPI.
    #[serde(default)]
    pub cycle: Option<TpiCycle>,
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

/// A setpoint version and the event time from which it is in force.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimedSetpoint {
    pub from_ms: TimeMs,
    pub setpoint: VersionedSetpoint,
}

/// Most setpoint versions one sensor keeps. Versions are pruned as readings pass them (see
/// [`SetpointHistory::prune`]), so only versions dated after the sensor's newest reading accumulate: a tool
/// that writes setpoints far into the future, or a long silence of the sensor while its setpoint keeps
/// changing. Beyond this bound the oldest versions are dropped and counted.
pub const MAX_SETPOINT_VERSIONS: usize = 256;

/// One sensor's setpoint versions, ordered by event time (ties in arrival order).
///
/// The version in force for a reading at `t` is the newest one whose time is ≤ `t`. Because a reading older
/// than the newest one already decided is refused as out of order, a version superseded by another dated at
/// or before the newest reading can never decide anything again, and is dropped: the history holds the
/// version in force now plus the versions dated after the newest reading, at most
/// [`MAX_SETPOINT_VERSIONS`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SetpointHistory {
    versions: Vec<TimedSetpoint>,
}

impl SetpointHistory {
    /// Adds a version in force from `from_ms`. Returns how many old versions the bound pushed out.
    pub fn insert(&mut self, from_ms: TimeMs, setpoint: VersionedSetpoint) -> usize {
        let at = self.versions.partition_point(|v| v.from_ms <= from_ms);
        self.versions.insert(at, TimedSetpoint { from_ms, setpoint });
        let excess = self.versions.len().saturating_sub(MAX_SETPOINT_VERSIONS);
        self.versions.drain(..excess);
        excess
    }

    /// Replaces every version with one in force from the next reading on, whatever its time: the
    /// processing-order rule of the reference thermostat (and of a browser previewing a slider).
    pub fn replace(&mut self, setpoint: VersionedSetpoint) {
        self.versions.clear();
        self.versions.push(TimedSetpoint {
            from_ms: TimeMs::MIN,
            setpoint,
        });
    }

    /// The version in force at event time `t_ms`.
    #[inline]
    pub fn at(&self, t_ms: TimeMs) -> Option<VersionedSetpoint> {
        self.versions
            .iter()
            .rev()
            .find(|v| v.from_ms <= t_ms)
            .map(|v| v.setpoint)
    }

    /// The newest version: the one in force from now on, unless readings dated before it still arrive.
    pub fn latest(&self) -> Option<VersionedSetpoint> {
        self.versions.last().map(|v| v.setpoint)
    }

    /// Drops versions that no reading at or after `t_ms` can use. Never allocates.
    #[inline]
    pub fn prune(&mut self, t_ms: TimeMs) {
        let in_force = self.versions.partition_point(|v| v.from_ms <= t_ms);
        if in_force > 1 {
            self.versions.drain(..in_force - 1);
        }
    }

    /// Every version kept, oldest first.
    pub fn versions(&self) -> &[TimedSetpoint] {
        &self.versions
    }
}

/// What a controller must remember of a sensor's heater to carry on where another instance (or an earlier
/// run) stopped: persisted in the controller-state changelog and restored on a partition handover or a
/// restart, so the new owner neither repeats the last command nor breaks the minimum dwell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HeaterMemory {
    pub last_command: Option<Command>,
    pub last_change_ms: Option<TimeMs>,
    pub newest_ms: Option<TimeMs>,
    pub last_temperature: Option<f64>,
    pub stale: bool,
    /// The TPI cycle in progress: the next owner finishes it instead of starting its own.
    #[serde(default)]
    pub cycle: Option<TpiCycle>,
}

impl HeaterMemory {
    /// The memory with no time later than `latest_ms`: a changelog record written by a controller whose
    /// clock was wrong, or from a reading accepted before readings were checked for clock errors, would
    /// otherwise make every correctly dated reading of the sensor look out of order. Returns whether a time
    /// was clamped.
    pub fn clamped(self, latest_ms: TimeMs) -> (Self, bool) {
        let clamp = |t: Option<TimeMs>| t.map(|t| t.min(latest_ms));
        let clamped = Self {
            last_change_ms: clamp(self.last_change_ms),
            newest_ms: clamp(self.newest_ms),
            // A cycle dated ahead moves back whole: its On keeps its length rather than lasting until the
            // future end a wrong clock wrote.
            cycle: self.cycle.map(|c| {
                let shift = c.start_ms.saturating_sub(latest_ms).max(0);
                TpiCycle {
                    start_ms: c.start_ms - shift,
                    on_until_ms: c.on_until_ms.saturating_sub(shift),
                    ..c
                }
            }),
            ..self
        };
        (clamped, clamped != self)
    }
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
    /// The newest setpoint version (the one a live reading is decided with).
    pub fn setpoint(&self) -> Option<VersionedSetpoint> {
        self.setpoints.latest()
    }

    /// What must survive a handover: the heater half of the state, without setpoints and counters.
    pub fn heater_memory(&self) -> HeaterMemory {
        HeaterMemory {
            last_command: self.last_command,
            last_change_ms: self.last_change_ms,
            newest_ms: self.newest_ms,
            last_temperature: self.last_temperature,
            stale: self.stale,
            cycle: self.cycle,
        }
    }

    /// Takes over the heater state another controller persisted; setpoints stay as they are.
    pub fn restore_heater(&mut self, memory: HeaterMemory) {
        self.last_command = memory.last_command;
        self.last_change_ms = memory.last_change_ms;
        self.newest_ms = memory.newest_ms;
        self.last_temperature = memory.last_temperature;
        self.stale = memory.stale;
        self.cycle = memory.cycle;
        self.last_heard_ms = None;
        if let Some(newest) = memory.newest_ms {
            self.setpoints.prune(newest);
        }
    }

    /// The whole reference rule plus our extensions, for one reading of this sensor.
    ///
    /// Order matters: validation first (a bad reading must not touch state), then the out-of-order check,
    /// then bookkeeping that happens with or without a setpoint, then the band rule, dedup and dwell.
    ///
    /// `heard_ms` is when the reading arrived on the deciding process's clock (`None` in a replay, where
    /// the event time stands for it).
    pub fn step(
        &mut self,
        config: &Config,
        sensor: SensorId,
        reading: &Reading,
    ) -> Result<(ReadingOutcome, Option<Decision>), ReadingError> {
        self.step_heard(config, sensor, reading, None)
    }

    /// [`SensorState::step`] for a reading that arrived at `heard_ms` on the deciding process's clock.
    pub fn step_heard(
        &mut self,
        config: &Config,
        sensor: SensorId,
        reading: &Reading,
        heard_ms: Option<TimeMs>,
    ) -> Result<(ReadingOutcome, Option<Decision>), ReadingError> {
        self.step_with(config, sensor, reading, heard_ms, None)
    }

    /// The step itself. `outdoor` is the outdoor temperature a TPI policy with an outdoor term uses, when
    /// the caller knows it (the [`Controller`](crate::Controller) looks up the outdoor sensor's newest
    /// reading; unknown counts as no outdoor term).
    pub fn step_with(
        &mut self,
        config: &Config,
        sensor: SensorId,
        reading: &Reading,
        heard_ms: Option<TimeMs>,
        outdoor: Option<f64>,
    ) -> Result<(ReadingOutcome, Option<Decision>), ReadingError> {
        check_temperature(sensor, reading.temperature)?;
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
        self.last_heard_ms = heard_ms;

        self.setpoints.prune(reading.t_ms);
        let Some(active) = self.setpoints.at(reading.t_ms) else {
            return Ok((ReadingOutcome::Accepted, None));
        };
        let Some(wanted) = self.wanted(active, reading, outdoor) else {
            return Ok((ReadingOutcome::Accepted, None));
        };
        if self.last_command == Some(wanted) {
            return Ok((ReadingOutcome::Accepted, None));
        }
        if let (Some(changed), Some(last)) = (self.last_change_ms, self.last_command) {
            // Anti short-cycling: hold the current command until it has been in force for the dwell time
            // (and, under TPI, for the room's minimum on or off time: a new setpoint version starts a new
            // cycle at once, which must not cut an On shorter than the heater allows).
            // The first command ever has nothing to protect and goes out at once.
            let hold_ms = config.min_dwell_ms.max(active.setpoint.min_time_ms(last));
            if reading.t_ms.saturating_sub(changed) < hold_ms {
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

    /// What the room's mode and policy want for this reading (before dedup and dwell); `None` leaves the
    /// heater as it is (inside the hysteresis band).
    fn wanted(
        &mut self,
        active: VersionedSetpoint,
        reading: &Reading,
        outdoor: Option<f64>,
    ) -> Option<Command> {
        let sp = active.setpoint;
        let tpi = match (sp.mode, sp.policy) {
            (Mode::Off, _) => {
                self.cycle = None;
                return Some(Command::Off);
            }
            (Mode::Heat, Policy::Hysteresis) => {
                self.cycle = None;
                return if reading.temperature > sp.upper() {
                    Some(Command::Off)
                } else if reading.temperature < sp.lower() {
                    Some(Command::On)
                } else {
                    None
                };
            }
            (Mode::Heat, Policy::Tpi(tpi)) => tpi,
        };
        let cycle = match self.cycle {
            Some(c) if c.covers(reading.t_ms, active.version, tpi.cycle_ms()) => c,
            _ => {
                let on_ms = tpi.on_ms(sp.desired, reading.temperature, outdoor);
                let c = TpiCycle {
                    start_ms: reading.t_ms,
                    on_until_ms: reading.t_ms.saturating_add(on_ms),
                    version: active.version,
                };
                self.cycle = Some(c);
                c
            }
        };
        Some(if reading.t_ms < cycle.on_until_ms {
            Command::On
        } else {
            Command::Off
        })
    }

    /// Staleness check at time `now_ms`. A sensor under control that has been silent for longer than the
    /// timeout gets one failsafe Off (unless Off is already in force) and stays flagged until it reports again.
    /// Dwell does not hold back a failsafe: a silent sensor may mean an unwatched heater.
    ///
    /// Silence counts from when the newest reading *arrived* (`last_heard_ms`, the controller's clock), or
    /// from its event time where the two are one (a replay): a device's clock, right or wrong, can neither
    /// hold the failsafe back nor set it off.
    pub fn check_stale(&mut self, config: &Config, sensor: SensorId, now_ms: TimeMs) -> Option<Decision> {
        let timeout = config.stale_after_ms?;
        let last_seen = self.last_heard_ms.or(self.newest_ms)?;
        if self.stale || now_ms.saturating_sub(last_seen) <= timeout {
            return None;
        }
        self.stale = true;
        let active = self.setpoints.at(now_ms)?;
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

/// Whether the band rule acts on `reading` under `setpoint`: a sensor state with nothing but this setpoint
/// (no previous command, so no dwell and no dedup) is stepped once, and any decision means the reading is
/// outside the band. Asking the rule itself, rather than comparing with the band's edges, keeps "out of
/// band" (a dashboard card, the API's `filter=out_of_band`) the same as "the controller would switch",
/// whatever the rule becomes.
///
/// The band is the room's comfort band whatever its policy (TPI's duty cycle decides *how* it gets back
/// inside), so the rule asked is hysteresis; a room in mode off is never out of band.
pub fn band_acts_on(setpoint: Setpoint, reading: &Reading) -> bool {
    if setpoint.mode == Mode::Off {
        return false;
    }
    let mut state = SensorState::default();
    state.setpoints.replace(VersionedSetpoint {
        setpoint: setpoint.with_policy(Policy::Hysteresis),
        version: 0,
    });
    matches!(state.step(&Config::default(), 0, reading), Ok((_, Some(_))))
}
