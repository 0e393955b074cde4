//! The HTTP listener: accepts connections and serves the router on each, bounded in number and in time.
//!
//! Why not `axum::serve`: it has no request-head or idle timeout, no cap on connections, and its graceful
//! shutdown waits for every connection however long it takes — a client holding a half-sent request kept
//! the process from ever exiting. Here:
//! - a semaphore bounds open connections (`max_connections`, WebSockets included: the permit moves into
//!   the WebSocket session). Past it a small reserve still serves the probes (`/healthz`, `/readyz`,
//!   `/metrics`, one request per connection, sent within a second) so monitoring sees a full server rather
//!   than a dead one;
//!   every other request there gets `503 too_many_connections`. Past the reserve a connection is closed
//!   at once, which costs a descriptor for microseconds instead of for as long as the client likes;
//! - hyper's head timer bounds a request head's arrival *and* a keep-alive connection's idleness: it starts
//!   when the connection begins waiting for a request, so one silent socket, one slow head and one idle
//!   keep-alive all end at `head_timeout`;
//! - every socket has a write-stall timeout (`send_timeout`): hyper has none, and a client that asks for
//!   the dashboard's bundle and never reads would otherwise hold its place for as long as it likes;
//! - shutdown stops accepting, asks every connection to finish its request and close, and cuts whatever is
//!   still open after `shutdown_timeout` (WebSocket sessions, which outlive their HTTP connection, are
//!   waited for by the bridge within the same bound).

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::metrics::Metrics;

/// Connections served past the cap, probes only.
pub const PROBE_RESERVE: usize = 16;

/// How long a reserve connection may take to send its probe: probes send at once, and sockets that sit
/// in the reserve must not keep monitoring out for long.
pub const RESERVE_HEAD_TIMEOUT: Duration = Duration::from_secs(1);

/// Largest request head (request line and headers) read; larger ones get `431`.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Time and count bounds of the listener, and of the WebSocket sessions it hands connections to.
#[derive(Clone, Copy, Debug)]
pub struct ListenerOptions {
    /// Connections open at once, WebSockets included.
    pub max_connections: usize,
    /// From a connection's start, or the end of its previous response, to a complete request head.
    pub head_timeout: Duration,
    /// From when a handler starts reading a request's body to its end.
    pub body_timeout: Duration,
    /// A WebSocket is pinged after this long without a frame from its client, and closed after twice it.
    pub ws_ping_interval: Duration,
    /// Longest a single frame may take to go out; a client whose socket does not drain is dropped.
    pub send_timeout: Duration,
    /// From the start of shutdown to every connection closed, whatever clients do.
    pub shutdown_timeout: Duration,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            head_timeout: Duration::from_secs(15),
            body_timeout: Duration::from_secs(15),
            ws_ping_interval: Duration::from_secs(20),
            send_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

/// What a request knows of its connection (a request extension).
#[derive(Clone, Debug)]
pub struct Connection {
    pub peer: SocketAddr,
    /// Served from the reserve past the connection cap: probes only.
    pub reserve: bool,
    /// The connection's place under the cap; a WebSocket session keeps a clone for its lifetime.
    pub slot: Arc<Slot>,
}

/// A place under the connection cap, given back when the last holder drops it.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.http_connections.fetch_sub(1, Relaxed);
    }
}

/// Serves `app` on `listener` until `stop`, then closes every connection within the shutdown timeout.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ListenerOptions,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let regular = Arc::new(Semaphore::new(options.max_connections));
    let reserve = Arc::new(Semaphore::new(PROBE_RESERVE));
    let (closing, closing_seen) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or memory, or a connection reset before it was accepted: the
                    // listener itself is fine. A short pause lets closing connections free descriptors.
                    if let Some(unlogged) = metrics.client_refused("accept_failed") {
                        tracing::warn!(unlogged, "cannot accept a connection: {e}");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (permit, in_reserve) = match Arc::clone(&regular).try_acquire_owned() {
            Ok(permit) => (permit, false),
            Err(_) => match Arc::clone(&reserve).try_acquire_owned() {
                Ok(permit) => (permit, true),
                Err(_) => {
                    if let Some(unlogged) = metrics.client_refused("connection_limit") {
                        tracing::warn!(
                            unlogged,
                            max = options.max_connections,
                            "connection limit and probe reserve full; closing new connections"
                        );
                    }
                    drop(stream);
                    continue;
                }
            },
        };
        metrics.http_connections.fetch_add(1, Relaxed);
        let connection = Connection {
            peer,
            reserve: in_reserve,
            slot: Arc::new(Slot {
                _permit: permit,
                metrics: Arc::clone(&metrics),
            }),
        };
        connections.spawn(serve_connection(
            stream,
            connection,
            app.clone(),
            options,
            Arc::clone(&metrics),
            closing_seen.clone(),
        ));
    }
    drop(listener);
    let _ = closing.send(true);
    let drained = tokio::time::timeout(options.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        let cut = connections.len();
        for _ in 0..cut {
            metrics.client_refused("shutdown_cut");
        }
        tracing::warn!(
            cut,
            "closed {cut} connection(s) that had not finished within the shutdown timeout"
        );
        connections.shutdown().await;
    }
}

async fn serve_connection(
    stream: TcpStream,
    connection: Connection,
    app: Router,
    options: ListenerOptions,
    metrics: Arc<Metrics>,
    mut closing: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
    stream.set_write_timeout(Some(options.send_timeout));
    let stream = Box::pin(stream);
    let in_reserve = connection.reserve;
    let peer = connection.peer;
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(connection.clone());
        app.clone().oneshot(request.map(Body::new))
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(if in_reserve {
            options.head_timeout.min(RESERVE_HEAD_TIMEOUT)
        } else {
            options.head_timeout
        })
        .max_buf_size(MAX_HEAD_BYTES)
        // A reserve connection answers one probe and closes, so the reserve is never held.
        .keep_alive(!in_reserve);
    let mut conn = pin!(builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades());
    let finished = tokio::select! {
        result = conn.as_mut() => Some(result),
        _ = closing.wait_for(|closing| *closing) => None,
    };
    let result = match finished {
        Some(result) => result,
        None => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    match result {
        Err(e) if e.is_timeout() => {
            if let Some(unlogged) = metrics.client_refused("head_timeout") {
                tracing::info!(%peer, unlogged, "closed a connection that sent no complete request in time");
            }
        }
        Err(e) if is_write_stall(&e) => {
            if let Some(unlogged) = metrics.client_refused("write_timeout") {
                tracing::info!(%peer, unlogged, "closed a connection that stopped reading its answer");
            }
        }
        // A client that left mid-request, or sent what is not HTTP: nothing to do but close.
        Err(e) => tracing::debug!(%peer, "connection closed: {e}"),
        Ok(()) => {}
    }
}

/// Whether a connection (or a WebSocket on it) failed because its socket stopped taking what was written:
/// the write timeout every socket has.
pub fn is_write_stall(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        source = s.source();
    }
    false
}
