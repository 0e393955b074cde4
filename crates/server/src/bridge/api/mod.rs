//! The HTTP JSON API under `/api/v1`, for scripts, cron jobs and home automation: the same state the
//! dashboard shows and the same writes, without speaking the WebSocket protocol.
//!
//! One implementation of each rule: a write goes through the hub exactly as a browser's does (validation by
//! the control crate's `Limits`, versions, the stream as arbiter, ack only once read back), and every
//! error carries the WebSocket's [`ErrorCode`], mapped onto an HTTP status by [`status_for`]. Reading is
//! open, as on the WebSocket; writing needs `Authorization: Bearer <token>`, names the token's name as
//! author, and is rate-limited per token and per address with the WebSocket's budgets (`guard.rs`). Bodies are bounded by
//! the WebSocket's frame limit; a browser page from another origin may not write (the WebSocket's origin
//! rule), since a bearer token in a script on a foreign page must not be usable by that page either.
//!
//! The API describes itself: `GET /api/v1/openapi.json` serves an OpenAPI 3.1 document generated from the
//! `#[utoipa::path]` annotation on each handler and the wire types' schemas ([`openapi`]).
//!
//! Layout: [`error`] (the one error answer), [`extract`] (what handlers take from a request),
//! [`setpoints`] and [`schedules`] (the handlers), [`openapi`] (the document).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::Router;
use setpoint_wire::ws::ErrorCode;

use super::hub::TABLES_PATIENCE;
use super::Bridge;
use crate::bus::Bus;

mod error;
mod extract;
pub mod openapi;
mod schedules;
mod setpoints;

pub use error::status_for;
pub(crate) use error::Failure;
use schedules::{delete_schedule, put_schedule, schedule, schedules};
use setpoints::{history, put_setpoint, put_setpoints, sensor, sensors, setpoint};

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
        crate::bridge::hub::writes::STILL_READING_TABLES,
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}
