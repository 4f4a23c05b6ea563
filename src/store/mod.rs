//! The key store: members, sessions, API keys (by sha256 and last 4, never in plain text),
//! exposures and the audit log.
//!
//! [`Store`] is the one narrow interface the server and the CLI use: the operations the API
//! needs, not SQL, with its atomicity written on it. Backends live side by side:
//! [`SqliteStore`] (`sqlite/`) is the embedded default (WAL, `synchronous=FULL`, one writer
//! connection, a small pool of readers); [`PgStore`] (`postgres/`) lets any number of
//! `offkey serve` replicas share one PostgreSQL database. The key lifecycle rules are in
//! [`lifecycle`], once for both; `conformance` is the suite every backend passes.

pub mod copy;
mod error;
pub mod lifecycle;
mod model;
mod postgres;
mod sqlite;

use std::path::PathBuf;

use chrono::{DateTime, Utc};

pub use error::StoreError;
pub use model::{
    AuditEntry, AuditEvent, BadMemo, Credentials, Exposure, ExposureReport, ExposureSummary,
    ImportCount, KeyCheck, KeyRecord, LimiterRow, LookupHit, LookupStatus, MAX_MEMO, Member,
    MemberRef, NewKey, NewMember, Role, Rotation, Session, check_memo,
};
pub use postgres::{DbUrl, PgStore};
pub use sqlite::SqliteStore;

/// The exposure source of GitHub's secret scanning alerts. A key with such an exposure is
/// public: deleting its never-used replacement does not lift its deadline.
pub const PUBLIC_LEAK_SOURCE: &str = "github";

#[cfg(test)]
pub(crate) mod conformance;

/// Result of a store operation.
pub type Result<T> = std::result::Result<T, StoreError>;

/// How long after a recorded use the next use is written again (coalescing writes of
/// `last_used_at` to at most one a minute per key).
pub const LAST_USED_RESOLUTION: chrono::Duration = chrono::Duration::seconds(60);

/// A session ends after this long without use (besides its fixed lifetime).
pub const SESSION_IDLE: chrono::Duration = chrono::Duration::hours(2);

/// The key store's operations. Implementations must be safe to share between threads; every
/// method is blocking (call it from `spawn_blocking` in async code).
///
/// # The contract every backend keeps
///
/// - **Atomic.** Each method is one transaction: it happens whole or not at all, and the audit
///   event of a change is written in the same transaction. An answered change is durable (it
///   survives a crash of the process, and of the machine for SQLite's `synchronous=FULL` and
///   PostgreSQL's default `synchronous_commit`).
/// - **Linearizable per key, member and session.** Several store instances may share one
///   database (replicas of `offkey serve` on PostgreSQL, or two processes on one SQLite file).
///   A change that returned on one instance is seen by every call that *starts* afterwards on
///   any instance: a key deleted on replica A is refused by `use_key` on replica B on the very
///   next request. Calls that overlap in time behave as if they ran one after the other, in
///   some order; which order is not promised.
/// - **No lost updates.** Read-decide-write methods (`add_member`, `delete_key`, `rotate_key`,
///   `use_key`'s first use, `set_password`) decide on a row they hold locked (PostgreSQL:
///   `SELECT … FOR UPDATE`; SQLite: the one writer), so two of them racing on the same row
///   never both act on the same old state.
/// - **Errors change nothing.** A method that returns `Err` left the store as it was.
///
/// Below, "others see" says what a concurrent caller on another instance may observe.
pub trait Store: Send + Sync + 'static {
    /// Whether the database answers (a trivial query); for `GET /healthz`. Changes nothing.
    fn ping(&self) -> Result<()>;

    /// Add a member. [`StoreError::DuplicateEmail`] if an active member has this email
    /// (case-insensitively). Others see the member whole or not at all; of two concurrent adds
    /// of one email exactly one succeeds, the other gets `DuplicateEmail`.
    fn add_member(&self, member: NewMember, now: DateTime<Utc>) -> Result<Member>;
    /// Active members, oldest first. One consistent snapshot.
    fn list_members(&self) -> Result<Vec<Member>>;
    /// Remove the active member with this email or id and end their sessions, in one
    /// transaction; `false` if none. Once it returned, no instance accepts their sessions.
    fn remove_member(&self, email_or_id: &str, now: DateTime<Utc>) -> Result<bool>;
    /// An active member's password hash, for sign-in. Reads only.
    fn member_credentials(&self, email: &str) -> Result<Option<Credentials>>;

    /// Store a new session by the sha256 of its token (and sweep ended ones). Once it returned,
    /// every instance accepts the session.
    fn create_session(
        &self,
        token_sha256: &str,
        member_id: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()>;
    /// The live session with this token hash (not expired, used within [`SESSION_IDLE`],
    /// member not removed), recording the use (coalesced to [`LAST_USED_RESOLUTION`]: at most
    /// one write a minute per session, whichever instance serves it). The recorded use is
    /// conditional on the session still being there, so a logout that returned on another
    /// instance wins: the answer is `None`.
    fn session(&self, token_sha256: &str, now: DateTime<Utc>) -> Result<Option<Session>>;
    /// End a session at once; `false` if there was none. Once it returned, no instance accepts
    /// the token.
    fn end_session(&self, token_sha256: &str) -> Result<bool>;
    /// End every session of a member at once; answers how many there were.
    fn end_member_sessions(&self, member_id: &str) -> Result<usize>;
    /// Set an active member's password hash and end all their sessions, in one transaction;
    /// `false` if there is no active member with this email.
    fn set_password(&self, email: &str, password_hash: &str, now: DateTime<Utc>) -> Result<bool>;

    /// Store a newly issued key. [`StoreError::DuplicateKey`] if its hash is stored. Once it
    /// returned, every instance accepts the key.
    fn create_key(&self, key: NewKey, actor: &str) -> Result<KeyRecord>;
    /// Store legacy keys; keys already present (same hash) are skipped. One transaction: others
    /// see all of them or none; two concurrent imports of one key store it once.
    fn import_legacy(&self, keys: Vec<NewKey>, actor: &str) -> Result<ImportCount>;
    /// Working keys, newest first (deleted and expired ones are not listed). One consistent
    /// snapshot.
    fn list_keys(&self, now: DateTime<Utc>) -> Result<Vec<KeyRecord>>;
    /// Delete a working key for good; `None` if unknown or already deleted/expired. Deleting a
    /// replacement never used cancels its rotation (see [`lifecycle::cancel_on_delete`]): the
    /// old key is restored only while it still works, and the audit log says which happened.
    /// The key row is locked for the decision: of two concurrent deletes one answers `Some`;
    /// against a concurrent [`Store::use_key`] either the use happened first (and counted) or
    /// the use is refused; no use succeeds on any instance once the delete returned.
    fn delete_key(&self, id: &str, now: DateTime<Utc>, actor: &str) -> Result<Option<KeyRecord>>;
    /// Issue a replacement for a working key; `None` if the old key is unknown or not working.
    /// The old key's row is locked for the decision, so concurrent rotations of one key each
    /// see the deadline the previous one set (deadlines only move earlier, see
    /// [`lifecycle::rotated_deadline`]).
    fn rotate_key(&self, rotation: Rotation, actor: &str) -> Result<Option<KeyRecord>>;
    /// Status of each hash, in order, from one snapshot. Never changes `last_used_at`; writes
    /// one audit event.
    fn lookup(&self, hashes: &[String], now: DateTime<Utc>, actor: &str) -> Result<Vec<LookupHit>>;
    /// Whether a key works and whether its use needs recording; reads only (cheap enough for
    /// the hot path of the integration API). Reads committed state, so a delete that returned
    /// anywhere is seen; [`Store::use_key`] is built on it and decides under a row lock when it
    /// must write.
    fn check_key(&self, sha256: &str, now: DateTime<Utc>) -> Result<KeyCheck>;
    /// [`Store::check_key`] as a future that blocks no thread, for a store whose client is
    /// async (PostgreSQL), so the integration API's hot read runs on the async worker without a
    /// hand-off to the blocking pool. The same answer from the same committed state: nothing
    /// is cached. `None` (the default): call `check_key` on the blocking pool.
    fn check_key_async(
        &self,
        sha256: &str,
        now: DateTime<Utc>,
    ) -> Option<std::pin::Pin<Box<dyn Future<Output = Result<KeyCheck>> + Send + 'static>>> {
        let _ = (sha256, now);
        None
    }
    /// Authenticate an integration request: the id of the working key with this hash, recording
    /// the use (coalesced to [`LAST_USED_RESOLUTION`], shared by all instances: at most one write
    /// a minute per key) and, on a rotated key's first use, retiring the key it replaced when
    /// asked to: exactly once, whichever instances race on the first use. `None` for unknown,
    /// deleted or expired keys. Every answer is decided against the committed state at the
    /// moment of the call: a key deleted before the call started is refused.
    fn use_key(&self, sha256: &str, now: DateTime<Utc>) -> Result<Option<String>>;
    /// Record exposures; one per (key, location), repeats and unknown hashes ignored, also
    /// between concurrent callers. Answers how many were new.
    fn record_exposures(
        &self,
        reports: &[ExposureReport],
        now: DateTime<Utc>,
        actor: &str,
    ) -> Result<usize>;

    /// Record an audit event on its own (sign-in and the like).
    fn audit(&self, entry: AuditEntry, now: DateTime<Utc>) -> Result<()>;
    /// The latest `limit` events older than the event `before` (all when `None`), newest
    /// first; each event's `id` is the cursor for the next page. Ids grow with insertion
    /// order; on PostgreSQL an event still being committed on another replica while a page is
    /// read may land just below that page's cursor (paging never shows an event twice).
    fn audit_log(&self, limit: usize, before: Option<i64>) -> Result<Vec<AuditEvent>>;

    /// Change the sign-in limiter's rows with these keys (distinct) in one transaction: each row
    /// is read (a missing one as an empty state) and **locked**, `f` gets them in the order of
    /// `keys`, `f` decides on all of them at once and
    /// changes them in place, and they are written back (a row left with an empty state is
    /// deleted). Of concurrent calls on any instances that share a key, each sees the rows as the
    /// previous one left them, so a limit checked and counted in `f` can never be overtaken by
    /// parallel requests on other replicas (PostgreSQL: every row locked by one upsert, in
    /// sorted key order; SQLite: the one writer). `f` may run more than once (a transaction lost to a
    /// deadlock is run again whole), so it must only change what it is given. Rows of other
    /// keys past their `expires_at` may be swept. Others see the rows as before or as after.
    fn limiter_update(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
        f: &mut dyn FnMut(&mut [LimiterRow]),
    ) -> Result<()>;
}

/// The keys of a [`Store::limiter_update`] call sorted and without repeats: rows are always
/// locked in this order, so two calls never wait on each other in a cycle.
pub(crate) fn limiter_keys(keys: &[String]) -> Vec<String> {
    let mut keys = keys.to_vec();
    keys.sort();
    keys.dedup();
    keys
}

/// The rows read in sorted key order, put in the caller's order (a key not read gets an empty
/// state).
pub(crate) fn limiter_rows(keys: &[String], mut read: Vec<LimiterRow>) -> Vec<LimiterRow> {
    keys.iter()
        .map(|k| match read.iter().position(|r| &r.key == k) {
            Some(i) => read.swap_remove(i),
            None => LimiterRow {
                key: k.clone(),
                state: String::new(),
                expires_at: DateTime::<Utc>::UNIX_EPOCH,
            },
        })
        .collect()
}

/// How many expired limiter rows one [`Store::limiter_update`] sweeps at most (it sweeps on
/// every call, so the table stays small without a background task).
pub(crate) const LIMITER_SWEEP: i64 = 64;

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

/// Open the PostgreSQL store at `url`, applying any schema migration it lacks (safe when
/// several replicas start at once).
pub fn open_url(url: &str) -> Result<std::sync::Arc<dyn Store>> {
    Ok(std::sync::Arc::new(PgStore::open(url)?))
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
