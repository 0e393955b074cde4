//! One WebSocket connection: `hello`, backfill, then the outbox out and client requests in; pings when the
//! client is silent, and every send bounded in time.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use setpoint_wire::ws::{ClientMessage, ErrorCode, ErrorMsg, ServerMessage};

use super::hub::{ClientId, TABLES_PATIENCE};
use super::listener::Connection;
use super::Bridge;
use crate::bus::Bus;

/// Close code for a client that did not read its control messages (RFC 6455 "policy violation").
const CLOSE_TOO_SLOW: u16 = 1008;
/// Close code on server shutdown ("going away").
const CLOSE_GOING_AWAY: u16 = 1001;

/// Serves one connection until the client leaves, falls hopelessly behind, stops answering, or the server
/// shuts down.
///
/// `author` is the name of the token the client presented, `None` for a read-only connection.
/// `connection` is the listener's: its slot under the connection cap is held for as long as this runs.
pub async fn run<B: Bus>(
    socket: WebSocket,
    bridge: Arc<Bridge<B>>,
    author: Option<Arc<str>>,
    connection: Connection,
) {
    // A page opened the moment the server starts gets a `hello` with every setpoint and schedule in force,
    // not the part read so far. With the broker away past the patience it gets what is known, and the
    // status says the bus is unavailable.
    bridge.hub.wait_for_tables(TABLES_PATIENCE).await;
    let registration = bridge.hub.register(author.is_some());
    let id = registration.id;
    let outbox = Arc::clone(&registration.outbox);
    // Moved into the writer and dropped once sent: a client must not hold its backfill for its lifetime.
    let mut start: Vec<ServerMessage> = Vec::with_capacity(1 + registration.backfill.len());
    start.push(registration.hello);
    start.extend(registration.backfill);
    let (sink, mut stream) = socket.split();
    let bounds = bridge.options.listener;
    let mut sink = DeadlineSink {
        sink,
        deadline: bounds.send_timeout,
    };
    let began = Instant::now();
    // When the client was last heard from (any frame, a pong included), in ms since `began`.
    let heard_ms = AtomicU64::new(0);

    let writer = async {
        for msg in std::mem::take(&mut start) {
            sink.send(Message::Text(msg.to_json().into())).await?;
        }
        let mut check = tokio::time::interval(bounds.ws_ping_interval / 2);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let drained = outbox.drain();
            for frame in drained.frames {
                sink.send(Message::Text(frame)).await?;
            }
            if drained.overflowed {
                bridge.metrics.slow_clients_disconnected.fetch_add(1, Relaxed);
                let close = CloseFrame {
                    code: CLOSE_TOO_SLOW,
                    reason: "too slow: reconnect to resync".into(),
                };
                sink.send(Message::Close(Some(close))).await?;
                return Ok(());
            }
            tokio::select! {
                _ = outbox.wait() => {}
                _ = check.tick() => {
                    let silent = began.elapsed().saturating_sub(Duration::from_millis(heard_ms.load(Relaxed)));
                    if silent >= 2 * bounds.ws_ping_interval {
                        if let Some(unlogged) = bridge.metrics.client_refused("ws_ping_timeout") {
                            tracing::info!(client = id, unlogged, "closing a WebSocket that stopped answering pings");
                        }
                        let close = CloseFrame { code: CLOSE_GOING_AWAY, reason: "no answer to ping".into() };
                        sink.send(Message::Close(Some(close))).await?;
                        return Ok(());
                    }
                    if silent >= bounds.ws_ping_interval {
                        sink.send(Message::Ping(Default::default())).await?;
                    }
                }
                _ = bridge.shutdown.cancelled() => {
                    // Whatever is queued goes out before the close frame, all of it within the shutdown
                    // bound (not each frame within it).
                    let drain = async {
                        for frame in outbox.drain().frames {
                            sink.send(Message::Text(frame)).await?;
                        }
                        let close = CloseFrame { code: CLOSE_GOING_AWAY, reason: "server shutting down".into() };
                        sink.send(Message::Close(Some(close))).await
                    };
                    return tokio::time::timeout(bounds.shutdown_timeout, drain)
                        .await
                        .unwrap_or(Err(SendError::Deadline));
                }
            }
        }
    };

    let reader = async {
        loop {
            let message = match stream.next().await {
                None => return None,
                Some(Ok(message)) => message,
                Some(Err(e)) => return close_for_transport_error(&bridge, id, &e),
            };
            heard_ms.store(began.elapsed().as_millis() as u64, Relaxed);
            let reply = match message {
                Message::Text(text) => {
                    handle_text(
                        &bridge,
                        id,
                        &outbox,
                        text.as_str(),
                        author.as_deref(),
                        &connection,
                    )
                    .await
                }
                Message::Binary(_) => Some(error(
                    None,
                    ErrorCode::BinaryFrame,
                    "binary frames are not part of the protocol; send JSON text frames",
                )),
                Message::Close(_) => return None,
                Message::Ping(_) | Message::Pong(_) => None,
            };
            if let Some(reply) = reply {
                outbox.push_message(reply, &bridge.metrics);
            }
        }
    };

    let (result, close): (Result<(), SendError>, Option<CloseFrame>) = tokio::select! {
        r = writer => (r, None),
        close = reader => (Ok(()), close),
    };
    if let Some(close) = close {
        // Best effort: the transport already failed reading, but it can usually still say why.
        let _ = sink.send(Message::Close(Some(close))).await;
    }
    match result {
        Err(SendError::Transport(e)) if super::listener::is_write_stall(&e) => {
            if let Some(unlogged) = bridge.metrics.client_refused("ws_send_timeout") {
                tracing::info!(
                    client = id,
                    unlogged,
                    "dropped a WebSocket client whose socket did not drain"
                );
            }
        }
        Err(SendError::Deadline) => {
            if let Some(unlogged) = bridge.metrics.client_refused("ws_send_timeout") {
                tracing::info!(
                    client = id,
                    unlogged,
                    "dropped a WebSocket client whose socket did not drain"
                );
            }
        }
        Err(SendError::Transport(e)) => tracing::debug!(client = id, "connection ended: {e}"),
        Ok(()) => {}
    }
    bridge.hub.unregister(id);
}

/// A client of a retired protocol version: one `error` frame it can read, saying to reload the page, and a
/// close frame saying the same. Bounded in time like every send.
pub async fn retired(mut socket: WebSocket) {
    use setpoint_wire::ws::{CLOSE_RETIRED_PROTOCOL, RETIRED_PROTOCOL_MESSAGE};
    let told = async {
        let frame = error(None, ErrorCode::InvalidMessage, RETIRED_PROTOCOL_MESSAGE).to_json();
        socket.send(Message::Text(frame.into())).await?;
        let close = CloseFrame {
            code: CLOSE_RETIRED_PROTOCOL,
            reason: "protocol 1 is retired: reload the page".into(),
        };
        socket.send(Message::Close(Some(close))).await
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), told).await;
}

/// Why a frame did not go out.
enum SendError {
    /// The socket did not take it within the send deadline: the client does not read.
    Deadline,
    Transport(axum::Error),
}

/// The connection's sending half, every send bounded in time: a client whose socket does not drain is
/// dropped, instead of holding its queue, its buffers and (at shutdown) the process.
struct DeadlineSink {
    sink: futures_util::stream::SplitSink<WebSocket, Message>,
    deadline: Duration,
}

impl DeadlineSink {
    async fn send(&mut self, message: Message) -> Result<(), SendError> {
        match tokio::time::timeout(self.deadline, self.sink.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(SendError::Transport(e)),
            Err(_) => Err(SendError::Deadline),
        }
    }
}

/// Close codes (RFC 6455) for frames the transport refuses before the protocol sees them, so a client
/// learns why it was disconnected instead of seeing the connection simply drop.
const CLOSE_INVALID_PAYLOAD: u16 = 1007;
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
const CLOSE_TOO_BIG: u16 = 1009;

/// The close frame for a transport error, or `None` when the connection itself is gone (nobody to tell).
fn close_for_transport_error<B: Bus>(bridge: &Bridge<B>, id: u64, e: &axum::Error) -> Option<CloseFrame> {
    use std::error::Error as _;
    use tungstenite::error::Error as WsError;
    let inner = e.source().and_then(|s| s.downcast_ref::<WsError>());
    let (code, reason) = match inner {
        Some(WsError::Capacity(c)) => (CLOSE_TOO_BIG, format!("message too big: {c}")),
        Some(WsError::Utf8(_)) => (CLOSE_INVALID_PAYLOAD, "text frame is not valid UTF-8".to_owned()),
        Some(WsError::Protocol(p)) => (CLOSE_PROTOCOL_ERROR, format!("protocol error: {p}")),
        _ => {
            tracing::debug!(client = id, "connection lost: {e}");
            return None;
        }
    };
    bridge.metrics.decode_errors.fetch_add(1, Relaxed);
    tracing::debug!(client = id, code, "closing: {reason}");
    Some(CloseFrame {
        code,
        // A close reason must fit in a control frame (125 bytes with the code).
        reason: reason.chars().take(100).collect::<String>().into(),
    })
}

fn error(request_id: Option<String>, code: ErrorCode, message: &str) -> ServerMessage {
    ServerMessage::Error(ErrorMsg {
        request_id,
        code,
        message: setpoint_wire::clip(message, setpoint_wire::MAX_MESSAGE_CHARS).to_owned(),
        current: None,
    })
}

/// Handles one client frame. Returns the reply when this layer has one; a setpoint write's answer comes
/// from the hub, through the outbox, once the write is settled.
async fn handle_text<B: Bus>(
    bridge: &Bridge<B>,
    client: ClientId,
    outbox: &super::outbox::Outbox,
    text: &str,
    author: Option<&str>,
    connection: &Connection,
) -> Option<ServerMessage> {
    if text.len() > bridge.options.max_frame_bytes {
        bridge.metrics.decode_errors.fetch_add(1, Relaxed);
        let msg = format!(
            "frame of {} bytes exceeds the limit of {} bytes",
            text.len(),
            bridge.options.max_frame_bytes
        );
        return Some(error(None, ErrorCode::FrameTooLarge, &msg));
    }
    let message = match ClientMessage::from_json(text) {
        Ok(m) => m,
        Err(e) => {
            bridge.metrics.decode_errors.fetch_add(1, Relaxed);
            return Some(error(None, e.code(), &e.to_string()));
        }
    };
    match message {
        ClientMessage::Subscribe { sensors } => {
            let peer = connection.peer.ip();
            refused(bridge, bridge.limits.view(peer, Instant::now())).or_else(|| {
                bridge.hub.subscribe(client, sensors);
                None
            })
        }
        ClientMessage::View(request) => {
            let peer = connection.peer.ip();
            refused(bridge, bridge.limits.view(peer, Instant::now())).or_else(|| {
                bridge.hub.view(client, &request);
                None
            })
        }
        ClientMessage::SetpointHistory { sensor } => {
            let peer = connection.peer.ip();
            refused(bridge, bridge.limits.read(peer, Instant::now())).or_else(|| {
                bridge.hub.send_history(client, sensor);
                None
            })
        }
        ClientMessage::SetSetpoint(req) => {
            write(
                bridge,
                client,
                outbox,
                std::slice::from_ref(&req),
                author,
                connection,
            )
            .await;
            None
        }
        ClientMessage::SetSetpoints { writes } => {
            write(bridge, client, outbox, &writes, author, connection).await;
            None
        }
    }
}

/// The `rate_limited` error for a request over its budget (counted), or `None` when it may go on.
fn refused<B: Bus>(bridge: &Bridge<B>, charged: Result<(), super::limits::Refusal>) -> Option<ServerMessage> {
    let refusal = charged.err()?;
    bridge.metrics.client_refused(refusal.label());
    Some(error(None, ErrorCode::RateLimited, refusal.message()))
}

/// A setpoint write, or a group's: refused whole without write access or over the rate limit (a group
/// counts once; each of its writes is answered), else handed to the hub, which answers each on its own.
async fn write<B: Bus>(
    bridge: &Bridge<B>,
    client: ClientId,
    outbox: &super::outbox::Outbox,
    writes: &[setpoint_wire::ws::SetpointWrite],
    author: Option<&str>,
    connection: &Connection,
) {
    let refuse = |code, message: &str| {
        for w in writes {
            outbox.push_message(error(Some(w.request_id.clone()), code, message), &bridge.metrics);
        }
    };
    let Some(author) = author else {
        return refuse(
            ErrorCode::Unauthorized,
            "this connection is read-only: open the dashboard with the URL printed at start (it carries #token=…)",
        );
    };
    if writes.is_empty() {
        return;
    }
    if let Err(refusal) = bridge.limits.write(author, connection.peer.ip(), Instant::now()) {
        bridge.metrics.client_refused(refusal.label());
        return refuse(ErrorCode::RateLimited, refusal.message());
    }
    bridge
        .hub
        .write_setpoints(&bridge.bus, client, writes, author)
        .await;
}
