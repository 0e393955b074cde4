//! The browser ↔ bridge WebSocket protocol, version 3.
//!
//! A client starts with a bounded `hello` (counts, the controller's configuration, the time), then says what
//! it watches ([`crate::view`]): a page of rooms, answered with their summaries, their history, and from then
//! on their live data. Version 1 sent every room in `hello` and every reading to everybody, which stops
//! working between 5,000 and 10,000 rooms; version 2 sent the schedules in one frame whatever their size
//! (version 3 sends them in parts, [`crate::schedule::ListPart`]). A page of an earlier version is told to
//! reload ([`RETIRED_SUBPROTOCOLS`]).
//!
//! JSON text frames, one object per frame, tagged by `"type"`. These types are compiled into both the bridge
//! and the dashboard, so the two halves cannot disagree about a field name. Unknown extra fields are ignored
//! (so the protocol can grow), except in a setpoint write ([`crate::write`]), which refuses them as the HTTP
//! API does; an unknown `type` or a wrong field type is a typed [`ProtocolError`].

use serde::{Deserialize, Serialize};
use setpoint_control::{Config, Decision, Mode, Policy, SensorId, SensorReading, Setpoint, TimeMs};

use crate::view::{check_subscription, ViewMsg, ViewRequest};
use crate::write::{check_writes, Door};
pub use crate::write::{SetpointWrite, MAX_GROUP_WRITES, MAX_REQUEST_ID_LEN};

/// Protocol version announced in `hello`; bumped only for incompatible changes.
pub const PROTOCOL_VERSION: u32 = 3;

/// The WebSocket subprotocol of this protocol version; the client offers it, the server selects it.
pub const SUBPROTOCOL: &str = "setpoint.v3";

/// Subprotocols of earlier versions. A page that offers only one of these (a tab left open across an
/// upgrade) is accepted, sent one `error` frame it can read (`invalid_message`, "reload the page") and
/// closed with [`CLOSE_RETIRED_PROTOCOL`], instead of failing the handshake in a retry loop that never
/// says why.
pub const RETIRED_SUBPROTOCOLS: &[&str] = &["setpoint.v1", "setpoint.v2"];

/// Close code for a client speaking a retired protocol version (RFC 6455 leaves 4000–4999 to
/// applications).
pub const CLOSE_RETIRED_PROTOCOL: u16 = 4002;

/// What a client of a retired protocol version is told.
pub const RETIRED_PROTOCOL_MESSAGE: &str =
    "this page is from an older setpoint (an earlier WebSocket protocol); the server speaks protocol 3: reload the page";

/// Prefix of the second subprotocol a client offers to present its write token (`token.<token>`):
/// browsers cannot set headers on a WebSocket handshake, and a URL would leak the token into logs.
pub const TOKEN_SUBPROTOCOL_PREFIX: &str = "token.";

/// Longest token either side accepts.
pub const MAX_TOKEN_LEN: usize = 256;

/// Whether `t` can be a write token: ASCII letters, digits, `-` and `_`, at most [`MAX_TOKEN_LEN`] —
/// characters that survive a URL fragment and a subprotocol header unescaped. Server and dashboard both
/// use this rule, so a token the server accepts is never refused by the page.
pub fn is_token_syntax(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= MAX_TOKEN_LEN
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Longest the bus may take to acknowledge a publish (Kafka's `message.timeout.ms`; the embedded bus is
/// quicker). Past it the write is answered `broker_unavailable`.
pub const PUBLISH_TIMEOUT_MS: i64 = 10_000;

/// After the bus acknowledged a write, how long the bridge waits to read it back before answering
/// `unconfirmed`: saved, not yet known to have taken effect.
pub const READ_BACK_PATIENCE_MS: i64 = 10_000;

/// A write is answered (`ack` or an error) within this of being sent: the publish, the read-back, and two of
/// the bridge's one-second status ticks to notice. Clients wait this long before telling the user there was no
/// answer; a shorter wait would drop a real answer that came late.
pub const WRITE_ANSWER_WITHIN_MS: i64 = PUBLISH_TIMEOUT_MS + READ_BACK_PATIENCE_MS + 2_000;

/// Messages a browser sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Watches these rooms (at most [`crate::view::MAX_WATCHED`], in this order), answered with `view`;
    /// `null` or omitted: every room's live readings, decisions and setpoints, without history, summaries
    /// or next steps (those of a whole building would not fit a frame: `GET /api/v1/sensors` has them).
    Subscribe {
        #[serde(default)]
        sensors: Option<Vec<SensorId>>,
    },
    /// Watches a page of rooms chosen by the bridge (query, filters, order); answered with `view`, and
    /// again whenever the client asks again (the page's rooms change as the building does).
    View(ViewRequest),
    /// Asks for a new setpoint. Needs write access.
    SetSetpoint(SetpointWrite),
    /// Asks for new setpoints for several sensors at once (a group of rooms). Each write is atomic and
    /// versioned on its own and answered on its own (`ack` or `error` with its `request_id`); the batch
    /// counts once against the write rate limit. At most [`MAX_GROUP_WRITES`] writes.
    SetSetpoints { writes: Vec<SetpointWrite> },
    /// Asks for a sensor's setpoint changes (who, when, from → to); answered with `setpoint_history`.
    SetpointHistory { sensor: SensorId },
}

/// Messages the bridge sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Hello(Hello),
    /// What the client now watches: the answer to `view` and `subscribe`.
    View(ViewMsg),
    Readings(ReadingsBatch),
    Decision(Decision),
    /// Past decisions, sent after `hello` so the heater strip covers the chart window from the first frame.
    Decisions(DecisionsBatch),
    Setpoint(SetpointMsg),
    SetpointHistory(SetpointHistoryMsg),
    /// Every weekly schedule and each scheduled sensor's next step; sent after `hello` and again whenever
    /// either changes.
    Schedules(crate::schedule::SchedulesMsg),
    /// The write took effect. `setpoint` is the value it put in force, with its version (absent from
    /// older servers).
    Ack {
        request_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        setpoint: Option<SetpointMsg>,
    },
    Error(ErrorMsg),
    Status(StatusMsg),
}

/// First frame on every connection: what the client may do. Its size does not depend on the number of rooms:
/// the rooms themselves come with a `view`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    pub can_write: bool,
    /// How many rooms the bridge knows.
    pub sensor_count: u64,
    /// The controller configuration, so the browser's copy of the control core decides exactly as the
    /// server's does.
    pub config: Config,
    /// Server clock at the time of `hello`, so the browser can show "seconds since last reading" against
    /// the server's notion of time.
    pub server_time_ms: TimeMs,
}

/// A batch of readings. `missed` counts readings dropped for this client because it read too slowly (only
/// the latest reading per sensor is kept for a slow client); `backfill` marks history sent after `hello`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReadingsBatch {
    pub items: Vec<SensorReading>,
    #[serde(default)]
    pub missed: u64,
    #[serde(default)]
    pub backfill: bool,
}

/// Decisions made before the client connected, oldest first (`backfill` is always true today; live
/// decisions come one by one as `decision`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecisionsBatch {
    pub items: Vec<Decision>,
    #[serde(default)]
    pub backfill: bool,
}

/// One setpoint change of the audit trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetpointChangeEntry {
    pub version: u64,
    /// The name of the token that made it (`admin`, `simulator`, a tool's name…).
    pub author: String,
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub t_ms: TimeMs,
    /// The setpoint it replaced; `None` for the sensor's first.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub from: Option<Setpoint>,
    pub to: Setpoint,
}

/// A sensor's setpoint changes, oldest first, as far back as the bridge keeps them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetpointHistoryMsg {
    pub sensor: SensorId,
    pub changes: Vec<SetpointChangeEntry>,
}

/// A setpoint in force, broadcast to every client when it changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetpointMsg {
    #[cfg_attr(feature = "openapi", schema(value_type = i32))]
    pub sensor: SensorId,
    pub desired: f64,
    pub up_delta: f64,
    pub down_delta: f64,
    /// Heat or off (absent from a server that predates modes: heat).
    #[serde(default)]
    pub mode: Mode,
    /// The control policy (absent from a server that predates policies: hysteresis).
    #[serde(default)]
    pub policy: Policy,
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<i64>))]
    pub t_ms: Option<TimeMs>,
    /// Who made the change, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}

impl SetpointMsg {
    /// Builds the message for a setpoint in force.
    pub fn new(sensor: SensorId, sp: &Setpoint, version: u64, t_ms: Option<TimeMs>) -> Self {
        Self {
            sensor,
            desired: sp.desired,
            up_delta: sp.up_delta,
            down_delta: sp.down_delta,
            mode: sp.mode,
            policy: sp.policy,
            version,
            t_ms,
            author: None,
        }
    }

    /// The setpoint as the control crate takes it.
    pub fn setpoint(&self) -> Setpoint {
        Setpoint::new(self.desired, self.up_delta, self.down_delta)
            .with_mode(self.mode)
            .with_policy(self.policy)
    }
}

/// The closed set of error codes. Clients switch on the code; `message` is for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not JSON (this includes `NaN`/`Infinity`, which JSON's grammar does not have).
    MalformedFrame,
    /// The JSON object has no `type`, or one this server does not know.
    UnknownType,
    /// The type is known but a field is missing or has the wrong type.
    InvalidMessage,
    /// The setpoint breaks a rule of the control crate's `Limits`; `message` names the field.
    InvalidSetpoint,
    /// Writing needs a valid token.
    Unauthorized,
    /// `base_version` is not the version in force; `current` carries the value in force.
    Conflict,
    /// Too many writes on this connection; try again shortly.
    RateLimited,
    /// The frame exceeded the size limit.
    FrameTooLarge,
    /// Binary frames are not part of the protocol.
    BinaryFrame,
    /// The message broker cannot be reached; writes are refused, not queued.
    BrokerUnavailable,
    /// The write was saved, but this bridge has not read it back in time to know whether it took effect;
    /// the outcome shows as a `setpoint` update (or none, if it lost a race).
    Unconfirmed,
    /// The sensor (or other thing asked for) does not exist.
    NotFound,
    /// The request comes from a page of another origin, which may not write.
    Forbidden,
    /// A schedule breaks a rule (unknown time zone, a bad time, an invalid setpoint…); `message` names it.
    InvalidSchedule,
    /// Something failed inside the server; the request may be retried.
    Internal,
    /// HTTP only: the request body did not arrive within the body timeout.
    RequestTimeout,
    /// HTTP only: the path exists but not with this method; the `Allow` header lists those it has.
    MethodNotAllowed,
    /// HTTP only: the `Host` header names a host this server does not serve (DNS rebinding guard).
    MisdirectedRequest,
    /// HTTP only: the server is at its connection limit; retry after the `Retry-After` header.
    TooManyConnections,
    /// HTTP only: `/ws` was asked for without a WebSocket upgrade.
    UpgradeRequired,
}

/// An error, tied to a request when `request_id` is set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorMsg {
    pub request_id: Option<String>,
    pub code: ErrorCode,
    pub message: String,
    /// For `conflict`: the setpoint in force, so the client can show it next to the user's draft.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<SetpointMsg>,
}

/// Where the data the bridge relays comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusStatus {
    /// The in-process bus of `setpoint run`.
    Embedded,
    /// Kafka, reachable.
    Connected,
    /// Kafka, unreachable: data is stale and writes are refused.
    Unavailable,
}

/// Periodic server status, for the dashboard header.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusMsg {
    pub clients: u64,
    /// Rooms the bridge knows, and how many of their heaters were last told On.
    #[serde(default)]
    pub sensors: u64,
    #[serde(default)]
    pub heating: u64,
    pub bus: BusStatus,
    pub readings_total: u64,
    pub decisions_total: u64,
    pub server_time_ms: TimeMs,
}

/// Why a client frame was refused. Maps one-to-one onto an [`ErrorCode`].
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProtocolError {
    #[error("frame is not valid JSON: {0}")]
    Malformed(String),
    #[error("frame has no \"type\" field")]
    MissingType,
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("invalid {kind} message: {detail}")]
    Invalid { kind: String, detail: String },
}

impl ProtocolError {
    /// The error code sent to the client.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtocolError::Malformed(_) => ErrorCode::MalformedFrame,
            ProtocolError::MissingType | ProtocolError::UnknownType(_) => ErrorCode::UnknownType,
            ProtocolError::Invalid { .. } => ErrorCode::InvalidMessage,
        }
    }
}

/// Only the tag, to tell a malformed frame from an unknown type before decoding the body.
#[derive(Deserialize)]
struct TypeProbe {
    #[serde(rename = "type")]
    kind: Option<serde_json::Value>,
}

impl ClientMessage {
    /// Decodes a client text frame. Distinguishes not-JSON, unknown type and bad fields, so the client gets
    /// an error that says which it was. The set of known types is the enum's own: serde reports a tag it
    /// has no variant for as an unknown variant of exactly that tag.
    pub fn from_json(text: &str) -> Result<Self, ProtocolError> {
        let probe: TypeProbe =
            serde_json::from_str(text).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
        let kind = match probe.kind {
            None => return Err(ProtocolError::MissingType),
            Some(serde_json::Value::String(s)) => s,
            Some(other) => return Err(ProtocolError::UnknownType(truncate(&other.to_string()))),
        };
        let msg: ClientMessage = serde_json::from_str(text).map_err(|e| {
            let detail = e.to_string();
            if detail.starts_with(&format!("unknown variant `{kind}`")) {
                ProtocolError::UnknownType(truncate(&kind))
            } else {
                ProtocolError::Invalid {
                    kind: truncate(&kind),
                    detail,
                }
            }
        })?;
        let checked = match &msg {
            ClientMessage::SetSetpoint(s) => check_writes(std::slice::from_ref(s), Door::WebSocket),
            ClientMessage::SetSetpoints { writes } => check_writes(writes, Door::WebSocket),
            ClientMessage::View(view) => view.check(),
            ClientMessage::Subscribe { sensors } => check_subscription(sensors),
            ClientMessage::SetpointHistory { .. } => Ok(()),
        };
        checked.map_err(|detail| ProtocolError::Invalid { kind, detail })?;
        Ok(msg)
    }
}

/// Keeps echoed client input short in error messages.
fn truncate(s: &str) -> String {
    crate::clip(s, crate::ECHOED_CHARS).to_owned()
}

impl ServerMessage {
    /// Encodes a server frame. Serialization of these types cannot fail (no maps with non-string keys);
    /// the fallback keeps that a typed error rather than a panic if a type ever changes.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","request_id":null,"code":"internal","message":"encode failed"}"#.to_owned()
        })
    }

    /// Decodes a server frame (used by the dashboard and by test clients).
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}
