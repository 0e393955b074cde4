//! A WebSocket client that speaks to the bridge the way the dashboard does, with every wait bounded.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use setpoint_control::SensorId;
use setpoint_wire::view::{ViewMsg, ViewRequest};
use setpoint_wire::ws::{ClientMessage, ServerMessage, SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Bound on every wait of a [`Client`].
pub const PATIENCE: Duration = Duration::from_secs(20);

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// The upgrade request the dashboard sends: subprotocol [`SUBPROTOCOL`], plus the token subprotocol when
/// given, and an `Origin` when given (browsers always send one; scripts need not).
pub fn request(addr: SocketAddr, token: Option<&str>, origin: Option<&str>) -> Result<Request, WsError> {
    let mut request = format!("ws://{addr}/ws").into_client_request()?;
    let protocols = match token {
        Some(t) => format!("{SUBPROTOCOL}, {TOKEN_SUBPROTOCOL_PREFIX}{t}"),
        None => SUBPROTOCOL.to_owned(),
    };
    let header = |v: &str| HeaderValue::from_str(v).map_err(|e| WsError::HttpFormat(e.into()));
    request
        .headers_mut()
        .insert("sec-websocket-protocol", header(&protocols)?);
    if let Some(o) = origin {
        request.headers_mut().insert("origin", header(o)?);
    }
    Ok(request)
}

/// Opens a WebSocket like the dashboard does (see [`request`]).
pub async fn connect(addr: SocketAddr, token: Option<&str>, origin: Option<&str>) -> Result<Client, WsError> {
    let (ws, _) = tokio_tungstenite::connect_async(request(addr, token, origin)?).await?;
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

    /// Watches these rooms (`None`: every room, live only) and returns the bridge's answer; messages before
    /// it are skipped.
    pub async fn subscribe(&mut self, sensors: Option<&[SensorId]>) -> ViewMsg {
        let msg = ClientMessage::Subscribe {
            sensors: sensors.map(<[SensorId]>::to_vec),
        };
        self.ask(&msg).await
    }

    /// Asks for a view, as the dashboard does, and returns the bridge's answer.
    pub async fn view(&mut self, request: ViewRequest) -> ViewMsg {
        self.ask(&ClientMessage::View(request)).await
    }

    async fn ask(&mut self, msg: &ClientMessage) -> ViewMsg {
        let text = serde_json::to_string(msg).expect("a client message encodes");
        self.send(&text).await;
        self.until(|m| match m {
            ServerMessage::View(v) => Some(v.clone()),
            _ => None,
        })
        .await
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
