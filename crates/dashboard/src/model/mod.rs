//! The dashboard's state and the reducer that applies server messages to it.
//!
//! Nothing here touches the DOM or the network: the socket layer hands in decoded messages and timestamps, the
//! UI reads the state and calls the editing methods. That keeps every rule a user depends on — no duplicated
//! chart points after a reconnect, a lost write reported as lost, a divergence raised only when real — testable
//! in plain Rust.

pub mod crosscheck;
pub mod editor;
pub mod format;
pub mod ring;
pub mod sensor;
pub mod whatif;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use setpoint_control::{Config, SensorId};
use setpoint_wire::ws::{
    BusStatus, ClientMessage, DecisionMsg, ErrorMsg, Hello, ReadingsBatch, ServerMessage, SetpointMsg,
    StatusMsg,
};

use crate::model::crosscheck::CrossCheck;
use crate::model::editor::{explain, Field};
use crate::model::sensor::SensorView;

/// Readings kept across all sensors (16 bytes each): about 24 MB, which holds 15 minutes at 10 Hz for up to
/// ~160 sensors and proportionally less history per sensor beyond that.
pub const POINT_BUDGET: usize = 1_500_000;
/// Never keep less than a minute at 10 Hz per sensor.
pub const MIN_POINTS_PER_SENSOR: usize = 600;
/// 15 minutes at 10 Hz.
pub const MAX_POINTS_PER_SENSOR: usize = 9_000;
/// Rows in the decision log.
pub const LOG_LEN: usize = 100;

/// The connection as the user sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConnState {
    /// First attempt, nothing received yet.
    #[default]
    Connecting,
    /// `hello` received on the current connection.
    Live,
    /// The connection dropped; a retry is scheduled or under way. The data shown is the last known.
    Reconnecting,
}

/// How to order the cards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SortBy {
    #[default]
    Id,
    /// Divergent, then stale, then out-of-band sensors first.
    Attention,
}

/// Which cards to show: the filter, the order and the page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewOpts {
    pub filter: String,
    pub sort: SortBy,
    pub page: usize,
    pub page_size: usize,
}

/// Rates derived from consecutive `status` messages (server-wide counters, so every tab shows the same).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    pub readings_per_s: Option<f64>,
    pub decisions_per_min: Option<f64>,
}

/// The whole dashboard state.
#[derive(Debug)]
pub struct Model {
    pub conn: ConnState,
    pub can_write: bool,
    pub config: Config,
    pub sensors: BTreeMap<SensorId, SensorView>,
    /// Latest decisions, newest first by event time.
    pub log: VecDeque<DecisionMsg>,
    pub status: Option<StatusMsg>,
    pub rates: Rates,
    /// Readings the server dropped for this tab because it read too slowly.
    pub missed_total: u64,
    pub crosscheck: CrossCheck,
    /// Server clock minus local clock, from the latest `hello`/`status`; charts and ages use server time.
    pub clock_offset: f64,
    /// A message for the header: an error not tied to a card, or a frame that could not be decoded.
    pub notice: Option<String>,
    /// Bumped on every change; the UI renders only when it moved.
    pub version: u64,
    /// Sensors with a debounced commit scheduled.
    commits_due: BTreeSet<SensorId>,
    /// Writes in flight, to route `ack`/`error` to their card.
    inflight: HashMap<String, SensorId>,
    next_request: u64,
    session: String,
}

impl Model {
    /// An empty model. `session` makes request ids unique across tabs and reloads.
    pub fn new(session: String) -> Self {
        Self {
            conn: ConnState::Connecting,
            can_write: false,
            config: Config::default(),
            sensors: BTreeMap::new(),
            log: VecDeque::with_capacity(LOG_LEN),
            status: None,
            rates: Rates::default(),
            missed_total: 0,
            crosscheck: CrossCheck::default(),
            clock_offset: 0.0,
            notice: None,
            version: 0,
            commits_due: BTreeSet::new(),
            inflight: HashMap::new(),
            next_request: 0,
            session,
        }
    }

    /// The text of `#conn-state`.
    pub fn conn_label(&self) -> &'static str {
        match self.conn {
            ConnState::Connecting => "connecting",
            ConnState::Reconnecting => "reconnecting",
            ConnState::Live if !self.can_write => "read-only",
            ConnState::Live => "live",
        }
    }

    /// Estimated server clock at local time `now`.
    pub fn server_now(&self, now: f64) -> f64 {
        now + self.clock_offset
    }

    fn capacity(&self) -> usize {
        (POINT_BUDGET / self.sensors.len().max(1)).clamp(MIN_POINTS_PER_SENSOR, MAX_POINTS_PER_SENSOR)
    }

    fn sensor_mut(&mut self, id: SensorId) -> &mut SensorView {
        let cap = self.capacity();
        self.sensors.entry(id).or_insert_with(|| SensorView::new(id, cap))
    }

    /// Decodes and applies one text frame. A frame that does not decode is reported, never a panic.
    pub fn on_text(&mut self, text: &str, now: f64) {
        match ServerMessage::from_json(text) {
            Ok(msg) => self.apply(msg, now),
            Err(e) => {
                self.notice = Some(format!(
                    "ignored a message the dashboard does not understand: {e}"
                ));
                self.version += 1;
            }
        }
    }

    /// The reducer: applies one server message received at local time `now`.
    pub fn apply(&mut self, msg: ServerMessage, now: f64) {
        match msg {
            ServerMessage::Hello(h) => self.on_hello(h, now),
            ServerMessage::Readings(b) => self.on_readings(b, now),
            ServerMessage::Decision(d) => self.on_decision(d),
            ServerMessage::Setpoint(s) => self.on_setpoint(s, now),
            ServerMessage::Ack { request_id } => {
                if let Some(sensor) = self.inflight.remove(&request_id) {
                    if let Some(v) = self.sensors.get_mut(&sensor) {
                        if v.editor.on_ack(&request_id) {
                            v.rev += 1;
                        }
                    }
                }
            }
            ServerMessage::Error(e) => self.on_error(e),
            ServerMessage::Status(s) => self.on_status(s, now),
        }
        self.version += 1;
    }

    /// Start of a (re)connection's state: setpoints, last commands and config are the server's, and the
    /// chart history already held is kept (the backfill that follows is merged into it without duplicates).
    fn on_hello(&mut self, h: Hello, now: f64) {
        self.conn = ConnState::Live;
        self.can_write = h.can_write;
        self.config = h.config;
        self.clock_offset = h.server_time_ms as f64 - now;
        self.rates = Rates::default();
        self.status = None;
        self.notice = None;
        // Size new rings for the full sensor count before creating them.
        for id in &h.sensors {
            if !self.sensors.contains_key(id) {
                let cap = (POINT_BUDGET / (self.sensors.len().max(h.sensors.len()).max(1)))
                    .clamp(MIN_POINTS_PER_SENSOR, MAX_POINTS_PER_SENSOR);
                self.sensors.insert(*id, SensorView::new(*id, cap));
            }
        }
        for sp in &h.setpoints {
            let v = self.sensor_mut(sp.sensor);
            v.editor.on_setpoint(sp);
            v.setpoint = Some(sp.clone());
        }
        for d in &h.commands {
            self.sensor_mut(d.sensor).decisions.insert(*d);
            self.log_insert(*d);
        }
        self.crosscheck.reset(h.config, &h.setpoints, &h.commands);
        for v in self.sensors.values_mut() {
            v.rev += 1;
        }
    }

    fn on_readings(&mut self, b: ReadingsBatch, now: f64) {
        if b.missed > 0 {
            self.missed_total += b.missed;
            if !b.backfill {
                self.crosscheck.on_missed(&b.items);
            }
        }
        let live = !b.backfill && self.conn == ConnState::Live;
        for item in b.items {
            let v = self.sensor_mut(item.sensor);
            if v.readings.insert(item.reading()) {
                v.rev += 1;
                // Only new live readings go to the cross-check: backfill happened before the state in `hello`.
                if live {
                    self.crosscheck.on_reading(item, now);
                }
            }
        }
    }

    fn on_decision(&mut self, d: DecisionMsg) {
        let v = self.sensor_mut(d.sensor);
        if v.decisions.insert(d) {
            v.rev += 1;
            self.log_insert(d);
        }
        self.crosscheck.on_server_decision(d);
    }

    fn on_setpoint(&mut self, s: SetpointMsg, now: f64) {
        let v = self.sensor_mut(s.sensor);
        if v.setpoint.as_ref().is_some_and(|cur| cur.version > s.version) {
            return; // an older broadcast overtaken by a newer one
        }
        v.editor.on_setpoint(&s);
        v.setpoint = Some(s.clone());
        v.rev += 1;
        self.crosscheck.on_setpoint(s, now);
    }

    fn on_error(&mut self, e: ErrorMsg) {
        let routed = e.request_id.as_ref().and_then(|id| self.inflight.remove(id));
        match routed.and_then(|sensor| self.sensors.get_mut(&sensor)) {
            Some(v) => {
                if let Some(current) = e.current.as_ref().filter(|c| c.sensor == v.id) {
                    // A conflict tells us the value in force; show it even before its broadcast arrives.
                    if v.setpoint
                        .as_ref()
                        .is_none_or(|cur| cur.version <= current.version)
                    {
                        v.setpoint = Some(current.clone());
                    }
                }
                v.editor.on_error(&e);
                v.rev += 1;
            }
            None => self.notice = Some(format!("server: {}", explain(e.code, &e.message))),
        }
    }

    fn on_status(&mut self, s: StatusMsg, now: f64) {
        if let Some(prev) = self.status {
            let dt = (s.server_time_ms - prev.server_time_ms) as f64 / 1000.0;
            if dt > 0.2 {
                let dr = s.readings_total.saturating_sub(prev.readings_total) as f64;
                let dd = s.decisions_total.saturating_sub(prev.decisions_total) as f64;
                self.rates = Rates {
                    readings_per_s: Some(dr / dt),
                    decisions_per_min: Some(dd * 60.0 / dt),
                };
            }
        }
        self.clock_offset = s.server_time_ms as f64 - now;
        self.status = Some(s);
    }

    /// Keeps the log sorted newest first and free of duplicates, whatever order decisions arrive in.
    fn log_insert(&mut self, d: DecisionMsg) {
        let mut idx = 0;
        for (i, e) in self.log.iter().enumerate() {
            if e.t_ms == d.t_ms && e.sensor == d.sensor {
                return;
            }
            if (e.t_ms, Reverse(e.sensor)) < (d.t_ms, Reverse(d.sensor)) {
                break;
            }
            idx = i + 1;
        }
        if idx >= LOG_LEN {
            return;
        }
        self.log.insert(idx, d);
        self.log.truncate(LOG_LEN);
    }

    /// The connection closed: show it, and fail writes that can no longer be answered.
    pub fn on_close(&mut self) {
        self.conn = ConnState::Reconnecting;
        self.inflight.clear();
        for v in self.sensors.values_mut() {
            let before = v.editor.status.clone();
            v.editor.on_disconnect();
            if v.editor.status != before {
                v.rev += 1;
            }
        }
        self.version += 1;
    }

    /// The user moved a slider or typed a number.
    pub fn edit(&mut self, sensor: SensorId, field: Field, value: f64) {
        if let Some(v) = self.sensors.get_mut(&sensor) {
            v.editor.edit(v.setpoint.as_ref(), field, value);
            v.rev += 1;
            self.version += 1;
        }
    }

    /// The user released a slider, pressed Enter or clicked Save: commit after the debounce.
    pub fn request_commit(&mut self, sensor: SensorId, now: f64) {
        if let Some(v) = self.sensors.get_mut(&sensor) {
            v.editor.request_commit(now);
            self.commits_due.insert(sensor);
        }
    }

    /// The user abandoned a draft.
    pub fn discard(&mut self, sensor: SensorId) {
        if let Some(v) = self.sensors.get_mut(&sensor) {
            v.editor.discard();
            self.commits_due.remove(&sensor);
            v.rev += 1;
            self.version += 1;
        }
    }

    /// Writes whose debounce has expired, ready to send. When not connected (or read-only), the drafts are
    /// kept and the card says why nothing was sent.
    pub fn take_due_commits(&mut self, now: f64) -> Vec<ClientMessage> {
        let due: Vec<SensorId> = self
            .commits_due
            .iter()
            .copied()
            .filter(|id| {
                self.sensors
                    .get(id)
                    .and_then(|v| v.editor.commit_due)
                    .is_none_or(|t| t <= now)
            })
            .collect();
        let mut out = Vec::new();
        for id in due {
            self.commits_due.remove(&id);
            let writable = self.conn == ConnState::Live && self.can_write;
            let request_id = format!("{}-{}", self.session, self.next_request);
            let limits = self.config.limits;
            let conn = self.conn;
            let Some(v) = self.sensors.get_mut(&id) else {
                continue;
            };
            v.rev += 1;
            self.version += 1;
            if !writable {
                v.editor.commit_due = None;
                if v.editor.draft.is_some() {
                    v.editor.status = editor::SaveStatus::Failed(
                        if conn == ConnState::Live {
                            "read-only: no write token"
                        } else {
                            "not connected; save again once live"
                        }
                        .to_owned(),
                    );
                }
                continue;
            }
            if let Some(req) = v
                .editor
                .commit(id, v.setpoint.as_ref(), &limits, request_id.clone(), now)
            {
                self.next_request += 1;
                self.inflight.insert(request_id, id);
                out.push(ClientMessage::SetSetpoint(req));
            }
        }
        out
    }

    /// A write could not be handed to the socket: say so on the card instead of leaving it pending.
    pub fn send_failed(&mut self, sensor: SensorId, why: &str) {
        self.inflight.retain(|_, s| *s != sensor);
        if let Some(v) = self.sensors.get_mut(&sensor) {
            v.editor.status = editor::SaveStatus::Failed(format!("not sent: {why}"));
            v.rev += 1;
            self.version += 1;
        }
    }

    /// Per-frame housekeeping: judge settled cross-check events and time out unanswered writes.
    pub fn tick(&mut self, now: f64) {
        if self.crosscheck.settle(now) {
            self.version += 1;
        }
        if self.inflight.is_empty() {
            return;
        }
        let mut timed_out = Vec::new();
        for (id, sensor) in &self.inflight {
            if let Some(v) = self.sensors.get_mut(sensor) {
                if v.editor.check_timeout(now) {
                    v.rev += 1;
                    timed_out.push(id.clone());
                }
            }
        }
        if !timed_out.is_empty() {
            for id in timed_out {
                self.inflight.remove(&id);
            }
            self.version += 1;
        }
    }

    /// Bus state for the header.
    pub fn bus(&self) -> Option<BusStatus> {
        self.status.map(|s| s.bus)
    }

    /// The sensors to show for `opts` (one page of them) and how many match the filter in total.
    pub fn visible(&self, opts: &ViewOpts, server_now: f64) -> (Vec<SensorId>, usize) {
        let filter = opts.filter.trim();
        let mut ids: Vec<SensorId> = self
            .sensors
            .keys()
            .copied()
            .filter(|id| filter.is_empty() || id.to_string().contains(filter))
            .collect();
        if opts.sort == SortBy::Attention {
            let divergent = self.crosscheck.divergence().map(|d| d.sensor);
            let key = |id: &SensorId| {
                let a = self
                    .sensors
                    .get(id)
                    .map(|v| v.attention(server_now, divergent == Some(*id)));
                (Reverse(a), *id)
            };
            ids.sort_by_cached_key(key);
        }
        let total = ids.len();
        let size = opts.page_size.max(1);
        let start = (opts.page * size).min(total);
        let page = ids[start..(start + size).min(total)].to_vec();
        (page, total)
    }
}

#[cfg(test)]
mod tests;
