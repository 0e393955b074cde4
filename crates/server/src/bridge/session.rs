//! One WebSocket connection: `hello`, backfill, then the outbox out and client requests in.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use setpoint_wire::ws::{ClientMessage, ErrorCode, ErrorMsg, ServerMessage};

use super::auth::RateLimit;
use super::hub::{ClientId, TABLES_PATIENCE};
use super::Bridge;
use crate::bus::Bus;

/// Close code for a client that did not read its control messages (RFC 6455 "policy violation").
const CLOSE_TOO_SLOW: u16 = 1008;
/// Close code on server shutdown ("going away").
const CLOSE_GOING_AWAY: u16 = 1001;

/// Serves one connection until the client leaves, falls hopelessly behind, or the server shuts down.
///
/// `author` is the name of the token the client presented, `None` for a read-only connection.
pub async fn run<B: Bus>(socket: WebSocket, bridge: Arc<Bridge<B>>, author: Option<Arc<str>>) {
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
    let (mut sink, mut stream) = socket.split();

    let writer = async {
        for msg in std::mem::take(&mut start) {
            sink.send(Message::Text(msg.to_json().into())).await?;
        }
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
                _ = bridge.shutdown.cancelled() => {
                    // Whatever is queued goes out before the close frame.
                    for frame in outbox.drain().frames {
                        sink.send(Message::Text(frame)).await?;
                    }
                    let close = CloseFrame { code: CLOSE_GOING_AWAY, reason: "server shutting down".into() };
                    sink.send(Message::Close(Some(close))).await?;
                    return Ok(());
                }
            }
        }
    };

    let reader = async {
        let mut limit = RateLimit::new(bridge.options.writes_per_second, bridge.options.write_burst);
        loop {
            let message = match stream.next().await {
                None => return None,
                Some(Ok(message)) => message,
                Some(Err(e)) => return close_for_transport_error(&bridge, id, &e),
            };
            let reply = match message {
                Message::Text(text) => {
                    handle_text(&bridge, id, &outbox, text.as_str(), author.as_deref(), &mut limit).await
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
                if matches!(reply, ServerMessage::Error(_)) {
                    bridge.metrics.ws_errors_sent.fetch_add(1, Relaxed);
                }
                outbox.push_control(reply.to_json().into());
            }
        }
    };

    let (result, close): (Result<(), axum::Error>, Option<CloseFrame>) = tokio::select! {
        r = writer => (r, None),
        close = reader => (Ok(()), close),
    };
    if let Some(close) = close {
        // Best effort: the transport already failed reading, but it can usually still say why.
        let _ = sink.send(Message::Close(Some(close))).await;
    }
    if let Err(e) = result {
        tracing::debug!(client = id, "connection ended: {e}");
    }
    bridge.hub.unregister(id);
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
        message: message.to_owned(),
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
    limit: &mut RateLimit,
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
            outbox.set_filter(sensors);
            None
        }
        ClientMessage::SetpointHistory { sensor } => {
            bridge.hub.send_history(client, sensor);
            None
        }
        ClientMessage::SetSetpoint(req) => {
            write(bridge, client, outbox, std::slice::from_ref(&req), author, limit).await;
            None
        }
        ClientMessage::SetSetpoints { writes } => {
            write(bridge, client, outbox, &writes, author, limit).await;
            None
        }
    }
}

/// A setpoint write, or a group's: refused whole without write access or over the rate limit (a group
/// counts once; each of its writes is answered), else handed to the hub, which answers each on its own.
async fn write<B: Bus>(
    bridge: &Bridge<B>,
    client: ClientId,
    outbox: &super::outbox::Outbox,
    writes: &[setpoint_wire::ws::SetSetpoint],
    author: Option<&str>,
    limit: &mut RateLimit,
) {
    let refuse = |code, message: &str| {
        for w in writes {
            bridge.metrics.ws_errors_sent.fetch_add(1, Relaxed);
            let reply = error(Some(w.request_id.clone()), code, message);
            outbox.push_control(reply.to_json().into());
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
    if !limit.allow() {
        return refuse(ErrorCode::RateLimited, "too many setpoint writes; wait a moment");
    }
    bridge
        .hub
        .write_setpoints(&bridge.bus, client, writes, author)
        .await;
}
