//! The key routes (admin only): list, create, delete, lookup, rotate, exposures, audit.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Duration;

use crate::key::{KeyKind, generate};
use crate::server::AppState;
use crate::server::auth::Admin;
use crate::server::error::ApiError;
use crate::server::json::{ApiJson, MaybeJson};
use crate::server::wire::{
    AuditJson, CreateBody, CreatedJson, ExposuresBody, KeyJson, LookupBody, LookupResultJson,
    RotateBody, RotatedJson, rfc3339,
};
use crate::store::{ExposureReport, NewKey, Rotation, new_id};

/// Most hashes in one lookup, exposures in one report.
pub const MAX_BATCH: usize = 1000;
/// Longest grace period of a rotation: 30 days.
pub const MAX_GRACE_SECONDS: u64 = 30 * 24 * 3600;
/// With `until_first_use` and no `grace_seconds`, the old key still stops after 7 days.
pub const DEFAULT_FIRST_USE_BOUND_SECONDS: u64 = 7 * 24 * 3600;
/// Longest exposure `where` and `source`, in characters.
const MAX_WHERE: usize = 500;
/// How far ahead of the server's clock an exposure's `seen_at` may be.
const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);
/// Default and largest `limit` of the audit log.
const AUDIT_DEFAULT: usize = 100;
const AUDIT_MAX: usize = 1000;

pub(crate) use crate::key::contains_key;

/// Checks an exposure's free-text field (`what` names it in the error): trimmed, 1 to `max`
/// characters, no control characters, no key.
fn check_text(
    text: &str,
    what: &'static str,
    max: usize,
    code: &'static str,
) -> Result<String, ApiError> {
    let text = text.trim();
    let n = text.chars().count();
    if n == 0 || n > max {
        return Err(ApiError::bad_request(
            code,
            format!("{what} must be 1 to {max} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            code,
            format!("{what} must not contain control characters"),
        ));
    }
    if contains_key(text) {
        return Err(ApiError::bad_request(
            "key_in_where",
            format!("{what} contains an API key; it must be a redacted location, never the key"),
        ));
    }
    Ok(text.to_owned())
}

fn check_memo(memo: &str) -> Result<String, ApiError> {
    crate::store::check_memo(memo).map_err(|e| {
        let code = match e {
            crate::store::BadMemo::Key => "key_in_memo",
            _ => "invalid_memo",
        };
        ApiError::bad_request(code, e.to_string())
    })
}

fn check_sha256(h: &str) -> Result<(), ApiError> {
    if h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "invalid_sha256",
            "each sha256 must be 64 lowercase hex characters",
        ))
    }
}

fn check_batch(n: usize, what: &str) -> Result<(), ApiError> {
    if n == 0 || n > MAX_BATCH {
        return Err(ApiError::bad_request(
            "invalid_batch",
            format!("send 1 to {MAX_BATCH} {what}"),
        ));
    }
    Ok(())
}

/// `GET /v1/keys`
pub async fn list(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<serde_json::Value>, ApiError> {
    let keys = {
        let now = state.now();
        state.blocking(move |s| s.list_keys(now))
    }
    .await?;
    let keys: Vec<KeyJson> = keys.into_iter().map(KeyJson::from).collect();
    Ok(Json(serde_json::json!({ "keys": keys })))
}

/// `POST /v1/keys`
pub async fn create(
    State(state): State<AppState>,
    Admin(caller): Admin,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let memo = check_memo(&body.memo)?;
    let secret = generate();
    let new = NewKey {
        id: new_id("key_"),
        sha256: secret.sha256(),
        last4: secret.last4().to_owned(),
        memo,
        kind: KeyKind::Current,
        created_at: state.now(),
        created_by: Some(caller.member.id.clone()),
    };
    let actor = caller.member.email;
    let record = state.blocking(move |s| s.create_key(new, &actor)).await?;
    let body = CreatedJson {
        key: secret.expose().to_owned(),
        info: record.into(),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `DELETE /v1/keys/{id}`
pub async fn delete(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let actor = caller.member.email;
    let now = state.now();
    let deleted = state
        .blocking(move |s| s.delete_key(&id, now, &actor))
        .await?;
    match deleted {
        Some(_) => Ok(StatusCode::NO_CONTENT),
        None => Err(ApiError::not_found("key (unknown or already deleted)")),
    }
}

/// `POST /v1/keys/lookup`
pub async fn lookup(
    State(state): State<AppState>,
    Admin(caller): Admin,
    ApiJson(body): ApiJson<LookupBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_batch(body.sha256.len(), "hashes")?;
    for h in &body.sha256 {
        check_sha256(h)?;
    }
    let hashes = body.sha256;
    let actor = caller.member.email;
    let now = state.now();
    let (hashes, hits) = state
        .blocking(move |s| {
            let hits = s.lookup(&hashes, now, &actor)?;
            Ok((hashes, hits))
        })
        .await?;
    let results: Vec<LookupResultJson> = hashes
        .into_iter()
        .zip(hits)
        .map(|(sha256, hit)| {
            let deleted_at = hit.key.as_ref().and_then(|k| k.deleted_at).map(rfc3339);
            LookupResultJson {
                sha256,
                status: hit.status,
                key: hit.key.map(KeyJson::from),
                deleted_at,
            }
        })
        .collect();
    Ok(Json(serde_json::json!({ "results": results })))
}

/// `POST /v1/keys/{id}/rotate`
pub async fn rotate(
    State(state): State<AppState>,
    Admin(caller): Admin,
    Path(id): Path<String>,
    MaybeJson(body): MaybeJson<RotateBody>,
) -> Result<Response, ApiError> {
    let body = body.unwrap_or_default();
    let memo = body.memo.as_deref().map(check_memo).transpose()?;
    let grace = match (body.grace_seconds, body.until_first_use) {
        (Some(g), _) => g,
        (None, true) => DEFAULT_FIRST_USE_BOUND_SECONDS,
        (None, false) => 0,
    };
    if grace > MAX_GRACE_SECONDS {
        return Err(ApiError::bad_request(
            "invalid_grace",
            format!("grace_seconds must be 0 to {MAX_GRACE_SECONDS}"),
        ));
    }
    let now = state.now();
    let old_expires_at =
        now + Duration::seconds(i64::try_from(grace).expect("bounded by MAX_GRACE_SECONDS"));
    let secret = generate();
    let actor = caller.member.email;
    let creator = caller.member.id;
    let new_sha = secret.sha256();
    let new_last4 = secret.last4().to_owned();
    let until_first_use = body.until_first_use;
    let old_id = id.clone();
    let rotated = state
        .blocking(move |s| {
            let rotation = Rotation {
                old_id,
                new: NewKey {
                    id: new_id("key_"),
                    sha256: new_sha,
                    last4: new_last4,
                    // empty: the store keeps the old key's memo
                    memo: memo.unwrap_or_default(),
                    kind: KeyKind::Current,
                    created_at: now,
                    created_by: Some(creator),
                },
                old_expires_at,
                until_first_use,
            };
            s.rotate_key(rotation, &actor)
        })
        .await?;
    let Some(record) = rotated else {
        return Err(ApiError::not_found("key (unknown or already deleted)"));
    };
    let body = RotatedJson {
        key: secret.expose().to_owned(),
        info: record.into(),
        replaces: id,
        old_expires_at: rfc3339(old_expires_at),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `POST /v1/keys/exposures`
pub async fn exposures(
    State(state): State<AppState>,
    Admin(caller): Admin,
    ApiJson(body): ApiJson<ExposuresBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    check_batch(body.exposures.len(), "exposures")?;
    let now = state.now();
    let mut reports = Vec::with_capacity(body.exposures.len());
    for e in body.exposures {
        check_sha256(&e.sha256)?;
        let location = check_text(&e.location, "where", MAX_WHERE, "invalid_where")?;
        let source = check_text(&e.source, "source", MAX_WHERE, "invalid_source")?;
        if e.seen_at > now + MAX_CLOCK_SKEW {
            return Err(ApiError::bad_request(
                "invalid_seen_at",
                "seen_at is in the future (more than 5 minutes ahead of the server's clock)",
            ));
        }
        reports.push(ExposureReport {
            sha256: e.sha256,
            source,
            location,
            seen_at: e.seen_at,
        });
    }
    let actor = caller.member.email;
    let recorded = state
        .blocking(move |s| s.record_exposures(&reports, now, &actor))
        .await?;
    Ok(Json(serde_json::json!({ "recorded": recorded })))
}

/// `GET /v1/audit?limit=N&before=CURSOR`
pub async fn audit(
    State(state): State<AppState>,
    _admin: Admin,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = match query.get("limit") {
        None => AUDIT_DEFAULT,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=AUDIT_MAX).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_limit",
                    format!("limit must be 1 to {AUDIT_MAX}"),
                ));
            }
        },
    };
    let before = match query.get("before") {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_cursor",
                    "before must be the `next` cursor of an earlier page",
                ));
            }
        },
    };
    // One more than asked tells whether there is a next page.
    let mut events = state
        .blocking(move |s| s.audit_log(limit + 1, before))
        .await?;
    let next = if events.len() > limit {
        events.truncate(limit);
        events.last().map(|e| e.id.to_string())
    } else {
        None
    };
    let events: Vec<AuditJson> = events
        .into_iter()
        .map(|e| AuditJson {
            at: rfc3339(e.at),
            actor: e.actor,
            action: e.action,
            key_id: e.key_id,
            detail: e.detail,
        })
        .collect();
    Ok(Json(serde_json::json!({ "events": events, "next": next })))
}
