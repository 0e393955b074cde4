//! The dashboard's state, the actions that change it and the one reducer that applies them.
//!
//! Nothing here touches the DOM or the network: the socket layer and the components describe what happened as
//! an [`Action`] (with the local time it happened at), [`Model::dispatch`] applies it, and the components read
//! the state back. That keeps every rule a user depends on — no duplicated chart points after a reconnect, a
//! lost write reported as lost, a divergence raised only when real — testable in plain Rust.

mod action;
pub mod crosscheck;
pub mod editor;
pub mod format;
pub mod group;
pub mod history;
mod inbound;
pub mod ring;
pub mod schedule_form;
pub mod schedules;
pub mod sensor;
mod view;
pub mod whatif;
mod writes;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use setpoint_control::{Config, Decision, SensorId};
use setpoint_wire::api::SensorFilter;
use setpoint_wire::view::ViewSort;
use setpoint_wire::ws::{BusStatus, StatusMsg};

pub use crate::model::action::Action;
use crate::model::crosscheck::CrossCheck;
use crate::model::group::Group;
use crate::model::schedules::Schedules;
use crate::model::sensor::SensorView;
pub use crate::model::view::ViewChange;

/// Readings kept across all sensors (16 bytes each): about 24 MB, which holds 15 minutes at 10 Hz for up to
/// ~160 sensors and proportionally less history per sensor beyond that.
const POINT_BUDGET: usize = 1_500_000;
/// Never keep less than a minute at 10 Hz per sensor.
const MIN_POINTS_PER_SENSOR: usize = 600;
/// 15 minutes at 10 Hz.
const MAX_POINTS_PER_SENSOR: usize = 9_000;
/// Rows in the decision log.
const LOG_LEN: usize = 100;

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

/// Which cards to show, as the user chose: the bridge picks them out of every room
/// ([`setpoint_wire::view`]).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ViewOpts {
    /// Rooms whose id contains this.
    pub filter: String,
    /// Only rooms in this condition (heating, out of band, stale).
    pub only: Option<SensorFilter>,
    pub sort: ViewSort,
    pub page: usize,
    /// Small cards, more per page; `None`: compact when the building has more than [`MANY_SENSORS`] rooms.
    pub compact: Option<bool>,
}

/// Cards per page in full mode and in compact mode.
pub const PAGE_FULL: usize = 24;
pub const PAGE_COMPACT: usize = 120;

/// Past this many rooms the page opens in compact mode.
pub const MANY_SENSORS: u64 = 60;

/// What the grid shows: the page of the bridge's last answer.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Shown {
    /// The cards on the page, in order.
    pub ids: Vec<SensorId>,
    /// Rooms matching the view, on all pages.
    pub total: usize,
    /// The page shown (the last one when the view shrank below the page asked for).
    pub page: usize,
    pub pages: usize,
}

/// Rates derived from consecutive `status` messages (server-wide counters, so every tab shows the same).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    pub readings_per_s: Option<f64>,
    pub decisions_per_min: Option<f64>,
}

/// The whole dashboard state. Changed only by [`Model::dispatch`].
#[derive(Debug)]
pub struct Model {
    pub conn: ConnState,
    pub can_write: bool,
    pub config: Config,
    /// The rooms this tab watches (the page shown), and those with a write under way.
    pub sensors: BTreeMap<SensorId, SensorView>,
    /// How many rooms the bridge knows, and how many are heating (from `hello` and `status`).
    pub sensor_count: u64,
    pub heating: u64,
    /// What the user asked to see, and the bridge's answer.
    pub view_opts: ViewOpts,
    pub shown: Shown,
    /// When the view was last asked for (local ms): it is asked again every [`view::VIEW_REFRESH_MS`].
    view_asked_at: Option<f64>,
    /// Latest decisions, newest first by event time.
    pub log: VecDeque<Decision>,
    pub status: Option<StatusMsg>,
    pub rates: Rates,
    /// Readings the server dropped for this tab because it read too slowly.
    pub missed_total: u64,
    pub crosscheck: CrossCheck,
    /// Server clock minus local clock, from the latest `hello`/`status`; charts and ages use server time.
    pub clock_offset: f64,
    /// A message for the header: an error not tied to a card, or a frame that could not be decoded.
    pub notice: Option<String>,
    /// The selected cards and the group's setpoint draft.
    pub group: Group,
    /// Weekly schedules, each sensor's next step, and the schedule editor.
    pub schedules: Schedules,
    /// Bumped by the reducer on every change; the page renders only when it moved.
    version: u64,
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
            sensor_count: 0,
            heating: 0,
            view_opts: ViewOpts::default(),
            shown: Shown::default(),
            view_asked_at: None,
            log: VecDeque::with_capacity(LOG_LEN),
            status: None,
            rates: Rates::default(),
            missed_total: 0,
            crosscheck: CrossCheck::default(),
            clock_offset: 0.0,
            notice: None,
            group: Group::default(),
            schedules: Schedules::default(),
            version: 0,
            commits_due: BTreeSet::new(),
            inflight: HashMap::new(),
            next_request: 0,
            session,
        }
    }

    /// The model's revision: equal versions mean nothing shown has changed.
    pub fn version(&self) -> u64 {
        self.version
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

    /// Whether a write sent now could succeed: connected, with the write token.
    pub fn writable(&self) -> bool {
        self.conn == ConnState::Live && self.can_write
    }

    /// Estimated server clock at local time `now`.
    pub fn server_now(&self, now: f64) -> f64 {
        now + self.clock_offset
    }

    /// Bus state for the header.
    pub fn bus(&self) -> Option<BusStatus> {
        self.status.map(|s| s.bus)
    }

    /// Chart history per sensor when `sensors` sensors share the point budget.
    fn capacity_for(sensors: usize) -> usize {
        (POINT_BUDGET / sensors.max(1)).clamp(MIN_POINTS_PER_SENSOR, MAX_POINTS_PER_SENSOR)
    }

    /// The sensor's view, created (sized for the sensors known so far) on first mention.
    fn sensor_mut(&mut self, id: SensorId) -> &mut SensorView {
        let cap = Self::capacity_for(self.sensors.len());
        self.sensors.entry(id).or_insert_with(|| SensorView::new(id, cap))
    }
}

#[cfg(test)]
mod tests;
