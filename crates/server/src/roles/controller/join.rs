//! The controller's state, sans-IO: the event-time join of readings with setpoints, the changelog table of
//! every heater's memory, and which sensors this instance owns. The async shell in `mod.rs` feeds it what
//! the bus delivers and publishes what it returns; nothing here waits, reads a clock or touches a socket.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use setpoint_control::{
    Arrival, Config, Controller, Decision, HeaterMemory, ReadingError, RecordError, SensorId, SetpointTable,
    Stats, Verdict,
};

use crate::bus::{HeaterMemoryRecord, SensorReading, SetpointChange};

/// One controller instance's view of the world.
#[derive(Debug)]
pub struct Join {
    controller: Controller,
    /// Which setpoint records take effect, and which are refused: the same table every bridge and scheduler
    /// keeps, so the controller decides with exactly the versions the dashboards show.
    table: SetpointTable,
    /// The changelog read as a table: the newest memory of every heater, whichever instance wrote it.
    /// Consulted when this instance starts deciding a sensor it did not own a moment ago.
    changelog: HashMap<SensorId, HeaterMemory>,
    /// Sensors this instance decides now, with the readings partition each came from.
    owned: HashMap<SensorId, i32>,
    /// Heater memories restored with a time ahead of this process's clock, clamped (see
    /// [`HeaterMemory::clamped`]).
    clamped: u64,
    /// Setpoint records the table refused (the controller core never sees them).
    refused_setpoints: u64,
    /// Sensors whose TPI cycle started (or ended) since the last changelog records were taken.
    cycles_started: Vec<SensorId>,
}

impl Join {
    pub fn new(config: Config) -> Self {
        Self {
            controller: Controller::new(config),
            table: SetpointTable::new(config),
            changelog: HashMap::new(),
            owned: HashMap::new(),
            clamped: 0,
            refused_setpoints: 0,
            cycles_started: Vec::new(),
        }
    }

    /// Reads the next setpoint record of the stream: if the table takes it (checked, then judged by the
    /// log's rule), its version is in force from its event time; a record that lost a race or restates the
    /// version in force changes nothing; a refused one changes nothing anywhere.
    pub fn apply_setpoint(
        &mut self,
        change: &SetpointChange,
        arrival: Arrival,
    ) -> Result<Verdict, RecordError> {
        let verdict = self
            .table
            .judge(change, arrival)
            .inspect_err(|_| self.refused_setpoints += 1)?;
        if let Verdict::Applied { version, .. } = verdict {
            self.controller
                .apply_setpoint_at(change.sensor, change.setpoint, version, change.t_ms)
                .map_err(|error| RecordError::InvalidSetpoint {
                    sensor: change.sensor,
                    error,
                })?;
        }
        Ok(verdict)
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
        // A released sensor's memory is the next owner's to write now.
        let owned = &self.owned;
        self.cycles_started.retain(|sensor| owned.contains_key(sensor));
    }

    /// Decides one reading from `partition`. A sensor this instance did not own a moment ago first takes
    /// over the heater memory from the changelog, so it neither repeats the previous owner's last command
    /// nor cuts its dwell short.
    ///
    /// A reading dated further ahead of `arrival` than the clock skew allows is refused (it never becomes
    /// the sensor's newest time), and a memory restored with a time ahead of this process's clock is
    /// clamped to it.
    pub fn decide(
        &mut self,
        partition: i32,
        event: &SensorReading,
        arrival: Arrival,
    ) -> Result<Option<Decision>, ReadingError> {
        // A lookup, not a write, for the sensors already owned: this runs for every reading.
        if let Entry::Vacant(slot) = self.owned.entry(event.sensor) {
            slot.insert(partition);
            if let Some(memory) = self.changelog.get(&event.sensor) {
                let (memory, clamped) = memory.clamped(arrival.now_ms);
                if clamped {
                    self.clamped += 1;
                    tracing::warn!(
                        sensor = event.sensor,
                        "the controller state of this heater was dated ahead of this clock; clamped to now"
                    );
                }
                self.controller.restore_heater(event.sensor, memory);
            }
        }
        let cycle = |c: &Controller| c.sensor(event.sensor).and_then(|s| s.cycle);
        let before = cycle(&self.controller);
        let decided = self
            .controller
            .on_reading_at(event.sensor, event.reading(), arrival);
        if cycle(&self.controller) != before {
            self.cycles_started.push(event.sensor);
        }
        decided
    }

    /// Heater memories restored with a future time and clamped.
    pub fn clamped(&self) -> u64 {
        self.clamped
    }

    /// Failsafe Offs for silent sensors at `now_ms`.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Decision> {
        self.controller.tick(now_ms)
    }

    /// The changelog records that explain `decisions`: each commanded heater's memory as it is now (after
    /// the whole batch), one record per sensor — and of each heater whose TPI cycle changed since the last
    /// call, commanded or not.
    pub fn memories_for(&mut self, decisions: &[Decision]) -> Vec<HeaterMemoryRecord> {
        let mut sensors: Vec<SensorId> = decisions.iter().map(|d| d.sensor).collect();
        sensors.append(&mut self.cycles_started);
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

    /// The core's counters, with the setpoint records the table refused counted as rejected setpoints.
    pub fn stats(&self) -> Stats {
        let mut stats = self.controller.stats();
        stats.setpoints_rejected += self.refused_setpoints;
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use setpoint_control::{Command, Setpoint};

    fn setpoint(sensor: SensorId, t_ms: i64) -> SetpointChange {
        SetpointChange::new(sensor, Setpoint::new(20.0, 1.0, 1.0), 1, "", t_ms)
    }

    fn at(now_ms: i64) -> Arrival {
        Arrival::at(now_ms)
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
        old.apply_setpoint(&setpoint(1, 0), at(0)).expect("valid");
        let on = old
            .decide(0, &reading(1, 1_000, 10.0), at(1_000))
            .expect("ok")
            .expect("On");
        let records = old.memories_for(&[on]);
        assert_eq!(records.len(), 1);

        let mut new = Join::new(config);
        new.apply_setpoint(&setpoint(1, 0), at(0)).expect("valid");
        new.remember(records[0]);
        // Replayed from an older committed offset: already decided, no repeat.
        assert_eq!(new.decide(0, &reading(1, 1_000, 10.0), at(6_000)), Ok(None));
        // Within the dwell of the previous owner's On: held.
        assert_eq!(new.decide(0, &reading(1, 5_000, 25.0), at(6_000)), Ok(None));
        let off = new
            .decide(0, &reading(1, 11_000, 25.0), at(11_000))
            .expect("ok")
            .expect("Off");
        assert_eq!(off.command, Command::Off);
    }

    #[test]
    fn a_released_sensor_is_restored_from_the_changelog_when_it_comes_back() {
        let mut join = Join::new(Config::default());
        join.apply_setpoint(&setpoint(1, 0), at(0)).expect("valid");
        assert!(join
            .decide(2, &reading(1, 1_000, 10.0), at(1_000))
            .expect("ok")
            .is_some());
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
                cycle: None,
            },
        });
        assert_eq!(
            join.decide(2, &reading(1, 2_500, 25.0), at(2_500)),
            Ok(None),
            "Off is in force"
        );
        assert_eq!(
            join.decide(2, &reading(1, 3_000, 10.0), at(3_000))
                .expect("ok")
                .map(|d| d.command),
            Some(Command::On)
        );
    }

    const TEN_YEARS_MS: i64 = 10 * 365 * 24 * 3_600_000;

    /// The scenario of a device with a broken clock: one reading dated ten years ahead while the heater is
    /// On. Refused, it does not become the sensor's newest time, so the next correctly dated reading is
    /// decided (Off), and the failsafe still sees the silence on the controller's own clock.
    #[test]
    fn a_reading_from_the_future_is_refused_and_the_sensor_stays_under_control() {
        let config = Config {
            stale_after_ms: Some(4_000),
            ..Config::default()
        };
        let mut join = Join::new(config);
        join.apply_setpoint(&setpoint(1, 0), at(0)).expect("valid");
        let on = join.decide(0, &reading(1, 1_000, 10.0), at(1_000)).expect("ok");
        assert_eq!(on.map(|d| d.command), Some(Command::On));
        let future = join.decide(0, &reading(1, TEN_YEARS_MS, 30.0), at(2_000));
        assert!(
            matches!(future, Err(ReadingError::FromTheFuture(e)) if e.ahead_ms == TEN_YEARS_MS - 2_000),
            "{future:?}"
        );
        let off = join
            .decide(0, &reading(1, 3_000, 30.0), at(3_000))
            .expect("decided");
        assert_eq!(off.map(|d| d.command), Some(Command::Off));
        // Silent since 3 s on this clock: the failsafe has nothing to do (Off is in force) but does run.
        join.decide(0, &reading(1, 4_000, 10.0), at(4_000))
            .expect("On again");
        assert!(join.tick(8_000).is_empty(), "4 s of silence is not more than 4 s");
        let failsafe = join.tick(8_001);
        assert_eq!(failsafe.len(), 1);
        assert_eq!(failsafe[0].command, Command::Off);
        // A refused setpoint from the future never takes effect.
        let ahead = SetpointChange {
            t_ms: TEN_YEARS_MS,
            ..setpoint(1, 0)
        };
        assert!(join.apply_setpoint(&ahead, at(9_000)).is_err());
    }

    /// Silence is measured when readings arrive, not by their event times: a device whose clock runs an
    /// hour behind (within no skew bound: behind is not refused) still is not "silent for an hour".
    #[test]
    fn the_failsafe_measures_silence_on_the_controllers_clock() {
        let config = Config {
            stale_after_ms: Some(4_000),
            ..Config::default()
        };
        let mut join = Join::new(config);
        join.apply_setpoint(&setpoint(1, 0), at(0)).expect("valid");
        let hour = 3_600_000;
        join.decide(0, &reading(1, 1_000, 10.0), at(hour)).expect("On");
        assert!(join.tick(hour + 1_000).is_empty(), "heard a second ago");
        assert_eq!(join.tick(hour + 4_001).len(), 1, "silent for 4 s on this clock");
    }

    /// A changelog record written with a time ahead of this clock (a controller with a wrong clock, or a
    /// reading accepted before these checks existed) is clamped on restore: the next reading is decided.
    #[test]
    fn a_heater_memory_from_the_future_is_clamped_on_restore() {
        let mut join = Join::new(Config::default());
        join.apply_setpoint(&setpoint(1, 0), at(0)).expect("valid");
        join.remember(HeaterMemoryRecord {
            sensor: 1,
            memory: HeaterMemory {
                last_command: Some(Command::On),
                last_change_ms: Some(TEN_YEARS_MS),
                newest_ms: Some(TEN_YEARS_MS),
                last_temperature: Some(10.0),
                stale: false,
                cycle: None,
            },
        });
        let off = join
            .decide(0, &reading(1, 5_000, 30.0), at(5_000))
            .expect("decided");
        assert_eq!(off.map(|d| d.command), Some(Command::Off));
        assert_eq!(join.clamped(), 1);
    }
}
