//! Over 400 lines on purpose: the two resolutions and the budget that moves rooms between them are one
//! mechanism; a room's own rings are in `room.rs`.
//!
//! What the hub keeps of each sensor for clients that arrive later: the thinned readings, the heater
//! decisions, the last command and the setpoint changes over the backfill window, bounded per sensor *and*
//! in total. Part of [`super::state::HubState`], which decides what enters it; this module only keeps it and
//! answers from it.
//!
//! **Two resolutions, one budget.** A building of 100,000 rooms cannot keep every room's window at full
//! resolution (about 4.6 KB a room at a reading every 10 s, more at faster rates), and most rooms are watched
//! by nobody. So every room keeps a *coarse* history — at most [`COARSE_READINGS`] readings (one per
//! `backfill_ms / COARSE_READINGS`, 15 s for the 15-minute window) and at most [`COARSE_DECISIONS`]
//! decisions (one per 1/24 of the window, the newest standing for its stretch), allocated to size — and rooms someone watched recently keep the *fine* one (one reading per
//! `backfill_ms / backfill_max_per_sensor`, 0.5 s), as long as all fine rooms together fit
//! [`HubOptions::fine_budget_bytes`]. A room is fine from its first reading and whenever a client views it;
//! past the budget the least recently viewed rooms are thinned to coarse. A small site never reaches the
//! budget, so nothing changes for it; a large one pays a fixed amount per room plus the budget.
//!
//! Why not read a newly watched room's history from the bus instead: on Kafka that is a scan of every
//! partition of `sensor` and `heatercontrol` over the window (9 million records at 10,000 readings/s) per
//! subscription, and the embedded bus keeps about 100 s at that rate. The bridge already reads every record
//! live; keeping a bounded copy per room is what Kafka Streams would do with a local store.
//!
//! Setpoint changes are kept per sensor (the last [`CHANGES_PER_SENSOR`]) and in total (at most
//! [`HubOptions::changes_budget`], the oldest anywhere going first), so a schedule stepping every room for
//! months does not grow the bridge without bound.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use super::room::{Room, COARSE_DECISIONS, COARSE_READINGS};
use setpoint_control::{Command, Decision, SensorId, SensorReading, TimeMs};
use setpoint_wire::api::SensorHistory;
use setpoint_wire::ws::{
    DecisionsBatch, ReadingsBatch, ServerMessage, SetpointChangeEntry, SetpointHistoryMsg,
};

/// Most readings (or decisions) in one frame, so a large history or a replay arrives in digestible pieces.
pub const BACKFILL_FRAME_ITEMS: usize = 5_000;

/// Setpoint changes kept per sensor for the change history.
pub const CHANGES_PER_SENSOR: usize = 200;

/// Decisions kept per fine room whatever their age: a heater that flaps still has a bounded history.
const DECISIONS_PER_SENSOR: usize = 5_000;

/// Default of [`HubOptions::fine_budget_bytes`]: 64 MiB, the full window of about 14,000 rooms reporting
/// every 10 s, or 2,300 reporting twice a second.
pub const DEFAULT_FINE_BUDGET_BYTES: usize = 64 << 20;

/// Default of [`HubOptions::changes_budget`]: about 65 MB of change history in all.
pub const DEFAULT_CHANGES_BUDGET: usize = 500_000;

/// How the hub bounds its memory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HubOptions {
    /// Readings and decisions older than this (relative to the newest of their sensor) leave the backfill:
    /// the dashboard's widest chart window.
    pub backfill_ms: i64,
    /// Readings a fine room keeps: older readings are thinned to one per `backfill_ms / this`, so the
    /// backfill covers the whole window at any reading rate and its size stays bounded.
    pub backfill_max_per_sensor: usize,
    /// Bytes of readings and decisions the fine rooms may hold together (see the module's documentation).
    pub fine_budget_bytes: usize,
    /// Setpoint changes kept in all, over every sensor.
    pub changes_budget: usize,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            backfill_ms: 15 * 60_000,
            backfill_max_per_sensor: 1_800,
            fine_budget_bytes: DEFAULT_FINE_BUDGET_BYTES,
            changes_budget: DEFAULT_CHANGES_BUDGET,
        }
    }
}

impl HubOptions {
    /// Least time between two readings of one room kept, and how many it keeps, at either resolution.
    fn thinning(&self, fine: bool) -> (i64, usize) {
        let max = if fine {
            self.backfill_max_per_sensor.max(1)
        } else {
            COARSE_READINGS
        };
        (self.backfill_ms / max as i64, max)
    }
}

/// The sensors the bridge knows, and what it keeps of each.
#[derive(Debug)]
pub struct History {
    options: HubOptions,
    sensors: BTreeSet<SensorId>,
    rooms: HashMap<SensorId, Room>,
    /// Readings received since the last flush; they enter the rooms when flushed, so history and batches
    /// never overlap.
    pending: Vec<SensorReading>,
    /// Sensors whose last command is On, kept as commands arrive (the status frame's count).
    heating: usize,
    /// The fine rooms, least recently viewed first.
    fine_order: BTreeMap<u64, SensorId>,
    /// What the fine rooms take ([`Room::bytes`]).
    fine_bytes: usize,
    next_stamp: u64,
    /// Every change kept, oldest first, by sensor and number (a number no longer at its sensor's front was
    /// already dropped by the per-sensor bound).
    changes_order: VecDeque<(SensorId, u64)>,
}

impl History {
    pub fn new(options: HubOptions) -> Self {
        Self {
            options,
            sensors: BTreeSet::new(),
            rooms: HashMap::new(),
            pending: Vec::new(),
            heating: 0,
            fine_order: BTreeMap::new(),
            fine_bytes: 0,
            next_stamp: 0,
            changes_order: VecDeque::new(),
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

    /// The room of `sensor`, created fine (a new room is as recent as it gets).
    fn room(&mut self, sensor: SensorId) -> &mut Room {
        if !self.rooms.contains_key(&sensor) {
            self.sensors.insert(sensor);
            let stamp = self.stamp();
            self.fine_order.insert(stamp, sensor);
            self.rooms.insert(
                sensor,
                Room {
                    fine: Some(stamp),
                    ..Room::default()
                },
            );
        }
        self.rooms.entry(sensor).or_default()
    }

    fn stamp(&mut self) -> u64 {
        self.next_stamp += 1;
        self.next_stamp
    }

    /// An admitted reading, held until the next flush.
    pub fn add_reading(&mut self, reading: SensorReading) {
        self.room(reading.sensor);
        self.pending.push(reading);
    }

    /// Moves the readings received since the last flush into the rooms, and returns them for the clients.
    pub fn flush(&mut self) -> Vec<SensorReading> {
        let items = std::mem::take(&mut self.pending);
        let keep_ms = self.options.backfill_ms;
        for item in &items {
            let Some(room) = self.rooms.get_mut(&item.sensor) else {
                continue;
            };
            if room.newest.is_none_or(|n| item.t_ms >= n.t_ms) {
                room.newest = Some(item.reading());
            }
            let (spacing, max) = self.options.thinning(room.fine.is_some());
            if room
                .kept
                .back()
                .is_some_and(|last| item.t_ms - last.t_ms < spacing)
            {
                continue;
            }
            let before = room.bytes();
            // Room made before the push, so a full coarse ring never reallocates.
            let ring = &mut room.kept;
            while ring.len() >= max || ring.front().is_some_and(|f| item.t_ms - f.t_ms > keep_ms) {
                ring.pop_front();
            }
            ring.push_back(item.reading());
            if room.fine.is_some() {
                self.fine_bytes = (self.fine_bytes + room.bytes()).saturating_sub(before);
            }
        }
        self.enforce_budget();
        items
    }

    /// An admitted heater command: the sensor's last command, and a step of its heater strip.
    pub fn add_decision(&mut self, decision: Decision) {
        let backfill_ms = self.options.backfill_ms;
        let room = self.room(decision.sensor);
        let on = |d: &Decision| d.command == Command::On;
        let was_on = room.decisions.back().is_some_and(on);
        let before = room.bytes();
        let max = if room.fine.is_some() {
            DECISIONS_PER_SENSOR
        } else {
            COARSE_DECISIONS
        };
        let ring = &mut room.decisions;
        let n = ring.len();
        if room.fine.is_none() && n >= 2 && decision.t_ms - ring[n - 2].t_ms <= backfill_ms / max as i64 {
            // Coarse: one decision per stretch of the window, the newest standing for it (and for the
            // heater's last command) until the stretch is over.
            ring.pop_back();
        }
        while ring.len() >= max {
            ring.pop_front();
        }
        ring.push_back(decision);
        // Keep the newest decision before the window too: it is the heater's state where the window starts.
        let cutoff = decision.t_ms - backfill_ms;
        while ring.len() > 1 && ring[1].t_ms < cutoff {
            ring.pop_front();
        }
        let grown = room.bytes() - before.min(room.bytes());
        let fine = room.fine.is_some();
        self.heating = self.heating + usize::from(on(&decision)) - usize::from(was_on);
        if fine {
            self.fine_bytes += grown;
            self.enforce_budget();
        }
    }

    /// A setpoint change that took effect, for the change history.
    pub fn add_change(&mut self, sensor: SensorId, entry: SetpointChangeEntry) {
        let number = self.stamp();
        let changes = &mut self.room(sensor).changes;
        changes.push_back((number, entry));
        if changes.len() > CHANGES_PER_SENSOR {
            changes.pop_front();
        }
        self.changes_order.push_back((sensor, number));
        // Bounding the order bounds the changes: each kept change has its place in it.
        while self.changes_order.len() > self.options.changes_budget {
            let Some((sensor, number)) = self.changes_order.pop_front() else {
                break;
            };
            if let Some(changes) = self.rooms.get_mut(&sensor).map(|r| &mut r.changes) {
                if changes.front().is_some_and(|(n, _)| *n == number) {
                    changes.pop_front();
                }
            }
        }
    }

    /// Clients view `sensors`: they become the most recent fine rooms (a coarse one grows fine from now on).
    pub fn viewed(&mut self, sensors: impl IntoIterator<Item = SensorId>) {
        for sensor in sensors {
            let stamp = self.next_stamp + 1;
            let Some(room) = self.rooms.get_mut(&sensor) else {
                continue;
            };
            self.next_stamp = stamp;
            match room.fine.replace(stamp) {
                Some(old) => {
                    self.fine_order.remove(&old);
                }
                None => self.fine_bytes += room.bytes(),
            }
            self.fine_order.insert(stamp, sensor);
        }
        self.enforce_budget();
    }

    /// Thins the least recently viewed fine rooms to coarse until the fine ones fit the budget.
    fn enforce_budget(&mut self) {
        let spacing = self.options.thinning(false).0;
        while self.fine_bytes > self.options.fine_budget_bytes {
            let Some((_, sensor)) = self.fine_order.pop_first() else {
                break;
            };
            let Some(room) = self.rooms.get_mut(&sensor) else {
                continue;
            };
            self.fine_bytes = self.fine_bytes.saturating_sub(room.bytes());
            room.fine = None;
            room.coarsen(spacing, self.options.backfill_ms / COARSE_DECISIONS as i64);
        }
    }

    /// The newest reading of a sensor, as of the last flush.
    pub fn newest(&self, sensor: SensorId) -> Option<SensorReading> {
        let room = self.rooms.get(&sensor)?;
        room.newest.map(|r| SensorReading::new(sensor, r))
    }

    /// The last command seen for a sensor.
    pub fn command(&self, sensor: SensorId) -> Option<&Decision> {
        self.rooms.get(&sensor)?.decisions.back()
    }

    /// How many sensors' last command is On.
    pub fn heating(&self) -> usize {
        self.heating
    }

    /// How many rooms are kept at full resolution, and the bytes they take.
    pub fn fine(&self) -> (usize, usize) {
        (self.fine_order.len(), self.fine_bytes)
    }

    /// The frames `sensors`' charts and heater strips start from when a client begins to watch them,
    /// oldest first, in pieces of at most [`BACKFILL_FRAME_ITEMS`].
    pub fn backfill(&self, sensors: &[SensorId]) -> Vec<ServerMessage> {
        let rooms = || sensors.iter().filter_map(|&s| Some((s, self.rooms.get(&s)?)));
        let mut items: Vec<SensorReading> = rooms()
            .flat_map(|(s, room)| room.kept.iter().map(move |r| SensorReading::new(s, *r)))
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
        let mut decisions: Vec<Decision> = rooms()
            .flat_map(|(_, room)| room.decisions.iter().copied())
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
            .rooms
            .get(&sensor)
            .map(|r| r.changes.iter().map(|(_, c)| c.clone()).collect())
            .unwrap_or_default();
        SetpointHistoryMsg { sensor, changes }
    }

    /// What is kept of a sensor between `since` and `until` (inclusive): the readings (the newest too,
    /// which thinning may have left out of the ring), decisions and setpoint changes.
    pub fn between(&self, sensor: SensorId, since: TimeMs, until: TimeMs) -> Option<SensorHistory> {
        let room = self.rooms.get(&sensor)?;
        let within = |t: TimeMs| (since..=until).contains(&t);
        let mut readings: Vec<SensorReading> = room
            .kept
            .iter()
            .filter(|r| within(r.t_ms))
            .map(|r| SensorReading::new(sensor, *r))
            .collect();
        if let Some(newest) = room.newest {
            if within(newest.t_ms) && readings.last().is_none_or(|last| last.t_ms < newest.t_ms) {
                readings.push(SensorReading::new(sensor, newest));
            }
        }
        Some(SensorHistory {
            sensor,
            since_ms: since,
            until_ms: until,
            kept_ms: self.options.backfill_ms,
            readings,
            decisions: room
                .decisions
                .iter()
                .filter(|d| within(d.t_ms))
                .copied()
                .collect(),
            changes: room
                .changes
                .iter()
                .filter(|(_, c)| within(c.t_ms))
                .map(|(_, c)| c.clone())
                .collect(),
        })
    }
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
