//! Group setpoints: a selection of cards, and one setpoint applied to all of them in one `set_setpoints` frame.
//!
//! A group write is many single writes sent together, nothing more: each selected sensor's write is made by
//! its own card's editor — the same `Limits` validation, `base_version` from that card's version in force, a
//! request id of its own in the in-flight table — so `ack`/`error` reach each card exactly as after a
//! single write, and each card shows its own outcome (saved, conflict with the value in force, error). The
//! group panel only sums those outcomes up.

use std::collections::BTreeSet;

use setpoint_control::{SensorId, Setpoint, SetpointField};
use setpoint_wire::ws::{ClientMessage, SetpointMsg};

use crate::model::action::Changes;
use crate::model::editor::{tidy, FieldExt, SaveStatus, DEFAULT_SETPOINT};
use crate::model::{ConnState, Model};

/// The selection and the group's draft.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub selected: BTreeSet<SensorId>,
    /// The setpoint "Apply" writes to every selected sensor.
    pub draft: Setpoint,
    /// Whether the user edited the draft; until then it follows the first card selected, so the inputs
    /// start from a real value rather than a default.
    touched: bool,
    pub status: GroupStatus,
    /// The sensors of the latest group write, whose cards' outcomes the panel counts.
    pub last: Vec<SensorId>,
}

impl Default for Group {
    fn default() -> Self {
        Self {
            selected: BTreeSet::new(),
            draft: DEFAULT_SETPOINT,
            touched: false,
            status: GroupStatus::Idle,
            last: Vec::new(),
        }
    }
}

/// What the latest "Apply" did, as the panel says it.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum GroupStatus {
    #[default]
    Idle,
    /// Refused in the browser (by `Limits::validate`, or nothing selected); nothing was sent.
    Invalid(String),
    /// Not sent: read-only or not connected.
    Refused(String),
    /// Sent: one write per sensor whose setpoint differs; `unchanged` already had the value.
    Sent { sent: usize, unchanged: usize },
}

impl GroupStatus {
    pub fn text(&self) -> String {
        match self {
            GroupStatus::Idle => String::new(),
            GroupStatus::Invalid(m) => format!("not sent: {m}"),
            GroupStatus::Refused(m) => format!("error: {m}"),
            GroupStatus::Sent { sent, unchanged } => {
                let mut t = format!("sent to {sent} sensor{}", plural(*sent));
                if *unchanged > 0 {
                    t.push_str(&format!("; {unchanged} already had this setpoint"));
                }
                t
            }
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, GroupStatus::Invalid(_) | GroupStatus::Refused(_))
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// How the writes of the latest group write went, counted from their cards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcomes {
    pub pending: usize,
    pub saved: usize,
    pub conflict: usize,
    pub failed: usize,
}

impl Outcomes {
    /// `2 saved · 1 conflict`, leaving out what is zero; empty when nothing was written.
    pub fn text(&self) -> String {
        [
            (self.pending, "pending"),
            (self.saved, "saved"),
            (self.conflict, "conflict"),
            (self.failed, "failed"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect::<Vec<_>>()
        .join(" · ")
    }
}

impl Model {
    /// A card's checkbox. The first card selected gives the group's draft its starting value.
    pub(super) fn select(&mut self, sensor: SensorId, on: bool, changes: &mut Changes) {
        if !self.sensors.contains_key(&sensor) {
            return;
        }
        let was_empty = self.group.selected.is_empty();
        if on {
            self.group.selected.insert(sensor);
            if was_empty {
                self.start_draft_from(sensor);
            }
        } else {
            self.group.selected.remove(&sensor);
        }
        changes.model();
    }

    /// Adds every card the view shows (the page shown) to the selection.
    pub(super) fn select_shown(&mut self, changes: &mut Changes) {
        let shown = self.shown.ids.clone();
        let was_empty = self.group.selected.is_empty();
        if let (Some(&first), true) = (shown.first(), was_empty) {
            self.start_draft_from(first);
        }
        self.group.selected.extend(shown);
        changes.model();
    }

    pub(super) fn clear_selection(&mut self, changes: &mut Changes) {
        self.group.selected.clear();
        self.group.status = GroupStatus::Idle;
        changes.model();
    }

    /// Until the user edits the group's draft, it starts from the setpoint of the first card selected.
    fn start_draft_from(&mut self, sensor: SensorId) {
        if self.group.touched {
            return;
        }
        if let Some(sp) = self.sensors.get(&sensor).and_then(|v| v.setpoint.as_ref()) {
            self.group.draft = sp.setpoint();
        }
    }

    /// One number of the group's draft; non-finite input (a half-typed number) is ignored, as on a card.
    pub(super) fn group_edit(&mut self, field: SetpointField, value: f64, changes: &mut Changes) {
        if !value.is_finite() {
            return;
        }
        field.set(&mut self.group.draft, tidy(value));
        self.group.touched = true;
        if self.group.status.is_error() {
            self.group.status = GroupStatus::Idle;
        }
        changes.model();
    }

    /// "Apply to N sensors": every selected card's editor takes the group's value based on its own version
    /// in force and commits it; the writes go out together as one `set_setpoints` frame.
    pub(super) fn apply_group(&mut self, now: f64, changes: &mut Changes) {
        changes.model();
        let draft = self.group.draft;
        if self.group.selected.is_empty() {
            self.group.status = GroupStatus::Invalid("no sensor selected".into());
            return;
        }
        // The same function every single write passes (and the bridge runs): one source of truth.
        if let Err(e) = self.config.limits.validate(&draft) {
            self.group.status = GroupStatus::Invalid(e.to_string());
            return;
        }
        if !self.writable() {
            self.group.status = GroupStatus::Refused(
                if self.conn == ConnState::Live {
                    "read-only: no write token"
                } else {
                    "not connected; apply again once live"
                }
                .into(),
            );
            return;
        }
        let limits = self.config.limits;
        let selected: Vec<SensorId> = self.group.selected.iter().copied().collect();
        let mut writes = Vec::new();
        let mut unchanged = 0;
        for id in &selected {
            let request_id = format!("{}-{}", self.session, self.next_request);
            let Some(v) = self.sensors.get_mut(id) else {
                continue;
            };
            // A debounced single commit still due would otherwise send the group's value a second time.
            self.commits_due.remove(id);
            // The group's numbers, each room's own mode and policy: moving a floor to 21 °C must not switch
            // its TPI rooms back to hysteresis.
            let in_force = v.setpoint.as_ref().map(SetpointMsg::setpoint);
            let own = Setpoint::requested(
                draft.desired,
                draft.up_delta,
                draft.down_delta,
                None,
                None,
                in_force.as_ref(),
            );
            v.editor.adopt(v.setpoint.as_ref(), own);
            changes.sensor(*id);
            match v
                .editor
                .commit(*id, v.setpoint.as_ref(), &limits, request_id.clone(), now)
            {
                Some(req) => {
                    self.next_request += 1;
                    self.inflight.insert(request_id, *id);
                    writes.push(req);
                }
                None => unchanged += 1,
            }
        }
        self.group.status = GroupStatus::Sent {
            sent: writes.len(),
            unchanged,
        };
        self.group.last = writes.iter().map(|w| w.sensor).collect();
        // The bridge takes at most MAX_GROUP_WRITES per frame (what fits its 64 KiB frame limit).
        for chunk in writes.chunks(setpoint_wire::ws::MAX_GROUP_WRITES) {
            changes.send(ClientMessage::SetSetpoints {
                writes: chunk.to_vec(),
            });
        }
    }

    /// The outcomes of the latest group write, as its cards show them now.
    pub fn group_outcomes(&self) -> Outcomes {
        let mut o = Outcomes::default();
        for v in self.group.last.iter().filter_map(|id| self.sensors.get(id)) {
            match &v.editor.status {
                SaveStatus::Pending { .. } | SaveStatus::Unconfirmed => o.pending += 1,
                SaveStatus::Saved => o.saved += 1,
                SaveStatus::Conflict { .. } => o.conflict += 1,
                SaveStatus::Failed(_) | SaveStatus::Invalid(_) => o.failed += 1,
                // A later edit on the card: no longer this write's outcome.
                SaveStatus::Idle => {}
            }
        }
        o
    }
}
