//! The integration API (`/api/v1/`, authenticated by an API key) and `GET /healthz`.

use axum::Json;
use axum::extract::State;

use crate::server::AppState;
use crate::server::auth::IntegrationKey;

/// `GET /api/v1/account`: stands in for the commerce API; authenticating records the key's use.
pub async fn account(
    State(state): State<AppState>,
    key: IntegrationKey,
) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "account": {"name": state.account_name()},
        "key_id": key.key_id,
    }))
}

/// `GET /healthz`: `200` when the store answers, `503` (with `Retry-After`) when it does not, so
/// a load balancer stops sending to a replica that lost its database.
pub async fn healthz(State(state): State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match state.blocking(|s| s.ping()).await {
        Ok(()) => Json(serde_json::json!({"status": "ok"})).into_response(),
        Err(_) => {
            let err = crate::server::error::ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the key store does not answer",
            );
            ([(axum::http::header::RETRY_AFTER, "5")], err).into_response()
        }
    }
}
