//! How long a browser that opens the dashboard waits for its history: by default 200 sensors × 15 minutes
//! of readings (one a second) and heater decisions (one a minute), from the WebSocket's opening to the last
//! history frame.
//!
//! The answer is checked before any time is reported: every run must receive exactly the readings and
//! decisions published, each once. A run with a wrong answer fails the benchmark.

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use setpoint::app::{self, RunOptions};
use setpoint::bridge::auth::Token;
use setpoint::bridge::BridgeOptions;
use setpoint::bus::embedded::EmbeddedBus;
use setpoint::bus::{Bus, SensorReading};
use setpoint::metrics::Metrics;
use setpoint_control::{Command, Decision, DecisionCause};
use setpoint_wire::ws::ServerMessage;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser, Debug)]
struct Args {
    /// Sensors with history: a page watches at most 200.
    #[arg(long, env = "BENCH_SENSORS", default_value_t = 200, value_parser = clap::value_parser!(i32).range(1..=200))]
    sensors: i32,
    /// Minutes of history (the dashboard's widest window is 15).
    #[arg(long, env = "BENCH_MINUTES", default_value_t = 15)]
    minutes: i64,
    /// Page opens measured.
    #[arg(long, env = "BENCH_RUNS", default_value_t = 7)]
    runs: usize,
    /// Fail when the median is above one second (the target in BENCHMARKS.md).
    #[arg(long, env = "BENCH_ASSERT", value_parser = clap::builder::FalseyValueParser::new())]
    assert: bool,
}

/// What one page open received.
struct Received {
    elapsed: Duration,
    bytes: usize,
    readings: HashSet<(i32, i64)>,
    decisions: HashSet<(i32, i64)>,
    duplicates: usize,
}

async fn open_page(addr: std::net::SocketAddr, sensors: i32, readings: usize, decisions: usize) -> Received {
    let started = Instant::now();
    let request = setpoint_testkit::ws::request(addr, None, None).expect("request");
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("connects");
    // The page watches its rooms: their history follows the answer.
    let rooms = setpoint_bench::subscribe(Some((1..=sensors).collect()));
    ws.send(Message::Text(rooms.into())).await.expect("subscribes");
    let mut got = Received {
        elapsed: Duration::ZERO,
        bytes: 0,
        readings: HashSet::new(),
        decisions: HashSet::new(),
        duplicates: 0,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while got.readings.len() < readings || got.decisions.len() < decisions {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("history within a minute")
            .expect("open")
            .expect("frame");
        let Message::Text(text) = frame else { continue };
        got.bytes += text.len();
        match ServerMessage::from_json(text.as_str()).expect("a server message") {
            ServerMessage::Readings(b) if b.backfill => {
                for r in b.items {
                    got.duplicates += usize::from(!got.readings.insert((r.sensor, r.t_ms)));
                }
            }
            ServerMessage::Decisions(b) if b.backfill => {
                for d in b.items {
                    got.decisions.insert((d.sensor, d.t_ms));
                }
            }
            _ => {}
        }
    }
    got.elapsed = started.elapsed();
    got
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    std::process::exit(runtime.block_on(run(args)));
}

async fn run(args: Args) -> i32 {
    let bus = EmbeddedBus::default();
    let now = setpoint::clock::now_ms();
    let span_ms = args.minutes * 60_000;
    let seconds = args.minutes * 60;
    // Readings every second and a decision every minute per sensor, all within the window.
    let mut readings = Vec::new();
    let mut decisions = Vec::new();
    for sensor in 1..=args.sensors {
        for i in 0..seconds {
            let t_ms = now - span_ms + 500 + i * 1_000;
            readings.push(SensorReading::new(
                sensor,
                setpoint_control::Reading {
                    t_ms,
                    temperature: 20.0 + (i % 7) as f64 * 0.1,
                },
            ));
            if i % 60 == 30 {
                decisions.push(Decision {
                    sensor,
                    command: if (i / 60) % 2 == 0 {
                        Command::On
                    } else {
                        Command::Off
                    },
                    t_ms,
                    temperature: 20.0,
                    setpoint_version: 1,
                    cause: DecisionCause::Band,
                });
            }
        }
    }
    let expected: HashSet<(i32, i64)> = readings.iter().map(|r| (r.sensor, r.t_ms)).collect();
    let expected_decisions: HashSet<(i32, i64)> = decisions.iter().map(|d| (d.sensor, d.t_ms)).collect();
    bus.publish(readings).await.expect("readings");
    bus.publish(decisions).await.expect("decisions");

    let token = Token::generate().expect("token");
    let options = RunOptions {
        bridge: Some(BridgeOptions::new("127.0.0.1:0".parse().expect("addr"), token)),
        ..RunOptions::default()
    };
    let server = app::start(bus, options, std::sync::Arc::new(Metrics::default()))
        .await
        .expect("starts");
    let addr = server.addr.expect("bridge");
    // The bridge reads the history from the bus when it starts (a seek by time); wait until it has all of
    // it and has flushed it into its history.
    let warm_up = Instant::now();
    let metrics = std::sync::Arc::clone(&server.metrics);
    let ingested = || {
        metrics.bridge_readings.load(Relaxed) as usize == expected.len()
            && metrics.bridge_decisions.load(Relaxed) as usize == expected_decisions.len()
    };
    while !ingested() {
        if warm_up.elapsed() > Duration::from_secs(60) {
            eprintln!("the bridge did not read the history within a minute");
            return 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ingest = warm_up.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut times = Vec::new();
    let mut bytes = 0;
    for run in 0..args.runs {
        let got = open_page(addr, args.sensors, expected.len(), expected_decisions.len()).await;
        if got.readings != expected || got.decisions != expected_decisions || got.duplicates > 0 {
            eprintln!(
                "run {run}: WRONG history: {} of {} readings, {} of {} decisions, {} duplicates",
                got.readings.intersection(&expected).count(),
                expected.len(),
                got.decisions.intersection(&expected_decisions).count(),
                expected_decisions.len(),
                got.duplicates
            );
            return 1;
        }
        bytes = got.bytes;
        times.push(got.elapsed);
    }
    server.shutdown().await;
    times.sort();
    let median = times[times.len() / 2];
    let worst = times[times.len() - 1];
    println!(
        "backfill: {} sensors × {} min = {} readings + {} decisions, {:.1} MB of JSON per page open",
        args.sensors,
        args.minutes,
        expected.len(),
        expected_decisions.len(),
        bytes as f64 / 1e6
    );
    println!(
        "  page open → last history frame over {} runs: median {:.0} ms, worst {:.0} ms (bridge start-up ingest {:.0} ms); target < 1000 ms",
        times.len(),
        median.as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3,
        ingest.as_secs_f64() * 1e3
    );
    if args.assert && median > Duration::from_secs(1) {
        eprintln!("backfill: median above the 1 s target");
        return 1;
    }
    0
}
