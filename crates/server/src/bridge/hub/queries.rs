//! What the hub is asked about its state, answered without changing it: one room as it is now, pages of
//! rooms (the API's list) and their conditions, histories, schedules. Part of [`HubState`]; the views a
//! browser watches are in [`super::view`].

use setpoint_control::{band_acts_on, Command, Decision, InForce, SensorId, TimeMs};
use setpoint_wire::api::{SensorFilter, SensorHistory, SensorView};
use setpoint_wire::schedule::{NextStep, Schedule};
use setpoint_wire::ws::{SetpointHistoryMsg, SetpointMsg};

use super::state::HubState;

/// A page of sensors ([`HubState::sensor_page`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SensorPage {
    pub sensors: Vec<SensorView>,
    /// How many sensors pass the filters, on every page.
    pub matching: usize,
    /// The `after` of the next page; `None` on the last.
    pub next_after: Option<SensorId>,
}

impl HubState {
    /// A sensor's change history, as `setpoint_history` answers it.
    pub fn change_history(&self, sensor: SensorId) -> SetpointHistoryMsg {
        self.history.change_history(sensor)
    }

    /// What is known of one sensor now; `None` if the bridge never heard of it.
    pub fn sensor_view(&self, sensor: SensorId) -> Option<SensorView> {
        self.history.knows(sensor).then(|| SensorView {
            sensor,
            reading: self.history.newest(sensor),
            setpoint: self.setpoint(sensor),
            heater: self.history.command(sensor).copied(),
            next_step: self.schedules.next_step(sensor),
            source: self.sources.of(sensor),
        })
    }

    /// Every schedule, by name.
    pub fn schedules(&self) -> Vec<Schedule> {
        self.schedules.all()
    }

    /// The schedule of that name.
    pub fn schedule(&self, name: &str) -> Option<&Schedule> {
        self.schedules.get(name)
    }

    /// Every scheduled sensor's next step, by sensor.
    pub fn next_steps(&self) -> &[NextStep] {
        self.schedules.next_steps()
    }

    /// What is kept of a sensor between `since` and `until` (inclusive).
    pub fn history(&self, sensor: SensorId, since: TimeMs, until: TimeMs) -> Option<SensorHistory> {
        self.history.between(sensor, since, until)
    }

    /// Every sensor the bridge has heard of, by id.
    pub fn sensor_views(&self) -> Vec<SensorView> {
        self.history
            .sensors()
            .filter_map(|s| self.sensor_view(s))
            .collect()
    }

    /// One page of the sensors that pass every one of `filters` at `now`, by id: at most `limit` after the
    /// sensor `after`. Keyed by id, not by position, so paging while sensors are added shows every sensor
    /// that was there once, and none twice.
    pub fn sensor_page(
        &self,
        after: Option<SensorId>,
        limit: usize,
        filters: &[SensorFilter],
        now: TimeMs,
    ) -> SensorPage {
        let mut page = SensorPage {
            sensors: Vec::new(),
            matching: 0,
            next_after: None,
        };
        if filters.is_empty() {
            // Every sensor matches: the page is a range, and the count is known.
            page.matching = self.history.sensor_count();
            let mut ids = self.history.sensors_after(after);
            page.sensors = ids
                .by_ref()
                .take(limit)
                .filter_map(|s| self.sensor_view(s))
                .collect();
            if ids.next().is_some() {
                page.next_after = page.sensors.last().map(|v| v.sensor);
            }
            return page;
        }
        // Filtered: every sensor is looked at once, for the count.
        for sensor in self.history.sensors() {
            if !filters.iter().all(|&f| self.passes(sensor, f, now)) {
                continue;
            }
            page.matching += 1;
            if after.is_some_and(|a| sensor <= a) {
                continue;
            }
            if page.sensors.len() == limit {
                page.next_after = page.sensors.last().map(|v| v.sensor);
            } else {
                page.sensors.extend(self.sensor_view(sensor));
            }
        }
        page
    }

    /// Whether `sensor` passes `filter` at `now`.
    pub(super) fn passes(&self, sensor: SensorId, filter: SensorFilter, now: TimeMs) -> bool {
        match filter {
            SensorFilter::HeaterOn => self
                .history
                .command(sensor)
                .is_some_and(|d| d.command == Command::On),
            SensorFilter::OutOfBand => match (self.history.newest(sensor), self.table.in_force(sensor)) {
                (Some(r), Some(f)) => band_acts_on(f.setpoint, &r.reading()),
                _ => false,
            },
            SensorFilter::Stale => self
                .history
                .newest(sensor)
                .is_none_or(|r| self.config.is_stale(now.saturating_sub(r.t_ms))),
        }
    }

    /// The setpoint in force for a sensor, as clients are shown it.
    pub fn setpoint(&self, sensor: SensorId) -> Option<SetpointMsg> {
        self.table.in_force(sensor).map(|f| setpoint_msg(sensor, f))
    }

    /// The last command seen for a sensor.
    pub fn last_command(&self, sensor: SensorId) -> Option<&Decision> {
        self.history.command(sensor)
    }
}
/// A value in force as the WebSocket and the API show it.
pub(super) fn setpoint_msg(sensor: SensorId, f: &InForce) -> SetpointMsg {
    let mut msg = SetpointMsg::new(sensor, &f.setpoint, f.version, Some(f.t_ms));
    msg.author = (!f.author.is_empty()).then(|| f.author.clone());
    msg
}
