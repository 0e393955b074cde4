//! The weekly schedules: list, read, save (read back before answering), delete.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use setpoint_schedule::Program;
use setpoint_wire::api::ApiError;
use setpoint_wire::schedule::{ScheduleBody, MAX_SCHEDULES};
use setpoint_wire::ws::ErrorCode;

use super::error::*;
use super::extract::*;
use super::openapi::SchedulePath;
use crate::bridge::hub::state::PublishFailure;
use crate::bridge::hub::HubState;
use crate::bridge::Bridge;
use crate::bus::{Bus, ScheduleRecord};
use crate::clock::now_ms;

/// How long a schedule's save waits to read its record back before answering `202 unconfirmed`.
pub(super) const SCHEDULE_READ_BACK: Duration = Duration::from_secs(5);

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
pub(super) async fn schedules<B: Bus>(State(bridge): State<Arc<Bridge<B>>>) -> Response {
    Json(bridge.hub.schedules()).into_response()
}

pub(super) fn no_schedule(name: &str) -> Failure {
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
    params(SchedulePath),
    responses(
        (status = 200, description = "The schedule", body = setpoint_wire::schedule::Schedule),
        (status = 404, description = "`not_found`: no schedule of that name", body = ApiError),
        ReadFailures,
    )
)]
pub(super) async fn schedule<B: Bus>(
    State(bridge): State<Arc<Bridge<B>>>,
    Path(name): Path<String>,
) -> Result<Response, Failure> {
    let schedule = bridge.hub.schedule(&name).ok_or_else(|| no_schedule(&name))?;
    Ok(Json(schedule).into_response())
}

/// Publishes a schedules record and waits until the bridge reads it back (`done`), so a `GET` right after
/// the answer sees it. `202 unconfirmed` if it does not come back in time (it is saved).
pub(super) async fn save_schedule<B: Bus>(
    bridge: &Bridge<B>,
    record: ScheduleRecord,
    done: impl Fn(&HubState) -> bool,
) -> Result<(), Failure> {
    let name = record.schedule.name.clone();
    let deleted = record.deleted;
    bridge.bus.publish(vec![record]).await.map_err(|e| {
        let (code, message) = PublishFailure::from(e).answer("schedule");
        Failure::new(code, message)
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
    params(SchedulePath),
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
pub(super) async fn put_schedule<B: Bus>(
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
    params(SchedulePath),
    responses(
        (status = 204, description = "Deleted (and read back)"),
        (status = 202, description = "`unconfirmed`: the deletion is saved, but not yet read back", body = ApiError),
        WriterRefusals,
        (status = 404, description = "`not_found`: no schedule of that name", body = ApiError),
        SaveFailures,
    ),
    security(("bearer" = []))
)]
pub(super) async fn delete_schedule<B: Bus>(
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
