//! The controller's join on any schedule of arrivals, against a real Kafka-protocol broker (Tansu, or
//! `KAFKA_BROKERS`): backlogs written while no controller ran, fetch sizes, a slow setpoint consumer, a
//! restart. Every test compares the commands on `heatercontrol` with the offline reference
//! (`setpoint_testkit::reference`) computed here from the very log that was written.
//!
//! Logs are written the way the reference thermostat's tools write them: protobuf without our extension
//! fields (no `eventTimeMs`), keyed by sensor id; the event time is the record's timestamp, set explicitly
//! so that the reference knows it.
//!
//! Over 400 lines on purpose: each schedule is one self-contained test with its own log and reference.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use common::broker::Broker;
use common::kafka::*;
use prost::Message as _;
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::sync::Arc;

use setpoint::bus::kafka::{KafkaBus, Topics};
use setpoint::bus::{Bus, BusError, Consumer, Payload, Rebalance, Record, StartAt, StreamKind};
use setpoint::metrics::Metrics;
use setpoint::roles::controller::{self, ControllerOptions};
use setpoint_control::{Config, SensorId};
use setpoint_testkit::logs;
use setpoint_testkit::reference::{compare, expected_commands, Expected, LoggedReading, LoggedSetpoint};
use setpoint_wire::proto::{HeaterControl, SensorData, TemperatureControl};
use setpoint_wire::ws::BusStatus;
use tokio_util::sync::CancellationToken;

const SESSION_TIMEOUT_MS: u64 = 6_000;

/// One record of a log, in the order it is written.
#[derive(Clone, Copy, Debug)]
enum Entry {
    Setpoint(LoggedSetpoint),
    Reading(LoggedReading),
}

/// A log and its expected commands.
struct Log {
    entries: Vec<Entry>,
}

impl Log {
    fn setpoints(&self) -> Vec<LoggedSetpoint> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                Entry::Setpoint(s) => Some(*s),
                Entry::Reading(_) => None,
            })
            .collect()
    }

    fn readings(&self) -> Vec<LoggedReading> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                Entry::Reading(r) => Some(*r),
                Entry::Setpoint(_) => None,
            })
            .collect()
    }

    fn expected(&self, config: &Config) -> HashMap<SensorId, Vec<Expected>> {
        expected_commands(config, &self.setpoints(), &self.readings())
    }
}

/// Setpoints for every sensor at `t_ms` (see `setpoint_testkit::logs`).
fn round(entries: &mut Vec<Entry>, sensors: i32, t_ms: i64, desired: f64) {
    entries.extend(
        logs::setpoint_round(sensors, t_ms, desired)
            .into_iter()
            .map(Entry::Setpoint),
    );
}

/// `count` readings over the sensors, one ms apart.
fn readings(entries: &mut Vec<Entry>, sensors: i32, from_ms: i64, count: usize) {
    entries.extend(
        logs::readings(sensors, from_ms, count)
            .into_iter()
            .map(Entry::Reading),
    );
}

/// Writes entries as the reference tools do (no extension fields), with the event time as the record
/// timestamp; resolves once the broker has acknowledged every record.
async fn write(producer: &FutureProducer, topics: &Topics, entries: &[Entry]) {
    let mut deliveries = Vec::with_capacity(entries.len());
    for e in entries {
        let (topic, sensor, t_ms, value) = match e {
            Entry::Setpoint(s) => (
                &topics.setpoints,
                s.sensor,
                s.t_ms,
                TemperatureControl::from_setpoint(s.sensor, &s.setpoint, 0, "", 0).encode_to_vec(),
            ),
            Entry::Reading(r) => (
                &topics.readings,
                r.sensor,
                r.t_ms,
                SensorData {
                    sensor_id: r.sensor,
                    temperature: r.temperature,
                    event_time_ms: 0,
                }
                .encode_to_vec(),
            ),
        };
        let key = sensor.to_string();
        let mut record = FutureRecord::to(topic).key(&key).payload(&value).timestamp(t_ms);
        loop {
            match producer.send_result(record) {
                Ok(d) => {
                    deliveries.push(d);
                    break;
                }
                Err((_, r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
    for d in deliveries {
        d.await.expect("delivered").expect("acknowledged");
    }
}

/// Reads `heatercontrol` from the beginning until `want` commands arrived and then nothing more for a
/// while (so extra, repeated commands would be seen), bounded in time.
async fn read_commands(
    broker: &Broker,
    topic: &str,
    want: usize,
    patience: Duration,
) -> HashMap<SensorId, Vec<Expected>> {
    read_commands_then(broker, topic, want, patience, Duration::from_secs(3)).await
}

/// [`read_commands`], waiting `quiet` after the last command.
async fn read_commands_then(
    broker: &Broker,
    topic: &str,
    want: usize,
    patience: Duration,
    quiet: Duration,
) -> HashMap<SensorId, Vec<Expected>> {
    let consumer = raw_consumer(broker, topic);
    let mut got: HashMap<SensorId, Vec<Expected>> = HashMap::new();
    let mut count = 0;
    let deadline = Instant::now() + patience;
    let mut last = Instant::now();
    while Instant::now() < deadline && (count < want || last.elapsed() < quiet) {
        match tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await {
            Ok(Ok(m)) => {
                let c = HeaterControl::decode_value(m.payload().unwrap_or_default()).expect("our command");
                got.entry(c.sensor_id).or_default().push(Expected {
                    t_ms: c.event_time_ms,
                    command: c.heater_command().expect("known"),
                    version: c.setpoint_version,
                });
                count += 1;
                last = Instant::now();
            }
            Ok(Err(e)) => panic!("consume: {e}"),
            Err(_) => {}
        }
    }
    got
}

struct Controller {
    child: Child,
}

impl Controller {
    fn spawn(broker: &Broker, t: &Topics, extra: &[&str], log: &str) -> Self {
        let log_path: PathBuf = std::env::temp_dir().join(log);
        let stderr = std::fs::File::create(&log_path)
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null());
        let child = Process::new(env!("CARGO_BIN_EXE_setpoint"))
            .args(["controller", "--kafka", &broker.brokers])
            .args(["--topic-readings", &t.readings, "--topic-setpoints", &t.setpoints])
            .args([
                "--topic-commands",
                &t.commands,
                "--topic-controller-state",
                &t.controller_state,
            ])
            .args([
                "--kafka-config",
                &format!("session.timeout.ms={SESSION_TIMEOUT_MS}"),
            ])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("controller starts");
        Self { child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}

fn total(commands: &HashMap<SensorId, Vec<Expected>>) -> usize {
    commands.values().map(Vec::len).sum()
}

/// The first scenario: setpoints for 300 sensors, 20,000 readings, the band moved by 1.5 °C for
/// every sensor, 20,000 more readings — all written while no controller ran; then one starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_with_a_setpoint_change_half_way_is_decided_as_of_each_reading() {
    const SENSORS: i32 = 300;
    let broker = Broker::start();
    let t = topics("halfway");
    let _bus = kafka_bus(&broker, &t).await;
    let base = setpoint::clock::now_ms() - 3_600_000;
    let mut entries = Vec::new();
    round(&mut entries, SENSORS, base, 20.0);
    readings(&mut entries, SENSORS, base + 1, 20_000);
    round(&mut entries, SENSORS, base + 30_000, 21.5);
    readings(&mut entries, SENSORS, base + 30_001, 20_000);
    let log = Log { entries };
    write(&raw_producer(&broker), &t, &log.entries).await;
    let expected = log.expected(&Config::default());

    let _controller = Controller::spawn(&broker, &t, &[], "setpoint-join-halfway.log");
    let got = read_commands(&broker, &t.commands, total(&expected), Duration::from_secs(120)).await;
    println!(
        "backlog with a change half-way: {} commands expected, {} received",
        total(&expected),
        total(&got)
    );
    compare(&expected, &got).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        total(&expected) > 10 * SENSORS as usize,
        "the log exercises the rule"
    );
}

/// The second scenario: setpoints first, then 20,000 readings of 200 sensors, the controller last.
/// Its first decisions must already see every setpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setpoints_first_then_readings_then_the_controller_misses_no_first_command() {
    const SENSORS: i32 = 200;
    let broker = Broker::start();
    let t = topics("first");
    let _bus = kafka_bus(&broker, &t).await;
    let base = setpoint::clock::now_ms() - 3_600_000;
    let mut entries = Vec::new();
    round(&mut entries, SENSORS, base, 20.0);
    readings(&mut entries, SENSORS, base + 1, 20_000);
    let log = Log { entries };
    write(&raw_producer(&broker), &t, &log.entries).await;
    let expected = log.expected(&Config::default());

    let _controller = Controller::spawn(&broker, &t, &[], "setpoint-join-first.log");
    let got = read_commands(&broker, &t.commands, total(&expected), Duration::from_secs(120)).await;
    println!(
        "setpoints first: {} commands expected, {} received",
        total(&expected),
        total(&got)
    );
    compare(&expected, &got).unwrap_or_else(|e| panic!("{e}"));
}

/// A controller killed (`kill -9`) in the middle of a backlog, and a new one started: the new one resumes
/// from the controller-state changelog and the committed offsets — no command repeated, none missing, the
/// minimum dwell kept across the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_mid_stream_and_restarted_resumes_without_a_repeat() {
    const SENSORS: i32 = 100;
    let broker = Broker::start();
    let t = topics("restart");
    let _bus = kafka_bus(&broker, &t).await;
    let base = setpoint::clock::now_ms() - 3_600_000;
    let mut entries = Vec::new();
    round(&mut entries, SENSORS, base, 20.0);
    readings(&mut entries, SENSORS, base + 1, 30_000);
    round(&mut entries, SENSORS, base + 40_000, 21.5);
    readings(&mut entries, SENSORS, base + 40_001, 30_000);
    let log = Log { entries };
    let config = Config {
        min_dwell_ms: 700,
        ..Config::default()
    };
    let expected = log.expected(&config);
    let dwell = ["--min-dwell-ms", "700"];

    // Killed as soon as its first commands are out, while it works through the backlog.
    write(&raw_producer(&broker), &t, &log.entries).await;
    let mut first = Controller::spawn(&broker, &t, &dwell, "setpoint-join-restart-1.log");
    let seen = read_commands_then(&broker, &t.commands, 1, Duration::from_secs(60), Duration::ZERO).await;
    first.kill();
    assert!(total(&seen) > 0, "the first controller decided part of the log");
    let _second = Controller::spawn(&broker, &t, &dwell, "setpoint-join-restart-2.log");
    let got = read_commands(&broker, &t.commands, total(&expected), Duration::from_secs(120)).await;
    println!(
        "restart: {} commands expected, {} received ({} before the kill)",
        total(&expected),
        total(&got),
        total(&seen)
    );
    compare(&expected, &got).unwrap_or_else(|e| panic!("{e}"));
}

/// A bus whose setpoint consumers lag: each live batch is one record, handed out after a delay, and each
/// catch-up starts late — the setpoint table as far behind the readings as slow fetches could leave it.
#[derive(Clone)]
struct SlowSetpoints<B>(B);

struct Slow<C> {
    inner: C,
    slow: bool,
}

impl<B: Bus> Bus for SlowSetpoints<B> {
    type Consumer<T: Payload> = Slow<B::Consumer<T>>;

    fn publish<T: Payload>(
        &self,
        values: Vec<T>,
    ) -> impl std::future::Future<Output = Result<(), BusError>> + Send {
        self.0.publish(values)
    }

    fn subscribe<T: Payload>(
        &self,
        start: StartAt,
        group: Option<&str>,
    ) -> Result<Self::Consumer<T>, BusError> {
        Ok(Slow {
            inner: self.0.subscribe(start, group)?,
            slow: T::STREAM == StreamKind::Setpoints,
        })
    }

    fn status(&self) -> BusStatus {
        self.0.status()
    }
}

impl<T: Payload, C: Consumer<T>> Consumer<T> for Slow<C> {
    async fn next_batch(&mut self, max: usize) -> Result<Vec<Record<T>>, BusError> {
        if self.slow {
            tokio::time::sleep(Duration::from_millis(300)).await;
            return self.inner.next_batch(1).await;
        }
        self.inner.next_batch(max).await
    }

    fn try_batch(&mut self, max: usize) -> Result<Vec<Record<T>>, BusError> {
        if self.slow {
            return Ok(Vec::new());
        }
        self.inner.try_batch(max)
    }

    async fn read_to_end(&mut self, timeout: Duration) -> Result<Vec<Record<T>>, BusError> {
        if self.slow {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.inner.read_to_end(timeout).await
    }

    fn commit(&mut self) -> Result<(), BusError> {
        self.inner.commit()
    }

    fn lost(&self) -> u64 {
        self.inner.lost()
    }

    fn take_rebalance(&mut self) -> Rebalance {
        self.inner.take_rebalance()
    }
}

/// Setpoints change for every sensor ten times while readings stream in, written as the controller runs;
/// its consumers fetch in small pieces and its setpoint consumer lags. The commands are exactly the
/// reference's: the join does not depend on which consumer happened to fetch first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_fetches_and_a_lagging_setpoint_consumer_do_not_change_the_commands() {
    const SENSORS: i32 = 50;
    let broker = Broker::start();
    let t = topics("slow");
    let mut options = kafka_options(&broker, &t);
    options.client_config.extend(
        [
            ("max.partition.fetch.bytes", "2048"),
            ("fetch.max.bytes", "8192"),
            ("message.max.bytes", "8192"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    let kafka = KafkaBus::new(options, Arc::new(Metrics::default())).expect("bus");
    kafka.ensure_topics().await.expect("topics");
    let stop = CancellationToken::new();
    let controller = tokio::spawn(controller::run(
        SlowSetpoints(kafka),
        ControllerOptions {
            config: Config::default(),
            tick: Duration::from_secs(3_600),
        },
        Arc::new(Metrics::default()),
        stop.clone(),
    ));
    // Let the controller join its group before the log starts (half the session timeout on Tansu).
    tokio::time::sleep(Duration::from_millis(SESSION_TIMEOUT_MS)).await;

    let producer = raw_producer(&broker);
    let mut entries = Vec::new();
    let mut t_ms = setpoint::clock::now_ms();
    for phase in 0..10 {
        let mut chunk = Vec::new();
        round(
            &mut chunk,
            SENSORS,
            t_ms,
            if phase % 2 == 0 { 20.0 } else { 21.5 },
        );
        readings(&mut chunk, SENSORS, t_ms, 1_000);
        t_ms += 1_000;
        write(&producer, &t, &chunk).await;
        entries.extend(chunk);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let log = Log { entries };
    let expected = log.expected(&Config::default());
    let got = read_commands(&broker, &t.commands, total(&expected), Duration::from_secs(120)).await;
    stop.cancel();
    controller
        .await
        .expect("joined")
        .expect("the controller ran until stopped");
    println!(
        "lagging setpoints: {} commands expected, {} received",
        total(&expected),
        total(&got)
    );
    compare(&expected, &got).unwrap_or_else(|e| panic!("{e}"));
}
