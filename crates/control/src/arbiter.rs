//! Which setpoint records take effect: the log is the arbiter.
//!
//! Several bridges may accept writes for one sensor at the same moment, each checking the writer's
//! `base_version` against its own view. No lock spans them; what they share is the setpoint stream, whose
//! records of one sensor every reader sees in the same order (one key, one partition). So the stream
//! decides: a conditional record takes effect only if its base is the version in force *at its position in
//! the stream*; otherwise every reader skips it, by this one rule, and the writer — which acknowledges only
//! after reading its own record back — answers `conflict`. Controllers, bridges and (through the bridges)
//! browsers therefore agree on every sensor's version history without talking to each other.
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
//! The first record a reader sees for a sensor always takes effect: in a compacted stream the versions
//! before it may be gone, and in a complete one nothing can precede the first write.
//!
//! Compaction keeps only the newest record per sensor, which could be a skipped one; the writer whose record
//! lost therefore publishes a *restatement* of the value in force behind it, so the newest record of a
//! sensor is one that holds (a reader that has everything treats it as a no-op).

use std::collections::HashMap;

use crate::{SensorId, Setpoint, TimeMs};

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

/// The version in force per sensor, advanced by reading the setpoint stream in order. Sans-IO and cheap: one
/// integer per sensor.
#[derive(Clone, Debug, Default)]
pub struct VersionArbiter {
    in_force: HashMap<SensorId, u64>,
}

impl VersionArbiter {
    pub fn new() -> Self {
        Self::default()
    }

    /// The version in force for `sensor`; `None` before its first record.
    pub fn version(&self, sensor: SensorId) -> Option<u64> {
        self.in_force.get(&sensor).copied()
    }

    /// Judges the next record of `sensor` in stream order and advances the table. See the module table.
    pub fn judge(&mut self, sensor: SensorId, version: u64, base: Option<u64>) -> Verdict {
        let current = self.in_force.get(&sensor).copied();
        let verdict = match current {
            None => Verdict::Applied {
                version: version.max(1),
                replaces: None,
            },
            Some(cur) => {
                let applied = |version| Verdict::Applied {
                    version,
                    replaces: Some(cur),
                };
                match (version, base) {
                    (0, _) => applied(cur + 1),
                    (v, Some(b)) if b == v && v == cur => Verdict::Restated { version: cur },
                    (v, Some(b)) if b == cur && v == cur + 1 => applied(v),
                    (v, None) if v > cur => applied(v),
                    _ => Verdict::Skipped { in_force: cur },
                }
            }
        };
        self.in_force.insert(sensor, verdict.in_force());
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn of_two_writes_on_the_same_base_the_first_in_the_stream_wins() {
        let mut a = VersionArbiter::new();
        assert_eq!(
            a.judge(1, 1, Some(0)),
            Verdict::Applied {
                version: 1,
                replaces: None
            }
        );
        assert_eq!(
            a.judge(1, 2, Some(1)),
            Verdict::Applied {
                version: 2,
                replaces: Some(1)
            }
        );
        assert_eq!(a.judge(1, 2, Some(1)), Verdict::Skipped { in_force: 2 });
        assert_eq!(a.version(1), Some(2));
        // Another sensor is judged on its own.
        assert!(matches!(a.judge(2, 1, Some(0)), Verdict::Applied { .. }));
    }

    #[test]
    fn unversioned_records_always_apply_and_are_numbered_in_order() {
        let mut a = VersionArbiter::new();
        assert_eq!(a.judge(7, 0, None).in_force(), 1);
        assert_eq!(a.judge(7, 0, None).in_force(), 2);
        // A conditional write on the number every reader gave the tool's record.
        assert!(matches!(
            a.judge(7, 3, Some(2)),
            Verdict::Applied { version: 3, .. }
        ));
    }

    #[test]
    fn a_restatement_changes_nothing_for_a_reader_that_has_everything() {
        let mut a = VersionArbiter::new();
        a.judge(1, 1, Some(0));
        a.judge(1, 2, Some(1));
        assert_eq!(a.judge(1, 2, Some(1)), Verdict::Skipped { in_force: 2 });
        assert_eq!(a.judge(1, 2, Some(2)), Verdict::Restated { version: 2 });
        // A restatement of a version that is no longer in force is skipped like any stale record.
        a.judge(1, 3, Some(2));
        assert_eq!(a.judge(1, 2, Some(2)), Verdict::Skipped { in_force: 3 });
    }

    #[test]
    fn after_compaction_the_first_record_seen_is_in_force() {
        // Only the newest record of the sensor survived; its base is gone.
        let mut a = VersionArbiter::new();
        assert_eq!(
            a.judge(1, 9, Some(9)),
            Verdict::Applied {
                version: 9,
                replaces: None
            }
        );
        assert!(matches!(
            a.judge(1, 10, Some(9)),
            Verdict::Applied { version: 10, .. }
        ));
    }

    #[test]
    fn versioned_records_without_a_base_apply_only_above_the_version_in_force() {
        let mut a = VersionArbiter::new();
        a.judge(1, 3, None);
        assert_eq!(a.judge(1, 3, None), Verdict::Skipped { in_force: 3 });
        assert_eq!(a.judge(1, 2, None), Verdict::Skipped { in_force: 3 });
        assert!(matches!(a.judge(1, 5, None), Verdict::Applied { version: 5, .. }));
    }

    #[test]
    fn a_conditional_write_that_skips_a_version_is_refused() {
        let mut a = VersionArbiter::new();
        a.judge(1, 1, Some(0));
        assert_eq!(a.judge(1, 3, Some(1)), Verdict::Skipped { in_force: 1 });
    }
}

/// A record of the setpoints stream (`tempset`), keyed by sensor: what every reader judges with
/// [`VersionArbiter`], and what writers (bridges, schedulers) publish. `version` is assigned by the writer
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
