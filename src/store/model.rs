//! The store's vocabulary: members, sessions, keys, exposures and audit events as the API
//! needs them. Backend-neutral: nothing here knows about SQL.

use chrono::{DateTime, Utc};

use crate::key::KeyKind;

/// A team member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May do everything.
    Admin,
    /// May sign in and see who they are; nothing about API keys.
    Member,
}

impl Role {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    /// Parse `admin` or `member`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

/// A team member (never with the password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// `mem_…`
    pub id: String,
    /// Sign-in name.
    pub email: String,
    /// Display name.
    pub name: String,
    /// What they may do.
    pub role: Role,
}

/// A member to add; the password is already hashed (argon2id PHC string).
#[derive(Debug, Clone)]
pub struct NewMember {
    /// `mem_…`
    pub id: String,
    /// Sign-in name.
    pub email: String,
    /// Display name.
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// argon2id PHC string.
    pub password_hash: String,
}

/// What sign-in needs: the member and their password hash.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The member.
    pub member: Member,
    /// argon2id PHC string.
    pub password_hash: String,
}

/// A live session.
#[derive(Debug, Clone)]
pub struct Session {
    /// Whose session.
    pub member: Member,
    /// When it ends by itself.
    pub expires_at: DateTime<Utc>,
}

/// Who created a key, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRef {
    /// `mem_…`
    pub id: String,
    /// Their email.
    pub email: String,
    /// Their name.
    pub name: String,
}

/// Where a key was seen leaked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposure {
    /// What found it (e.g. `offkey scan`).
    pub source: String,
    /// A redacted location, never the key.
    pub location: String,
    /// When the scanner saw it.
    pub seen_at: DateTime<Utc>,
}

/// A key's exposures, summarised for the list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExposureSummary {
    /// How many distinct places.
    pub count: u64,
    /// The most recently seen one.
    pub last: Option<Exposure>,
}

/// A key as the store knows it: never the key, never its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// `key_…`
    pub id: String,
    /// Last 4 characters of the key.
    pub last4: String,
    /// What it is for.
    pub memo: String,
    /// Current or legacy.
    pub kind: KeyKind,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// Who issued it (`None` for legacy keys).
    pub created_by: Option<MemberRef>,
    /// Last recorded use by the integration API.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was deleted or retired (a rotated key whose grace ran out reads as deleted then).
    pub deleted_at: Option<DateTime<Utc>>,
    /// The key this one replaced, for rotations.
    pub replaces: Option<String>,
    /// For a replaced key in its grace period: when it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// Where it was seen leaked.
    pub exposures: ExposureSummary,
}

/// A key to store (the caller computed hash and last 4 from the [`crate::key::Secret`]).
#[derive(Debug, Clone)]
pub struct NewKey {
    /// `key_…`
    pub id: String,
    /// Lowercase hex sha256 of the key.
    pub sha256: String,
    /// Last 4 characters.
    pub last4: String,
    /// What it is for.
    pub memo: String,
    /// Current or legacy.
    pub kind: KeyKind,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// The member who issued it (`None` for legacy imports).
    pub created_by: Option<String>,
}

/// Replace a key with a new one.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The key to replace.
    pub old_id: String,
    /// The new key; an empty `memo` keeps the old key's memo.
    pub new: NewKey,
    /// When the old key stops working at the latest (now = at once).
    pub old_expires_at: DateTime<Utc>,
    /// Retire the old key at the new key's first use (if that comes first).
    pub until_first_use: bool,
}

/// What a lookup found for one hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LookupStatus {
    /// The key works.
    Active,
    /// The key existed and was deleted, retired or expired.
    Revoked,
    /// No key with this hash was ever issued here.
    Unknown,
}

/// One lookup answer.
#[derive(Debug, Clone)]
pub struct LookupHit {
    /// Active, revoked or unknown.
    pub status: LookupStatus,
    /// The key, when known.
    pub key: Option<KeyRecord>,
}

/// An exposure reported by a scanner.
#[derive(Debug, Clone)]
pub struct ExposureReport {
    /// sha256 of the exposed key.
    pub sha256: String,
    /// What found it.
    pub source: String,
    /// Redacted location.
    pub location: String,
    /// When it was seen.
    pub seen_at: DateTime<Utc>,
}

/// An audit event to record.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// Who did it (member email, `cli`, …), if known.
    pub actor: Option<String>,
    /// `create`, `delete`, `rotate`, `lookup`, `login`, `login_failed`, …
    pub action: String,
    /// The key concerned, if any.
    pub key_id: Option<String>,
    /// Free text; never a key, token or password.
    pub detail: Option<String>,
}

/// A recorded audit event.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// Its place in the log (newer events have larger ids): the paging cursor.
    pub id: i64,
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

/// How many legacy keys an import added and skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCount {
    /// Newly stored.
    pub imported: usize,
    /// Already in the store (same hash).
    pub skipped: usize,
}

/// What a key's hash opens, without recording a use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    /// Unknown, deleted or expired.
    Refused,
    /// Works, and its use was recorded less than [`super::LAST_USED_RESOLUTION`] ago.
    Recent(String),
    /// Works, and a use should be recorded now ([`super::Store::use_key`]).
    Stale(String),
}

/// Longest memo, in characters.
pub const MAX_MEMO: usize = 100;

/// Why a memo is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadMemo {
    /// Empty after trimming, or too long.
    #[error("the memo must be 1 to {MAX_MEMO} characters")]
    Length,
    /// A tab, newline or other control character.
    #[error("the memo must not contain control characters")]
    Control,
    /// A whole key of either format.
    #[error("the memo contains an API key; describe the key instead")]
    Key,
}

/// A memo as stored: trimmed, 1 to [`MAX_MEMO`] characters, no control characters and no key
/// (current or legacy). The one check for every way a memo comes in (the API, an import).
pub fn check_memo(memo: &str) -> Result<String, BadMemo> {
    let memo = memo.trim();
    let n = memo.chars().count();
    if n == 0 || n > MAX_MEMO {
        return Err(BadMemo::Length);
    }
    if memo.chars().any(char::is_control) {
        return Err(BadMemo::Control);
    }
    if crate::key::contains_key(memo) {
        return Err(BadMemo::Key);
    }
    Ok(memo.to_owned())
}

/// One row of the sign-in limiter's shared counters (see [`super::Store::limiter_update`]). The
/// store keeps `state` as opaque text: what it means (the limits, the windows) is the
/// limiter's, written once for every backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimiterRow {
    /// What is counted, e.g. an address, an email or both.
    pub key: String,
    /// The limiter's state for that key; empty when there is none (the row is then deleted).
    pub state: String,
    /// After this the state holds nothing the limiter still needs: the store may delete it.
    pub expires_at: DateTime<Utc>,
}
