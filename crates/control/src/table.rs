//! The setpoint table: which setpoint records take effect, and the value in force. One rule for every
//! reader of the setpoint stream — the controller's join, the bridge's hub, the scheduler — so they agree
//! on every sensor's versions whatever produced the records.
//!
//! **The log is the arbiter.** Several bridges may accept writes for one sensor at the same moment, each
//! checking the writer's `base_version` against its own view. No lock spans them; what they share is the
//! setpoint stream, whose records of one sensor every reader sees in the same order (one key, one
//! partition). So the stream decides: a conditional record takes effect only if its base is the version in
//! force *at its position in the stream*; otherwise every reader skips it, and the writer — which
//! acknowledges only after reading its own record back — answers `conflict`.
//!
//! **A record is checked before it is judged.** The stream may carry records of other producers (the
//! reference's tools, a gateway, a script): a record whose setpoint is outside the limits, whose event time
//! is further ahead of the reader's reference time than the allowed clock skew, whose version is beyond
//! [`MAX_VERSION`], whose strings are longer than their bounds, or which would add a sensor past the bound
//! is *refused*: it never takes effect and never advances a version, for any reader. Checking first is
//! what keeps the readers in agreement: a version advanced by a record the controller then refused would
//! make the bridge show one setpoint while the controller decides with another.
//!
//! A record says how it wants to be judged through `version` and `base`:
//!
//! | `version` | `base`        | meaning                                   | takes effect when                    |
//! |-----------|---------------|-------------------------------------------|--------------------------------------|
//! | 0         | —             | an unversioned tool (the reference's)     | always, numbered in force + 1        |
//! | v         | v − 1         | a conditional write                       | `v − 1` is in force                  |
//! | v         | v             | a restatement of the value in force       | never a change (see below)           |
//! | v         | —             | a versioned record of an older setpoint   | `v` is above the version in force    |
//!
//! The first valid record a reader sees for a sensor always takes effect: in a compacted stream the
//! versions before it may be gone, and in a complete one nothing can precede the first write.
//!
//! Compaction keeps only the newest record per sensor, which could be a skipped one; the writer whose record
//! lost therefore publishes a *restatement* of the value in force ([`SetpointTable::restatement`]), so the
//! newest record of a sensor is one that holds (a reader that has everything treats it as a no-op).

use std::collections::HashMap;

use crate::{Config, SensorId, Setpoint, SetpointError, TimeMs, TooManySensors};

/// The largest version a record may carry or be given: 2⁵³ − 1, the largest integer every JSON reader
/// (JavaScript's included) reads exactly. A record above it is refused; an unversioned record or a write
/// on a sensor at it is refused rather than wrapped.
pub const MAX_VERSION: u64 = (1 << 53) - 1;

/// Longest `author` a setpoint record may carry, in bytes: a token name (64) or `schedule:` and a schedule
/// name (64) fit; a longer one is refused with the record, since it would be repeated in every `hello` and
/// change history.
pub const MAX_AUTHOR_BYTES: usize = 128;

/// Longest `write_id`, in bytes. Ours are a writer prefix and a counter, well under it.
pub const MAX_WRITE_ID_BYTES: usize = 128;

/// A record of the setpoints stream (`tempset`), keyed by sensor: what every reader judges with
/// [`SetpointTable`], and what writers (bridges, schedulers) publish. `version` is assigned by the writer
/// (0 when an outside tool, such as the reference thermostat's, wrote it).
#[derive(Clone, Debug, PartialEq)]
pub struct SetpointChange {
    pub sensor: SensorId,
    pub setpoint: Setpoint,
    pub version: u64,
    pub author: String,
    pub t_ms: TimeMs,
    /// The version this write replaces: it takes effect only if that version is in force at its position
    /// in the stream. `None` for records without a condition.
    pub base_version: Option<u64>,
    /// Unique per write (empty for other tools' records), so the writer recognises its record when it
    /// reads it back and learns whether it won.
    pub write_id: String,
}

impl SetpointChange {
    /// A record of `setpoint` for `sensor` under `version`, by `author` at `t_ms`, without a condition.
    pub fn new(
        sensor: SensorId,
        setpoint: Setpoint,
        version: u64,
        author: impl Into<String>,
        t_ms: TimeMs,
    ) -> Self {
        Self {
            sensor,
            setpoint,
            version,
            author: author.into(),
            t_ms,
            base_version: None,
            write_id: String::new(),
        }
    }

    /// The same record, taking effect only if `base` is in force at its position, and recognisable by its
    /// writer as `write_id`.
    pub fn conditional(self, base: u64, write_id: impl Into<String>) -> Self {
        Self {
            base_version: Some(base),
            write_id: write_id.into(),
            ..self
        }
    }
}

/// What a setpoint record does to the table, as every reader decides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The record is the setpoint in force from now on, under `version`; `replaces` is the version it
    /// replaced (`None` for a sensor's first).
    Applied { version: u64, replaces: Option<u64> },
    /// A restatement of the version already in force: nothing changes.
    Restated { version: u64 },
    /// The record lost: `in_force` was in force at its position and it was not based on that.
    Skipped { in_force: u64 },
}

impl Verdict {
    /// The version in force after the record.
    pub fn in_force(self) -> u64 {
        match self {
            Verdict::Applied { version, .. } | Verdict::Restated { version } => version,
            Verdict::Skipped { in_force } => in_force,
        }
    }
}

/// Why a setpoint record was refused. A refused record changes nothing for any reader.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RecordError {
    #[error("sensor {sensor}: {error}")]
    InvalidSetpoint { sensor: SensorId, error: SetpointError },
    #[error(transparent)]
    Time(#[from] TimeError),
    #[error("sensor {sensor}: version {version} is above the largest version, {MAX_VERSION}")]
    VersionTooLarge { sensor: SensorId, version: u64 },
    #[error("sensor {sensor}: version {MAX_VERSION} is in force; no further version can be numbered")]
    VersionsExhausted { sensor: SensorId },
    #[error("sensor {sensor}: author is {len} bytes, more than {MAX_AUTHOR_BYTES}")]
    AuthorTooLong { sensor: SensorId, len: usize },
    #[error("sensor {sensor}: write id is {len} bytes, more than {MAX_WRITE_ID_BYTES}")]
    WriteIdTooLong { sensor: SensorId, len: usize },
    #[error(transparent)]
    TooManySensors(#[from] TooManySensors),
}

impl RecordError {
    /// A short name for metrics labels and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            RecordError::InvalidSetpoint { .. } => "invalid_setpoint",
            RecordError::Time(_) => "future_time",
            RecordError::VersionTooLarge { .. } | RecordError::VersionsExhausted { .. } => "version",
            RecordError::AuthorTooLong { .. } | RecordError::WriteIdTooLong { .. } => "too_long",
            RecordError::TooManySensors(_) => "too_many_sensors",
        }
    }
}

/// An event time too far ahead of the time it is judged at: a clock that is wrong. Such a time never
/// becomes a sensor's newest time or a setpoint's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "sensor {sensor}: event time {t_ms} ms is {ahead_ms} ms ahead of this process's reference time \
     {reference_ms} ms; at most {max_skew_ms} ms of clock skew is accepted (--max-clock-skew)"
)]
pub struct TimeError {
    pub sensor: SensorId,
    pub t_ms: TimeMs,
    pub reference_ms: TimeMs,
    pub ahead_ms: i64,
    pub max_skew_ms: i64,
}

/// When a record reached this process, which is what its event time is judged against.
///
/// The reference time is the earlier of the receiver's clock and the record's log time (Kafka's record
/// timestamp; the embedded bus's append time): live, the two agree; on a backlog replayed later, the log
/// time is what a live reader would have used, so a record refused live is refused on replay too, and every
/// reader of the log agrees. A log time ahead of the clock (a producer's clock setting Kafka's
/// `CreateTime`) is not trusted: the receiver's clock caps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// The receiving process's clock.
    pub now_ms: TimeMs,
    /// The record's time in the log.
    pub logged_ms: TimeMs,
}

impl Arrival {
    /// Arrived now, logged now (a live record, or a test).
    pub fn at(now_ms: TimeMs) -> Self {
        Self {
            now_ms,
            logged_ms: now_ms,
        }
    }

    pub fn reference_ms(&self) -> TimeMs {
        self.logged_ms.min(self.now_ms)
    }

    /// Refuses an event time more than `max_skew_ms` ahead of the reference time.
    pub fn check(&self, sensor: SensorId, t_ms: TimeMs, max_skew_ms: i64) -> Result<(), TimeError> {
        let reference_ms = self.reference_ms();
        let ahead_ms = t_ms.saturating_sub(reference_ms);
        if ahead_ms > max_skew_ms {
            return Err(TimeError {
                sensor,
                t_ms,
                reference_ms,
                ahead_ms,
                max_skew_ms,
            });
        }
        Ok(())
    }
}

/// The setpoint in force for a sensor.
#[derive(Clone, Debug, PartialEq)]
pub struct InForce {
    pub setpoint: Setpoint,
    pub version: u64,
    /// Event time from which it is in force.
    pub t_ms: TimeMs,
    pub author: String,
}

/// The setpoint table: the version and value in force per sensor, advanced by reading the setpoint stream
/// in order, and the checks every record passes first. Sans-IO: the reader passes each record's
/// [`Arrival`].
#[derive(Clone, Debug, Default)]
pub struct SetpointTable {
    config: Config,
    in_force: HashMap<SensorId, InForce>,
}

impl SetpointTable {
    /// A table judging records under `config`'s limits, clock skew and sensor bound.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            in_force: HashMap::new(),
        }
    }

    /// The setpoint in force for `sensor`; `None` before its first valid record.
    pub fn in_force(&self, sensor: SensorId) -> Option<&InForce> {
        self.in_force.get(&sensor)
    }

    /// The version in force for `sensor`; `None` before its first valid record.
    pub fn version(&self, sensor: SensorId) -> Option<u64> {
        self.in_force.get(&sensor).map(|f| f.version)
    }

    /// Every sensor with a setpoint in force, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (SensorId, &InForce)> {
        self.in_force.iter().map(|(s, f)| (*s, f))
    }

    pub fn len(&self) -> usize {
        self.in_force.len()
    }

    pub fn is_empty(&self) -> bool {
        self.in_force.is_empty()
    }

    /// The checks of a record, without judging it: what a writer runs before it publishes, and what every
    /// reader runs before the rule. Time is checked only with an [`Arrival`].
    pub fn check(&self, change: &SetpointChange, arrival: Option<Arrival>) -> Result<(), RecordError> {
        let sensor = change.sensor;
        self.config
            .limits
            .validate(&change.setpoint)
            .map_err(|error| RecordError::InvalidSetpoint { sensor, error })?;
        if let Some(arrival) = arrival {
            arrival.check(sensor, change.t_ms, self.config.max_clock_skew_ms)?;
        }
        if change.version > MAX_VERSION || change.base_version.is_some_and(|b| b > MAX_VERSION) {
            return Err(RecordError::VersionTooLarge {
                sensor,
                version: change.version.max(change.base_version.unwrap_or(0)),
            });
        }
        if change.author.len() > MAX_AUTHOR_BYTES {
            return Err(RecordError::AuthorTooLong {
                sensor,
                len: change.author.len(),
            });
        }
        if change.write_id.len() > MAX_WRITE_ID_BYTES {
            return Err(RecordError::WriteIdTooLong {
                sensor,
                len: change.write_id.len(),
            });
        }
        let known = self.in_force.contains_key(&sensor);
        self.config.admit(sensor, known, self.in_force.len())?;
        Ok(())
    }

    /// The version a write on `base` gets: `base + 1`, refused at [`MAX_VERSION`] instead of wrapping.
    pub fn next_version(sensor: SensorId, base: u64) -> Result<u64, RecordError> {
        base.checked_add(1)
            .filter(|v| *v <= MAX_VERSION)
            .ok_or(RecordError::VersionsExhausted { sensor })
    }

    /// Checks the next record of its sensor in stream order and judges it by the module's rule. A refused
    /// record changes nothing; otherwise the table advances.
    pub fn judge(&mut self, change: &SetpointChange, arrival: Arrival) -> Result<Verdict, RecordError> {
        self.check(change, Some(arrival))?;
        let sensor = change.sensor;
        let verdict = match self.in_force.get(&sensor).map(|f| f.version) {
            None => Verdict::Applied {
                version: change.version.max(1),
                replaces: None,
            },
            Some(cur) => {
                let applied = |version| Verdict::Applied {
                    version,
                    replaces: Some(cur),
                };
                match (change.version, change.base_version) {
                    (0, _) => applied(Self::next_version(sensor, cur)?),
                    (v, Some(b)) if b == v && v == cur => Verdict::Restated { version: cur },
                    (v, Some(b)) if b == cur && Some(v) == cur.checked_add(1) => applied(v),
                    (v, None) if v > cur => applied(v),
                    _ => Verdict::Skipped { in_force: cur },
                }
            }
        };
        if let Verdict::Applied { version, .. } = verdict {
            self.in_force.insert(
                sensor,
                InForce {
                    setpoint: change.setpoint,
                    version,
                    t_ms: change.t_ms,
                    author: change.author.clone(),
                },
            );
        }
        Ok(verdict)
    }

    /// A record that states the value in force again (`version = base_version = in force`), so that it is
    /// the newest record of its sensor: what a writer whose record lost publishes (see the module docs).
    pub fn restatement(&self, sensor: SensorId) -> Option<SetpointChange> {
        let f = self.in_force.get(&sensor)?;
        Some(
            SetpointChange::new(sensor, f.setpoint, f.version, f.author.clone(), f.t_ms)
                .conditional(f.version, ""),
        )
    }
}

#[cfg(test)]
mod tests;
