//! Re-deciding every live reading in the browser and comparing with the server.
//!
//! The dashboard compiles the very control core the server runs. Feeding it the live readings and setpoints and
//! comparing its decisions with the server's `decision` messages turns the page into an independent witness: if
//! the two ever disagree, something between the bus and the controller is wrong (a lost setpoint, a reordered
//! stream, a buggy deployment), and the user sees it.
//!
//! It must never cry wolf, so the comparison is lazy and forgiving exactly where the protocol is ambiguous:
//!
//! * Readings arrive in ~50 ms batches and a decision may arrive before or after the batch holding its reading.
//!   Events are therefore queued in arrival order and only judged once they are `SETTLE_MS` old (by local
//!   arrival time), when every server decision about them has had time to arrive.
//! * The server applies a setpoint between two readings, and which two is not visible from here. Readings within
//!   `SETPOINT_AMBIGUITY_MS` of a setpoint change, or a server decision made under a setpoint version other than
//!   the one in force locally, are treated as ambiguous: a mismatch there re-synchronises the local state to the
//!   server's instead of raising an alarm.
//! * A server decision about a reading this tab never received (missed by a slow client, sent before the tab
//!   connected, or a stale-sensor failsafe, which has no reading) cannot be verified; it is adopted as the
//!   sensor's state so later readings are judged from the same starting point.
//! * History is not evidence. The backfill after `hello` — readings thinned by the server, and the
//!   decisions of the window — happened before the state `hello` describes: the readings are never judged
//!   and the decisions are never compared (a thinned series re-decided here would disagree with decisions
//!   made on the full one). A backfilled decision only moves a sensor's state forward if it is newer than
//!   what `hello` said, in case the two were not taken at the same instant; one that is also in the live
//!   stream is handed over once (the model passes on only decisions it did not hold).
//!
//! Each sensor's state is a [`SensorState`] stepped by the control crate's own step function — the one
//! [`setpoint_control::Controller::on_reading`] drives — held per sensor here so that it can be re-synchronised
//! to the server's state after an ambiguous stretch without rebuilding a whole controller.

use std::collections::{BTreeMap, HashMap, VecDeque};

use setpoint_control::{
    Config, Decision, DecisionCause, Policy, SensorId, SensorReading, SensorState, TimeMs, VersionedSetpoint,
};
use setpoint_wire::ws::SetpointMsg;

mod report;
#[cfg(test)]
mod tests;

pub use report::{CrossCheckStats, Divergence};

/// How long (local arrival time) an event waits before it is judged. Generous: in normal operation a decision
/// follows its reading within milliseconds.
const SETTLE_MS: f64 = 2_500.0;

/// Half-width, in event time, of the window around a setpoint change in which a mismatch is not an alarm.
const SETPOINT_AMBIGUITY_MS: TimeMs = 1_500;

#[derive(Clone, Debug)]
enum Event {
    Reading { item: SensorReading, arrived: f64 },
    Setpoint { msg: SetpointMsg, arrived: f64 },
    Backfill { decision: Decision, arrived: f64 },
}

impl Event {
    fn sensor(&self) -> SensorId {
        match self {
            Event::Reading { item, .. } => item.sensor,
            Event::Setpoint { msg, .. } => msg.sensor,
            Event::Backfill { decision, .. } => decision.sensor,
        }
    }

    fn arrived(&self) -> f64 {
        match self {
            Event::Reading { arrived, .. }
            | Event::Setpoint { arrived, .. }
            | Event::Backfill { arrived, .. } => *arrived,
        }
    }
}

#[derive(Clone, Debug, Default)]
struct PerSensor {
    state: SensorState,
    /// Server decisions not yet judged, by event time.
    server: BTreeMap<TimeMs, Decision>,
    /// Newest reading time that has *arrived* (queued, maybe not judged): anchors a setpoint's ambiguity window.
    arrived_newest: Option<TimeMs>,
    /// Event-time windows around setpoint changes, oldest first.
    ambiguous: VecDeque<(TimeMs, TimeMs)>,
}

/// The browser-side witness. Feed it live events in arrival order; call [`CrossCheck::settle`] once per frame.
#[derive(Clone, Debug, Default)]
pub struct CrossCheck {
    config: Config,
    sensors: HashMap<SensorId, PerSensor>,
    queue: VecDeque<Event>,
    divergence: Option<Divergence>,
    stats: CrossCheckStats,
}

impl CrossCheck {
    /// Starts over on a (re)connection: no room is watched yet. Also clears an old alarm.
    pub fn reset(&mut self, config: Config) {
        self.config = config;
        self.sensors.clear();
        self.queue.clear();
        self.divergence = None;
        self.stats = CrossCheckStats::default();
    }

    /// A room the tab starts watching, from its summary: the setpoint in force and the last command,
    /// exactly the state the server's controller is in for it at that moment. Whatever was held of the room
    /// before is dropped (it was not followed meanwhile).
    pub fn watch(&mut self, sensor: SensorId, setpoint: Option<&SetpointMsg>, command: Option<&Decision>) {
        self.forget(sensor);
        let s = self.sensors.entry(sensor).or_default();
        if let Some(sp) = setpoint.filter(|sp| self.config.limits.validate(&sp.setpoint()).is_ok()) {
            s.state.setpoints.replace(VersionedSetpoint {
                setpoint: sp.setpoint(),
                version: sp.version,
            });
        }
        if let Some(d) = command {
            adopt(&mut s.state, d);
        }
    }

    /// A room the tab no longer watches: its state and its events not yet judged are dropped (its live
    /// data stops, so they could only be judged against a gap).
    pub fn forget(&mut self, sensor: SensorId) {
        self.sensors.remove(&sensor);
        self.queue.retain(|e| e.sensor() != sensor);
    }

    /// A live reading the tab had not seen before (duplicates must be filtered by the caller).
    pub fn on_reading(&mut self, item: SensorReading, arrived: f64) {
        let s = self.sensors.entry(item.sensor).or_default();
        s.arrived_newest = Some(s.arrived_newest.map_or(item.t_ms, |n| n.max(item.t_ms)));
        self.queue.push_back(Event::Reading { item, arrived });
    }

    /// A live setpoint change. Opens an ambiguity window around the newest reading time seen for the sensor.
    pub fn on_setpoint(&mut self, msg: SetpointMsg, arrived: f64) {
        let s = self.sensors.entry(msg.sensor).or_default();
        if let Some(anchor) = s.arrived_newest.or(msg.t_ms) {
            s.ambiguous
                .push_back((anchor - SETPOINT_AMBIGUITY_MS, anchor + SETPOINT_AMBIGUITY_MS));
        }
        self.queue.push_back(Event::Setpoint { msg, arrived });
    }

    /// A decision from before this connection (the backfill after `hello`): never compared, only adopted
    /// — in arrival order with the live events — when newer than the sensor's state.
    pub fn on_backfill_decision(&mut self, decision: Decision, arrived: f64) {
        self.queue.push_back(Event::Backfill { decision, arrived });
    }

    /// A live decision from the server; judged when its reading is.
    pub fn on_server_decision(&mut self, d: Decision) {
        self.sensors.entry(d.sensor).or_default().server.insert(d.t_ms, d);
    }

    /// The server dropped readings for this client: the surviving ones sit after an unknown gap, so each is
    /// treated like a setpoint boundary (a mismatch there re-synchronises instead of alarming).
    pub fn on_missed(&mut self, items: &[SensorReading]) {
        for item in items {
            let s = self.sensors.entry(item.sensor).or_default();
            // From the last reading that did arrive (the gap starts there) to a little after this one.
            let from = s
                .arrived_newest
                .unwrap_or(item.t_ms)
                .min(item.t_ms - SETPOINT_AMBIGUITY_MS);
            s.ambiguous.push_back((from, item.t_ms + SETPOINT_AMBIGUITY_MS));
        }
    }

    /// The first divergence since the last reset.
    pub fn divergence(&self) -> Option<&Divergence> {
        self.divergence.as_ref()
    }

    /// Counters since the last reset.
    pub fn stats(&self) -> CrossCheckStats {
        self.stats
    }

    /// Judges every event that arrived at least `SETTLE_MS` before `now`. Returns `true` when this call found
    /// the first divergence.
    pub fn settle(&mut self, now: f64) -> bool {
        let had = self.divergence.is_some();
        while self.queue.front().is_some_and(|e| now - e.arrived() >= SETTLE_MS) {
            let Some(event) = self.queue.pop_front() else {
                break;
            };
            match event {
                Event::Setpoint { msg, .. } => self.apply_setpoint(&msg),
                Event::Reading { item, .. } => self.judge(item),
                Event::Backfill { decision, .. } => self.catch_up(&decision),
            }
        }
        !had && self.divergence.is_some()
    }

    fn catch_up(&mut self, d: &Decision) {
        let state = &mut self.sensors.entry(d.sensor).or_default().state;
        if state.last_change_ms.is_none_or(|t| d.t_ms > t) {
            adopt(state, d);
            self.stats.adopted += 1;
        }
    }

    fn apply_setpoint(&mut self, msg: &SetpointMsg) {
        let config = self.config;
        let s = self.sensors.entry(msg.sensor).or_default();
        let sp = msg.setpoint();
        // The controller refuses an invalid setpoint and keeps the previous one; so does its witness.
        if config.limits.validate(&sp).is_ok() {
            let newer = s.state.setpoint().is_none_or(|cur| msg.version >= cur.version);
            if newer {
                s.state.setpoints.replace(VersionedSetpoint {
                    setpoint: sp,
                    version: msg.version,
                });
            }
        }
    }

    fn judge(&mut self, item: SensorReading) {
        let config = self.config;
        let s = self.sensors.entry(item.sensor).or_default();

        // Server decisions about earlier moments that no reading here corresponds to: adopt them.
        while let Some((&t, _)) = s.server.first_key_value() {
            if t >= item.t_ms {
                break;
            }
            if let Some((_, d)) = s.server.pop_first() {
                adopt(&mut s.state, &d);
                self.stats.adopted += 1;
            }
        }
        while s.ambiguous.front().is_some_and(|(_, end)| *end < item.t_ms) {
            s.ambiguous.pop_front();
        }

        let before = s.state.clone();
        // A TPI room's cycle (when it started, which the server's heater memory holds) is not sent to the
        // page, so a witness starting mid-stream would cut its own cycles: such a room is followed, not
        // judged (the offline reference and the property tests check TPI instead).
        if before
            .setpoints
            .at(item.t_ms)
            .is_some_and(|v| matches!(v.setpoint.policy, Policy::Tpi(_)))
        {
            let server = s.server.remove(&item.t_ms);
            let _ = s.state.step(&config, item.sensor, &item.reading());
            follow_server(&mut s.state, server, &before);
            return;
        }
        let local = match s.state.step(&config, item.sensor, &item.reading()) {
            Ok((_, d)) => d,
            // A reading the control core refuses (not finite, below absolute zero) is refused by the server's
            // controller too: nothing to compare.
            Err(_) => None,
        };
        self.stats.readings += 1;
        let server = s.server.remove(&item.t_ms);

        let local_cmd = local.map(|d| d.command);
        let server_cmd = server.map(|d| d.command);
        if local_cmd == server_cmd {
            if local_cmd.is_some() {
                self.stats.agreed += 1;
            }
            return;
        }

        let in_window = s
            .ambiguous
            .iter()
            .any(|(from, to)| (*from..=*to).contains(&item.t_ms));
        let local_version = before.setpoint().map(|v| v.version);
        let version_differs = server.is_some_and(|d| Some(d.setpoint_version) != local_version);
        let failsafe = server.is_some_and(|d| d.cause == DecisionCause::Failsafe);
        if in_window || version_differs || failsafe {
            self.stats.tolerated += 1;
            // Take the server's view of this reading, so the next readings start from the same state.
            follow_server(&mut s.state, server, &before);
            return;
        }
        if self.divergence.is_none() {
            self.divergence = Some(Divergence {
                sensor: item.sensor,
                t_ms: item.t_ms,
                temperature: item.temperature,
                local: local_cmd,
                server: server_cmd,
            });
        }
        // Keep following the server so one fault is reported once, not on every later reading.
        follow_server(&mut s.state, server, &before);
    }
}

/// Makes the local state match a server decision (what the server's controller state is right after it).
fn adopt(state: &mut SensorState, d: &Decision) {
    state.last_command = Some(d.command);
    state.last_change_ms = Some(d.t_ms);
}

/// After a mismatch, takes the server's outcome for the reading: its decision, or — when it decided nothing —
/// the heater state from before the local step.
fn follow_server(state: &mut SensorState, server: Option<Decision>, before: &SensorState) {
    match server {
        Some(d) => adopt(state, &d),
        None => {
            state.last_command = before.last_command;
            state.last_change_ms = before.last_change_ms;
        }
    }
}
