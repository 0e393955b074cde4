//! `cargo xtask bench fanout`: the release `setpoint run` (1,000 simulated sensors at 10 readings/s each =
//! 10k readings/s) with 1,000 WebSocket clients on loopback, first all reading, then with 10 of them
//! stalled. Reports the server's CPU and RSS (from /proc) and the delivery lag of the live clients (now −
//! newest event time in each readings batch they receive).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use setpoint_testkit::measure::{cpu_ticks, percentile, rss_kib};
use setpoint_wire::ws::SUBPROTOCOL;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

const CLIENTS: usize = 1_000;
const STALLED: usize = 10;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn phase(addr: &str, pid: u32, stalled: usize, secs: u64) -> serde_json::Value {
    let lags: Arc<Mutex<Vec<i64>>> = Arc::default();
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let request = match format!("ws://{addr}/ws").into_client_request() {
            Ok(mut r) => {
                r.headers_mut()
                    .insert("sec-websocket-protocol", HeaderValue::from_static(SUBPROTOCOL));
                r
            }
            Err(e) => panic!("request: {e}"),
        };
        let (ws, _) = match tokio_tungstenite::connect_async(request).await {
            Ok(c) => c,
            Err(e) => panic!("client {i} cannot connect: {e}"),
        };
        let (lags, measuring, stop) = (Arc::clone(&lags), Arc::clone(&measuring), Arc::clone(&stop));
        let is_stalled = i < stalled;
        tasks.push(tokio::spawn(async move {
            let (mut sink, mut stream) = ws.split();
            if sink
                .send(Message::Text(setpoint_bench::every_room_live().into()))
                .await
                .is_err()
            {
                return;
            }
            if is_stalled {
                // Never read: hold the connection open until the phase ends.
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                return;
            }
            let mut local = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let Ok(Some(Ok(Message::Text(t)))) =
                    tokio::time::timeout(Duration::from_millis(200), stream.next()).await
                else {
                    continue;
                };
                // A thousand clients in one process cannot afford to parse every batch: scan for the event
                // times instead (the server's JSON field order is fixed by its serde types).
                let text = t.as_str();
                if measuring.load(Ordering::Relaxed)
                    && text.starts_with(r#"{"type":"readings""#)
                    && !text.contains(r#""backfill":true"#)
                {
                    let newest = text
                        .match_indices(r#""t_ms":"#)
                        .filter_map(|(i, m)| {
                            let rest = &text[i + m.len()..];
                            rest[..rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len())]
                                .parse::<i64>()
                                .ok()
                        })
                        .max();
                    if let Some(newest) = newest {
                        local.push(now_ms() - newest);
                    }
                }
            }
            lags.lock().unwrap_or_else(|e| e.into_inner()).extend(local);
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await; // connection burst and backfill settle
    let t0 = cpu_ticks(pid).unwrap_or(0);
    let start = Instant::now();
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    measuring.store(false, Ordering::Relaxed);
    let (t1, rss) = (cpu_ticks(pid).unwrap_or(0), rss_kib(pid).unwrap_or(0));
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let mut lags = std::mem::take(&mut *lags.lock().unwrap_or_else(|e| e.into_inner()));
    lags.sort_unstable();
    let ticks_per_s = 100.0;
    let cpu = (t1 - t0) as f64 / ticks_per_s / elapsed * 100.0;
    json!({"clients": CLIENTS, "stalled": stalled, "server_cpu_percent": cpu, "server_rss_mb": rss / 1024,
           "batches_measured": lags.len(), "lag_ms": {"p50": percentile(&lags, 0.5).unwrap_or_default(), "p99": percentile(&lags, 0.99).unwrap_or_default(), "max": lags.last().copied().unwrap_or(0)}})
}

/// The bridge's fan-out to many WebSocket clients, with and without stalled ones.
#[derive(Parser)]
struct Args {
    /// Seconds measured per phase.
    #[arg(long, env = "BENCH_SECS", default_value_t = 15)]
    secs: u64,
}

fn main() {
    let (mut server, addr) = setpoint_testkit::spawn_release_server("1000", "100", &["--backfill-secs", "1"]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let secs = Args::parse().secs;
    let all_live = runtime.block_on(phase(&addr, server.id(), 0, secs));
    let with_stalled = runtime.block_on(phase(&addr, server.id(), STALLED, secs));
    let _ = server.kill();
    let _ = server.wait();
    println!("bridge fan-out: 1,000 sensors × 10 readings/s, {CLIENTS} WebSocket clients, {secs} s measured");
    println!(
        "{:<22} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "phase", "CPU %", "RSS MB", "lag p50", "lag p99", "lag max"
    );
    for (name, r) in [("all reading", &all_live), ("10 stalled", &with_stalled)] {
        println!(
            "{name:<22} {:>10.0} {:>10} {:>8} ms {:>7} ms {:>7} ms",
            r["server_cpu_percent"].as_f64().unwrap_or(0.0),
            r["server_rss_mb"],
            r["lag_ms"]["p50"],
            r["lag_ms"]["p99"],
            r["lag_ms"]["max"]
        );
    }
    let out = setpoint_testkit::root().join("target/bench");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(
        out.join("fanout.json"),
        json!({"all_reading": all_live, "ten_stalled": with_stalled}).to_string(),
    );
}
