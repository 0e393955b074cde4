//! Everything that can happen to the dashboard, and the reducer that applies it.
//!
//! Components re-render by comparing revisions (the model's `version`, each card's `rev`), so a change that
//! forgets its bump is a card that silently stops updating. Handlers therefore never bump anything: they
//! record what they touched in [`Changes`], and [`Model::dispatch`] bumps exactly those revisions, here and
//! nowhere else.

use setpoint_control::{Mode, Policy, SensorId, SetpointField};
use setpoint_wire::ws::{ClientMessage, ServerMessage};

use crate::model::schedules::ScheduleAction;
use crate::model::{Model, ViewChange};

/// Something that happened, with the local time (ms) it happened at where the outcome depends on it.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// A text frame from the socket, still to be decoded.
    Frame { text: String, now: f64 },
    /// A decoded server message.
    Server { msg: ServerMessage, now: f64 },
    /// The connection closed.
    Closed,
    /// The user moved a slider or typed a number.
    Edit {
        sensor: SensorId,
        field: SetpointField,
        value: f64,
    },
    /// The user picked a mode (heat or off) on a card.
    SetMode { sensor: SensorId, mode: Mode },
    /// The user picked a policy (hysteresis or TPI) on a card.
    SetPolicy { sensor: SensorId, policy: Policy },
    /// The user released a slider, pressed Enter or clicked Save: commit once the debounce has passed.
    Commit { sensor: SensorId, now: f64 },
    /// The user abandoned a draft.
    Revert { sensor: SensorId },
    /// The user opened or closed a card's setpoint history.
    ToggleHistory { sensor: SensorId },
    /// The user ticked or unticked a card's selection box.
    Select { sensor: SensorId, on: bool },
    /// The user changed the view (filter, condition, order, page, compact): asked of the bridge at once.
    View { change: ViewChange, now: f64 },
    /// "Select all shown": adds every card the grid shows (this page of the view).
    SelectShown,
    /// "Clear": empties the selection.
    ClearSelection,
    /// The user changed one number of the group's setpoint.
    GroupEdit { field: SetpointField, value: f64 },
    /// "Apply to N sensors": one write per selected sensor, sent together.
    ApplyGroup { now: f64 },
    /// Something in the schedules panel: its editor's inputs, save and delete, and their answers.
    Schedule(ScheduleAction),
    /// A message the reducer released could not be handed to the socket; `why` is shown where it was for.
    SendFailed { msg: ClientMessage, why: String },
    /// Housekeeping, once per animation frame (once a second in a background tab): release the writes whose
    /// debounce has passed, judge settled cross-check events, time out unanswered writes.
    Tick { now: f64 },
}

/// What one action touched, which [`Model::dispatch`] turns into revision bumps, and the messages it released.
#[derive(Debug, Default)]
pub(super) struct Changes {
    model: bool,
    all_sensors: bool,
    sensors: Vec<SensorId>,
    send: Vec<ClientMessage>,
}

impl Changes {
    /// Something outside the cards changed (the header, the log, the page).
    pub(super) fn model(&mut self) {
        self.model = true;
    }

    /// Something `sensor`'s card shows changed (which also changes the model).
    pub(super) fn sensor(&mut self, sensor: SensorId) {
        self.model = true;
        // A batch of readings touches the same sensor many times in a row.
        if self.sensors.last() != Some(&sensor) {
            self.sensors.push(sensor);
        }
    }

    /// Every card changed (a new connection's state).
    pub(super) fn all_sensors(&mut self) {
        self.model = true;
        self.all_sensors = true;
    }

    /// A message for the server, returned by [`Model::dispatch`] for the caller to send.
    pub(super) fn send(&mut self, msg: ClientMessage) {
        self.send.push(msg);
    }
}

impl Model {
    /// The reducer: applies `action` and bumps the revisions of what it changed. Returns the messages it
    /// released (writes, history requests), for the caller to send (see [`Action::SendFailed`] for one that
    /// cannot be).
    pub fn dispatch(&mut self, action: Action) -> Vec<ClientMessage> {
        let mut changes = Changes::default();
        let mut out = Vec::new();
        match action {
            Action::Frame { text, now } => self.on_frame(&text, now, &mut changes),
            Action::Server { msg, now } => self.on_server(msg, now, &mut changes),
            Action::Closed => self.on_close(&mut changes),
            Action::Edit { sensor, field, value } => self.edit_draft(sensor, field, value, &mut changes),
            Action::SetMode { sensor, mode } => {
                self.change_draft(sensor, &mut changes, |e, c| e.set_mode(c, mode))
            }
            Action::SetPolicy { sensor, policy } => {
                self.change_draft(sensor, &mut changes, |e, c| e.set_policy(c, policy))
            }
            Action::Commit { sensor, now } => self.request_commit(sensor, now),
            Action::Revert { sensor } => self.revert(sensor, &mut changes),
            Action::ToggleHistory { sensor } => self.toggle_history(sensor, &mut changes),
            Action::Select { sensor, on } => self.select(sensor, on, &mut changes),
            Action::View { change, now } => self.change_view(change, now, &mut changes),
            Action::SelectShown => self.select_shown(&mut changes),
            Action::ClearSelection => self.clear_selection(&mut changes),
            Action::GroupEdit { field, value } => self.group_edit(field, value, &mut changes),
            Action::ApplyGroup { now } => self.apply_group(now, &mut changes),
            Action::Schedule(a) => self.on_schedule_action(a, &mut changes),
            Action::SendFailed { msg, why } => match msg {
                ClientMessage::SetSetpoint(req) => self.send_failed(req.sensor, &why, &mut changes),
                ClientMessage::SetSetpoints { writes } => writes
                    .iter()
                    .for_each(|w| self.send_failed(w.sensor, &why, &mut changes)),
                ClientMessage::SetpointHistory { sensor } => self.history_failed(sensor, &why, &mut changes),
                ClientMessage::Subscribe { .. } | ClientMessage::View(_) => {}
            },
            Action::Tick { now } => {
                out = self.release_due_commits(now, &mut changes);
                if self.crosscheck.settle(now) {
                    changes.model();
                }
                self.time_out_writes(now, &mut changes);
                self.refresh_view(now, &mut changes);
            }
        }
        out.append(&mut changes.send);
        self.bump(changes);
        out
    }

    fn bump(&mut self, changes: Changes) {
        if changes.all_sensors {
            self.sensors.values_mut().for_each(|v| v.rev += 1);
        } else {
            for id in changes.sensors {
                if let Some(v) = self.sensors.get_mut(&id) {
                    v.rev += 1;
                }
            }
        }
        if changes.model {
            self.version += 1;
        }
    }
}
