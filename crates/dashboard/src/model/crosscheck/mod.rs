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
//!   Events are therefore queued in arrival order and only judged once they are [`SETTLE_MS`] old (by local
//!   arrival time), when every server decision about them has had time to arrive.
//! * The server applies a setpoint between two readings, and which two is not visible from here. Readings within
//!   [`SETPOINT_AMBIGUITY_MS`] of a setpoint change, or a server decision made under a setpoint version other than
//!   the one in force locally, are treated as ambiguous: a mismatch there re-synchronises the local state to the
//!   server's instead of raising an alarm.
//! * A server decision about a reading this tab never received (missed by a slow client, sent before the tab
//!   connected, or a stale-sensor failsafe, which has no reading) cannot be verified; it is adopted as the
//!   sensor's state so later readings are judged from the same starting point.
//!
//! Each sensor's state is a [`SensorState`] stepped by the control crate's own step function — the one
//! [`setpoint_control::Controller::on_reading`] drives — held per sensor here so that it can be re-synchronised
//! to the server's state after an ambiguous stretch without rebuilding a whole controller.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;

use setpoint_control::{
    Command, Config, DecisionCause, Reading, SensorId, SensorState, TimeMs, VersionedSetpoint,
};
use setpoint_wire::ws::{DecisionMsg, ReadingItem, SetpointMsg};

/// How long (local arrival time) an event waits before it is judged. Generous: in normal operation a decision
/// follows its reading within milliseconds.
pub const SETTLE_MS: f64 = 2_500.0;

/// Half-width, in event time, of the window around a setpoint change in which a mismatch is not an alarm.
pub const SETPOINT_AMBIGUITY_MS: TimeMs = 1_500;

/// The first disagreement found. Kept until the next (re)connect so it cannot flash by unnoticed.
#[derive(Clone, Debug, PartialEq)]
pub struct Divergence {
    pub sensor: SensorId,
    pub t_ms: TimeMs,
    pub temperature: f64,
    /// What the browser's control core decided for this reading (`None`: nothing).
    pub local: Option<Command>,
    /// What the server decided for this reading (`None`: nothing).
    pub server: Option<Command>,
}

fn describe(c: Option<Command>) -> &'static str {
    match c {
        Some(Command::On) => "ON",
        Some(Command::Off) => "OFF",
        None => "no change",
    }
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sensor {} at t={} ms ({:.2} °C): server decided {}, the browser's control core decided {}",
            self.sensor,
            self.t_ms,
            self.temperature,
            describe(self.server),
            describe(self.local)
        )
    }
}

/// Counters shown next to the cross-check status, so "no divergence" visibly means "checked N decisions".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrossCheckStats {
    /// Readings judged.
    pub readings: u64,
    /// Decisions on which both sides agreed.
    pub agreed: u64,
    /// Mismatches forgiven because they fell in an ambiguous stretch.
    pub tolerated: u64,
    /// Server decisions adopted without verification (no reading here to check them against).
    pub adopted: u64,
}

#[derive(Clone, Debug)]
enum Event {
    Reading { item: ReadingItem, arrived: f64 },
    Setpoint { msg: SetpointMsg, arrived: f64 },
}

impl Event {
    fn arrived(&self) -> f64 {
        match self {
            Event::Reading { arrived, .. } | Event::Setpoint { arrived, .. } => *arrived,
        }
    }
}

#[derive(Clone, Debug, Default)]
struct PerSensor {
    state: SensorState,
    /// Server decisions not yet judged, by event time.
    server: BTreeMap<TimeMs, DecisionMsg>,
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
    /// Starts over from a `hello`: the setpoints in force and each sensor's last command, exactly the state the
    /// server's controller is in at that moment. Called on every (re)connect, which also clears an old alarm.
    pub fn reset(&mut self, config: Config, setpoints: &[SetpointMsg], commands: &[DecisionMsg]) {
        self.config = config;
        self.sensors.clear();
        self.queue.clear();
        self.divergence = None;
        self.stats = CrossCheckStats::default();
        for sp in setpoints {
            let s = self.sensors.entry(sp.sensor).or_default();
            if config.limits.validate(&sp.setpoint()).is_ok() {
                s.state.setpoints.replace(VersionedSetpoint {
                    setpoint: sp.setpoint(),
                    version: sp.version,
                });
            }
        }
        for d in commands {
            let s = self.sensors.entry(d.sensor).or_default();
            s.state.last_command = Some(d.command);
            s.state.last_change_ms = Some(d.t_ms);
        }
    }

    /// A live reading the tab had not seen before (duplicates must be filtered by the caller).
    pub fn on_reading(&mut self, item: ReadingItem, arrived: f64) {
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

    /// A decision from the server; judged when its reading is.
    pub fn on_server_decision(&mut self, d: DecisionMsg) {
        self.sensors.entry(d.sensor).or_default().server.insert(d.t_ms, d);
    }

    /// The server dropped readings for this client: the surviving ones sit after an unknown gap, so each is
    /// treated like a setpoint boundary (a mismatch there re-synchronises instead of alarming).
    pub fn on_missed(&mut self, items: &[ReadingItem]) {
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

    /// Events waiting to be judged (for tests and diagnostics).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Judges every event that arrived at least [`SETTLE_MS`] before `now`. Returns `true` when this call found
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
            }
        }
        !had && self.divergence.is_some()
    }

    /// Forces every queued event to be judged now (end of a test, or before a reset).
    pub fn settle_all(&mut self) -> bool {
        self.settle(f64::INFINITY)
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

    fn judge(&mut self, item: ReadingItem) {
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
        let local = match s.state.step(
            &config,
            item.sensor,
            &Reading {
                t_ms: item.t_ms,
                temperature: item.temperature,
            },
        ) {
            Ok((_, d)) => d,
            // A non-finite temperature is refused by the server's controller too: nothing to compare.
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
            match server {
                Some(d) => adopt(&mut s.state, &d),
                None => {
                    s.state.last_command = before.last_command;
                    s.state.last_change_ms = before.last_change_ms;
                }
            }
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
        match server {
            Some(d) => adopt(&mut s.state, &d),
            None => {
                s.state.last_command = before.last_command;
                s.state.last_change_ms = before.last_change_ms;
            }
        }
    }
}

/// Makes the local state match a server decision (what the server's controller state is right after it).
fn adopt(state: &mut SensorState, d: &DecisionMsg) {
    state.last_command = Some(d.command);
    state.last_change_ms = Some(d.t_ms);
}

#[cfg(test)]
mod tests {
    use super::*;
    use setpoint_control::replay;

    fn sp(sensor: SensorId, desired: f64, version: u64) -> SetpointMsg {
        SetpointMsg {
            sensor,
            desired,
            up_delta: 0.5,
            down_delta: 0.5,
            version,
            t_ms: None,
        }
    }

    fn item(sensor: SensorId, t_ms: TimeMs, temperature: f64) -> ReadingItem {
        ReadingItem {
            sensor,
            t_ms,
            temperature,
        }
    }

    /// Temperatures swinging through the band 20 ± 0.5 so the rule switches repeatedly.
    fn wave(sensor: SensorId, n: i64) -> Vec<ReadingItem> {
        (0..n)
            .map(|i| item(sensor, 1_000 + i * 100, 20.0 + 1.5 * ((i as f64) / 7.0).sin()))
            .collect()
    }

    /// What the server would send: the control core's own decisions for the same readings.
    fn server_decisions(readings: &[ReadingItem], setpoint: &SetpointMsg) -> Vec<DecisionMsg> {
        let rs: Vec<Reading> = readings.iter().map(ReadingItem::reading).collect();
        let vs = VersionedSetpoint {
            setpoint: setpoint.setpoint(),
            version: setpoint.version,
        };
        replay(
            &Config::default(),
            setpoint.sensor,
            &SensorState::default(),
            vs,
            &rs,
        )
        .unwrap_or_default()
        .iter()
        .map(DecisionMsg::from)
        .collect()
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn silent_when_server_agrees_even_if_decisions_arrive_early_or_late() {
        let setpoint = sp(1, 20.0, 1);
        let readings = wave(1, 200);
        let decisions = server_decisions(&readings, &setpoint);
        assert!(
            decisions.len() >= 4,
            "the fixture must actually switch ({})",
            decisions.len()
        );

        let mut cc = CrossCheck::default();
        cc.reset(Config::default(), &[setpoint], &[]);
        // Batches of 5 readings; decisions for a batch arrive alternately before and after it.
        let mut now = 0.0;
        for (i, batch) in readings.chunks(5).enumerate() {
            let ds: Vec<_> = decisions
                .iter()
                .filter(|d| batch.iter().any(|r| r.t_ms == d.t_ms))
                .copied()
                .collect();
            if i % 2 == 0 {
                ds.iter().for_each(|d| cc.on_server_decision(*d));
            }
            batch.iter().for_each(|r| cc.on_reading(*r, now));
            if i % 2 == 1 {
                ds.iter().for_each(|d| cc.on_server_decision(*d));
            }
            now += 50.0;
            assert!(!cc.settle(now));
        }
        cc.settle_all();
        assert_eq!(cc.divergence(), None);
        assert_eq!(cc.stats().agreed, decisions.len() as u64);
        assert_eq!(cc.stats().readings, 200);
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn fires_on_a_real_divergence_and_names_the_first_one() {
        let setpoint = sp(7, 20.0, 1);
        let readings = wave(7, 120);
        let mut decisions = server_decisions(&readings, &setpoint);
        // The server "forgets" its second decision.
        let dropped = decisions.remove(1);

        let mut cc = CrossCheck::default();
        cc.reset(Config::default(), &[setpoint], &[]);
        for r in &readings {
            cc.on_reading(*r, 0.0);
        }
        decisions.iter().for_each(|d| cc.on_server_decision(*d));
        assert!(
            !cc.settle(SETTLE_MS - 1.0),
            "nothing is judged before it has settled"
        );
        assert!(cc.settle(SETTLE_MS));
        let div = cc.divergence().cloned().expect("divergence");
        assert_eq!((div.sensor, div.t_ms), (7, dropped.t_ms));
        assert_eq!(div.local, Some(dropped.command));
        assert_eq!(div.server, None);
        assert!(div.to_string().contains("sensor 7"));
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn fires_when_server_uses_a_wrong_command() {
        let setpoint = sp(2, 20.0, 1);
        let readings = wave(2, 60);
        let mut decisions = server_decisions(&readings, &setpoint);
        decisions[0].command = match decisions[0].command {
            Command::On => Command::Off,
            Command::Off => Command::On,
        };
        let mut cc = CrossCheck::default();
        cc.reset(Config::default(), &[setpoint], &[]);
        decisions.iter().for_each(|d| cc.on_server_decision(*d));
        readings.iter().for_each(|r| cc.on_reading(*r, 0.0));
        assert!(cc.settle_all());
        let div = cc.divergence().cloned().expect("divergence");
        assert_eq!(div.t_ms, decisions[0].t_ms);
        assert_eq!(div.server, Some(decisions[0].command));
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn setpoint_change_applied_one_reading_apart_is_not_an_alarm() {
        // The room sits at 20.6 °C. Under 20 ± 0.5 that is above the band → Off; the user then moves the setpoint
        // to 22 ± 0.5 → On. The server applied it one reading *earlier* than its arrival order here suggests.
        let old = sp(3, 20.0, 1);
        let new = sp(3, 22.0, 2);
        let mut cc = CrossCheck::default();
        cc.reset(Config::default(), std::slice::from_ref(&old), &[]);
        let r = |i: i64| item(3, 1_000 + i * 100, 20.6);
        let off = DecisionMsg {
            sensor: 3,
            t_ms: 1_000,
            temperature: 20.6,
            command: Command::Off,
            setpoint_version: 1,
            cause: DecisionCause::Band,
        };
        cc.on_server_decision(off);
        cc.on_reading(r(0), 0.0);
        cc.on_reading(r(1), 0.0);
        // Server: applied v2 before reading 2 → On at reading 2. Locally the setpoint arrives after reading 2.
        cc.on_server_decision(DecisionMsg {
            t_ms: 1_200,
            command: Command::On,
            setpoint_version: 2,
            ..off
        });
        cc.on_reading(r(2), 0.0);
        cc.on_setpoint(new, 0.0);
        for i in 3..40 {
            cc.on_reading(r(i), 10.0);
        }
        cc.settle_all();
        assert_eq!(cc.divergence(), None, "{:?}", cc.divergence());
        assert_eq!(cc.stats().tolerated, 1);
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn reset_from_hello_starts_from_the_servers_last_command() {
        // The server's last command was On; a reading below the band must therefore not produce a new On.
        let setpoint = sp(4, 20.0, 3);
        let last = DecisionMsg {
            sensor: 4,
            t_ms: 500,
            temperature: 19.0,
            command: Command::On,
            setpoint_version: 3,
            cause: DecisionCause::Band,
        };
        let mut cc = CrossCheck::default();
        cc.reset(Config::default(), &[setpoint], &[last]);
        cc.on_reading(item(4, 1_000, 19.0), 0.0);
        cc.settle_all();
        assert_eq!(cc.divergence(), None);
        // A stale alarm from before a reconnect is cleared by reset.
        cc.on_reading(item(4, 2_000, 25.0), 0.0); // local Off, server silent → divergence
        cc.settle_all();
        assert!(cc.divergence().is_some());
        cc.reset(Config::default(), &[], &[]);
        assert_eq!(cc.divergence(), None);
        assert_eq!(cc.queued(), 0);
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn decisions_on_missed_readings_are_adopted_not_flagged() {
        let setpoint = sp(5, 20.0, 1);
        let readings = wave(5, 150);
        let decisions = server_decisions(&readings, &setpoint);
        let mut cc = CrossCheck::default();
        cc.reset(Config::default(), &[setpoint], &[]);
        decisions.iter().for_each(|d| cc.on_server_decision(*d));
        // This tab only received every third reading (slow client), and the server said so.
        let kept: Vec<_> = readings.iter().step_by(3).copied().collect();
        cc.on_missed(&kept);
        kept.iter().for_each(|r| cc.on_reading(*r, 0.0));
        cc.settle_all();
        assert_eq!(cc.divergence(), None, "{:?}", cc.divergence());
        assert!(
            cc.stats().adopted + cc.stats().tolerated > 0,
            "the gaps were noticed"
        );
    }
}
