//! Over 400 lines on purpose: the live runs and the catch-up run share the bus set-up, the observer and
//! the check against the reference, which is what keeps a wrong answer from ever being reported as a speed.
//!
//! `cargo xtask bench kafka`: the controller role on Kafka (Tansu on loopback, or `KAFKA_BROKERS`), driven
//! by a load generator at full speed and at fixed rates, with an independent rdkafka consumer on the
//! commands topic. Reports sustained readings/s, reading→command latency (the reading's event time to the
//! moment the independent consumer holds the command; millisecond event times, so 1 ms resolution), and
//! setpoint-write → first command under the new setpoint. Fresh topics per run: Tansu's memory storage
//! slows as a partition grows.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::ClientConfig;
use serde_json::json;
use setpoint::bus::kafka::{KafkaBus, KafkaOptions, Topics};
use setpoint::bus::{Bus, SensorReading, SetpointChange};
use setpoint::clock::now_ms;
use setpoint::metrics::Metrics;
use setpoint::roles::controller::{self, ControllerOptions};
use setpoint_control::Config;
use setpoint_testkit::measure::percentile;
use setpoint_wire::proto::HeaterControl;
use tokio_util::sync::CancellationToken;

const RUNS: usize = 3;

use setpoint_bench::{load_reading, probe_setpoint, spawn_controller, starting_setpoints, PROBE, SENSORS};
use setpoint_testkit::broker::Broker;

#[derive(Default)]
struct RunResult {
    published_per_s: f64,
    processed_per_s: f64,
    latencies_ms: Vec<i64>,
    setpoint_effect_ms: Vec<i64>,
}

fn reading(sensor: i32, t_ms: i64, temperature: f64) -> SensorReading {
    SensorReading {
        sensor,
        t_ms,
        temperature,
    }
}

/// One run: readings at `rate` per second (None = as fast as the producer takes them) for `duration`,
/// with a setpoint flip of the probe sensor every 200 ms.
async fn run(brokers: &str, tag: &str, rate: Option<u64>, duration: Duration) -> RunResult {
    let n = setpoint::clock::now_us();
    let topics = Topics {
        readings: format!("bench-sensor-{tag}-{n}"),
        setpoints: format!("bench-tempset-{tag}-{n}"),
        commands: format!("bench-heatercontrol-{tag}-{n}"),
        controller_state: format!("bench-state-{tag}-{n}"),
        schedules: format!("bench-schedules-{tag}-{n}"),
    };
    let mut options = KafkaOptions::new(brokers);
    options.topics = topics.clone();
    options.client_config = vec![("session.timeout.ms".into(), "6000".into())];
    let metrics = Arc::new(Metrics::default());
    let bus = KafkaBus::new(options, Arc::clone(&metrics)).expect("bus");
    bus.ensure_topics().await.expect("topics");
    bus.publish(starting_setpoints()).await.expect("setpoints");
    let stop = CancellationToken::new();
    let controller = spawn_controller(bus.clone(), &metrics, &stop);
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("bench-observer-{n}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topics.commands]).expect("subscribe");
    // Both group joins (controller and observer) take about half the session timeout on Tansu; warm up
    // with a few readings until the observer sees a command.
    let warm = Instant::now();
    loop {
        let t = now_ms();
        bus.publish(vec![reading(0, t, 25.0), reading(0, t + 1, 15.0)])
            .await
            .ok();
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await {
            break;
        }
        assert!(
            warm.elapsed() < Duration::from_secs(60),
            "no command after 60 s of warm-up"
        );
    }
    while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(300), consumer.recv()).await {}

    let processed_before = metrics.readings.load(Ordering::Relaxed);
    let generator = {
        let bus = bus.clone();
        tokio::spawn(async move {
            let start = Instant::now();
            let mut seq = 0u64;
            let mut flips: Vec<(u64, i64)> = Vec::new(); // (version, published at ms)
            let mut next_flip = start;
            while start.elapsed() < duration {
                if let Some(rate) = rate {
                    let due = start + Duration::from_secs_f64(seq as f64 / rate as f64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        tokio::time::sleep(wait).await;
                    }
                }
                let batch = match rate {
                    Some(r) => (r / 100).clamp(1, 5_000),
                    None => 5_000,
                };
                let t = now_ms();
                // Every sensor's readings cross its band every 10th round, so ~10 % of readings cause a
                // command; the probe sensor sits at 20 °C and only setpoint flips move it.
                let readings: Vec<SensorReading> = (seq..seq + batch)
                    .map(|i| load_reading(i, t))
                    .chain(std::iter::once(reading(PROBE, t, 20.0)))
                    .collect();
                if bus.publish(readings).await.is_err() {
                    continue;
                }
                seq += batch;
                if Instant::now() >= next_flip {
                    next_flip += Duration::from_millis(200);
                    let version = flips.len() as u64 + 2;
                    let published = now_ms();
                    let change = probe_setpoint(version, published);
                    if bus.publish(vec![change]).await.is_ok() {
                        flips.push((version, published));
                    }
                }
            }
            (seq, start.elapsed(), flips)
        })
    };
    let mut latencies = Vec::new();
    let mut effects: Vec<(u64, i64)> = Vec::new(); // (version, first command seen at ms)
    let deadline = Instant::now() + duration + Duration::from_secs(3);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await {
            Ok(Ok(m)) => {
                let seen = now_ms();
                let Ok(c) = HeaterControl::decode_value(m.payload().unwrap_or_default()) else {
                    continue;
                };
                if c.sensor_id == PROBE {
                    if !effects.iter().any(|(v, _)| *v == c.setpoint_version) {
                        effects.push((c.setpoint_version, seen));
                    }
                } else if c.sensor_id != 0 {
                    latencies.push(seen - c.event_time_ms);
                }
            }
            _ if generator.is_finished() => break,
            _ => {}
        }
    }
    let (sent, elapsed, flips) = generator.await.expect("generator");
    let processed = metrics.readings.load(Ordering::Relaxed) - processed_before;
    stop.cancel();
    let _ = controller.await;
    let setpoint_effect_ms = flips
        .iter()
        .filter_map(|(v, published)| {
            effects
                .iter()
                .find(|(ev, _)| ev == v)
                .map(|(_, seen)| seen - published)
        })
        .collect();
    latencies.sort_unstable();
    RunResult {
        published_per_s: sent as f64 / elapsed.as_secs_f64(),
        processed_per_s: processed as f64 / elapsed.as_secs_f64(),
        latencies_ms: latencies,
        setpoint_effect_ms,
    }
}

/// The Kafka pipeline: live throughput and latency, then the catch-up of a backlog.
#[derive(Parser)]
struct Args {
    /// Seconds measured per live configuration.
    #[arg(long, env = "BENCH_SECS", default_value_t = 5)]
    secs: u64,
    /// Run only this part.
    #[arg(long, env = "BENCH_ONLY")]
    only: Option<Only>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Only {
    CatchUp,
}

fn main() {
    let args = Args::parse();
    let secs = args.secs;
    let broker = Broker::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let live = args.only != Some(Only::CatchUp);
    let configs: Vec<(&str, Option<u64>)> = if live {
        vec![
            ("full speed", None),
            ("50k/s", Some(50_000)),
            ("10k/s", Some(10_000)),
        ]
    } else {
        Vec::new()
    };
    println!(
        "Kafka pipeline ({}), {SENSORS} sensors, 3 partitions, {secs} s per run, {RUNS} runs (min / median / max)",
        if broker.pid().is_some() { "Tansu, memory storage" } else { "KAFKA_BROKERS" }
    );
    println!(
        "{:<11} {:>24} {:>24} {:>16} {:>16} {:>16} {:>16} {:>20}",
        "load", "published/s", "processed/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "setpoint→effect p99"
    );
    let mut rows = Vec::new();
    for (name, rate) in configs {
        let mut results = Vec::new();
        for i in 0..RUNS {
            let tag = format!("{}-{i}", name.replace([' ', '/'], "-"));
            results.push(runtime.block_on(run(&broker.brokers, &tag, rate, Duration::from_secs(secs))));
        }
        let stat = |f: &dyn Fn(&RunResult) -> f64| {
            let mut v: Vec<f64> = results.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            (v[0], v[v.len() / 2], v[v.len() - 1])
        };
        let published = stat(&|r| r.published_per_s);
        let processed = stat(&|r| r.processed_per_s);
        let p50 = stat(&|r| percentile(&r.latencies_ms, 0.50).unwrap_or_default() as f64);
        let p99 = stat(&|r| percentile(&r.latencies_ms, 0.99).unwrap_or_default() as f64);
        let p999 = stat(&|r| percentile(&r.latencies_ms, 0.999).unwrap_or_default() as f64);
        let max = stat(&|r| r.latencies_ms.last().copied().unwrap_or(0) as f64);
        let mut effects: Vec<i64> = results
            .iter()
            .flat_map(|r| r.setpoint_effect_ms.clone())
            .collect();
        effects.sort_unstable();
        let fmt = |t: (f64, f64, f64)| format!("{:.0} / {:.0} / {:.0}", t.0, t.1, t.2);
        println!(
            "{name:<11} {:>24} {:>24} {:>16} {:>16} {:>16} {:>16} {:>14} ms (n={})",
            fmt(published),
            fmt(processed),
            fmt(p50),
            fmt(p99),
            fmt(p999),
            fmt(max),
            percentile(&effects, 0.99).unwrap_or_default(),
            effects.len()
        );
        rows.push(json!({"load": name, "published_per_s": [published.0, published.1, published.2],
            "processed_per_s": [processed.0, processed.1, processed.2],
            "latency_ms": {"p50": [p50.0, p50.1, p50.2], "p99": [p99.0, p99.1, p99.2],
                           "p999": [p999.0, p999.1, p999.2], "max": [max.0, max.1, max.2]},
            "setpoint_effect_ms": {"n": effects.len(), "p50": percentile(&effects, 0.5).unwrap_or_default(),
                                   "p99": percentile(&effects, 0.99).unwrap_or_default(), "max": effects.last().copied().unwrap_or(0)}}));
    }
    let catch_up = catch_up_table(&runtime, &broker);
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    let _ = std::fs::create_dir_all(&out);
    let path = out.join("pipeline-kafka.json");
    match std::fs::write(
        &path,
        serde_json::to_string_pretty(
            &json!({"sensors": SENSORS, "secs": secs, "runs": RUNS, "rows": rows, "catch_up": catch_up}),
        )
        .unwrap_or_default(),
    ) {
        Ok(()) => println!("wrote {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}

/// Readings in the catch-up backlog.
const BACKLOG: usize = 200_000;

/// The catch-up runs: the table, and their figures for the JSON. Exits the process with a failure if any
/// run's commands differ from the offline reference — a wrong answer is never reported as a speed.
fn catch_up_table(runtime: &tokio::runtime::Runtime, broker: &Broker) -> serde_json::Value {
    println!(
        "\nCatch-up: {SENSORS} sensors, setpoints first, a {BACKLOG}-reading backlog, then the controller \
         (readings/s from its first to its last command; commands checked against the offline reference)"
    );
    println!(
        "{:<5} {:>14} {:>14} {:>16} {:>20}",
        "run", "commands", "first→last s", "readings/s", "start→last s"
    );
    let mut rates = Vec::new();
    for i in 0..RUNS {
        match runtime.block_on(catch_up(&broker.brokers, i)) {
            Ok(r) => {
                println!(
                    "{i:<5} {:>14} {:>14.3} {:>16.0} {:>20.3}",
                    r.commands, r.first_to_last_s, r.readings_per_s, r.start_to_last_s
                );
                rates.push(r.readings_per_s);
            }
            Err(e) => {
                eprintln!("catch-up run {i} FAILED (no figure reported): {e}");
                std::process::exit(1);
            }
        }
    }
    rates.sort_by(f64::total_cmp);
    json!({"sensors": SENSORS, "backlog": BACKLOG, "readings_per_s": rates})
}

struct CatchUp {
    commands: usize,
    first_to_last_s: f64,
    readings_per_s: f64,
    start_to_last_s: f64,
}

async fn catch_up(brokers: &str, run: usize) -> Result<CatchUp, String> {
    use setpoint_testkit::logs;
    use setpoint_testkit::reference::{compare, expected_commands, Expected};
    use std::collections::HashMap;

    let n = setpoint::clock::now_us();
    let topics = Topics {
        readings: format!("catchup-sensor-{run}-{n}"),
        setpoints: format!("catchup-tempset-{run}-{n}"),
        commands: format!("catchup-heatercontrol-{run}-{n}"),
        controller_state: format!("catchup-state-{run}-{n}"),
        schedules: format!("catchup-schedules-{run}-{n}"),
    };
    let mut options = KafkaOptions::new(brokers);
    options.topics = topics.clone();
    options.client_config = vec![("session.timeout.ms".into(), "6000".into())];
    let metrics = Arc::new(Metrics::default());
    let bus = KafkaBus::new(options, Arc::clone(&metrics)).map_err(|e| e.to_string())?;
    bus.ensure_topics().await.map_err(|e| e.to_string())?;
    let base = now_ms() - 3_600_000;
    let setpoints = logs::setpoint_round(SENSORS, base, 20.0);
    let readings = logs::readings(SENSORS, base + 1, BACKLOG);
    let expected = expected_commands(&Config::default(), &setpoints, &readings);
    let want: usize = expected.values().map(Vec::len).sum();
    bus.publish(
        setpoints
            .iter()
            .map(|s| SetpointChange::new(s.sensor, s.setpoint, s.version, "bench", s.t_ms))
            .collect(),
    )
    .await
    .map_err(|e| e.to_string())?;
    for chunk in readings.chunks(20_000) {
        bus.publish(
            chunk
                .iter()
                .map(|r| reading(r.sensor, r.t_ms, r.temperature))
                .collect(),
        )
        .await
        .map_err(|e| e.to_string())?;
    }

    let observer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("catchup-observer-{run}-{n}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()
        .map_err(|e| e.to_string())?;
    observer
        .subscribe(&[&topics.commands])
        .map_err(|e| e.to_string())?;

    let started = now_ms();
    let stop = CancellationToken::new();
    let controller = tokio::spawn(controller::run(
        bus.clone(),
        ControllerOptions {
            config: Config::default(),
            tick: Duration::from_secs(3_600),
        },
        Arc::clone(&metrics),
        stop.clone(),
    ));
    let mut got: HashMap<i32, Vec<Expected>> = HashMap::new();
    let (mut count, mut first, mut last) = (0usize, i64::MAX, i64::MIN);
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline && (count < want || quiet_since.elapsed() < Duration::from_secs(2)) {
        match tokio::time::timeout(Duration::from_millis(200), observer.recv()).await {
            Ok(Ok(m)) => {
                let c = HeaterControl::decode_value(m.payload().unwrap_or_default())
                    .map_err(|e| e.to_string())?;
                // The controller's producer stamps each command when it sends it.
                let sent = m.timestamp().to_millis().unwrap_or_else(now_ms);
                first = first.min(sent);
                last = last.max(sent);
                got.entry(c.sensor_id).or_default().push(Expected {
                    t_ms: c.event_time_ms,
                    command: c.heater_command().map_err(|e| e.to_string())?,
                    version: c.setpoint_version,
                });
                count += 1;
                quiet_since = Instant::now();
            }
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => {}
        }
    }
    stop.cancel();
    let _ = controller.await;
    compare(&expected, &got)?;
    let span_ms = (last - first).max(1);
    Ok(CatchUp {
        commands: count,
        first_to_last_s: span_ms as f64 / 1e3,
        readings_per_s: BACKLOG as f64 * 1e3 / span_ms as f64,
        start_to_last_s: (last - started) as f64 / 1e3,
    })
}
