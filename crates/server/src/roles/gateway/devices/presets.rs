//! What a device named in the devices file expands to: a topic as given, or a preset (zigbee2mqtt,
//! Tasmota, Shelly) with the topics and payloads that firmware uses.

use super::{
    json_path, text_field, topic, Extract, FieldError, Heater, HeaterSpec, RelayState, Thermometer,
    ThermometerSpec,
};

/// Exactly one way of naming the device: a topic, or one preset.
fn one_of<'a>(
    options: [(&'static str, &'a Option<String>); 4],
) -> Result<(&'static str, &'a str), FieldError> {
    let given: Vec<_> = options
        .iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (*k, v)))
        .collect();
    match given[..] {
        [one] => Ok(one),
        [] => Err((
            "topic",
            "give a `topic` or a preset (`zigbee2mqtt`, `tasmota`, `shelly`)".into(),
        )),
        _ => Err((
            given[1].0,
            format!(
                "`{}` and `{}` both name the device: give one",
                given[0].0, given[1].0
            ),
        )),
    }
}

/// The one way a device is named — a `topic` or one preset — and the name, checked.
fn device_name(
    topic: &Option<String>,
    zigbee2mqtt: &Option<String>,
    tasmota: &Option<String>,
    shelly: &Option<String>,
) -> Result<(&'static str, String), FieldError> {
    let (kind, name) = one_of([
        ("topic", topic),
        ("zigbee2mqtt", zigbee2mqtt),
        ("tasmota", tasmota),
        ("shelly", shelly),
    ])?;
    Ok((kind, text_field(name.to_owned(), kind).map_err(|e| (kind, e))?))
}

/// How the dashboard and Home Assistant name a device: its topic, or `preset:name`.
fn source_name(kind: &str, name: String) -> String {
    if kind == "topic" {
        name
    } else {
        format!("{kind}:{name}")
    }
}

pub(super) fn thermometer(spec: ThermometerSpec) -> Result<(Thermometer, String), FieldError> {
    let (kind, name) = device_name(&spec.topic, &spec.zigbee2mqtt, &spec.tasmota, &spec.shelly)?;
    let (topic_name, default_extract) = match kind {
        "topic" => (name.clone(), Extract::Plain),
        // zigbee2mqtt publishes one JSON object per device with every attribute.
        "zigbee2mqtt" => (
            format!("zigbee2mqtt/{name}"),
            Extract::Json(vec!["temperature".into()]),
        ),
        // Tasmota's telemetry: the sensor's name is part of the path (DS18B20, AM2301, BME280…).
        "tasmota" => (
            format!("tele/{name}/SENSOR"),
            Extract::Json(vec!["DS18B20".into(), "Temperature".into()]),
        ),
        // Shelly H&T (Gen1): one topic per quantity, a plain number.
        _ => (format!("shellies/{name}/sensor/temperature"), Extract::Plain),
    };
    let extract = match &spec.json {
        Some(path) => json_path(path)?,
        None => default_extract,
    };
    let source = source_name(kind, name);
    Ok((
        Thermometer {
            topic: topic(topic_name, kind)?,
            extract,
        },
        source,
    ))
}

pub(super) fn heater(spec: HeaterSpec) -> Result<(Heater, String), FieldError> {
    let (kind, name) = device_name(&spec.topic, &spec.zigbee2mqtt, &spec.tasmota, &spec.shelly)?;
    let relay = |topic: String, extract: Extract, on: &str, off: &str| RelayState {
        topic,
        extract,
        on: on.into(),
        off: off.into(),
    };
    let mut heater = match kind {
        "topic" => Heater {
            topic: name.clone(),
            on: spec.on.clone().ok_or((
                "on",
                "a heater given by `topic` needs `on` and `off` payloads".to_owned(),
            ))?,
            off: spec.off.clone().ok_or((
                "off",
                "a heater given by `topic` needs `on` and `off` payloads".to_owned(),
            ))?,
            state: None,
            availability: None,
        },
        "zigbee2mqtt" => Heater {
            topic: format!("zigbee2mqtt/{name}/set"),
            on: r#"{"state":"ON"}"#.into(),
            off: r#"{"state":"OFF"}"#.into(),
            state: Some(relay(
                format!("zigbee2mqtt/{name}"),
                Extract::Json(vec!["state".into()]),
                "ON",
                "OFF",
            )),
            availability: Some(format!("zigbee2mqtt/{name}/availability")),
        },
        "tasmota" => Heater {
            topic: format!("cmnd/{name}/POWER"),
            on: "ON".into(),
            off: "OFF".into(),
            state: Some(relay(format!("stat/{name}/POWER"), Extract::Plain, "ON", "OFF")),
            availability: Some(format!("tele/{name}/LWT")),
        },
        _ => Heater {
            topic: format!("shellies/{name}/relay/0/command"),
            on: "on".into(),
            off: "off".into(),
            state: Some(relay(
                format!("shellies/{name}/relay/0"),
                Extract::Plain,
                "on",
                "off",
            )),
            availability: Some(format!("shellies/{name}/online")),
        },
    };
    if kind != "topic" {
        // A preset's payloads may still be overridden (a plug that wants `{"state_l1":"ON"}`).
        if let Some(on) = &spec.on {
            heater.on.clone_from(on);
        }
        if let Some(off) = &spec.off {
            heater.off.clone_from(off);
        }
    }
    if let Some(t) = &spec.state_topic {
        let extract = match &spec.state_json {
            Some(p) => json_path(p)?,
            None => Extract::Plain,
        };
        heater.state = Some(relay(
            t.clone(),
            extract,
            spec.state_on.as_deref().unwrap_or("ON"),
            spec.state_off.as_deref().unwrap_or("OFF"),
        ));
    }
    if let Some(t) = &spec.availability_topic {
        heater.availability = Some(t.clone());
    }
    heater.topic = topic(heater.topic, "topic")?;
    heater.on = text_field(heater.on, "on").map_err(|e| ("on", e))?;
    heater.off = text_field(heater.off, "off").map_err(|e| ("off", e))?;
    if let Some(s) = heater.state.take() {
        heater.state = Some(RelayState {
            topic: topic(s.topic, "state_topic")?,
            ..s
        });
    }
    if let Some(a) = heater.availability.take() {
        heater.availability = Some(topic(a, "availability_topic")?);
    }
    let source = source_name(kind, name);
    Ok((heater, source))
}
