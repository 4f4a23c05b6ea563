//! The PostgreSQL store as the server tests use it. The synchronous `postgres` client runs its
//! own runtime, so it cannot be called from inside a test's async body (the server itself calls
//! the store on the blocking pool, where it can): [`OffRuntime`] makes each call the tests make
//! directly on a thread of its own.

use chrono::{DateTime, Utc};

use crate::store::{
    AuditEntry, AuditEvent, Credentials, ExposureReport, ImportCount, KeyCheck, KeyRecord,
    LimiterRow, LookupHit, Member, NewKey, NewMember, PgStore, Rotation, Session, Store,
};

type R<T> = crate::store::Result<T>;

/// A [`PgStore`] callable (and dropped) from anywhere.
pub(crate) struct OffRuntime(Option<PgStore>);

impl OffRuntime {
    pub(crate) fn new(store: PgStore) -> Self {
        OffRuntime(Some(store))
    }

    fn store(&self) -> &PgStore {
        self.0.as_ref().expect("only taken when dropped")
    }
}

impl Drop for OffRuntime {
    fn drop(&mut self) {
        // Closing the pool's connections blocks as well.
        if let Some(store) = self.0.take() {
            off(move || drop(store));
        }
    }
}

/// Run `f` where the synchronous client may block: here when this thread is not driving a
/// runtime, else on a thread of its own.
fn off<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| s.spawn(f).join().expect("store call panicked"))
}

impl Store for OffRuntime {
    fn ping(&self) -> R<()> {
        off(|| self.store().ping())
    }
    fn add_member(&self, m: NewMember, now: DateTime<Utc>) -> R<Member> {
        off(|| self.store().add_member(m, now))
    }
    fn list_members(&self) -> R<Vec<Member>> {
        off(|| self.store().list_members())
    }
    fn remove_member(&self, e: &str, now: DateTime<Utc>) -> R<bool> {
        off(|| self.store().remove_member(e, now))
    }
    fn member_credentials(&self, e: &str) -> R<Option<Credentials>> {
        off(|| self.store().member_credentials(e))
    }
    fn create_session(&self, t: &str, m: &str, now: DateTime<Utc>, exp: DateTime<Utc>) -> R<()> {
        off(|| self.store().create_session(t, m, now, exp))
    }
    fn session(&self, t: &str, now: DateTime<Utc>) -> R<Option<Session>> {
        off(|| self.store().session(t, now))
    }
    fn end_session(&self, t: &str) -> R<bool> {
        off(|| self.store().end_session(t))
    }
    fn end_member_sessions(&self, m: &str) -> R<usize> {
        off(|| self.store().end_member_sessions(m))
    }
    fn set_password(&self, e: &str, h: &str, now: DateTime<Utc>) -> R<bool> {
        off(|| self.store().set_password(e, h, now))
    }
    fn create_key(&self, k: NewKey, a: &str) -> R<KeyRecord> {
        off(|| self.store().create_key(k, a))
    }
    fn import_legacy(&self, k: Vec<NewKey>, a: &str) -> R<ImportCount> {
        off(|| self.store().import_legacy(k, a))
    }
    fn list_keys(&self, now: DateTime<Utc>) -> R<Vec<KeyRecord>> {
        off(|| self.store().list_keys(now))
    }
    fn delete_key(&self, id: &str, now: DateTime<Utc>, a: &str) -> R<Option<KeyRecord>> {
        off(|| self.store().delete_key(id, now, a))
    }
    fn rotate_key(&self, r: Rotation, a: &str) -> R<Option<KeyRecord>> {
        off(|| self.store().rotate_key(r, a))
    }
    fn lookup(&self, h: &[String], now: DateTime<Utc>, a: &str) -> R<Vec<LookupHit>> {
        off(|| self.store().lookup(h, now, a))
    }
    fn check_key(&self, s: &str, now: DateTime<Utc>) -> R<KeyCheck> {
        off(|| self.store().check_key(s, now))
    }
    fn check_key_async(
        &self,
        s: &str,
        now: DateTime<Utc>,
    ) -> Option<std::pin::Pin<Box<dyn Future<Output = R<KeyCheck>> + Send + 'static>>> {
        // Async: runs on the test's runtime, as the server runs it on its own.
        self.store().check_key_async(s, now)
    }
    fn use_key(&self, s: &str, now: DateTime<Utc>) -> R<Option<String>> {
        off(|| self.store().use_key(s, now))
    }
    fn record_exposures(&self, r: &[ExposureReport], now: DateTime<Utc>, a: &str) -> R<usize> {
        off(|| self.store().record_exposures(r, now, a))
    }
    fn audit(&self, e: AuditEntry, now: DateTime<Utc>) -> R<()> {
        off(|| self.store().audit(e, now))
    }
    fn audit_log(&self, limit: usize, before: Option<i64>) -> R<Vec<AuditEvent>> {
        off(|| self.store().audit_log(limit, before))
    }
    fn limiter_update(
        &self,
        k: &[String],
        now: DateTime<Utc>,
        f: &mut dyn FnMut(&mut [LimiterRow]),
    ) -> R<()> {
        // Only the limiter calls this, always from the blocking pool.
        self.store().limiter_update(k, now, f)
    }
}
