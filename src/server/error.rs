//! [`ApiError`]: every error answer of the API, as `{"error": {"code", "message"}}`. Messages are
//! written here, never copied from a request, so they cannot echo a key or a token.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::store::StoreError;

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// `snake_case` machine-readable code.
    pub code: &'static str,
    /// Human-readable message (never contains request data that could be a secret).
    pub message: String,
}

impl ApiError {
    /// Any status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no credentials.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "sign in first: send a session token (Authorization: Bearer) or the session cookie",
        )
    }

    /// 401: credentials that do not open this door.
    pub fn invalid_credentials(what: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            format!("the {what} is not valid here (unknown, expired, revoked or the wrong kind)"),
        )
    }

    /// 403: signed in but not allowed.
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only an admin may manage API keys",
        )
    }

    /// 403: a cookie-authenticated change without the CSRF header, or from another origin.
    pub fn csrf(message: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "csrf", message)
    }

    /// 404.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such {what}"),
        )
    }

    /// 413.
    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body is over 64 KiB",
        )
    }

    /// 429.
    pub fn rate_limited() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many failed sign-ins; wait a minute and try again",
        )
    }

    /// 500; the cause goes to the log, not to the caller.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": {"code": self.code, "message": self.message}})
    }

    /// 503: the store cannot keep a change or cannot be reached now; the cause goes to the log.
    pub fn store_unavailable(cause: &StoreError) -> Self {
        tracing::warn!(error = %cause, "key store unavailable; the request changed nothing");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the key store cannot store changes or does not answer right now (disk full, \
             read-only or unreachable); nothing was changed, try again shortly",
        )
    }
}

/// Seconds a `503` asks the caller to wait unless the handler chose another wait.
const RETRY_AFTER_SECS: u32 = 5;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unavailable = self.status == StatusCode::SERVICE_UNAVAILABLE;
        let mut res = (self.status, axum::Json(self.body())).into_response();
        if unavailable {
            res.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(RETRY_AFTER_SECS),
            );
        }
        res
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(_) | StoreError::Connect { .. } => {
                ApiError::store_unavailable(&err)
            }
            _ => ApiError::internal(&err),
        }
    }
}

/// The error code a bare status gets when something below the handlers (routing, body limit)
/// answered without a JSON body.
pub fn code_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthenticated",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        413 => "body_too_large",
        415 => "unsupported_media_type",
        429 => "rate_limited",
        _ if status.is_server_error() => "internal",
        _ => "error",
    }
}
