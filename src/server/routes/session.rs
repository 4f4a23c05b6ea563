//! `POST /v1/session` (sign in), `DELETE /v1/session` (sign out), `GET /v1/me`.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::RngCore;

use crate::key::sha256_hex;
use crate::server::auth::{SESSION_COOKIE, SessionCaller};
use crate::server::error::ApiError;
use crate::server::json::ApiJson;
use crate::server::wire::{LoginBody, MemberJson, rfc3339};
use crate::server::{AppState, password};
use crate::store::AuditEntry;

/// A new session token: 256 bits from the OS CSPRNG, base64url without padding.
fn new_token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The client's IP address (for rate limiting), or `local` when the app runs without a socket
/// (tests with `oneshot`).
pub struct ClientAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "local".to_owned(), |c| c.0.ip().to_string()),
        ))
    }
}

/// `POST /v1/session`
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    let email = body.email.trim().to_owned();
    if state.limiter().blocked(&email, &addr, Instant::now()) {
        return Err(ApiError::rate_limited());
    }
    let lookup_email = email.clone();
    let creds = state
        .blocking(move |s| s.member_credentials(&lookup_email))
        .await?;
    let password = body.password;
    let member = tokio::task::spawn_blocking(move || match creds {
        Some(c) if password::verify(&password, &c.password_hash) => Some(c.member),
        Some(_) => None,
        None => {
            password::verify_dummy(&password);
            None
        }
    })
    .await
    .map_err(|e| ApiError::internal(&e))?;
    let now = state.now();
    let Some(member) = member else {
        state.limiter().failed(&email, &addr, Instant::now());
        let entry = AuditEntry {
            // What was typed as the email is kept only if it looks like one (not, say, a
            // password or a key pasted into the wrong field).
            actor: Some(
                if email.contains('@')
                    && email.len() <= 200
                    && !email.contains(char::is_whitespace)
                    && !crate::server::routes::keys::contains_key(&email)
                {
                    email.clone()
                } else {
                    "(not an email)".to_owned()
                },
            ),
            action: "login_failed".into(),
            key_id: None,
            detail: Some(format!("from {addr}")),
        };
        state.blocking(move |s| s.audit(entry, now)).await?;
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "wrong email or password",
        ));
    };
    let token = new_token();
    let expires_at = now + state.session_ttl();
    let hash = sha256_hex(token.as_bytes());
    let member_id = member.id.clone();
    let entry = AuditEntry {
        actor: Some(member.email.clone()),
        action: "login".into(),
        key_id: None,
        detail: Some(format!("from {addr}")),
    };
    state
        .blocking(move |s| {
            s.create_session(&hash, &member_id, now, expires_at)?;
            s.audit(entry, now)
        })
        .await?;
    let max_age = state.session_ttl().num_seconds();
    let cookie =
        format!("{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}");
    let body = serde_json::json!({
        "token": token,
        "member": MemberJson::from(member),
        "expires_at": rfc3339(expires_at),
    });
    let mut res = Json(body).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::internal(&e))?,
    );
    Ok(res)
}

/// `DELETE /v1/session`
pub async fn logout(
    State(state): State<AppState>,
    caller: SessionCaller,
) -> Result<Response, ApiError> {
    let hash = caller.token_sha256.clone();
    let entry = AuditEntry {
        actor: Some(caller.member.email.clone()),
        action: "logout".into(),
        key_id: None,
        detail: None,
    };
    let now = state.now();
    state
        .blocking(move |s| {
            s.end_session(&hash)?;
            s.audit(entry, now)
        })
        .await?;
    Ok(signed_out())
}

/// `DELETE /v1/sessions`: end every session of the caller (a lost laptop, a shared machine).
pub async fn logout_everywhere(
    State(state): State<AppState>,
    caller: SessionCaller,
) -> Result<Response, ApiError> {
    let member_id = caller.member.id.clone();
    let actor = caller.member.email.clone();
    let now = state.now();
    state
        .blocking(move |s| {
            let n = s.end_member_sessions(&member_id)?;
            s.audit(
                AuditEntry {
                    actor: Some(actor),
                    action: "logout_all".into(),
                    key_id: None,
                    detail: Some(format!("{n} sessions ended")),
                },
                now,
            )
        })
        .await?;
    Ok(signed_out())
}

/// `204` that also clears the session cookie.
fn signed_out() -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("offkey_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    res
}

/// `GET /v1/me`
pub async fn me(caller: SessionCaller) -> Json<MemberJson> {
    Json(caller.member.into())
}
