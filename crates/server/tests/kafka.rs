//! Kafka mode against a real Kafka-protocol broker (Tansu, or `KAFKA_BROKERS`).
//!
//! Over 400 lines on purpose: one scenario per test (end to end, interop, outages, two controllers), each
//! readable top to bottom.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::broker::Broker;
use common::kafka::*;
use common::*;
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::producer::FutureRecord;
use setpoint::app;
use setpoint::bus::kafka::KafkaBus;
use setpoint::metrics::Metrics;
use setpoint_control::Command;
use setpoint_wire::ws::{BusStatus, ErrorCode, ServerMessage};

/// Hand-decodes fields 1 (sensorID, varint) and 2 (command, varint) of a `HeaterControl`, skipping any other
/// field by its wire type — independent of our codec.
fn decode_heater_control_by_hand(bytes: &[u8]) -> (i32, i32) {
    fn varint(b: &[u8], i: &mut usize) -> u64 {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let byte = b[*i];
            *i += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }
    let (mut sensor, mut command, mut i) = (0i32, 0i32, 0usize);
    while i < bytes.len() {
        let tag = varint(bytes, &mut i);
        match (tag >> 3, tag & 7) {
            (1, 0) => sensor = varint(bytes, &mut i) as i64 as i32,
            (2, 0) => command = varint(bytes, &mut i) as i32,
            (_, 0) => {
                varint(bytes, &mut i);
            }
            (_, 1) => i += 8,
            (_, 5) => i += 4,
            (_, 2) => {
                let len = varint(bytes, &mut i) as usize;
                i += len;
            }
            other => panic!("unexpected wire type {other:?}"),
        }
    }
    (sensor, command)
}

fn reference_sensor_data(sensor: i32, temperature: f64) -> Vec<u8> {
    // field 1 varint (omitted when 0, as proto3 does), field 2 fixed64.
    let mut b = Vec::new();
    if sensor != 0 {
        b.push(0x08);
        let mut v = sensor as i64 as u64;
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                b.push(byte);
                break;
            }
            b.push(byte | 0x80);
        }
    }
    b.push(0x11);
    b.extend_from_slice(&temperature.to_le_bytes());
    b
}

fn reference_temperature_control(sensor: i32, desired: f64, up: f64, down: f64) -> Vec<u8> {
    let mut b = vec![0x08, sensor as u8]; // small positive ids only in this test
    b.push(0x11);
    b.extend_from_slice(&desired.to_le_bytes());
    b.push(0x19);
    b.extend_from_slice(&up.to_le_bytes());
    b.push(0x21);
    b.extend_from_slice(&down.to_le_bytes());
    b
}

/// Sets a setpoint far below any room and waits until the bridge has seen the heater turned Off, so the
/// next setpoint far above the room must produce an On (a command is only sent on change: had the heater
/// been On already, raising the setpoint would rightly send nothing).
async fn drive_heater_off(ws: &mut Client, server: &app::Running<KafkaBus>, sensor: i32) {
    let hub = server.hub.as_ref().expect("bridge");
    // The simulator seeds a setpoint for a room that has none; written after ours, it would replace it.
    // Wait for the seed, then write on top of its version.
    let deadline = Instant::now() + PATIENCE;
    let version = loop {
        if let Some(current) = hub.setpoint(sensor) {
            break current.version;
        }
        assert!(
            Instant::now() < deadline,
            "sensor {sensor} never got its seeded setpoint"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let id = format!("off-{sensor}");
    ws.send(&set_setpoint(&id, sensor, -40.0, 1.0, 1.0, Some(version)))
        .await;
    ws.until(|m| match m {
        ServerMessage::Ack { request_id, .. } if *request_id == id => Some(()),
        ServerMessage::Error(e) if e.request_id.as_deref() == Some(id.as_str()) => panic!("{e:?}"),
        _ => None,
    })
    .await;
    let deadline = Instant::now() + PATIENCE;
    while hub.last_command(sensor).map(|d| d.command) != Some(Command::Off) {
        assert!(
            Instant::now() < deadline,
            "sensor {sensor}'s heater never turned off"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_through_kafka_to_the_topic_and_a_websocket_client() {
    let broker = Broker::start();
    let t = topics("e2e");
    let bus = kafka_bus(&broker, &t).await;
    let server = app::start(bus, options(3, 100), Arc::new(Metrics::default()))
        .await
        .expect("starts");
    let mut ws = connect(server.addr.expect("bridge"), Some(TOKEN), None)
        .await
        .expect("connects");
    let hello = ws.next().await;
    let ServerMessage::Hello(h) = &hello else {
        panic!("{hello:?}")
    };
    assert!(h.can_write);
    ws.subscribe(None).await;
    drive_heater_off(&mut ws, &server, 1).await;
    // Force sensor 1's heater on through a write: acked only once the broker has the record.
    let v = server
        .hub
        .as_ref()
        .and_then(|h| h.setpoint(1))
        .map_or(0, |s| s.version);
    ws.send(&set_setpoint("k1", 1, 90.0, 1.0, 1.0, Some(v))).await;
    ws.until(|m| match m {
        ServerMessage::Ack { request_id, .. } if request_id == "k1" => Some(()),
        ServerMessage::Error(e) => panic!("{e:?}"),
        _ => None,
    })
    .await;
    let d = ws
        .until(|m| match m {
            ServerMessage::Decision(d) if d.sensor == 1 && d.setpoint_version == v + 1 => Some(*d),
            _ => None,
        })
        .await;
    assert_eq!(d.command, Command::On);
    // An independent consumer sees the command on `heatercontrol`, keyed by sensor, in the reference format.
    let raw = raw_consumer(&broker, &t.commands);
    let deadline = Instant::now() + PATIENCE;
    loop {
        assert!(
            Instant::now() < deadline,
            "no On command for sensor 1 on {}",
            t.commands
        );
        let m = tokio::time::timeout(PATIENCE, raw.recv())
            .await
            .expect("in time")
            .expect("message");
        let (sensor, command) = decode_heater_control_by_hand(m.payload().unwrap_or_default());
        if sensor == 1 && command == 0 {
            assert_eq!(m.key(), Some(&b"1"[..]));
            break;
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_bytes_in_give_reference_bytes_out() {
    let broker = Broker::start();
    let t = topics("interop");
    let dead_letter = format!("{}-dead", t.readings);
    let metrics = Arc::new(Metrics::default());
    let mut o = kafka_options(&broker, &t);
    o.dead_letter = Some(dead_letter.clone());
    let bus = KafkaBus::new(o, Arc::clone(&metrics)).expect("bus");
    bus.ensure_topics().await.expect("topics");
    let mut only_controller = options(0, 100);
    only_controller.bridge = None;
    only_controller.simulator = None;
    let server = app::start(bus, only_controller, metrics).await.expect("starts");
    let producer = raw_producer(&broker);
    let send = |topic: &str, key: Option<&str>, payload: Vec<u8>| {
        let topic = topic.to_owned();
        let key = key.map(str::to_owned);
        let producer = producer.clone();
        async move {
            let mut r = FutureRecord::to(&topic).payload(&payload);
            if let Some(k) = &key {
                r = r.key(k);
            }
            producer
                .send(r, Duration::from_secs(10))
                .await
                .map_err(|(e, _)| e)
                .expect("delivered");
        }
    };
    // Setpoints written by a reference tool: keyed and unkeyed.
    send(
        &t.setpoints,
        Some("1"),
        reference_temperature_control(1, 20.0, 1.0, 1.0),
    )
    .await;
    send(
        &t.setpoints,
        None,
        reference_temperature_control(2, 30.0, 0.5, 0.5),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await; // the controller's group join on the readings topic
                                                      // Readings from a reference heater, then one undecodable record that must be skipped.
    send(&t.readings, Some("1"), reference_sensor_data(1, 25.0)).await; // above 21: Off
    send(&t.readings, Some("x"), vec![0xff, 0xff, 0xff]).await;
    send(&t.readings, None, reference_sensor_data(2, 10.0)).await; // below 29.5: On
    send(&t.readings, Some("1"), reference_sensor_data(1, 15.0)).await; // below 19: On
    let raw = raw_consumer(&broker, &t.commands);
    let mut got = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while got.len() < 3 {
        assert!(Instant::now() < deadline, "commands so far: {got:?}");
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(1), raw.recv()).await {
            let decoded = decode_heater_control_by_hand(m.payload().unwrap_or_default());
            let key = m.key().map(|k| String::from_utf8_lossy(k).into_owned());
            assert_eq!(key, Some(decoded.0.to_string()), "keyed by sensor id");
            got.push(decoded);
        }
    }
    got.sort();
    // (sensor, command) with On = 0, Off = 1.
    assert_eq!(got, vec![(1, 0), (1, 1), (2, 0)]);
    let decode_errors = server
        .metrics
        .decode_errors
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(decode_errors >= 1, "the garbage record was counted");
    // ... and copied, byte for byte, to the dead-letter topic with why and where it came from.
    let dead = raw_consumer(&broker, &dead_letter);
    let deadline = Instant::now() + PATIENCE;
    let copy = loop {
        assert!(Instant::now() < deadline, "no dead-letter copy in {dead_letter}");
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(1), dead.recv()).await {
            break m.detach();
        }
    };
    assert_eq!(copy.payload(), Some(&[0xff, 0xff, 0xff][..]));
    assert_eq!(copy.key(), Some(&b"x"[..]));
    let headers: Vec<(String, String)> = copy
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    (
                        h.key.to_owned(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let header = |k: &str| headers.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    assert_eq!(
        header("setpoint.error").as_deref(),
        Some("SensorData"),
        "{headers:?}"
    );
    let source = header("setpoint.source").unwrap_or_default();
    assert!(source.starts_with(&format!("{}/", t.readings)), "{source}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_broker_down_writes_are_refused_and_the_bridge_stays_up() {
    let mut broker = Broker::start();
    if broker.pid().is_none() {
        return; // an external KAFKA_BROKERS cannot be stopped by this test
    }
    let t = topics("down");
    let bus = kafka_bus(&broker, &t).await;
    let server = app::start(bus, options(2, 100), Arc::new(Metrics::default()))
        .await
        .expect("starts");
    let a = server.addr.expect("bridge");
    let mut ws = connect(a, Some(TOKEN), None).await.expect("connects");
    ws.next().await;
    broker.kill();
    let e = ws
        .until(|m| match m {
            ServerMessage::Error(e) if e.code == ErrorCode::BrokerUnavailable && e.request_id.is_none() => {
                Some(e.clone())
            }
            _ => None,
        })
        .await;
    assert!(e.message.contains("broker"));
    ws.until(|m| matches!(m, ServerMessage::Status(s) if s.bus == BusStatus::Unavailable).then_some(()))
        .await;
    ws.send(&set_setpoint("down", 1, 22.0, 1.0, 1.0, None)).await;
    let refused = ws
        .until(|m| match m {
            ServerMessage::Error(e) if e.request_id.as_deref() == Some("down") => Some(e.clone()),
            ServerMessage::Ack { request_id, .. } if request_id == "down" => {
                panic!("acked a write the broker never saw")
            }
            _ => None,
        })
        .await;
    assert_eq!(refused.code, ErrorCode::BrokerUnavailable);
    // The HTTP API refuses the same way: 503 with the same code, nothing written.
    let r = setpoint_testkit::http::request(
        a,
        "PUT",
        "/api/v1/sensors/1/setpoint",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        Some(r#"{"desired":22,"up_delta":1,"down_delta":1}"#),
    )
    .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["code"], "broker_unavailable");
    assert_eq!(http_get(a, "/healthz").await.0, 200, "the bridge stays up");
    // Readiness follows librdkafka's view of the brokers, refreshed once a second per client; poll it.
    let deadline = Instant::now() + PATIENCE;
    while http_get(a, "/readyz").await.0 != 503 {
        assert!(
            Instant::now() < deadline,
            "/readyz never reported the broker down"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Restarting Tansu here (memory storage, so it comes back empty) crashes librdkafka 2.12 inside its
    // metadata cache (rd_kafka_metadata_update_op → rd_avl_find_node, SIGSEGV): recorded as an open finding
    // in the closing note rather than asserted here.
    server.shutdown().await;
}

/// Two controllers share the readings; one is killed (`kill -9`) and the other takes its partitions over
/// from the changelog: hysteresis rooms and TPI rooms (whose cycles the new owner must continue) get exactly
/// the commands one controller that never failed would have sent (the offline reference).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_controllers_split_the_work_and_one_survives_the_other_being_killed() {
    use setpoint::bus::{Bus, SensorReading, SetpointChange};
    use setpoint_control::{Config, Policy, Setpoint, Tpi};
    use setpoint_testkit::reference::{compare, expected_commands, Expected, LoggedReading, LoggedSetpoint};
    use std::collections::HashMap;
    use std::process::{Command as Process, Stdio};

    const SENSORS: i32 = 8;
    const MIN_DWELL_MS: i64 = 500;
    const SESSION_TIMEOUT_MS: i64 = 6_000;
    let broker = Broker::start();
    let t = topics("scale");
    let mut o = kafka_options(&broker, &t);
    o.partitions = 4;
    let bus = KafkaBus::new(o, Arc::new(Metrics::default())).expect("bus");
    bus.ensure_topics().await.expect("topics");
    // Half the rooms under TPI (10 s cycles; at 15 or 25 °C their share is 90 or 30 %, so every cycle
    // switches On and Off): the new owner must continue their cycles exactly.
    let room = |sensor: i32| {
        if sensor > SENSORS / 2 {
            Setpoint::new(30.0, 1.0, 1.0).with_policy(Policy::Tpi(Tpi::new(10, 0.06)))
        } else {
            Setpoint::new(20.0, 1.0, 1.0)
        }
    };
    let setpoints: Vec<SetpointChange> = (1..=SENSORS)
        .map(|sensor| SetpointChange::new(sensor, room(sensor), 1, "test", 0))
        .collect();
    bus.publish(setpoints).await.expect("setpoints");

    let spawn_controller = || {
        Process::new(env!("CARGO_BIN_EXE_setpoint"))
            .args([
                "controller",
                "--kafka",
                &broker.brokers,
                "--topic-readings",
                &t.readings,
                "--topic-setpoints",
                &t.setpoints,
            ])
            .args([
                "--topic-commands",
                &t.commands,
                "--topic-controller-state",
                &t.controller_state,
                "--min-dwell-ms",
                &MIN_DWELL_MS.to_string(),
                "--kafka-config",
                &format!("session.timeout.ms={SESSION_TIMEOUT_MS}"),
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("controller starts")
    };
    let mut first = spawn_controller();
    let mut second = spawn_controller();
    // Both join the group (about half the session timeout each on Tansu) before readings flow.
    tokio::time::sleep(Duration::from_millis(2 * SESSION_TIMEOUT_MS as u64)).await;

    let raw = raw_consumer(&broker, &t.commands);
    let started = setpoint::clock::now_ms();
    let killed_at = started + 6_000;
    let end = killed_at + 24_000;
    let mut killed = false;
    let mut killed_ms = killed_at;
    let mut commands: HashMap<i32, Vec<(i64, i32)>> = HashMap::new();
    let mut got: HashMap<i32, Vec<Expected>> = HashMap::new();
    let mut log: Vec<LoggedReading> = Vec::new();
    let mut tick = 0i64;
    while setpoint::clock::now_ms() < end {
        // Every sensor's temperature flips across the band every second, so its heater flips too.
        let now = setpoint::clock::now_ms();
        let readings: Vec<SensorReading> = (1..=SENSORS)
            .map(|sensor| {
                let cold = ((tick / 10) + i64::from(sensor)) % 2 == 0;
                SensorReading {
                    sensor,
                    t_ms: now,
                    temperature: if cold { 15.0 } else { 25.0 },
                }
            })
            .collect();
        log.extend(readings.iter().map(|r| LoggedReading {
            sensor: r.sensor,
            t_ms: r.t_ms,
            temperature: r.temperature,
        }));
        bus.publish(readings).await.expect("readings");
        tick += 1;
        // Killed half-way between two flips, when its last commands are long acknowledged together with
        // their changelog records: a kill between those two acknowledgements repeats that batch by design
        // (at-least-once), and `join.rs` tests that window exactly. Here no command may repeat.
        let mid_flip = (tick - 1) % 10 == 5;
        if !killed && now >= killed_at && mid_flip {
            first.kill().expect("kill -9");
            let _ = first.wait();
            killed = true;
            killed_ms = now;
        }
        while let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(1), raw.recv()).await {
            let (sensor, command) = decode_heater_control_by_hand(m.payload().unwrap_or_default());
            let decoded = setpoint_wire::proto::HeaterControl::decode_value(m.payload().unwrap_or_default())
                .expect("ours");
            commands
                .entry(sensor)
                .or_default()
                .push((decoded.event_time_ms, command));
            got.entry(sensor).or_default().push(Expected {
                t_ms: decoded.event_time_ms,
                command: decoded.heater_command().expect("known"),
                version: decoded.setpoint_version,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = second.kill();
    let _ = second.wait();
    if !killed {
        let _ = first.kill();
    }
    let _ = first.wait();

    let takeover_bound = killed_ms + SESSION_TIMEOUT_MS + 8_000;
    for sensor in 1..=SENSORS {
        let cmds = commands.get(&sensor).cloned().unwrap_or_default();
        assert!(
            cmds.iter().any(|(t, _)| *t < killed_ms),
            "sensor {sensor} was controlled before the kill: {cmds:?}"
        );
        assert!(
            cmds.iter().any(|(t, _)| *t > takeover_bound),
            "sensor {sensor} controlled again within {} ms of the kill: {cmds:?}",
            takeover_bound - killed_ms
        );
        let repeats = cmds.windows(2).filter(|w| w[0].1 == w[1].1).count();
        assert_eq!(repeats, 0, "sensor {sensor}: repeated commands in {cmds:?}");
        let too_soon = cmds.windows(2).filter(|w| w[1].0 - w[0].0 < MIN_DWELL_MS).count();
        assert_eq!(too_soon, 0, "sensor {sensor}: dwell violated in {cmds:?}");
        println!(
            "sensor {sensor}: {} commands, {repeats} repeated, {too_soon} inside the dwell",
            cmds.len()
        );
    }
    // Exactly what one controller that never failed would have sent: the new owner took over the heater
    // memory from the changelog, and replayed readings changed nothing. Readings published in the last
    // moments may still be on their way: compare up to the last command read.
    let setpoints: Vec<LoggedSetpoint> = (1..=SENSORS)
        .map(|sensor| LoggedSetpoint {
            sensor,
            t_ms: 0,
            setpoint: room(sensor),
            version: 1,
        })
        .collect();
    let config = Config {
        min_dwell_ms: MIN_DWELL_MS,
        ..Config::default()
    };
    let horizon = got.values().flatten().map(|e| e.t_ms).max().unwrap_or(0) - 2_000;
    let mut expected = expected_commands(&config, &setpoints, &log);
    for (sensor, list) in expected.iter_mut() {
        list.retain(|e| e.t_ms <= horizon);
        if let Some(g) = got.get_mut(sensor) {
            g.retain(|e| e.t_ms <= horizon);
        }
    }
    compare(&expected, &got).unwrap_or_else(|e| panic!("across the kill: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_broker_is_survived_and_acknowledged_setpoints_stay_in_force() {
    let broker = Broker::start();
    if broker.pid().is_none() {
        return; // an external KAFKA_BROKERS cannot be frozen by this test
    }
    let t = topics("pause");
    let bus = kafka_bus(&broker, &t).await;
    let server = app::start(bus, options(2, 100), Arc::new(Metrics::default()))
        .await
        .expect("starts");
    let a = server.addr.expect("bridge");
    let mut ws = connect(a, Some(TOKEN), None).await.expect("connects");
    ws.next().await;
    ws.subscribe(None).await;
    // Decisions are flowing before the pause, and the heater is Off.
    drive_heater_off(&mut ws, &server, 2).await;
    // An acknowledged setpoint just before the pause: far above the room, so the heater must be on.
    ws.send(&set_setpoint("before", 2, 80.0, 1.0, 1.0, None)).await;
    ws.until(|m| match m {
        ServerMessage::Ack { request_id, .. } if request_id == "before" => Some(()),
        ServerMessage::Error(e) if e.request_id.as_deref() == Some("before") => panic!("{e:?}"),
        _ => None,
    })
    .await;
    let acked = server
        .hub
        .as_ref()
        .and_then(|h| h.setpoint(2))
        .expect("setpoint")
        .version;
    broker.signal("-STOP");
    tokio::time::sleep(Duration::from_secs(10)).await;
    broker.signal("-CONT");
    let resumed = Instant::now();
    // The acknowledged setpoint is in force at the controller: it decided with it (before or after the
    // freeze), and the heater turned on.
    let d = ws
        .until_within(Duration::from_secs(60), |m| match m {
            ServerMessage::Decision(d) if d.sensor == 2 && d.setpoint_version == acked => Some(*d),
            _ => None,
        })
        .await;
    assert_eq!(d.command, Command::On);
    // After the thaw, writes are acknowledged again and the controller acts on them.
    let mut attempt = 0;
    loop {
        attempt += 1;
        ws.send(&set_setpoint(
            &format!("after{attempt}"),
            2,
            -40.0,
            1.0,
            1.0,
            None,
        ))
        .await;
        let ok = ws
            .until_within(Duration::from_secs(60), |m| match m {
                ServerMessage::Ack { request_id, .. } if request_id == &format!("after{attempt}") => {
                    Some(true)
                }
                ServerMessage::Error(e) if e.request_id.as_deref() == Some(&format!("after{attempt}")) => {
                    Some(false)
                }
                _ => None,
            })
            .await;
        if ok {
            break;
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(60),
            "writes still refused a minute after the thaw"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let version = server
        .hub
        .as_ref()
        .and_then(|h| h.setpoint(2))
        .expect("setpoint")
        .version;
    let d = ws
        .until_within(Duration::from_secs(60), |m| match m {
            ServerMessage::Decision(d) if d.sensor == 2 && d.setpoint_version == version => Some(*d),
            _ => None,
        })
        .await;
    assert_eq!(d.command, Command::Off);
    println!(
        "decisions resumed {:?} after the broker was thawed",
        resumed.elapsed()
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_that_cannot_read_its_tables_yet_holds_requests_and_never_answers_from_a_partial_table() {
    use setpoint::bus::{Bus, SetpointChange};
    use setpoint_testkit::http::request;
    let Some((broker, proxy)) = Broker::start_behind_proxy() else {
        return; // an external KAFKA_BROKERS cannot be taken down by this test
    };
    let t = topics("tables");
    let writer = kafka_bus(&broker, &t).await;
    // The log already holds version 3 of sensor 5: what a bridge restarted now must answer and judge by.
    writer
        .publish(vec![SetpointChange::new(
            5,
            setpoint_control::Setpoint::new(21.0, 0.5, 0.5),
            3,
            "earlier",
            setpoint::clock::now_ms(),
        )
        .conditional(2, "earlier-1")])
        .await
        .expect("published");
    // The bridge starts while the broker is unreachable: it serves HTTP but cannot read its tables.
    proxy.go_down();
    let mut bridge_only = options(1, 100);
    bridge_only.simulator = None;
    bridge_only.run_controller = false;
    bridge_only.seed_setpoints = false;
    let bus = KafkaBus::new(kafka_options(&broker, &t), Arc::new(Metrics::default())).expect("bus");
    let server = app::start(bus, bridge_only, Arc::new(Metrics::default()))
        .await
        .expect("starts");
    let a = server.addr.expect("bridge");
    let held = Instant::now();
    let early = request(a, "GET", "/api/v1/sensors/5/setpoint", &[], None).await;
    let held = held.elapsed();
    assert_eq!(early.status, 503, "{}", early.body);
    assert_eq!(early.json()["code"], "broker_unavailable");
    assert_eq!(early.header("retry-after"), Some("1"));
    assert!(
        held >= Duration::from_millis(4_900),
        "held for the patience first, not refused at once: {held:?}"
    );
    assert_eq!(http_get(a, "/readyz").await.0, 503);

    // Back: every answer is either "not yet" or the whole table, never a 404 or an older version.
    proxy.come_up();
    let back = Instant::now();
    let mut refused = 0;
    let answered = loop {
        let r = request(a, "GET", "/api/v1/sensors/5/setpoint", &[], None).await;
        match r.status {
            503 => {
                assert!(
                    back.elapsed() < Duration::from_secs(60),
                    "tables never read: {}",
                    r.body
                );
                refused += 1;
            }
            200 => break r,
            other => panic!("answered {other} from a partial table: {}", r.body),
        }
    };
    assert_eq!(answered.json()["version"], 3, "{}", answered.body);
    let answered_after = back.elapsed();
    // A write is judged against the log's version 3 (a bridge judging by a partial table would answer a
    // false 409). Until its view of the broker is refreshed (once a second) it may still be refused as
    // unavailable: an honest "not yet", never saved.
    let put = loop {
        let put = request(
            a,
            "PUT",
            "/api/v1/sensors/5/setpoint",
            &[
                ("Authorization", &format!("Bearer {TOKEN}")),
                ("If-Match", "\"3\""),
            ],
            Some(r#"{"desired":22.0,"up_delta":0.5,"down_delta":0.5}"#),
        )
        .await;
        if put.status != 503 || back.elapsed() > Duration::from_secs(60) {
            break put;
        }
        // Slower than the write rate limit's refill (5/s), so retries are never refused as too many.
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(
        put.status, 200,
        "judged against the log's version 3: {}",
        put.body
    );
    assert_eq!(put.json()["version"], 4);
    while http_get(a, "/readyz").await.0 != 200 {
        assert!(back.elapsed() < Duration::from_secs(60), "/readyz never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "broker away: held {held:?}, then 503; back: {refused} more 503s, then version 3 after {answered_after:?}"
    );
    server.shutdown().await;
}
