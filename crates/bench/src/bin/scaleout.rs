//! `cargo xtask bench scaleout`: setpoint past one process, on Kafka (Tansu on loopback, or
//! `KAFKA_BROKERS`): a simulator of `SCALEOUT_ROOMS` rooms (100,000) reporting every `SCALEOUT_INTERVAL_MS`
//! (10,000 ms), `SCALEOUT_CONTROLLERS` controllers in one group (2) and `SCALEOUT_BRIDGES` bridges (2), each
//! its own release process. The harness is the load balancer: each new browser goes to the next bridge.
//!
//! After `SCALEOUT_WARMUP_SECS` (60): each process's RSS and CPU; `SCALEOUT_CLIENTS` (1,000) browsers opening
//! their first view at once, spread over the bridges, while one live browser per bridge measures its lag;
//! then `SCALEOUT_WRITES` (20) setpoint writes, each through one bridge and watched for on the other: the
//! time until the other bridge's browser shows the acknowledged value. **Checked before anything is
//! reported:** every bridge counts every room, each browser gets its page, each write is acknowledged and
//! arrives on the other bridge with the acknowledged version and value, and the bridges' API pages agree on
//! every room's setpoint version. A wrong answer fails the run. JSON on stdout and in
//! `target/bench/scaleout.json`.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use setpoint_control::{SensorId, Setpoint};
use setpoint_testkit::broker::Broker;
use setpoint_testkit::measure::{cpu_ticks, percentile, rss_kib};
use setpoint_testkit::{free_port, release_binary, root};
use setpoint_wire::view::ViewRequest;
use setpoint_wire::ws::{ClientMessage, ServerMessage, SetpointWrite};

const TOKEN: &str = "scaleout-bench-token";

type Result<T> = std::result::Result<T, String>;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One role's process, killed on drop.
struct Role {
    name: String,
    child: Child,
}

impl Role {
    fn start(name: &str, args: &[&str]) -> Result<Role> {
        let child = Command::new(release_binary())
            .args(args)
            .env("RUST_LOG", "warn")
            .env("SETPOINT_TOKEN", format!("bench={TOKEN}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{name}: {e} (build it first: cargo build --release -p setpoint)"))?;
        Ok(Role {
            name: name.to_owned(),
            child,
        })
    }

    fn rss_mb(&self) -> f64 {
        rss_kib(self.child.id()).unwrap_or(0) as f64 / 1024.0
    }

    fn ticks(&self) -> u64 {
        cpu_ticks(self.child.id()).unwrap_or(0)
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The rooms a bridge knows, from its API's count.
async fn rooms_known(addr: SocketAddr) -> usize {
    if tokio::net::TcpStream::connect(addr).await.is_err() {
        return 0; // not listening yet
    }
    let r = setpoint_testkit::http::request(addr, "GET", "/api/v1/sensors?limit=1", &[], None).await;
    r.header("x-total-count")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Each room's setpoint version, a page of `limit` after `after`, as a bridge's API shows it.
async fn versions(addr: SocketAddr, after: SensorId, limit: usize) -> Result<Vec<(i64, i64)>> {
    let path = format!("/api/v1/sensors?limit={limit}&after={after}");
    let r = setpoint_testkit::http::request(addr, "GET", &path, &[], None).await;
    if r.status != 200 {
        return Err(format!("{addr}{path}: {}", r.status));
    }
    let body = r.json();
    let items = body.as_array().ok_or("the page is not a list")?;
    Ok(items
        .iter()
        .map(|s| {
            (
                s["sensor"].as_i64().unwrap_or(-1),
                s["setpoint"]["version"].as_i64().unwrap_or(-1),
            )
        })
        .collect())
}

#[tokio::main]
async fn main() {
    match bench().await {
        Ok(()) => {}
        Err(e) => {
            eprintln!("scaleout: {e}");
            std::process::exit(1);
        }
    }
}

async fn bench() -> Result<()> {
    let rooms = env_u64("SCALEOUT_ROOMS", 100_000) as usize;
    let interval = env_u64("SCALEOUT_INTERVAL_MS", 10_000);
    let bridges = env_u64("SCALEOUT_BRIDGES", 2).max(2) as usize;
    let controllers = env_u64("SCALEOUT_CONTROLLERS", 2).max(1) as usize;
    let clients = env_u64("SCALEOUT_CLIENTS", 1_000) as usize;
    let writes = env_u64("SCALEOUT_WRITES", 20) as usize;
    let warmup = env_u64("SCALEOUT_WARMUP_SECS", 60);
    let partitions = env_u64("SCALEOUT_PARTITIONS", 6).to_string();
    let rate = rooms as f64 * 1000.0 / interval as f64;
    println!(
        "{rooms} rooms ({rate:.0} readings/s) on Kafka: {controllers} controllers, {bridges} bridges, {clients} browsers"
    );

    let broker = Broker::start();
    let kafka = broker.brokers.clone();
    let common = ["--kafka", kafka.as_str(), "--partitions", partitions.as_str()];
    let mut roles: Vec<Role> = Vec::new();
    for i in 0..controllers {
        let args: Vec<&str> = ["controller"].iter().chain(common.iter()).copied().collect();
        roles.push(Role::start(&format!("controller {i}"), &args)?);
    }
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for i in 0..bridges {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let listen = addr.to_string();
        let args: Vec<&str> = ["bridge"]
            .iter()
            .chain(common.iter())
            .copied()
            .chain([
                "--listen",
                &listen,
                "--reads-per-second",
                "1000",
                "--read-burst",
                "2000",
                "--max-connections",
                "4096",
            ])
            .collect();
        roles.push(Role::start(&format!("bridge {i}"), &args)?);
        addrs.push(addr);
    }
    let (rooms_arg, interval_arg) = (rooms.to_string(), interval.to_string());
    let args: Vec<&str> = ["simulate"]
        .iter()
        .chain(common.iter())
        .copied()
        .chain(["--sensors", &rooms_arg, "--interval-ms", &interval_arg])
        .collect();
    roles.push(Role::start("simulator", &args)?);

    // Every bridge knows every room.
    let started = Instant::now();
    for &addr in &addrs {
        while rooms_known(addr).await < rooms {
            if started.elapsed() > Duration::from_secs(300) {
                return Err(format!(
                    "{addr} knows {} of {rooms} rooms after 300 s",
                    rooms_known(addr).await
                ));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let known_after = started.elapsed();
    tokio::time::sleep(Duration::from_secs(warmup)).await;

    // Each process's memory, and its CPU over 10 s.
    let before: Vec<u64> = roles.iter().map(Role::ticks).collect();
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    // Clock ticks are hundredths of a second: ticks per second are percent of a core.
    let secs = t.elapsed().as_secs_f64();
    let processes: Vec<serde_json::Value> = roles
        .iter()
        .zip(&before)
        .map(|(r, b)| {
            json!({"role": r.name, "rss_mb": r.rss_mb(), "cpu_percent_of_a_core": r.ticks().saturating_sub(*b) as f64 / secs})
        })
        .collect();

    // A live browser on every bridge, its lag recorded; then the storm, spread over the bridges.
    let stop = Arc::new(AtomicBool::new(false));
    let lags: Arc<Mutex<Vec<(usize, i64, i64)>>> = Arc::default();
    let mut live = Vec::new();
    for (b, &addr) in addrs.iter().enumerate() {
        let mut c = setpoint_testkit::ws::connect(addr, None, None)
            .await
            .map_err(|e| e.to_string())?;
        c.next().await;
        let watched: Vec<SensorId> = (1..=24)
            .map(|i| (i * 997 + b as i32 * 13) % rooms as i32 + 1)
            .collect();
        c.subscribe(Some(&watched)).await;
        let (stop, lags) = (Arc::clone(&stop), Arc::clone(&lags));
        live.push(tokio::spawn(async move {
            let mut foreign = 0usize;
            while !stop.load(Ordering::Relaxed) {
                if let Some(ServerMessage::Readings(batch)) = c.next_within(Duration::from_millis(200)).await
                {
                    let arrived = now_ms();
                    let mut l = lags.lock().unwrap_or_else(|e| e.into_inner());
                    for r in batch.items.iter().filter(|_| !batch.backfill) {
                        foreign += usize::from(!watched.contains(&r.sensor));
                        l.push((b, r.t_ms, arrived - r.t_ms));
                    }
                }
            }
            foreign
        }));
    }
    tokio::time::sleep(Duration::from_millis(interval * 2)).await;
    let storm_from = now_ms();
    let storm_started = Instant::now();
    let storm: Vec<_> = (0..clients)
        .map(|i| {
            let addr = addrs[i % addrs.len()];
            tokio::spawn(async move {
                let t = Instant::now();
                let mut c = setpoint_testkit::ws::connect(addr, None, None).await.ok()?;
                c.next_within(Duration::from_secs(60)).await?;
                let page = (i % (rooms / 24).max(1)) as u32;
                let view =
                    tokio::time::timeout(Duration::from_secs(60), c.view(ViewRequest::by_id(page, 24)))
                        .await
                        .ok()?;
                let whole = view.sensors.len() == 24 && view.total == rooms as u64;
                whole.then(|| (t.elapsed(), c))
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
    let storm_until = now_ms();
    tokio::time::sleep(Duration::from_millis(interval * 2)).await;
    let with_clients: Vec<f64> = roles.iter().map(Role::rss_mb).collect();
    stop.store(true, Ordering::Relaxed);
    let mut foreign = 0;
    for task in live {
        foreign += task.await.map_err(|e| e.to_string())?;
    }
    drop(held);
    if answered.len() != clients {
        return Err(format!(
            "only {} of {clients} browsers got their page",
            answered.len()
        ));
    }
    if foreign > 0 {
        return Err(format!(
            "live browsers got {foreign} readings of rooms they do not watch"
        ));
    }

    // Writes through one bridge, watched for on the next.
    let mut across_ms: Vec<i64> = Vec::new();
    for w in 0..writes {
        let (from, to) = (addrs[w % addrs.len()], addrs[(w + 1) % addrs.len()]);
        let sensor = (w as i32 * 4_999) % rooms as i32 + 1;
        let mut watcher = setpoint_testkit::ws::connect(to, None, None)
            .await
            .map_err(|e| e.to_string())?;
        watcher.next().await;
        watcher.subscribe(Some(&[sensor])).await;
        let mut writer = setpoint_testkit::ws::connect(from, Some(TOKEN), None)
            .await
            .map_err(|e| e.to_string())?;
        writer.next().await;
        let shown = writer.subscribe(Some(&[sensor])).await;
        let base = shown
            .sensors
            .first()
            .and_then(|s| s.setpoint.as_ref())
            .map(|s| s.version);
        let desired = 18.0 + (w % 8) as f64 * 0.5;
        let request_id = format!("w{w}");
        let write = SetpointWrite::new(request_id.clone(), sensor, Setpoint::new(desired, 0.5, 0.5), base);
        let text = serde_json::to_string(&ClientMessage::SetSetpoint(write)).map_err(|e| e.to_string())?;
        let sent = Instant::now();
        writer.send(&text).await;
        let acked = writer
            .until(|m| match m {
                ServerMessage::Ack {
                    request_id: id,
                    setpoint,
                } if *id == request_id => setpoint.clone(),
                ServerMessage::Error(e) if e.request_id.as_deref() == Some(request_id.as_str()) => {
                    panic!("write {w} refused: {e:?}")
                }
                _ => None,
            })
            .await;
        let seen = watcher
            .until(|m| match m {
                ServerMessage::Setpoint(s) if s.sensor == sensor && s.version == acked.version => {
                    Some(s.clone())
                }
                _ => None,
            })
            .await;
        if seen.desired != desired || acked.desired != desired {
            return Err(format!(
                "write {w}: acked {acked:?}, the other bridge shows {seen:?}"
            ));
        }
        across_ms.push(sent.elapsed().as_millis() as i64);
    }

    // The bridges agree on every room's setpoint version (read page by page from each).
    let mut after = 0;
    let mut compared = 0;
    while compared < rooms {
        let pages = futures_util::future::join_all(addrs.iter().map(|&a| versions(a, after, 1_000))).await;
        let first = pages[0].clone()?;
        for (i, page) in pages.into_iter().enumerate().skip(1) {
            if page? != first {
                return Err(format!("bridge {i} disagrees with bridge 0 after room {after}"));
            }
        }
        let Some(&(last, _)) = first.last() else { break };
        compared += first.len();
        after = last as SensorId;
    }
    if compared != rooms {
        return Err(format!("compared {compared} of {rooms} rooms"));
    }

    let ms = |mut v: Vec<i64>, p: f64| {
        v.sort_unstable();
        percentile(&v, p).unwrap_or(-1)
    };
    let l = lags.lock().unwrap_or_else(|e| e.into_inner()).clone();
    // During the storm: readings dated from its start to one interval after its end (the burst it met).
    let storm_window = storm_from..=storm_until + interval as i64;
    let lag = |during: bool| -> Vec<i64> {
        l.iter()
            .filter(|s| storm_window.contains(&s.1) == during)
            .map(|s| s.2)
            .collect()
    };
    let storm_ms: Vec<i64> = answered.iter().map(|d| d.as_millis() as i64).collect();
    let report = json!({
        "rooms": rooms, "readings_per_s": rate, "controllers": controllers, "bridges": bridges,
        "rooms_known_on_every_bridge_after_s": known_after.as_secs_f64(), "warmup_s": warmup,
        "processes": processes,
        "rss_mb_with_browsers": roles.iter().zip(&with_clients).map(|(r, m)| json!({"role": r.name, "rss_mb": m})).collect::<Vec<_>>(),
        "browsers": clients, "storm_s": storm_took.as_secs_f64(),
        "storm_view_p50_ms": ms(storm_ms.clone(), 0.5), "storm_view_p99_ms": ms(storm_ms, 0.99),
        "lag_p50_ms": ms(lag(false), 0.5), "lag_p99_ms": ms(lag(false), 0.99),
        "lag_p99_ms_during_storm": ms(lag(true), 0.99), "lag_samples": l.len(),
        "writes": writes, "write_to_other_bridge_p50_ms": ms(across_ms.clone(), 0.5),
        "write_to_other_bridge_max_ms": ms(across_ms, 1.0),
        "rooms_compared_across_bridges": compared,
    });
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    println!("{text}");
    let out = root().join("target/bench");
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    std::fs::write(out.join("scaleout.json"), text).map_err(|e| e.to_string())?;
    drop(roles);
    drop(broker);
    Ok(())
}
