//! The HTTP JSON API under `/api/v1`: the shapes its answers have. Error codes are the WebSocket's
//! ([`crate::ws::ErrorCode`]), so a script sees the same code for the same mistake on either door.

use serde::{Deserialize, Serialize};
use setpoint_control::{Decision, SensorId, SensorReading};

use crate::ws::{ErrorCode, SetpointMsg};

/// One sensor as the bridge sees it now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SensorView {
    pub sensor: SensorId,
    /// The newest reading, if any arrived since the bridge started (or within its history window).
    pub reading: Option<SensorReading>,
    /// The setpoint in force, with its version and author.
    pub setpoint: Option<SetpointMsg>,
    /// The last heater command.
    pub heater: Option<Decision>,
}

/// The body of every error answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}
