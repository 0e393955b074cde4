//! The sensors' reads (state, setpoint, history) and the setpoint writes, single and grouped; every write
//! goes through the hub as a browser's does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use setpoint_control::SensorId;

use setpoint_wire::api::{ApiError, WriteOutcome};
use setpoint_wire::write::{check_writes, Door, SetpointBody, SetpointWrite};
use setpoint_wire::ws::{ErrorCode, ServerMessage, SetpointMsg};

use super::error::*;
use super::extract::*;
use super::openapi::SensorPath;
use crate::bridge::hub::state::READ_BACK_PATIENCE_MS;
use crate::bridge::hub::writes::UNCONFIRMED;
use crate::bridge::Bridge;
use crate::bus::Bus;
use crate::clock::now_ms;

/// Runs writes through the hub as a quiet client and waits for each answer (in request order). A write
/// whose answer does not come within the read-back patience (and a little) is `unconfirmed`: saved, but
/// not known to have taken effect.
pub(super) async fn write<B: Bus>(
    bridge: &Bridge<B>,
    author: &str,
    writes: Vec<SetpointWrite>,
) -> Vec<Result<SetpointMsg, Failure>> {
    // The hub answers by request id; over HTTP the answer's place in the list is its id.
    let requests: Vec<SetpointWrite> = writes
        .iter()
        .enumerate()
        .map(|(i, w)| SetpointWrite {
            request_id: i.to_string(),
            ..w.clone()
        })
        .collect();
    let mut client = bridge.hub.register_quiet();
    bridge
        .hub
        .write_setpoints(&bridge.bus, client.id, &requests, author)
        .await;
    let mut answers: Vec<Option<Result<SetpointMsg, Failure>>> = (0..writes.len()).map(|_| None).collect();
    let patience =
        Duration::from_millis(READ_BACK_PATIENCE_MS as u64) + 2 * crate::bridge::hub::STATUS_INTERVAL;
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
        .map(|a| a.unwrap_or_else(|| Err(Failure::new(ErrorCode::Unconfirmed, UNCONFIRMED))))
        .collect()
}

/// `GET /api/v1/sensors?limit&after&filter`: a page of sensors by id with their newest reading, setpoint
/// in force and heater state. `X-Total-Count` is how many pass the filters; `Link: <…>; rel="next"` is
/// the next page's address, absent on the last.
#[utoipa::path(
    get,
    path = "/api/v1/sensors",
    operation_id = "list_sensors",
    tag = "sensors",
    summary = "A page of sensors with their newest reading, setpoint in force and heater state",
    params(SensorsQuery),
    responses(
        (status = 200, description = "The sensors of this page, by id", body = Vec<setpoint_wire::api::SensorView>,
            headers(
                ("X-Total-Count" = u64, description = "How many sensors pass the filters (all pages)"),
                ("Link" = Option<String>, description = "`<…>; rel=\"next\"`: the next page, with the same limit and filters; absent on the last page"),
            )),
        (status = 400, description = "`invalid_message`: a bad limit, `after` or filter, or an unknown query parameter", body = ApiError),
        ReadFailures,
    )
)]
pub(super) async fn sensors<B: Bus>(
    State(bridge): State<Arc<Bridge<B>>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, Failure> {
    let Query(query) = query.map_err(|e| Failure::new(ErrorCode::InvalidMessage, e.body_text()))?;
    let asked = SensorsQuery::parse(&query)?;
    let page = bridge.hub.sensor_page(asked.after, asked.limit, &asked.filters);
    let mut response = Json(page.sensors).into_response();
    let headers = response.headers_mut();
    headers.insert("x-total-count", HeaderValue::from(page.matching));
    if let Some(next) = page.next_after {
        let link = format!("<{}>; rel=\"next\"", asked.next_page(next));
        if let Ok(value) = HeaderValue::from_str(&link) {
            headers.insert(header::LINK, value);
        }
    }
    Ok(response)
}

/// `GET /api/v1/sensors/{id}`.
#[utoipa::path(
    get,
    path = "/api/v1/sensors/{id}",
    operation_id = "get_sensor",
    tag = "sensors",
    summary = "One sensor: its newest reading, setpoint in force, heater state and next scheduled step",
    params(SensorPath),
    responses(
        (status = 200, description = "The sensor", body = setpoint_wire::api::SensorView),
        (status = 400, description = "`invalid_message`: the id is not a 32-bit integer", body = ApiError),
        (status = 404, description = "`not_found`: the bridge has seen no reading, setpoint or command for it", body = ApiError),
        ReadFailures,
    )
)]
pub(super) async fn sensor<B: Bus>(
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
    params(SensorPath),
    responses(
        (status = 200, description = "The setpoint in force", body = SetpointMsg, headers(("ETag" = String, description = "The setpoint's version as an entity tag, e.g. `\"3\"`"))),
        (status = 400, description = "`invalid_message`: the id is not a 32-bit integer", body = ApiError),
        (status = 404, description = "`not_found`: the sensor has no setpoint", body = ApiError),
        ReadFailures,
    )
)]
pub(super) async fn setpoint<B: Bus>(
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
        SensorPath,
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
pub(super) async fn put_setpoint<B: Bus>(
    State(bridge): State<Arc<Bridge<B>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    let author = writer(&bridge, &headers)?;
    let sensor = sensor_id(&id)?;
    let base_version = if_match(&headers)?;
    let body: SetpointBody = json_body(&bridge, body).await?;
    let write = body.write(sensor, base_version);
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
pub(super) async fn put_setpoints<B: Bus>(
    State(bridge): State<Arc<Bridge<B>>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Failure> {
    let author = writer(&bridge, &headers)?;
    let writes: Vec<SetpointWrite> = json_body(&bridge, body).await?;
    check_writes(&writes, Door::Http).map_err(|why| Failure::new(ErrorCode::InvalidMessage, why))?;
    let asked: Vec<(String, SensorId)> = writes.iter().map(|w| (w.request_id.clone(), w.sensor)).collect();
    let outcomes: Vec<WriteOutcome> = write(&bridge, &author, writes)
        .await
        .into_iter()
        .zip(asked)
        .map(|(outcome, (request_id, sensor))| match outcome {
            Ok(setpoint) => WriteOutcome {
                request_id,
                sensor,
                status: StatusCode::OK.as_u16(),
                setpoint: Some(setpoint),
                error: None,
            },
            Err(f) => WriteOutcome {
                request_id,
                sensor,
                status: f.status.as_u16(),
                setpoint: None,
                error: Some(*f.body),
            },
        })
        .collect();
    Ok(Json(outcomes).into_response())
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
        SensorPath,
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
pub(super) async fn history<B: Bus>(
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
