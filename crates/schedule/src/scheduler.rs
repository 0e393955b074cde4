//! Over 400 lines on purpose: one state machine whose inputs (schedules, setpoint records, publish
//! failures, the time) all touch the same per-sensor entries; its tests are in `tests/scheduler.rs`.
//!
//! The scheduler role's state machine, sans-IO: which setpoint records to publish, and when.
//!
//! Inputs, all in stream order where they come from a stream:
//! - [`Scheduler::on_schedule`]: a record of the schedules stream. A deleted or invalid schedule is removed
//!   (an invalid one also returns its error, for the shell to log).
//! - [`Scheduler::on_setpoint`]: a record of the setpoints stream, judged by this scheduler's own
//!   [`VersionArbiter`] exactly as every controller and bridge judges it, so it knows the version and the
//!   time (`t_ms`) of the value in force per sensor.
//! - [`Scheduler::poll`] with the time: returns the records to publish. [`Scheduler::publish_failed`]: the
//!   bus refused some of them.
//!
//! Outputs: [`SetpointChange`] records (steps and restatements), [`Scheduler::next_wake`] (when `poll` next has
//! something to do) and [`Scheduler::next_steps`] (for display).
//!
//! **The rule**, one for live steps, catch-up after downtime and a newly saved schedule: for each sensor
//! assigned to at least one schedule, let T be the latest step instant ≤ now over its schedules (at equal
//! instants the schedule with the greater name wins). If the value in force was set before T (`t_ms < T`),
//! or the sensor has none, and no write of this scheduler for it is in flight, publish T's setpoint
//! conditional on the version in force (`base`, 0 for none; `version = base + 1`). A change made after T
//! therefore holds until the next step, as on any thermostat, and after downtime only the latest missed
//! step is applied. A write is in flight until its record comes back, [`Scheduler::publish_failed`] names
//! it, or [`IN_FLIGHT_MS`] passed; then the rule may fire again, and the base makes a duplicate harmless.
//!
//! **Several schedulers** (processes) run the same rule on the same streams and publish the same step on
//! the same base. The arbiter lets only the first record in the stream take effect; the others are skipped
//! by every reader. A scheduler that reads back its own record skipped publishes a *restatement* of the
//! value in force (`version = base_version =` in force, with its setpoint, author and `t_ms`), because
//! compaction keeps only a sensor's newest record and that must not be the skipped one. The shell should
//! read both streams to their end before its first `poll`, or its first writes are on stale bases (skipped
//! and restated: harmless, but noise).
//!
//! **Cost.** Each program's latest and next instants are cached and recomputed only when `now` leaves
//! that window (a step instant passed, or the clock went back). Sensors are looked at only when something
//! about them changed — a step of one of their schedules passed, a schedule assigned to them changed, a
//! setpoint record arrived, a write of theirs resolved or expired — so `poll` is O(schedules + changed
//! sensors), not O(sensors). Memory holds only sensors seen in the setpoints stream or in a schedule.

use std::collections::BTreeMap;
use std::sync::Arc;

use setpoint_control::{
    Arrival, Config, Limits, RecordError, SensorId, SetpointChange, SetpointTable, TimeMs, Verdict,
};
use setpoint_wire::schedule::{schedule_author, NextStep, ScheduleRecord, MAX_SCHEDULES};

use crate::program::{Program, ScheduleError, StepAt};

/// A published write that has not come back after this long no longer blocks the rule for its sensor.
pub const IN_FLIGHT_MS: i64 = 30_000;

/// How long a published write is remembered after it left the in-flight state, so that if it comes back
/// late and skipped it is still restated.
pub const REMEMBER_SENT_MS: i64 = 10 * 60_000;

#[derive(Clone, Copy, Debug)]
struct InFlight {
    n: u64,
    deadline: TimeMs,
}

#[derive(Clone, Debug, Default)]
struct SensorEntry {
    /// Names of the schedules assigned to it, sorted.
    schedules: Vec<Arc<str>>,
    in_flight: Option<InFlight>,
    dirty: bool,
}

impl SensorEntry {
    fn is_empty(&self) -> bool {
        self.schedules.is_empty() && self.in_flight.is_none()
    }
}

/// A program's latest and next instances around the last `poll`: valid while `latest ≤ now < next`.
#[derive(Clone, Copy, Debug)]
struct Window {
    latest: Option<StepAt>,
    next: Option<StepAt>,
}

impl Window {
    fn holds(&self, now: TimeMs) -> bool {
        self.latest.is_none_or(|l| l.at_ms <= now) && self.next.is_none_or(|n| now < n.at_ms)
    }
}

#[derive(Clone, Debug)]
struct Slot {
    program: Program,
    author: String,
    /// `None` until the first `poll` after the schedule arrived.
    window: Option<Window>,
}

#[derive(Clone, Copy, Debug)]
struct Sent {
    sensor: SensorId,
    at: TimeMs,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Scheduler {
    /// `"{writer}-"`: the prefix of this instance's write ids.
    prefix: String,
    limits: Limits,
    next_n: u64,
    /// The setpoint table every reader keeps: which records take effect, which are refused.
    table: SetpointTable,
    programs: BTreeMap<Arc<str>, Slot>,
    sensors: BTreeMap<SensorId, SensorEntry>,
    /// Sensors to judge at the next `poll` (each once: `SensorEntry::dirty`).
    dirty: Vec<SensorId>,
    /// In-flight writes by deadline: (deadline, n) → sensor.
    deadlines: BTreeMap<(TimeMs, u64), SensorId>,
    /// Writes published and not yet read back, by n (publish order).
    sent: BTreeMap<u64, Sent>,
    /// Restatements waiting for the next `poll`.
    queued: Vec<SetpointChange>,
}

impl Scheduler {
    /// A scheduler whose write ids are `"{writer}-{n}"`. `writer` must be unique per running instance (e.g.
    /// host, pid and start time): a write is recognised as its own by that prefix.
    pub fn new(writer: &str) -> Self {
        Self::with_limits(writer, Limits::default())
    }

    /// As [`Scheduler::new`], validating step setpoints against `limits` (the installation's, as the
    /// controller and bridge use).
    pub fn with_limits(writer: &str, limits: Limits) -> Self {
        Self::with_config(
            writer,
            Config {
                limits,
                ..Config::default()
            },
        )
    }

    /// As [`Scheduler::new`], judging setpoint records with the installation's configuration (limits,
    /// clock skew, sensor bound), as the controller and the bridge do.
    pub fn with_config(writer: &str, config: Config) -> Self {
        Self {
            prefix: format!("{writer}-"),
            limits: config.limits,
            next_n: 0,
            table: SetpointTable::new(config),
            programs: BTreeMap::new(),
            sensors: BTreeMap::new(),
            dirty: Vec::new(),
            deadlines: BTreeMap::new(),
            sent: BTreeMap::new(),
            queued: Vec::new(),
        }
    }

    /// A record of the schedules stream: saved (replacing any schedule of that name) or deleted. An invalid
    /// schedule removes the one of that name, so the stream's newest record is what runs, and returns why.
    pub fn on_schedule(&mut self, record: &ScheduleRecord) -> Result<(), ScheduleError> {
        let name = record.schedule.name.as_str();
        let known = self.programs.contains_key(name);
        self.remove_program(name);
        if record.deleted {
            return Ok(());
        }
        if !known && self.programs.len() >= MAX_SCHEDULES {
            return Err(ScheduleError::TooManySchedules { max: MAX_SCHEDULES });
        }
        let program = Program::compile(&record.schedule, &self.limits)?;
        let key: Arc<str> = Arc::from(name);
        for &sensor in program.sensors() {
            let entry = self.sensors.entry(sensor).or_default();
            if let Err(at) = entry.schedules.binary_search(&key) {
                entry.schedules.insert(at, key.clone());
            }
            mark(&mut self.dirty, sensor, entry);
        }
        let slot = Slot {
            author: schedule_author(name),
            program,
            window: None,
        };
        self.programs.insert(key, slot);
        Ok(())
    }

    /// A record of the setpoints stream, in stream order (redeliveries included: they are judged like any
    /// record, which is what every other reader does too).
    ///
    /// This form trusts the record's event time (no clock-skew check): for callers without a log time,
    /// such as tests. The runtime uses [`Scheduler::on_setpoint_at`].
    pub fn on_setpoint(&mut self, r: &SetpointChange, now: TimeMs) {
        let judged = self.table.judge(r, Arrival::at(r.t_ms.max(now)));
        let _ = self.on_judged(r, judged, now);
    }

    /// [`Scheduler::on_setpoint`] for a record with its [`Arrival`]. A record the table refuses changes
    /// nothing (for this scheduler as for every reader) and is returned as the error; if it was one of this
    /// scheduler's writes, the value in force is restated and the sensor judged again.
    pub fn on_setpoint_at(&mut self, r: &SetpointChange, arrival: Arrival) -> Result<Verdict, RecordError> {
        let judged = self.table.judge(r, arrival);
        self.on_judged(r, judged, arrival.now_ms)
    }

    fn on_judged(
        &mut self,
        r: &SetpointChange,
        judged: Result<Verdict, RecordError>,
        now: TimeMs,
    ) -> Result<Verdict, RecordError> {
        // A refused record of ours is treated as one that lost: restated, and the rule runs again.
        let verdict = match &judged {
            Ok(v) => *v,
            Err(_) => Verdict::Skipped {
                in_force: self.table.version(r.sensor).unwrap_or(0),
            },
        };
        let own = r
            .write_id
            .strip_prefix(self.prefix.as_str())
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(n) = own {
            if self.sent.get(&n).is_some_and(|s| s.sensor == r.sensor) {
                self.sent.remove(&n);
                if let Verdict::Skipped { .. } = verdict {
                    self.queued.extend(self.table.restatement(r.sensor));
                }
            }
        }
        // Only scheduled sensors have an entry; the value in force of every sensor is in the table.
        if let Some(entry) = self.sensors.get_mut(&r.sensor) {
            let settled = own.is_some_and(|n| entry.in_flight.is_some_and(|w| w.n == n));
            if settled {
                settle(entry, &mut self.deadlines);
            }
            if settled || matches!(verdict, Verdict::Applied { .. }) {
                mark(&mut self.dirty, r.sensor, entry);
            }
        }
        self.forget_sent(now);
        judged
    }

    /// The bus did not take these writes (ids as published). Their sensors are judged again at the next
    /// `poll`. A write named here is no longer expected back, so it is not restated if it turns up anyway.
    pub fn publish_failed(&mut self, write_ids: &[String]) {
        for id in write_ids {
            let Some(n) = id
                .strip_prefix(self.prefix.as_str())
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let Some(sent) = self.sent.remove(&n) else {
                continue;
            };
            if let Some(entry) = self.sensors.get_mut(&sent.sensor) {
                if entry.in_flight.is_some_and(|w| w.n == n) {
                    settle(entry, &mut self.deadlines);
                    mark(&mut self.dirty, sent.sensor, entry);
                }
            }
        }
    }

    /// The records to publish now: queued restatements first, then steps in sensor order.
    pub fn poll(&mut self, now: TimeMs) -> Vec<SetpointChange> {
        let mut out = std::mem::take(&mut self.queued);
        self.expire(now);
        self.forget_sent(now);
        self.refresh_windows(now);
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        for sensor in dirty {
            if let Some(p) = self.judge(sensor, now) {
                out.push(p);
            }
        }
        out
    }

    /// When `poll` next has something to do: `now` if work is pending (a record arrived, a schedule
    /// changed, a step instant passed since the last `poll`), else the earliest of the next step instant of
    /// any schedule and the deadline of any write in flight. `None`: nothing will ever be due on its own.
    pub fn next_wake(&self, now: TimeMs) -> Option<TimeMs> {
        if !self.queued.is_empty() || !self.dirty.is_empty() {
            return Some(now);
        }
        let mut wake = self.deadlines.first_key_value().map(|(&(at, _), _)| at.max(now));
        for slot in self.programs.values() {
            let due = match slot.window {
                Some(w) if w.holds(now) => w.next.map(|n| n.at_ms),
                _ => Some(now),
            };
            wake = match (wake, due) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        wake
    }

    /// Per scheduled sensor, sorted by sensor: the next step among its schedules — the earliest instant
    /// after `now`; at equal instants the schedule with the greater name, the one the rule will apply.
    pub fn next_steps(&self, now: TimeMs) -> Vec<NextStep> {
        crate::next::next_steps(self.programs.values().map(|slot| {
            let next = match slot.window {
                Some(w) if w.holds(now) => w.next,
                _ => slot.program.next_after(now),
            };
            (&slot.program, next)
        }))
    }

    /// The compiled schedule of that name, if one runs.
    pub fn program(&self, name: &str) -> Option<&Program> {
        self.programs.get(name).map(|s| &s.program)
    }

    fn remove_program(&mut self, name: &str) {
        let Some(slot) = self.programs.remove(name) else {
            return;
        };
        for sensor in slot.program.sensors() {
            let Some(entry) = self.sensors.get_mut(sensor) else {
                continue;
            };
            entry.schedules.retain(|s| &**s != name);
            if entry.is_empty() {
                self.sensors.remove(sensor);
            } else {
                mark(&mut self.dirty, *sensor, entry);
            }
        }
    }

    /// Writes past their deadline stop blocking their sensor.
    fn expire(&mut self, now: TimeMs) {
        while let Some((&(deadline, n), &sensor)) = self.deadlines.first_key_value() {
            if deadline > now {
                break;
            }
            self.deadlines.remove(&(deadline, n));
            if let Some(entry) = self.sensors.get_mut(&sensor) {
                if entry.in_flight.is_some_and(|w| w.n == n) {
                    entry.in_flight = None;
                    mark(&mut self.dirty, sensor, entry);
                }
            }
        }
    }

    /// Bounds `sent`: a write not back after `REMEMBER_SENT_MS` is taken as lost.
    fn forget_sent(&mut self, now: TimeMs) {
        while let Some((&n, sent)) = self.sent.first_key_value() {
            if sent.at.saturating_add(REMEMBER_SENT_MS) > now {
                break;
            }
            self.sent.remove(&n);
        }
    }

    /// Recomputes the windows `now` has left; a program whose step in force changed marks its sensors.
    fn refresh_windows(&mut self, now: TimeMs) {
        for slot in self.programs.values_mut() {
            if slot.window.is_some_and(|w| w.holds(now)) {
                continue;
            }
            let window = Window {
                latest: slot.program.latest_at_or_before(now),
                next: slot.program.next_after(now),
            };
            let changed = slot.window.is_none_or(|w| w.latest != window.latest);
            slot.window = Some(window);
            if changed {
                for &sensor in slot.program.sensors() {
                    if let Some(entry) = self.sensors.get_mut(&sensor) {
                        mark(&mut self.dirty, sensor, entry);
                    }
                }
            }
        }
        // Marking may have queued sensors again that `poll` is about to judge: harmless, `judge` clears.
    }

    /// The rule, for one sensor.
    fn judge(&mut self, sensor: SensorId, now: TimeMs) -> Option<SetpointChange> {
        let entry = self.sensors.get_mut(&sensor)?;
        entry.dirty = false;
        if entry.in_flight.is_some() {
            return None;
        }
        let mut best: Option<(&Slot, StepAt)> = None;
        // Names ascending: `>=` lets a greater name take an equal instant.
        for name in &entry.schedules {
            let Some(slot) = self.programs.get(name) else {
                continue;
            };
            let Some(latest) = slot.window.and_then(|w| w.latest) else {
                continue;
            };
            if best.is_none_or(|(_, b)| latest.at_ms >= b.at_ms) {
                best = Some((slot, latest));
            }
        }
        let (slot, step) = best?;
        let in_force = self.table.in_force(sensor);
        let base = match in_force {
            None => 0,
            Some(f) if f.t_ms < step.at_ms => f.version,
            Some(_) => return None,
        };
        let setpoint = step.setpoint_over(in_force.map(|f| &f.setpoint));
        // At the largest version nothing more can be numbered: the step is not published.
        let version = SetpointTable::next_version(sensor, base).ok()?;
        let n = self.next_n;
        self.next_n += 1;
        let deadline = now.saturating_add(IN_FLIGHT_MS);
        entry.in_flight = Some(InFlight { n, deadline });
        self.deadlines.insert((deadline, n), sensor);
        self.sent.insert(n, Sent { sensor, at: now });
        Some(
            SetpointChange::new(sensor, setpoint, version, slot.author.clone(), now)
                .conditional(base, format!("{}{n}", self.prefix)),
        )
    }
}

fn mark(dirty: &mut Vec<SensorId>, sensor: SensorId, entry: &mut SensorEntry) {
    if !entry.dirty && !entry.schedules.is_empty() {
        entry.dirty = true;
        dirty.push(sensor);
    }
}

fn settle(entry: &mut SensorEntry, deadlines: &mut BTreeMap<(TimeMs, u64), SensorId>) {
    if let Some(w) = entry.in_flight.take() {
        deadlines.remove(&(w.deadline, w.n));
    }
}
