//! The MQTT gateway end to end: the `setpoint` binary, a real Mosquitto, and device stand-ins written here
//! (a zigbee2mqtt-shaped sensor and plug, a Tasmota-shaped relay, Home Assistant's side of discovery), TLS
//! with a private CA, and the `setpoint mqtt` role on Kafka beside a controller.
//!
//! (Over 400 lines: one scenario per test, each readable top to bottom.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::binary::{Binary, BIN};
use serde_json::Value;
use setpoint_testkit::http::request;
use setpoint_testkit::measure::percentile;
use setpoint_testkit::mqtt::{Message, Mosquitto, MqttClient};

const TOKEN: &str = "alice-secret-0123456789";
const PATIENCE: Duration = Duration::from_secs(15);

/// `setpoint run --in-memory --mqtt …` with `sensors` simulated rooms reading every 200 ms and a write token;
/// its log is [`Binary::log`].
fn start_server(name: &str, broker: u16, sensors: usize, extra: &[&str]) -> Binary {
    let (sensors, broker, token) = (
        sensors.to_string(),
        format!("127.0.0.1:{broker}"),
        format!("alice={TOKEN}"),
    );
    let mut args = vec![
        "--interval-ms",
        "200",
        "--sensors",
        &sensors,
        "--token",
        &token,
        "--mqtt",
        &broker,
    ];
    args.extend_from_slice(extra);
    Binary::run(name, &args, &[])
}

/// A line of the server's `/metrics`, by its start.
async fn metric(server: &Binary, line_start: &str) -> Option<f64> {
    let body = request(server.addr, "GET", "/metrics", &[], None).await.body;
    body.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// `GET /api/v1/sensors/{id}`.
async fn sensor(server: &Binary, id: u32) -> Value {
    let r = request(server.addr, "GET", &format!("/api/v1/sensors/{id}"), &[], None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("setpoint-mqtt-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

const DEVICES: &str = r#"
[[room]]
sensor = 101
name = "Bedroom"
temperature = { zigbee2mqtt = "bed_sensor" }
heater = { zigbee2mqtt = "bed_plug" }

[[room]]
sensor = 102
temperature = { topic = "home/hall/temperature" }
heater = { tasmota = "hall_relay" }
"#;

const BED_PLUG: &str = "zigbee2mqtt/bed_plug/set";
const ON: &str = r#"{"state":"ON"}"#;
const OFF: &str = r#"{"state":"OFF"}"#;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_readings_in_commands_out_and_resent_after_device_and_broker_restarts() {
    let mut broker = Mosquitto::start();
    let dir = temp_dir("devices");
    std::fs::write(dir.join("devices.toml"), DEVICES).expect("devices file");
    let mut mqtt = MqttClient::connect(
        broker.port,
        "devices-test",
        &[BED_PLUG, "cmnd/hall_relay/POWER", "setpoint/#"],
    )
    .await;
    let devices = dir.join("devices.toml");
    // A periodic re-send far away, so every re-send this test sees has the cause it provokes.
    let mut server = start_server(
        "mqtt-devices",
        broker.port,
        2,
        &[
            "--devices",
            devices.to_str().expect("utf-8"),
            "--mqtt-resend",
            "10m",
        ],
    );
    mqtt.expect_on(PATIENCE, "setpoint/status", "online").await;

    // Home Assistant-shaped target writes give the real rooms their first setpoints.
    mqtt.publish("setpoint/room/101/target/set", "22", false).await;
    mqtt.expect_on(PATIENCE, "setpoint/room/101/target", "22").await;
    mqtt.publish("setpoint/room/102/target/set", "20", false).await;
    mqtt.expect_on(PATIENCE, "setpoint/room/102/target", "20").await;

    // Readings in, commands out: a zigbee2mqtt sensor's report (with its battery and link quality) to the
    // plug's command, alternating below and above the band, timed from publish to command.
    let mut latencies = Vec::new();
    for i in 0..10 {
        let (temperature, want) = if i % 2 == 0 { (18.0, ON) } else { (25.0, OFF) };
        let sent = Instant::now();
        let report =
            format!(r#"{{"temperature":{temperature},"humidity":41,"battery":90,"linkquality":120}}"#);
        mqtt.publish("zigbee2mqtt/bed_sensor", &report, false).await;
        let got = mqtt.expect_on(PATIENCE, BED_PLUG, want).await;
        latencies.push(ms(got.at - sent));
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "MQTT sensor reading -> plug command: p50 {:.1} ms, max {:.1} ms (n={})",
        percentile(&latencies, 0.5).unwrap_or(f64::NAN),
        latencies[latencies.len() - 1],
        latencies.len()
    );
    // The readings are the room's, on the bus: the API shows the last one (once the bridge has read it).
    let deadline = Instant::now() + PATIENCE;
    while sensor(&server, 101).await["reading"]["temperature"] != 25.0 {
        assert!(Instant::now() < deadline, "the API never showed the last reading");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The dashboard and the API say where each room's data comes from.
    let bedroom = sensor(&server, 101).await;
    assert_eq!(
        bedroom["source"],
        serde_json::json!({"kind": "devices", "devices": "zigbee2mqtt:bed_sensor, zigbee2mqtt:bed_plug", "name": "Bedroom"}),
        "{bedroom}"
    );
    assert_eq!(
        sensor(&server, 1).await["source"],
        serde_json::json!({"kind": "simulated"})
    );
    // Home Assistant saw the heater's action follow the commands.
    let actions: Vec<&str> = mqtt
        .seen
        .iter()
        .filter(|m| m.topic == "setpoint/room/101/action")
        .map(|m| m.payload.as_str())
        .collect();
    assert!(
        actions.contains(&"heating") && actions.contains(&"idle"),
        "{actions:?}"
    );

    // A Tasmota relay and a plain-number thermometer.
    mqtt.publish("home/hall/temperature", "17.5", false).await;
    mqtt.expect_on(PATIENCE, "cmnd/hall_relay/POWER", "ON").await;

    // Bad payloads from the bad-input table: refused and counted by kind; a battery report without a
    // temperature is no error; the gateway keeps controlling.
    let bad: [(&str, &str); 5] = [
        ("zigbee2mqtt/bed_sensor", "{not json"),
        ("zigbee2mqtt/bed_sensor", r#"{"temperature":"warm"}"#),
        ("zigbee2mqtt/bed_sensor", r#"{"temperature":-400}"#),
        ("home/hall/temperature", "NaN"),
        ("setpoint/room/101/target/set", "hot"),
    ];
    for (topic, payload) in bad {
        mqtt.publish(topic, payload, false).await;
    }
    mqtt.publish("zigbee2mqtt/bed_sensor", r#"{"battery":88}"#, false)
        .await;
    // A refused target shows Home Assistant the one in force again.
    mqtt.expect_on(PATIENCE, "setpoint/room/101/target", "22").await;
    mqtt.publish("zigbee2mqtt/bed_sensor", r#"{"temperature":18.0}"#, false)
        .await;
    mqtt.expect_on(PATIENCE, BED_PLUG, ON).await;
    for reason in [
        "payload_not_json",
        "temperature_not_a_number",
        "temperature_implausible",
        "set_temperature_not_a_number",
    ] {
        let line =
            format!("setpoint_refused_records_total{{role=\"gateway\",stream=\"mqtt\",reason=\"{reason}\"}}");
        let n = metric(&server, &line).await;
        assert!(n.is_some_and(|n| n >= 1.0), "{reason} not counted: {n:?}");
    }
    assert_eq!(metric(&server, "setpoint_gateway_connected ").await, Some(1.0));

    // The plug rebooted and came back Off while the command in force is On: told again (at most every 5 s).
    let rebooted = Instant::now();
    mqtt.publish(
        "zigbee2mqtt/bed_plug",
        r#"{"state":"OFF","linkquality":99}"#,
        false,
    )
    .await;
    let got = mqtt.expect_on(PATIENCE, BED_PLUG, ON).await;
    println!(
        "plug reporting the wrong state -> command re-sent after {:.0} ms",
        ms(got.at - rebooted)
    );
    // It announces itself online: told at once.
    let back = Instant::now();
    mqtt.publish(
        "zigbee2mqtt/bed_plug/availability",
        r#"{"state":"online"}"#,
        false,
    )
    .await;
    let got = mqtt.expect_on(PATIENCE, BED_PLUG, ON).await;
    println!(
        "plug back online -> command re-sent after {:.0} ms",
        ms(got.at - back)
    );

    // The broker restarts: on reconnecting the gateway sends every heater the command in force.
    let restarted = Instant::now();
    broker.restart();
    let mut resent = std::collections::BTreeSet::new();
    while resent.len() < 2 {
        let m = mqtt
            .expect(
                Duration::from_secs(40),
                "both heaters' commands after the restart",
                |m| {
                    (m.topic == BED_PLUG && m.payload == ON)
                        || (m.topic == "cmnd/hall_relay/POWER" && m.payload == "ON")
                },
            )
            .await;
        resent.insert(m.topic);
    }
    println!(
        "broker restart -> commands re-sent after {:.0} ms",
        ms(restarted.elapsed())
    );

    // Killed without a word: the broker publishes the Last Will, and Home Assistant shows the rooms unavailable.
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("exits");
    mqtt.expect_on(PATIENCE, "setpoint/status", "offline").await;
}

/// Home Assistant's documented MQTT climate keys (https://www.home-assistant.io/integrations/climate.mqtt/)
/// that a discovery config of ours may carry, with the JSON type each must have.
const CLIMATE_SCHEMA: [(&str, &str); 23] = [
    ("name", "string|null"),
    ("unique_id", "string"),
    ("object_id", "string"),
    ("default_entity_id", "string"),
    ("availability_topic", "string"),
    ("payload_available", "string"),
    ("payload_not_available", "string"),
    ("current_temperature_topic", "string"),
    ("temperature_state_topic", "string"),
    ("temperature_command_topic", "string"),
    ("action_topic", "string"),
    ("mode_state_topic", "string"),
    ("mode_command_topic", "string"),
    ("modes", "array"),
    ("min_temp", "number"),
    ("max_temp", "number"),
    ("temp_step", "number"),
    ("precision", "number"),
    ("temperature_unit", "string"),
    ("qos", "number"),
    ("device", "object"),
    ("origin", "object"),
    ("platform", "string"),
];

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Checks a config against the schema above and Home Assistant's rules for the values.
fn check_climate_config(sensor: u32, config: &Value) {
    let object = config.as_object().expect("a JSON object");
    for (key, value) in object {
        let Some((_, types)) = CLIMATE_SCHEMA.iter().find(|(k, _)| k == key) else {
            panic!("{key} is not a key of Home Assistant's MQTT climate");
        };
        assert!(
            types.split('|').any(|t| t == json_type(value)),
            "{key}: {value} is not {types}"
        );
    }
    let id = format!("setpoint_{sensor}");
    assert_eq!(config["unique_id"], id);
    assert_eq!(config["object_id"], id);
    assert_eq!(config["default_entity_id"], format!("climate.{id}"));
    assert_eq!(
        config["temperature_command_topic"],
        format!("setpoint/room/{sensor}/target/set")
    );
    assert_eq!(
        config["temperature_state_topic"],
        format!("setpoint/room/{sensor}/target")
    );
    assert_eq!(
        config["current_temperature_topic"],
        format!("setpoint/room/{sensor}/temperature")
    );
    assert_eq!(config["action_topic"], format!("setpoint/room/{sensor}/action"));
    assert_eq!(
        config["mode_command_topic"],
        format!("setpoint/room/{sensor}/mode/set")
    );
    assert_eq!(config["availability_topic"], "setpoint/status");
    assert_eq!(
        (
            config["payload_available"].as_str(),
            config["payload_not_available"].as_str()
        ),
        (Some("online"), Some("offline"))
    );
    let modes: Vec<&str> = config["modes"]
        .as_array()
        .expect("modes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let supported = ["auto", "off", "cool", "heat", "dry", "fan_only"];
    assert!(
        !modes.is_empty() && modes.iter().all(|m| supported.contains(m)),
        "{modes:?}"
    );
    assert!(["C", "F"].contains(&config["temperature_unit"].as_str().unwrap_or("")));
    assert!([0.1, 0.5, 1.0].contains(&config["precision"].as_f64().unwrap_or(0.0)));
    assert!(config["min_temp"].as_f64() < config["max_temp"].as_f64());
    assert!(config["temp_step"].as_f64().is_some_and(|s| s > 0.0));
    assert!([0.0, 1.0, 2.0].contains(&config["qos"].as_f64().unwrap_or(9.0)));
    for topic in [
        "availability_topic",
        "current_temperature_topic",
        "temperature_state_topic",
        "temperature_command_topic",
        "action_topic",
        "mode_state_topic",
        "mode_command_topic",
    ] {
        let t = config[topic].as_str().expect("topic");
        assert!(!t.is_empty() && !t.contains(['+', '#']), "{topic} {t:?}");
    }
    let device = config["device"].as_object().expect("device");
    assert!(device["identifiers"]
        .as_array()
        .is_some_and(|ids| ids.contains(&Value::from(id.clone()))));
    assert_eq!(device["name"], format!("Room {sensor}"));
    for key in device.keys() {
        assert!(
            ["identifiers", "name", "manufacturer", "model", "sw_version"].contains(&key.as_str()),
            "device.{key}"
        );
    }
    assert_eq!(config["origin"]["name"], "setpoint");
}

fn config_of(m: &Message) -> Option<u32> {
    m.topic
        .strip_prefix("homeassistant/climate/setpoint_")?
        .strip_suffix("/config")?
        .parse()
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_room_is_a_home_assistant_climate_entity_that_sets_the_setpoint() {
    let broker = Mosquitto::start();
    let mut ha = MqttClient::connect(broker.port, "ha-test", &["homeassistant/#", "setpoint/#"]).await;
    let mut server = start_server("mqtt-ha", broker.port, 3, &[]);

    // Discovery: each simulated room, field by field against the documented schema.
    let mut configs = std::collections::BTreeMap::new();
    while configs.len() < 3 {
        let m = ha
            .expect(PATIENCE, "three discovery configs", |m| config_of(m).is_some())
            .await;
        let config: Value = serde_json::from_str(&m.payload).expect("config is JSON");
        check_climate_config(config_of(&m).expect("sensor"), &config);
        configs.insert(config_of(&m).expect("sensor"), config);
    }
    assert_eq!(configs.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
    ha.expect(PATIENCE, "a room's current temperature", |m| {
        m.topic == "setpoint/room/1/temperature" && m.payload.parse::<f64>().is_ok()
    })
    .await;

    // climate.set_temperature on room 2: a setpoint write keeping the deltas, by `homeassistant`.
    let before = sensor(&server, 2).await;
    let sent = Instant::now();
    ha.publish("setpoint/room/2/target/set", "23.5", false).await;
    let got = ha.expect_on(PATIENCE, "setpoint/room/2/target", "23.5").await;
    println!(
        "Home Assistant set_temperature -> setpoint in force, read back: {:.1} ms",
        ms(got.at - sent)
    );
    let after = sensor(&server, 2).await;
    let (sp_before, sp_after) = (&before["setpoint"], &after["setpoint"]);
    assert_eq!(sp_after["desired"], 23.5, "{after}");
    assert_eq!(sp_after["up_delta"], sp_before["up_delta"], "{after}");
    assert_eq!(sp_after["down_delta"], sp_before["down_delta"], "{after}");
    assert_eq!(sp_after["author"], "homeassistant", "{after}");
    assert_eq!(
        sp_after["version"].as_u64(),
        sp_before["version"].as_u64().map(|v| v + 1),
        "{after}"
    );

    // A change made elsewhere (the API) shows in Home Assistant.
    let changed = Instant::now();
    let put = request(
        server.addr,
        "PUT",
        "/api/v1/sensors/3/setpoint",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        Some(r#"{"desired":17.25,"up_delta":0.5,"down_delta":0.5}"#),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.body);
    let got = ha.expect_on(PATIENCE, "setpoint/room/3/target", "17.25").await;
    println!(
        "API setpoint write -> Home Assistant's target: {:.1} ms",
        ms(got.at - changed)
    );

    // Out of the limits: refused, Home Assistant shown the target in force, nothing written.
    ha.publish("setpoint/room/2/target/set", "900", false).await;
    ha.expect_on(PATIENCE, "setpoint/room/2/target", "23.5").await;
    assert_eq!(
        sensor(&server, 2).await["setpoint"]["version"],
        sp_after["version"]
    );

    // climate.set_hvac_mode off on room 2: a write of the mode alone (target and deltas kept); Home
    // Assistant shown mode and action off; the heater Off. Then heat again.
    let off_sent = Instant::now();
    ha.publish("setpoint/room/2/mode/set", "off", false).await;
    ha.expect_on(PATIENCE, "setpoint/room/2/mode", "off").await;
    ha.expect_on(PATIENCE, "setpoint/room/2/action", "off").await;
    println!(
        "Home Assistant set_hvac_mode off -> mode and action off: {:.1} ms",
        ms(off_sent.elapsed())
    );
    let off = sensor(&server, 2).await;
    assert_eq!(off["setpoint"]["mode"], "off", "{off}");
    assert_eq!(off["setpoint"]["desired"], 23.5, "{off}");
    assert_eq!(off["setpoint"]["author"], "homeassistant", "{off}");
    ha.publish("setpoint/room/2/mode/set", "cool", false).await;
    ha.publish("setpoint/room/2/mode/set", "heat", false).await;
    ha.expect_on(PATIENCE, "setpoint/room/2/mode", "heat").await;
    assert_eq!(
        sensor(&server, 2).await["setpoint"]["version"].as_u64(),
        off["setpoint"]["version"].as_u64().map(|v| v + 1),
        "`cool` wrote nothing; `heat` one version"
    );

    // Home Assistant restarts and announces itself: every config again.
    ha.publish("homeassistant/status", "online", false).await;
    let mut again = std::collections::BTreeSet::new();
    while again.len() < 3 {
        let m = ha
            .expect(PATIENCE, "configs after homeassistant/status online", |m| {
                config_of(m).is_some()
            })
            .await;
        again.insert(config_of(&m).expect("sensor"));
    }

    // Stopping: the rooms become unavailable.
    let (status, _) = server.terminate(Duration::from_secs(20));
    assert!(status.success(), "{}", server.log());
    ha.expect_on(PATIENCE, "setpoint/status", "offline").await;
}

#[test]
fn a_bad_devices_file_a_real_room_on_a_simulated_id_or_a_bad_connection_setting_is_refused_at_start() {
    let dir = temp_dir("refused");
    let cases = [
        (
            "[[room]]\nsensor = 40\ntemperature = { zigbee2mqtt = \"a\", jsn = \"t\" }\n",
            &["line 3", "jsn"][..],
        ),
        (
            "[[room]]\nsensor = 40\nheater = { topic = \"h/set\", on = \"1\" }\n",
            &["line 3", "heater.off"],
        ),
        (
            "[[room]]\nsensor = 3\ntemperature = { shelly = \"ht\" }\n",
            &["sensor 3", "simulated"],
        ),
    ];
    for (text, wanted) in cases {
        let file = dir.join("devices.toml");
        std::fs::write(&file, text).expect("write");
        let out = Command::new(BIN)
            .args(["run", "--in-memory", "--listen", "127.0.0.1:0", "--sensors", "6"])
            .args(["--mqtt", "127.0.0.1:1", "--devices"])
            .arg(&file)
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text:?} was accepted");
        for w in wanted {
            assert!(stderr.contains(w), "{text:?}: {w:?} not in {stderr}");
        }
    }
    // Connection settings are checked at start too, naming what is wrong.
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "not a certificate").expect("write");
    let settings = [
        (
            "tls=true;ca_file=/nonexistent/ca.pem".to_owned(),
            "cannot read /nonexistent/ca.pem",
        ),
        (
            format!("tls=true;ca_file={}", not_pem.display()),
            "no certificate",
        ),
        (
            "tls=true;client_cert_file=/etc/hostname".to_owned(),
            "go together",
        ),
        ("tls=maybe".to_owned(), "expected true or false"),
        ("colour=red".to_owned(), "unknown"),
    ];
    for (setting, wanted) in settings {
        let out = Command::new(BIN)
            .args([
                "run",
                "--in-memory",
                "--listen",
                "127.0.0.1:0",
                "--mqtt",
                "127.0.0.1:1",
            ])
            .args(["--mqtt-config", &setting])
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(wanted),
            "{setting}: {stderr}"
        );
    }
}

/// `setpoint mqtt` as its own process on Kafka, beside a controller: the deployment of a building whose
/// devices are on MQTT and whose controllers scale out on Kafka.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mqtt_role_on_kafka_connects_devices_to_the_controllers() {
    use common::broker::Broker;
    use common::kafka::{kafka_bus, topic_args, topics};
    let kafka = Broker::start();
    let t = topics("mqtt");
    let bus = kafka_bus(&kafka, &t).await;
    let mut only_controller = common::options(0, 100);
    only_controller.bridge = None;
    only_controller.simulator = None;
    only_controller.run_scheduler = false;
    let controller = setpoint::app::start(bus, only_controller, std::sync::Arc::default())
        .await
        .expect("controller starts");

    let broker = Mosquitto::start();
    let dir = temp_dir("kafka");
    let devices = dir.join("devices.toml");
    std::fs::write(&devices, DEVICES).expect("devices file");
    let mut mqtt = MqttClient::connect(broker.port, "kafka-test", &[BED_PLUG, "setpoint/#"]).await;
    let log = dir.join("gateway.log");
    let mut gateway = Command::new(BIN)
        .args([
            "mqtt",
            "--kafka",
            &kafka.brokers,
            "--kafka-config",
            "session.timeout.ms=6000",
        ])
        .args(topic_args(&t))
        .args(["--mqtt", &format!("127.0.0.1:{}", broker.port), "--devices"])
        .arg(&devices)
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("gateway starts");
    mqtt.expect_on(Duration::from_secs(30), "setpoint/status", "online")
        .await;

    mqtt.publish("setpoint/room/101/target/set", "22", false).await;
    mqtt.expect_on(Duration::from_secs(30), "setpoint/room/101/target", "22")
        .await;
    // The controller joins its group (half the session timeout on Tansu) before the first command: the
    // reading is repeated until a command comes, as a real sensor reports again.
    let first = Instant::now();
    loop {
        mqtt.publish("zigbee2mqtt/bed_sensor", r#"{"temperature":18.0}"#, false)
            .await;
        let on = |m: &Message| m.topic == BED_PLUG && m.payload == ON;
        if mqtt.next_matching(Duration::from_secs(1), on).await.is_some() {
            break;
        }
        assert!(
            first.elapsed() < Duration::from_secs(60),
            "no command through Kafka; gateway log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    let mut latencies = Vec::new();
    for i in 0..6 {
        let (temperature, want) = if i % 2 == 0 { (25.0, OFF) } else { (18.0, ON) };
        let sent = Instant::now();
        mqtt.publish(
            "zigbee2mqtt/bed_sensor",
            &format!(r#"{{"temperature":{temperature}}}"#),
            false,
        )
        .await;
        let got = mqtt.expect_on(PATIENCE, BED_PLUG, want).await;
        latencies.push(ms(got.at - sent));
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "on Kafka (Tansu): MQTT sensor reading -> plug command p50 {:.1} ms, max {:.1} ms (n={})",
        percentile(&latencies, 0.5).unwrap_or(f64::NAN),
        latencies[latencies.len() - 1],
        latencies.len()
    );
    let ok = Command::new("kill")
        .args(["-TERM", &gateway.id().to_string()])
        .status();
    assert!(ok.is_ok_and(|s| s.success()));
    mqtt.expect_on(PATIENCE, "setpoint/status", "offline").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while gateway.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "the gateway did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    controller.shutdown().await;
}

/// A private CA and a certificate for 127.0.0.1 signed by it, made with the `openssl` command.
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &[
                "req",
                "-x509",
                "-days",
                "2",
                "-subj",
                "/CN=setpoint test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ][..],
            &ec,
        ]
        .concat(),
    );
    // Another CA, which did not sign the broker's certificate.
    openssl(
        &[
            &[
                "req",
                "-x509",
                "-days",
                "2",
                "-subj",
                "/CN=another CA",
                "-keyout",
                "other.key",
                "-out",
                "other.pem",
            ][..],
            &ec,
        ]
        .concat(),
    );
    openssl(
        &[
            &[
                "req",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ][..],
            &ec,
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    openssl(&[
        "x509",
        "-req",
        "-days",
        "2",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-extfile",
        "ext.cnf",
    ]);
    // Started as root, Mosquitto drops to its own user, which must read the key (a throwaway test key).
    use std::os::unix::fs::PermissionsExt;
    for file in ["server.key", "server.pem"] {
        std::fs::set_permissions(dir.join(file), std::fs::Permissions::from_mode(0o644)).expect("mode");
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("mode");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_the_broker_verified_against_a_private_ca_and_refused_without_it() {
    let dir = temp_dir("tls");
    make_certificates(&dir);
    let broker = Mosquitto::start_with_tls(&dir.join("server.pem"), &dir.join("server.key"));
    let tls_port = broker.tls_port.expect("a TLS listener");
    let mut ha = MqttClient::connect(broker.port, "tls-test", &["setpoint/#", "homeassistant/#"]).await;

    // Trusting another CA, the broker's certificate is refused, and said so; the process goes on.
    let other = format!("tls=true;ca_file={}", dir.join("other.pem").display());
    let untrusted = start_server("mqtt-untrusted", tls_port, 1, &["--mqtt-config", &other]);
    let deadline = Instant::now() + PATIENCE;
    while !untrusted.log().contains("UnknownIssuer") {
        assert!(
            Instant::now() < deadline,
            "no certificate error logged:\n{}",
            untrusted.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&untrusted, "setpoint_gateway_connected ").await, Some(0.0));
    drop(untrusted);

    // With it: connected over TLS, the rooms announced, Home Assistant's command taken.
    let ca = format!("tls=true;ca_file={}", dir.join("ca.pem").display());
    let server = start_server("mqtt-tls", tls_port, 1, &["--mqtt-config", &ca]);
    ha.expect_on(PATIENCE, "setpoint/status", "online").await;
    ha.expect(PATIENCE, "room 1's discovery config", |m| {
        m.topic == "homeassistant/climate/setpoint_1/config"
    })
    .await;
    ha.publish("setpoint/room/1/target/set", "19.5", false).await;
    ha.expect_on(PATIENCE, "setpoint/room/1/target", "19.5").await;
    assert_eq!(metric(&server, "setpoint_gateway_connected ").await, Some(1.0));
}
