//! `cargo xtask bench dashboard`: the release `setpoint run` and the built dashboard in headless Chromium
//! (Debian's, through chromedriver) at 20, 200 and 1,000 sensors × 10 readings/s. Per size: frames per
//! second and frame-interval p95 from `requestAnimationFrame`, main-thread busy time per frame from the
//! DevTools `Performance` metrics (TaskDuration), JS heap after a forced GC; optionally (`DASH_PROFILE=1`)
//! the top functions by self time from the DevTools CPU profiler. Then the JS heap sampled every minute
//! for `DASH_HEAP_SECS` (default 600) at 200 sensors, to show whether it stays flat.
//!
//! Per size the server runs `DASH_WARMUP_SECS` (default 60) before the page opens, so the page starts with
//! history to draw — the readings and heater decisions of that minute arrive as backfill and every heater
//! strip (a compact card's sparkline shows the last minute) is full of On/Off periods from the first frame.
//!
//! Environment: `DASH_SENSORS` (default `20,200,1000`), `DASH_SECS` (measured seconds per size, default 10),
//! `DASH_WARMUP_SECS`, `SETPOINT_DIST` (the dashboard build to serve, default `dist/`: to compare builds).

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use setpoint_e2e::release::{count_frames, env_u64, frame_rate, heap_mb, metrics, root, Server};
use setpoint_e2e::{Driver, Result, Session};
use tokio::time::sleep;

async fn start_server(sensors: usize) -> Result<Server> {
    Server::start(&["--interval-ms", "100", "--sensors", &sensors.to_string()]).await
}

/// Self time per function from a DevTools CPU profile, top `n`.
fn top_functions(profile: &Value, n: usize) -> Vec<(String, f64)> {
    let nodes = profile["nodes"].as_array().cloned().unwrap_or_default();
    let name_of: HashMap<i64, String> = nodes
        .iter()
        .filter_map(|node| {
            let f = &node["callFrame"];
            let name = f["functionName"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("(anonymous)");
            let url = f["url"].as_str().unwrap_or_default();
            let file = url.rsplit('/').next().unwrap_or_default();
            Some((node["id"].as_i64()?, format!("{name} {file}")))
        })
        .collect();
    let samples = profile["samples"].as_array().cloned().unwrap_or_default();
    let deltas = profile["timeDeltas"].as_array().cloned().unwrap_or_default();
    let mut self_us: HashMap<String, f64> = HashMap::new();
    for (id, dt) in samples
        .iter()
        .zip(deltas.iter().skip(1).chain(std::iter::once(&json!(0))))
    {
        let name = id
            .as_i64()
            .and_then(|i| name_of.get(&i))
            .cloned()
            .unwrap_or_default();
        *self_us.entry(name).or_default() += dt.as_f64().unwrap_or(0.0);
    }
    let total: f64 = self_us.values().sum();
    let mut v: Vec<(String, f64)> = self_us
        .into_iter()
        .map(|(k, us)| (k, us / total.max(1.0) * 100.0))
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v.truncate(n);
    v
}

async fn open(driver: &mut Driver, server: &Server) -> Result<Session> {
    let s = driver.session(1400, 1000).await?;
    s.goto(&server.url).await?;
    s.wait_for("sensor cards", Duration::from_secs(60), async |s| {
        s.find_all(".card[data-sensor]")
            .await
            .ok()
            .filter(|c| !c.is_empty())
    })
    .await?;
    s.cdp("Performance.enable", json!({})).await?;
    Ok(s)
}

async fn measure(
    driver: &mut Driver,
    sensors: usize,
    secs: u64,
    warmup: u64,
    profile: bool,
) -> Result<Value> {
    let server = start_server(sensors).await?;
    sleep(Duration::from_secs(warmup)).await; // history before the page exists
    let s = open(driver, &server).await?;
    sleep(Duration::from_secs(8)).await; // backfill drawn, steady state
    let cards = s
        .find_all(".card[data-sensor]")
        .await
        .map(|c| c.len())
        .unwrap_or(0);
    // Heater switches drawn that were made before the page opened (`data-heater` on each drawn canvas lists
    // the switches in its strip as `t_ms:on|off`): the run measures the page with its history, not without.
    let drawn_history = s
        .execute(
            "const opened = performance.timeOrigin; let n = 0; \
             for (const c of document.querySelectorAll('canvas[data-heater]')) { \
               for (const sw of c.dataset.heater.split(' ')) { \
                 if (sw && Number(sw.split(':')[0]) < opened) n++; } } \
             return n;",
            vec![],
        )
        .await?
        .as_u64()
        .unwrap_or(0);
    count_frames(&s).await?;
    let m0 = metrics(&s).await?;
    sleep(Duration::from_secs(secs)).await;
    let m1 = metrics(&s).await?;
    let (fps, p95, frames) = frame_rate(&s).await?;
    let delta = |k: &str| (m1.get(k).copied().unwrap_or(0.0) - m0.get(k).copied().unwrap_or(0.0)) * 1000.0;
    let n = frames.max(1) as f64;
    let busy_per_frame = delta("TaskDuration") / n;
    let script_per_frame = delta("ScriptDuration") / n;
    let layout_per_frame = (delta("LayoutDuration") + delta("RecalcStyleDuration")) / n;
    let heap = heap_mb(&s).await?;
    let top = if profile {
        let _ = s.cdp("Profiler.enable", json!({})).await;
        let _ = s.cdp("Profiler.start", json!({})).await;
        sleep(Duration::from_secs(5)).await;
        let p = s.cdp("Profiler.stop", json!({})).await?;
        top_functions(&p["profile"], 15)
    } else {
        Vec::new()
    };
    // Closing before the server goes keeps a dying page from skewing the next size's figures.
    s.close().await?;
    Ok(
        json!({"sensors": sensors, "cards": cards, "history_segments": drawn_history, "fps": fps, "p95_frame_ms": p95,
           "main_thread_ms_per_frame": busy_per_frame, "script_ms_per_frame": script_per_frame,
           "style_layout_ms_per_frame": layout_per_frame, "heap_mb": heap,
           "profile_self_percent": top.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>()}),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    match bench().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dashboard_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn bench() -> Result<()> {
    let sizes: Vec<usize> = std::env::var("DASH_SENSORS")
        .unwrap_or_else(|_| "20,200,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let secs = env_u64("DASH_SECS", 10);
    let warmup = env_u64("DASH_WARMUP_SECS", 60);
    let heap_secs = env_u64("DASH_HEAP_SECS", 600);
    let profile = std::env::var_os("DASH_PROFILE").is_some();
    let mut driver = Driver::start().await?;
    println!(
        "dashboard in headless Chromium, 1400×1000, readings at 10/s per sensor, page opened after {warmup} s, \
         {secs} s measured per size"
    );
    println!(
        "{:>8} {:>6} {:>8} {:>7} {:>12} {:>16} {:>12} {:>14} {:>9}",
        "sensors",
        "cards",
        "history",
        "fps",
        "p95 frame",
        "main thread/frame",
        "script/frame",
        "style+layout",
        "heap"
    );
    let mut rows = Vec::new();
    for n in sizes {
        let r = measure(&mut driver, n, secs, warmup, profile).await?;
        println!(
            "{:>8} {:>6} {:>8} {:>7.1} {:>9.1} ms {:>13.2} ms {:>9.2} ms {:>11.2} ms {:>6.1} MB",
            n,
            r["cards"].as_u64().unwrap_or(0),
            r["history_segments"].as_u64().unwrap_or(0),
            r["fps"].as_f64().unwrap_or(0.0),
            r["p95_frame_ms"].as_f64().unwrap_or(0.0),
            r["main_thread_ms_per_frame"].as_f64().unwrap_or(0.0),
            r["script_ms_per_frame"].as_f64().unwrap_or(0.0),
            r["style_layout_ms_per_frame"].as_f64().unwrap_or(0.0),
            r["heap_mb"].as_f64().unwrap_or(0.0)
        );
        for (name, pct) in r["profile_self_percent"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| Some((v.get(0)?.as_str()?.to_owned(), v.get(1)?.as_f64()?)))
        {
            println!("           {pct:5.1} %  {name}");
        }
        rows.push(r);
    }
    let mut heap_series = Vec::new();
    if heap_secs > 0 {
        println!("JS heap at 200 sensors over {heap_secs} s (after a forced GC, every 60 s):");
        let server = start_server(200).await?;
        let s = open(&mut driver, &server).await?;
        let start = Instant::now();
        loop {
            let t = start.elapsed().as_secs();
            let h = heap_mb(&s).await?;
            println!("  {t:>4} s  {h:6.2} MB");
            heap_series.push(json!([t, h]));
            if t >= heap_secs {
                break;
            }
            sleep(Duration::from_secs(60.min(heap_secs - t).max(1))).await;
        }
    }
    let out = root().join("target/bench");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(
        out.join("dashboard.json"),
        serde_json::to_string_pretty(&json!({"rows": rows, "heap_200": heap_series})).unwrap_or_default(),
    );
    Ok(())
}
