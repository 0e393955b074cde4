//! Home Assistant MQTT discovery: each room as a `climate` entity.
//!
//! The keys are those of Home Assistant's MQTT climate platform
//! (<https://www.home-assistant.io/integrations/climate.mqtt/>), spelt out rather than abbreviated so a
//! user reading the retained configs with `mosquitto_sub` sees what they mean. The entity has no name of
//! its own (`name: null`): Home Assistant then calls it by its device's name, the room's.

use serde_json::{json, Value};
use setpoint_control::SensorId;

use super::core::Gateway;

/// The room's name in Home Assistant: the devices file's, else "Room N" as on the dashboard.
pub fn room_name(gateway: &Gateway, sensor: SensorId) -> String {
    gateway
        .device(sensor)
        .and_then(|room| room.name.clone())
        .unwrap_or_else(|| format!("Room {sensor}"))
}

/// The discovery config of `sensor`'s climate entity, published retained at
/// `<prefix>/climate/setpoint_<sensor>/config`.
pub fn climate_config(gateway: &Gateway, sensor: SensorId) -> Value {
    let opts = gateway.options();
    let limits = opts.config.limits;
    let id = format!("setpoint_{sensor}");
    let model = match gateway.device(sensor) {
        Some(room) => format!("MQTT devices: {}", room.source),
        None => "Simulated room".to_owned(),
    };
    json!({
        "name": null,
        "unique_id": id,
        // `object_id` for Home Assistant before 2025.10, `default_entity_id` from then on: either way the
        // entity is `climate.setpoint_<sensor>`.
        "object_id": id,
        "default_entity_id": format!("climate.{id}"),
        "availability_topic": gateway.status_topic(),
        "payload_available": "online",
        "payload_not_available": "offline",
        "current_temperature_topic": gateway.room_topic(sensor, "temperature"),
        "temperature_state_topic": gateway.room_topic(sensor, "target"),
        "temperature_command_topic": gateway.room_topic(sensor, "target/set"),
        "action_topic": gateway.room_topic(sensor, "action"),
        "mode_state_topic": gateway.room_topic(sensor, "mode"),
        "mode_command_topic": gateway.room_topic(sensor, "mode/set"),
        "modes": ["heat", "off"],
        "min_temp": limits.desired_min,
        "max_temp": limits.desired_max,
        "temp_step": 0.1,
        "precision": 0.1,
        "temperature_unit": "C",
        "qos": 1,
        "device": {
            "identifiers": [id],
            "name": room_name(gateway, sensor),
            "manufacturer": "setpoint",
            "model": model,
            "sw_version": opts.sw_version,
        },
        "origin": {
            "name": "setpoint",
            "sw_version": opts.sw_version,
        },
    })
}
