//! What every request passes before a handler sees it, and what every answer passes on its way out.
//!
//! In: the `Host` check (DNS rebinding), the probe-only reserve past the connection cap, and the rate
//! limits of the HTTP API's writes and read-heavy listings ([`super::limits`]). Out: `OPTIONS` answered
//! from the path's methods, and every error under `/api` in the API's one body (`{code, message}`), so a
//! framework rejection (a path that is not UTF-8, a wrong method, an unknown path) reads like any other
//! error to a script.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use setpoint_wire::ws::ErrorCode;

use super::api::Failure;
use super::listener::Connection;
use super::Bridge;
use crate::bus::Bus;

/// Paths a connection in the probe reserve is served.
pub const PROBES: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// Most characters of a client's string echoed in an answer or a log line.
const ECHOED: usize = setpoint_wire::ECHOED_CHARS;

/// Which `Host` names the server answers to. On a loopback listener only loopback names and the hosts of
/// `--allow-origin`: a page on `attacker.example` whose name was rebound to 127.0.0.1 reaches the port,
/// but its requests still say `Host: attacker.example`, and are refused (Jupyter's guard). A listener on
/// another address is meant to be reached under names this process cannot know, so there is no check.
pub struct HostPolicy {
    /// `None`: every host is served.
    allowed: Option<Vec<String>>,
}

impl HostPolicy {
    pub fn new(listen: SocketAddr, allow_origins: &[String]) -> Self {
        if !listen.ip().is_loopback() {
            return Self { allowed: None };
        }
        let mut allowed = vec!["localhost".to_owned(), listen.ip().to_string()];
        allowed.extend(allow_origins.iter().filter_map(|o| origin_host(o)));
        Self {
            allowed: Some(allowed),
        }
    }

    /// Whether a request with this `Host` is served. A request without one is no browser's (browsers
    /// always send it), so it cannot be a rebinding attack.
    pub fn allows(&self, host: Option<&str>) -> bool {
        let (Some(allowed), Some(host)) = (&self.allowed, host) else {
            return true;
        };
        let name = host_name(host).to_ascii_lowercase();
        let name = name.trim_end_matches('.');
        if name.ends_with(".localhost") {
            // RFC 6761: browsers resolve these to loopback themselves; no DNS answer can rebind them.
            return true;
        }
        if let Ok(ip) = name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            if ip.is_loopback() {
                return true;
            }
        }
        allowed.iter().any(|a| a == name)
    }
}

/// The host of an origin such as `https://thermo.example.com:8443`, lower-cased.
fn origin_host(origin: &str) -> Option<String> {
    let rest = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    let authority = rest.split('/').next()?;
    let name = host_name(authority);
    (!name.is_empty()).then(|| name.to_ascii_lowercase())
}

/// `name` of `name:port`, `[v6]` of `[v6]:port`.
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Whether a request is one of the read-heavy listings limited per address.
fn is_heavy_read(method: &Method, path: &str) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && (path == "/api/v1/sensors"
            || path == "/api/v1/schedules"
            || (path.starts_with("/api/v1/sensors/") && path.ends_with("/history")))
}

fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::PUT | Method::POST | Method::DELETE | Method::PATCH
    )
}

/// The middleware; see the module documentation.
pub async fn guard<B: Bus>(State(bridge): State<Arc<Bridge<B>>>, request: Request, next: Next) -> Response {
    // Borrowed, not copied: this runs for every request.
    let host_header = request
        .headers()
        .get(header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()));
    let host = request.uri().host().or(host_header.as_deref());
    if !bridge.hosts.allows(host) {
        let host = setpoint_wire::clip(host.unwrap_or_default(), ECHOED).to_owned();
        if let Some(unlogged) = bridge.metrics.client_refused("misdirected_host") {
            tracing::warn!(
                host,
                unlogged,
                "refused a request for a host this server does not serve"
            );
        }
        let message = format!(
            "this server does not answer for host {host:?}: open it as localhost, or list the host with --allow-origin"
        );
        return Failure::new(ErrorCode::MisdirectedRequest, message).into_response();
    }
    let path = request.uri().path();
    let connection = request.extensions().get::<Connection>();
    if connection.is_some_and(|c| c.reserve) && !PROBES.contains(&path) {
        bridge.metrics.client_refused("connection_limit_reserve");
        let mut response = Failure::new(
            ErrorCode::TooManyConnections,
            "the server is at its connection limit; try again shortly",
        )
        .into_response();
        let headers = response.headers_mut();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    let method = request.method();
    let api = path == "/api" || path.starts_with("/api/");
    if let (true, Some(connection)) = (api, connection) {
        let peer = connection.peer.ip();
        let now = std::time::Instant::now();
        let refused = if is_write(method) {
            // A foreign page's write is refused before it is charged, so a page the operator visits cannot
            // spend the budget of everyone on this address (browsers send `Origin` on every write).
            if !bridge.origins.allows(super::auth::origin(request.headers())) {
                return Failure::new(
                    ErrorCode::Forbidden,
                    "writes from this origin are not allowed (see --allow-origin)",
                )
                .into_response();
            }
            let offered = super::auth::bearer_token(
                request
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok()),
            );
            match offered.and_then(|t| bridge.options.tokens.identify(t)) {
                Some(name) => bridge.limits.write(name, peer, now).err(),
                // Without a valid token the address pays from its own budget for guesses.
                None => bridge.limits.guess(peer, now).err(),
            }
        } else if is_heavy_read(method, path) {
            bridge.limits.read(peer, now).err()
        } else {
            None
        };
        if let Some(refusal) = refused {
            return rate_limited(&bridge, refusal);
        }
    }
    let response = next.run(request).await;
    if api && is_foreign_error(&response) {
        return in_api_body(response).await;
    }
    response
}

/// A refusal by a rate limit: counted, logged at most once a minute per kind, `429` with `Retry-After`.
pub fn rate_limited<B: Bus>(bridge: &Bridge<B>, refusal: super::limits::Refusal) -> Response {
    if let Some(unlogged) = bridge.metrics.client_refused(refusal.label()) {
        tracing::info!(unlogged, "rate limited: {}", refusal.message());
    }
    let mut response = Failure::new(ErrorCode::RateLimited, refusal.message()).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// `OPTIONS`: `204` with the path's methods in `Allow`, or the `404` of a path that does not exist. No
/// route takes TRACE, so the router answers it with `405` and the path's methods (it leaves `Allow` off for
/// OPTIONS itself). Cross-origin (CORS) preflights get no `Access-Control-*` headers: foreign pages may
/// not write.
pub async fn options(mut request: Request, next: Next) -> Response {
    if request.method() != Method::OPTIONS {
        return next.run(request).await;
    }
    *request.method_mut() = Method::TRACE;
    let response = next.run(request).await;
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        return options_answer(&response);
    }
    response
}

/// `204` with the methods the path has (the `Allow` of the `405` the router gave), and `OPTIONS`.
fn options_answer(refused: &Response) -> Response {
    let allow = refused
        .headers()
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let allow = if allow.is_empty() {
        "OPTIONS".to_owned()
    } else {
        format!("{allow},OPTIONS")
    };
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&allow) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response
}

/// An error answer not in the API's JSON body: axum's own rejections.
fn is_foreign_error(response: &Response) -> bool {
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    (response.status().is_client_error() || response.status().is_server_error()) && !json
}

/// Re-words a framework rejection in the API's body, keeping its status and its `Allow` header.
async fn in_api_body(response: Response) -> Response {
    let status = response.status();
    let allow = response.headers().get(header::ALLOW).cloned();
    let text = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let code = match status {
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::FrameTooLarge,
        StatusCode::REQUEST_TIMEOUT => ErrorCode::RequestTimeout,
        s if s.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::InvalidMessage,
    };
    let message = match (code, text.is_empty()) {
        (ErrorCode::NotFound, true) => "no such path in the API; see /api/v1/openapi.json".to_owned(),
        (ErrorCode::MethodNotAllowed, true) => {
            "this path does not take this method; see the Allow header".to_owned()
        }
        (_, true) => status.canonical_reason().unwrap_or("error").to_owned(),
        (_, false) => setpoint_wire::clip(&text, 200).to_owned(),
    };
    let mut response = Failure::with_status(status, code, message).into_response();
    if let Some(allow) = allow {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    response
}

/// `/api/...` paths no route has.
pub async fn unknown_api_path() -> Response {
    Failure::new(
        ErrorCode::NotFound,
        "no such path in the API; see /api/v1/openapi.json",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_listener_serves_loopback_names_and_allowed_origins_only() {
        let policy = HostPolicy::new(
            "127.0.0.1:8080".parse().expect("addr"),
            &["https://Thermo.Example.com:8443/".to_owned()],
        );
        for ok in [
            "localhost:8080",
            "LOCALHOST",
            "127.0.0.1:8080",
            "127.0.0.2",
            "[::1]:8080",
            "app.localhost:8080",
            "localhost.",
            "thermo.example.com",
            "thermo.example.com:8443",
        ] {
            assert!(policy.allows(Some(ok)), "{ok}");
        }
        assert!(policy.allows(None));
        for refused in [
            "attacker.example",
            "attacker.example:8080",
            "localhost.attacker.example",
            "127.0.0.1.attacker.example",
            "10.0.0.1:8080",
            "",
        ] {
            assert!(!policy.allows(Some(refused)), "{refused}");
        }
        let open = HostPolicy::new("0.0.0.0:8080".parse().expect("addr"), &[]);
        assert!(open.allows(Some("attacker.example")));
    }
}
