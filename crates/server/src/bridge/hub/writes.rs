//! This bridge's setpoint writes in flight, from the moment they are judged worth publishing until their
//! writer is answered: `ack` (the record came back and took effect), `conflict` (another write took effect
//! first), `unconfirmed` (published, not read back within the patience) or why the bus did not take it.
//! Part of [`super::state::HubState`], which feeds it the bus's acknowledgements and the records read back.

use std::collections::HashMap;

use setpoint_control::{SensorId, TimeMs};
use setpoint_wire::ws::{ErrorCode, ErrorMsg, ServerMessage, SetpointMsg, READ_BACK_PATIENCE_MS};

use super::state::ClientId;
use crate::bus::SetpointChange;

/// What a write is answered when its record was published but has not come back within the patience: the
/// one wording, on the WebSocket and over HTTP.
pub const UNCONFIRMED: &str = "setpoint saved, but not yet confirmed: read it back (or watch for its update) to see whether it took effect";

/// Why a write (or any request needing the tables) is refused before the bridge has read the setpoints
/// and schedules in force: the one wording, on the WebSocket and over HTTP.
pub const STILL_READING_TABLES: &str =
    "the bridge is still reading the setpoints and schedules in force from the message broker; try again in a moment";

/// Identifies a setpoint write between [`super::HubState::begin_write`] and
/// [`super::HubState::write_published`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WriteId(u64);

/// A write in flight: published (or being published) but not yet both acknowledged by the bus and read
/// back from it.
#[derive(Debug)]
pub struct InFlight {
    pub client: ClientId,
    pub request_id: String,
    write_id: String,
    /// What it asks for, with the version it will have if it takes effect.
    value: SetpointMsg,
    /// The bus acknowledged the record, at this time.
    published_at: Option<TimeMs>,
    /// The record came back: `Ok` with the value it put in force, else the value in force that beat it.
    outcome: Option<Result<SetpointMsg, Option<SetpointMsg>>>,
}

/// The writes in flight; see the module documentation.
#[derive(Debug)]
pub struct Writes {
    in_flight: HashMap<WriteId, InFlight>,
    next: u64,
    /// Prefix of this hub's write ids, unique per bridge process (the shell draws it at random).
    writer: String,
}

impl Writes {
    pub fn new(writer: &str) -> Self {
        Self {
            in_flight: HashMap::new(),
            next: 0,
            writer: writer.to_owned(),
        }
    }

    /// Takes a write in flight: `value` is what it will put in force. Returns its id and the `write_id` its
    /// record carries, by which it is recognised when it comes back.
    pub fn begin(&mut self, client: ClientId, request_id: &str, value: SetpointMsg) -> (WriteId, String) {
        let id = WriteId(self.next);
        self.next += 1;
        let write_id = format!("{}-{}", self.writer, id.0);
        self.in_flight.insert(
            id,
            InFlight {
                client,
                request_id: request_id.to_owned(),
                write_id: write_id.clone(),
                value,
                published_at: None,
                outcome: None,
            },
        );
        (id, write_id)
    }

    /// The newest value this bridge's writes in flight would put in force on `sensor`.
    pub fn latest(&self, sensor: SensorId) -> Option<&SetpointMsg> {
        self.in_flight
            .values()
            .filter(|w| w.value.sensor == sensor && w.outcome.is_none())
            .map(|w| &w.value)
            .max_by_key(|v| v.version)
    }

    /// `change` is the record of one of these writes, whose outcome is now known: `Ok` with the value it put
    /// in force, `Err` with the value in force that beat it. A record that is not ours, or a redelivery of
    /// one already judged, changes nothing. Returns whether it was ours.
    pub fn read_back(
        &mut self,
        change: &SetpointChange,
        outcome: Result<SetpointMsg, Option<SetpointMsg>>,
    ) -> bool {
        if change.write_id.is_empty() {
            return false;
        }
        let Some(write) = self
            .in_flight
            .values_mut()
            .find(|w| w.write_id == change.write_id && w.outcome.is_none())
        else {
            return false;
        };
        write.outcome = Some(outcome);
        true
    }

    /// The bus has the write's record durably, as of `now`.
    pub fn published(&mut self, id: WriteId, now: TimeMs) {
        if let Some(w) = self.in_flight.get_mut(&id) {
            w.published_at = Some(now);
        }
    }

    /// Whether the write's record already came back (so it is in the stream, whatever the producer says).
    pub fn is_read_back(&self, id: WriteId) -> bool {
        self.in_flight.get(&id).is_some_and(|w| w.outcome.is_some())
    }

    /// Drops a write the bus did not take; its writer is to be told why.
    pub fn fail(&mut self, id: WriteId) -> Option<InFlight> {
        self.in_flight.remove(&id)
    }

    /// The answers due at `now`, in the order the writes were made: the writes whose outcome is known and
    /// whose record the bus acknowledged, and, once published longer ago than the read-back patience, the
    /// writes still unread.
    pub fn settle(&mut self, now: TimeMs) -> Vec<(ClientId, ServerMessage)> {
        let mut done: Vec<WriteId> = self
            .in_flight
            .iter()
            .filter(|(_, w)| {
                w.published_at
                    .is_some_and(|at| w.outcome.is_some() || now - at >= READ_BACK_PATIENCE_MS)
            })
            .map(|(id, _)| *id)
            .collect();
        done.sort();
        done.into_iter()
            .filter_map(|id| self.in_flight.remove(&id))
            .map(|w| (w.client, answer(w.request_id, w.outcome)))
            .collect()
    }
}

/// The answer to a settled write.
fn answer(request_id: String, outcome: Option<Result<SetpointMsg, Option<SetpointMsg>>>) -> ServerMessage {
    let error = |code, message: String, current| {
        ServerMessage::Error(ErrorMsg {
            request_id: Some(request_id.clone()),
            code,
            message,
            current,
        })
    };
    match outcome {
        Some(Ok(in_force)) => ServerMessage::Ack {
            request_id,
            setpoint: Some(in_force),
        },
        Some(Err(current)) => {
            let in_force = current.as_ref().map_or(0, |c| c.version);
            error(
                ErrorCode::Conflict,
                format!("another write to this sensor took effect first: version {in_force} is in force"),
                current,
            )
        }
        None => error(ErrorCode::Unconfirmed, UNCONFIRMED.to_owned(), None),
    }
}

/// Why a write with a base version is refused before any record is written.
pub fn conflict_message(sensor: SensorId, in_force: u64, base: u64) -> String {
    format!("sensor {sensor} changed meanwhile: version {in_force} is in force, not {base}")
}

/// Why the bus did not take a write.
#[derive(Clone, Debug, PartialEq)]
pub enum PublishFailure {
    Unavailable(String),
    ShuttingDown,
}

impl From<crate::bus::BusError> for PublishFailure {
    fn from(e: crate::bus::BusError) -> Self {
        match e {
            crate::bus::BusError::Unavailable(why) => Self::Unavailable(why),
            crate::bus::BusError::Closed => Self::ShuttingDown,
        }
    }
}

impl PublishFailure {
    /// The error code and message a client gets for a `what` (a setpoint, a schedule) the bus did not take:
    /// the one mapping, for the WebSocket and the HTTP API alike.
    pub fn answer(&self, what: &str) -> (ErrorCode, String) {
        match self {
            Self::Unavailable(why) => (ErrorCode::BrokerUnavailable, format!("{what} not saved: {why}")),
            Self::ShuttingDown => (
                ErrorCode::Internal,
                format!("{what} not saved: server is shutting down"),
            ),
        }
    }
}
