//! The controller's state, sans-IO: the event-time join of readings with setpoints, the changelog table of
//! every heater's memory, and which sensors this instance owns. The async shell in `mod.rs` feeds it what
//! the bus delivers and publishes what it returns; nothing here waits, reads a clock or touches a socket.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use setpoint_control::{
    Config, Controller, Decision, HeaterMemory, ReadingError, SensorId, SetpointError, Stats, Verdict,
    VersionArbiter,
};

use crate::bus::{HeaterMemoryRecord, SensorReading, SetpointChange};

/// One controller instance's view of the world.
#[derive(Debug)]
pub struct Join {
    controller: Controller,
    /// Which setpoint records take effect: the same rule every bridge applies, so the controller decides
    /// with exactly the versions the dashboards show.
    arbiter: VersionArbiter,
    /// The changelog read as a table: the newest memory of every heater, whichever instance wrote it.
    /// Consulted when this instance starts deciding a sensor it did not own a moment ago.
    changelog: HashMap<SensorId, HeaterMemory>,
    /// Sensors this instance decides now, with the readings partition each came from.
    owned: HashMap<SensorId, i32>,
}

impl Join {
    pub fn new(config: Config) -> Self {
        Self {
            controller: Controller::new(config),
            arbiter: VersionArbiter::new(),
            changelog: HashMap::new(),
            owned: HashMap::new(),
        }
    }

    /// Reads the next setpoint record of the stream: if it takes effect (the arbiter's rule), its version is
    /// in force from its event time; a record that lost a race or restates the version in force changes
    /// nothing.
    pub fn apply_setpoint(&mut self, change: &SetpointChange) -> Result<(), SetpointError> {
        match self
            .arbiter
            .judge(change.sensor, change.version, change.base_version)
        {
            Verdict::Applied { version, .. } => {
                self.controller
                    .apply_setpoint_at(change.sensor, change.setpoint, version, change.t_ms)
            }
            Verdict::Restated { .. } | Verdict::Skipped { .. } => Ok(()),
        }
    }

    /// A changelog record (another instance's, an earlier run's, or this one's own, read back).
    pub fn remember(&mut self, record: HeaterMemoryRecord) {
        self.changelog.insert(record.sensor, record.memory);
    }

    /// Heater memories in the changelog table.
    pub fn remembered(&self) -> usize {
        self.changelog.len()
    }

    /// Stops deciding the sensors of partitions a rebalance took away, and forgets their heater state: the
    /// new owner changes it meanwhile, and if a sensor comes back its state is restored from the changelog.
    pub fn release(&mut self, revoked: &[i32]) {
        if revoked.is_empty() {
            return;
        }
        let controller = &mut self.controller;
        self.owned.retain(|sensor, partition| {
            let keep = !revoked.contains(partition);
            if !keep {
                controller.release(*sensor);
            }
            keep
        });
    }

    /// Decides one reading from `partition`. A sensor this instance did not own a moment ago first takes
    /// over the heater memory from the changelog, so it neither repeats the previous owner's last command
    /// nor cuts its dwell short.
    pub fn decide(
        &mut self,
        partition: i32,
        event: &SensorReading,
    ) -> Result<Option<Decision>, ReadingError> {
        // A lookup, not a write, for the sensors already owned: this runs for every reading.
        if let Entry::Vacant(slot) = self.owned.entry(event.sensor) {
            slot.insert(partition);
            if let Some(memory) = self.changelog.get(&event.sensor) {
                self.controller.restore_heater(event.sensor, *memory);
            }
        }
        self.controller.on_reading(event.sensor, event.reading())
    }

    /// Failsafe Offs for silent sensors at `now_ms`.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Decision> {
        self.controller.tick(now_ms)
    }

    /// The changelog records that explain `decisions`: each commanded heater's memory as it is now (after
    /// the whole batch), one record per sensor.
    pub fn memories_for(&self, decisions: &[Decision]) -> Vec<HeaterMemoryRecord> {
        let mut sensors: Vec<SensorId> = decisions.iter().map(|d| d.sensor).collect();
        sensors.sort_unstable();
        sensors.dedup();
        sensors
            .into_iter()
            .filter_map(|sensor| {
                let memory = self.controller.sensor(sensor)?.heater_memory();
                Some(HeaterMemoryRecord { sensor, memory })
            })
            .collect()
    }

    pub fn stats(&self) -> Stats {
        self.controller.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use setpoint_control::{Command, Setpoint};

    fn setpoint(sensor: SensorId, t_ms: i64) -> SetpointChange {
        SetpointChange {
            base_version: None,
            write_id: String::new(),
            sensor,
            setpoint: Setpoint::new(20.0, 1.0, 1.0),
            version: 1,
            author: String::new(),
            t_ms,
        }
    }

    fn reading(sensor: SensorId, t_ms: i64, temperature: f64) -> SensorReading {
        SensorReading {
            sensor,
            t_ms,
            temperature,
        }
    }

    #[test]
    fn a_handed_over_sensor_continues_from_the_previous_owners_memory() {
        let config = Config {
            min_dwell_ms: 10_000,
            ..Config::default()
        };
        let mut old = Join::new(config);
        old.apply_setpoint(&setpoint(1, 0)).expect("valid");
        let on = old.decide(0, &reading(1, 1_000, 10.0)).expect("ok").expect("On");
        let records = old.memories_for(&[on]);
        assert_eq!(records.len(), 1);

        let mut new = Join::new(config);
        new.apply_setpoint(&setpoint(1, 0)).expect("valid");
        new.remember(records[0]);
        // Replayed from an older committed offset: already decided, no repeat.
        assert_eq!(new.decide(0, &reading(1, 1_000, 10.0)), Ok(None));
        // Within the dwell of the previous owner's On: held.
        assert_eq!(new.decide(0, &reading(1, 5_000, 25.0)), Ok(None));
        let off = new
            .decide(0, &reading(1, 11_000, 25.0))
            .expect("ok")
            .expect("Off");
        assert_eq!(off.command, Command::Off);
    }

    #[test]
    fn a_released_sensor_is_restored_from_the_changelog_when_it_comes_back() {
        let mut join = Join::new(Config::default());
        join.apply_setpoint(&setpoint(1, 0)).expect("valid");
        assert!(join.decide(2, &reading(1, 1_000, 10.0)).expect("ok").is_some());
        join.release(&[2]);
        // Meanwhile the other owner turned it Off.
        join.remember(HeaterMemoryRecord {
            sensor: 1,
            memory: HeaterMemory {
                last_command: Some(Command::Off),
                last_change_ms: Some(2_000),
                newest_ms: Some(2_000),
                last_temperature: Some(25.0),
                stale: false,
            },
        });
        assert_eq!(
            join.decide(2, &reading(1, 2_500, 25.0)),
            Ok(None),
            "Off is in force"
        );
        assert_eq!(
            join.decide(2, &reading(1, 3_000, 10.0))
                .expect("ok")
                .map(|d| d.command),
            Some(Command::On)
        );
    }
}
