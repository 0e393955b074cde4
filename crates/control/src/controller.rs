//! The many-sensor controller and its snapshot (the what-if's pure replay is in `replay.rs`).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use crate::policy::{Policy, Tpi};
use crate::sensor::{HeaterMemory, ReadingOutcome, SensorState, VersionedSetpoint};
use crate::{Arrival, Config, Decision, Reading, ReadingError, SensorId, Setpoint, SetpointError, TimeMs};

/// Counters a runtime exports as metrics. Kept inside the controller so every path that changes state also
/// counts, with nothing to forget at the call sites.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub readings: u64,
    pub rejected_readings: u64,
    pub out_of_order: u64,
    pub decisions: u64,
    pub failsafes: u64,
    pub setpoints_applied: u64,
    pub setpoints_rejected: u64,
    /// Setpoint versions pushed out of a sensor's history by its bound before any reading used them.
    pub setpoint_versions_dropped: u64,
    /// Readings of TPI rooms with an outdoor term decided without an outdoor temperature: the outdoor
    /// sensor has not reported to this controller (not since it started, or its partition is another
    /// controller's), so the share lacked `k_ext`'s part.
    #[serde(default)]
    pub readings_without_outdoor: u64,
}

/// What a reading's room needs of the outdoors.
enum OutdoorTerm {
    /// No outdoor term (not TPI, or `k_ext` 0).
    None,
    /// An outdoor term, but its sensor has not reported to this controller.
    Unknown,
    Known(f64),
}

/// Sensor ids are small integers chosen by people, not attackers' keys into a shared table, and the map sits
/// on the hot path of every reading: a multiplicative hash is several times cheaper than SipHash and, unlike
/// `RandomState`, behaves the same natively and in WASM.
#[derive(Default, Clone, Copy)]
struct SensorIdHasher(u64);

impl Hasher for SensorIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_i32(&mut self, i: i32) {
        // Fibonacci hashing; the high bits carry the entropy hashbrown uses for its control bytes.
        self.0 = u64::from(i as u32).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Sensor id → slot in the controller's dense state vector.
///
/// Ids are usually small and dense (1..=N), so those are looked up in a plain array (4 bytes per id, no
/// hashing: 100k sensors fit in 400 KB, inside this machine's L2); any other id goes to a hash map. The array
/// only grows up to a few times the number of known sensors, so a stray id like 2³¹−1 cannot make it huge.
#[derive(Clone, Debug, Default)]
struct SlotIndex {
    /// `direct[id]` for ids in `0..direct.len()`; `NO_SLOT` where that id is unknown or lives in `hashed`.
    direct: Vec<u32>,
    hashed: HashMap<SensorId, u32, BuildHasherDefault<SensorIdHasher>>,
}

const NO_SLOT: u32 = u32::MAX;

impl SlotIndex {
    #[inline]
    fn get(&self, sensor: SensorId) -> Option<usize> {
        if let Some(&slot) = usize::try_from(sensor).ok().and_then(|i| self.direct.get(i)) {
            if slot != NO_SLOT {
                return Some(slot as usize);
            }
        }
        self.hashed.get(&sensor).map(|&slot| slot as usize)
    }

    /// Records a new sensor's slot. Slots are handed out in order, so `slot` is also how many sensors
    /// exist already, which bounds the direct array.
    fn insert(&mut self, sensor: SensorId, slot: usize) {
        let direct_limit = 1024usize.max(slot.saturating_mul(4));
        let slot = slot as u32;
        match usize::try_from(sensor) {
            Ok(i) if i < direct_limit => {
                if i >= self.direct.len() {
                    self.direct.resize(i + 1, NO_SLOT);
                }
                self.direct[i] = slot;
            }
            _ => {
                self.hashed.insert(sensor, slot);
            }
        }
    }
}

/// Holds the state of every sensor and applies the rule to each reading, setpoint and tick.
///
/// State is strictly per sensor: one sensor's readings never influence another's commands (a bug in one
/// reference implementation, which kept a single "last command" for all sensors).
///
/// Layout: a small index ([`SlotIndex`]) maps each id to a slot in a dense `Vec` of states, slots
/// handed out in first-seen order. Sensors report periodically, so readings keep arriving in roughly the
/// order the sensors were first seen, whatever their ids: the states are then walked almost sequentially
/// and the CPU's prefetcher hides the memory latency that a hash table of full states (scattered buckets of
/// ~120 bytes) pays on every reading once it outgrows the caches.
#[derive(Clone, Debug, Default)]
pub struct Controller {
    config: Config,
    index: SlotIndex,
    /// Parallel vectors: `ids[i]` owns `states[i]`. Sensors are never removed, so slots never move.
    ids: Vec<SensorId>,
    states: Vec<SensorState>,
    stats: Stats,
}

/// Everything needed to resume a controller with identical future decisions. The property tests and the
/// fuzz model round-trip it through JSON to prove the state is complete. (Restarts and handovers need less:
/// setpoints are rebuilt from their topic and each heater's memory comes from the controllers' changelog,
/// see [`HeaterMemory`].)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControllerSnapshot {
    pub config: Config,
    /// Sorted by sensor id, so equal states give equal snapshots.
    pub sensors: Vec<(SensorId, SensorState)>,
    pub stats: Stats,
}

impl Controller {
    /// A controller with no sensors yet; sensors appear with their first setpoint or reading.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            index: SlotIndex::default(),
            ids: Vec::new(),
            states: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Counters since start (or since the snapshot this controller was restored from).
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// One sensor's state, if the controller has heard of it.
    pub fn sensor(&self, sensor: SensorId) -> Option<&SensorState> {
        self.states.get(self.index.get(sensor)?)
    }

    /// All sensors, in no particular order.
    pub fn sensors(&self) -> impl Iterator<Item = (SensorId, &SensorState)> {
        self.ids.iter().copied().zip(self.states.iter())
    }

    /// The slot of `sensor`'s state, created (with no setpoint) on first sight.
    #[inline]
    fn slot(&mut self, sensor: SensorId) -> usize {
        match self.index.get(sensor) {
            Some(slot) => slot,
            None => {
                let slot = self.states.len();
                self.index.insert(sensor, slot);
                self.ids.push(sensor);
                self.states.push(SensorState::default());
                slot
            }
        }
    }

    /// Puts a setpoint in force for a sensor from its very next reading, replacing every other version:
    /// the reference thermostat's processing-order rule, used where there is no event time to go by (the
    /// reference trace, a browser previewing a slider). An invalid setpoint is refused and the previous one
    /// stays in force. `version` is recorded so decisions can say which setpoint they were made with.
    pub fn apply_setpoint(
        &mut self,
        sensor: SensorId,
        setpoint: Setpoint,
        version: u64,
    ) -> Result<(), SetpointError> {
        self.validate(&setpoint)?;
        let slot = self.slot(sensor);
        self.states[slot]
            .setpoints
            .replace(VersionedSetpoint { setpoint, version });
        self.stats.setpoints_applied += 1;
        Ok(())
    }

    /// Puts a setpoint in force for a sensor from event time `from_ms` on: readings dated at or after it
    /// (and before the next version) are decided with it, whichever arrived first. This is the as-of join
    /// the runtime uses. A version dated before readings already decided cannot change their commands; it
    /// applies from the next reading, unless a newer version supersedes it.
    pub fn apply_setpoint_at(
        &mut self,
        sensor: SensorId,
        setpoint: Setpoint,
        version: u64,
        from_ms: TimeMs,
    ) -> Result<(), SetpointError> {
        self.validate(&setpoint)?;
        let slot = self.slot(sensor);
        let dropped = self.states[slot]
            .setpoints
            .insert(from_ms, VersionedSetpoint { setpoint, version });
        self.stats.setpoints_applied += 1;
        self.stats.setpoint_versions_dropped += dropped as u64;
        Ok(())
    }

    fn validate(&mut self, setpoint: &Setpoint) -> Result<(), SetpointError> {
        self.config.limits.validate(setpoint).inspect_err(|_| {
            self.stats.setpoints_rejected += 1;
        })
    }

    /// Takes over a sensor's heater state from the controller-state changelog (another instance's, or an
    /// earlier run's): its next decision follows on from the last command that instance sent.
    pub fn restore_heater(&mut self, sensor: SensorId, memory: HeaterMemory) {
        let slot = self.slot(sensor);
        self.states[slot].restore_heater(memory);
    }

    /// Runs the rule for one reading. Returns the command to send, if any. A temperature that is not finite,
    /// or below absolute zero, is refused without touching state; a reading older than one already processed is ignored and counted.
    pub fn on_reading(
        &mut self,
        sensor: SensorId,
        reading: Reading,
    ) -> Result<Option<Decision>, ReadingError> {
        self.decide(sensor, reading, None)
    }

    /// Runs the rule for one reading received live (the runtime's entry point): as
    /// [`Controller::on_reading`], and also refused if its event time is further ahead of the arrival's
    /// reference time than the clock skew allows, or if it would add a sensor past `max_sensors`. The
    /// failsafe measures the sensor's silence from `arrival.now_ms`.
    pub fn on_reading_at(
        &mut self,
        sensor: SensorId,
        reading: Reading,
        arrival: Arrival,
    ) -> Result<Option<Decision>, ReadingError> {
        // The temperature is checked by the step itself, as for every reading.
        let checked = arrival
            .check(sensor, reading.t_ms, self.config.max_clock_skew_ms)
            .map_err(ReadingError::from)
            .and_then(|()| {
                let known = self.index.get(sensor).is_some();
                Ok(self.config.admit(sensor, known, self.ids.len())?)
            });
        if let Err(e) = checked {
            self.stats.rejected_readings += 1;
            return Err(e);
        }
        self.decide(sensor, reading, Some(arrival.now_ms))
    }

    fn decide(
        &mut self,
        sensor: SensorId,
        reading: Reading,
        heard_ms: Option<TimeMs>,
    ) -> Result<Option<Decision>, ReadingError> {
        let slot = self.slot(sensor);
        let outdoor = match self.outdoor_for(slot, reading.t_ms) {
            OutdoorTerm::None => None,
            OutdoorTerm::Unknown => {
                self.stats.readings_without_outdoor += 1;
                None
            }
            OutdoorTerm::Known(t) => Some(t),
        };
        match self.states[slot].step_with(&self.config, sensor, &reading, heard_ms, outdoor) {
            Ok((ReadingOutcome::Accepted, decision)) => {
                self.stats.readings += 1;
                if decision.is_some() {
                    self.stats.decisions += 1;
                }
                Ok(decision)
            }
            Ok((ReadingOutcome::OutOfOrder, _)) => {
                self.stats.out_of_order += 1;
                Ok(None)
            }
            Err(e) => {
                self.stats.rejected_readings += 1;
                Err(e)
            }
        }
    }

    /// The outdoor temperature a TPI room with an outdoor term would use for a reading at `t_ms`: the
    /// newest reading of its outdoor sensor this controller has taken (in log order, like every decision).
    #[inline]
    fn outdoor_for(&self, slot: usize, t_ms: TimeMs) -> OutdoorTerm {
        let outdoor = match self.states[slot].setpoints.at(t_ms).map(|s| s.setpoint.policy) {
            Some(Policy::Tpi(Tpi {
                outdoor_sensor: Some(outdoor),
                k_ext,
                ..
            })) if k_ext > 0.0 => outdoor,
            _ => return OutdoorTerm::None,
        };
        match self.sensor(outdoor).and_then(|s| s.last_temperature) {
            Some(t) => OutdoorTerm::Known(t),
            None => OutdoorTerm::Unknown,
        }
    }

    /// Forgets what this controller knows of a sensor's heater (last command, dwell, newest reading,
    /// staleness) but keeps its setpoint. Called when a rebalance moves the sensor to another controller
    /// instance: that instance may send commands meanwhile, so our memory of the last command would be
    /// wrong if the sensor ever came back, and could suppress a command the heater needs.
    pub fn release(&mut self, sensor: SensorId) {
        let Some(slot) = self.index.get(sensor) else {
            return;
        };
        if let Some(state) = self.states.get_mut(slot) {
            *state = SensorState {
                setpoints: std::mem::take(&mut state.setpoints),
                ..SensorState::default()
            };
        }
    }

    /// Advances time to `now_ms` for the stale-sensor failsafe. Returns failsafe Off commands, ordered by
    /// sensor id so every runtime emits them in the same order. Does nothing unless `stale_after_ms` is set.
    pub fn tick(&mut self, now_ms: TimeMs) -> Vec<Decision> {
        if self.config.stale_after_ms.is_none() {
            return Vec::new();
        }
        let config = &self.config;
        let mut out: Vec<Decision> = self
            .ids
            .iter()
            .zip(self.states.iter_mut())
            .filter_map(|(id, state)| state.check_stale(config, *id, now_ms))
            .collect();
        out.sort_by_key(|d| d.sensor);
        self.stats.decisions += out.len() as u64;
        self.stats.failsafes += out.len() as u64;
        out
    }

    /// A serializable copy of the whole state.
    pub fn snapshot(&self) -> ControllerSnapshot {
        let mut sensors: Vec<(SensorId, SensorState)> =
            self.sensors().map(|(id, s)| (id, s.clone())).collect();
        sensors.sort_by_key(|(id, _)| *id);
        ControllerSnapshot {
            config: self.config,
            sensors,
            stats: self.stats,
        }
    }

    /// Rebuilds a controller from a snapshot; its future decisions equal those the snapshotted one would
    /// have made.
    pub fn restore(snapshot: ControllerSnapshot) -> Self {
        let mut controller = Self::new(snapshot.config);
        controller.stats = snapshot.stats;
        for (id, state) in snapshot.sensors {
            let slot = controller.slot(id);
            controller.states[slot] = state;
        }
        controller
    }
}

#[cfg(test)]
mod tests;
