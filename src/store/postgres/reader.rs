//! The integration API's hot read on async connections ([`Store::check_key_async`]).
//!
//! Every integration request checks its key: one indexed read. Through the synchronous pool
//! that read cost a hand-off to a blocking-pool thread, a pool checkout and a thread blocked
//! on the socket per request; here it is a prepared statement sent from the async worker
//! itself on one of a few shared `tokio-postgres` connections, which pipeline the concurrent
//! requests (no checkout, no waiting for a free connection). Measurements in bench/SERVICE.md.
//!
//! Nothing is cached: every call is a query that reads the latest committed state, so a key
//! deleted on any replica is refused by the very next request here.
//!
//! [`Store::check_key_async`]: crate::store::Store::check_key_async

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio_postgres::Statement;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{CHECK_KEY, UseRow, backend};
use crate::store::{Result, StoreError};

/// How long a read (or connecting for one) may take before it answers
/// [`StoreError::Unavailable`]: the same bound as a checkout from the synchronous pool, so a
/// replica that lost its database answers `503` rather than hanging.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// One connection and its prepared statement.
struct Conn {
    client: tokio_postgres::Client,
    check_key: Statement,
}

/// A few async connections, used round robin; each is opened on first use and again after it
/// broke.
pub(super) struct Reader {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    target: String,
    slots: Vec<tokio::sync::Mutex<Option<Arc<Conn>>>>,
    next: AtomicUsize,
}

impl Reader {
    pub(super) fn new(
        config: tokio_postgres::Config,
        tls: MakeRustlsConnect,
        target: String,
        connections: usize,
    ) -> Self {
        Reader {
            config,
            tls,
            target,
            slots: (0..connections.max(1))
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// The connection of slot `i`, opened when it has none or its connection broke.
    async fn conn(&self, i: usize) -> Result<Arc<Conn>> {
        let mut slot = self.slots[i].lock().await;
        if let Some(conn) = slot.as_ref().filter(|c| !c.client.is_closed()) {
            return Ok(Arc::clone(conn));
        }
        *slot = None;
        let (client, connection) =
            self.config
                .connect(self.tls.clone())
                .await
                .map_err(|e| StoreError::Connect {
                    target: self.target.clone(),
                    message: e.to_string(),
                })?;
        // The connection's socket is driven by a task of the runtime the request runs on (the
        // server's); it ends when the client is dropped or the server goes away, and the next
        // call on this slot connects again.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let check_key = client
            .prepare_typed(CHECK_KEY, &[tokio_postgres::types::Type::TEXT])
            .await
            .map_err(|e| backend(&e))?;
        let conn = Arc::new(Conn { client, check_key });
        *slot = Some(Arc::clone(&conn));
        Ok(conn)
    }

    async fn read_once(&self, i: usize, sha256: &str) -> Result<Option<UseRow>> {
        let conn = self.conn(i).await?;
        let row = match conn.client.query_opt(&conn.check_key, &[&sha256]).await {
            Ok(row) => row,
            Err(e) => {
                let err = backend(&e);
                if matches!(err, StoreError::Unavailable(_)) {
                    // Broken: the slot's next caller connects again.
                    let mut slot = self.slots[i].lock().await;
                    if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, &conn)) {
                        *slot = None;
                    }
                }
                return Err(err);
            }
        };
        Ok(row.as_ref().map(UseRow::from_row))
    }

    /// The key row with this hash, read now. A read, so when the connection turned out broken
    /// (the server ended it since its last use: a restart) it is tried once more on a new one.
    pub(super) async fn read(&self, sha256: &str) -> Result<Option<UseRow>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let attempt = async {
            match self.read_once(i, sha256).await {
                Err(StoreError::Unavailable(_)) => self.read_once(i, sha256).await,
                other => other,
            }
        };
        match tokio::time::timeout(READ_TIMEOUT, attempt).await {
            Ok(answer) => answer,
            Err(_) => Err(StoreError::Unavailable(format!(
                "{} did not answer within {} s",
                self.target,
                READ_TIMEOUT.as_secs()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};

    use crate::key::{KeyKind, generate};
    use crate::store::conformance::fresh_pg_url;
    use crate::store::{KeyCheck, NewKey, PgStore, Rotation, Store, new_id};

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("a valid time")
    }

    fn create(s: &PgStore, now: DateTime<Utc>) -> (String, String) {
        let secret = generate();
        let key = NewKey {
            id: new_id("key_"),
            sha256: secret.sha256(),
            last4: secret.last4().to_owned(),
            memo: "reader test".into(),
            kind: KeyKind::Current,
            created_at: now,
            created_by: None,
        };
        let id = s.create_key(key, "test").expect("create").id;
        (id, secret.sha256())
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// The async check on one replica against the sync check on it and writes on another:
    /// the same answer in every state, and a delete that returned on replica A is refused by
    /// the very next check on replica B (nothing cached).
    #[test]
    fn async_check_answers_as_check_key_and_sees_another_replicas_delete_at_once() {
        let url = fresh_pg_url();
        let a = PgStore::open(&url).expect("open replica a");
        let b = PgStore::open(&url).expect("open replica b");
        let rt = runtime();
        let check = |hash: &str, at: DateTime<Utc>| {
            let fut = b
                .check_key_async(hash, at)
                .expect("PostgreSQL checks async");
            let got = rt.block_on(fut).expect("async check");
            assert_eq!(
                got,
                b.check_key(hash, at).expect("sync check"),
                "same answer"
            );
            got
        };
        let t = now();
        assert_eq!(check(&"0".repeat(64), t), KeyCheck::Refused, "unknown hash");
        let (id, hash) = create(&a, t);
        assert_eq!(check(&hash, t), KeyCheck::Stale(id.clone()), "never used");
        assert_eq!(a.use_key(&hash, t).expect("use"), Some(id.clone()));
        assert_eq!(check(&hash, t), KeyCheck::Recent(id.clone()), "just used");
        // A rotation with a deadline: the old key stops working at the deadline.
        let (new_id_, _) = {
            let secret = generate();
            let new = NewKey {
                id: new_id("key_"),
                sha256: secret.sha256(),
                last4: secret.last4().to_owned(),
                memo: String::new(),
                kind: KeyKind::Current,
                created_at: t,
                created_by: None,
            };
            let r = Rotation {
                old_id: id.clone(),
                new,
                old_expires_at: t + Duration::minutes(5),
                until_first_use: false,
            };
            let got = a.rotate_key(r, "test").expect("rotate").expect("rotated");
            (got.id, secret)
        };
        assert_ne!(new_id_, id);
        assert_eq!(
            check(&hash, t),
            KeyCheck::Recent(id.clone()),
            "in its grace"
        );
        assert_eq!(
            check(&hash, t + Duration::minutes(6)),
            KeyCheck::Refused,
            "past its deadline"
        );
        for round in 0..20 {
            let t = now();
            let (id, hash) = create(&a, t);
            a.use_key(&hash, t).expect("use");
            assert_eq!(
                check(&hash, t),
                KeyCheck::Recent(id.clone()),
                "round {round}"
            );
            assert!(a.delete_key(&id, t, "test").expect("delete").is_some());
            let fut = b.check_key_async(&hash, t).expect("async");
            assert_eq!(
                rt.block_on(fut).expect("async check"),
                KeyCheck::Refused,
                "round {round}: a key deleted on replica a still worked on replica b"
            );
        }
    }

    /// The server ends every connection (a restart, a failover, an idle timeout): the next key
    /// check on each path answers, on a new connection, instead of failing on the dead one.
    #[test]
    fn key_checks_answer_after_the_server_ended_their_connections() {
        let app = format!("offkey_reader_{}", new_id("").to_lowercase());
        let url = format!("{}&application_name={app}", fresh_pg_url());
        let s = PgStore::open(&url).expect("open");
        let rt = runtime();
        let t = now();
        let (id, hash) = create(&s, t);
        s.use_key(&hash, t).expect("use");
        for round in 0..3 {
            // Both paths have a live connection with the statement prepared.
            assert_eq!(
                s.check_key(&hash, t).expect("sync"),
                KeyCheck::Recent(id.clone())
            );
            let fut = s.check_key_async(&hash, t).expect("async");
            assert_eq!(
                rt.block_on(fut).expect("async"),
                KeyCheck::Recent(id.clone())
            );
            let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("admin");
            let killed: i64 = admin
                .query_one(
                    "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE application_name = $1 AND pid <> pg_backend_pid()) t",
                    &[&app],
                )
                .expect("terminate")
                .get(0);
            assert!(killed >= 2, "round {round}: ended {killed} connections");
            drop(admin);
            assert_eq!(
                s.check_key(&hash, t)
                    .expect("sync check after the server ended its connection"),
                KeyCheck::Recent(id.clone()),
                "round {round}"
            );
            let fut = s.check_key_async(&hash, t).expect("async");
            assert_eq!(
                rt.block_on(fut)
                    .expect("async check after the server ended its connection"),
                KeyCheck::Recent(id.clone()),
                "round {round}"
            );
        }
        // The store is dropped off the runtime (the synchronous client blocks to close).
        drop(rt);
    }
}
