//! `Program`: validation, and step instants in UTC and across both DST changes of 2026.

mod common;

use common::*;
use setpoint_control::{Limits, SetpointError, SetpointField, TimeMs};
use setpoint_schedule::{Program, ScheduleError, StepAt};
use setpoint_wire::schedule::{Schedule, Weekday::*, MAX_SCHEDULE_SENSORS, MAX_SCHEDULE_STEPS};

fn compile(s: &Schedule) -> Result<Program, ScheduleError> {
    Program::compile(s, &Limits::default())
}

fn ok(s: &Schedule) -> Program {
    compile(s).expect("valid schedule")
}

fn err(s: &Schedule) -> ScheduleError {
    compile(s).expect_err("invalid schedule")
}

#[test]
fn each_kind_of_invalid_schedule_is_refused_with_its_step_and_field() {
    let good = || schedule("office", "UTC", vec![daily("07:00", 21.0)], &[1]);

    let mut s = good();
    s.name = "a b".into();
    assert_eq!(err(&s), ScheduleError::BadName { name: "a b".into() });

    let mut s = good();
    s.zone = "Mars/Olympus_Mons".into();
    let e = err(&s);
    assert_eq!(
        e,
        ScheduleError::UnknownZone {
            zone: "Mars/Olympus_Mons".into()
        }
    );
    assert!(
        e.to_string()
            .starts_with("zone: unknown time zone \"Mars/Olympus_Mons\""),
        "{e}"
    );

    let mut s = good();
    s.steps.clear();
    assert_eq!(err(&s), ScheduleError::NoSteps);

    let mut s = good();
    s.steps = (0..=MAX_SCHEDULE_STEPS)
        .map(|i| step(&[Mon], &format!("{:02}:{:02}", i / 60 % 24, i % 60), 20.0))
        .collect();
    assert_eq!(
        err(&s),
        ScheduleError::TooManySteps {
            count: 1_001,
            max: 1_000
        }
    );

    let mut s = good();
    s.sensors = (0..=MAX_SCHEDULE_SENSORS as i32).collect();
    assert_eq!(
        err(&s),
        ScheduleError::TooManySensors {
            count: 10_001,
            max: 10_000
        }
    );
    // Duplicates are one sensor each: 10,000 distinct ids listed twice are allowed.
    s.sensors = (0..MAX_SCHEDULE_SENSORS as i32)
        .chain(0..MAX_SCHEDULE_SENSORS as i32)
        .collect();
    assert_eq!(ok(&s).sensors().len(), 10_000);

    let mut s = good();
    s.steps.push(step(&[], "08:00", 20.0));
    let e = err(&s);
    assert_eq!(e, ScheduleError::NoDays { step: 1 });
    assert_eq!(e.to_string(), "step 1: days must list at least one day");

    for bad in ["7:00", "24:00", "12:60", "12:00:60", "noon", ""] {
        let mut s = good();
        s.steps[0].time = bad.into();
        assert_eq!(
            err(&s),
            ScheduleError::BadTime {
                step: 0,
                time: bad.into()
            },
            "{bad:?}"
        );
    }

    // "07:00:00" is the same time of day as "07:00".
    let mut s = good();
    s.steps = vec![
        step(&[Mon, Tue], "07:00", 21.0),
        step(&[Wed, Tue], "07:00:00", 19.0),
    ];
    let e = err(&s);
    assert_eq!(
        e,
        ScheduleError::DuplicateStep {
            step: 1,
            first: 0,
            day: "tue",
            time: "07:00:00".into()
        }
    );
    assert_eq!(e.to_string(), "step 1: tue at 07:00:00 is already step 0");

    let mut s = good();
    s.steps.push(daily("09:00", 20.0));
    s.steps.push(daily("10:00", 200.0));
    let e = err(&s);
    assert_eq!(
        e,
        ScheduleError::Setpoint {
            step: 2,
            source: SetpointError::OutOfRange {
                field: SetpointField::Desired,
                value: 200.0,
                min: -50.0,
                max: 150.0
            }
        }
    );
    assert_eq!(
        e.to_string(),
        "step 2: desired must be between -50 and 150 (got 200)"
    );
    s.steps[2].desired = f64::NAN;
    assert!(matches!(
        err(&s),
        ScheduleError::Setpoint {
            step: 2,
            source: SetpointError::NotFinite {
                field: SetpointField::Desired
            }
        }
    ));
    // The installation's limits decide, not the defaults: 21 °C (step 0) is fine by default, not here.
    s.steps[2].desired = 20.0;
    assert!(compile(&s).is_ok());
    let strict = Limits {
        desired_min: 5.0,
        desired_max: 20.5,
        max_delta: 5.0,
    };
    assert!(matches!(
        Program::compile(&s, &strict),
        Err(ScheduleError::Setpoint { step: 0, .. })
    ));

    // A step listing a day twice means that day once.
    let mut s = good();
    s.steps = vec![step(&[Mon, Mon], "07:00", 21.0)];
    assert!(compile(&s).is_ok());
}

#[test]
fn zones_resolve_by_iana_name_and_utc_needs_no_database() {
    for zone in ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"] {
        let p = ok(&schedule("z", zone, vec![daily("07:00", 21.0)], &[]));
        assert_eq!(p.zone(), zone);
    }
}

#[test]
fn utc_instants_follow_days_and_times() {
    let p = ok(&schedule(
        "office",
        "UTC",
        vec![
            step(&[Mon, Tue, Wed, Thu, Fri], "06:30", 21.0),
            step(&[Sat, Sun], "08:00", 20.0),
            daily("22:00:30", 17.0),
        ],
        &[3, 1, 3],
    ));
    assert_eq!(p.sensors(), &[1, 3]);
    let at = |s: Option<StepAt>| s.map(|s| (s.at_ms, s.step, s.setpoint.desired));
    // 2026-01-05 is a Monday.
    let mon_noon = ms("2026-01-05T12:00:00Z");
    assert_eq!(
        at(p.latest_at_or_before(mon_noon)),
        Some((ms("2026-01-05T06:30:00Z"), 0, 21.0))
    );
    assert_eq!(
        at(p.next_after(mon_noon)),
        Some((ms("2026-01-05T22:00:30Z"), 2, 17.0))
    );
    // At the instant itself the step is in force, and the next one is strictly after.
    let step_instant = ms("2026-01-05T06:30:00Z");
    assert_eq!(
        at(p.latest_at_or_before(step_instant)),
        Some((step_instant, 0, 21.0))
    );
    assert_eq!(
        at(p.latest_at_or_before(step_instant - 1)),
        Some((ms("2026-01-04T22:00:30Z"), 2, 17.0))
    );
    assert_eq!(
        at(p.next_after(step_instant)),
        Some((ms("2026-01-05T22:00:30Z"), 2, 17.0))
    );
    // Saturday 07:00: Friday night's 22:00:30 is in force, Saturday's 08:00 comes next.
    let sat = ms("2026-01-10T07:00:00Z");
    assert_eq!(
        at(p.latest_at_or_before(sat)),
        Some((ms("2026-01-09T22:00:30Z"), 2, 17.0))
    );
    assert_eq!(at(p.next_after(sat)), Some((ms("2026-01-10T08:00:00Z"), 1, 20.0)));
    // Sunday 23:00 → Monday 06:30 next.
    let sun = ms("2026-01-11T23:00:00Z");
    assert_eq!(at(p.next_after(sun)), Some((ms("2026-01-12T06:30:00Z"), 0, 21.0)));
}

#[test]
fn a_weekly_step_is_found_a_full_week_away_in_both_directions() {
    let p = ok(&schedule("weekly", "UTC", vec![step(&[Wed], "12:00", 20.0)], &[]));
    // Wednesday 2026-01-07 11:59: the last one was a week before, the next is in a minute.
    let t = ms("2026-01-07T11:59:00Z");
    assert_eq!(
        p.latest_at_or_before(t).map(|s| s.at_ms),
        Some(ms("2025-12-31T12:00:00Z"))
    );
    assert_eq!(p.next_after(t).map(|s| s.at_ms), Some(ms("2026-01-07T12:00:00Z")));
    let t = ms("2026-01-07T12:00:01Z");
    assert_eq!(p.next_after(t).map(|s| s.at_ms), Some(ms("2026-01-14T12:00:00Z")));
}

/// Walks `latest_at_or_before` minute by minute over [from, to] and returns every change of the step in
/// force as (instant, step), checking on the way that `next_after` announced each change.
fn fires(p: &Program, from: &str, to: &str) -> Vec<(TimeMs, usize)> {
    let (from, to) = (ms(from), ms(to));
    let mut in_force = p.latest_at_or_before(from).expect("a step in force");
    let mut announced = p.next_after(from).expect("a next step");
    let mut out = Vec::new();
    let mut t = from;
    while t < to {
        t += MINUTE;
        let now = p.latest_at_or_before(t).expect("a step in force");
        if now != in_force {
            assert!(
                t - MINUTE < now.at_ms && now.at_ms <= t,
                "a step from the past at {t}: {now:?}"
            );
            assert_eq!(now, announced, "next_after announced another step");
            out.push((now.at_ms, now.step));
            in_force = now;
        }
        announced = p.next_after(t).expect("a next step");
        assert!(announced.at_ms > t);
    }
    out
}

fn two_thirty_and_seven(zone: &str) -> Program {
    ok(&schedule(
        "night-and-day",
        zone,
        vec![daily("02:30", 18.0), daily("07:00", 21.0)],
        &[1],
    ))
}

#[test]
fn berlin_spring_forward_moves_the_gap_time_forward_and_fires_it_once() {
    // CET (+01:00) until 2026-03-29 01:00 UTC, CEST (+02:00) after. 02:30 does not exist on the 29th:
    // compatible reads it with the offset before the gap, 02:30+01:00 = 01:30 UTC (= 03:30 CEST).
    let p = two_thirty_and_seven("Europe/Berlin");
    let expected = vec![
        (ms("2026-03-28T01:30:00Z"), 0), // 02:30 CET
        (ms("2026-03-28T06:00:00Z"), 1), // 07:00 CET
        (ms("2026-03-29T01:30:00Z"), 0), // 02:30 does not exist → 03:30 CEST
        (ms("2026-03-29T05:00:00Z"), 1), // 07:00 CEST
        (ms("2026-03-30T00:30:00Z"), 0), // 02:30 CEST
        (ms("2026-03-30T05:00:00Z"), 1), // 07:00 CEST
    ];
    assert_eq!(
        fires(&p, "2026-03-28T00:00:00Z", "2026-03-31T00:00:00Z"),
        expected
    );
}

#[test]
fn berlin_fall_back_fires_the_repeated_time_once_at_its_first_occurrence() {
    // CEST (+02:00) until 2026-10-25 01:00 UTC, CET (+01:00) after: 02:00–03:00 local happens twice, 02:30
    // at 00:30 UTC (CEST) and at 01:30 UTC (CET). Only the first fires.
    let p = two_thirty_and_seven("Europe/Berlin");
    let expected = vec![
        (ms("2026-10-24T00:30:00Z"), 0), // 02:30 CEST
        (ms("2026-10-24T05:00:00Z"), 1), // 07:00 CEST
        (ms("2026-10-25T00:30:00Z"), 0), // 02:30 CEST, the first of two
        (ms("2026-10-25T06:00:00Z"), 1), // 07:00 CET
        (ms("2026-10-26T01:30:00Z"), 0), // 02:30 CET
        (ms("2026-10-26T06:00:00Z"), 1), // 07:00 CET
    ];
    assert_eq!(
        fires(&p, "2026-10-24T00:00:00Z", "2026-10-27T00:00:00Z"),
        expected
    );
}

#[test]
fn new_york_changes_at_other_dates_and_hours_follow_the_same_rules() {
    // EST (−05:00) until 2026-03-08 07:00 UTC (02:00 EST → 03:00 EDT), EDT (−04:00) until 2026-11-01
    // 06:00 UTC (02:00 EDT → 01:00 EST). The gap is 02:00–03:00 and the fold 01:00–02:00.
    let p = ok(&schedule(
        "ny",
        "America/New_York",
        vec![daily("01:30", 17.0), daily("02:30", 19.0)],
        &[1],
    ));
    let spring = vec![
        (ms("2026-03-07T06:30:00Z"), 0), // 01:30 EST
        (ms("2026-03-07T07:30:00Z"), 1), // 02:30 EST
        (ms("2026-03-08T06:30:00Z"), 0), // 01:30 EST
        (ms("2026-03-08T07:30:00Z"), 1), // 02:30 does not exist → 03:30 EDT
        (ms("2026-03-09T05:30:00Z"), 0), // 01:30 EDT
        (ms("2026-03-09T06:30:00Z"), 1), // 02:30 EDT
    ];
    assert_eq!(fires(&p, "2026-03-07T00:00:00Z", "2026-03-10T00:00:00Z"), spring);
    let autumn = vec![
        (ms("2026-10-31T05:30:00Z"), 0), // 01:30 EDT
        (ms("2026-10-31T06:30:00Z"), 1), // 02:30 EDT
        (ms("2026-11-01T05:30:00Z"), 0), // 01:30 EDT, the first of two (not 06:30 UTC, EST)
        (ms("2026-11-01T07:30:00Z"), 1), // 02:30 EST
        (ms("2026-11-02T06:30:00Z"), 0), // 01:30 EST
        (ms("2026-11-02T07:30:00Z"), 1), // 02:30 EST
    ];
    assert_eq!(fires(&p, "2026-10-31T00:00:00Z", "2026-11-03T00:00:00Z"), autumn);
}

#[test]
fn a_gap_time_moved_onto_another_step_loses_to_the_later_local_time() {
    // On 2026-03-29 in Berlin 02:30 becomes 03:30 CEST = 01:30 UTC, the instant of the 03:30 step too.
    // The later local time (the 03:30 step, index 1) is in force, and next_after announces that one.
    let p = ok(&schedule(
        "tie",
        "Europe/Berlin",
        vec![step(&[Sun], "02:30", 18.0), step(&[Sun], "03:30", 22.0)],
        &[],
    ));
    let t = ms("2026-03-29T01:30:00Z");
    let latest = p.latest_at_or_before(t).expect("in force");
    assert_eq!((latest.at_ms, latest.step, latest.setpoint.desired), (t, 1, 22.0));
    assert_eq!(p.next_after(t - 1), Some(latest));
    // A week later both exist again, an hour apart: 02:30 CEST = 00:30 UTC, 03:30 CEST = 01:30 UTC.
    assert_eq!(
        p.next_after(t).map(|s| (s.at_ms, s.step)),
        Some((ms("2026-04-05T00:30:00Z"), 0))
    );
}
