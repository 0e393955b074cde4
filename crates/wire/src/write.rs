//! The setpoint write: one shape on every door.
//!
//! A WebSocket `set_setpoint` frame (this object with its `"type"`), each item of a WebSocket
//! `set_setpoints` and each item of `PUT /api/v1/setpoints` are a [`SetpointWrite`]; the body of
//! `PUT /api/v1/sensors/{id}/setpoint` is the [`Setpoint`] alone (the sensor is in the path, the version
//! in `If-Match`). Unknown fields are refused on both doors, with the same code (`invalid_message`): a
//! misspelt `base_verison` must not turn a conditional write into an unconditional one.

use serde::{Deserialize, Serialize};
use setpoint_control::{Mode, Policy, SensorId, Setpoint};

/// Longest `request_id` the bridge accepts; ids are echoed back, so they must not be a way to amplify traffic.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Most writes in one group write (`set_setpoints`, `PUT /api/v1/setpoints`): 500 writes fit the 64 KiB
/// frame and body limit.
pub const MAX_GROUP_WRITES: usize = 500;

/// A sensor's new setpoint. `base_version`, when given, must equal the version in force, so two people
/// editing the same sensor cannot silently overwrite each other.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetpointWrite {
    /// Echoed in the write's answer. Required on the WebSocket (where answers arrive among other
    /// frames); optional over HTTP, where each answer has its place in the list.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub request_id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = i32))]
    pub sensor: SensorId,
    pub desired: f64,
    pub up_delta: f64,
    pub down_delta: f64,
    /// `heat` or `off`; absent keeps the room's mode (heat for a new room).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    /// `{"kind": "hysteresis"}` or `{"kind": "tpi", "cycle_s": …, "k_int": …}`; absent keeps the room's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_version: Option<u64>,
}

impl SetpointWrite {
    /// A write of `setpoint` (its mode and policy included) on `sensor`, conditional on `base_version`
    /// when given.
    pub fn new(
        request_id: impl Into<String>,
        sensor: SensorId,
        setpoint: Setpoint,
        base_version: Option<u64>,
    ) -> Self {
        SetpointWrite {
            request_id: request_id.into(),
            sensor,
            desired: setpoint.desired,
            up_delta: setpoint.up_delta,
            down_delta: setpoint.down_delta,
            mode: Some(setpoint.mode),
            policy: Some(setpoint.policy),
            base_version,
        }
    }

    /// The requested setpoint over the one `in_force` (see [`Setpoint::requested`]), to be validated by
    /// the control crate's `Limits`.
    pub fn setpoint_over(&self, in_force: Option<&Setpoint>) -> Setpoint {
        Setpoint::requested(
            self.desired,
            self.up_delta,
            self.down_delta,
            self.mode,
            self.policy,
            in_force,
        )
    }
}

/// The body of `PUT /api/v1/sensors/{id}/setpoint`: the setpoint alone (the sensor is in the path, the
/// version in `If-Match`), mode and policy optional as in every write.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetpointBody {
    pub desired: f64,
    pub up_delta: f64,
    pub down_delta: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
}

impl SetpointBody {
    /// The write this body asks for on `sensor`.
    pub fn write(self, sensor: SensorId, base_version: Option<u64>) -> SetpointWrite {
        SetpointWrite {
            request_id: String::new(),
            sensor,
            desired: self.desired,
            up_delta: self.up_delta,
            down_delta: self.down_delta,
            mode: self.mode,
            policy: self.policy,
            base_version,
        }
    }
}

/// Which door a write came through: the one difference in what its shape must carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Door {
    WebSocket,
    Http,
}

/// The shape rules of a list of writes, beyond what serde checks: the group size, and the `request_id`
/// (its length always; its presence on the WebSocket). `Err` is the message for an `invalid_message`.
pub fn check_writes(writes: &[SetpointWrite], door: Door) -> Result<(), String> {
    if writes.len() > MAX_GROUP_WRITES {
        return Err(format!("more than {MAX_GROUP_WRITES} writes in one group write"));
    }
    if writes.iter().any(|w| w.request_id.len() > MAX_REQUEST_ID_LEN) {
        return Err(format!("request_id longer than {MAX_REQUEST_ID_LEN} bytes"));
    }
    if door == Door::WebSocket && writes.iter().any(|w| w.request_id.is_empty()) {
        return Err("missing field `request_id`".to_owned());
    }
    Ok(())
}
