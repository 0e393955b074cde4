//! The HTTP JSON API under `/api/v1`, for scripts, cron jobs and home automation: the same state the
//! dashboard shows, without speaking the WebSocket protocol. Reading is open, as on the WebSocket; errors
//! carry the WebSocket's error codes ([`ApiError`]).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use setpoint_control::SensorId;
use setpoint_wire::api::ApiError;
use setpoint_wire::ws::ErrorCode;

use super::Bridge;
use crate::bus::Bus;

/// The API's routes, to be merged into the bridge's router.
pub fn routes<B: Bus>() -> Router<Arc<Bridge<B>>> {
    Router::new()
        .route("/api/v1/sensors", get(sensors::<B>))
        .route("/api/v1/sensors/{id}", get(sensor::<B>))
        .route("/api/v1/sensors/{id}/setpoint", get(setpoint::<B>))
}

/// An error answer: status, code and a message for people.
struct Failure {
    status: StatusCode,
    code: ErrorCode,
    message: String,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = ApiError {
            code: self.code,
            message: self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

/// A sensor id from the path. Parsed here rather than by axum's `Path<i32>`, so a bad id gets the API's
/// error body, not a plain-text rejection.
fn sensor_id(raw: &str) -> Result<SensorId, Failure> {
    raw.parse().map_err(|_| Failure {
        status: StatusCode::BAD_REQUEST,
        code: ErrorCode::InvalidMessage,
        message: format!("sensor id must be a 32-bit integer, got {:?}", truncate(raw)),
    })
}

fn not_found(message: String) -> Failure {
    Failure {
        status: StatusCode::NOT_FOUND,
        code: ErrorCode::NotFound,
        message,
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// `GET /api/v1/sensors`: every sensor with its newest reading, setpoint in force and heater state.
async fn sensors<B: Bus>(State(bridge): State<Arc<Bridge<B>>>) -> Response {
    Json(bridge.hub.sensor_views()).into_response()
}

/// `GET /api/v1/sensors/{id}`.
async fn sensor<B: Bus>(
    State(bridge): State<Arc<Bridge<B>>>,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let sensor = sensor_id(&id)?;
    let view = bridge.hub.sensor_view(sensor).ok_or_else(|| {
        not_found(format!(
            "no sensor {sensor}: the bridge has seen no reading, setpoint or command for it"
        ))
    })?;
    Ok(Json(view).into_response())
}

/// `GET /api/v1/sensors/{id}/setpoint`: the setpoint in force, with its version (for `If-Match`) and author.
async fn setpoint<B: Bus>(
    State(bridge): State<Arc<Bridge<B>>>,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let sensor = sensor_id(&id)?;
    let sp = bridge
        .hub
        .setpoint(sensor)
        .ok_or_else(|| not_found(format!("sensor {sensor} has no setpoint")))?;
    Ok(Json(sp).into_response())
}
