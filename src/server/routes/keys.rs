//! The key routes (admin only): list, create, delete, lookup, rotate, exposures, audit.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};

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
/// Longest memo, in characters.
pub const MAX_MEMO: usize = 100;
/// Longest grace period of a rotation: 30 days.
pub const MAX_GRACE_SECONDS: u64 = 30 * 24 * 3600;
/// With `until_first_use` and no `grace_seconds`, the old key still stops after 7 days.
pub const DEFAULT_FIRST_USE_BOUND_SECONDS: u64 = 7 * 24 * 3600;
/// Default and largest `limit` of the audit log.
const AUDIT_DEFAULT: usize = 100;
const AUDIT_MAX: usize = 1000;

/// Whether `text` holds a whole current key (so it must not be stored as a memo or location).
pub(crate) fn contains_key(text: &str) -> bool {
    let b = text.as_bytes();
    memchr::memmem::find_iter(b, crate::key::PREFIX.as_bytes()).any(|i| {
        b.get(i..i + crate::key::KEY_LEN)
            .is_some_and(crate::key::is_current)
    })
}

fn check_memo(memo: &str) -> Result<String, ApiError> {
    let memo = memo.trim();
    let n = memo.chars().count();
    if n == 0 || n > MAX_MEMO {
        return Err(ApiError::bad_request(
            "invalid_memo",
            format!("the memo must be 1 to {MAX_MEMO} characters"),
        ));
    }
    if memo.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_memo",
            "the memo must not contain control characters",
        ));
    }
    if contains_key(memo) {
        return Err(ApiError::bad_request(
            "key_in_memo",
            "the memo contains an API key; describe the key instead",
        ));
    }
    Ok(memo.to_owned())
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
    let keys = state.blocking(|s| s.list_keys(Utc::now())).await?;
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
        created_at: Utc::now(),
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
    let deleted = state
        .blocking(move |s| s.delete_key(&id, Utc::now(), &actor))
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
    let (hashes, hits) = state
        .blocking(move |s| {
            let hits = s.lookup(&hashes, Utc::now(), &actor)?;
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
    let now = Utc::now();
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
    let mut reports = Vec::with_capacity(body.exposures.len());
    for e in body.exposures {
        check_sha256(&e.sha256)?;
        let location = e.location.trim();
        let source = e.source.trim();
        if location.is_empty() || location.chars().count() > 500 {
            return Err(ApiError::bad_request(
                "invalid_where",
                "where must be 1 to 500 characters",
            ));
        }
        if source.is_empty() || source.chars().count() > 100 {
            return Err(ApiError::bad_request(
                "invalid_source",
                "source must be 1 to 100 characters",
            ));
        }
        if contains_key(location) || contains_key(source) {
            return Err(ApiError::bad_request(
                "key_in_where",
                "where and source must be redacted locations, never the key",
            ));
        }
        reports.push(ExposureReport {
            sha256: e.sha256,
            source: source.to_owned(),
            location: location.to_owned(),
            seen_at: e.seen_at,
        });
    }
    let actor = caller.member.email;
    let recorded = state
        .blocking(move |s| s.record_exposures(&reports, Utc::now(), &actor))
        .await?;
    Ok(Json(serde_json::json!({ "recorded": recorded })))
}

/// `GET /v1/audit?limit=N`
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
    let events = state.blocking(move |s| s.audit_log(limit)).await?;
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
    Ok(Json(serde_json::json!({ "events": events })))
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_keys_in_text() {
        assert!(super::contains_key(
            "see oc_live_0123456789ABCDEFGHIJKLMNOPQRSTUV1ggZdL here"
        ));
        assert!(!super::contains_key("oc_live_…gZdL"));
        assert!(!super::contains_key("Fulfillment integration"));
    }
}
