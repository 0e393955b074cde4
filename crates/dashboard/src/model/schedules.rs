//! Weekly schedules as the page knows them: the list and each sensor's next step (from the `schedules`
//! message, replaced whole each time), and the editor, whose saves and deletes go to the HTTP API.
//!
//! The reducer never waits on the network: a save becomes an [`ApiCall`] that the store performs (adding
//! the write token, which the model never holds), and the answer comes back as
//! [`ScheduleAction::Answer`]. A saved schedule is not added to the list here: the list is what the server
//! broadcasts next, so every tab shows the same.

use std::collections::HashMap;
use std::rc::Rc;

use setpoint_control::{SensorId, SetpointField};
use setpoint_wire::schedule::{ListPart, NextStep, Schedule, SchedulesMsg, Weekday};
use setpoint_wire::ws::{ErrorCode, ErrorMsg, ServerMessage};

use crate::model::action::Changes;
use crate::model::schedule_form::{sensor_list, FormStatus, ScheduleForm};
use crate::model::Model;

/// What the store is asked to send to the HTTP API.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiCall {
    /// Matches the answer to the form that is waiting for it.
    pub id: u64,
    pub method: Method,
    /// From the origin's root, e.g. `/api/v1/schedules/office`.
    pub path: String,
    /// JSON.
    pub body: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// An API answer: status and body, or why there was none (the network, the browser).
pub type ApiResult = Result<(u16, String), String>;

/// The schedule editor's actions.
#[derive(Clone, Debug, PartialEq)]
pub enum ScheduleAction {
    /// Opens an empty form in `zone` (the browser's), for the selected cards.
    New {
        zone: String,
    },
    /// Opens the form on an existing schedule.
    Edit {
        name: String,
    },
    Close,
    Name(String),
    Zone(String),
    Sensors(String),
    /// Replaces the sensor list by the selected cards.
    UseSelected,
    AddStep,
    RemoveStep(usize),
    Day {
        step: usize,
        day: Weekday,
        on: bool,
    },
    Time {
        step: usize,
        time: String,
    },
    Field {
        step: usize,
        field: SetpointField,
        value: f64,
    },
    Save,
    Delete,
    /// The answer to API call `id`.
    Answer {
        id: u64,
        result: ApiResult,
    },
}

/// The schedules part of the model.
#[derive(Clone, Debug, Default)]
pub struct Schedules {
    /// As the server sent them; shared with the panel's props without copying.
    pub list: Rc<Vec<Schedule>>,
    /// Each scheduled sensor's next step.
    pub next: HashMap<SensorId, NextStep>,
    pub form: Option<ScheduleForm>,
    /// The outcome of the latest save or delete, once its form has closed.
    pub notice: Option<String>,
    /// The parts of a list still arriving ([`ListPart::More`]).
    arriving: Vec<Schedule>,
    next_call: u64,
    /// Calls for the store to make; taken by [`Model::take_api_calls`].
    outbox: Vec<ApiCall>,
}

impl Model {
    /// The HTTP requests the reducer released since the last call, for the store to send.
    pub fn take_api_calls(&mut self) -> Vec<ApiCall> {
        std::mem::take(&mut self.schedules.outbox)
    }

    /// A new list: cards whose next step changed (or ended) are redrawn, no other.
    pub(super) fn on_schedules(&mut self, msg: SchedulesMsg, changes: &mut Changes) {
        // A list too long for one frame comes in parts: gathered until the last, shown whole.
        match msg.list {
            ListPart::More => {
                self.schedules.arriving.extend(msg.schedules);
                return;
            }
            ListPart::Whole => {
                self.schedules.arriving.clear();
                self.schedules.list = Rc::new(msg.schedules);
            }
            ListPart::Last => {
                let mut list = std::mem::take(&mut self.schedules.arriving);
                list.extend(msg.schedules);
                self.schedules.list = Rc::new(list);
            }
            ListPart::Unchanged => {}
        }
        let next: HashMap<SensorId, NextStep> = msg.next.into_iter().map(|n| (n.sensor, n)).collect();
        let old = std::mem::take(&mut self.schedules.next);
        for (id, step) in &next {
            if old.get(id) != Some(step) {
                changes.sensor(*id);
            }
        }
        for id in old.keys().filter(|id| !next.contains_key(id)) {
            changes.sensor(*id);
        }
        self.schedules.next = next;
    }

    pub(super) fn on_schedule_action(&mut self, action: ScheduleAction, changes: &mut Changes) {
        changes.model();
        let s = &mut self.schedules;
        if let ScheduleAction::Answer { id, result } = action {
            s.on_answer(id, result);
            return;
        }
        match action {
            ScheduleAction::New { zone } => {
                let selected: Vec<SensorId> = self.group.selected.iter().copied().collect();
                s.form = Some(ScheduleForm::new(zone, &selected));
                s.notice = None;
                return;
            }
            ScheduleAction::Edit { name } => {
                s.form = s.list.iter().find(|x| x.name == name).map(ScheduleForm::edit);
                s.notice = None;
                return;
            }
            ScheduleAction::Close => {
                s.form = None;
                return;
            }
            _ => {}
        }
        let Some(form) = s.form.as_mut() else {
            return;
        };
        if !form.status.busy() {
            form.status = FormStatus::Idle;
        }
        let mut request = None;
        match action {
            ScheduleAction::Name(name) if form.existing.is_none() => form.name = name,
            ScheduleAction::Zone(zone) => form.zone = zone,
            ScheduleAction::Sensors(text) => form.sensors = text,
            ScheduleAction::UseSelected => {
                let ids: Vec<SensorId> = self.group.selected.iter().copied().collect();
                form.sensors = sensor_list(&ids);
            }
            ScheduleAction::AddStep => {
                // A new row repeats the last one: a program is mostly the same setpoint at other times.
                let row = form.steps.last().cloned().unwrap_or_default();
                form.steps.push(row);
            }
            ScheduleAction::RemoveStep(i) if i < form.steps.len() => {
                form.steps.remove(i);
            }
            ScheduleAction::Day { step, day, on } => {
                if let (Some(row), Some(i)) = (
                    form.steps.get_mut(step),
                    Weekday::ALL.iter().position(|d| *d == day),
                ) {
                    row.days[i] = on;
                }
            }
            ScheduleAction::Time { step, time } => {
                if let Some(row) = form.steps.get_mut(step) {
                    row.time = time;
                }
            }
            ScheduleAction::Field { step, field, value } => form.set_field(step, field, value),
            ScheduleAction::Save if !form.status.busy() => match form.to_body(&self.config.limits) {
                // Serializing plain data with finite numbers (validated above) cannot fail.
                Ok((name, body)) => request = Some((Method::Put, name, serde_json::to_string(&body).ok())),
                Err(e) => form.status = FormStatus::Invalid(e),
            },
            ScheduleAction::Delete if !form.status.busy() => {
                request = form.existing.clone().map(|name| (Method::Delete, name, None));
            }
            _ => {}
        }
        if let Some((method, name, body)) = request {
            let call = s.next_call;
            s.next_call += 1;
            s.outbox.push(ApiCall {
                id: call,
                method,
                path: format!("/api/v1/schedules/{name}"),
                body,
            });
            if let Some(form) = s.form.as_mut() {
                form.status = match method {
                    Method::Put => FormStatus::Saving { call },
                    Method::Delete => FormStatus::Deleting { call },
                };
            }
        }
    }
}

impl Schedules {
    /// Closes the form on success (the list follows from the server's next broadcast); otherwise keeps it,
    /// with the server's words. An answer for a form since closed or re-sent is ignored.
    fn on_answer(&mut self, id: u64, result: ApiResult) {
        let Some(form) = self.form.as_mut() else {
            return;
        };
        let deleting = match form.status {
            FormStatus::Saving { call } if call == id => false,
            FormStatus::Deleting { call } if call == id => true,
            _ => return,
        };
        match result {
            Ok((status, _)) if (200..300).contains(&status) => {
                let name = form.name.trim().to_owned();
                self.notice = Some(if deleting {
                    format!("deleted schedule {name}")
                } else {
                    format!("saved schedule {name}")
                });
                self.form = None;
            }
            Ok((status, body)) => form.status = FormStatus::Failed(api_error_text(status, &body)),
            Err(why) => form.status = FormStatus::Failed(format!("not sent: {why}")),
        }
    }
}

/// The server's `{code, message}` as a sentence; any other body (a proxy's page, a code this page does not
/// know) by its status and text.
pub fn api_error_text(status: u16, body: &str) -> String {
    match parse_api_error(body) {
        Some(e) if e.message.is_empty() => format!("{} (HTTP {status})", code_name(e.code)),
        Some(e) => format!("{} ({})", e.message, code_name(e.code)),
        None => {
            let text: String = body.trim().chars().take(120).collect();
            if text.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {text}")
            }
        }
    }
}

/// Reads an API error body as the WebSocket's `error` frame, whose fields (`code`, `message`) it shares:
/// the page already carries that frame's parser, while a parser of its own for this one body would add
/// about 8 KB (gzipped) to the WASM.
fn parse_api_error(body: &str) -> Option<ErrorMsg> {
    let fields = body.trim().strip_prefix('{')?;
    match ServerMessage::from_json(&format!("{{\"type\":\"error\",{fields}")) {
        Ok(ServerMessage::Error(e)) => Some(e),
        _ => None,
    }
}

/// A code as the wire spells it (`invalid_schedule`).
fn code_name(code: ErrorCode) -> String {
    serde_json::to_string(&code)
        .unwrap_or_default()
        .trim_matches('"')
        .to_owned()
}
