//! A card's setpoint change history (who changed what, when): asked for when the user opens it, kept up to
//! date by the live `setpoint` broadcasts while it is open, and asked for again after a reconnect.

use setpoint_control::{SensorId, TimeMs};
use setpoint_wire::ws::{ClientMessage, SetpointChangeEntry, SetpointHistoryMsg, SetpointMsg};

use crate::model::action::Changes;
use crate::model::{ConnState, Model};

/// Changes kept per open list; older ones are dropped (the list is a glance, not an audit export).
pub const MAX_CHANGES: usize = 50;

/// Whether the list shows what the server said.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum ListStatus {
    /// Asked for; the answer has not arrived.
    #[default]
    Loading,
    Loaded,
    /// Could not be asked for; the text says why.
    Failed(String),
}

/// One open history list. `None` in [`crate::model::sensor::SensorView::history`] means closed.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ChangeList {
    /// Oldest first, versions strictly increasing, at most [`MAX_CHANGES`].
    pub changes: Vec<SetpointChangeEntry>,
    pub status: ListStatus,
}

impl ChangeList {
    /// The server's answer replaces the list; live changes that arrived meanwhile and are newer than
    /// anything in the answer are kept after it (the answer may have been taken before they were made).
    pub fn on_answer(&mut self, mut changes: Vec<SetpointChangeEntry>) {
        changes.sort_by_key(|c| c.version);
        changes.dedup_by_key(|c| c.version);
        let newest = changes.last().map(|c| c.version);
        changes.extend(
            self.changes
                .drain(..)
                .filter(|c| newest.is_none_or(|n| c.version > n)),
        );
        self.changes = changes;
        self.trim();
        self.status = ListStatus::Loaded;
    }

    /// A live setpoint broadcast: appended when it is newer than every change listed. `previous` is the
    /// setpoint it replaced, `now_ms` stands in for a broadcast without a time.
    pub fn on_live(&mut self, msg: &SetpointMsg, previous: Option<&SetpointMsg>, now_ms: TimeMs) {
        if self.changes.last().is_some_and(|c| c.version >= msg.version)
            || previous.is_some_and(|p| p.version >= msg.version)
        {
            return;
        }
        self.changes.push(SetpointChangeEntry {
            version: msg.version,
            author: msg.author.clone().unwrap_or_default(),
            t_ms: msg.t_ms.unwrap_or(now_ms),
            from: previous.map(SetpointMsg::setpoint),
            to: msg.setpoint(),
        });
        self.trim();
    }

    fn trim(&mut self) {
        let excess = self.changes.len().saturating_sub(MAX_CHANGES);
        self.changes.drain(..excess);
    }
}

impl Model {
    /// Opens or closes a card's history. Opening asks the server (when connected; otherwise the request goes
    /// out with the next `hello`).
    pub(super) fn toggle_history(&mut self, sensor: SensorId, changes: &mut Changes) {
        let live = self.conn == ConnState::Live;
        let Some(v) = self.sensors.get_mut(&sensor) else {
            return;
        };
        changes.sensor(sensor);
        if v.history.take().is_some() {
            return;
        }
        let mut list = ChangeList::default();
        if live {
            changes.send(ClientMessage::SetpointHistory { sensor });
        } else {
            list.status = ListStatus::Failed("not connected; it loads once the connection is back".into());
        }
        v.history = Some(list);
    }

    /// A new connection: every open list is asked for again, so changes made while away are not missed.
    pub(super) fn refresh_histories(&mut self, changes: &mut Changes) {
        for v in self.sensors.values_mut() {
            if let Some(list) = v.history.as_mut() {
                list.status = ListStatus::Loading;
                changes.send(ClientMessage::SetpointHistory { sensor: v.id });
            }
        }
    }

    /// The answer to a request; ignored when the list was closed meanwhile.
    pub(super) fn on_setpoint_history(&mut self, msg: SetpointHistoryMsg, changes: &mut Changes) {
        if let Some(list) = self.sensors.get_mut(&msg.sensor).and_then(|v| v.history.as_mut()) {
            list.on_answer(msg.changes);
            changes.sensor(msg.sensor);
        }
    }

    /// The request could not be handed to the socket.
    pub(super) fn history_failed(&mut self, sensor: SensorId, why: &str, changes: &mut Changes) {
        if let Some(list) = self.sensors.get_mut(&sensor).and_then(|v| v.history.as_mut()) {
            list.status = ListStatus::Failed(format!("not sent: {why}"));
            changes.sensor(sensor);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use setpoint_control::Setpoint;

    fn entry(version: u64, author: &str, desired: f64) -> SetpointChangeEntry {
        SetpointChangeEntry {
            version,
            author: author.into(),
            t_ms: version as TimeMs * 1_000,
            from: None,
            to: Setpoint::new(desired, 0.5, 0.5),
        }
    }

    fn live(version: u64, author: Option<&str>, desired: f64) -> SetpointMsg {
        let mut m = SetpointMsg::new(
            1,
            &Setpoint::new(desired, 0.5, 0.5),
            version,
            Some(version as TimeMs * 1_000),
        );
        m.author = author.map(Into::into);
        m
    }

    fn versions(l: &ChangeList) -> Vec<u64> {
        l.changes.iter().map(|c| c.version).collect()
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn answer_replaces_and_keeps_newer_live_changes() {
        let mut l = ChangeList::default();
        // A live change races the answer: v4 arrives first, the answer (taken before it) holds v1..=3.
        l.on_live(&live(4, Some("admin"), 22.0), Some(&live(3, None, 21.0)), 0);
        l.on_answer(vec![
            entry(1, "simulator", 20.0),
            entry(3, "admin", 21.0),
            entry(2, "ops", 20.5),
        ]);
        assert_eq!(versions(&l), vec![1, 2, 3, 4]);
        assert_eq!(l.status, ListStatus::Loaded);
        let v4 = &l.changes[3];
        assert_eq!(
            (v4.author.as_str(), v4.from.map(|s| s.desired), v4.to.desired),
            ("admin", Some(21.0), 22.0)
        );
        // An answer that already holds the live change: no duplicate.
        l.on_answer(vec![entry(3, "admin", 21.0), entry(4, "admin", 22.0)]);
        assert_eq!(versions(&l), vec![3, 4]);
    }

    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    #[cfg_attr(not(target_arch = "wasm32"), test)]
    fn live_changes_append_once_and_the_list_is_bounded() {
        let mut l = ChangeList::default();
        l.on_answer(vec![entry(1, "simulator", 20.0)]);
        l.on_live(&live(2, Some("admin"), 21.0), Some(&live(1, None, 20.0)), 0);
        l.on_live(&live(2, Some("admin"), 21.0), Some(&live(1, None, 20.0)), 0);
        l.on_live(&live(1, None, 20.0), None, 0);
        assert_eq!(versions(&l), vec![1, 2], "repeats and older versions are ignored");
        let mut untimed = live(3, None, 19.0);
        untimed.t_ms = None;
        l.on_live(&untimed, None, 77);
        assert_eq!((l.changes[2].t_ms, l.changes[2].author.as_str()), (77, ""));
        for v in 4..100 {
            l.on_live(&live(v, Some("admin"), 20.0), None, 0);
        }
        assert_eq!(l.changes.len(), MAX_CHANGES);
        assert_eq!(l.changes.last().map(|c| c.version), Some(99));
    }
}
