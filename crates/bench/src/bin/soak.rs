//! `cargo xtask soak [SECS]`: the release `setpoint run` on the embedded bus at 5,000 readings/s (50 sensors
//! every 10 ms) while 50 WebSocket clients keep connecting, reading for 0.5–3 s and disconnecting. Samples
//! the server's RSS every second and fails if, after the warm-up, its median over the last third of the run
//! differs more than 10 % from its median over the first third, if the server dies, or if the clients stop
//! being served.
//!
//! The warm-up is the time the server's bounded buffers take to fill (the bus retention and the backfill
//! ring are set small here so that happens in the first 20 s) and the allocator's high-water mark under
//! client churn takes to level off (about 50 s); growth after that would be a leak. Hence at least 60 s of
//! warm-up, and 300 s for the CI run.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use setpoint_testkit::measure::{cpu_ticks, rss_kib};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

const SENSORS: &str = "50";
const INTERVAL_MS: &str = "10";
const CLIENTS: usize = 50;
/// Records per stream on the embedded bus: 20 s of readings at 5k/s.
const RETENTION: &str = "100000";
const BACKFILL_SECS: &str = "10";
const TOLERANCE: f64 = 0.10;
/// The shortest warm-up: see `main`.
const WARMUP_MIN_SECS: u64 = 60;

/// One client slot: connect, read for a while, drop, repeat until `stop`. Counts sessions and frames.
async fn churn(
    addr: String,
    slot: u64,
    stop: Arc<AtomicBool>,
    sessions: Arc<AtomicU64>,
    frames: Arc<AtomicU64>,
) {
    // A tiny per-slot generator, so slots do not connect in lockstep.
    let mut x = slot.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while !stop.load(Ordering::Relaxed) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let stay = Duration::from_millis(500 + x % 2_500);
        let Ok(mut request) = format!("ws://{addr}/ws").into_client_request() else {
            return;
        };
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static(setpoint_wire::ws::SUBPROTOCOL),
        );
        let Ok((ws, _)) = tokio_tungstenite::connect_async(request).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        sessions.fetch_add(1, Ordering::Relaxed);
        let (mut sink, mut stream) = ws.split();
        // A page opening: its first page of rooms, their history, then their live data.
        if sink
            .send(Message::Text(setpoint_bench::first_page().into()))
            .await
            .is_err()
        {
            continue;
        }
        let until = tokio::time::Instant::now() + stay;
        while let Ok(Some(Ok(m))) = tokio::time::timeout_at(until, stream.next()).await {
            if matches!(m, Message::Text(_)) {
                frames.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Memory and CPU of the real binary under steady load and client churn, over a long run.
#[derive(Parser)]
struct Args {
    /// Seconds to run.
    #[arg(env = "SOAK_SECS", default_value_t = 600)]
    secs: u64,
}

fn main() {
    let secs = Args::parse().secs;
    // Without clients the server's RSS is flat once the bus retention fills (20 s at this rate). With the
    // churning clients it climbs for about 50 s more: every connect encodes a backfill of several MiB, and
    // the allocator's high-water mark rises as rarer peaks of concurrent backfills occur, then levels off
    // (measured: 54 → 58 MiB between 25 s and 50 s, then flat within ±1 % to 180 s). A warm-up shorter than
    // that reads the levelling-off as a leak.
    let warmup = (secs / 4).max(WARMUP_MIN_SECS);
    let (mut server, addr) = setpoint_testkit::spawn_release_server(
        SENSORS,
        INTERVAL_MS,
        &["--backfill-secs", BACKFILL_SECS, "--retention-records", RETENTION],
    );
    let pid = server.id();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let stop = Arc::new(AtomicBool::new(false));
    let (sessions, frames) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let tasks: Vec<_> = (0..CLIENTS as u64)
        .map(|slot| {
            runtime.spawn(churn(
                addr.clone(),
                slot,
                Arc::clone(&stop),
                Arc::clone(&sessions),
                Arc::clone(&frames),
            ))
        })
        .collect();

    let start = Instant::now();
    let mut samples: Vec<(u64, u64)> = Vec::new(); // (second, RSS KiB)
    let mut died = None;
    let mut last_frames = 0;
    let mut starved_seconds = 0;
    let cpu0 = cpu_ticks(pid).unwrap_or(0);
    for second in 1..=secs {
        std::thread::sleep((start + Duration::from_secs(second)).saturating_duration_since(Instant::now()));
        if let Ok(Some(status)) = server.try_wait() {
            died = Some(status);
            break;
        }
        if let Some(rss) = rss_kib(pid) {
            samples.push((second, rss));
        }
        let f = frames.load(Ordering::Relaxed);
        if f == last_frames {
            starved_seconds += 1;
        }
        last_frames = f;
        if second % 30 == 0 || second == secs {
            eprintln!(
                "soak: {second:>4} s  RSS {:>7.1} MiB  sessions {:>6}  frames {:>9}",
                samples.last().map_or(0.0, |s| s.1 as f64 / 1024.0),
                sessions.load(Ordering::Relaxed),
                f
            );
        }
    }
    let cpu_percent =
        (cpu_ticks(pid).unwrap_or(cpu0).saturating_sub(cpu0)) as f64 / 100.0 / start.elapsed().as_secs_f64()
            * 100.0;
    stop.store(true, Ordering::Relaxed);
    runtime.block_on(async {
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    });
    let healthy = std::net::TcpStream::connect(&addr).is_ok();
    let _ = server.kill();
    let _ = server.wait();

    // Client churn makes RSS swing by several MiB from second to second (every new client gets a backfill
    // to encode), so single samples say little. A leak is a trend: compare the median of the first third
    // after the warm-up with the median of the last third.
    let after: Vec<u64> = samples
        .iter()
        .filter(|(s, _)| *s > warmup)
        .map(|(_, r)| *r)
        .collect();
    let median = |v: &[u64]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    };
    let third = (after.len() / 3).max(1);
    let baseline = median(&after[..third.min(after.len())]);
    let end = median(&after[after.len().saturating_sub(third)..]);
    let (min, max) = (
        after.iter().copied().min().unwrap_or(0),
        after.iter().copied().max().unwrap_or(0),
    );
    let drift = (end as f64 - baseline as f64) / baseline.max(1) as f64;
    let mib = |k: u64| k as f64 / 1024.0;
    println!("soak: {secs} s, {SENSORS} sensors every {INTERVAL_MS} ms (5,000 readings/s), {CLIENTS} churning clients");
    println!(
        "RSS after the {warmup} s warm-up: median {:.1} MiB in the first third, {:.1} MiB in the last third \
         ({:+.1} %); range {:.1}–{:.1} MiB; server CPU {cpu_percent:.0} %",
        mib(baseline),
        mib(end),
        drift * 100.0,
        mib(min),
        mib(max)
    );
    println!(
        "{} client sessions, {} frames received, {starved_seconds} s without any frame",
        sessions.load(Ordering::Relaxed),
        frames.load(Ordering::Relaxed)
    );
    let out = setpoint_testkit::root().join("target/bench");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(
        out.join("soak.json"),
        json!({"secs": secs, "warmup_secs": warmup, "rss_baseline_kib": baseline, "rss_min_kib": min,
               "rss_max_kib": max, "rss_end_kib": end, "drift": drift, "cpu_percent": cpu_percent,
               "sessions": sessions.load(Ordering::Relaxed), "frames": frames.load(Ordering::Relaxed),
               "starved_seconds": starved_seconds, "samples": samples})
        .to_string(),
    );
    let mut failures = Vec::new();
    if let Some(status) = died {
        failures.push(format!("the server exited: {status}"));
    }
    if !healthy {
        failures.push("the server stopped accepting connections".to_owned());
    }
    if drift.abs() > TOLERANCE {
        failures.push(format!(
            "RSS not flat within {:.0} % after warm-up: {:+.1} %",
            TOLERANCE * 100.0,
            drift * 100.0
        ));
    }
    if starved_seconds > secs / 10 {
        failures.push(format!("clients got no frames for {starved_seconds} s"));
    }
    if !failures.is_empty() {
        eprintln!("soak FAILED:\n  {}", failures.join("\n  "));
        std::process::exit(1);
    }
}
