//! What a browser watches (protocol 2): a page of rooms out of any number, chosen by the bridge.
//!
//! A building has up to 100,000 rooms and a browser shows a page of them. So a client does not receive every
//! room: it asks for a [`ViewRequest`] (a query, filters, an order and a page) and the bridge answers with a
//! [`ViewMsg`]: the page's rooms as summaries, how many match in all, and which rooms are new to the client.
//! From then on the client gets the live readings, decisions and setpoints of exactly those rooms, and for
//! the new ones their history first (each reading once: in the history or live, never both). A
//! `subscribe` with explicit rooms does the same for a list of ids; with none (`null`) it asks for every
//! room's live data without history (tools, benchmarks).
//!
//! Every size here is bounded whatever the number of rooms, so no frame of the protocol grows with the
//! building: see [`MAX_WATCHED`] and [`MAX_SERVER_FRAME_BYTES`].

use serde::{Deserialize, Serialize};
use setpoint_control::SensorId;

use crate::api::{SensorFilter, SensorView};
use crate::ws::SetpointMsg;

/// Most rooms one client watches at a time: the largest page of cards the dashboard shows.
pub const MAX_WATCHED: usize = 200;

/// Longest query a view may carry (characters).
pub const MAX_QUERY_LEN: usize = 64;

/// Largest frame the bridge ever sends. Every message is built to stay under it: `hello` and `status` are
/// counts, a view is at most [`MAX_WATCHED`] summaries, history and replays are cut into pieces.
pub const MAX_SERVER_FRAME_BYTES: usize = 2 << 20;

/// How the rooms of a view are ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewSort {
    /// By id.
    #[default]
    Id,
    /// Rooms needing attention first: stale (silent past the failsafe's limit, or never heard), then out of
    /// band (the control rule would switch the heater) — the farther from the setpoint the sooner —, then
    /// the rest; by id within each.
    Attention,
}

/// The page of rooms a client wants to see and follow. Fields left out take their defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewRequest {
    /// Rooms whose id contains this text; empty: every room.
    #[serde(default)]
    pub query: String,
    /// Conditions every room shown must meet (the API's `filter`).
    #[serde(default)]
    pub filters: Vec<SensorFilter>,
    #[serde(default)]
    pub sort: ViewSort,
    /// Zero-based; past the last page the last page is answered.
    #[serde(default)]
    pub page: u32,
    /// 1 to [`MAX_WATCHED`].
    pub page_size: u32,
}

impl ViewRequest {
    /// A page of every room, by id.
    pub fn by_id(page: u32, page_size: u32) -> Self {
        Self {
            query: String::new(),
            filters: Vec::new(),
            sort: ViewSort::Id,
            page,
            page_size,
        }
    }

    /// The bounds of a request, as a message naming the field; checked on arrival, before any work.
    pub fn check(&self) -> Result<(), String> {
        if self.query.chars().count() > MAX_QUERY_LEN {
            return Err(format!("query: longer than {MAX_QUERY_LEN} characters"));
        }
        if self.filters.len() > SensorFilter::ALL.len() {
            return Err(format!(
                "filters: at most {} (each once)",
                SensorFilter::ALL.len()
            ));
        }
        if self.page_size == 0 || self.page_size as usize > MAX_WATCHED {
            return Err(format!("page_size: 1 to {MAX_WATCHED}"));
        }
        Ok(())
    }

    /// Whether `sensor` matches the query: its id contains the text (trimmed). Names will match too once
    /// rooms have them.
    pub fn matches_query(&self, sensor: SensorId) -> bool {
        let query = self.query.trim();
        query.is_empty() || sensor.to_string().contains(query)
    }
}

/// The bounds of an explicit `subscribe` list.
pub fn check_subscription(sensors: &Option<Vec<SensorId>>) -> Result<(), String> {
    match sensors {
        Some(list) if list.len() > MAX_WATCHED => Err(format!(
            "sensors: at most {MAX_WATCHED} rooms (null: every room, live only)"
        )),
        _ => Ok(()),
    }
}

/// The answer to a `view` or a `subscribe`: what the client now watches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ViewMsg {
    /// The rooms of the page, in order, as they are now.
    pub sensors: Vec<SensorView>,
    /// Rooms the client did not watch before this answer: their summary is where their data starts, and
    /// their history follows (`readings` and `decisions` frames with `backfill`). The others were already
    /// followed live and get nothing again.
    pub fresh: Vec<SensorId>,
    /// Rooms matching the request, on all pages (a `subscribe`: the rooms listed that exist; every room
    /// for `null`).
    pub total: u64,
    /// The page answered (the last one when the request asked past it), and how many there are.
    pub page: u32,
    pub pages: u32,
}

impl ViewMsg {
    /// The setpoint in force of a room of the answer.
    pub fn setpoint(&self, sensor: SensorId) -> Option<&SetpointMsg> {
        self.sensors
            .iter()
            .find(|v| v.sensor == sensor)
            .and_then(|v| v.setpoint.as_ref())
    }
}
