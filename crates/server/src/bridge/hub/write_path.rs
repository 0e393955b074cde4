//! A browser's or a script's setpoint write through the hub: checked against what this bridge knows, turned
//! into a record conditional on the version in force, and answered once the bus took it and it came back.
//! Part of [`HubState`]; the writes in flight themselves are kept by [`super::writes::Writes`].

use setpoint_control::{RecordError, SensorId, SetpointTable, TimeMs};
use setpoint_wire::ws::{BusStatus, ErrorCode, ErrorMsg, ServerMessage, SetpointMsg, SetpointWrite};

use super::state::{ClientId, HubState, Output, PublishFailure, WriteId};
use super::writes::{conflict_message, STILL_READING_TABLES};
use crate::bus::SetpointChange;

impl HubState {
    /// Checks a browser's setpoint request. On success returns the record to publish; the shell publishes
    /// it and reports the outcome with [`HubState::write_published`]. On refusal the answer is already in the
    /// outputs.
    pub fn begin_write(
        &mut self,
        client: ClientId,
        req: &SetpointWrite,
        author: &str,
        now: TimeMs,
    ) -> Option<(WriteId, SetpointChange)> {
        let refuse = |code, message: String, current| {
            Output::Send(
                client,
                ServerMessage::Error(ErrorMsg {
                    request_id: Some(req.request_id.clone()),
                    code,
                    message,
                    current,
                }),
            )
        };
        // This bridge's own writes in flight count, so one client's quick succession of writes chains up
        // instead of conflicting with itself, and a write this bridge already knows to be stale is refused
        // without a record. The stream has the final word on the rest. A write without a mode or policy
        // keeps the ones of the value it replaces (the record is conditional on that value's version).
        let latest = self.latest_value(req.sensor);
        let latest_version = latest.as_ref().map_or(0, |c| c.version);
        let setpoint = req.setpoint_over(latest.as_ref().map(SetpointMsg::setpoint).as_ref());
        // The table's checks, as every reader will apply them to the record (limits, sizes, the sensor
        // bound); the version is checked below, once the base is known.
        let draft = SetpointChange::new(req.sensor, setpoint, 0, author, now);
        if let Err(e) = self.table.check(&draft, None) {
            let message = match e {
                RecordError::InvalidSetpoint { error, .. } => error.to_string(),
                other => other.to_string(),
            };
            self.outputs
                .push(refuse(ErrorCode::InvalidSetpoint, message, None));
            return None;
        }
        if self.bus == BusStatus::Unavailable {
            self.outputs.push(refuse(
                ErrorCode::BrokerUnavailable,
                "setpoint not saved: the message broker cannot be reached".into(),
                None,
            ));
            return None;
        }
        if !self.tables_read {
            self.outputs.push(refuse(
                ErrorCode::BrokerUnavailable,
                format!("setpoint not saved: {STILL_READING_TABLES}"),
                None,
            ));
            return None;
        }
        if let Some(base) = req.base_version {
            if base != latest_version {
                self.outputs.push(refuse(
                    ErrorCode::Conflict,
                    conflict_message(req.sensor, latest_version, base),
                    latest,
                ));
                return None;
            }
        }
        // Without a base version the write replaces the latest this bridge knows of. Every record a bridge
        // writes is conditional and carries its version: if another bridge's write lands first, this one is
        // answered `conflict` like any other, rather than silently overwriting a change its author never saw.
        let base = req.base_version.unwrap_or(latest_version);
        let version = match SetpointTable::next_version(req.sensor, base) {
            Ok(v) => v,
            Err(e) => {
                self.outputs
                    .push(refuse(ErrorCode::InvalidSetpoint, e.to_string(), None));
                return None;
            }
        };
        let value = SetpointMsg::new(req.sensor, &setpoint, version, Some(now));
        let (id, write_id) = self.writes.begin(client, &req.request_id, value);
        let change = SetpointChange {
            version,
            base_version: Some(base),
            write_id,
            ..draft
        };
        Some((id, change))
    }

    /// The outcome of publishing a write: `Ok` once the bus has it durably, or why it could not take it
    /// (the client is told; nothing was written).
    pub fn write_published(&mut self, id: WriteId, outcome: Result<(), PublishFailure>, now: TimeMs) {
        // A record that came back is in the stream whatever the producer says: answer that.
        let taken = outcome.is_ok() || self.writes.is_read_back(id);
        match outcome {
            Err(failure) if !taken => {
                if let Some(w) = self.writes.fail(id) {
                    let (code, message) = failure.answer("setpoint");
                    self.send(
                        w.client,
                        ServerMessage::Error(ErrorMsg {
                            request_id: Some(w.request_id),
                            code,
                            message,
                            current: None,
                        }),
                    );
                }
            }
            _ => {
                self.writes.published(id, now);
                self.settle_writes(now);
            }
        }
    }

    /// The newest value of a sensor's setpoint, counting this bridge's writes in flight: what a new write
    /// replaces.
    fn latest_value(&self, sensor: SensorId) -> Option<SetpointMsg> {
        match (self.setpoint(sensor), self.writes.latest(sensor)) {
            (Some(c), Some(w)) if c.version >= w.version => Some(c),
            (_, Some(w)) => Some(w.clone()),
            (c, None) => c,
        }
    }

    /// Sends the answers of the writes that are settled at `now`.
    pub(super) fn settle_writes(&mut self, now: TimeMs) {
        for (client, answer) in self.writes.settle(now) {
            self.send(client, answer);
        }
    }
}
