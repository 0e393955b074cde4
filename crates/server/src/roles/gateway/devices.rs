//! The devices file (`--devices FILE`): which MQTT topics are a room's thermometer and heater.
//!
//! TOML, one `[[room]]` per sensor. A device is either spelled out (`topic`, and `json` / `on` / `off`) or
//! named after a preset — `zigbee2mqtt`, `tasmota`, `shelly` — that expands to the topics and payloads that
//! firmware uses, so a common device is one line. Unknown fields are refused (a typo must not silently
//! leave a heater unconnected), and every refusal names the line and the field. Parsed once at start; the
//! result is plain data the gateway's core works from.
//!
//! The file's shape and its checks are here; what each preset expands to is in `presets.rs`.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde::Deserialize;
use setpoint_control::SensorId;
use toml::Spanned;

use self::presets::{heater, thermometer};

/// Most rooms one devices file may list: a building's worth, and a bound on what a file can make the
/// gateway subscribe to.
pub const MAX_ROOMS: usize = 100_000;
/// Longest topic, name or payload in the file, in bytes.
pub const MAX_TEXT_BYTES: usize = 1024;
/// Largest devices file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Where a reading's number is in a device's payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Extract {
    /// The payload is the number (`21.5`).
    Plain,
    /// A JSON object; the number is at this path of keys (`temperature`, or `DS18B20.Temperature`).
    Json(Vec<String>),
}

/// A room's thermometer: a topic and how to read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thermometer {
    pub topic: String,
    pub extract: Extract,
}

/// How a heater's relay reports the state it is actually in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayState {
    pub topic: String,
    pub extract: Extract,
    /// The value (after extraction) that means On, compared without case; anything else that is one of
    /// `on`/`off` is Off.
    pub on: String,
    pub off: String,
}

/// A room's heater: where its commands go, and optionally where it reports back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heater {
    pub topic: String,
    pub on: String,
    pub off: String,
    pub state: Option<RelayState>,
    /// A topic on which the device says `online`/`offline` (zigbee2mqtt's availability, Tasmota's LWT):
    /// when it comes back online the command in force is sent again.
    pub availability: Option<String>,
}

/// One real room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Room {
    pub sensor: SensorId,
    pub name: Option<String>,
    pub thermometer: Option<Thermometer>,
    pub heater: Option<Heater>,
    /// The devices' names, for the dashboard and Home Assistant's device entry ("zigbee2mqtt:living_room_plug").
    pub source: String,
}

/// Why a devices file was refused. The message names the file, the line and the field.
#[derive(Debug, thiserror::Error)]
pub enum DevicesError {
    #[error("cannot read the devices file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("devices file {path} is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge { path: String },
    #[error("devices file {path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(default)]
    room: Vec<Spanned<RoomSpec>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoomSpec {
    sensor: Spanned<i64>,
    name: Option<Spanned<String>>,
    temperature: Option<Spanned<ThermometerSpec>>,
    heater: Option<Spanned<HeaterSpec>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThermometerSpec {
    topic: Option<String>,
    json: Option<String>,
    zigbee2mqtt: Option<String>,
    tasmota: Option<String>,
    shelly: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaterSpec {
    topic: Option<String>,
    on: Option<String>,
    off: Option<String>,
    state_topic: Option<String>,
    state_json: Option<String>,
    state_on: Option<String>,
    state_off: Option<String>,
    availability_topic: Option<String>,
    zigbee2mqtt: Option<String>,
    tasmota: Option<String>,
    shelly: Option<String>,
}

/// Reads and checks a devices file.
pub fn load(path: &Path) -> Result<Vec<Room>, DevicesError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|source| DevicesError::Read {
        path: shown.clone(),
        source,
    })?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(DevicesError::TooLarge { path: shown });
    }
    let text = std::fs::read_to_string(path).map_err(|source| DevicesError::Read {
        path: shown.clone(),
        source,
    })?;
    parse(&text).map_err(|message| DevicesError::Invalid { path: shown, message })
}

/// Parses a devices file's text; the error names the line and the field.
pub fn parse(text: &str) -> Result<Vec<Room>, String> {
    // toml's own errors already say "TOML parse error at line N, column M" and the field.
    let spec: FileSpec = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())?;
    if spec.room.len() > MAX_ROOMS {
        return Err(format!("{} rooms; at most {MAX_ROOMS}", spec.room.len()));
    }
    let line = |span: std::ops::Range<usize>| {
        text.as_bytes()[..span.start.min(text.len())]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    };
    let mut seen = HashSet::new();
    let mut topics: BTreeMap<String, SensorId> = BTreeMap::new();
    let mut rooms = Vec::with_capacity(spec.room.len());
    for room in spec.room {
        let at = line(room.span());
        let room = room.into_inner();
        let fail = |field: &str, why: String| format!("line {at}, field `{field}`: {why}");
        let sensor = SensorId::try_from(*room.sensor.get_ref())
            .ok()
            .filter(|s| *s >= 0)
            .ok_or_else(|| {
                format!(
                    "line {}, field `sensor`: {} is not a sensor id (0 to {})",
                    line(room.sensor.span()),
                    room.sensor.get_ref(),
                    SensorId::MAX
                )
            })?;
        if !seen.insert(sensor) {
            return Err(fail("sensor", format!("sensor {sensor} is listed twice")));
        }
        let name = match room.name {
            Some(n) => Some(text_field(n.into_inner(), "name").map_err(|e| fail("name", e))?),
            None => None,
        };
        let mut sources = Vec::new();
        let thermometer = match room.temperature {
            Some(t) => {
                let at = line(t.span());
                let (th, source) = thermometer(t.into_inner())
                    .map_err(|(f, e)| format!("line {at}, field `temperature.{f}`: {e}"))?;
                sources.push(source);
                Some(th)
            }
            None => None,
        };
        let heater = match room.heater {
            Some(h) => {
                let at = line(h.span());
                let (he, source) =
                    heater(h.into_inner()).map_err(|(f, e)| format!("line {at}, field `heater.{f}`: {e}"))?;
                sources.push(source);
                Some(he)
            }
            None => None,
        };
        if thermometer.is_none() && heater.is_none() {
            return Err(fail(
                "temperature",
                "a room needs a `temperature`, a `heater` or both".into(),
            ));
        }
        // One topic, one meaning: a temperature topic that is also another room's would feed two rooms.
        let own_topics =
            thermometer
                .iter()
                .map(|t| t.topic.clone())
                .chain(heater.iter().flat_map(|h| {
                    std::iter::once(h.topic.clone()).chain(h.state.iter().map(|s| s.topic.clone()))
                }));
        for topic in own_topics {
            if let Some(other) = topics.insert(topic.clone(), sensor) {
                if other != sensor {
                    return Err(fail(
                        "topic",
                        format!("topic {topic:?} is also sensor {other}'s: a topic belongs to one room"),
                    ));
                }
            }
        }
        rooms.push(Room {
            sensor,
            name,
            thermometer,
            heater,
            source: sources.join(", "),
        });
    }
    Ok(rooms)
}

type FieldError = (&'static str, String);

fn text_field(value: String, field: &'static str) -> Result<String, String> {
    if value.is_empty() {
        return Err(format!("`{field}` is empty"));
    }
    if value.len() > MAX_TEXT_BYTES {
        return Err(format!("longer than {MAX_TEXT_BYTES} bytes"));
    }
    Ok(value)
}

/// An MQTT topic we publish to or subscribe to: no wildcards (a device's topic is one topic), no NUL.
fn topic(value: String, field: &'static str) -> Result<String, FieldError> {
    let value = text_field(value, field).map_err(|e| (field, e))?;
    if value.contains(['+', '#', '\0']) {
        return Err((
            field,
            format!("{value:?} is not a single topic (no `+`, `#` or NUL)"),
        ));
    }
    Ok(value)
}

fn json_path(path: &str) -> Result<Extract, FieldError> {
    let keys: Vec<String> = path.split('.').map(str::to_owned).collect();
    if path.len() > MAX_TEXT_BYTES || keys.iter().any(String::is_empty) || keys.len() > 8 {
        return Err((
            "json",
            format!("{path:?} is not a path of keys like `temperature` or `DS18B20.Temperature`"),
        ));
    }
    Ok(Extract::Json(keys))
}

mod presets;
#[cfg(test)]
mod tests;
