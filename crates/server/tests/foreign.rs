//! Records from a producer that is not ours, on a real Kafka-protocol broker (Tansu, or `KAFKA_BROKERS`),
//! read by the real `setpoint controller` and `setpoint bridge` binaries: a device with a broken clock, a
//! tool that writes a setpoint out of the limits, a version at 2⁶⁴ − 1, a NaN reading, an author of
//! 200 KB. None of them may take a heater out of control, and every reader must agree on what is in force.
//! The controller's commands are compared exactly with the offline reference, which applies the same
//! refusals to the same log.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use common::broker::Broker;
use common::kafka::*;
use prost::Message as _;
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use setpoint::bus::kafka::Topics;
use setpoint::clock::now_ms;
use setpoint_control::{Command, Config, SensorId, Setpoint, TimeMs};
use setpoint_testkit::reference::{
    compare, expected_commands_logged_by, Expected, LoggedReading, LoggedSetpoint,
};
use setpoint_wire::proto::{HeaterControl, SensorData, TemperatureControl};
use setpoint_wire::ws::ServerMessage;

const TEN_YEARS_MS: i64 = 10 * 365 * 24 * 3_600_000;
const STALE_AFTER_MS: i64 = 4_000;
const BAND: Setpoint = Setpoint::new(20.0, 1.0, 1.0);

/// One record of the foreign producer, in the order it is written.
enum Foreign {
    Setpoint { sp: LoggedSetpoint, author: String },
    Reading(LoggedReading),
}

fn setpoint(sensor: SensorId, t_ms: TimeMs, setpoint: Setpoint, version: u64) -> Foreign {
    Foreign::Setpoint {
        sp: LoggedSetpoint {
            sensor,
            t_ms,
            setpoint,
            version,
        },
        author: String::new(),
    }
}

fn reading(sensor: SensorId, t_ms: TimeMs, temperature: f64) -> Foreign {
    Foreign::Reading(LoggedReading {
        sensor,
        t_ms,
        temperature,
    })
}

/// Writes the records with the producer's clock as their timestamp (a gateway whose clock is right,
/// relaying what its devices say), and the event time in the value; waits for every acknowledgement.
async fn write(producer: &FutureProducer, topics: &Topics, records: &[Foreign]) {
    let mut deliveries = Vec::new();
    for r in records {
        let (topic, sensor, value) = match r {
            Foreign::Setpoint { sp, author } => (
                &topics.setpoints,
                sp.sensor,
                TemperatureControl::from_setpoint(sp.sensor, &sp.setpoint, sp.version, author, sp.t_ms)
                    .encode_to_vec(),
            ),
            Foreign::Reading(r) => (
                &topics.readings,
                r.sensor,
                SensorData {
                    sensor_id: r.sensor,
                    temperature: r.temperature,
                    event_time_ms: r.t_ms,
                }
                .encode_to_vec(),
            ),
        };
        let key = sensor.to_string();
        let record = FutureRecord::to(topic).key(&key).payload(&value);
        let delivery = producer.send_result(record).map_err(|(e, _)| e).expect("queued");
        deliveries.push(delivery);
    }
    for d in deliveries {
        d.await.expect("delivered").expect("acknowledged");
    }
}

/// The offline reference's commands for everything `log` holds, all of it in the log by `written_by`.
fn reference(config: &Config, log: &[Foreign], written_by: TimeMs) -> HashMap<SensorId, Vec<Expected>> {
    let setpoints: Vec<LoggedSetpoint> = log
        .iter()
        .filter_map(|r| match r {
            // The reference's records carry no author: the one refused for its author's length is left
            // out of its input (it must take effect nowhere, which the commands of sensor 4 show).
            Foreign::Setpoint { sp, author } if author.len() <= setpoint_control::MAX_AUTHOR_BYTES => {
                Some(*sp)
            }
            _ => None,
        })
        .collect();
    let readings: Vec<LoggedReading> = log
        .iter()
        .filter_map(|r| match r {
            Foreign::Reading(r) => Some(*r),
            Foreign::Setpoint { .. } => None,
        })
        .collect();
    expected_commands_logged_by(config, &setpoints, &readings, written_by)
}

/// A `setpoint` role on the broker, killed when dropped; its stdout's URL, if it prints one.
struct Role {
    child: Child,
    addr: Option<SocketAddr>,
}

impl Role {
    fn spawn(role: &str, broker: &Broker, t: &Topics, extra: &[&str]) -> Role {
        let mut child = Process::new(env!("CARGO_BIN_EXE_setpoint"))
            .args([role, "--kafka", &broker.brokers])
            .args(topic_args(t))
            .args(["--partitions", "2"])
            .args(["--kafka-config", "session.timeout.ms=6000"])
            .args(extra)
            .env("SETPOINT_TOKEN", common::TOKEN)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(u) = line.trim().strip_prefix("http://") {
                    let _ = tx.send(u.split('/').next().unwrap_or_default().to_owned());
                }
            }
        });
        let addr = (role == "bridge").then(|| {
            rx.recv_timeout(Duration::from_secs(30))
                .expect("the bridge prints its URL")
                .parse()
                .expect("host:port")
        });
        Role { child, addr }
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every command on `heatercontrol` until `want` arrived and then 3 s of quiet, bounded: (band commands
/// per sensor, failsafe commands).
async fn commands(
    broker: &Broker,
    topic: &str,
    want: usize,
) -> (HashMap<SensorId, Vec<Expected>>, Vec<(SensorId, Command)>) {
    let consumer = raw_consumer(broker, topic);
    let (mut band, mut failsafe): (HashMap<SensorId, Vec<Expected>>, Vec<_>) = Default::default();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = Instant::now();
    let mut count = 0;
    while Instant::now() < deadline && (count < want || last.elapsed() < Duration::from_secs(3)) {
        if let Ok(Ok(m)) = tokio::time::timeout(
            Duration::from_millis(200),
            rdkafka::consumer::StreamConsumer::recv(&consumer),
        )
        .await
        {
            let c = HeaterControl::decode_value(m.payload().unwrap_or_default()).expect("our command");
            let command = c.heater_command().expect("known");
            if c.failsafe {
                failsafe.push((c.sensor_id, command));
            } else {
                band.entry(c.sensor_id).or_default().push(Expected {
                    t_ms: c.event_time_ms,
                    command,
                    version: c.setpoint_version,
                });
            }
            count += 1;
            last = Instant::now();
        }
    }
    (band, failsafe)
}

/// A request with the write token: status and body.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let headers = format!(
        "Authorization: Bearer {}\r\nContent-Type: application/json\r\n",
        common::TOKEN
    );
    let (status, _, body) = common::http(addr, method, path, &headers, body).await;
    (status, body)
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_from_another_producer_never_take_a_heater_out_of_control_and_every_reader_agrees() {
    let broker = Broker::start();
    let topics = topics("foreign");
    kafka_bus(&broker, &topics).await; // creates the topics
    let producer = raw_producer(&broker);
    let t0 = now_ms() - 60_000;
    let future = now_ms() + TEN_YEARS_MS;
    let mut log: Vec<Foreign> = (1..=5).map(|s| setpoint(s, t0, BAND, 0)).collect();
    log.extend((1..=5).map(|s| reading(s, t0 + 1_000, 15.0))); // every heater On
    log.extend([
        // 1: a device clock ten years ahead, then a correct reading: Off.
        reading(1, future, 30.0),
        reading(1, t0 + 2_000, 30.0),
        // 2: a setpoint out of the limits, refused without a version; the next one is version 2.
        setpoint(2, t0 + 1_500, Setpoint::new(900.0, 1.0, 1.0), 0),
        setpoint(2, t0 + 1_600, Setpoint::new(22.0, 1.0, 1.0), 0),
        reading(2, t0 + 2_000, 25.0),
        // 3: a version beyond every JSON reader's range, refused; the next unversioned one is version 2.
        setpoint(3, t0 + 1_500, BAND, u64::MAX),
        setpoint(3, t0 + 1_600, Setpoint::new(23.0, 1.0, 1.0), 0),
        reading(3, t0 + 2_000, 25.0),
        // 4: a NaN reading, then a setpoint whose author is 200 KB (it would make 25 °C "too cold").
        reading(4, t0 + 1_500, f64::NAN),
        Foreign::Setpoint {
            sp: LoggedSetpoint {
                sensor: 4,
                t_ms: t0 + 1_600,
                setpoint: Setpoint::new(40.0, 1.0, 1.0),
                version: 0,
            },
            author: "x".repeat(200_000),
        },
        reading(4, t0 + 2_000, 25.0),
        // 5: a reading ten years ahead, then silence: the failsafe must still see the silence.
        reading(5, future, 30.0),
    ]);
    write(&producer, &topics, &log).await;
    let written_by = now_ms();

    let config = Config {
        stale_after_ms: Some(STALE_AFTER_MS),
        ..Config::default()
    };
    let expected = reference(&config, &log, written_by);
    let want: usize = expected.values().map(Vec::len).sum();
    // Each heater On, then Off for 1 to 4; 5 stays On until its failsafe.
    assert_eq!(want, 9, "the reference: {expected:?}");
    assert_eq!(expected[&2].last().map(|e| e.version), Some(2));
    assert_eq!(expected[&3].last().map(|e| e.version), Some(2));

    let stale = ["--stale-after-ms".to_owned(), STALE_AFTER_MS.to_string()];
    let stale: Vec<&str> = stale.iter().map(String::as_str).collect();
    let controller = Role::spawn("controller", &broker, &topics, &stale);
    let (band, failsafe) = commands(&broker, &topics.commands, want + 1).await;
    compare(&expected, &band).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        failsafe,
        vec![(5, Command::Off)],
        "sensor 5's silence is seen on the controller's clock"
    );

    // A restart (kill -9, then a new controller in the group): it reads `tempset` again from the start,
    // long after the refused records were logged, and must refuse them again — the versions it decides
    // with are the first controller's. Every heater but 5 is turned On once more, then falls silent.
    drop(controller);
    let more: Vec<Foreign> = (1..=4).map(|s| reading(s, t0 + 3_000, 15.0)).collect();
    write(&producer, &topics, &more).await;
    log.extend(more);
    let expected = reference(&config, &log, now_ms());
    let want: usize = expected.values().map(Vec::len).sum();
    assert_eq!(want, 13, "the reference: {expected:?}");
    assert_eq!(expected[&2].last().map(|e| e.version), Some(2));
    let _controller = Role::spawn("controller", &broker, &topics, &stale);
    let (band, mut failsafe) = commands(&broker, &topics.commands, want + 5).await;
    compare(&expected, &band).unwrap_or_else(|e| panic!("after the restart: {e}"));
    failsafe.sort_by_key(|(s, _)| *s);
    let all_off: Vec<(SensorId, Command)> = (1..=5).map(|s| (s, Command::Off)).collect();
    assert_eq!(failsafe, all_off, "after the restart");

    // The bridge agrees with the controller on what is in force, and a write after the refused versions
    // is numbered on from the version in force.
    let bridge = Role::spawn("bridge", &broker, &topics, &[]);
    let addr = bridge.addr.expect("listening");
    let deadline = Instant::now() + Duration::from_secs(30);
    while http(addr, "GET", "/readyz", "").await.0 != 200 {
        assert!(Instant::now() < deadline, "bridge never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (sensor, desired, version) in [(1, 20.0, 1), (2, 22.0, 2), (3, 23.0, 2), (4, 20.0, 1)] {
        let (status, body) = http(addr, "GET", &format!("/api/v1/sensors/{sensor}/setpoint"), "").await;
        assert_eq!(status, 200, "{body}");
        let v = json(&body);
        assert_eq!(
            (v["desired"].as_f64(), v["version"].as_u64()),
            (Some(desired), Some(version)),
            "sensor {sensor}: {body}"
        );
    }
    let (status, body) = http(
        addr,
        "PUT",
        "/api/v1/sensors/3/setpoint",
        r#"{"desired":21.0,"up_delta":1.0,"down_delta":1.0}"#,
    )
    .await;
    assert_eq!(
        (status, json(&body)["version"].as_u64()),
        (200, Some(3)),
        "{body}"
    );

    // A browser connects, gets a small hello, and no reading it cannot decode.
    let mut page = common::connect(addr, None, None).await.expect("connects");
    let hello = page.next().await;
    let ServerMessage::Hello(h) = &hello else {
        panic!("expected hello, got {hello:?}")
    };
    let size = serde_json::to_string(&hello).expect("encodes").len();
    assert!(size < 4_096, "hello is {size} bytes");
    assert!(h.sensor_count > 0);
    let view = page
        .view(setpoint_wire::view::ViewRequest::by_id(
            0,
            setpoint_wire::view::MAX_WATCHED as u32,
        ))
        .await;
    assert!(view.sensors.iter().filter_map(|v| v.setpoint.as_ref()).all(|s| s
        .author
        .as_deref()
        .is_none_or(|a| a.len() <= setpoint_control::MAX_AUTHOR_BYTES)));
    let (_, metrics) = http(addr, "GET", "/metrics", "").await;
    let refused = |stream: &str, reason: &str| {
        let series = format!(
            "setpoint_refused_records_total{{role=\"bridge\",stream=\"{stream}\",reason=\"{reason}\"}}"
        );
        common::metric(&metrics, &series).unwrap_or(0)
    };
    assert_eq!(refused("readings", "non_finite"), 1, "{metrics}");
    assert_eq!(refused("readings", "future_time"), 2, "{metrics}");
    assert_eq!(refused("setpoints", "invalid_setpoint"), 1, "{metrics}");
    assert_eq!(refused("setpoints", "version"), 1, "{metrics}");
    assert_eq!(refused("setpoints", "too_long"), 1, "{metrics}");
    assert!(
        metrics.contains("setpoint_limits{role=\"bridge\",limit=\"desired_max\"} 150"),
        "{metrics}"
    );
    println!("foreign records: {want} commands as the reference, failsafe {failsafe:?}, hello {size} bytes");
}
