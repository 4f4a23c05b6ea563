//! The integration API's key check never runs on an async worker: a store that blocks (a slow
//! disk, a network store) must not stall the other requests of the runtime.

use std::sync::Mutex;
use std::sync::mpsc;

use chrono::DateTime;

use super::*;
use crate::store::{
    AuditEntry, AuditEvent, Credentials, ImportCount, KeyCheck, KeyRecord, LookupHit, Member,
    Rotation, Session,
};

/// A SQLite store whose key checks wait until the test lets them go.
struct Stalling {
    inner: SqliteStore,
    entered: Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    release: Mutex<mpsc::Receiver<()>>,
    timed_out: std::sync::atomic::AtomicBool,
}

impl Stalling {
    fn stall(&self) {
        if let Some(tx) = self.entered.lock().expect("lock").take() {
            let _ = tx.send(());
        }
        let rx = self.release.lock().expect("lock");
        if rx.recv_timeout(std::time::Duration::from_secs(10)).is_err() {
            self.timed_out
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

type R<T> = crate::store::Result<T>;

impl Store for Stalling {
    fn ping(&self) -> R<()> {
        self.inner.ping()
    }
    fn add_member(&self, m: NewMember, now: DateTime<Utc>) -> R<Member> {
        self.inner.add_member(m, now)
    }
    fn list_members(&self) -> R<Vec<Member>> {
        self.inner.list_members()
    }
    fn remove_member(&self, e: &str, now: DateTime<Utc>) -> R<bool> {
        self.inner.remove_member(e, now)
    }
    fn member_credentials(&self, e: &str) -> R<Option<Credentials>> {
        self.inner.member_credentials(e)
    }
    fn create_session(&self, t: &str, m: &str, now: DateTime<Utc>, exp: DateTime<Utc>) -> R<()> {
        self.inner.create_session(t, m, now, exp)
    }
    fn session(&self, t: &str, now: DateTime<Utc>) -> R<Option<Session>> {
        self.inner.session(t, now)
    }
    fn end_session(&self, t: &str) -> R<bool> {
        self.inner.end_session(t)
    }
    fn end_member_sessions(&self, m: &str) -> R<usize> {
        self.inner.end_member_sessions(m)
    }
    fn set_password(&self, e: &str, h: &str, now: DateTime<Utc>) -> R<bool> {
        self.inner.set_password(e, h, now)
    }
    fn create_key(&self, k: NewKey, a: &str) -> R<KeyRecord> {
        self.inner.create_key(k, a)
    }
    fn import_legacy(&self, k: Vec<NewKey>, a: &str) -> R<ImportCount> {
        self.inner.import_legacy(k, a)
    }
    fn list_keys(&self, now: DateTime<Utc>) -> R<Vec<KeyRecord>> {
        self.inner.list_keys(now)
    }
    fn delete_key(&self, id: &str, now: DateTime<Utc>, a: &str) -> R<Option<KeyRecord>> {
        self.inner.delete_key(id, now, a)
    }
    fn rotate_key(&self, r: Rotation, a: &str) -> R<Option<KeyRecord>> {
        self.inner.rotate_key(r, a)
    }
    fn lookup(&self, h: &[String], now: DateTime<Utc>, a: &str) -> R<Vec<LookupHit>> {
        self.inner.lookup(h, now, a)
    }
    fn check_key(&self, s: &str, now: DateTime<Utc>) -> R<KeyCheck> {
        self.stall();
        self.inner.check_key(s, now)
    }
    fn use_key(&self, s: &str, now: DateTime<Utc>) -> R<Option<String>> {
        self.stall();
        self.inner.use_key(s, now)
    }
    fn record_exposures(
        &self,
        r: &[crate::store::ExposureReport],
        now: DateTime<Utc>,
        a: &str,
    ) -> R<usize> {
        self.inner.record_exposures(r, now, a)
    }
    fn audit(&self, e: AuditEntry, now: DateTime<Utc>) -> R<()> {
        self.inner.audit(e, now)
    }
    fn audit_log(&self, limit: usize, before: Option<i64>) -> R<Vec<AuditEvent>> {
        self.inner.audit_log(limit, before)
    }
    fn limiter_update(
        &self,
        k: &[String],
        now: DateTime<Utc>,
        f: &mut dyn FnMut(&mut [crate::store::LimiterRow]),
    ) -> R<()> {
        self.inner.limiter_update(k, now, f)
    }
}

/// On a one-thread runtime, `/healthz` is answered while an integration's key check is stuck
/// in the store. Were the check run on the async worker, the only thread would be held until
/// the store gave up, and `timed_out` would say so.
#[test]
fn a_stuck_key_check_does_not_stall_other_requests() {
    let dir = tempfile::tempdir().expect("temp dir");
    let inner = SqliteStore::open(&dir.path().join("keys.db")).expect("open");
    let secret = generate();
    inner
        .create_key(
            NewKey {
                id: new_id("key_"),
                sha256: secret.sha256(),
                last4: secret.last4().to_owned(),
                memo: "stuck".into(),
                kind: crate::key::KeyKind::Current,
                created_at: Utc::now(),
                created_by: None,
            },
            "test",
        )
        .expect("key");
    let (entered_tx, entered_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let store = Arc::new(Stalling {
        inner,
        entered: Mutex::new(Some(entered_tx)),
        release: Mutex::new(release_rx),
        timed_out: std::sync::atomic::AtomicBool::new(false),
    });
    let app = router(AppState::new(store.clone()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let key = secret.expose().to_owned();
        let integration = {
            let app = app.clone();
            tokio::spawn(async move {
                call(
                    &app,
                    Method::GET,
                    "/api/v1/account",
                    Auth::Bearer(&key),
                    None,
                )
                .await
            })
        };
        entered_rx.await.expect("the key check started");
        let health = call(&app, Method::GET, "/healthz", Auth::None, None).await;
        assert_eq!(health.status, StatusCode::OK);
        release_tx.send(()).expect("release");
        let a = integration.await.expect("task");
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    });
    assert!(
        !store.timed_out.load(std::sync::atomic::Ordering::SeqCst),
        "the key check held the runtime's only thread"
    );
}
