//! `cargo xtask bench scale`: a building of 100,000 rooms reporting every 10 s (10,000 readings/s) in one
//! release `setpoint run`, on this machine, as its operator meets it:
//!
//! - the process's memory once every room is known (whole process: simulator, bus, controller, bridge),
//!   and per room;
//! - one page of the API (`limit=1000` from the middle, and filtered `heater_on`);
//! - a browser (headless Chromium): the first live card from navigation, a far room found by typing its
//!   id, frames per second on a page of 120 cards;
//! - 1,000 WebSocket clients opening the dashboard's first view at once, while the browser's frame rate
//!   and a live client's reading lag (arrival minus the reading's time) are measured before and during.
//!   The simulator steps every room at once, so readings come as one burst of 100,000 per interval: the
//!   storm is started just before a burst is due, and the lag of that burst's readings is compared with
//!   the bursts before it.
//!
//! Every figure is checked before it is reported: the first card is room 1 with a temperature, the found
//! room is exactly the one typed, the API page holds the 1,000 rooms after the cursor in order and the
//! total, the filtered page only heaters that are On, every one of the 1,000 clients got its page, and the
//! live client's readings are of the rooms it watches. A wrong answer fails the run.
//!
//! Environment: `SCALE_ROOMS` (100000), `SCALE_INTERVAL_MS` (10000), `SCALE_WARMUP_SECS` (20),
//! `SCALE_CLIENTS` (1000), `SCALE_SECS` (10, each measured stretch), `SCALE_ASSERT` (fail when a target
//! of issue 23 is missed: first card and room by id ≤ 1 s, ≥ 55 fps, ≤ 1 GB, lag unchanged).

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use setpoint_e2e::release::{count_frames, env_u64, frame_rate, get, heap_mb, root, Server};
use setpoint_e2e::{Driver, Result, Session};
use setpoint_wire::view::ViewRequest;
use setpoint_wire::ws::ServerMessage;
use tokio::time::sleep;

/// Cards on a compact page, the dashboard's page at this size.
const PAGE: usize = 120;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    match bench().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scale_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Percentile `p` (0..=100) of `v`, sorted here.
fn percentile(v: &mut [i64], p: usize) -> i64 {
    v.sort_unstable();
    v.get((v.len().saturating_sub(1)) * p / 100).copied().unwrap_or(0)
}

async fn bench() -> Result<()> {
    let rooms = env_u64("SCALE_ROOMS", 100_000) as usize;
    let interval = env_u64("SCALE_INTERVAL_MS", 10_000);
    let warmup = env_u64("SCALE_WARMUP_SECS", 20);
    let clients = env_u64("SCALE_CLIENTS", 1_000) as usize;
    let secs = env_u64("SCALE_SECS", 10);
    let assert = std::env::var_os("SCALE_ASSERT").is_some_and(|v| v != "0" && !v.is_empty());
    let rate = rooms as f64 * 1000.0 / interval as f64;
    println!("{rooms} rooms, a reading every {interval} ms each ({rate:.0} readings/s), {clients} clients");

    // Budgets per address raised: the 1,000 clients all come from 127.0.0.1 (a building's dashboards behind
    // one NAT would need the same).
    let server = Server::start(&[
        "--sensors",
        &rooms.to_string(),
        "--interval-ms",
        &interval.to_string(),
        "--reads-per-second",
        "1000",
        "--read-burst",
        "2000",
        "--max-connections",
        "4096",
    ])
    .await?;
    let addr = server.addr()?;
    let started = Instant::now();
    loop {
        let a = get(addr, "/api/v1/sensors?limit=1").await?;
        let known: usize = a
            .headers
            .get("x-total-count")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if known >= rooms {
            break;
        }
        if started.elapsed() > Duration::from_secs(180) {
            return Err(format!("only {known} of {rooms} rooms known after 180 s"));
        }
        sleep(Duration::from_millis(500)).await;
    }
    let known_after = started.elapsed();
    // The process's memory over the warm-up, every minute: the history rings fill over the 15-minute
    // window and the bus's retention over its first million records, then it should stay flat.
    let mut rss_series = Vec::new();
    let warm = Instant::now();
    loop {
        let t = warm.elapsed().as_secs();
        let rss = server.rss_bytes()?;
        println!("  {t:>5} s  RSS {:>7.1} MB", rss as f64 / 1e6);
        rss_series.push(json!([t, rss]));
        if t >= warmup {
            break;
        }
        sleep(Duration::from_secs(60.min(warmup - t).max(1))).await;
    }
    let rss = server.rss_bytes()?;
    // The whole process's CPU at this load, over 10 s with no client.
    let (cpu0, t0) = (server.cpu_seconds()?, Instant::now());
    sleep(Duration::from_secs(10)).await;
    let cpu = (server.cpu_seconds()? - cpu0) / t0.elapsed().as_secs_f64() * 100.0;

    // One page of the API from the middle, and one filtered page; each checked.
    let after = rooms / 2;
    let t = Instant::now();
    let page = get(addr, &format!("/api/v1/sensors?limit=1000&after={after}")).await?;
    let api_page = t.elapsed();
    let ids: Vec<i64> = serde_json::from_str::<Vec<Value>>(&page.body)
        .map_err(|e| format!("API page: {e}"))?
        .iter()
        .filter_map(|v| v["sensor"].as_i64())
        .collect();
    let want: Vec<i64> = (after as i64 + 1..=after as i64 + 1000).collect();
    if page.status != 200 || ids != want || page.headers.get("x-total-count") != Some(&rooms.to_string()) {
        return Err(format!("API page wrong: {} {:?}…", page.status, ids.first()));
    }
    let t = Instant::now();
    let on = get(addr, "/api/v1/sensors?limit=1000&filter=heater_on").await?;
    let api_filtered = t.elapsed();
    let heating: Vec<Value> = serde_json::from_str(&on.body).map_err(|e| format!("filtered: {e}"))?;
    if on.status != 200 || heating.is_empty() || heating.iter().any(|v| v["heater"]["command"] != "on") {
        return Err(format!("filtered page wrong: {} {}", on.status, heating.len()));
    }

    // The browser: the first live card, a far room by id, then the frame rate of a full page.
    let mut driver = Driver::start().await?;
    let s = driver.session(1400, 1000).await?;
    s.cdp("Performance.enable", json!({})).await?;
    let t = Instant::now();
    s.goto(&server.url).await?;
    let first = s
        .wait_for(
            "room 1's card with a temperature",
            Duration::from_secs(60),
            async |s| {
                s.text_of(".card[data-sensor=\"1\"] .current-temp")
                    .await
                    .filter(|t| t.contains('°'))
            },
        )
        .await;
    if let Err(e) = first {
        // What the page showed instead, for the report.
        let shot = root().join("target/bench/scale-first-card.png");
        let _ = s.screenshot(&shot).await;
        let said: String = s
            .text_of("body")
            .await
            .unwrap_or_default()
            .chars()
            .take(400)
            .collect();
        return Err(format!(
            "{e}; the page said: {said}; screenshot {}",
            shot.display()
        ));
    }
    let first_card = t.elapsed();
    let far = rooms - 1_234;
    let filter = s.find("input[type=search]").await?;
    let t = Instant::now();
    s.send_keys(&filter, &far.to_string()).await?;
    let far_card = format!(".card[data-sensor=\"{far}\"] .current-temp");
    s.wait_for(
        "the far room alone, with a temperature",
        Duration::from_secs(60),
        async |s| {
            let cards = s.find_all(".card[data-sensor]").await.ok()?;
            let temp = s.text_of(&far_card).await.filter(|t| t.contains('°'))?;
            (cards.len() == 1).then_some(temp)
        },
    )
    .await?;
    let by_id = t.elapsed();
    s.execute(
        "const i = document.querySelector('input[type=search]'); i.value = ''; \
         i.dispatchEvent(new Event('input', { bubbles: true }));",
        vec![],
    )
    .await?;
    s.wait_for("a full page of cards", Duration::from_secs(60), async |s| {
        s.find_all(".card[data-sensor]")
            .await
            .ok()
            .filter(|c| c.len() == PAGE)
    })
    .await?;
    sleep(Duration::from_secs(3)).await; // histories drawn
    let (fps_before, p95_before, _) = measure_frames(&s, secs).await?;

    // A live client watching the first page: (reading time, lag) of each reading it receives.
    let lags: Arc<Mutex<Vec<(i64, i64)>>> = Arc::default();
    let mut live = setpoint_testkit::ws::connect(addr, None, None)
        .await
        .map_err(|e| e.to_string())?;
    live.next().await;
    let watched = live.view(ViewRequest::by_id(0, 24)).await;
    let watched: Vec<i32> = watched.sensors.iter().map(|v| v.sensor).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let recorder = {
        let (lags, stop, watched) = (lags.clone(), stop.clone(), watched.clone());
        tokio::spawn(async move {
            let mut foreign = 0;
            while !stop.load(Ordering::Relaxed) {
                let Some(m) = live.next_within(Duration::from_millis(200)).await else {
                    continue;
                };
                if let ServerMessage::Readings(b) = m {
                    if b.backfill {
                        continue;
                    }
                    let arrived = now_ms();
                    let mut l = lags.lock().unwrap_or_else(|e| e.into_inner());
                    for r in &b.items {
                        foreign += usize::from(!watched.contains(&r.sensor));
                        l.push((r.t_ms, arrived - r.t_ms));
                    }
                }
            }
            foreign
        })
    };
    // Three bursts before, then the storm, started 300 ms before the next burst is due.
    sleep(Duration::from_millis(interval * 3)).await;
    let last_burst = lags
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|l| l.0)
        .max()
        .ok_or("the live client received no readings")?;
    let mut next_burst = last_burst + interval as i64;
    while next_burst - 300 < now_ms() {
        next_burst += interval as i64;
    }
    sleep(Duration::from_millis((next_burst - 300 - now_ms()) as u64)).await;

    // The storm: `clients` dashboards open their first view at once, while the page and the live client
    // are measured.
    count_frames(&s).await?;
    let storm_from = now_ms();
    let storm_started = Instant::now();
    let storm: Vec<_> = (0..clients)
        .map(|i| {
            tokio::spawn(async move {
                let t = Instant::now();
                let mut c = setpoint_testkit::ws::connect(addr, None, None).await.ok()?;
                c.next_within(Duration::from_secs(60)).await?;
                let page = (i % (rooms / 24).max(1)) as u32;
                let view =
                    tokio::time::timeout(Duration::from_secs(60), c.view(ViewRequest::by_id(page, 24)))
                        .await
                        .ok()?;
                (view.sensors.len() == 24).then(|| (t.elapsed(), c))
            })
        })
        .collect();
    let mut answered = Vec::new();
    let mut held = Vec::new();
    for task in storm {
        if let Ok(Some((took, c))) = task.await {
            answered.push(took);
            held.push(c);
        }
    }
    let storm_took = storm_started.elapsed();
    // A small storm can be over before the burst it was timed against is read: "during" then covers that
    // burst, so the comparison is always of a burst that met the storm's connections.
    let storm_until = now_ms().max(next_burst + interval as i64 / 2);
    let burst_read = Duration::from_millis((storm_until + 2_000 - now_ms()).max(0) as u64);
    sleep(Duration::from_secs(secs.saturating_sub(storm_took.as_secs()).max(2)).max(burst_read)).await;
    let (fps_during, p95_during, _) = frame_rate(&s).await?;
    stop.store(true, Ordering::Relaxed);
    let foreign = recorder.await.map_err(|e| e.to_string())?;
    let rss_clients = server.rss_bytes()?;
    let heap = heap_mb(&s).await?;
    drop(held);
    s.close().await?;

    if answered.len() != clients {
        return Err(format!(
            "only {} of {clients} clients got their page",
            answered.len()
        ));
    }
    if foreign > 0 {
        return Err(format!(
            "the live client got {foreign} readings of rooms it does not watch"
        ));
    }
    let (mut before, mut during_lags): (Vec<i64>, Vec<i64>) = {
        let l = lags.lock().unwrap_or_else(|e| e.into_inner());
        let before = l.iter().filter(|s| s.0 < storm_from).map(|s| s.1).collect();
        let during = l
            .iter()
            .filter(|s| (storm_from..=storm_until).contains(&s.0))
            .map(|s| s.1)
            .collect();
        (before, during)
    };
    if before.is_empty() || during_lags.is_empty() {
        return Err(format!(
            "no burst before ({}) or during ({}) the storm",
            before.len(),
            during_lags.len()
        ));
    }
    let mut storm_ms: Vec<i64> = answered.iter().map(|d| d.as_millis() as i64).collect();
    let result = json!({
        "rooms": rooms, "readings_per_s": rate, "rooms_known_after_s": known_after.as_secs_f64(),
        "warmup_s": warmup, "rss_mb": rss as f64 / 1e6, "bytes_per_room": rss / rooms as u64,
        "rss_series": rss_series, "cpu_percent_of_a_core": cpu,
        "rss_with_clients_mb": rss_clients as f64 / 1e6,
        "api_page_ms": api_page.as_secs_f64() * 1e3, "api_filtered_ms": api_filtered.as_secs_f64() * 1e3,
        "first_live_card_ms": first_card.as_secs_f64() * 1e3, "room_by_id_ms": by_id.as_secs_f64() * 1e3,
        "fps": fps_before, "p95_frame_ms": p95_before, "page_heap_mb": heap,
        "fps_during_storm": fps_during, "p95_frame_ms_during_storm": p95_during,
        "storm_clients": clients, "storm_s": storm_took.as_secs_f64(),
        "storm_view_p50_ms": percentile(&mut storm_ms, 50), "storm_view_p99_ms": percentile(&mut storm_ms, 99),
        "lag_samples": before.len(), "lag_samples_during_storm": during_lags.len(),
        "lag_p50_ms": percentile(&mut before, 50), "lag_p99_ms": percentile(&mut before, 99),
        "lag_p50_ms_during_storm": percentile(&mut during_lags, 50),
        "lag_p99_ms_during_storm": percentile(&mut during_lags, 99),
    });
    println!("{}", serde_json::to_string_pretty(&result).unwrap_or_default());
    let out = root().join("target/bench");
    let _ = std::fs::create_dir_all(&out);
    let _ = std::fs::write(out.join("scale.json"), result.to_string());
    if assert {
        let missed: Vec<String> = [
            (first_card <= Duration::from_secs(1), "first live card ≤ 1 s"),
            (by_id <= Duration::from_secs(1), "a room by id ≤ 1 s"),
            (fps_before >= 55.0, "≥ 55 fps"),
            (rss <= 1 << 30, "whole process ≤ 1 GB"),
            (
                percentile(&mut during_lags, 99) <= 2 * percentile(&mut before, 99) + 250,
                "the live lag unchanged while the clients connect",
            ),
        ]
        .into_iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, what)| what.to_owned())
        .collect();
        if !missed.is_empty() {
            return Err(format!("targets missed: {}", missed.join(", ")));
        }
    }
    Ok(())
}

/// Frames per second and the p95 frame interval over `secs`.
async fn measure_frames(s: &Session, secs: u64) -> Result<(f64, f64, usize)> {
    count_frames(s).await?;
    sleep(Duration::from_secs(secs)).await;
    frame_rate(s).await
}
