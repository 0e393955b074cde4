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
use setpoint::bus::{
    Bus, BusError, Consumer, HeaterMemoryRecord, Payload, Rebalance, Record, StartAt, StreamKind,
};
use setpoint::metrics::Metrics;
use setpoint::roles::controller::{self, ControllerOptions};
use setpoint_control::{Config, Decision, SensorId};
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

/// Setpoints for every sensor at `t_ms`: a building of hysteresis, TPI and off rooms (see
/// `setpoint_testkit::logs::mixed_round`), so every schedule also checks TPI's cycles across batches,
/// restarts and slow consumers against the reference.
fn round(entries: &mut Vec<Entry>, sensors: i32, t_ms: i64, desired: f64) {
    entries.extend(
        logs::mixed_round(sensors, t_ms, desired)
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

/// Writes entries as the reference tools do (no event-time extension; a TPI or off room's record carries
/// its mode and policy fields), with the event time as the record timestamp; resolves once the broker has acknowledged every record.
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
            .args(topic_args(t))
            .args([
                "--kafka-config",
                &format!("session.timeout.ms={SESSION_TIMEOUT_MS}"),
            ])
            .args(extra)
            // The catch-ups' end offsets and positions too (`read to end`), for a failure's post-mortem.
            .env("RUST_LOG", "info,setpoint::bus::kafka::consumer=debug")
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
    // The building's kinds of room are all exercised: a TPI room (1) switches in several cycles, a room
    // in mode off (7) gets one Off and nothing else.
    println!("TPI room 1: {:?}\nroom 7 (off): {:?}", expected[&1], expected[&7]);
    assert!(expected[&1].len() >= 4, "TPI cycles: {:?}", expected[&1]);
    assert_eq!(
        expected[&7].iter().map(|e| e.command).collect::<Vec<_>>(),
        vec![setpoint_control::Command::Off]
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

/// Controllers killed (`kill -9`) in the middle of a backlog, twice, and a third started: each resumes from
/// the controller-state changelog and the committed offsets — none missing, the minimum dwell kept across
/// the restarts, and nothing repeated except in the one window the design leaves open.
///
/// That window: a batch's commands are acknowledged before the changelog records that explain them (the
/// other order could lose a command), so a kill between the two acknowledgements makes the next controller
/// decide that batch again from the older changelog, repeating its commands (exactly-once needs the two
/// written atomically: see ARCHITECTURE.md). The test does not hope the kill misses the window (it did not,
/// once in four CI runs): after each kill it reads what the dead controller left — the commands and the
/// changelog — and derives exactly what the next one must publish: the reference's commands from the first
/// one the changelog does not explain. So a repeat outside the window, a lost command or a wrong one fails.
///
/// The log's last 10,000 readings are written only once the first controller is dead: it decides a backlog
/// faster than the test sees its first command (once in CI it had decided all of it, and the second then had
/// nothing to write), so withholding them is what guarantees the second controller work, and a kill after
/// its first changelog record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_killed_mid_stream_resume_from_the_changelog_repeating_only_unexplained_commands() {
    const SENSORS: i32 = 100;
    let broker = Broker::start();
    let t = topics("restart");
    let bus = kafka_bus(&broker, &t).await;
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
    // Small fetches, so the backlog is decided in many batches and the kill lands in the middle of it.
    let dwell = [
        "--min-dwell-ms",
        "700",
        "--kafka-config",
        "max.partition.fetch.bytes=16384",
    ];

    let (backlog, withheld) = log.entries.split_at(log.entries.len() - 10_000);
    let producer = raw_producer(&broker);
    write(&producer, &t, backlog).await;
    // Both streams watched without a consumer group (whose join alone takes half the session timeout, by
    // when the whole backlog would be decided).
    let mut commands = bus
        .subscribe::<Decision>(StartAt::Beginning, None)
        .expect("commands consumer");
    let mut changelog = bus
        .subscribe::<HeaterMemoryRecord>(StartAt::Beginning, None)
        .expect("changelog consumer");
    let mut left = Left::default();

    // The first is killed as soon as the test sees its first commands: by then it has decided some, most or
    // all of what is written, commands and changelog in any of the states the derivation below allows.
    let mut first = Controller::spawn(&broker, &t, &dwell, "setpoint-join-restart-1.log");
    let seen = tokio::time::timeout(Duration::from_secs(60), commands.next_batch(1))
        .await
        .expect("the first controller decides within a minute")
        .expect("commands read");
    first.kill();
    left.commands(seen);
    left.read(&mut commands, &mut changelog).await;
    let (mut want, again_1) = left.resumed(&expected);
    assert!(
        total(&left.published) > 0,
        "the first controller decided part of the log"
    );
    write(&producer, &t, withheld).await;

    // The second is killed as soon as it has written a changelog record: after its first batch, anywhere
    // in the next.
    let mut second = Controller::spawn(&broker, &t, &dwell, "setpoint-join-restart-2.log");
    let explained = tokio::time::timeout(Duration::from_secs(60), changelog.next_batch(1))
        .await
        .expect("the second controller writes its changelog within a minute")
        .expect("changelog read");
    second.kill();
    left.changelog(explained);
    left.read(&mut commands, &mut changelog).await;
    // What the second published must be what the first left predicted, as far as it got.
    let so_far = left.published.clone();
    for (sensor, have) in &so_far {
        let predicted = want.get(sensor).map_or(&[][..], Vec::as_slice);
        assert_eq!(
            &predicted[..have.len().min(predicted.len())],
            &have[..],
            "sensor {sensor}: the second controller's commands before its kill"
        );
    }
    let again_2;
    (want, again_2) = left.resumed(&expected);

    let _third = Controller::spawn(&broker, &t, &dwell, "setpoint-join-restart-3.log");
    let got = read_commands(&broker, &t.commands, total(&want), Duration::from_secs(120)).await;
    println!(
        "restarts: {} commands in the reference; {} expected and {} received on heatercontrol, of which \
         {again_1} (first kill) and {again_2} (second kill) were published but not yet explained by the \
         changelog, and so decided again",
        total(&expected),
        total(&want),
        total(&got),
    );
    compare(&want, &got).unwrap_or_else(|e| panic!("{e}"));
}

/// What killed controllers left on `heatercontrol` and in the changelog.
#[derive(Default)]
struct Left {
    published: HashMap<SensorId, Vec<Expected>>,
    /// Per sensor, the event time of the last command the changelog explains.
    explained: HashMap<SensorId, Option<i64>>,
}

impl Left {
    fn commands(&mut self, records: Vec<Record<Decision>>) {
        for r in records {
            self.published.entry(r.value.sensor).or_default().push(Expected {
                t_ms: r.value.t_ms,
                command: r.value.command,
                version: r.value.setpoint_version,
            });
        }
    }

    fn changelog(&mut self, records: Vec<Record<HeaterMemoryRecord>>) {
        for r in records {
            self.explained
                .insert(r.value.sensor, r.value.memory.last_change_ms);
        }
    }

    /// Both streams to their ends (the controller that wrote them is dead, so they no longer move).
    async fn read(
        &mut self,
        commands: &mut impl Consumer<Decision>,
        changelog: &mut impl Consumer<HeaterMemoryRecord>,
    ) {
        let patience = Duration::from_secs(30);
        self.commands(commands.read_to_end(patience).await.expect("commands read"));
        self.changelog(changelog.read_to_end(patience).await.expect("changelog read"));
    }

    /// What `heatercontrol` must hold once the next controller is done: what is there, then the
    /// reference's commands from the first one the changelog does not explain (the next controller resumes
    /// from the changelog and the committed offsets, which never run ahead of it). Also returns how many
    /// published commands that decides again.
    fn resumed(
        &self,
        expected: &HashMap<SensorId, Vec<Expected>>,
    ) -> (HashMap<SensorId, Vec<Expected>>, usize) {
        let mut again = 0;
        let mut want = HashMap::new();
        for (sensor, reference) in expected {
            let explained = self.explained.get(sensor).copied().flatten();
            let resume = reference
                .iter()
                .take_while(|c| explained.is_some_and(|t| c.t_ms <= t))
                .count();
            let published = self.published.get(sensor).map_or(&[][..], Vec::as_slice);
            again += reference[resume..]
                .iter()
                .filter(|c| published.contains(c))
                .count();
            let mut commands = published.to_vec();
            commands.extend_from_slice(&reference[resume..]);
            want.insert(*sensor, commands);
        }
        (want, again)
    }
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
        // The setpoints are acknowledged before the readings they govern are sent (the as-of invariant's
        // premise: written before the reading was fetched). Sent together, the producer may append a
        // reading dated like its setpoint first, which makes that setpoint late by design.
        let (setpoints, readings): (Vec<Entry>, Vec<Entry>) =
            chunk.into_iter().partition(|e| matches!(e, Entry::Setpoint(_)));
        write(&producer, &t, &setpoints).await;
        write(&producer, &t, &readings).await;
        entries.extend(setpoints);
        entries.extend(readings);
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
