//! The bridge: HTTP and WebSocket front of setpoint.
//!
//! It serves the dashboard, speaks protocol v1 on `/ws`, exposes `/metrics`, `/healthz` and `/readyz`, and
//! relays between browsers and the bus: one set of subscriptions fanned out to every client ([`hub`]),
//! each client behind a bounded [`outbox`], and setpoint writes validated by the control crate and
//! acknowledged only once the bus has them.

pub mod api;
pub mod assets;
pub mod auth;
pub mod guard;
pub mod hub;
pub mod limits;
pub mod listener;
pub mod outbox;
pub mod session;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use setpoint_control::Config;
use setpoint_wire::ws::{BusStatus, ErrorCode};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::services::{ServeDir, ServeFile};

use crate::bus::Bus;
use crate::metrics::Metrics;
use assets::Dashboard;
use auth::{OriginPolicy, Tokens, SUBPROTOCOL};
use guard::HostPolicy;
use hub::{Hub, HubOptions};
use limits::ClientLimits;
use listener::{Connection, ListenerOptions};

/// Largest WebSocket message the transport accepts at all, as a multiple of `max_frame_bytes`; bigger ones
/// close the connection (1009). Frames between `max_frame_bytes` and this get a `frame_too_large` error and
/// the connection stays open. Small, because a client can hold a fragmented message this big open on each
/// of its connections: 128 KiB × 1024 connections at the defaults.
const TRANSPORT_MAX_FRAMES: usize = 2;

/// Largest frame of our own a session may have to buffer: the write buffer must hold one whole.
const OUTGOING_MAX_FRAME: usize = setpoint_wire::view::MAX_SERVER_FRAME_BYTES;

/// How the bridge runs.
#[derive(Clone, Debug)]
pub struct BridgeOptions {
    pub listen: SocketAddr,
    /// Trunk's output directory.
    pub dist: PathBuf,
    /// Who may write, and the names their changes are recorded under.
    pub tokens: Tokens,
    /// The token was generated at start (none was given), so the start-up URL carries it: the operator has
    /// no other way to learn it. A token the operator gave is never printed.
    pub token_generated: bool,
    /// Origins allowed to open a WebSocket besides the server's own (e.g. behind a reverse proxy).
    pub allow_origins: Vec<String>,
    pub hub: HubOptions,
    /// Where each room's data comes from, for the cards and the API.
    pub sources: Arc<hub::sources::RoomSources>,
    /// Client frames above this size are refused with `frame_too_large`.
    pub max_frame_bytes: usize,
    /// Setpoint writes (a group counts once) per second, and at once, per token and per client address.
    pub writes_per_second: f64,
    pub write_burst: f64,
    /// Read-heavy requests (change histories, whole-table listings) per second, and at once, per address.
    pub reads_per_second: f64,
    pub read_burst: f64,
    /// Connection count and time bounds.
    pub listener: ListenerOptions,
    /// Serve the dashboard built into the binary when `dist` holds none (tests turn it off to see the
    /// page that explains how to build it).
    pub embedded_dashboard: bool,
}

impl BridgeOptions {
    /// Defaults for a bridge on `listen` with `tokens` (one [`Token`] becomes the `admin` token).
    pub fn new(listen: SocketAddr, tokens: impl Into<Tokens>) -> Self {
        Self {
            listen,
            dist: PathBuf::from("dist"),
            tokens: tokens.into(),
            token_generated: false,
            allow_origins: Vec::new(),
            hub: HubOptions::default(),
            sources: Arc::default(),
            max_frame_bytes: 64 * 1024,
            writes_per_second: 5.0,
            write_burst: 10.0,
            reads_per_second: 10.0,
            read_burst: 20.0,
            listener: ListenerOptions::default(),
            embedded_dashboard: true,
        }
    }
}

/// Everything a request handler needs.
pub struct Bridge<B> {
    pub bus: B,
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    pub options: BridgeOptions,
    pub origins: OriginPolicy,
    pub hosts: HostPolicy,
    /// Sessions watch it: cancelled, each sends what is queued and a close frame.
    pub shutdown: CancellationToken,
    /// The WebSocket sessions, which outlive their HTTP connection: shutdown waits for them (bounded).
    pub sessions: TaskTracker,
    pub dashboard: Dashboard,
    /// Every client's budgets, per token and per address, for the WebSocket and the HTTP API alike.
    pub limits: ClientLimits,
}

/// A running bridge.
pub struct RunningBridge {
    pub addr: SocketAddr,
    pub hub: Arc<Hub>,
    pub task: JoinHandle<()>,
}

/// Binds the listener and starts serving; returns once the port is bound.
pub async fn start<B: Bus>(
    bus: B,
    options: BridgeOptions,
    config: Config,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> std::io::Result<RunningBridge> {
    let listener = tokio::net::TcpListener::bind(options.listen).await?;
    let addr = listener.local_addr()?;
    let hub = Arc::new(Hub::with_sources(
        config,
        options.hub,
        Arc::clone(&metrics),
        Arc::clone(&options.sources),
    ));
    let dashboard = Dashboard::load(&options.dist, options.embedded_dashboard);
    match &dashboard.source {
        assets::Source::Missing => {
            tracing::warn!(dist = %options.dist.display(), "dashboard not built; `/` explains how to build it")
        }
        assets::Source::Dir(dir) => tracing::info!(dist = %dir.display(), "serving the dashboard from disk"),
        assets::Source::Embedded => tracing::info!("serving the dashboard built into this binary"),
    }
    // Shutdown order: stop reading the bus (the pump drains what is there), then close the sessions,
    // which send what is queued before their close frame, then stop the HTTP server.
    let sessions = CancellationToken::new();
    let pump_stop = CancellationToken::new();
    let limits = ClientLimits::new(
        options.writes_per_second,
        options.write_burst,
        options.reads_per_second,
        options.read_burst,
    );
    let listener_options = options.listener;
    let session_tasks = TaskTracker::new();
    let bridge = Arc::new(Bridge {
        bus: bus.clone(),
        hub: Arc::clone(&hub),
        metrics: Arc::clone(&metrics),
        origins: OriginPolicy::new(addr, &options.allow_origins),
        hosts: HostPolicy::new(addr, &options.allow_origins),
        options,
        shutdown: sessions.clone(),
        sessions: session_tasks.clone(),
        dashboard,
        limits,
    });
    let pump = tokio::spawn(hub::pump(bus, Arc::clone(&hub), pump_stop.clone()));
    let app = router(bridge);
    let server = tokio::spawn(listener::serve(
        listener,
        app,
        listener_options,
        metrics,
        sessions.clone(),
    ));
    let task = tokio::spawn(async move {
        shutdown.cancelled().await;
        pump_stop.cancel();
        match pump.await {
            Ok(Err(e)) => tracing::error!("bridge stopped reading the bus: {e}"),
            Err(e) => tracing::error!("bridge pump panicked: {e}"),
            Ok(Ok(())) => {}
        }
        sessions.cancel();
        let deadline = tokio::time::Instant::now() + listener_options.shutdown_timeout;
        // Bounded by the shutdown timeout whatever clients do (listener.rs).
        if let Err(e) = server.await {
            tracing::error!("http server panicked: {e}");
        }
        session_tasks.close();
        if tokio::time::timeout_at(deadline, session_tasks.wait())
            .await
            .is_err()
        {
            // Each session bounds its own drain by the same timeout; this is the backstop.
            tracing::warn!(
                sessions = session_tasks.len(),
                "WebSocket sessions still open at the shutdown timeout are cut"
            );
        }
    });
    Ok(RunningBridge { addr, hub, task })
}

fn router<B: Bus>(bridge: Arc<Bridge<B>>) -> Router {
    let csp = HeaderValue::from_str(&bridge.dashboard.csp)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"));
    let app = Router::new()
        .route("/ws", get(websocket::<B>))
        .route("/metrics", get(metrics::<B>))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready::<B>))
        .merge(api::routes::<B>(Arc::clone(&bridge)))
        // Unknown API paths get the API's 404, not the dashboard's page.
        .route("/api", any(guard::unknown_api_path))
        .route("/api/", any(guard::unknown_api_path))
        .route("/api/{*rest}", any(guard::unknown_api_path));
    let app = match &bridge.dashboard.source {
        assets::Source::Dir(dir) => {
            app.fallback_service(ServeDir::new(dir).fallback(ServeFile::new(dir.join("index.html"))))
        }
        assets::Source::Embedded => app.fallback(assets::serve_embedded),
        assets::Source::Missing => {
            let page = assets::not_built_page(&bridge.options.dist);
            app.fallback(move || async move { Html(page) })
        }
    };
    let app = app
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&bridge),
            guard::guard::<B>,
        ))
        .with_state(bridge);
    // Outside the routes, so it sees the `Allow` header the router adds on its way out.
    Router::new()
        .fallback_service(app)
        .layer(axum::middleware::from_fn(guard::options))
        .layer(axum::middleware::map_response(move |mut response: Response| {
            let csp = csp.clone();
            async move {
                let headers = response.headers_mut();
                headers.insert(header::CONTENT_SECURITY_POLICY, csp);
                headers.insert(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                );
                headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
                headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
                response
            }
        }))
}

async fn websocket<B: Bus>(
    State(bridge): State<Arc<Bridge<B>>>,
    connection: Option<axum::Extension<Connection>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(e) => {
            let message = format!("/ws speaks WebSocket only (protocol {SUBPROTOCOL}): {e}");
            let mut response = api::Failure::new(ErrorCode::UpgradeRequired, message).into_response();
            response
                .headers_mut()
                .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
            return response;
        }
    };
    let Some(axum::Extension(connection)) = connection else {
        return api::Failure::new(ErrorCode::Internal, "connection not known to the listener")
            .into_response();
    };
    let origin = auth::origin(&headers);
    if !bridge.origins.allows(origin) {
        let origin = setpoint_wire::clip(origin.unwrap_or_default(), setpoint_wire::ECHOED_CHARS);
        if let Some(unlogged) = bridge.metrics.client_refused("foreign_origin") {
            tracing::warn!(origin, unlogged, "cross-origin WebSocket refused");
        }
        return api::Failure::new(
            ErrorCode::Forbidden,
            "WebSocket connections from this origin are not allowed (see --allow-origin)",
        )
        .into_response();
    }
    // Browsers present the token as a subprotocol (they cannot set headers on a WebSocket); scripts and
    // other tools the standard way, `Authorization: Bearer`.
    let offered = auth::offered_token(
        headers
            .get(header::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok()),
    )
    .or_else(|| auth::bearer_token(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())));
    // The token's name, not the token, goes on: it is what the change history records.
    let author: Option<Arc<str>> = offered
        .and_then(|t| bridge.options.tokens.identify(t))
        .map(Arc::from);
    // Every upgrade costs a `hello` and a backfill, so upgrades have a budget per address. A token that is
    // not one is a guess (the `hello` says whether it was accepted).
    let now = std::time::Instant::now();
    let peer = connection.peer.ip();
    let charged = match (offered, &author) {
        (Some(_), None) => bridge.limits.guess(peer, now),
        _ => Ok(()),
    }
    .and_then(|()| bridge.limits.upgrade(peer, now));
    if let Err(refusal) = charged {
        return guard::rate_limited(&bridge, refusal);
    }
    let transport_max = bridge
        .options
        .max_frame_bytes
        .saturating_mul(TRANSPORT_MAX_FRAMES);
    let protocols = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok());
    if auth::offers_only_retired(protocols) {
        if let Some(unlogged) = bridge.metrics.client_refused("retired_protocol") {
            tracing::info!(unlogged, "a page of an older version connected: told to reload");
        }
        return upgrade
            .protocols(setpoint_wire::ws::RETIRED_SUBPROTOCOLS.iter().copied())
            .on_upgrade(session::retired);
    }
    upgrade
        .protocols([SUBPROTOCOL])
        .max_message_size(transport_max)
        .max_frame_size(transport_max)
        // Per-connection buffers, times a thousand clients: keep them small. Every send is flushed before
        // the next, so the write buffer never needs to hold more than one frame.
        .read_buffer_size(8 * 1024)
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(OUTGOING_MAX_FRAME)
        .on_upgrade(move |socket| {
            let tasks = bridge.sessions.clone();
            tasks.track_future(session::run(socket, bridge, author, connection))
        })
}

async fn metrics<B: Bus>(State(bridge): State<Arc<Bridge<B>>>) -> impl IntoResponse {
    use std::sync::atomic::Ordering::Relaxed;
    let failing = bridge.bus.persistence_problem().is_some();
    bridge.metrics.store_failing.store(u64::from(failing), Relaxed);
    bridge
        .metrics
        .store_unpersisted
        .store(bridge.bus.unpersisted(), Relaxed);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        bridge.metrics.render(),
    )
}

async fn ready<B: Bus>(State(bridge): State<Arc<Bridge<B>>>) -> Response {
    if bridge
        .metrics
        .controller_catching_up
        .load(std::sync::atomic::Ordering::Relaxed)
        != 0
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "controller catching up with the setpoints\n",
        )
            .into_response();
    }
    if !bridge.hub.tables_read() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "bridge reading the setpoints and schedules\n",
        )
            .into_response();
    }
    if let Some(problem) = bridge.bus.persistence_problem() {
        // Control goes on from memory; what is not ready is taking writes that must be durable.
        let text = format!(
            "data file cannot be written: {}; setpoint writes are refused, control continues\n",
            setpoint_wire::clip(&problem, crate::metrics::LOGGED_CHARS)
        );
        return (StatusCode::SERVICE_UNAVAILABLE, text).into_response();
    }
    match bridge.bus.status() {
        BusStatus::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "bus unavailable\n").into_response(),
        BusStatus::Embedded | BusStatus::Connected => "ready\n".into_response(),
    }
}
