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

/// `GET /healthz`
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}
