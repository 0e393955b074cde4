//! A real WebSocket client and a real server on an ephemeral loopback port, for the bridge's tests.
#![allow(dead_code)]

#[allow(unused_imports)]
pub use setpoint_testkit::{broker, proxy};

pub mod kafka;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use setpoint::app::{self, RunOptions, Running};
use setpoint::bridge::auth::Token;
use setpoint::bridge::BridgeOptions;
use setpoint::bus::embedded::EmbeddedBus;
use setpoint::roles::controller::ControllerOptions;
use setpoint_control::Config;
use setpoint_sim::SimConfig;
use setpoint_wire::ws::ServerMessage;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const TOKEN: &str = "test-token-0123456789abcdef";

/// Bound on every wait in these tests.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn options(rooms: usize, interval_ms: i64) -> RunOptions {
    let mut bridge = BridgeOptions::new(
        "127.0.0.1:0".parse().expect("addr"),
        Token::from_operator(TOKEN).expect("token"),
    );
    bridge.dist = std::env::temp_dir().join("setpoint-no-dist-here");
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
        }),
        seed_setpoints: true,
    }
}

/// Starts the embedded runtime and waits until the simulator's seeded setpoints reached the bridge, so a
/// test's first `hello` carries them (seeding is asynchronous; a client connecting in the first
/// milliseconds would otherwise race it).
pub async fn start(rooms: usize, interval_ms: i64) -> Running<EmbeddedBus> {
    let running = app::start_embedded(options(rooms, interval_ms))
        .await
        .expect("server starts");
    let hub = running.hub.clone().expect("bridge runs");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while (1..=rooms as i32).any(|sensor| hub.setpoint(sensor).is_none()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "seeded setpoints never reached the bridge"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    running
}

pub fn addr(r: &Running<EmbeddedBus>) -> SocketAddr {
    r.addr.expect("bridge runs")
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// Opens a WebSocket like the dashboard does: subprotocol `setpoint.v1`, plus `token.<t>` when given.
pub async fn connect(
    addr: SocketAddr,
    token: Option<&str>,
    origin: Option<&str>,
) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
    let mut request = format!("ws://{addr}/ws").into_client_request()?;
    let protocols = match token {
        Some(t) => format!("setpoint.v1, token.{t}"),
        None => "setpoint.v1".to_owned(),
    };
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(&protocols).expect("header"),
    );
    if let Some(o) = origin {
        request
            .headers_mut()
            .insert("origin", HeaderValue::from_str(o).expect("header"));
    }
    let (ws, _) = tokio_tungstenite::connect_async(request).await?;
    Ok(Client { ws })
}

impl Client {
    /// The next server message; panics after [`PATIENCE`] or on a non-text frame.
    pub async fn next(&mut self) -> ServerMessage {
        self.next_within(PATIENCE)
            .await
            .expect("a frame within the patience")
    }

    /// The next server message, or `None` if none arrives within `patience` (a quiet connection is not an
    /// error: with the broker down no readings flow); panics on a closed stream or a non-text frame.
    pub async fn next_within(&mut self, patience: Duration) -> Option<ServerMessage> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?
                .expect("stream open")
                .expect("frame ok");
            match frame {
                Message::Text(t) => {
                    return Some(
                        ServerMessage::from_json(t.as_str())
                            .unwrap_or_else(|e| panic!("bad server frame {t}: {e}")),
                    )
                }
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// Skips messages until `pick` returns Some; bounded by [`PATIENCE`].
    pub async fn until<T>(&mut self, pick: impl FnMut(&ServerMessage) -> Option<T>) -> T {
        self.until_within(PATIENCE, pick).await
    }

    /// Skips messages until `pick` returns Some; bounded by `patience`.
    pub async fn until_within<T>(
        &mut self,
        patience: Duration,
        mut pick: impl FnMut(&ServerMessage) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let m = self
                .next_within(left)
                .await
                .unwrap_or_else(|| panic!("nothing matched within {patience:?}"));
            if let Some(t) = pick(&m) {
                return t;
            }
        }
    }

    pub async fn send(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).await.expect("send");
    }

    /// Sends any frame, including ones a well-behaved client never would.
    pub async fn send_message(&mut self, message: Message) {
        self.ws.send(message).await.expect("send");
    }

    /// Sends a frame the server is expected to refuse by closing the connection, reading concurrently so
    /// the close frame is seen even when the server closes before the frame is fully sent (it then resets
    /// the connection, and a client that only wrote would never read why). Returns the close code, or
    /// `None` if the connection dropped without one; panics if it stays open beyond [`PATIENCE`].
    pub async fn send_expecting_close(self, message: Message) -> Option<u16> {
        let (mut sink, mut stream) = self.ws.split();
        let sender = tokio::spawn(async move {
            let _ = sink.send(message).await;
            sink // kept open until the reader is done
        });
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let code = loop {
            match tokio::time::timeout_at(deadline, stream.next())
                .await
                .expect("closed within the patience")
            {
                Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => break None,
            }
        };
        sender.abort();
        code
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::Binary(bytes.into())).await.expect("send");
    }
}

/// A raw HTTP/1.1 GET over a fresh connection: status line, headers and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
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
