//! A real WebSocket client and a real server on an ephemeral loopback port, for the bridge's tests.
#![allow(dead_code)]

#[allow(unused_imports)]
pub use setpoint_testkit::ws::{connect, Client, PATIENCE};
#[allow(unused_imports)]
pub use setpoint_testkit::{broker, proxy};

pub mod binary;
pub mod kafka;

use std::net::SocketAddr;
use std::time::Duration;

use setpoint::app::{self, RunOptions, Running};
use setpoint::bridge::auth::Token;
use setpoint::bridge::hub::HubOptions;
use setpoint::bridge::BridgeOptions;
use setpoint::bus::embedded::EmbeddedBus;
use setpoint::roles::controller::ControllerOptions;
use setpoint_control::Config;
use setpoint_sim::SimConfig;
use tokio::net::TcpStream;

pub const TOKEN: &str = "test-token-0123456789abcdef";

pub fn options(rooms: usize, interval_ms: i64) -> RunOptions {
    let mut bridge = BridgeOptions::new(
        "127.0.0.1:0".parse().expect("addr"),
        Token::from_operator(TOKEN).expect("token"),
    );
    bridge.dist = std::env::temp_dir().join("setpoint-no-dist-here");
    bridge.embedded_dashboard = false;
    // A one-minute window at up to 50 readings/s per sensor: the backfill keeps every reading these tests
    // produce (the default thins to 2/s for a 15-minute window).
    bridge.hub = HubOptions {
        backfill_ms: 60_000,
        backfill_max_per_sensor: 3_000,
        ..HubOptions::default()
    };
    RunOptions {
        bridge: Some(bridge),
        controller: ControllerOptions {
            config: Config::default(),
            tick: Duration::from_millis(200),
        },
        run_controller: true,
        simulator: Some(SimConfig {
            rooms,
            first_sensor: 1,
            seed: 3,
            interval_ms,
            model: setpoint_sim::RoomModel::FirstOrder,
        }),
        seed_setpoints: true,
        run_scheduler: true,
        gateway: None,
    }
}

/// Starts the embedded runtime and waits until the simulator's seeded setpoints reached the bridge, so a
/// test's first `hello` carries them (seeding is asynchronous; a client connecting in the first
/// milliseconds would otherwise race it).
pub async fn start(rooms: usize, interval_ms: i64) -> Running<EmbeddedBus> {
    start_with(options(rooms, interval_ms)).await
}

/// Like [`start`], with options of the test's own.
pub async fn start_with(options: RunOptions) -> Running<EmbeddedBus> {
    let seeded = if options.seed_setpoints {
        options.simulator.as_ref().map_or(0, |s| s.rooms)
    } else {
        0
    };
    let running = app::start_embedded(options).await.expect("server starts");
    let hub = running.hub.clone().expect("bridge runs");
    eventually("the seeded setpoints reached the bridge", || {
        hub.tables_read() && (1..=seeded as i32).all(|sensor| hub.setpoint(sensor).is_some())
    })
    .await;
    running
}

pub fn addr(r: &Running<EmbeddedBus>) -> SocketAddr {
    r.addr.expect("bridge runs")
}

/// A raw HTTP/1.1 GET over a fresh connection: status line, headers and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    http(addr, "GET", path, "", "").await
}

/// A raw HTTP/1.1 request over a fresh connection, with extra header lines (each ending in `\r\n`) and a
/// body: status, head and body of the answer.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let length = if body.is_empty() {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    s.write_all(
        format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}{length}Connection: close\r\n\r\n{body}"
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut buf))
        .await
        .expect("response in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// The value of one series (`name` or `name{labels}`) in a Prometheus text exposition, if it is there.
pub fn metric(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

pub fn set_setpoint(
    request_id: &str,
    sensor: i32,
    desired: f64,
    up: f64,
    down: f64,
    base: Option<u64>,
) -> String {
    let base = base.map(|b| format!(",\"base_version\":{b}")).unwrap_or_default();
    format!(
        r#"{{"type":"set_setpoint","request_id":"{request_id}","sensor":{sensor},"desired":{desired},"up_delta":{up},"down_delta":{down}{base}}}"#
    )
}

/// Sends a setpoint write (up/down 1.0) and waits, up to `patience`, for its answer. `Some(version)` once
/// acknowledged (the ack carries the value it put in force, which must be the one written); `None` if the
/// write was refused.
pub async fn write_and_wait(
    c: &mut Client,
    id: &str,
    sensor: i32,
    desired: f64,
    base: Option<u64>,
    patience: Duration,
) -> Option<u64> {
    use setpoint_wire::ws::ServerMessage;
    c.send(&set_setpoint(id, sensor, desired, 1.0, 1.0, base)).await;
    c.until_within(patience, |m| match m {
        ServerMessage::Ack { request_id, setpoint } if request_id == id => {
            let s = setpoint.as_ref().expect("an ack carries the value in force");
            assert_eq!(
                (s.sensor, s.desired),
                (sensor, desired),
                "{id} acknowledged another value"
            );
            Some(Some(s.version))
        }
        ServerMessage::Error(e) if e.request_id.as_deref() == Some(id) => Some(None),
        _ => None,
    })
    .await
}

/// Waits until `condition` holds, checking every 10 ms for at most [`PATIENCE`]; panics naming `what`
/// otherwise. For state a test can only observe (a hub's history), not be notified of.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
