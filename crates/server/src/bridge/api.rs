//! Over 400 lines, not yet split: router, error model, extraction and the setpoint and schedule handlers
//! share the `Failure` type and the OpenAPI annotations; splitting them along those concepts
//! (`api/{error,extract,setpoints,schedules}.rs`) is the house issue's (22) first restructuring, kept out of
//! the safety change so that behaviour and layout do not change in one commit.
//!
//! The HTTP JSON API under `/api/v1`, for scripts, cron jobs and home automation: the same state the
//! dashboard shows and the same writes, without speaking the WebSocket protocol.
//!
//! One implementation of each rule: a write goes through the hub exactly as a browser's does (validation by
//! the control crate's `Limits`, versions, the stream as arbiter, ack only once read back), and every
//! error carries the WebSocket's [`ErrorCode`], mapped onto an HTTP status by [`status_for`]. Reading is
//! open, as on the WebSocket; writing needs `Authorization: Bearer <token>`, names the token's name as
//! author, and is rate-limited per token with the WebSocket's per-connection limit. Bodies are bounded by
//! the WebSocket's frame limit; a browser page from another origin may not write (the WebSocket's origin
//! rule), since a bearer token in a script on a foreign page must not be usable by that page either.
//!
//! The API describes itself: `GET /api/v1/openapi.json` serves an OpenAPI 3.1 document generated from the
//! `#[utoipa::path]` annotation on each handler and the wire types' schemas ([`openapi`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use setpoint_control::{SensorId, TimeMs};
use setpoint_schedule::Program;
use setpoint_wire::api::{ApiError, SetpointBody, SetpointWrite, WriteOutcome};
use setpoint_wire::schedule::{ScheduleBody, MAX_SCHEDULES};
use setpoint_wire::ws::{ErrorCode, ErrorMsg, ServerMessage, SetSetpoint, SetpointMsg, MAX_GROUP_WRITES};

use super::hub::state::READ_BACK_PATIENCE_MS;
use super::hub::{HubState, TABLES_PATIENCE};
use super::Bridge;
use crate::bus::{Bus, BusError, ScheduleRecord};
use crate::clock::now_ms;

// The OpenAPI document of these routes: a child of this module, so that it can name the private handlers.
#[path = "openapi.rs"]
pub mod openapi;

/// The API's routes, to be merged into the bridge's router.
pub fn routes<B: Bus>(bridge: Arc<Bridge<B>>) -> Router<Arc<Bridge<B>>> {
    Router::new()
        .route("/api/v1/sensors", get(sensors::<B>))
        .route("/api/v1/sensors/{id}", get(sensor::<B>))
        .route(
            "/api/v1/sensors/{id}/setpoint",
            get(setpoint::<B>).put(put_setpoint::<B>),
        )
        .route("/api/v1/sensors/{id}/history", get(history::<B>))
        .route("/api/v1/setpoints", put(put_setpoints::<B>))
        .route("/api/v1/schedules", get(schedules::<B>))
        .route(
            "/api/v1/schedules/{name}",
            get(schedule::<B>)
                .put(put_schedule::<B>)
                .delete(delete_schedule::<B>),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            bridge,
            after_tables_read::<B>,
        ))
        // The document describes the API; it does not depend on the tables.
        .route("/api/v1/openapi.json", get(openapi::document))
}

/// Holds a request until the bridge has read its tables (at most [`TABLES_PATIENCE`]), so a script that
/// calls right after a restart gets the setpoints and schedules in force, not a partial table and not a
/// write judged against stale versions. Past the patience: `503 broker_unavailable` with `Retry-After`.
async fn after_tables_read<B: Bus>(
    State(bridge): State<Arc<Bridge<B>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if bridge.hub.wait_for_tables(TABLES_PATIENCE).await {
        return next.run(request).await;
    }
    let mut response = Failure::new(
        ErrorCode::BrokerUnavailable,
        "the bridge is still reading the setpoints and schedules from the message broker; try again",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// How long a schedule's save waits to read its record back before answering `202 unconfirmed`.
const SCHEDULE_READ_BACK: Duration = Duration::from_secs(5);

/// An error answer: the HTTP status and the one error body ([`ApiError`]).
pub(crate) struct Failure {
    status: StatusCode,
    body: ApiError,
}

impl Failure {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::with_status(status_for(code), code, message)
    }

    /// With a status of its own, for the framework's rejections re-worded in this body (a `415` stays one).
    pub(crate) fn with_status(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        let message: String = message.into();
        Self {
            status,
            body: ApiError {
                code,
                message: setpoint_wire::clip(&message, setpoint_wire::MAX_MESSAGE_CHARS).to_owned(),
                current: None,
            },
        }
    }

    /// A WebSocket `error` answer as an HTTP one: same code, message and value in force.
    fn from_ws(error: ErrorMsg) -> Self {
        let mut failure = Self::new(error.code, error.message);
        failure.body.current = error.current;
        failure
    }

    /// A sensor id the bridge knows nothing about (the 404 of every per-sensor read).
    fn unknown_sensor(sensor: i32) -> Self {
        Self::new(
            ErrorCode::NotFound,
            format!("no sensor {sensor}: the bridge has seen no reading, setpoint or command for it"),
        )
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The HTTP status of each error code: the one mapping, for single and group writes alike.
pub fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::MalformedFrame
        | ErrorCode::UnknownType
        | ErrorCode::InvalidMessage
        | ErrorCode::BinaryFrame => StatusCode::BAD_REQUEST,
        ErrorCode::InvalidSetpoint | ErrorCode::InvalidSchedule => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::FrameTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::BrokerUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Unconfirmed => StatusCode::ACCEPTED,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MisdirectedRequest => StatusCode::MISDIRECTED_REQUEST,
        ErrorCode::TooManyConnections => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::UpgradeRequired => StatusCode::UPGRADE_REQUIRED,
    }
}

/// A sensor id from the path. Parsed here rather than by axum's `Path<i32>`, so a bad id gets the API's
/// error body, not a plain-text rejection.
fn sensor_id(raw: &str) -> Result<SensorId, Failure> {
    raw.parse().map_err(|_| {
        Failure::new(
            ErrorCode::InvalidMessage,
            format!("sensor id must be a 32-bit integer, got {:?}", truncate(raw)),
        )
    })
}

fn truncate(s: &str) -> String {
    setpoint_wire::clip(s, setpoint_wire::ECHOED_CHARS).to_owned()
}

/// The name of the token a write presents; refuses writes without one, and writes from foreign pages.
pub(crate) fn writer<B: Bus>(bridge: &Bridge<B>, headers: &HeaderMap) -> Result<String, Failure> {
    // A foreign page's write was refused by the guard (guard.rs), before it was charged to a budget.
    let offered = super::auth::bearer_token(headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()));
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
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, Failure> {
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
fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// Runs writes through the hub as a quiet client and waits for each answer (in request order). A write
/// whose answer does not come within the read-back patience (and a little) is `unconfirmed`: saved, but
/// not known to have taken effect.
async fn write<B: Bus>(
    bridge: &Bridge<B>,
    author: &str,
    writes: Vec<SetpointWrite>,
) -> Vec<Result<SetpointMsg, Failure>> {
    let requests: Vec<SetSetpoint> = writes
        .iter()
        .enumerate()
        .map(|(i, w)| SetSetpoint {
            request_id: i.to_string(),
            sensor: w.sensor,
            desired: w.desired,
            up_delta: w.up_delta,
            down_delta: w.down_delta,
            base_version: w.base_version,
        })
        .collect();
    let mut client = bridge.hub.register_quiet();
    bridge
        .hub
        .write_setpoints(&bridge.bus, client.id, &requests, author)
        .await;
    let mut answers: Vec<Option<Result<SetpointMsg, Failure>>> = (0..writes.len()).map(|_| None).collect();
    let patience = Duration::from_millis(READ_BACK_PATIENCE_MS as u64) + 2 * super::hub::STATUS_INTERVAL;
    let deadline = tokio::time::Instant::now() + patience;
    while answers.iter().any(Option::is_none) {
        let Ok(Some(message)) = tokio::time::timeout_at(deadline, client.answers.recv()).await else {
            break;
        };
        let (request_id, answer) = match message {
            ServerMessage::Ack { request_id, setpoint } => {
                let value = setpoint
                    .ok_or_else(|| Failure::new(ErrorCode::Internal, "write answered without its value"));
                (request_id, value)
            }
            ServerMessage::Error(mut error) => {
                let Some(request_id) = error.request_id.take() else {
                    continue;
                };
                (request_id, Err(Failure::from_ws(error)))
            }
            _ => continue,
        };
        if let Some(slot) = request_id.parse::<usize>().ok().and_then(|i| answers.get_mut(i)) {
            *slot = Some(answer);
        }
    }
    answers
        .into_iter()
        .map(|a| {
            a.unwrap_or_else(|| {
                Err(Failure::new(
                    ErrorCode::Unconfirmed,
                    "setpoint saved, but not yet confirmed: read it back to see whether it took effect",
                ))
            })
        })
        .collect()
}

/// What any write may be refused with before it is looked at (`writer`), for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only described, never built: the answers are `Failure`s
enum WriterRefusals {
    #[response(
        status = 401,
        description = "`unauthorized`: no valid `Authorization: Bearer <token>`",
        headers(("WWW-Authenticate" = String, description = "`Bearer`"))
    )]
    Unauthorized(ApiError),
    #[response(
        status = 403,
        description = "`forbidden`: sent by a page of another origin (see `--allow-origin`)"
    )]
    Forbidden(ApiError),
    #[response(status = 429, description = "`rate_limited`: too many writes with this token")]
    RateLimited(ApiError),
}

/// Why a write that reached the bus may not be saved, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only described, never built: the answers are `Failure`s
enum SaveFailures {
    #[response(status = 500, description = "`internal`")]
    Internal(ApiError),
    #[response(
        status = 503,
        description = "`broker_unavailable`: the message broker cannot be reached, or the bridge has not finished reading the setpoints since it started; nothing was saved"
    )]
    BrokerUnavailable(ApiError),
}

/// Why a read may not be answered, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only described, never built: the answer is a `Failure`
enum ReadFailures {
    #[response(
        status = 503,
        description = "`broker_unavailable`: the bridge has just started and has not finished reading the setpoints and schedules (`Retry-After` says when to ask again)"
    )]
    NotReady(ApiError),
}

/// `GET /api/v1/sensors`: every sensor with its newest reading, setpoint in force and heater state.
#[utoipa::path(
    get,
    path = "/api/v1/sensors",
    operation_id = "list_sensors",
    tag = "sensors",
    summary = "Every sensor with its newest reading, setpoint in force and heater state",
    responses(
        (status = 200, description = "Every sensor the bridge has heard of, by id", body = Vec<setpoint_wire::api::SensorView>),
        ReadFailures,
    )
)]
async fn sensors<B: Bus>(State(bridge): State<Arc<Bridge<B>>>) -> Response {
    Json(bridge.hub.sensor_views()).into_response()
}

/// `GET /api/v1/sensors/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/sensors/{id}",
    operation_id = "get_sensor",
    tag = "sensors",
    summary = "One sensor: its newest reading, setpoint in force, heater state and next scheduled step",
    params(("id" = i32, Path, description = "The sensor id (a 32-bit integer; anything else is `400 invalid_message`)")),
    responses(
        (status = 200, description = "The sensor", body = setpoint_wire::api::SensorView),
        (status = 400, description = "`invalid_message`: the id is not a 32-bit integer", body = ApiError),
        (status = 404, description = "`not_found`: the bridge has seen no reading, setpoint or command for it", body = ApiError),
        ReadFailures,
    )
)]
async fn sensor<B: Bus>(
    State(bridge): State<Arc<Bridge<B>>>,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let sensor = sensor_id(&id)?;
    let view = bridge
        .hub
        .sensor_view(sensor)
        .ok_or_else(|| Failure::unknown_sensor(sensor))?;
    Ok(Json(view).into_response())
}

/// `GET /api/v1/sensors/{id}/setpoint`: the setpoint in force, with its version (also as `ETag`, for
/// `If-Match`) and author.
#[utoipa::path(
    get,
    path = "/api/v1/sensors/{id}/setpoint",
    operation_id = "get_setpoint",
    tag = "setpoints",
    summary = "The setpoint in force, with its version (also as `ETag`) and author",
    params(("id" = i32, Path, description = "The sensor id (a 32-bit integer; anything else is `400 invalid_message`)")),
    responses(
        (status = 200, description = "The setpoint in force", body = SetpointMsg, headers(("ETag" = String, description = "The setpoint's version as an entity tag, e.g. `\"3\"`"))),
        (status = 400, description = "`invalid_message`: the id is not a 32-bit integer", body = ApiError),
        (status = 404, description = "`not_found`: the sensor has no setpoint", body = ApiError),
        ReadFailures,
    )
)]
async fn setpoint<B: Bus>(
    State(bridge): State<Arc<Bridge<B>>>,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let sensor = sensor_id(&id)?;
    let sp = bridge
        .hub
        .setpoint(sensor)
        .ok_or_else(|| Failure::new(ErrorCode::NotFound, format!("sensor {sensor} has no setpoint")))?;
    Ok(([(header::ETAG, etag(sp.version))], Json(sp)).into_response())
}

/// `PUT /api/v1/sensors/{id}/setpoint`: `200` with the new setpoint once it is in force; `409` with the
/// value in force if `If-Match` names another version (or another write got there first).
#[utoipa::path(
    put,
    path = "/api/v1/sensors/{id}/setpoint",
    operation_id = "put_setpoint",
    tag = "setpoints",
    summary = "Sets a sensor's setpoint; answers once it is in force",
    description = "Validated by the same rules as the dashboard's writes, recorded with the token's name as author. With `If-Match`, applied only if that version is still in force.",
    params(
        ("id" = i32, Path, description = "The sensor id (a 32-bit integer; anything else is `400 invalid_message`)"),
        ("If-Match" = Option<String>, Header, description = "The version this write replaces, as its `ETag` gives it (`\"3\"`; a bare `3` too); `*` or none: any"),
    ),
    request_body = SetpointBody,
    responses(
        (status = 200, description = "In force: the new setpoint, with its version", body = SetpointMsg, headers(("ETag" = String, description = "The setpoint's version as an entity tag, e.g. `\"3\"`"))),
        (status = 202, description = "`unconfirmed`: saved, but not read back in time to know whether it took effect", body = ApiError),
        (status = 400, description = "`malformed_frame` (the body is not JSON) or `invalid_message` (wrong shape, a bad id or `If-Match`)", body = ApiError),
        WriterRefusals,
        (status = 409, description = "`conflict`: another version is in force (`If-Match`, or another write got there first); `current` is the value in force", body = ApiError),
        (status = 413, description = "`frame_too_large`: the body exceeds the frame limit (64 KiB by default)", body = ApiError),
        (status = 422, description = "`invalid_setpoint`: the setpoint breaks a limit; `message` names the field", body = ApiError),
        SaveFailures,
    ),
    security(("bearer" = []))
)]
async fn put_setpoint<B: Bus>(
    State(bridge): State<Arc<Bridge<B>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    let author = writer(&bridge, &headers)?;
    let sensor = sensor_id(&id)?;
    let base_version = if_match(&headers)?;
    let body: SetpointBody = json_body(&bridge, body).await?;
    let write = SetpointWrite {
        sensor,
        desired: body.desired,
        up_delta: body.up_delta,
        down_delta: body.down_delta,
        base_version,
    };
    let mut outcomes = self::write(&bridge, &author, vec![write]).await;
    let outcome = outcomes
        .pop()
        .unwrap_or_else(|| Err(Failure::new(ErrorCode::Internal, "write lost")))?;
    Ok(([(header::ETAG, etag(outcome.version))], Json(outcome)).into_response())
}

/// `PUT /api/v1/setpoints`: a list of writes, each atomic and versioned on its own. Always `200` with one
/// [`WriteOutcome`] per write, in order, once each is settled; a malformed list is refused whole.
#[utoipa::path(
    put,
    path = "/api/v1/setpoints",
    operation_id = "put_setpoints",
    tag = "setpoints",
    summary = "Sets the setpoints of many sensors, each write atomic and versioned on its own",
    description = "At most 500 writes. The answer lists each write's outcome, in request order, once each is settled: `status` is the HTTP status the same write alone would have had.",
    request_body = Vec<SetpointWrite>,
    responses(
        (status = 200, description = "Each write's outcome, in request order", body = Vec<WriteOutcome>),
        (status = 400, description = "`malformed_frame` (the body is not JSON) or `invalid_message` (wrong shape, a bad id or `If-Match`)", body = ApiError),
        WriterRefusals,
        (status = 413, description = "`frame_too_large`: the body exceeds the frame limit (64 KiB by default)", body = ApiError),
    ),
    security(("bearer" = []))
)]
async fn put_setpoints<B: Bus>(
    State(bridge): State<Arc<Bridge<B>>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    let author = writer(&bridge, &headers)?;
    let writes: Vec<SetpointWrite> = json_body(&bridge, body).await?;
    if writes.len() > MAX_GROUP_WRITES {
        return Err(Failure::new(
            ErrorCode::InvalidMessage,
            format!("more than {MAX_GROUP_WRITES} writes in one group write"),
        ));
    }
    let sensors: Vec<SensorId> = writes.iter().map(|w| w.sensor).collect();
    let outcomes: Vec<WriteOutcome> = write(&bridge, &author, writes)
        .await
        .into_iter()
        .zip(sensors)
        .map(|(outcome, sensor)| match outcome {
            Ok(setpoint) => WriteOutcome {
                sensor,
                status: StatusCode::OK.as_u16(),
                setpoint: Some(setpoint),
                error: None,
            },
            Err(f) => WriteOutcome {
                sensor,
                status: f.status.as_u16(),
                setpoint: None,
                error: Some(f.body),
            },
        })
        .collect();
    Ok(Json(outcomes).into_response())
}

/// A time in a query: ms since the epoch, or an RFC 3339 timestamp (`2026-11-25T08:00:00Z`).
fn parse_time(name: &str, raw: &str) -> Result<TimeMs, Failure> {
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

/// `GET /api/v1/sensors/{id}/history?since=…&until=…`: readings, decisions and setpoint changes (with
/// author) between the two times; by default the whole window the bridge keeps.
#[utoipa::path(
    get,
    path = "/api/v1/sensors/{id}/history",
    operation_id = "get_history",
    tag = "sensors",
    summary = "A sensor's readings, heater decisions and setpoint changes (with author) between two times",
    params(
        ("id" = i32, Path, description = "The sensor id (a 32-bit integer; anything else is `400 invalid_message`)"),
        ("since" = Option<String>, Query, description = "Start: ms since the epoch or an RFC 3339 time (`2026-11-25T08:00:00Z`); by default the start of the window the bridge keeps"),
        ("until" = Option<String>, Query, description = "End, in the same forms; by default now"),
    ),
    responses(
        (status = 200, description = "What the bridge keeps of the sensor between the two times", body = setpoint_wire::api::SensorHistory),
        (status = 400, description = "`invalid_message`: a bad id, time or query parameter, or `since` after `until`", body = ApiError),
        (status = 404, description = "`not_found`: the bridge has seen no reading, setpoint or command for it", body = ApiError),
        ReadFailures,
    )
)]
async fn history<B: Bus>(
    State(bridge): State<Arc<Bridge<B>>>,
    Path(id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, Failure> {
    let sensor = sensor_id(&id)?;
    let Query(query) = query.map_err(|e| Failure::new(ErrorCode::InvalidMessage, e.body_text()))?;
    if let Some(unknown) = query.keys().find(|k| !matches!(k.as_str(), "since" | "until")) {
        return Err(Failure::new(
            ErrorCode::InvalidMessage,
            format!(
                "unknown query parameter {:?}: use since and until",
                truncate(unknown)
            ),
        ));
    }
    let now = now_ms();
    let until = query
        .get("until")
        .map(|u| parse_time("until", u))
        .transpose()?
        .unwrap_or(now);
    let since = match query.get("since") {
        Some(s) => parse_time("since", s)?,
        None => until.saturating_sub(bridge.hub.backfill_ms()),
    };
    if since > until {
        return Err(Failure::new(ErrorCode::InvalidMessage, "since is after until"));
    }
    let history = bridge
        .hub
        .history(sensor, since, until)
        .ok_or_else(|| Failure::unknown_sensor(sensor))?;
    Ok(Json(history).into_response())
}

/// `GET /api/v1/schedules`: every weekly schedule, by name.
#[utoipa::path(
    get,
    path = "/api/v1/schedules",
    operation_id = "list_schedules",
    tag = "schedules",
    summary = "Every weekly schedule, by name",
    responses(
        (status = 200, description = "Every schedule, by name", body = Vec<setpoint_wire::schedule::Schedule>),
        ReadFailures,
    )
)]
async fn schedules<B: Bus>(State(bridge): State<Arc<Bridge<B>>>) -> Response {
    Json(bridge.hub.schedules()).into_response()
}

fn no_schedule(name: &str) -> Failure {
    Failure::new(
        ErrorCode::NotFound,
        format!("no schedule named {:?}", truncate(name)),
    )
}

/// `GET /api/v1/schedules/{name}`.
#[utoipa::path(
    get,
    path = "/api/v1/schedules/{name}",
    operation_id = "get_schedule",
    tag = "schedules",
    summary = "One weekly schedule",
    params(("name" = String, Path, description = "The schedule's name: 1 to 64 ASCII letters, digits, `.`, `_` or `-`")),
    responses(
        (status = 200, description = "The schedule", body = setpoint_wire::schedule::Schedule),
        (status = 404, description = "`not_found`: no schedule of that name", body = ApiError),
        ReadFailures,
    )
)]
async fn schedule<B: Bus>(
    State(bridge): State<Arc<Bridge<B>>>,
    Path(name): Path<String>,
) -> Result<Response, Failure> {
    let schedule = bridge.hub.schedule(&name).ok_or_else(|| no_schedule(&name))?;
    Ok(Json(schedule).into_response())
}

/// Publishes a schedules record and waits until the bridge reads it back (`done`), so a `GET` right after
/// the answer sees it. `202 unconfirmed` if it does not come back in time (it is saved).
async fn save_schedule<B: Bus>(
    bridge: &Bridge<B>,
    record: ScheduleRecord,
    done: impl Fn(&HubState) -> bool,
) -> Result<(), Failure> {
    let name = record.schedule.name.clone();
    let deleted = record.deleted;
    bridge.bus.publish(vec![record]).await.map_err(|e| match e {
        BusError::Unavailable(why) => {
            Failure::new(ErrorCode::BrokerUnavailable, format!("schedule not saved: {why}"))
        }
        BusError::Closed => Failure::new(ErrorCode::Internal, "schedule not saved: server is shutting down"),
    })?;
    tracing::info!(schedule = %name, deleted, "schedule saved");
    if bridge.hub.wait_for_schedules(SCHEDULE_READ_BACK, done).await {
        Ok(())
    } else {
        Err(Failure::new(
            ErrorCode::Unconfirmed,
            "schedule saved, but not yet read back: it shows in the list once it is",
        ))
    }
}

/// `PUT /api/v1/schedules/{name}`: saves (creates or replaces) a schedule. `422 invalid_schedule` names the
/// rule it breaks (the rules the scheduler compiles it with: time zone, times, days, setpoint limits).
#[utoipa::path(
    put,
    path = "/api/v1/schedules/{name}",
    operation_id = "put_schedule",
    tag = "schedules",
    summary = "Creates or replaces a weekly schedule; answers once it is read back",
    params(("name" = String, Path, description = "The schedule's name: 1 to 64 ASCII letters, digits, `.`, `_` or `-`")),
    request_body = ScheduleBody,
    responses(
        (status = 200, description = "Saved: the schedule, with its name", body = setpoint_wire::schedule::Schedule),
        (status = 202, description = "`unconfirmed`: saved, but not yet read back", body = ApiError),
        (status = 400, description = "`malformed_frame` (the body is not JSON) or `invalid_message` (wrong shape)", body = ApiError),
        WriterRefusals,
        (status = 413, description = "`frame_too_large`: the body exceeds the frame limit (64 KiB by default)", body = ApiError),
        (status = 422, description = "`invalid_schedule`: the schedule breaks a rule (name, time zone, times, days, setpoint limits); `message` names it", body = ApiError),
        SaveFailures,
    ),
    security(("bearer" = []))
)]
async fn put_schedule<B: Bus>(
    State(bridge): State<Arc<Bridge<B>>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    let author = writer(&bridge, &headers)?;
    let body: ScheduleBody = json_body(&bridge, body).await?;
    let schedule = body.named(&name);
    Program::compile(&schedule, &bridge.hub.limits())
        .map_err(|e| Failure::new(ErrorCode::InvalidSchedule, e.to_string()))?;
    let existing = bridge.hub.schedules();
    if existing.len() >= MAX_SCHEDULES && !existing.iter().any(|s| s.name == schedule.name) {
        let e = setpoint_schedule::ScheduleError::TooManySchedules { max: MAX_SCHEDULES };
        return Err(Failure::new(ErrorCode::InvalidSchedule, e.to_string()));
    }
    let record = ScheduleRecord {
        schedule: schedule.clone(),
        author,
        t_ms: now_ms(),
        deleted: false,
    };
    let expected = schedule.clone();
    save_schedule(&bridge, record, move |s| {
        s.schedule(&expected.name) == Some(&expected)
    })
    .await?;
    Ok(Json(schedule).into_response())
}

/// `DELETE /api/v1/schedules/{name}`: `204`; `404` if there is none of that name.
#[utoipa::path(
    delete,
    path = "/api/v1/schedules/{name}",
    operation_id = "delete_schedule",
    tag = "schedules",
    summary = "Deletes a weekly schedule",
    params(("name" = String, Path, description = "The schedule's name: 1 to 64 ASCII letters, digits, `.`, `_` or `-`")),
    responses(
        (status = 204, description = "Deleted (and read back)"),
        (status = 202, description = "`unconfirmed`: the deletion is saved, but not yet read back", body = ApiError),
        WriterRefusals,
        (status = 404, description = "`not_found`: no schedule of that name", body = ApiError),
        SaveFailures,
    ),
    security(("bearer" = []))
)]
async fn delete_schedule<B: Bus>(
    State(bridge): State<Arc<Bridge<B>>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let author = writer(&bridge, &headers)?;
    let schedule = bridge.hub.schedule(&name).ok_or_else(|| no_schedule(&name))?;
    let record = ScheduleRecord {
        schedule,
        author,
        t_ms: now_ms(),
        deleted: true,
    };
    save_schedule(&bridge, record, move |s| s.schedule(&name).is_none()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
