//! The API's JSON shapes (spec/api.md), built from the store's records. Times are RFC 3339 UTC
//! to the second. A listed key never carries the key or its hash.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::key::KeyKind;
use crate::store::{KeyRecord, Member, Role};

/// RFC 3339 UTC, seconds.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `{"id","email","name","role"}`
#[derive(Debug, Serialize)]
pub struct MemberJson {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
}

impl From<Member> for MemberJson {
    fn from(m: Member) -> Self {
        MemberJson {
            id: m.id,
            email: m.email,
            name: m.name,
            role: m.role,
        }
    }
}

/// `created_by`.
#[derive(Debug, Serialize)]
pub struct CreatorJson {
    pub id: String,
    pub email: String,
    pub name: String,
}

/// One exposure.
#[derive(Debug, Serialize)]
pub struct ExposureJson {
    pub source: String,
    #[serde(rename = "where")]
    pub location: String,
    pub seen_at: String,
}

/// `exposures: {count, last}`.
#[derive(Debug, Serialize)]
pub struct ExposuresJson {
    pub count: u64,
    pub last: Option<ExposureJson>,
}

/// A key as listed.
#[derive(Debug, Serialize)]
pub struct KeyJson {
    pub id: String,
    pub memo: String,
    pub last4: String,
    pub kind: KeyKind,
    pub created_at: String,
    pub created_by: Option<CreatorJson>,
    pub last_used_at: Option<String>,
    /// For a replaced key in its grace period: when it stops working (else null).
    pub expires_at: Option<String>,
    pub exposures: ExposuresJson,
}

impl From<KeyRecord> for KeyJson {
    fn from(k: KeyRecord) -> Self {
        KeyJson {
            id: k.id,
            memo: k.memo,
            last4: k.last4,
            kind: k.kind,
            created_at: rfc3339(k.created_at),
            created_by: k.created_by.map(|m| CreatorJson {
                id: m.id,
                email: m.email,
                name: m.name,
            }),
            last_used_at: k.last_used_at.map(rfc3339),
            expires_at: if k.deleted_at.is_some() {
                None
            } else {
                k.expires_at.map(rfc3339)
            },
            exposures: ExposuresJson {
                count: k.exposures.count,
                last: k.exposures.last.map(|e| ExposureJson {
                    source: e.source,
                    location: e.location,
                    seen_at: rfc3339(e.seen_at),
                }),
            },
        }
    }
}

/// `201` of `POST /v1/keys`: the whole key, once.
#[derive(Debug, Serialize)]
pub struct CreatedJson {
    pub key: String,
    #[serde(flatten)]
    pub info: KeyJson,
}

/// `201` of a rotation.
#[derive(Debug, Serialize)]
pub struct RotatedJson {
    pub key: String,
    #[serde(flatten)]
    pub info: KeyJson,
    pub replaces: String,
    pub old_expires_at: String,
}

/// `POST /v1/session` body.
#[derive(Debug, Deserialize)]
pub struct LoginBody {
    pub email: String,
    pub password: String,
}

/// `POST /v1/keys` body.
#[derive(Debug, Deserialize)]
pub struct CreateBody {
    pub memo: String,
}

/// `POST /v1/keys/{id}/rotate` body.
#[derive(Debug, Default, Deserialize)]
pub struct RotateBody {
    pub memo: Option<String>,
    pub grace_seconds: Option<u64>,
    #[serde(default)]
    pub until_first_use: bool,
}

/// `POST /v1/keys/lookup` body.
#[derive(Debug, Deserialize)]
pub struct LookupBody {
    pub sha256: Vec<String>,
}

/// One lookup result.
#[derive(Debug, Serialize)]
pub struct LookupResultJson {
    pub sha256: String,
    pub status: crate::store::LookupStatus,
    pub key: Option<KeyJson>,
    pub deleted_at: Option<String>,
}

/// `POST /v1/keys/exposures` body.
#[derive(Debug, Deserialize)]
pub struct ExposuresBody {
    pub exposures: Vec<ExposureIn>,
}

/// One reported exposure.
#[derive(Debug, Deserialize)]
pub struct ExposureIn {
    pub sha256: String,
    pub source: String,
    #[serde(rename = "where")]
    pub location: String,
    pub seen_at: DateTime<Utc>,
}

/// One audit event.
#[derive(Debug, Serialize)]
pub struct AuditJson {
    pub at: String,
    pub actor: Option<String>,
    pub action: String,
    pub key_id: Option<String>,
    pub detail: Option<String>,
}
