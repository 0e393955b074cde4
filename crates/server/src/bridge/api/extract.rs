//! What a handler takes from a request, each with the API's error on failure: path ids, the writer's
//! token, a bounded JSON body within the body timeout, `If-Match`, query times, the sensor list's query.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;
use setpoint_control::{SensorId, TimeMs};
use setpoint_wire::api::{SensorFilter, MAX_SENSOR_PAGE};
use setpoint_wire::ws::ErrorCode;

use super::error::*;
use crate::bridge::Bridge;
use crate::bus::Bus;

/// A sensor id from the path. Parsed here rather than by axum's `Path<i32>`, so a bad id gets the API's
/// error body, not a plain-text rejection.
pub(super) fn sensor_id(raw: &str) -> Result<SensorId, Failure> {
    raw.parse().map_err(|_| {
        Failure::new(
            ErrorCode::InvalidMessage,
            format!("sensor id must be a 32-bit integer, got {:?}", truncate(raw)),
        )
    })
}

pub(super) fn truncate(s: &str) -> String {
    setpoint_wire::clip(s, setpoint_wire::ECHOED_CHARS).to_owned()
}

/// The name of the token a write presents; refuses writes without one, and writes from foreign pages.
pub(crate) fn writer<B: Bus>(bridge: &Bridge<B>, headers: &HeaderMap) -> Result<String, Failure> {
    // A foreign page's write was refused by the guard (guard.rs), before it was charged to a budget.
    let offered =
        crate::bridge::auth::bearer_token(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()));
    // The write budgets (per token and per address) were charged by the guard, before the body was read.
    let name = offered
        .and_then(|t| bridge.options.tokens.identify(t))
        .ok_or_else(|| {
            Failure::new(
                ErrorCode::Unauthorized,
                "writing needs a valid token: send `Authorization: Bearer <token>`",
            )
        })?;
    Ok(name.to_owned())
}

/// Reads a JSON body of at most the WebSocket's frame limit. Not JSON → `malformed_frame`; JSON of the
/// wrong shape (a missing or unknown field, a wrong type) → `invalid_message`: the WebSocket's codes.
pub(crate) async fn json_body<B: Bus, T: DeserializeOwned>(
    bridge: &Bridge<B>,
    body: Body,
) -> Result<T, Failure> {
    let limit = bridge.options.max_frame_bytes;
    let timeout = bridge.options.listener.body_timeout;
    // The whole body within the timeout, not each piece: a client trickling a byte a second must not hold
    // a request (and, at shutdown, the process) for as long as it likes.
    let bytes = match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            use std::error::Error as _;
            let too_large = e
                .source()
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            return Err(if too_large {
                Failure::new(
                    ErrorCode::FrameTooLarge,
                    format!("request body exceeds the limit of {limit} bytes"),
                )
            } else {
                Failure::new(ErrorCode::MalformedFrame, "the request body could not be read")
            });
        }
        Err(_) => {
            bridge.metrics.client_refused("body_timeout");
            return Err(Failure::new(
                ErrorCode::RequestTimeout,
                format!(
                    "the request body did not arrive within {} s",
                    timeout.as_secs_f64()
                ),
            ));
        }
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        use serde_json::error::Category;
        let code = match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => ErrorCode::MalformedFrame,
            Category::Data => ErrorCode::InvalidMessage,
        };
        let what = if code == ErrorCode::MalformedFrame {
            "body is not valid JSON"
        } else {
            "invalid body"
        };
        Failure::new(code, format!("{what}: {e}"))
    })
}

/// The version an `If-Match` header names: `"3"` (or `3`); `*` or no header means any.
pub(super) fn if_match(headers: &HeaderMap) -> Result<Option<u64>, Failure> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let bad = || {
        Failure::new(
            ErrorCode::InvalidMessage,
            "If-Match must be the setpoint's version as an entity tag, e.g. If-Match: \"3\" (see its ETag)",
        )
    };
    let raw = value.to_str().map_err(|_| bad())?.trim();
    if raw == "*" {
        return Ok(None);
    }
    let unquoted = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    unquoted.parse().map(Some).map_err(|_| bad())
}

/// The entity tag of a setpoint: its version, which is what `If-Match` compares.
pub(super) fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// A time in a query: ms since the epoch, or an RFC 3339 timestamp (`2026-11-25T08:00:00Z`).
pub(super) fn parse_time(name: &str, raw: &str) -> Result<TimeMs, Failure> {
    if let Ok(ms) = raw.parse::<TimeMs>() {
        return Ok(ms);
    }
    raw.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|e| {
            Failure::new(
                ErrorCode::InvalidMessage,
                format!(
                    "{name} must be ms since the epoch or an RFC 3339 time such as 2026-11-25T08:00:00Z ({e})"
                ),
            )
        })
}

/// The query of `GET /api/v1/sensors`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct SensorsQuery {
    /// Sensors on this page: 1 to 1,000 (the default)
    pub(super) limit: usize,
    /// Only sensors with a greater id: the previous page's last (the `Link` header gives it)
    pub(super) after: Option<i32>,
    /// `out_of_band`, `heater_on`, `stale`, comma-separated: sensors that pass them all
    #[param(value_type = Option<String>)]
    pub(super) filters: Vec<SensorFilter>,
}

impl SensorsQuery {
    /// The query parameters as given; `Err` names the one that is wrong.
    pub(super) fn parse(query: &HashMap<String, String>) -> Result<Self, Failure> {
        let bad = |message: String| Failure::new(ErrorCode::InvalidMessage, message);
        if let Some(unknown) = query
            .keys()
            .find(|k| !matches!(k.as_str(), "limit" | "after" | "filter"))
        {
            return Err(bad(format!(
                "unknown query parameter {:?}: use limit, after and filter",
                truncate(unknown)
            )));
        }
        let limit = match query.get("limit") {
            None => MAX_SENSOR_PAGE,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|l| (1..=MAX_SENSOR_PAGE).contains(l))
                .ok_or_else(|| {
                    bad(format!(
                        "limit must be 1 to {MAX_SENSOR_PAGE}, not {:?}",
                        truncate(l)
                    ))
                })?,
        };
        let after = query.get("after").map(|a| sensor_id(a)).transpose()?;
        let filters = match query.get("filter") {
            None => Vec::new(),
            Some(f) => SensorFilter::parse_list(f).map_err(bad)?,
        };
        Ok(Self {
            limit,
            after,
            filters,
        })
    }

    /// The address of the page after `last`, with the same limit and filters.
    pub(super) fn next_page(&self, last: i32) -> String {
        let mut url = format!("/api/v1/sensors?limit={}&after={last}", self.limit);
        if !self.filters.is_empty() {
            let names: Vec<&str> = self.filters.iter().map(|f| f.as_str()).collect();
            url.push_str("&filter=");
            url.push_str(&names.join(","));
        }
        url
    }
}
