//! The model's half of a setpoint write: drafts routed to their card's editor, debounced commits turned into
//! requests, and requests in flight tracked until answered, refused or timed out. The editor holds the rules of
//! one card's write; this holds what spans cards (request ids, the in-flight table, the connection).

use setpoint_control::{SensorId, SetpointField};
use setpoint_wire::ws::{ClientMessage, SetpointMsg};

use crate::model::action::Changes;
use crate::model::editor::{Editor, SaveStatus};
use crate::model::{ConnState, Model};

impl Model {
    pub(super) fn edit_draft(
        &mut self,
        sensor: SensorId,
        field: SetpointField,
        value: f64,
        changes: &mut Changes,
    ) {
        if let Some(v) = self.sensors.get_mut(&sensor) {
            v.editor.edit(v.setpoint.as_ref(), field, value);
            changes.sensor(sensor);
        }
    }

    pub(super) fn change_draft(
        &mut self,
        sensor: SensorId,
        changes: &mut Changes,
        f: impl FnOnce(&mut Editor, Option<&SetpointMsg>),
    ) {
        if let Some(v) = self.sensors.get_mut(&sensor) {
            f(&mut v.editor, v.setpoint.as_ref());
            changes.sensor(sensor);
        }
    }

    /// Nothing visible changes until the debounce has passed, so nothing is bumped.
    pub(super) fn request_commit(&mut self, sensor: SensorId, now: f64) {
        if let Some(v) = self.sensors.get_mut(&sensor) {
            v.editor.request_commit(now);
            self.commits_due.insert(sensor);
        }
    }

    pub(super) fn revert(&mut self, sensor: SensorId, changes: &mut Changes) {
        if let Some(v) = self.sensors.get_mut(&sensor) {
            v.editor.discard();
            self.commits_due.remove(&sensor);
            changes.sensor(sensor);
        }
    }

    /// Writes whose debounce has passed, ready to send. When not connected (or read-only), the drafts are
    /// kept and the card says why nothing was sent.
    pub(super) fn release_due_commits(&mut self, now: f64, changes: &mut Changes) -> Vec<ClientMessage> {
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
            let writable = self.writable();
            let request_id = format!("{}-{}", self.session, self.next_request);
            let limits = self.config.limits;
            let conn = self.conn;
            let Some(v) = self.sensors.get_mut(&id) else {
                continue;
            };
            changes.sensor(id);
            if !writable {
                v.editor.commit_due = None;
                if v.editor.draft.is_some() {
                    v.editor.status = SaveStatus::Failed(
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

    /// Says so on the card instead of leaving the write pending until it times out.
    pub(super) fn send_failed(&mut self, sensor: SensorId, why: &str, changes: &mut Changes) {
        self.inflight.retain(|_, s| *s != sensor);
        if let Some(v) = self.sensors.get_mut(&sensor) {
            v.editor.status = SaveStatus::Failed(format!("not sent: {why}"));
            changes.sensor(sensor);
        }
    }

    pub(super) fn time_out_writes(&mut self, now: f64, changes: &mut Changes) {
        let mut timed_out = Vec::new();
        for (id, sensor) in &self.inflight {
            if let Some(v) = self.sensors.get_mut(sensor) {
                if v.editor.check_timeout(now) {
                    changes.sensor(*sensor);
                    timed_out.push(id.clone());
                }
            }
        }
        for id in timed_out {
            self.inflight.remove(&id);
        }
    }
}
