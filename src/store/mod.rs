//! The key store: members, sessions, API keys (by sha256 and last 4, never in plain text),
//! exposures and the audit log.
//!
//! [`Store`] is the one narrow interface the server and the CLI use: the operations the API
//! needs, not SQL. [`SqliteStore`] is the embedded default (WAL, `synchronous=FULL`, one writer
//! connection, a small pool of readers); a PostgreSQL backend can implement the same trait.
//! Every change is one transaction, and the audit event of a change is written in it.

mod error;
pub mod lifecycle;
mod model;
mod sqlite;

use std::path::PathBuf;

use chrono::{DateTime, Utc};

pub use error::StoreError;
pub use model::{
    AuditEntry, AuditEvent, BadMemo, Credentials, Exposure, ExposureReport, ExposureSummary,
    ImportCount, KeyCheck, KeyRecord, LookupHit, LookupStatus, MAX_MEMO, Member, MemberRef, NewKey,
    NewMember, Role, Rotation, Session, check_memo,
};
pub use sqlite::SqliteStore;

/// The exposure source of GitHub's secret scanning alerts. A key with such an exposure is
/// public: deleting its never-used replacement does not lift its deadline.
pub const PUBLIC_LEAK_SOURCE: &str = "github";

/// Result of a store operation.
pub type Result<T> = std::result::Result<T, StoreError>;

/// How long after a recorded use the next use is written again (coalescing writes of
/// `last_used_at` to at most one a minute per key).
pub const LAST_USED_RESOLUTION: chrono::Duration = chrono::Duration::seconds(60);

/// A session ends after this long without use (besides its fixed lifetime).
pub const SESSION_IDLE: chrono::Duration = chrono::Duration::hours(2);

/// The key store's operations. Implementations must be safe to share between threads; every
/// method is blocking (call it from `spawn_blocking` in async code).
pub trait Store: Send + Sync + 'static {
    /// Add a member. [`StoreError::DuplicateEmail`] if an active member has this email.
    fn add_member(&self, member: NewMember, now: DateTime<Utc>) -> Result<Member>;
    /// Active members, oldest first.
    fn list_members(&self) -> Result<Vec<Member>>;
    /// Remove the active member with this email or id and end their sessions; `false` if none.
    fn remove_member(&self, email_or_id: &str, now: DateTime<Utc>) -> Result<bool>;
    /// An active member's password hash, for sign-in.
    fn member_credentials(&self, email: &str) -> Result<Option<Credentials>>;

    /// Store a new session by the sha256 of its token.
    fn create_session(
        &self,
        token_sha256: &str,
        member_id: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()>;
    /// The live session with this token hash (not expired, used within [`SESSION_IDLE`],
    /// member not removed), recording the use (coalesced to [`LAST_USED_RESOLUTION`]).
    fn session(&self, token_sha256: &str, now: DateTime<Utc>) -> Result<Option<Session>>;
    /// End a session at once; `false` if there was none.
    fn end_session(&self, token_sha256: &str) -> Result<bool>;
    /// End every session of a member at once; answers how many there were.
    fn end_member_sessions(&self, member_id: &str) -> Result<usize>;
    /// Set an active member's password hash and end all their sessions, in one transaction;
    /// `false` if there is no active member with this email.
    fn set_password(&self, email: &str, password_hash: &str, now: DateTime<Utc>) -> Result<bool>;

    /// Store a newly issued key.
    fn create_key(&self, key: NewKey, actor: &str) -> Result<KeyRecord>;
    /// Store legacy keys; keys already present (same hash) are skipped. One transaction.
    fn import_legacy(&self, keys: Vec<NewKey>, actor: &str) -> Result<ImportCount>;
    /// Working keys, newest first (deleted and expired ones are not listed).
    fn list_keys(&self, now: DateTime<Utc>) -> Result<Vec<KeyRecord>>;
    /// Delete a working key for good; `None` if unknown or already deleted/expired. Deleting a
    /// replacement never used cancels its rotation (see [`lifecycle::cancel_on_delete`]): the
    /// old key is restored only while it still works, and the audit log says which happened.
    fn delete_key(&self, id: &str, now: DateTime<Utc>, actor: &str) -> Result<Option<KeyRecord>>;
    /// Issue a replacement for a working key; `None` if the old key is unknown or not working.
    fn rotate_key(&self, rotation: Rotation, actor: &str) -> Result<Option<KeyRecord>>;
    /// Status of each hash, in order. Never changes `last_used_at`.
    fn lookup(&self, hashes: &[String], now: DateTime<Utc>, actor: &str) -> Result<Vec<LookupHit>>;
    /// Whether a key works and whether its use needs recording; reads only (cheap enough for
    /// the hot path of the integration API).
    fn check_key(&self, sha256: &str, now: DateTime<Utc>) -> Result<KeyCheck>;
    /// Authenticate an integration request: the id of the working key with this hash, recording
    /// the use (coalesced to [`LAST_USED_RESOLUTION`]) and, on a rotated key's first use,
    /// retiring the key it replaced when asked to. `None` for unknown, deleted or expired keys.
    fn use_key(&self, sha256: &str, now: DateTime<Utc>) -> Result<Option<String>>;
    /// Record exposures; one per (key, location), repeats and unknown hashes ignored.
    /// Answers how many were new.
    fn record_exposures(
        &self,
        reports: &[ExposureReport],
        now: DateTime<Utc>,
        actor: &str,
    ) -> Result<usize>;

    /// Record an audit event on its own (sign-in and the like).
    fn audit(&self, entry: AuditEntry, now: DateTime<Utc>) -> Result<()>;
    /// The latest `limit` events older than the event `before` (all when `None`), newest
    /// first; each event's `id` is the cursor for the next page.
    fn audit_log(&self, limit: usize, before: Option<i64>) -> Result<Vec<AuditEvent>>;
}

/// Where the store lives by default: `<platform data dir>/offkey/keys.db`.
pub fn default_data_dir() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("offkey"))
}

/// The database file inside a data directory.
pub fn db_path(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("keys.db")
}

/// Open the store kept in `data_dir` (the embedded SQLite store, `keys.db`). The one place that
/// picks a backend, so callers hold only a `dyn Store`.
pub fn open(data_dir: &std::path::Path) -> Result<std::sync::Arc<dyn Store>> {
    Ok(std::sync::Arc::new(SqliteStore::open(&db_path(data_dir))?))
}

/// A fresh random id with a prefix, e.g. `key_3fQ…` (16 base62 characters, about 95 bits).
pub fn new_id(prefix: &str) -> String {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    let alphabet = crate::key::ALPHABET;
    let mut id = String::with_capacity(prefix.len() + 16);
    id.push_str(prefix);
    for _ in 0..16 {
        id.push(char::from(alphabet[rng.gen_range(0..alphabet.len())]));
    }
    id
}
