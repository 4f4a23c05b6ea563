//! Who is calling. [`SessionCaller`] (a team member, by `Authorization: Bearer <session token>`
//! or the `offkey_session` cookie), [`Admin`] (a session whose member is an admin) and
//! [`IntegrationKey`] (an API key, for `/api/v1/` only). A session token never opens `/api/v1/`
//! and an API key never opens `/v1/`: each is looked up only among its own kind.
//!
//! CSRF: a request authenticated by the cookie whose method changes state must carry
//! `X-Offkey-CSRF: 1` (a cross-site form cannot set a header), and with `--public-url` an
//! `Origin` equal to that URL's; the `Origin` check for every state change is in
//! [`super::middleware`].

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};

use super::AppState;
use super::error::ApiError;
use crate::key::sha256_hex;
use crate::store::{Member, Role};

/// The session cookie's name without an https `--public-url` (with one it is
/// `__Host-offkey_session`: [`super::net::NetSettings::cookie_name`]).
pub const SESSION_COOKIE: &str = "offkey_session";
/// The header a cookie-authenticated state change must carry, with value `1`.
pub const CSRF_HEADER: &str = "x-offkey-csrf";
/// The integration API's alternative key header.
pub const KEY_HEADER: &str = "x-offset-key";

/// A signed-in team member.
#[derive(Debug, Clone)]
pub struct SessionCaller {
    /// Who.
    pub member: Member,
    /// sha256 of the session token (to end it).
    pub token_sha256: String,
    /// Whether the token came in the cookie (and so the cookie must be cleared on logout).
    pub via_cookie: bool,
}

/// A signed-in admin.
#[derive(Debug, Clone)]
pub struct Admin(pub SessionCaller);

/// An integration authenticated by a working API key.
#[derive(Debug, Clone)]
pub struct IntegrationKey {
    /// The key's id.
    pub key_id: String,
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// The value of the session cookie called `name`, if sent.
pub fn session_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

impl FromRequestParts<AppState> for SessionCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (token, via_cookie) = match bearer(&parts.headers) {
            Some(t) => (t, false),
            None => match session_cookie(&parts.headers, state.net().cookie_name()) {
                Some(t) => (t, true),
                None => return Err(ApiError::unauthenticated()),
            },
        };
        if via_cookie
            && changes_state(&parts.method)
            && parts
                .headers
                .get(CSRF_HEADER)
                .is_none_or(|v| v.as_bytes() != b"1")
        {
            return Err(ApiError::csrf(
                "a change made with the session cookie must carry the header X-Offkey-CSRF: 1",
            ));
        }
        // Behind a public URL the origin is known, so a cookie change must say it comes from it
        // (the middleware only refuses a foreign Origin; here a missing one is refused too).
        if let Some(url) = &state.net().public_url {
            if via_cookie
                && changes_state(&parts.method)
                && !parts
                    .headers
                    .get(header::ORIGIN)
                    .and_then(|o| o.to_str().ok())
                    .is_some_and(|o| url.origin_matches(o))
            {
                return Err(ApiError::csrf(
                    "a change made with the session cookie must come from the public URL's origin (Origin header)",
                ));
            }
        }
        let token_sha256 = sha256_hex(token.as_bytes());
        let hash = token_sha256.clone();
        let now = state.now();
        let session = state
            // The clock is read before the hand-off, so the time is the request's.
            .blocking(move |s| s.session(&hash, now))
            .await?
            .ok_or_else(|| ApiError::invalid_credentials("session token"))?;
        Ok(SessionCaller {
            member: session.member,
            token_sha256,
            via_cookie,
        })
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = SessionCaller::from_request_parts(parts, state).await?;
        if caller.member.role != Role::Admin {
            return Err(ApiError::forbidden());
        }
        Ok(Admin(caller))
    }
}

impl FromRequestParts<AppState> for IntegrationKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = bearer(&parts.headers)
            .or_else(|| {
                parts
                    .headers
                    .get(KEY_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
            })
            .ok_or_else(|| {
                ApiError::new(
                    axum::http::StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "send an API key: Authorization: Bearer <key> or X-Offset-Key: <key>",
                )
            })?;
        let hash = sha256_hex(key.as_bytes());
        let now = state.now();
        // A store with an async client (PostgreSQL) checks the key right here, without a
        // hand-off to the blocking pool: the common case (a key used within the last minute)
        // ends here; a use to record goes on to `use_key` below, which checks again under a row
        // lock.
        if let Some(check) = state.store().check_key_async(&hash, now) {
            match check.await {
                Ok(crate::store::KeyCheck::Recent(key_id)) => {
                    state.metrics().key_used();
                    return Ok(IntegrationKey { key_id });
                }
                Ok(crate::store::KeyCheck::Refused) => {
                    return Err(ApiError::invalid_credentials("API key"));
                }
                Ok(crate::store::KeyCheck::Stale(_)) => {}
                Err(e) => {
                    state.metrics().store_error();
                    return Err(ApiError::from(e));
                }
            }
        }
        // Every store call may block (a reader can wait on the disk, a network store on the
        // network), so even the cheap check runs on the blocking pool, never on an async
        // worker; `use_key` checks first and writes only when a use must be recorded.
        let key_id = state
            .blocking(move |s| match s.use_key(&hash, now) {
                // The store cannot take the write that records the use (disk full, read-only):
                // a working key still authenticates; a later call records its use.
                Err(crate::store::StoreError::Unavailable(_)) => {
                    s.check_key(&hash, now).map(|check| match check {
                        crate::store::KeyCheck::Refused => None,
                        crate::store::KeyCheck::Recent(id) | crate::store::KeyCheck::Stale(id) => {
                            Some(id)
                        }
                    })
                }
                other => other,
            })
            .await?
            .ok_or_else(|| ApiError::invalid_credentials("API key"))?;
        state.metrics().key_used();
        Ok(IntegrationKey { key_id })
    }
}
