//! A schedule compiled once: validated, its zone resolved, its times parsed, its steps indexed by weekday, so
//! that finding a step instant costs a few time-zone lookups and no parsing.

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{TimeZone, TimeZoneDatabase};
use jiff::Timestamp;
use setpoint_control::{Limits, Mode, Policy, SensorId, Setpoint, SetpointError, TimeMs};
use setpoint_wire::schedule::{
    is_schedule_name, Schedule, Weekday, MAX_SCHEDULE_NAME_LEN, MAX_SCHEDULE_SENSORS, MAX_SCHEDULE_STEPS,
};

/// How many local dates around `t` are searched for a step instant. A weekly program has an instance in any
/// seven consecutive dates; one more on each side absorbs offset changes, which move an instant off its
/// local date (a whole skipped day in the worst case, Samoa 2011).
const SEARCH_DAYS: usize = 8;

/// Why a schedule was refused. Messages name the step (0-based, as in the `steps` array) and the field, so
/// they can be shown to whoever saved the schedule.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "schedule name {name:?} is not valid: 1 to {MAX_SCHEDULE_NAME_LEN} ASCII letters, digits, '.', '_' or '-'"
    )]
    BadName { name: String },
    #[error("zone: unknown time zone {zone:?} (expected an IANA name such as \"Europe/Berlin\" or \"UTC\")")]
    UnknownZone { zone: String },
    #[error("steps: a schedule needs at least one step")]
    NoSteps,
    #[error("steps: {count} steps, at most {max} allowed")]
    TooManySteps { count: usize, max: usize },
    #[error("sensors: {count} sensors, at most {max} allowed")]
    TooManySensors { count: usize, max: usize },
    #[error("there are {max} schedules already, the most an installation keeps: delete one first")]
    TooManySchedules { max: usize },
    #[error("step {step}: days must list at least one day")]
    NoDays { step: usize },
    #[error("step {step}: time {time:?} is not HH:MM or HH:MM:SS (two digits each, 00:00 to 23:59:59)")]
    BadTime { step: usize, time: String },
    #[error("step {step}: {day} at {time} is already step {first}")]
    DuplicateStep {
        step: usize,
        first: usize,
        day: &'static str,
        time: String,
    },
    #[error("step {step}: {source}")]
    Setpoint {
        step: usize,
        #[source]
        source: SetpointError,
    },
}

/// One instance of a step: the instant it fires, what it sets and which step (index into the schedule's
/// `steps`) it is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepAt {
    pub at_ms: TimeMs,
    /// The step's numbers, with the mode and policy it sets (the defaults where it sets none).
    pub setpoint: Setpoint,
    /// What the step sets of mode and policy: `None` keeps the room's.
    pub mode: Option<Mode>,
    pub policy: Option<Policy>,
    pub step: usize,
}

impl StepAt {
    /// The setpoint this step puts in force over the one `in_force` (see [`Setpoint::requested`]).
    pub fn setpoint_over(&self, in_force: Option<&Setpoint>) -> Setpoint {
        let sp = self.setpoint;
        Setpoint::requested(
            sp.desired,
            sp.up_delta,
            sp.down_delta,
            self.mode,
            self.policy,
            in_force,
        )
    }
}

#[derive(Clone, Debug)]
struct Step {
    time: Time,
    setpoint: Setpoint,
    mode: Option<Mode>,
    policy: Option<Policy>,
}

/// A validated schedule, ready to answer "which step is in force at `t`" and "which one comes next".
///
/// Step instants are the schedule's local (date, time) on each listed weekday, turned into an instant in its
/// zone by jiff's *compatible* disambiguation (RFC 5545, Temporal, java.time):
/// - a local time skipped by a spring-forward gap is moved forward by the gap's length — 02:30 on
///   2026-03-29 in Europe/Berlin fires at 03:30 CEST (01:30 UTC);
/// - a local time that happens twice in a fall-back fold fires once, at its first occurrence — 02:30 on
///   2026-10-25 in Europe/Berlin fires at 02:30 CEST (00:30 UTC), not again at 02:30 CET.
///
/// Each (date, step) thus has exactly one instant. When two step instances share an instant (02:30 moved
/// onto a 03:30 step by a gap), the later local date-time wins, then the higher step index, for both
/// [`Program::latest_at_or_before`] and [`Program::next_after`], so the step announced as next is the one
/// in force when its instant comes.
#[derive(Clone, Debug)]
pub struct Program {
    name: String,
    zone_name: String,
    zone: TimeZone,
    steps: Vec<Step>,
    /// Step indices per weekday, Monday first.
    by_day: [Vec<usize>; 7],
    /// Sorted, without duplicates.
    sensors: Vec<SensorId>,
}

/// (instant, local date-time, step): the order in which step instances win.
type Key = (TimeMs, DateTime, usize);

impl Program {
    /// Validates `s` and compiles it. Checks, in this order: the name, the zone, the number of steps and
    /// sensors, then each step (days, time, setpoint), then duplicate (day, time) pairs. A step listing the
    /// same day twice is not an error: it means that day once.
    pub fn compile(s: &Schedule, limits: &Limits) -> Result<Program, ScheduleError> {
        if !is_schedule_name(&s.name) {
            return Err(ScheduleError::BadName { name: s.name.clone() });
        }
        let zone =
            resolve_zone(&s.zone).ok_or_else(|| ScheduleError::UnknownZone { zone: s.zone.clone() })?;
        if s.steps.is_empty() {
            return Err(ScheduleError::NoSteps);
        }
        if s.steps.len() > MAX_SCHEDULE_STEPS {
            return Err(ScheduleError::TooManySteps {
                count: s.steps.len(),
                max: MAX_SCHEDULE_STEPS,
            });
        }
        let mut sensors = s.sensors.clone();
        sensors.sort_unstable();
        sensors.dedup();
        if sensors.len() > MAX_SCHEDULE_SENSORS {
            return Err(ScheduleError::TooManySensors {
                count: sensors.len(),
                max: MAX_SCHEDULE_SENSORS,
            });
        }
        let mut steps = Vec::with_capacity(s.steps.len());
        let mut by_day: [Vec<usize>; 7] = Default::default();
        for (i, step) in s.steps.iter().enumerate() {
            if step.days.is_empty() {
                return Err(ScheduleError::NoDays { step: i });
            }
            let time = parse_time(&step.time).ok_or_else(|| ScheduleError::BadTime {
                step: i,
                time: step.time.clone(),
            })?;
            let setpoint = step.setpoint_over(None);
            limits
                .validate(&setpoint)
                .map_err(|source| ScheduleError::Setpoint { step: i, source })?;
            for &day in &step.days {
                let list = &mut by_day[day_index(day)];
                if list.last() == Some(&i) {
                    continue; // the same day listed twice in one step
                }
                if let Some(&first) = list
                    .iter()
                    .find(|&&j| steps.get(j).is_some_and(|o: &Step| o.time == time))
                {
                    return Err(ScheduleError::DuplicateStep {
                        step: i,
                        first,
                        day: day_name(day),
                        time: step.time.clone(),
                    });
                }
                list.push(i);
            }
            steps.push(Step {
                time,
                setpoint,
                mode: step.mode,
                policy: step.policy,
            });
        }
        Ok(Program {
            name: s.name.clone(),
            zone_name: s.zone.clone(),
            zone,
            steps,
            by_day,
            sensors,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The zone as the schedule names it.
    pub fn zone(&self) -> &str {
        &self.zone_name
    }

    /// The sensors it is assigned to, sorted, without duplicates.
    pub fn sensors(&self) -> &[SensorId] {
        &self.sensors
    }

    /// The step in force at `t`: the instance with the latest instant ≤ `t`. `None` only when `t` is so
    /// close to the ends of the representable range that no instance can be computed.
    pub fn latest_at_or_before(&self, t: TimeMs) -> Option<StepAt> {
        let today = self.local_date(t)?;
        let mut date = today.tomorrow().unwrap_or(today);
        let mut best: Option<Key> = None;
        let mut found_on: Option<Date> = None;
        for _ in 0..SEARCH_DAYS + 2 {
            for key in self.instances(date) {
                if key.0 <= t && best.is_none_or(|b| key > b) {
                    best = Some(key);
                    found_on.get_or_insert(date);
                }
            }
            // Offsets move an instant off its date by hours, not days: one more date cannot beat what was
            // found, two cannot at all.
            if found_on.is_some_and(|f| f.yesterday().is_ok_and(|y| date <= y)) {
                break;
            }
            let Ok(prev) = date.yesterday() else { break };
            date = prev;
        }
        best.map(|key| self.step_at(key))
    }

    /// The next step instance after `t` (strictly): the earliest instant > `t`.
    pub fn next_after(&self, t: TimeMs) -> Option<StepAt> {
        let today = self.local_date(t)?;
        let mut date = today.yesterday().unwrap_or(today);
        let mut best: Option<Key> = None;
        let mut found_on: Option<Date> = None;
        for _ in 0..SEARCH_DAYS + 2 {
            for key in self.instances(date) {
                // Earliest instant first; at one instant the same instance `latest_at_or_before` will pick.
                let better = best.is_none_or(|b| key.0 < b.0 || (key.0 == b.0 && key > b));
                if key.0 > t && better {
                    best = Some(key);
                    found_on.get_or_insert(date);
                }
            }
            if found_on.is_some_and(|f| f.tomorrow().is_ok_and(|y| date >= y)) {
                break;
            }
            let Ok(next) = date.tomorrow() else { break };
            date = next;
        }
        best.map(|key| self.step_at(key))
    }

    fn local_date(&self, t: TimeMs) -> Option<Date> {
        let ts = Timestamp::from_millisecond(t).ok()?;
        Some(self.zone.to_datetime(ts).date())
    }

    /// The instances of the steps listed for `date`'s weekday.
    fn instances(&self, date: Date) -> impl Iterator<Item = Key> + '_ {
        let day = date.weekday().to_monday_zero_offset();
        let list = usize::try_from(day).ok().and_then(|d| self.by_day.get(d));
        list.into_iter().flatten().filter_map(move |&i| {
            let local = self.steps.get(i)?.time.to_datetime(date);
            // Compatible: a gap moves the time forward by the gap, a fold takes the first occurrence.
            let at = self.zone.to_ambiguous_timestamp(local).compatible().ok()?;
            Some((at.as_millisecond(), local, i))
        })
    }

    fn step_at(&self, (at_ms, _, step): Key) -> StepAt {
        StepAt {
            at_ms,
            setpoint: self.steps[step].setpoint,
            mode: self.steps[step].mode,
            policy: self.steps[step].policy,
            step,
        }
    }
}

/// An IANA zone from the system database, or from the bundled copy when the system has none or lacks the
/// zone. "UTC" needs no database at all.
fn resolve_zone(name: &str) -> Option<TimeZone> {
    if name == "UTC" {
        return Some(TimeZone::UTC);
    }
    jiff::tz::db()
        .get(name)
        .or_else(|_| TimeZoneDatabase::bundled().get(name))
        .ok()
}

/// `HH:MM` or `HH:MM:SS`, two ASCII digits each, 00:00 to 23:59:59.
pub(crate) fn parse_time(s: &str) -> Option<Time> {
    let b = s.as_bytes();
    let two = |i: usize| -> Option<i8> {
        let (h, l) = (*b.get(i)?, *b.get(i + 1)?);
        (h.is_ascii_digit() && l.is_ascii_digit()).then(|| ((h - b'0') * 10 + (l - b'0')) as i8)
    };
    let (hour, minute, second) = match b.len() {
        5 if b[2] == b':' => (two(0)?, two(3)?, 0),
        8 if b[2] == b':' && b[5] == b':' => (two(0)?, two(3)?, two(6)?),
        _ => return None,
    };
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Time::new(hour, minute, second, 0).ok()
}

fn day_index(day: Weekday) -> usize {
    match day {
        Weekday::Mon => 0,
        Weekday::Tue => 1,
        Weekday::Wed => 2,
        Weekday::Thu => 3,
        Weekday::Fri => 4,
        Weekday::Sat => 5,
        Weekday::Sun => 6,
    }
}

/// The day as the schedule's JSON spells it.
fn day_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_two_digits_each_within_the_day() {
        let ok = [
            ("00:00", (0, 0, 0)),
            ("07:05", (7, 5, 0)),
            ("23:59", (23, 59, 0)),
            ("22:00:30", (22, 0, 30)),
            ("23:59:59", (23, 59, 59)),
        ];
        for (s, (h, m, sec)) in ok {
            let t = parse_time(s).expect(s);
            assert_eq!((t.hour(), t.minute(), t.second()), (h, m, sec), "{s}");
        }
        let bad = [
            "",
            "7:00",
            "07:0",
            "24:00",
            "12:60",
            "12:00:60",
            "12:00:",
            "12-00",
            " 12:00",
            "12:00 ",
            "12:00:00:00",
            "+1:00",
            "1a:00",
            "١٢:٠٠",
            "12:00:5",
            "99:99",
        ];
        for s in bad {
            assert_eq!(parse_time(s), None, "{s:?}");
        }
    }

    #[test]
    fn the_bundled_database_is_there_and_agrees_with_the_system_one() {
        // Where the system has no tz database this copy answers alone, so it must know the zones and rules.
        let bundled = TimeZoneDatabase::bundled()
            .get("Europe/Berlin")
            .expect("bundled Berlin");
        let resolved = resolve_zone("Europe/Berlin").expect("Berlin");
        for t in [
            "2026-03-29T00:59:59Z",
            "2026-03-29T01:00:00Z",
            "2026-10-25T00:59:59Z",
            "2026-10-25T01:00:00Z",
        ] {
            let ts: Timestamp = t.parse().expect(t);
            assert_eq!(bundled.to_offset(ts), resolved.to_offset(ts), "{t}");
        }
        assert_eq!(resolve_zone("UTC"), Some(TimeZone::UTC));
        assert!(resolve_zone("Nowhere/Special").is_none());
    }
}
