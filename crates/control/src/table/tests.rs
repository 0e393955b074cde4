//! The setpoint table's rule and its refusals.

use super::*;
use crate::Limits;

const NOW: TimeMs = 1_700_000_000_000;

fn record(sensor: SensorId, version: u64, base: Option<u64>) -> SetpointChange {
    SetpointChange {
        sensor,
        setpoint: Setpoint::new(20.0, 1.0, 1.0),
        version,
        author: String::new(),
        t_ms: NOW,
        base_version: base,
        write_id: String::new(),
    }
}

fn judge(t: &mut SetpointTable, sensor: SensorId, version: u64, base: Option<u64>) -> Verdict {
    t.judge(&record(sensor, version, base), Arrival::at(NOW))
        .expect("valid record")
}

#[test]
fn of_two_writes_on_the_same_base_the_first_in_the_stream_wins() {
    let mut a = SetpointTable::default();
    assert_eq!(
        judge(&mut a, 1, 1, Some(0)),
        Verdict::Applied {
            version: 1,
            replaces: None
        }
    );
    assert_eq!(
        judge(&mut a, 1, 2, Some(1)),
        Verdict::Applied {
            version: 2,
            replaces: Some(1)
        }
    );
    assert_eq!(judge(&mut a, 1, 2, Some(1)), Verdict::Skipped { in_force: 2 });
    assert_eq!(a.version(1), Some(2));
    // Another sensor is judged on its own.
    assert!(matches!(judge(&mut a, 2, 1, Some(0)), Verdict::Applied { .. }));
}

#[test]
fn unversioned_records_always_apply_and_are_numbered_in_order() {
    let mut a = SetpointTable::default();
    assert_eq!(judge(&mut a, 7, 0, None).in_force(), 1);
    assert_eq!(judge(&mut a, 7, 0, None).in_force(), 2);
    // A conditional write on the number every reader gave the tool's record.
    assert!(matches!(
        judge(&mut a, 7, 3, Some(2)),
        Verdict::Applied { version: 3, .. }
    ));
}

#[test]
fn a_restatement_changes_nothing_for_a_reader_that_has_everything() {
    let mut a = SetpointTable::default();
    judge(&mut a, 1, 1, Some(0));
    judge(&mut a, 1, 2, Some(1));
    assert_eq!(judge(&mut a, 1, 2, Some(1)), Verdict::Skipped { in_force: 2 });
    let restated = a.restatement(1).expect("in force");
    assert_eq!((restated.version, restated.base_version), (2, Some(2)));
    assert_eq!(
        a.judge(&restated, Arrival::at(NOW)),
        Ok(Verdict::Restated { version: 2 })
    );
    // A restatement of a version that is no longer in force is skipped like any stale record.
    judge(&mut a, 1, 3, Some(2));
    assert_eq!(judge(&mut a, 1, 2, Some(2)), Verdict::Skipped { in_force: 3 });
}

#[test]
fn after_compaction_the_first_record_seen_is_in_force() {
    let mut a = SetpointTable::default();
    assert_eq!(
        judge(&mut a, 1, 9, Some(9)),
        Verdict::Applied {
            version: 9,
            replaces: None
        }
    );
    assert!(matches!(
        judge(&mut a, 1, 10, Some(9)),
        Verdict::Applied { version: 10, .. }
    ));
}

#[test]
fn versioned_records_without_a_base_apply_only_above_the_version_in_force() {
    let mut a = SetpointTable::default();
    judge(&mut a, 1, 3, None);
    assert_eq!(judge(&mut a, 1, 3, None), Verdict::Skipped { in_force: 3 });
    assert_eq!(judge(&mut a, 1, 2, None), Verdict::Skipped { in_force: 3 });
    assert!(matches!(
        judge(&mut a, 1, 5, None),
        Verdict::Applied { version: 5, .. }
    ));
}

#[test]
fn a_conditional_write_that_skips_a_version_is_refused() {
    let mut a = SetpointTable::default();
    judge(&mut a, 1, 1, Some(0));
    assert_eq!(judge(&mut a, 1, 3, Some(1)), Verdict::Skipped { in_force: 1 });
}

/// Each refusal leaves the table as it was: no version advanced, the value in force unchanged, and a
/// first record refused does not make the sensor known.
#[test]
fn a_refused_record_changes_nothing_for_any_reader() {
    let config = Config {
        limits: Limits {
            desired_max: 30.0,
            ..Limits::default()
        },
        max_sensors: 2,
        ..Config::default()
    };
    let mut t = SetpointTable::new(config);
    let hot = SetpointChange {
        setpoint: Setpoint::new(900.0, 1.0, 1.0),
        ..record(1, 0, None)
    };
    assert!(matches!(
        t.judge(&hot, Arrival::at(NOW)),
        Err(RecordError::InvalidSetpoint { .. })
    ));
    assert!(t.in_force(1).is_none(), "a refused first record is not in force");
    judge(&mut t, 1, 4, None);
    let before = t.in_force(1).cloned();
    let ten_years = 10 * 365 * 24 * 3_600_000;
    let refused = [
        hot.clone(),
        SetpointChange {
            t_ms: NOW + ten_years,
            ..record(1, 0, None)
        },
        record(1, u64::MAX, None),
        record(1, 5, Some(u64::MAX)),
        SetpointChange {
            author: "a".repeat(MAX_AUTHOR_BYTES + 1),
            ..record(1, 0, None)
        },
        SetpointChange {
            write_id: "w".repeat(MAX_WRITE_ID_BYTES + 1),
            ..record(1, 5, Some(4))
        },
    ];
    for r in &refused {
        assert!(t.judge(r, Arrival::at(NOW)).is_err(), "{r:?}");
        assert_eq!(t.in_force(1).cloned(), before, "{r:?}");
    }
    // Within the skew is fine; the bound on sensors holds for new ones only.
    let soon = SetpointChange {
        t_ms: NOW + config.max_clock_skew_ms,
        ..record(1, 5, Some(4))
    };
    assert!(matches!(
        t.judge(&soon, Arrival::at(NOW)),
        Ok(Verdict::Applied { version: 5, .. })
    ));
    judge(&mut t, 2, 1, None);
    assert_eq!(
        t.judge(&record(3, 1, None), Arrival::at(NOW)),
        Err(RecordError::TooManySensors(TooManySensors { sensor: 3, max: 2 }))
    );
    assert!(matches!(
        judge(&mut t, 2, 0, None),
        Verdict::Applied { version: 2, .. }
    ));
}

#[test]
fn versions_stop_at_the_largest_instead_of_wrapping() {
    let mut t = SetpointTable::default();
    judge(&mut t, 1, MAX_VERSION, None);
    assert_eq!(
        t.judge(&record(1, 0, None), Arrival::at(NOW)),
        Err(RecordError::VersionsExhausted { sensor: 1 })
    );
    assert_eq!(t.version(1), Some(MAX_VERSION));
    assert_eq!(
        SetpointTable::next_version(1, MAX_VERSION),
        Err(RecordError::VersionsExhausted { sensor: 1 })
    );
    assert_eq!(SetpointTable::next_version(1, 41), Ok(42));
}

#[test]
fn a_backlog_is_judged_by_log_time_so_a_late_reader_agrees_with_a_live_one() {
    let t = SetpointTable::default();
    let skew = Config::default().max_clock_skew_ms;
    let ahead = SetpointChange {
        t_ms: NOW + skew + 1,
        ..record(1, 0, None)
    };
    let live = Arrival::at(NOW);
    let an_hour_later = Arrival {
        now_ms: NOW + 3_600_000,
        logged_ms: NOW,
    };
    assert!(t.check(&ahead, Some(live)).is_err());
    assert!(t.check(&ahead, Some(an_hour_later)).is_err());
    // A log time ahead of the receiver's clock is not trusted.
    let forged = Arrival {
        now_ms: NOW,
        logged_ms: NOW + 3_600_000,
    };
    assert!(t.check(&ahead, Some(forged)).is_err());
}
