//! The embedded default keeps what people give it: the real binary on a data directory, stopped gently,
//! killed with SIGKILL, pointed at a damaged file, and started twice on one directory.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use setpoint_control::TimeMs;
use setpoint_testkit::ws::{connect, Client};
use setpoint_wire::ws::{ErrorCode, Hello, ServerMessage, SetpointChangeEntry};

const BIN: &str = env!("CARGO_BIN_EXE_setpoint");
const ALICE: &str = "alice-secret-0123456789";
const BOB: &str = "bob-secret-9876543210xyz";

/// A `setpoint run` process on a data directory; killed if still running when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: PathBuf,
    started_in: Duration,
}

impl Server {
    fn start(dir: &Path, log_name: &str) -> Server {
        Self::start_with(dir, log_name, 2)
    }

    /// A server with `sensors` simulated rooms. Its log reaches the file through a pipe copied by this
    /// process, so a file-size limit put on the server (see [`Server::limit_file_size`]) holds only for its
    /// data file.
    fn start_with(dir: &Path, log_name: &str, sensors: usize) -> Server {
        let stderr = dir.with_extension(format!("{log_name}.log"));
        let started = Instant::now();
        let mut log = std::fs::File::create(&stderr).expect("log file");
        let mut child = Command::new(BIN)
            .args(["run", "--listen", "127.0.0.1:0", "--interval-ms", "50"])
            .args(["--sensors", &sensors.to_string()])
            .arg("--data-dir")
            .arg(dir)
            .args([
                "--token",
                &format!("alice={ALICE}"),
                "--token",
                &format!("bob={BOB}"),
            ])
            .env("RUST_LOG", "info")
            .env_remove("SETPOINT_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starts");
        let mut err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || std::io::copy(&mut err, &mut log));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.trim().strip_prefix("http://") {
                    let _ = tx.send(url.split('/').next().unwrap_or_default().to_owned());
                }
            }
        });
        let host = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no URL printed; stderr:\n{}", read(&stderr)));
        Server {
            child,
            addr: host.parse().expect("host:port"),
            stderr,
            started_in: started.elapsed(),
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill")
            .success());
    }

    /// SIGTERM, and the exit status within 20 s.
    fn stop(mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        wait(&mut self.child, Duration::from_secs(20)).expect("stops within 20 s")
    }

    /// Sets the server's limit on the size of files it writes (`RLIMIT_FSIZE`; `None`: unlimited). At 0,
    /// every write to its data file fails (`EFBIG`; the binary ignores SIGXFSZ), as on a full disk.
    fn limit_file_size(&self, bytes: Option<u64>) {
        let limit = libc::rlimit {
            rlim_cur: bytes.unwrap_or(libc::RLIM_INFINITY),
            rlim_max: libc::RLIM_INFINITY,
        };
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: prlimit on our own child with a valid rlimit and no old-value pointer.
        let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &limit, std::ptr::null_mut()) };
        assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    }

    fn kill_9(mut self) {
        self.signal("-KILL");
        wait(&mut self.child, Duration::from_secs(10)).expect("dies");
    }

    fn log(&self) -> String {
        read(&self.stderr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait(child: &mut Child, patience: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

fn read(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

fn hello(m: ServerMessage) -> Hello {
    match m {
        ServerMessage::Hello(h) => h,
        other => panic!("expected hello, got {other:?}"),
    }
}

/// Writes and waits for the answer: `Some(version)` when acknowledged.
async fn write(c: &mut Client, id: &str, sensor: i32, desired: f64, base: Option<u64>) -> Option<u64> {
    common::write_and_wait(c, id, sensor, desired, base, setpoint_testkit::ws::PATIENCE).await
}

async fn history(c: &mut Client, sensor: i32) -> Vec<SetpointChangeEntry> {
    c.send(&format!(r#"{{"type":"setpoint_history","sensor":{sensor}}}"#))
        .await;
    c.until(|m| match m {
        ServerMessage::SetpointHistory(h) if h.sensor == sensor => Some(h.changes.clone()),
        _ => None,
    })
    .await
}

/// The decisions a new client gets as history: (sensor, t_ms, command).
async fn decision_backfill(c: &mut Client) -> Vec<(i32, TimeMs)> {
    let mut got = Vec::new();
    while let Some(m) = c.next_within(Duration::from_millis(500)).await {
        match m {
            ServerMessage::Decisions(b) if b.backfill => {
                got.extend(b.items.iter().map(|d| (d.sensor, d.t_ms)))
            }
            ServerMessage::Readings(b) if !b.backfill => break,
            _ => {}
        }
    }
    got
}

fn summary(changes: &[SetpointChangeEntry]) -> Vec<(u64, String, Option<f64>, f64)> {
    changes
        .iter()
        .map(|e| {
            (
                e.version,
                e.author.clone(),
                e.from.map(|f| f.desired),
                e.to.desired,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_setpoints_versions_change_history_and_heater_periods() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let server = Server::start(&dir, "first");
    let mut alice = connect(server.addr, Some(ALICE), None).await.expect("connects");
    let h = hello(alice.next().await);
    assert!(h.can_write);
    // Seeding runs beside the bridge's start: the seed is in the view's answer or follows it.
    let view = alice.subscribe(Some(&[1])).await;
    let seeded = match view.setpoint(1) {
        Some(s) => s.clone(),
        None => {
            alice
                .until(|m| match m {
                    ServerMessage::Setpoint(s) if s.sensor == 1 => Some(s.clone()),
                    _ => None,
                })
                .await
        }
    };
    assert_eq!(seeded.author.as_deref(), Some("simulator"));
    // Far above the room: the heater turns On, a period that must be there after the restart.
    let v_alice = write(&mut alice, "a1", 1, 60.0, Some(seeded.version))
        .await
        .expect("alice's write");
    let mut bob = connect(server.addr, Some(BOB), None).await.expect("connects");
    hello(bob.next().await);
    let v_bob = write(&mut bob, "b1", 1, 61.0, Some(v_alice))
        .await
        .expect("bob's write");
    // The heater turns On under Alice's setpoint or, if no reading fell between the two writes, Bob's.
    let on = setpoint_control::Command::On;
    alice
        .until(|m| {
            matches!(m, ServerMessage::Decision(d) if d.sensor == 1 && d.command == on && d.setpoint_version >= v_alice)
                .then_some(())
        })
        .await;
    let before = summary(&history(&mut alice, 1).await);
    assert_eq!(
        before,
        vec![
            (seeded.version, "simulator".into(), None, seeded.desired),
            (v_alice, "alice".into(), Some(seeded.desired), 60.0),
            (v_bob, "bob".into(), Some(60.0), 61.0),
        ]
    );
    let (_, _, metrics) = common::http_get(server.addr, "/metrics").await;
    let first_log_path = server.stderr.clone();
    let stopped_at = setpoint_now();
    assert!(server.stop().success(), "a clean exit");

    let restarted_at = setpoint_now();
    let server = Server::start(&dir, "second");
    let mut reader = connect(server.addr, None, None).await.expect("connects");
    hello(reader.next().await);
    let view = reader.subscribe(Some(&[1])).await;
    let sp = view.setpoint(1).expect("kept");
    assert_eq!(
        (sp.version, sp.desired, sp.author.as_deref()),
        (v_bob, 61.0, Some("bob"))
    );
    let decisions = decision_backfill(&mut reader).await;
    assert!(
        decisions.iter().any(|&(s, t)| s == 1 && t < stopped_at),
        "heater periods from before the restart are in the backfill: {decisions:?}"
    );
    assert_eq!(
        summary(&history(&mut reader, 1).await),
        before,
        "the change history is kept"
    );
    // The controller's memory came back too: the heater is On and stays On, so a controller that forgot
    // would send On again with the first reading; this one sends nothing.
    let distinct: std::collections::HashSet<_> = decisions.iter().collect();
    assert_eq!(
        distinct.len(),
        decisions.len(),
        "a decision repeated: {decisions:?}"
    );
    let mut repeated: Vec<(i32, TimeMs)> = decisions
        .iter()
        .copied()
        .filter(|&(s, t)| s == 1 && t >= restarted_at)
        .collect();
    let watch = tokio::time::Instant::now() + Duration::from_millis(1_500);
    while let Some(m) = reader
        .next_within(watch.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        if let ServerMessage::Decision(d) = m {
            if d.sensor == 1 {
                repeated.push((d.sensor, d.t_ms));
            }
        }
    }
    assert!(
        repeated.is_empty(),
        "commands repeated after the restart: {repeated:?}"
    );
    assert_eq!(
        history(&mut reader, 2).await.len(),
        1,
        "the simulator did not seed a sensor that has a setpoint"
    );
    println!("restart: URL printed {:?} after the start", server.started_in);
    let logs = read(&first_log_path) + &server.log();
    for secret in [ALICE, BOB] {
        assert!(!logs.contains(secret), "a token secret is in the logs");
        assert!(!metrics.contains(secret), "a token secret is in the metrics");
    }
    assert!(
        logs.contains("alice") && logs.contains("bob"),
        "token names are logged"
    );
    assert!(server.stop().success());
}

fn setpoint_now() -> TimeMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as TimeMs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_right_after_acknowledged_writes_loses_none_of_them() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let server = Server::start(&dir, "first");
    let mut c = connect(server.addr, Some(ALICE), None).await.expect("connects");
    hello(c.next().await);
    let mut acked: Vec<(i32, u64, f64)> = Vec::new();
    let started = Instant::now();
    for i in 0..20 {
        let (sensor, desired) = (1 + i % 2, 30.0 + f64::from(i));
        // No base version: each write replaces whatever is in force.
        let mut attempt = 0;
        let version = loop {
            if let Some(v) = write(&mut c, &format!("w{i}-{attempt}"), sensor, desired, None).await {
                break v;
            }
            // Refused by the rate limit (5/s, burst 10): wait and try again.
            attempt += 1;
            assert!(attempt < 50, "write {i} never acknowledged");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        acked.push((sensor, version, desired));
    }
    let writing = started.elapsed();
    server.kill_9();

    let server = Server::start(&dir, "second");
    let mut reader = connect(server.addr, None, None).await.expect("connects");
    hello(reader.next().await);
    let view = reader.subscribe(Some(&[1, 2])).await;
    for sensor in [1, 2] {
        let last = acked.iter().rev().find(|a| a.0 == sensor).expect("written");
        let sp = view.setpoint(sensor).expect("kept");
        assert_eq!((sp.version, sp.desired), (last.1, last.2), "sensor {sensor}");
        let kept: Vec<(u64, f64)> = history(&mut reader, sensor)
            .await
            .iter()
            .map(|e| (e.version, e.to.desired))
            .collect();
        for a in acked.iter().filter(|a| a.0 == sensor) {
            assert!(
                kept.contains(&(a.1, a.2)),
                "acknowledged {a:?} lost after kill -9: {kept:?}"
            );
        }
    }
    println!(
        "kill -9: {} acknowledged writes in {writing:?}, all {} back after a restart in {:?}",
        acked.len(),
        acked.len(),
        server.started_in
    );
    assert!(server.stop().success());
}

/// Starts on `dir` expecting a refusal; returns the error output.
fn refused(dir: &Path) -> String {
    let out = Command::new(BIN)
        .args(["run", "--listen", "127.0.0.1:0", "--sensors", "1"])
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    assert!(!out.status.success(), "must not start");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_damaged_or_emptied_data_file_is_refused_with_its_name() {
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join(setpoint::bus::store::FILE_NAME);
    for (what, bytes) in [("garbage", vec![0xAB_u8; 64 * 1024]), ("empty", Vec::new())] {
        std::fs::write(&file, &bytes).expect("write");
        let err = refused(tmp.path());
        assert!(
            err.contains("damaged") && err.contains(&file.display().to_string()),
            "{what}: {err}"
        );
        assert_eq!(
            std::fs::read(&file).expect("still there"),
            bytes,
            "{what}: left untouched"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_the_same_directory_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let first = Server::start(&dir, "first");
    let err = refused(&dir);
    assert!(
        err.contains("another setpoint process") && err.contains(&dir.display().to_string()),
        "{err}"
    );
    // The first one is unaffected.
    let mut c = connect(first.addr, None, None).await.expect("still serving");
    hello(c.next().await);
    assert!(first.stop().success());
}

/// Everything on `bus`'s stream `T`, oldest first.
fn everything<T: setpoint::bus::Payload>(bus: &setpoint::bus::embedded::EmbeddedBus) -> Vec<T> {
    use setpoint::bus::{Bus, Consumer, StartAt};
    bus.subscribe::<T>(StartAt::Beginning, None)
        .expect("subscribe")
        .try_batch(usize::MAX)
        .expect("read")
        .into_iter()
        .map(|r| r.value)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_across_restarts_of_the_durable_default_match_the_offline_reference() {
    use setpoint::bus::embedded::{EmbeddedBus, Retention};
    use setpoint::bus::{Bus, SensorReading, SetpointChange};
    use setpoint_control::{Config, Decision, Setpoint};
    use setpoint_testkit::reference::{compare, expected_commands, Expected, LoggedReading, LoggedSetpoint};
    use std::collections::HashMap;

    // Generous: an fsynced append on a loaded machine can take a while, and a run waits on events anyway.
    const AHEAD_MS: i64 = 2_000;
    let tmp = tempfile::tempdir().expect("tmp");
    // Three runs on one data directory; in each, a setpoint change part-way, so the restarts fall between
    // versions as well as between readings.
    for run in 0..3 {
        let bus = EmbeddedBus::open(tmp.path(), Retention::default()).expect("opens");
        let mut options = common::options(4, 20);
        options.bridge = None;
        let running = setpoint::app::start(bus.clone(), options, std::sync::Arc::new(Default::default()))
            .await
            .expect("starts");
        // The four seeded setpoints (the first run writes them; later runs find them in the log).
        common::eventually("the seeded setpoints are in the log", || {
            everything::<SetpointChange>(&bus).len() >= 4
        })
        .await;
        // Dated a little ahead, so it is in the log before any reading it governs. Dated `now`, a reading
        // stamped after it could be appended and decided first (the durable append waits on the disk);
        // the controller then applies it from the next reading, as ARCHITECTURE's invariant says, and the
        // as-of reference would be the wrong oracle for that run.
        let change = SetpointChange::new(
            1 + run,
            Setpoint::new(if run % 2 == 0 { 40.0 } else { 0.0 }, 1.0, 1.0),
            0,
            "test",
            setpoint::clock::now_ms() + AHEAD_MS,
        );
        let (dated, change_sensor) = (change.t_ms, change.sensor);
        bus.publish(vec![change]).await.expect("durable");
        // The simulator stamps readings with the clock, so none dated at or after `dated` existed before this.
        assert!(
            setpoint::clock::now_ms() < dated,
            "run {run}: the append took longer than {AHEAD_MS} ms; the experiment is void"
        );
        // Readings of the changed room dated half a second past the change: the run decided under it.
        common::eventually("readings under the change", || {
            everything::<SensorReading>(&bus)
                .iter()
                .any(|r| r.sensor == change_sensor && r.t_ms > dated + 500)
        })
        .await;
        running.shutdown().await;
        bus.close().expect("closes");
    }
    let bus = EmbeddedBus::open(tmp.path(), Retention::default()).expect("reopens");
    let setpoints: Vec<LoggedSetpoint> = everything::<SetpointChange>(&bus)
        .iter()
        .map(|s| LoggedSetpoint {
            sensor: s.sensor,
            t_ms: s.t_ms,
            setpoint: s.setpoint,
            version: s.version,
        })
        .collect();
    let readings: Vec<LoggedReading> = everything::<SensorReading>(&bus)
        .iter()
        .map(|r| LoggedReading {
            sensor: r.sensor,
            t_ms: r.t_ms,
            temperature: r.temperature,
        })
        .collect();
    let mut got: HashMap<i32, Vec<Expected>> = HashMap::new();
    for d in everything::<Decision>(&bus) {
        got.entry(d.sensor).or_default().push(Expected {
            t_ms: d.t_ms,
            command: d.command,
            version: d.setpoint_version,
        });
    }
    let expected = expected_commands(&Config::default(), &setpoints, &readings);
    let total: usize = expected.values().map(Vec::len).sum();
    // Four first commands, and the changes of the later runs flip heaters: a controller that forgot its
    // heaters across a restart would repeat the four, and not match.
    assert!(total >= 6, "the runs exercise the rule: {total} commands");
    compare(&expected, &got).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "3 runs on one data directory: {} readings, {} setpoint records, {total} commands, all as the reference",
        readings.len(),
        setpoints.len()
    );
    bus.close().expect("closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_survive_a_restart_and_keep_firing() {
    use setpoint_testkit::http::request;
    use setpoint_wire::schedule::Schedule;
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let server = Server::start(&dir, "first");
    let auth = format!("Bearer {ALICE}");
    let body = r#"{"zone":"Europe/Berlin","sensors":[1,2],"steps":[
        {"days":["mon","tue","wed","thu","fri"],"time":"06:30","desired":21.0,"up_delta":0.5,"down_delta":0.5},
        {"days":["mon","tue","wed","thu","fri","sat","sun"],"time":"22:00","desired":17.0,"up_delta":0.5,"down_delta":0.5}]}"#;
    let r = request(
        server.addr,
        "PUT",
        "/api/v1/schedules/home",
        &[("Authorization", &auth)],
        Some(body),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let saved: Schedule = serde_json::from_str(&r.body).expect("schedule");
    let r = request(
        server.addr,
        "PUT",
        "/api/v1/schedules/gone",
        &[("Authorization", &auth)],
        Some(body),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = request(
        server.addr,
        "DELETE",
        "/api/v1/schedules/gone",
        &[("Authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let next_before = request(server.addr, "GET", "/api/v1/sensors/1", &[], None)
        .await
        .json()["next_step"]
        .clone();
    assert!(next_before.is_object(), "no next step before the restart");
    // A sensor of no schedule, so no step can move its version meanwhile.
    let written = request(
        server.addr,
        "PUT",
        "/api/v1/sensors/7/setpoint",
        &[("Authorization", &auth)],
        Some(r#"{"desired":18.0,"up_delta":0.5,"down_delta":0.5}"#),
    )
    .await;
    assert_eq!(written.status, 200, "{}", written.body);
    let etag = format!("\"{}\"", written.json()["version"]);
    assert!(server.stop().success());

    // The first requests arrive the moment the URL is printed, while the bridge may still be reading its
    // tables from the data file: they are held until it has, so each is answered from the whole table.
    let server = Server::start(&dir, "second");
    let list = request(server.addr, "GET", "/api/v1/schedules", &[], None).await;
    assert_eq!(list.status, 200, "{}", list.body);
    let schedules: Vec<Schedule> = serde_json::from_str(&list.body).expect("list");
    assert_eq!(
        schedules,
        vec![saved],
        "the saved schedule, and not the deleted one, on the first request after the start"
    );
    // A write conditional on the version in force before the restart is judged against it: no false
    // conflict from a bridge that has not read the setpoints yet.
    let put = request(
        server.addr,
        "PUT",
        "/api/v1/sensors/7/setpoint",
        &[("Authorization", &auth), ("If-Match", &etag)],
        Some(r#"{"desired":19.5,"up_delta":0.5,"down_delta":0.5}"#),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.body);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ready = request(server.addr, "GET", "/readyz", &[], None).await;
        if ready.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never ready: {}", ready.body);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Still running: the same next step (the next 06:30 or 22:00 in Berlin) for its sensors, once the
    // bridge has heard of sensor 1 again.
    let next_after = loop {
        let one = request(server.addr, "GET", "/api/v1/sensors/1", &[], None).await;
        if one.status == 200 || Instant::now() > deadline {
            break one.json()["next_step"].clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(next_after, next_before);
    assert!(server.stop().success());
}

fn metric(text: &str, name: &str) -> u64 {
    common::metric(text, name).unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

/// Waits (bounded) until `/readyz` answers `status`; returns its body.
async fn ready_becomes(addr: SocketAddr, status: u16, patience: Duration) -> String {
    let deadline = Instant::now() + patience;
    loop {
        let (got, _, body) = common::http_get(addr, "/readyz").await;
        if got == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stayed {got} ({body}), expected {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes (no base version) until acknowledged, a few times at most: a write can lose a race with the
/// simulator's seed of the same sensor.
async fn write_until_acked(c: &mut Client, id: &str, sensor: i32, desired: f64) -> u64 {
    for attempt in 0..5 {
        if let Some(v) = write(c, &format!("{id}-{attempt}"), sensor, desired, None).await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{id}: never acknowledged");
}

/// Sends a write and returns the refusal's message, or panics if it was acknowledged.
async fn write_refused(c: &mut Client, id: &str, sensor: i32, desired: f64) -> (ErrorCode, String) {
    c.send(&common::set_setpoint(id, sensor, desired, 1.0, 1.0, None))
        .await;
    c.until(|m| match m {
        ServerMessage::Error(e) if e.request_id.as_deref() == Some(id) => Some((e.code, e.message.clone())),
        ServerMessage::Ack { request_id, .. } if request_id == id => panic!("{id} was acknowledged"),
        _ => None,
    })
    .await
}

/// The durable default with a data file that cannot be written (the process's file-size limit at 0, as a
/// full disk): the controller goes on deciding from memory, the bridge goes on serving live data, setpoint
/// writes are refused naming the cause, `/readyz` answers 503 and a metric says so; once writes succeed
/// again everything recovers without a restart, and after a restart every acknowledged write is in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_no_control_refuses_writes_and_recovers_without_a_restart() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let server = Server::start_with(&dir, "full", 40);
    let mut c = connect(server.addr, Some(ALICE), None).await.expect("connects");
    hello(c.next().await);
    c.subscribe(None).await;
    ready_becomes(server.addr, 200, Duration::from_secs(30)).await;
    // The simulator seeds rooms on version 0 as the page starts: a write may lose that race once.
    let before = write_until_acked(&mut c, "before", 1, 30.0).await;

    server.limit_file_size(Some(0));
    let why = ready_becomes(server.addr, 503, Duration::from_secs(30)).await;
    assert!(why.contains("data file cannot be written"), "{why}");
    let (_, _, m) = common::http_get(server.addr, "/metrics").await;
    assert_eq!(metric(&m, "setpoint_store_failing"), 1);
    let (code, message) = write_refused(&mut c, "during", 1, 31.0).await;
    assert_eq!(code, ErrorCode::BrokerUnavailable, "{message}");
    assert!(
        message.contains("data file") && message.to_lowercase().contains("too large"),
        "the cause is named: {message}"
    );

    // Control goes on: decisions are made and relayed, readings stream to the page.
    let (decided_from, seen_from) = (
        metric(&m, "setpoint_decisions_total"),
        metric(&m, "setpoint_bridge_readings_total"),
    );
    let window = Instant::now();
    let mut relayed = 0;
    while relayed < 10 {
        assert!(
            window.elapsed() < Duration::from_secs(60),
            "only {relayed} decisions relayed while the disk was full"
        );
        if let Some(ServerMessage::Decision(_)) = c.next_within(Duration::from_secs(1)).await {
            relayed += 1;
        }
    }
    let (_, _, m) = common::http_get(server.addr, "/metrics").await;
    let decided = metric(&m, "setpoint_decisions_total") - decided_from;
    let seen = metric(&m, "setpoint_bridge_readings_total") - seen_from;
    assert!(decided >= 10 && seen > 0, "decisions {decided}, readings {seen}");
    assert!(
        metric(&m, "setpoint_store_unpersisted_records") > 0,
        "held in memory for the disk"
    );
    println!(
        "disk full for {:?}: {decided} decisions, {seen} readings relayed, {} records held",
        window.elapsed(),
        metric(&m, "setpoint_store_unpersisted_records")
    );
    assert!(
        server.log().contains("writing the data file failed"),
        "the log says so"
    );

    server.limit_file_size(None);
    ready_becomes(server.addr, 200, Duration::from_secs(30)).await;
    let (_, _, m) = common::http_get(server.addr, "/metrics").await;
    assert_eq!(metric(&m, "setpoint_store_failing"), 0);
    assert_eq!(metric(&m, "setpoint_store_unpersisted_records"), 0);
    let after = write_until_acked(&mut c, "after", 2, 32.0).await;
    assert!(server.log().contains("can be written again"));
    assert!(server.stop().success(), "a clean exit");

    let server = Server::start(&dir, "after-full");
    let mut reader = connect(server.addr, None, None).await.expect("connects");
    hello(reader.next().await);
    let view = reader.subscribe(Some(&[1, 2])).await;
    let in_force = |sensor: i32| view.setpoint(sensor).map(|s| (s.version, s.desired));
    assert_eq!(
        in_force(1),
        Some((before, 30.0)),
        "the refused write is not in force"
    );
    assert_eq!(in_force(2), Some((after, 32.0)));
    assert!(server.stop().success());
}
