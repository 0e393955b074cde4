//! The weekly schedules as the bridge shows them: every schedule by name, as saved, and each scheduled
//! sensor's next step. Part of [`super::state::HubState`]: it says when clients must be told (the
//! schedules changed, or a step passed); the state machine tells them.

use std::collections::BTreeMap;

use setpoint_control::{Limits, SensorId, TimeMs};
use setpoint_schedule::{next_steps, Program, ScheduleError};
use setpoint_wire::schedule::{NextStep, Schedule, ScheduleRecord, MAX_SCHEDULES};

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
    ) -> Result<(), ScheduleError> {
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
        self.refresh(now);
        result
    }

    /// At `now`: whether a step passed and the next steps changed (the clients are then sent theirs).
    pub fn tick(&mut self, now: TimeMs) -> bool {
        self.next_refresh.is_some_and(|at| now >= at) && self.refresh(now)
    }

    /// Recomputes the next steps at `now`; whether they changed.
    fn refresh(&mut self, now: TimeMs) -> bool {
        let next = next_steps(self.by_name.values().map(|(_, p)| (p, p.next_after(now))));
        self.next_refresh = next.iter().map(|n| n.at_ms).min();
        let changed = next != self.next_steps;
        self.next_steps = next;
        changed
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
