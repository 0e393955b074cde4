//! What the tab watches: the view the user chose (filter, condition, order, page), asked of the bridge, and
//! its answers applied.
//!
//! The bridge holds every room; the tab holds the page it shows. A `view` goes out when the user changes
//! the view, on every (re)connection, and every [`VIEW_REFRESH_MS`] (rooms change condition and order as
//! the building does). Its answer says which rooms are new to this connection: those start from their
//! summary, and their history follows; the others have been followed live all along. Rooms that leave the
//! page are forgotten, unless a write of theirs is under way or they are selected for a group setpoint
//! (which then writes them on the version last seen: a change made meanwhile is answered `conflict`, not
//! overwritten). Whatever arrives of a room not kept is ignored.

use std::collections::BTreeSet;

use setpoint_control::SensorId;
use setpoint_wire::view::{ViewMsg, ViewRequest, MAX_QUERY_LEN};
use setpoint_wire::ws::ClientMessage;

use crate::model::action::Changes;
use crate::model::editor::SaveStatus;
use crate::model::sensor::SensorView;
use crate::model::{ConnState, Model, Shown, MANY_SENSORS, PAGE_COMPACT, PAGE_FULL};

/// How often the view is asked again while nothing else asks it.
pub const VIEW_REFRESH_MS: f64 = 5_000.0;

/// One change to the view, from one of the toolbar's controls. Every change but a page turn goes back
/// to the first page.
#[derive(Clone, Debug, PartialEq)]
pub enum ViewChange {
    Filter(String),
    Only(Option<setpoint_wire::api::SensorFilter>),
    Sort(setpoint_wire::view::ViewSort),
    Compact(bool),
    Page(usize),
}

impl Model {
    /// Whether cards are small: the user's choice, else whether the building is large.
    pub fn compact(&self) -> bool {
        self.view_opts.compact.unwrap_or(self.sensor_count > MANY_SENSORS)
    }

    /// Cards per page.
    pub fn page_size(&self) -> usize {
        if self.compact() {
            PAGE_COMPACT
        } else {
            PAGE_FULL
        }
    }

    /// The request for the view the user chose.
    pub fn view_request(&self) -> ViewRequest {
        ViewRequest {
            query: setpoint_wire::clip(&self.view_opts.filter, MAX_QUERY_LEN).to_owned(),
            filters: self.view_opts.only.into_iter().collect(),
            sort: self.view_opts.sort,
            page: u32::try_from(self.view_opts.page).unwrap_or(u32::MAX),
            page_size: self.page_size() as u32,
        }
    }

    /// The user changed the view: applied to the view in force and asked at once.
    pub(super) fn change_view(&mut self, change: ViewChange, now: f64, changes: &mut Changes) {
        let turn = matches!(change, ViewChange::Page(_));
        let opts = &mut self.view_opts;
        match change {
            ViewChange::Filter(f) => opts.filter = f,
            ViewChange::Only(f) => opts.only = f,
            ViewChange::Sort(s) => opts.sort = s,
            ViewChange::Compact(c) => opts.compact = Some(c),
            ViewChange::Page(p) => opts.page = p,
        }
        if !turn {
            opts.page = 0;
        }
        changes.model();
        self.ask_view(now, changes);
    }

    /// Asks for the view, if connected (a reconnection asks on `hello`).
    pub(super) fn ask_view(&mut self, now: f64, changes: &mut Changes) {
        if self.conn == ConnState::Live {
            changes.send(ClientMessage::View(self.view_request()));
            self.view_asked_at = Some(now);
        }
    }

    /// Asks again when the last ask is [`VIEW_REFRESH_MS`] old.
    pub(super) fn refresh_view(&mut self, now: f64, changes: &mut Changes) {
        if self.view_asked_at.is_none_or(|t| now - t >= VIEW_REFRESH_MS) {
            self.ask_view(now, changes);
        }
    }

    /// The bridge's answer: the page, each room as it is now; rooms new to the connection start over
    /// from their summary (their history follows), the cross-check included.
    pub(super) fn on_view(&mut self, msg: ViewMsg, changes: &mut Changes) {
        let fresh: BTreeSet<SensorId> = msg.fresh.iter().copied().collect();
        let ids: Vec<SensorId> = msg.sensors.iter().map(|v| v.sensor).collect();
        for summary in msg.sensors {
            let id = summary.sensor;
            let is_fresh = fresh.contains(&id);
            let v = self.sensor_mut(id);
            v.source = summary.source;
            // A room followed all along has its readings live, in order; only a new one starts from here.
            if let (true, Some(r)) = (is_fresh, summary.reading) {
                v.readings.insert(r.reading());
            }
            if let Some(sp) = &summary.setpoint {
                if is_fresh || v.setpoint.as_ref().is_none_or(|cur| cur.version <= sp.version) {
                    v.editor.on_setpoint(sp);
                    v.setpoint = Some(sp.clone());
                }
            }
            if is_fresh {
                v.decisions.clear();
                if let Some(d) = summary.heater {
                    v.decisions.insert(d);
                    self.log_insert(d);
                }
                self.crosscheck
                    .watch(id, summary.setpoint.as_ref(), summary.heater.as_ref());
            }
            changes.sensor(id);
        }
        let gone: Vec<SensorId> = self
            .sensors
            .values()
            .filter(|v| !ids.contains(&v.id) && !busy(v) && !self.group.selected.contains(&v.id))
            .map(|v| v.id)
            .collect();
        for id in gone {
            self.sensors.remove(&id);
            self.crosscheck.forget(id);
            // Its rows would read as a heater that stopped deciding: nothing of it arrives any more.
            self.log.retain(|d| d.sensor != id);
        }
        self.view_opts.page = msg.page as usize;
        self.shown = Shown {
            ids,
            total: usize::try_from(msg.total).unwrap_or(usize::MAX),
            page: msg.page as usize,
            pages: (msg.pages as usize).max(1),
        };
        changes.model();
    }
}

/// Whether a room's card holds something of the user's that must outlive its leaving the page: a draft,
/// or a write not yet answered.
fn busy(v: &SensorView) -> bool {
    v.editor.draft.is_some()
        || v.editor.commit_due.is_some()
        || matches!(
            v.editor.status,
            SaveStatus::Pending { .. } | SaveStatus::Unconfirmed
        )
}
