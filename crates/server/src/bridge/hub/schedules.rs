//! The weekly schedules as the bridge shows them: every schedule by name, as saved, and each scheduled
//! sensor's next step. Part of [`super::state::HubState`]: it says when clients must be told (the
//! schedules changed, or a step passed); the state machine tells them.

use std::collections::BTreeMap;

use setpoint_control::{Limits, SensorId, TimeMs};
use setpoint_schedule::{next_steps, Program, ScheduleError};
use setpoint_wire::schedule::{NextStep, Schedule, ScheduleRecord, SchedulesMsg, MAX_SCHEDULES};

#[derive(Debug, Default)]
pub struct Schedules {
    /// By name, as saved, with their compiled programs (for the next steps).
    by_name: BTreeMap<String, (Schedule, Program)>,
    /// Each scheduled sensor's next step, by sensor, as last sent.
    next_steps: Vec<NextStep>,
    /// When the next steps next change by themselves.
    next_refresh: Option<TimeMs>,
}

impl Schedules {
    /// Reads the next record of the schedules stream at `now`. A schedule that does not compile under
    /// `limits` (the API refuses those, so it came from elsewhere), or a new one past [`MAX_SCHEDULES`], is
    /// not shown as running; its error is returned for the log, with the message every client is to be sent.
    pub fn on_record(
        &mut self,
        record: ScheduleRecord,
        limits: &Limits,
        now: TimeMs,
    ) -> (Result<(), ScheduleError>, Option<SchedulesMsg>) {
        let name = record.schedule.name.clone();
        let known = self.by_name.remove(&name).is_some();
        let result = if record.deleted {
            Ok(())
        } else if !known && self.by_name.len() >= MAX_SCHEDULES {
            Err(ScheduleError::TooManySchedules { max: MAX_SCHEDULES })
        } else {
            Program::compile(&record.schedule, limits).map(|program| {
                self.by_name.insert(name, (record.schedule, program));
            })
        };
        (result, self.refresh(now, true))
    }

    /// At `now`: the message every client is to be sent if a step passed and the next steps changed.
    pub fn tick(&mut self, now: TimeMs) -> Option<SchedulesMsg> {
        if self.next_refresh.is_some_and(|at| now >= at) {
            self.refresh(now, false)
        } else {
            None
        }
    }

    /// Recomputes the next steps at `now`; the message for the clients when they (or, `changed`, the
    /// schedules) changed.
    fn refresh(&mut self, now: TimeMs, changed: bool) -> Option<SchedulesMsg> {
        let next = next_steps(self.by_name.values().map(|(_, p)| (p, p.next_after(now))));
        self.next_refresh = next.iter().map(|n| n.at_ms).min();
        if changed || next != self.next_steps {
            self.next_steps = next;
            return Some(self.msg());
        }
        None
    }

    /// Every schedule and every next step, as `schedules` frames carry them.
    pub fn msg(&self) -> SchedulesMsg {
        SchedulesMsg {
            schedules: self.all(),
            next: self.next_steps.clone(),
        }
    }

    /// Every schedule, by name.
    pub fn all(&self) -> Vec<Schedule> {
        self.by_name.values().map(|(s, _)| s.clone()).collect()
    }

    /// The schedule of that name.
    pub fn get(&self, name: &str) -> Option<&Schedule> {
        self.by_name.get(name).map(|(s, _)| s)
    }

    /// Every scheduled sensor's next step, by sensor.
    pub fn next_steps(&self) -> &[NextStep] {
        &self.next_steps
    }

    /// A sensor's next step, if a schedule is assigned to it.
    pub fn next_step(&self, sensor: SensorId) -> Option<NextStep> {
        self.next_steps
            .binary_search_by_key(&sensor, |n| n.sensor)
            .ok()
            .map(|i| self.next_steps[i].clone())
    }
}
