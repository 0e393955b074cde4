//! `Scheduler`: the rule, in-flight writes, several instances on one stream, and DST with a simulated clock.

mod common;

use std::collections::BTreeMap;

use common::*;
use setpoint_control::{Arrival, SensorId, Setpoint, SetpointTable, TimeMs, Verdict};
use setpoint_schedule::{ScheduleError, Scheduler, SetpointChange, IN_FLIGHT_MS};
use setpoint_wire::schedule::{NextStep, Schedule};

const SP: fn(f64) -> Setpoint = |desired| Setpoint::new(desired, 0.5, 0.5);

/// The setpoints stream: every record in order, and the shared arbiter's verdicts.
#[derive(Default)]
struct Stream {
    log: Vec<SetpointChange>,
}

impl Stream {
    fn append(&mut self, r: SetpointChange) -> SetpointChange {
        self.log.push(r.clone());
        r
    }

    /// What a reader of the whole log ends with, per sensor: (version, setpoint, t_ms, author).
    fn in_force(records: &[SetpointChange]) -> BTreeMap<SensorId, (u64, Setpoint, TimeMs, String)> {
        let mut arbiter = SetpointTable::default();
        let mut out = BTreeMap::new();
        for r in records {
            if let Verdict::Applied { version, .. } =
                arbiter.judge(r, Arrival::at(r.t_ms)).expect("a valid record")
            {
                out.insert(r.sensor, (version, r.setpoint, r.t_ms, r.author.clone()));
            }
        }
        out
    }

    /// Compaction: only the newest record of each sensor, in their order.
    fn compacted(&self) -> Vec<SetpointChange> {
        let mut newest: BTreeMap<SensorId, usize> = BTreeMap::new();
        for (i, r) in self.log.iter().enumerate() {
            newest.insert(r.sensor, i);
        }
        let mut keep: Vec<usize> = newest.into_values().collect();
        keep.sort_unstable();
        keep.into_iter().map(|i| self.log[i].clone()).collect()
    }

    fn applied(&self) -> usize {
        let mut arbiter = SetpointTable::default();
        self.log
            .iter()
            .filter(|r| {
                matches!(
                    arbiter.judge(r, Arrival::at(r.t_ms)).expect("a valid record"),
                    Verdict::Applied { .. }
                )
            })
            .count()
    }
}

fn manual(sensor: SensorId, version: u64, t_ms: TimeMs, desired: f64) -> SetpointChange {
    SetpointChange::new(sensor, SP(desired), version, "bob", t_ms)
        .conditional(version - 1, format!("bridge-{version}"))
}

/// Days 06:00 → 21 °C, nights 22:00 → 17 °C, in UTC. 2026-01-05 is a Monday.
fn heat(sensors: &[SensorId]) -> Schedule {
    schedule(
        "heat",
        "UTC",
        vec![daily("06:00", 21.0), daily("22:00", 17.0)],
        sensors,
    )
}

fn step_record(
    sensor: SensorId,
    desired: f64,
    base: u64,
    t_ms: TimeMs,
    schedule: &str,
    write_id: &str,
) -> SetpointChange {
    SetpointChange::new(
        sensor,
        SP(desired),
        base + 1,
        format!("schedule:{schedule}"),
        t_ms,
    )
    .conditional(base, write_id)
}

#[test]
fn a_step_fires_once_and_not_again_once_its_record_is_back() {
    let mut s = Scheduler::new("a");
    s.on_schedule(&saved(heat(&[1]), 0)).expect("valid");
    s.on_setpoint(&manual(1, 1, ms("2026-01-05T05:00:00Z"), 19.0), 0);
    // The 19 °C set at 05:00 is newer than the 22:00 step of the night before: it holds.
    assert_eq!(s.poll(ms("2026-01-05T05:59:00Z")), vec![]);
    assert_eq!(
        s.next_wake(ms("2026-01-05T05:59:00Z")),
        Some(ms("2026-01-05T06:00:00Z"))
    );
    let six = ms("2026-01-05T06:00:00Z");
    let out = s.poll(six);
    assert_eq!(out, vec![step_record(1, 21.0, 1, six, "heat", "a-0")]);
    // In flight: not again, however often polled.
    assert_eq!(s.poll(six + 1), vec![]);
    assert_eq!(s.next_wake(six + 1), Some(six + IN_FLIGHT_MS));
    s.on_setpoint(&out[0], six + 5);
    for t in [six + 10, six + IN_FLIGHT_MS, ms("2026-01-05T21:59:59Z")] {
        assert_eq!(s.poll(t), vec![], "at {t}");
    }
    assert_eq!(s.next_wake(six + 10), Some(ms("2026-01-05T22:00:00Z")));
    let ten = ms("2026-01-05T22:00:00Z");
    assert_eq!(s.poll(ten), vec![step_record(1, 17.0, 2, ten, "heat", "a-1")]);
}

#[test]
fn a_manual_change_after_a_step_holds_until_the_next_step() {
    let mut s = Scheduler::new("a");
    s.on_schedule(&saved(heat(&[1]), 0)).expect("valid");
    s.on_setpoint(&manual(1, 1, ms("2026-01-05T05:00:00Z"), 19.0), 0);
    let six = ms("2026-01-05T06:00:00Z");
    let out = s.poll(six);
    s.on_setpoint(&out[0], six);
    // Bob turns it up at 08:00, after the 06:00 step.
    let eight = ms("2026-01-05T08:00:00Z");
    s.on_setpoint(&manual(1, 3, eight, 23.0), eight);
    let mut t = eight;
    while t < ms("2026-01-05T22:00:00Z") {
        assert_eq!(s.poll(t), vec![], "at {t}");
        t += MINUTE;
    }
    let ten = ms("2026-01-05T22:00:00Z");
    assert_eq!(s.poll(ten), vec![step_record(1, 17.0, 3, ten, "heat", "a-1")]);
}

#[test]
fn catching_up_after_downtime_applies_only_the_latest_missed_step() {
    // Down from Monday 05:00 to Wednesday 10:00: five steps were missed (Mon 06:00, 22:00, Tue 06:00,
    // 22:00, Wed 06:00). Only Wednesday's 06:00 (21 °C) is applied, once.
    let mut s = Scheduler::new("a");
    s.on_schedule(&saved(heat(&[1]), 0)).expect("valid");
    s.on_setpoint(&manual(1, 1, ms("2026-01-05T05:00:00Z"), 19.0), 0);
    let back = ms("2026-01-07T10:00:00Z");
    let out = s.poll(back);
    assert_eq!(out, vec![step_record(1, 21.0, 1, back, "heat", "a-0")]);
    s.on_setpoint(&out[0], back);
    assert_eq!(s.poll(back + MINUTE), vec![]);
    assert_eq!(s.next_wake(back + MINUTE), Some(ms("2026-01-07T22:00:00Z")));
}

#[test]
fn a_new_schedule_applies_its_current_step_unless_the_value_in_force_is_newer() {
    let mut s = Scheduler::new("a");
    // Sensor 1 set at 05:00 (before today's 06:00 step), sensor 2 at 07:00 (after it), sensor 3 never.
    s.on_setpoint(&manual(1, 1, ms("2026-01-05T05:00:00Z"), 19.0), 0);
    s.on_setpoint(&manual(2, 1, ms("2026-01-05T07:00:00Z"), 19.0), 0);
    assert_eq!(s.poll(ms("2026-01-05T11:00:00Z")), vec![], "no schedule yet");
    let noon = ms("2026-01-05T12:00:00Z");
    s.on_schedule(&saved(heat(&[3, 2, 1]), noon)).expect("valid");
    assert_eq!(s.next_wake(noon), Some(noon), "a new schedule is work to do now");
    assert_eq!(
        s.poll(noon),
        vec![
            step_record(1, 21.0, 1, noon, "heat", "a-0"),
            step_record(3, 21.0, 0, noon, "heat", "a-1")
        ]
    );
}

/// Runs schedulers `a` and `b` over one stream: both poll (b half a second later), their records are
/// appended in `order` and fed back to both, then both poll again. Returns the stream.
fn two_schedulers(a_first: bool) -> (Stream, Vec<SetpointChange>, Vec<SetpointChange>) {
    let mut a = Scheduler::new("a");
    let mut b = Scheduler::new("b");
    let mut stream = Stream::default();
    let first = stream.append(manual(1, 1, ms("2026-01-05T05:00:00Z"), 19.0));
    for s in [&mut a, &mut b] {
        s.on_schedule(&saved(heat(&[1, 2]), 0)).expect("valid");
        s.on_setpoint(&first, 0);
    }
    let six = ms("2026-01-05T06:00:00Z");
    let pa = a.poll(six);
    let pb = b.poll(six + 500);
    // Sensor 1 on base 1, sensor 2 (no setpoint yet) on base 0, by both.
    assert_eq!(
        pa,
        vec![
            step_record(1, 21.0, 1, six, "heat", "a-0"),
            step_record(2, 21.0, 0, six, "heat", "a-1")
        ]
    );
    assert_eq!(
        pb,
        vec![
            step_record(1, 21.0, 1, six + 500, "heat", "b-0"),
            step_record(2, 21.0, 0, six + 500, "heat", "b-1")
        ]
    );
    let (p1, p2) = if a_first { (&pa, &pb) } else { (&pb, &pa) };
    let appended: Vec<SetpointChange> = p1.iter().chain(p2).map(|p| stream.append(p.clone())).collect();
    for r in &appended {
        a.on_setpoint(r, six + 600);
        b.on_setpoint(r, six + 600);
    }
    let ra = a.poll(six + 700);
    let rb = b.poll(six + 700);
    for r in ra.iter().chain(&rb) {
        let r = stream.append(r.clone());
        a.on_setpoint(&r, six + 800);
        b.on_setpoint(&r, six + 800);
    }
    for t in [six + 900, six + IN_FLIGHT_MS + 1, ms("2026-01-05T21:59:00Z")] {
        assert_eq!(a.poll(t), vec![]);
        assert_eq!(b.poll(t), vec![]);
    }
    (stream, ra, rb)
}

#[test]
fn two_schedulers_on_one_stream_apply_each_step_once_and_the_loser_restates() {
    let six = ms("2026-01-05T06:00:00Z");
    for a_first in [true, false] {
        let (stream, ra, rb) = two_schedulers(a_first);
        // The manual record and one step record per sensor took effect; the two duplicates did not.
        assert_eq!(stream.applied(), 3, "a first: {a_first}");
        let (winner_t, loser) = if a_first {
            (six, (&ra, &rb))
        } else {
            (six + 500, (&rb, &ra))
        };
        assert_eq!(loser.0, &vec![], "the winner restates nothing");
        let restatement = |sensor, version| {
            SetpointChange::new(sensor, SP(21.0), version, "schedule:heat", winner_t).conditional(version, "")
        };
        assert_eq!(loser.1, &vec![restatement(1, 2), restatement(2, 1)]);
        // The restatements are the newest records: a reader of the compacted stream ends where a reader of
        // the whole stream does.
        let whole = Stream::in_force(&stream.log);
        assert_eq!(whole[&1], (2, SP(21.0), winner_t, "schedule:heat".to_string()));
        assert_eq!(whole[&2], (1, SP(21.0), winner_t, "schedule:heat".to_string()));
        assert_eq!(Stream::in_force(&stream.compacted()), whole);
    }
}

#[test]
fn a_failed_or_lost_write_fires_again_and_a_late_duplicate_is_harmless() {
    let mut s = Scheduler::new("a");
    s.on_schedule(&saved(heat(&[1]), 0)).expect("valid");
    s.on_setpoint(&manual(1, 1, ms("2026-01-05T05:00:00Z"), 19.0), 0);
    let six = ms("2026-01-05T06:00:00Z");
    let first = s.poll(six);
    assert_eq!(first, vec![step_record(1, 21.0, 1, six, "heat", "a-0")]);
    s.publish_failed(&["a-0".to_string(), "someone-else-7".to_string()]);
    let second = s.poll(six + 1_000);
    assert_eq!(second, vec![step_record(1, 21.0, 1, six + 1_000, "heat", "a-1")]);
    // This one is taken by the bus but never comes back: after 30 s it may fire again.
    assert_eq!(s.poll(six + 1_000 + IN_FLIGHT_MS - 1), vec![]);
    let t3 = six + 1_000 + IN_FLIGHT_MS;
    let third = s.poll(t3);
    assert_eq!(third, vec![step_record(1, 21.0, 1, t3, "heat", "a-2")]);
    // Both land after all: the first takes effect, the second is skipped and restated.
    s.on_setpoint(&second[0], t3 + 10);
    s.on_setpoint(&third[0], t3 + 20);
    let restated = s.poll(t3 + 30);
    assert_eq!(
        restated,
        vec![SetpointChange::new(1, SP(21.0), 2, "schedule:heat", six + 1_000).conditional(2, "")]
    );
    assert_eq!(s.poll(t3 + IN_FLIGHT_MS), vec![]);
}

#[test]
fn deleting_or_breaking_a_schedule_stops_its_steps() {
    let mut s = Scheduler::new("a");
    s.on_schedule(&saved(heat(&[1]), 0)).expect("valid");
    s.on_schedule(&saved(
        schedule("eve", "UTC", vec![daily("18:00", 20.0)], &[2]),
        0,
    ))
    .expect("valid");
    s.on_setpoint(&manual(1, 1, ms("2026-01-05T07:00:00Z"), 19.0), 0);
    s.on_setpoint(&manual(2, 1, ms("2026-01-05T07:00:00Z"), 19.0), 0);
    assert_eq!(s.poll(ms("2026-01-05T12:00:00Z")), vec![]);
    s.on_schedule(&deleted("heat", 0)).expect("a deletion is fine");
    // "eve" saved again with an unknown zone: refused, and the valid one it replaces stops too.
    let broken = schedule("eve", "Europe/Atlantis", vec![daily("18:00", 20.0)], &[2]);
    assert_eq!(
        s.on_schedule(&saved(broken, 0)),
        Err(ScheduleError::UnknownZone {
            zone: "Europe/Atlantis".into()
        })
    );
    assert!(s.program("heat").is_none() && s.program("eve").is_none());
    for t in [
        ms("2026-01-05T18:00:00Z"),
        ms("2026-01-05T22:00:00Z"),
        ms("2026-01-06T06:00:00Z"),
    ] {
        assert_eq!(s.poll(t), vec![], "at {t}");
    }
    assert_eq!(s.next_steps(ms("2026-01-06T06:00:00Z")), vec![]);
    assert_eq!(s.next_wake(ms("2026-01-06T06:00:00Z")), None);
}

#[test]
fn next_steps_give_each_sensor_its_earliest_next_step_and_the_tie_goes_to_the_greater_name() {
    let mut s = Scheduler::new("a");
    let day = schedule(
        "a-day",
        "UTC",
        vec![daily("06:00", 21.0), daily("22:00", 17.0)],
        &[1, 2],
    );
    let eve = schedule("b-eve", "UTC", vec![daily("18:00", 20.0)], &[2, 3]);
    let late = schedule("c-late", "UTC", vec![daily("22:00", 16.0)], &[2]);
    for sch in [day, eve, late] {
        s.on_schedule(&saved(sch, 0)).expect("valid");
    }
    for sensor in [1, 2, 3] {
        s.on_setpoint(&manual(sensor, 1, ms("2026-01-05T19:00:00Z"), 19.0), 0);
    }
    let seven_pm = ms("2026-01-05T19:00:00Z");
    assert_eq!(s.poll(seven_pm), vec![]);
    let next = |sensor, schedule: &str, at: &str, desired| NextStep {
        sensor,
        schedule: schedule.into(),
        at_ms: ms(at),
        desired,
        up_delta: 0.5,
        down_delta: 0.5,
        mode: None,
    };
    assert_eq!(
        s.next_steps(seven_pm),
        vec![
            next(1, "a-day", "2026-01-05T22:00:00Z", 17.0),
            // a-day and c-late both at 22:00: c-late, the greater name, is the one the rule applies.
            next(2, "c-late", "2026-01-05T22:00:00Z", 16.0),
            next(3, "b-eve", "2026-01-06T18:00:00Z", 20.0),
        ]
    );
    assert_eq!(s.next_wake(seven_pm), Some(ms("2026-01-05T22:00:00Z")));
    let ten = ms("2026-01-05T22:00:00Z");
    assert_eq!(
        s.poll(ten),
        vec![
            step_record(1, 17.0, 1, ten, "a-day", "a-0"),
            step_record(2, 16.0, 1, ten, "c-late", "a-1")
        ]
    );
}

/// A scheduler whose records come back at once, polled every minute from `from` to `to`: the instants and
/// setpoints it applied.
fn applied_minute_by_minute(zone: &str, from: &str, to: &str) -> Vec<(TimeMs, f64)> {
    let mut s = Scheduler::new("a");
    s.on_schedule(&saved(
        schedule(
            "dst",
            zone,
            vec![daily("02:30", 18.0), daily("07:00", 21.0)],
            &[1],
        ),
        0,
    ))
    .expect("valid");
    let (from, to) = (ms(from), ms(to));
    // A manual setpoint at the start, so what fires is what the walk crosses.
    s.on_setpoint(&manual(1, 1, from, 19.0), from);
    let mut out = Vec::new();
    let mut t = from;
    while t <= to {
        for p in s.poll(t) {
            s.on_setpoint(&p, t);
            out.push((p.t_ms, p.setpoint.desired));
        }
        t += MINUTE;
    }
    out
}

#[test]
fn across_both_berlin_dst_changes_each_step_fires_exactly_once_at_its_instant() {
    assert_eq!(
        applied_minute_by_minute("Europe/Berlin", "2026-03-28T00:00:00Z", "2026-03-30T23:59:00Z"),
        vec![
            (ms("2026-03-28T01:30:00Z"), 18.0), // 02:30 CET
            (ms("2026-03-28T06:00:00Z"), 21.0), // 07:00 CET
            (ms("2026-03-29T01:30:00Z"), 18.0), // 02:30 skipped → 03:30 CEST
            (ms("2026-03-29T05:00:00Z"), 21.0), // 07:00 CEST
            (ms("2026-03-30T00:30:00Z"), 18.0),
            (ms("2026-03-30T05:00:00Z"), 21.0),
        ]
    );
    assert_eq!(
        applied_minute_by_minute("Europe/Berlin", "2026-10-24T00:00:00Z", "2026-10-26T23:59:00Z"),
        vec![
            (ms("2026-10-24T00:30:00Z"), 18.0), // 02:30 CEST
            (ms("2026-10-24T05:00:00Z"), 21.0), // 07:00 CEST
            (ms("2026-10-25T00:30:00Z"), 18.0), // 02:30 CEST; not again at 02:30 CET (01:30 UTC)
            (ms("2026-10-25T06:00:00Z"), 21.0), // 07:00 CET
            (ms("2026-10-26T01:30:00Z"), 18.0),
            (ms("2026-10-26T06:00:00Z"), 21.0),
        ]
    );
}

#[test]
fn across_new_york_dst_changes_each_step_fires_exactly_once_at_its_instant() {
    assert_eq!(
        applied_minute_by_minute("America/New_York", "2026-03-07T00:00:00Z", "2026-03-09T23:59:00Z"),
        vec![
            (ms("2026-03-07T07:30:00Z"), 18.0), // 02:30 EST
            (ms("2026-03-07T12:00:00Z"), 21.0), // 07:00 EST
            (ms("2026-03-08T07:30:00Z"), 18.0), // 02:30 skipped → 03:30 EDT
            (ms("2026-03-08T11:00:00Z"), 21.0), // 07:00 EDT
            (ms("2026-03-09T06:30:00Z"), 18.0),
            (ms("2026-03-09T11:00:00Z"), 21.0),
        ]
    );
    assert_eq!(
        applied_minute_by_minute("America/New_York", "2026-10-31T00:00:00Z", "2026-11-02T23:59:00Z"),
        vec![
            (ms("2026-10-31T06:30:00Z"), 18.0), // 02:30 EDT
            (ms("2026-10-31T11:00:00Z"), 21.0), // 07:00 EDT
            (ms("2026-11-01T07:30:00Z"), 18.0), // 02:30 EST (after the 01:00–02:00 fold)
            (ms("2026-11-01T12:00:00Z"), 21.0), // 07:00 EST
            (ms("2026-11-02T07:30:00Z"), 18.0),
            (ms("2026-11-02T12:00:00Z"), 21.0),
        ]
    );
}

#[test]
fn an_unscheduled_sensor_is_never_written() {
    let mut s = Scheduler::new("a");
    s.on_schedule(&saved(heat(&[1]), 0)).expect("valid");
    s.on_setpoint(&manual(9, 1, ms("2026-01-01T00:00:00Z"), 19.0), 0);
    let out = s.poll(ms("2026-01-05T12:00:00Z"));
    assert_eq!(out.iter().map(|p| p.sensor).collect::<Vec<_>>(), vec![1]);
    assert_eq!(s.next_steps(ms("2026-01-05T12:00:00Z")).len(), 1);
}

#[test]
fn ten_thousand_sensors_fire_together_and_then_cost_nothing_until_the_next_step() {
    let sensors: Vec<SensorId> = (0..10_000).collect();
    let mut s = Scheduler::new("a");
    s.on_schedule(&saved(heat(&sensors), 0)).expect("valid");
    let six = ms("2026-01-05T06:00:00Z");
    let out = s.poll(six);
    assert_eq!(out.len(), 10_000);
    assert!(out
        .iter()
        .all(|p| p.version == 1 && p.base_version == Some(0) && p.setpoint == SP(21.0)));
    for p in &out {
        s.on_setpoint(p, six + 100);
    }
    // Everything settled: nothing is judged again until 22:00.
    assert_eq!(s.poll(six + 200), vec![]);
    assert_eq!(s.next_wake(six + 200), Some(ms("2026-01-05T22:00:00Z")));
    assert_eq!(s.poll(ms("2026-01-05T22:00:00Z")).len(), 10_000);
}

#[test]
fn a_clock_that_goes_back_fires_nothing_already_applied() {
    let mut s = Scheduler::new("a");
    s.on_schedule(&saved(heat(&[1]), 0)).expect("valid");
    let ten = ms("2026-01-05T22:00:00Z");
    let out = s.poll(ten);
    s.on_setpoint(&out[0], ten);
    // The clock steps back an hour (before the 22:00 step): the value in force (set at 22:00) is newer than
    // the 06:00 step now latest, so nothing is written; at 22:00 again it is not older than that step.
    assert_eq!(s.poll(ten - 60 * MINUTE), vec![]);
    assert_eq!(s.poll(ten), vec![]);
}

/// A step may set the mode (off at night, heat in the morning); a step that sets none keeps the room's
/// mode and policy, so a TPI room stays TPI when a schedule moves its target.
#[test]
fn a_step_sets_the_mode_and_keeps_what_it_does_not_set() {
    use setpoint_control::{Mode, Policy, Tpi};
    let mut s = Scheduler::new("a");
    let night_off = setpoint_wire::schedule::ScheduleStep {
        mode: Some(Mode::Off),
        ..daily("22:00", 17.0)
    };
    let morning = setpoint_wire::schedule::ScheduleStep {
        mode: Some(Mode::Heat),
        ..daily("06:00", 21.0)
    };
    s.on_schedule(&saved(
        schedule("heat", "UTC", vec![morning, night_off], &[1, 2]),
        0,
    ))
    .expect("valid");
    let tpi = SP(19.0).with_policy(Policy::Tpi(Tpi::new(600, 0.6)));
    let five = ms("2026-01-05T05:00:00Z");
    s.on_setpoint(
        &SetpointChange::new(1, tpi, 1, "bob", five).conditional(0, "bridge-1"),
        five,
    );
    s.on_setpoint(&manual(2, 1, five, 19.0), five);
    let six = ms("2026-01-05T06:00:00Z");
    let out = s.poll(six);
    let by_sensor: BTreeMap<SensorId, Setpoint> = out.iter().map(|r| (r.sensor, r.setpoint)).collect();
    assert_eq!(
        by_sensor[&1],
        SP(21.0).with_policy(Policy::Tpi(Tpi::new(600, 0.6)))
    );
    assert_eq!(by_sensor[&2], SP(21.0));
    for r in &out {
        s.on_setpoint(r, six);
    }
    let ten = ms("2026-01-05T22:00:00Z");
    let out = s.poll(ten);
    let by_sensor: BTreeMap<SensorId, Setpoint> = out.iter().map(|r| (r.sensor, r.setpoint)).collect();
    assert_eq!(
        by_sensor[&1],
        SP(17.0)
            .with_mode(Mode::Off)
            .with_policy(Policy::Tpi(Tpi::new(600, 0.6)))
    );
    assert_eq!(by_sensor[&2], SP(17.0).with_mode(Mode::Off));
}
