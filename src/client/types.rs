//! The key service's JSON shapes as the client reads and writes them (mirrors spec/api.md).
//! A whole key only ever arrives inside [`crate::key::Secret`], whose `Debug` is redacted.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::key::{KeyKind, Secret};

/// A team member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// `mem_…`
    pub id: String,
    /// Sign-in email.
    pub email: String,
    /// Display name.
    pub name: String,
    /// `admin` or `member`.
    pub role: String,
}

/// Who created a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Creator {
    /// `mem_…`
    pub id: String,
    /// Their email.
    pub email: String,
    /// Their name.
    pub name: String,
}

/// One place a key was seen leaked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExposureSeen {
    /// What found it.
    pub source: String,
    /// Redacted location.
    #[serde(rename = "where")]
    pub location: String,
    /// When it was seen.
    pub seen_at: DateTime<Utc>,
}

/// A key's exposures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exposures {
    /// Distinct places.
    pub count: u64,
    /// The latest one.
    pub last: Option<ExposureSeen>,
}

/// A key as listed: never the key, never its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// `key_…`
    pub id: String,
    /// What it is for.
    pub memo: String,
    /// Last 4 characters.
    pub last4: String,
    /// Current or legacy.
    pub kind: KeyKind,
    /// When issued.
    pub created_at: DateTime<Utc>,
    /// Who issued it; `None` for legacy keys.
    pub created_by: Option<Creator>,
    /// Last use by an integration.
    pub last_used_at: Option<DateTime<Utc>>,
    /// For a replaced key in its grace period: when it stops working.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Where it was seen leaked.
    #[serde(default)]
    pub exposures: Exposures,
}

impl ApiKey {
    /// `oc_live_…last4` or `…last4`.
    pub fn redacted(&self) -> String {
        crate::key::redacted(self.kind, &self.last4)
    }
}

#[derive(Deserialize)]
struct RawCreated {
    key: String,
    #[serde(flatten)]
    info: ApiKey,
}

/// The answer to `POST /v1/keys`: the whole key, this once.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawCreated")]
pub struct CreatedKey {
    /// The key itself.
    pub key: Secret,
    /// The key as listed.
    pub info: ApiKey,
}

impl TryFrom<RawCreated> for CreatedKey {
    type Error = crate::key::ParseKeyError;
    fn try_from(raw: RawCreated) -> Result<Self, Self::Error> {
        Ok(CreatedKey {
            key: Secret::parse(&raw.key)?,
            info: raw.info,
        })
    }
}

#[derive(Deserialize)]
struct RawRotated {
    key: String,
    #[serde(flatten)]
    info: ApiKey,
    replaces: String,
    old_expires_at: DateTime<Utc>,
}

/// The answer to a rotation.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawRotated")]
pub struct RotatedKey {
    /// The new key itself.
    pub key: Secret,
    /// The new key as listed.
    pub info: ApiKey,
    /// The old key's id.
    pub replaces: String,
    /// When the old key stops working at the latest.
    pub old_expires_at: DateTime<Utc>,
}

impl TryFrom<RawRotated> for RotatedKey {
    type Error = crate::key::ParseKeyError;
    fn try_from(raw: RawRotated) -> Result<Self, Self::Error> {
        Ok(RotatedKey {
            key: Secret::parse(&raw.key)?,
            info: raw.info,
            replaces: raw.replaces,
            old_expires_at: raw.old_expires_at,
        })
    }
}

/// How to rotate.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RotateRequest {
    /// A new memo (default: the old key's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
    /// How long the old key keeps working (default 0: retired at once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_seconds: Option<u64>,
    /// Retire the old key at the new key's first use (grace is then the upper bound).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub until_first_use: bool,
}

/// What the service knows of a hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LookupStatus {
    /// Works.
    Active,
    /// Deleted, retired or expired.
    Revoked,
    /// Never issued here.
    Unknown,
}

/// One lookup answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupResult {
    /// The hash asked about.
    pub sha256: String,
    /// Active, revoked or unknown.
    pub status: LookupStatus,
    /// The key, when known.
    pub key: Option<ApiKey>,
    /// When it was revoked.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// An exposure to report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExposureReport {
    /// sha256 of the key.
    pub sha256: String,
    /// What found it (e.g. `offkey scan`).
    pub source: String,
    /// A redacted location such as `src/app.py:12 @ 3f2a9c1`; never the key.
    #[serde(rename = "where")]
    pub location: String,
    /// When it was seen.
    pub seen_at: DateTime<Utc>,
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: Option<String>,
    /// What.
    pub action: String,
    /// Which key.
    pub key_id: Option<String>,
    /// More.
    pub detail: Option<String>,
}

/// The answer to a sign-in.
#[derive(Debug, Clone, Deserialize)]
pub struct Login {
    /// The session token.
    pub token: super::SessionToken,
    /// Who signed in.
    pub member: Member,
    /// When the session ends by itself.
    pub expires_at: DateTime<Utc>,
}

/// The integration API's answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Account {
    /// The account.
    pub account: AccountName,
    /// Which key authenticated.
    pub key_id: String,
}

/// `{"name": …}`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AccountName {
    /// Account name.
    pub name: String,
}
