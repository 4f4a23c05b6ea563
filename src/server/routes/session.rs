//! `POST /v1/session` (sign in), `DELETE /v1/session` (sign out), `GET /v1/me`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::RngCore;

use crate::key::sha256_hex;
use crate::server::auth::SessionCaller;
use crate::server::error::ApiError;
use crate::server::json::ApiJson;
use crate::server::ratelimit::{self, Attempt, Limit, Outcome, Refusal};
use crate::server::wire::{LoginBody, MemberJson, rfc3339};
use crate::server::{AppState, net, password};
use crate::store::AuditEntry;

/// A new session token: 256 bits from the OS CSPRNG, base64url without padding.
fn new_token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The client's address as the sign-in limiter keys it (the peer's, or the one a trusted proxy
/// forwarded, an IPv6 client by its /64), or `local` when the app runs without a socket (tests
/// with `oneshot`).
pub struct ClientAddr(pub String);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientAddr(
            net::client_ip(peer, &parts.headers, state.net())
                .map_or_else(|| "local".to_owned(), ratelimit::address_key),
        ))
    }
}

/// An error answer with `Retry-After` (whole seconds).
fn retry_after(err: ApiError, wait: Duration) -> Response {
    let mut res = err.into_response();
    res.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(wait.as_secs().max(1)),
    );
    res
}

/// The actor of a sign-in audit row: the member's own (stored, validated) email, or
/// `unknown email`; what was typed is never stored, so neither a password typed into the
/// wrong field nor control characters reach the audit log.
fn actor(member_email: Option<String>) -> Option<String> {
    Some(member_email.unwrap_or_else(|| "unknown email".to_owned()))
}

/// Audit a refused sign-in once per limit, key and window (the limiter says which refusal is
/// the first), so a flood of refused requests is one row, not one row each.
async fn audit_refusal(
    state: &AppState,
    refusal: &Refusal,
    email: &str,
    addr: &str,
) -> Result<(), ApiError> {
    if !refusal.first_in_window {
        return Ok(());
    }
    let lookup = email.to_owned();
    let member_email = if refusal.limit == Limit::AddressPerMinute {
        None
    } else {
        state
            .blocking(move |s| s.member_credentials(&lookup))
            .await?
            .map(|c| c.member.email)
    };
    let mut detail = format!(
        "sign-ins refused by the limit {} (first from {addr}; retry after {} s); further refusals in this window are not recorded one by one",
        refusal.limit.name(),
        refusal.retry_after.as_secs()
    );
    if refusal.previous_window_refusals > 0 {
        detail.push_str(&format!(
            "; {} refused in the previous window",
            refusal.previous_window_refusals
        ));
    }
    let entry = AuditEntry {
        actor: if refusal.limit == Limit::AddressPerMinute {
            Some(format!("address {addr}"))
        } else {
            actor(member_email)
        },
        action: "login_refused".into(),
        key_id: None,
        detail: Some(detail),
    };
    tracing::warn!(limit = refusal.limit.name(), addr = %addr, "sign-ins refused");
    let now = state.now();
    state.blocking(move |s| s.audit(entry, now)).await
}

/// How long a sign-in waits for a free password check before it is answered 503.
const PASSWORD_CHECK_WAIT: Duration = Duration::from_millis(250);

/// `POST /v1/session`
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    let email = body.email.trim().to_owned();
    // Reserved before the password is checked, so parallel attempts cannot overtake the limits.
    let attempt = match Attempt::reserve(state.limiter(), &addr, &email, state.now()).await? {
        Ok(a) => a,
        Err(refusal) => {
            audit_refusal(&state, &refusal, &email, &addr).await?;
            let limited = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "too many sign-in attempts; try again in {} s",
                    refusal.retry_after.as_secs()
                ),
            );
            return Ok(retry_after(limited, refusal.retry_after));
        }
    };
    // At most this many argon2 checks (19 MiB each) at once; the permit is held by the check
    // itself, so a client that goes away does not free it before the memory is.
    let permit = match tokio::time::timeout(
        PASSWORD_CHECK_WAIT,
        Arc::clone(state.password_checks()).acquire_owned(),
    )
    .await
    {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return Err(ApiError::internal(&e)),
        Err(_) => {
            // `attempt` is dropped unsettled: it was not checked and does not count.
            return Ok(retry_after(
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded",
                    "too many sign-ins at once; try again in a moment",
                ),
                Duration::from_secs(1),
            ));
        }
    };
    let lookup_email = email.clone();
    let creds = state
        .blocking(move |s| s.member_credentials(&lookup_email))
        .await?;
    let password = body.password;
    let (member, known_email) = state
        .check_password(move || {
            let _permit = permit;
            match creds {
                Some(c) if password::verify(&password, &c.password_hash) => (Some(c.member), None),
                Some(c) => (None, Some(c.member.email)),
                None => {
                    password::verify_dummy(&password);
                    (None, None)
                }
            }
        })
        .await?;
    let now = state.now();
    let Some(member) = member else {
        attempt.finish(Outcome::Failure, state.now()).await?;
        state.metrics().sign_in_failed();
        let entry = AuditEntry {
            actor: actor(known_email),
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
    attempt.finish(Outcome::Success, state.now()).await?;
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
    let cookie = format!(
        "{}={token}; {}; Max-Age={max_age}",
        state.net().cookie_name(),
        state.net().cookie_attributes()
    );
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
    signed_out(&state)
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
    signed_out(&state)
}

/// `204` that also clears the session cookie.
fn signed_out(state: &AppState) -> Result<Response, ApiError> {
    let mut res = StatusCode::NO_CONTENT.into_response();
    let clear = format!(
        "{}=; {}; Max-Age=0",
        state.net().cookie_name(),
        state.net().cookie_attributes()
    );
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&clear).map_err(|e| ApiError::internal(&e))?,
    );
    Ok(res)
}

/// `GET /v1/me`
pub async fn me(caller: SessionCaller) -> Json<MemberJson> {
    Json(caller.member.into())
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
