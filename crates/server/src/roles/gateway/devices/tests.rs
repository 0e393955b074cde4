use super::*;

#[test]
fn the_issue_example_and_presets() {
    let rooms = parse(
        r#"
[[room]]
sensor = 9
name = "Living room"
temperature = { topic = "zigbee2mqtt/living_room_sensor", json = "temperature" }
heater = { topic = "zigbee2mqtt/living_room_plug/set", on = '{"state":"ON"}', off = '{"state":"OFF"}' }

[[room]]
sensor = 10
temperature = { shelly = "ht-1" }
heater = { tasmota = "boiler" }

[[room]]
sensor = 11
temperature = { zigbee2mqtt = "bath" }
heater = { zigbee2mqtt = "bath_plug" }
"#,
    )
    .expect("valid");
    assert_eq!(rooms.len(), 3);
    assert_eq!(rooms[0].name.as_deref(), Some("Living room"));
    assert_eq!(
        rooms[0].thermometer.as_ref().map(|t| &t.extract),
        Some(&Extract::Json(vec!["temperature".into()]))
    );
    let boiler = rooms[1].heater.as_ref().expect("heater");
    assert_eq!(
        (boiler.topic.as_str(), boiler.on.as_str()),
        ("cmnd/boiler/POWER", "ON")
    );
    assert_eq!(
        boiler.state.as_ref().map(|s| s.topic.as_str()),
        Some("stat/boiler/POWER")
    );
    assert_eq!(
        rooms[1].thermometer.as_ref().map(|t| t.topic.as_str()),
        Some("shellies/ht-1/sensor/temperature")
    );
    let plug = rooms[2].heater.as_ref().expect("heater");
    assert_eq!(plug.topic, "zigbee2mqtt/bath_plug/set");
    assert_eq!(
        plug.availability.as_deref(),
        Some("zigbee2mqtt/bath_plug/availability")
    );
    assert_eq!(rooms[2].source, "zigbee2mqtt:bath, zigbee2mqtt:bath_plug");
}

#[test]
fn refusals_name_the_line_and_the_field() {
    let cases = [
            ("[[room]]\nsensor = 1\ntemperature = { topic = \"t\", jsn = \"x\" }\n", "line 3", "jsn"),
            ("[[room]]\nsensor = 1\ncolour = \"red\"\ntemperature = { topic = \"t\" }\n", "line 3", "colour"),
            ("[[room]]\nsensor = -4\ntemperature = { topic = \"t\" }\n", "line 2", "sensor"),
            ("[[room]]\nsensor = 1\ntemperature = { topic = \"a\" }\n[[room]]\nsensor = 1\ntemperature = { topic = \"t\" }\n", "line 4", "listed twice"),
            ("[[room]]\nsensor = 1\ntemperature = { topic = \"a/#\" }\n", "line 3", "temperature.topic"),
            ("[[room]]\nsensor = 1\nheater = { topic = \"h\" }\n", "line 3", "heater.on"),
            ("[[room]]\nsensor = 1\nheater = { topic = \"h\", tasmota = \"x\", on = \"1\", off = \"0\" }\n", "line 3", "tasmota"),
            ("[[room]]\nsensor = 1\nname = \"x\"\n", "line 1", "needs a `temperature`"),
            (
                "[[room]]\nsensor = 1\ntemperature = { topic = \"t\" }\n[[room]]\nsensor = 2\ntemperature = { topic = \"t\" }\n",
                "line 4",
                "also sensor 1's",
            ),
        ];
    for (text, line, field) in cases {
        let e = parse(text).expect_err(text);
        assert!(e.contains(line) && e.contains(field), "{text:?} gave {e:?}");
    }
}
