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
    /// Where the room's readings come from and its commands go, when the bridge knows (it runs beside the
    /// simulator or the MQTT gateway); absent otherwise, and from older servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<RoomSource>,
}

/// Longest `devices` or `name` of a [`RoomSource`], in bytes: longer ones are cut (with `…`), so 200
/// summaries of a view stay far under the frame limit whatever a devices file holds.
pub const MAX_SOURCE_TEXT_BYTES: usize = 256;

/// Where a room's data comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RoomSource {
    /// setpoint's own simulator.
    Simulated,
    /// Real devices through the MQTT gateway: their names (`zigbee2mqtt:bed_sensor, tasmota:hall_relay`)
    /// and the room's name from the devices file. When it was last heard from is its newest reading's time.
    Devices {
        devices: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
}

impl RoomSource {
    /// A real room's source, its texts cut to [`MAX_SOURCE_TEXT_BYTES`].
    pub fn devices(devices: &str, name: Option<&str>) -> Self {
        Self::Devices {
            devices: cut(devices),
            name: name.map(cut),
        }
    }
}

fn cut(text: &str) -> String {
    if text.len() <= MAX_SOURCE_TEXT_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_SOURCE_TEXT_BYTES - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Most sensors on one page of `GET /api/v1/sensors`, and the page size when none is asked for: a page is
/// answered in milliseconds at any number of rooms.
pub const MAX_SENSOR_PAGE: usize = 1_000;

/// What `GET /api/v1/sensors?filter=…` narrows the list to; several, comma-separated, must all hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorFilter {
    /// The newest reading is outside its setpoint's band: the control rule would switch the heater.
    OutOfBand,
    /// The last heater command is On.
    HeaterOn,
    /// No reading, or the newest is older than the failsafe's silence limit (5 min by default).
    Stale,
}

impl SensorFilter {
    pub const ALL: [SensorFilter; 3] = [Self::OutOfBand, Self::HeaterOn, Self::Stale];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OutOfBand => "out_of_band",
            Self::HeaterOn => "heater_on",
            Self::Stale => "stale",
        }
    }

    /// A comma-separated list of filters; `Err` names what is not one.
    pub fn parse_list(list: &str) -> Result<Vec<SensorFilter>, String> {
        list.split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(|f| {
                Self::ALL.into_iter().find(|k| k.as_str() == f).ok_or_else(|| {
                    let known: Vec<&str> = Self::ALL.iter().map(|k| k.as_str()).collect();
                    format!(
                        "unknown filter {:?}: use {}",
                        crate::clip(f, crate::ECHOED_CHARS),
                        known.join(", ")
                    )
                })
            })
            .collect()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_source_is_cut_on_a_character() {
        let long = "é".repeat(MAX_SOURCE_TEXT_BYTES);
        let RoomSource::Devices { devices, name } = RoomSource::devices(&long, Some("Bedroom")) else {
            panic!("devices")
        };
        assert!(
            devices.len() <= MAX_SOURCE_TEXT_BYTES && devices.ends_with('…'),
            "{devices}"
        );
        assert_eq!(name.as_deref(), Some("Bedroom"));
    }
}
