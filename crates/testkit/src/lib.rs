//! What tests and benchmarks share, so each exists once:
//!
//! - [`broker`]: a Kafka-protocol broker on a free loopback port (Tansu, or `KAFKA_BROKERS`), stopped on drop;
//! - [`proxy`]: a TCP proxy that takes that broker "down" and back with its log intact;
//! - [`reference`]: the offline reference of the controller's event-time join, written independently of
//!   `setpoint-control`'s implementation, that every stream test compares the real commands with;
//! - [`logs`]: generators of reading and setpoint logs for those tests;
//! - [`http`]: an HTTP/1.1 client for the API's contract tests, every wait bounded;
//! - [`ws`]: a WebSocket client that connects the way the dashboard does, every wait bounded;
//! - [`mqtt`]: Mosquitto on a free loopback port (restartable, stopped on drop) and a recording client;
//! - [`measure`]: percentiles, and a process's memory and CPU time, for benchmarks and soak tests.

pub mod broker;
pub mod http;
pub mod logs;
pub mod measure;
pub mod mqtt;
pub mod proxy;
pub mod reference;
pub mod ws;

use std::path::PathBuf;

/// The workspace root (for tools installed under `.cache/`).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A loopback port nobody listens on right now (for a process that binds it itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The release build of the `setpoint` binary, which the benchmarks and the soak test run.
pub fn release_binary() -> PathBuf {
    // Where cargo put it: `CARGO_TARGET_DIR` when set (a shared target directory), else the checkout's.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    target.join("release/setpoint")
}

/// Starts the release build of `setpoint run --in-memory` on a free loopback port with `sensors` simulated
/// rooms reading every `interval_ms`, plus `extra` arguments, and waits (at most 20 s) until it listens.
/// Returns the process and its address. For benchmarks and the soak test, which measure the real binary.
pub fn spawn_release_server(
    sensors: &str,
    interval_ms: &str,
    extra: &[&str],
) -> (std::process::Child, String) {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let addr = format!("127.0.0.1:{}", free_port());
    let mut server = Command::new(release_binary())
        .args([
            "run",
            "--in-memory",
            "--listen",
            &addr,
            "--sensors",
            sensors,
            "--interval-ms",
            interval_ms,
        ])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("build the server first: cargo build --release -p setpoint");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&addr).is_err() {
        if Instant::now() >= deadline {
            let _ = server.kill();
            panic!("server did not listen on {addr}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, addr)
}
