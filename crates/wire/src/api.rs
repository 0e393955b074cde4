//! The HTTP JSON API under `/api/v1`: the shapes its answers have. Error codes are the WebSocket's
//! ([`crate::ws::ErrorCode`]), so a script sees the same code for the same mistake on either door; a write
//! is a [`crate::write::SetpointWrite`], as on the WebSocket.

use serde::{Deserialize, Serialize};
use setpoint_control::{Decision, SensorId, SensorReading, TimeMs};

use crate::schedule::NextStep;
use crate::ws::{ErrorCode, SetpointChangeEntry, SetpointMsg};

/// One sensor as the bridge sees it now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SensorView {
    #[cfg_attr(feature = "openapi", schema(value_type = i32))]
    pub sensor: SensorId,
    /// The newest reading, if any arrived since the bridge started (or within its history window).
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub reading: Option<SensorReading>,
    /// The setpoint in force, with its version and author.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub setpoint: Option<SetpointMsg>,
    /// The last heater command.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub heater: Option<Decision>,
    /// The next change a weekly schedule will make, if one is assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_step: Option<NextStep>,
}

/// The body of every HTTP error answer (the WebSocket's `error` frame is the same with a `request_id`):
/// the code clients switch on, a message for people, and on a `conflict` the value in force.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub current: Option<SetpointMsg>,
}

/// One sensor's outcome in a group write: `status` is the HTTP status the same write alone would have
/// had; `setpoint` is the new value in force (200), `error` why not (with `current` on a conflict).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WriteOutcome {
    /// The write's own `request_id`, when it gave one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = i32))]
    pub sensor: SensorId,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setpoint: Option<SetpointMsg>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

/// `GET /api/v1/sensors/{id}/history`: what the bridge keeps of a sensor between `since_ms` and
/// `until_ms`. Readings and decisions reach back `kept_ms` (the dashboard's widest window); older
/// readings are thinned. Setpoint changes reach back the last 200.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SensorHistory {
    #[cfg_attr(feature = "openapi", schema(value_type = i32))]
    pub sensor: SensorId,
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub since_ms: TimeMs,
    #[cfg_attr(feature = "openapi", schema(value_type = i64))]
    pub until_ms: TimeMs,
    pub kept_ms: i64,
    pub readings: Vec<SensorReading>,
    pub decisions: Vec<Decision>,
    pub changes: Vec<SetpointChangeEntry>,
}
