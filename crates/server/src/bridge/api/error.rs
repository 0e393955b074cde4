//! The API's one error answer (`Failure`: a status and the `ApiError` body), the status of each error
//! code, and the refusals the OpenAPI document lists per operation.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use setpoint_wire::api::ApiError;
use setpoint_wire::ws::{ErrorCode, ErrorMsg};

/// An error answer: the HTTP status and the one error body ([`ApiError`]), boxed: it may carry the
/// value in force, and every extractor returns `Result<_, Failure>`.
pub(crate) struct Failure {
    pub(super) status: StatusCode,
    pub(super) body: Box<ApiError>,
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
            body: Box::new(ApiError {
                code,
                message: setpoint_wire::clip(&message, setpoint_wire::MAX_MESSAGE_CHARS).to_owned(),
                current: None,
            }),
        }
    }

    /// A WebSocket `error` answer as an HTTP one: same code, message and value in force.
    pub(super) fn from_ws(error: ErrorMsg) -> Self {
        let mut failure = Self::new(error.code, error.message);
        failure.body.current = error.current;
        failure
    }

    /// A sensor id the bridge knows nothing about (the 404 of every per-sensor read).
    pub(super) fn unknown_sensor(sensor: i32) -> Self {
        Self::new(
            ErrorCode::NotFound,
            format!("no sensor {sensor}: the bridge has seen no reading, setpoint or command for it"),
        )
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(*self.body)).into_response();
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

/// What any write may be refused with before it is looked at (`writer`), for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only described, never built: the answers are `Failure`s
pub(super) enum WriterRefusals {
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
    #[response(
        status = 429,
        description = "`rate_limited`: too many writes with this token or from this address"
    )]
    RateLimited(ApiError),
}

/// Why a write that reached the bus may not be saved, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only described, never built: the answers are `Failure`s
pub(super) enum SaveFailures {
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
pub(super) enum ReadFailures {
    #[response(
        status = 503,
        description = "`broker_unavailable`: the bridge has just started and has not finished reading the setpoints and schedules (`Retry-After` says when to ask again)"
    )]
    NotReady(ApiError),
}
