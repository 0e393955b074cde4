//! What the hub keeps of each sensor for clients that arrive later: the thinned readings, the heater
//! decisions, the last command and the setpoint changes over the backfill window, each bounded per sensor.
//! Part of [`super::state::HubState`], which decides what enters it; this module only keeps it and answers
//! from it.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use setpoint_control::{Decision, Reading, SensorId, SensorReading, TimeMs};
use setpoint_wire::api::SensorHistory;
use setpoint_wire::ws::{
    DecisionsBatch, ReadingsBatch, ServerMessage, SetpointChangeEntry, SetpointHistoryMsg,
};

/// Most readings (or decisions) in one frame, so a large history or a replay arrives in digestible pieces.
pub const BACKFILL_FRAME_ITEMS: usize = 5_000;

/// Setpoint changes kept per sensor for the change history.
pub const CHANGES_PER_SENSOR: usize = 200;

/// Decisions kept per sensor whatever their age: a heater that flaps still has a bounded history.
const DECISIONS_PER_SENSOR: usize = 5_000;

/// How the hub bounds its memory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HubOptions {
    /// Readings and decisions older than this (relative to the newest of their sensor) leave the backfill:
    /// the dashboard's widest chart window.
    pub backfill_ms: i64,
    /// Readings kept per sensor: older readings are thinned to one per `backfill_ms / this`, so the backfill
    /// covers the whole window at any reading rate and its size stays bounded.
    pub backfill_max_per_sensor: usize,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            backfill_ms: 15 * 60_000,
            backfill_max_per_sensor: 1_800,
        }
    }
}

impl HubOptions {
    /// Least time between two readings of one sensor kept for the backfill.
    fn backfill_spacing_ms(&self) -> i64 {
        self.backfill_ms / self.backfill_max_per_sensor.max(1) as i64
    }
}

/// One sensor's readings for new clients: the thinned backfill ring, and the newest reading (which the
/// thinning may have left out of the ring), both as of the last flush. Kept without the sensor id, which the
/// map holds once: 16 bytes a reading instead of 24, on every room of a building.
#[derive(Debug)]
struct ReadingHistory {
    kept: VecDeque<Reading>,
    newest: Reading,
}

/// The sensors the bridge knows, and what it keeps of each.
#[derive(Debug)]
pub struct History {
    options: HubOptions,
    sensors: BTreeSet<SensorId>,
    readings: HashMap<SensorId, ReadingHistory>,
    /// Readings received since the last flush; they enter `readings` when flushed, so history and batches
    /// never overlap.
    pending: Vec<SensorReading>,
    decisions: HashMap<SensorId, VecDeque<Decision>>,
    commands: BTreeMap<SensorId, Decision>,
    /// Sensors whose last command is On, kept as commands arrive (the status frame's count).
    heating: usize,
    changes: HashMap<SensorId, VecDeque<SetpointChangeEntry>>,
}

impl History {
    pub fn new(options: HubOptions) -> Self {
        Self {
            options,
            sensors: BTreeSet::new(),
            readings: HashMap::new(),
            pending: Vec::new(),
            decisions: HashMap::new(),
            commands: BTreeMap::new(),
            heating: 0,
            changes: HashMap::new(),
        }
    }

    pub fn knows(&self, sensor: SensorId) -> bool {
        self.sensors.contains(&sensor)
    }

    pub fn sensor_count(&self) -> usize {
        self.sensors.len()
    }

    /// Every sensor the bridge has heard of, sorted.
    pub fn sensors(&self) -> impl Iterator<Item = SensorId> + '_ {
        self.sensors.iter().copied()
    }

    /// The sensors with an id above `after` (all without one), sorted.
    pub fn sensors_after(&self, after: Option<SensorId>) -> impl Iterator<Item = SensorId> + '_ {
        use std::ops::Bound;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.sensors.range((from, Bound::Unbounded)).copied()
    }

    /// An admitted reading, held until the next flush.
    pub fn add_reading(&mut self, reading: SensorReading) {
        self.sensors.insert(reading.sensor);
        self.pending.push(reading);
    }

    /// Moves the readings received since the last flush into the rings, and returns them for the clients.
    pub fn flush(&mut self) -> Vec<SensorReading> {
        let items = std::mem::take(&mut self.pending);
        let (keep_ms, keep_max) = (self.options.backfill_ms, self.options.backfill_max_per_sensor);
        let spacing = self.options.backfill_spacing_ms();
        for item in &items {
            let history = self.readings.entry(item.sensor).or_insert(ReadingHistory {
                kept: VecDeque::new(),
                newest: item.reading(),
            });
            if item.t_ms >= history.newest.t_ms {
                history.newest = item.reading();
            }
            let ring = &mut history.kept;
            if ring.back().is_some_and(|last| item.t_ms - last.t_ms < spacing) {
                continue;
            }
            ring.push_back(item.reading());
            while ring.len() > keep_max || ring.front().is_some_and(|f| item.t_ms - f.t_ms > keep_ms) {
                ring.pop_front();
            }
        }
        items
    }

    /// An admitted heater command: the sensor's last command, and a step of its heater strip.
    pub fn add_decision(&mut self, decision: Decision) {
        self.sensors.insert(decision.sensor);
        let on = |d: &Decision| d.command == setpoint_control::Command::On;
        let was_on = self
            .commands
            .insert(decision.sensor, decision)
            .is_some_and(|d| on(&d));
        self.heating = self.heating + usize::from(on(&decision)) - usize::from(was_on);
        let ring = self.decisions.entry(decision.sensor).or_default();
        ring.push_back(decision);
        // Keep the newest decision before the window too: it is the heater's state where the window starts.
        let cutoff = decision.t_ms - self.options.backfill_ms;
        while ring.len() > DECISIONS_PER_SENSOR || (ring.len() > 1 && ring[1].t_ms < cutoff) {
            ring.pop_front();
        }
    }

    /// A setpoint change that took effect, for the change history.
    pub fn add_change(&mut self, sensor: SensorId, entry: SetpointChangeEntry) {
        self.sensors.insert(sensor);
        let changes = self.changes.entry(sensor).or_default();
        changes.push_back(entry);
        if changes.len() > CHANGES_PER_SENSOR {
            changes.pop_front();
        }
    }

    /// The newest reading of a sensor, as of the last flush.
    pub fn newest(&self, sensor: SensorId) -> Option<SensorReading> {
        self.readings
            .get(&sensor)
            .map(|h| SensorReading::new(sensor, h.newest))
    }

    /// The last command seen for a sensor.
    pub fn command(&self, sensor: SensorId) -> Option<&Decision> {
        self.commands.get(&sensor)
    }

    /// How many sensors' last command is On.
    pub fn heating(&self) -> usize {
        self.heating
    }

    /// The frames `sensors`' charts and heater strips start from when a client begins to watch them,
    /// oldest first, in pieces of at most [`BACKFILL_FRAME_ITEMS`].
    pub fn backfill(&self, sensors: &[SensorId]) -> Vec<ServerMessage> {
        let mut items: Vec<SensorReading> = sensors
            .iter()
            .filter_map(|&s| Some((s, self.readings.get(&s)?)))
            .flat_map(|(s, h)| h.kept.iter().map(move |r| SensorReading::new(s, *r)))
            .collect();
        items.sort_by_key(|i| (i.t_ms, i.sensor));
        let mut frames: Vec<ServerMessage> = items
            .chunks(BACKFILL_FRAME_ITEMS)
            .map(|c| {
                ServerMessage::Readings(ReadingsBatch {
                    items: c.to_vec(),
                    missed: 0,
                    backfill: true,
                })
            })
            .collect();
        let mut decisions: Vec<Decision> = sensors
            .iter()
            .filter_map(|s| self.decisions.get(s))
            .flat_map(|h| h.iter().copied())
            .collect();
        decisions.sort_by_key(|d| (d.t_ms, d.sensor));
        frames.extend(decisions.chunks(BACKFILL_FRAME_ITEMS).map(|c| {
            ServerMessage::Decisions(DecisionsBatch {
                items: c.to_vec(),
                backfill: true,
            })
        }));
        frames
    }

    /// A sensor's change history, as `setpoint_history` answers it.
    pub fn change_history(&self, sensor: SensorId) -> SetpointHistoryMsg {
        let changes = self
            .changes
            .get(&sensor)
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default();
        SetpointHistoryMsg { sensor, changes }
    }

    /// What is kept of a sensor between `since` and `until` (inclusive): the readings (the newest too,
    /// which thinning may have left out of the ring), decisions and setpoint changes.
    pub fn between(&self, sensor: SensorId, since: TimeMs, until: TimeMs) -> Option<SensorHistory> {
        if !self.knows(sensor) {
            return None;
        }
        let within = |t: TimeMs| (since..=until).contains(&t);
        let mut readings: Vec<SensorReading> = Vec::new();
        if let Some(h) = self.readings.get(&sensor) {
            readings.extend(
                h.kept
                    .iter()
                    .filter(|r| within(r.t_ms))
                    .map(|r| SensorReading::new(sensor, *r)),
            );
            if within(h.newest.t_ms) && readings.last().is_none_or(|last| last.t_ms < h.newest.t_ms) {
                readings.push(SensorReading::new(sensor, h.newest));
            }
        }
        let decisions = self
            .decisions
            .get(&sensor)
            .map(|d| d.iter().filter(|d| within(d.t_ms)).copied().collect())
            .unwrap_or_default();
        let changes = self
            .changes
            .get(&sensor)
            .map(|c| c.iter().filter(|c| within(c.t_ms)).cloned().collect())
            .unwrap_or_default();
        Some(SensorHistory {
            sensor,
            since_ms: since,
            until_ms: until,
            kept_ms: self.options.backfill_ms,
            readings,
            decisions,
            changes,
        })
    }
}
