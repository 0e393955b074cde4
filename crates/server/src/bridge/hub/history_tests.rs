//! The history's bounds: the fine rooms within their budget whatever arrives, coarse rooms within their fixed
//! size, what is kept always a thinned copy of what was flushed, and the change history within its budget.

use std::collections::HashMap;

use proptest::prelude::*;
use setpoint_control::{Command, Decision, DecisionCause, Reading, SensorId, SensorReading, Setpoint};
use setpoint_wire::ws::SetpointChangeEntry;

use super::{History, HubOptions};
use crate::bridge::hub::room::{COARSE_DECISIONS, COARSE_READINGS};

fn decision(sensor: SensorId, t_ms: i64, on: bool) -> Decision {
    Decision {
        sensor,
        command: if on { Command::On } else { Command::Off },
        t_ms,
        temperature: 18.0,
        setpoint_version: 1,
        cause: DecisionCause::Band,
    }
}

fn options(budget: usize) -> HubOptions {
    HubOptions {
        backfill_ms: 60_000,
        backfill_max_per_sensor: 600,
        fine_budget_bytes: budget,
        changes_budget: 50,
    }
}

#[derive(Clone, Debug)]
enum Step {
    /// A reading of a room, this many ms after the previous step.
    Reading(SensorId, i64),
    Decision(SensorId, bool),
    Flush,
    View(Vec<SensorId>),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..12i32, 1..2_000i64).prop_map(|(s, dt)| Step::Reading(s, dt)),
        1 => (0..12i32, any::<bool>()).prop_map(|(s, on)| Step::Decision(s, on)),
        2 => Just(Step::Flush),
        1 => prop::collection::vec(0..12i32, 0..4).prop_map(Step::View),
    ]
}

/// Checks what `history` keeps against every reading flushed and decision added so far.
fn check(
    history: &History,
    flushed: &HashMap<SensorId, Vec<Reading>>,
    decided: &HashMap<SensorId, Vec<Decision>>,
) -> Result<(), TestCaseError> {
    let (_, fine_bytes) = history.fine();
    prop_assert!(
        fine_bytes <= history.options.fine_budget_bytes,
        "fine rooms over budget: {fine_bytes}"
    );
    let counted: usize = history
        .rooms
        .values()
        .filter(|r| r.fine.is_some())
        .map(|r| r.bytes())
        .sum();
    prop_assert_eq!(counted, fine_bytes, "the budget counts what the fine rooms take");
    prop_assert_eq!(
        history.fine_order.len(),
        history.rooms.values().filter(|r| r.fine.is_some()).count()
    );
    for (&sensor, room) in &history.rooms {
        if room.fine.is_none() {
            prop_assert!(
                room.kept.capacity() <= COARSE_READINGS,
                "coarse readings allocated to size"
            );
            prop_assert!(
                room.decisions.capacity() <= COARSE_DECISIONS,
                "coarse decisions allocated to size"
            );
        }
        // What is kept is a thinned copy, in order, of what was flushed: nothing invented, nothing twice.
        let all = flushed.get(&sensor).map(Vec::as_slice).unwrap_or_default();
        let mut rest = all.iter();
        for kept in &room.kept {
            prop_assert!(
                rest.any(|r| r == kept),
                "room {sensor} keeps a reading not flushed, or out of order"
            );
        }
        prop_assert_eq!(
            room.newest,
            all.iter()
                .copied()
                .max_by_key(|r| r.t_ms)
                .filter(|_| !all.is_empty())
        );
        let all_decided = decided.get(&sensor).map(Vec::as_slice).unwrap_or_default();
        let mut rest = all_decided.iter();
        for kept in &room.decisions {
            prop_assert!(
                rest.any(|d| d == kept),
                "room {sensor} keeps a decision not made, or out of order"
            );
        }
        let want_last = decided.get(&sensor).and_then(|d| d.last());
        prop_assert_eq!(
            history.command(sensor),
            want_last,
            "room {}'s last command",
            sensor
        );
        if let Some(last) = all.last() {
            // The newest kept reading is never more than one (coarse) spacing behind the newest flushed:
            // thinning skips only readings close to the last kept one.
            let (spacing, _) = history.options.thinning(false);
            let newest_kept = room.kept.back().map_or(i64::MIN, |r| r.t_ms);
            prop_assert!(last.t_ms - newest_kept < spacing.max(1) || room.kept.back() == Some(last));
        }
    }
    Ok(())
}

proptest! {
    /// Whatever arrives and whatever clients view, the fine rooms fit the budget, coarse rooms their fixed
    /// size, and each room keeps an ordered, thinned copy of its flushed readings and its last command.
    #[test]
    fn the_history_stays_within_its_budget_and_keeps_only_what_was_flushed(
        budget in 0usize..6_000,
        steps in prop::collection::vec(step(), 1..400),
    ) {
        let mut history = History::new(options(budget));
        let (mut pending, mut flushed, mut decided) = (Vec::new(), HashMap::<SensorId, Vec<Reading>>::new(), HashMap::<SensorId, Vec<Decision>>::new());
        let mut t = 0;
        for s in steps {
            match s {
                Step::Reading(sensor, dt) => {
                    t += dt;
                    let r = SensorReading { sensor, t_ms: t, temperature: 20.0 + (t % 7) as f64 };
                    history.add_reading(r);
                    pending.push(r);
                }
                Step::Decision(sensor, on) => {
                    let d = decision(sensor, t, on);
                    history.add_decision(d);
                    decided.entry(sensor).or_default().push(d);
                }
                Step::Flush => {
                    let out = history.flush();
                    prop_assert_eq!(&out, &pending, "a flush returns what arrived since the last");
                    for r in pending.drain(..) {
                        flushed.entry(r.sensor).or_default().push(r.reading());
                    }
                }
                Step::View(rooms) => history.viewed(rooms),
            }
            check(&history, &flushed, &decided)?;
        }
    }
}

#[test]
fn a_viewed_room_keeps_full_resolution_while_the_others_thin_to_the_coarse_window() {
    // Room of 600 readings at 100 ms (16 B each) and its decisions: a budget for about two rooms.
    let mut history = History::new(options(24_000));
    let rooms: Vec<SensorId> = (0..10).collect();
    for t in (0..=60_000).step_by(100) {
        for &s in &rooms {
            history.add_reading(SensorReading {
                sensor: s,
                t_ms: t,
                temperature: 20.0,
            });
            if t % 500 == 0 {
                history.add_decision(decision(s, t, t % 1_000 == 0));
            }
        }
        if t == 30_000 {
            history.viewed([7]);
        }
        history.flush();
    }
    let (fine_rooms, bytes) = history.fine();
    assert!(bytes <= 24_000, "{bytes}");
    assert!(fine_rooms >= 1, "the viewed room stays fine");
    let viewed = &history.rooms[&7];
    assert!(viewed.fine.is_some());
    // Fine from when it was viewed: one reading per 100 ms since then.
    let since_view = viewed.kept.iter().filter(|r| r.t_ms > 30_000).count();
    assert_eq!(since_view, 300);
    let coarse = &history.rooms[&0];
    assert!(coarse.fine.is_none());
    // Coarse: one per second (60 s / 60) over the whole window, the newest kept.
    assert!(
        coarse.kept.len() <= COARSE_READINGS && coarse.kept.len() >= COARSE_READINGS - 1,
        "{}",
        coarse.kept.len()
    );
    assert!(coarse
        .kept
        .iter()
        .zip(coarse.kept.iter().skip(1))
        .all(|(a, b)| b.t_ms - a.t_ms >= 1_000));
    assert!(
        60_000 - coarse.kept.front().map_or(60_000, |r| r.t_ms) >= 58_000,
        "covers the window"
    );
    assert_eq!(history.newest(0).map(|r| r.t_ms), Some(60_000));
    // Its heater strip: one decision per 2.5 s (60 s / 24) over the window, the last command the newest.
    let strip = &coarse.decisions;
    assert!(
        strip.len() <= COARSE_DECISIONS && strip.len() >= COARSE_DECISIONS - 1,
        "{}",
        strip.len()
    );
    let times: Vec<i64> = strip.iter().map(|d| d.t_ms).collect();
    assert!(
        strip.front().is_some_and(|d| d.t_ms <= 5_000),
        "the strip covers the window, but two stretches: {times:?}"
    );
    assert_eq!(history.command(0), Some(&decision(0, 60_000, true)));
    assert_eq!(history.heating(), 10);
}

#[test]
fn changes_are_bounded_in_total_the_oldest_anywhere_first() {
    let mut history = History::new(options(1 << 20));
    let entry = |version: u64| SetpointChangeEntry {
        version,
        author: "schedule:night".into(),
        t_ms: version as i64,
        from: None,
        to: Setpoint::new(20.0, 1.0, 1.0),
    };
    // 10 sensors × 20 changes, budget 50: the last 50 changes stay, whichever sensors they are of.
    for version in 1..=20 {
        for sensor in 0..10 {
            history.add_change(sensor, entry(version));
        }
    }
    let kept: usize = (0..10).map(|s| history.change_history(s).changes.len()).sum();
    assert_eq!(kept, 50);
    for sensor in 0..10 {
        let versions: Vec<u64> = history
            .change_history(sensor)
            .changes
            .iter()
            .map(|c| c.version)
            .collect();
        assert_eq!(versions, (16..=20).collect::<Vec<_>>(), "sensor {sensor}");
    }
    // One sensor's bound (200) frees its oldest; the order skips what is gone.
    for version in 21..=400 {
        history.add_change(3, entry(version));
    }
    assert_eq!(history.change_history(3).changes.len(), 50);
    assert_eq!(
        history.change_history(3).changes.first().map(|c| c.version),
        Some(351)
    );
    assert!(history.changes_order.len() <= 50);
}
