//! [`PgStore`]: the key store on PostgreSQL, shared by any number of `offkey serve` replicas.
//!
//! The synchronous `postgres` client behind an r2d2 pool, because the [`Store`] trait is
//! blocking (the server calls it from `spawn_blocking`). TLS goes through rustls
//! (`sslmode=require`, `verify-ca` or `verify-full` in the URL; see [`url`]).
//!
//! **Concurrency: row locks, not SERIALIZABLE.** Every read-decide-write operation runs at
//! READ COMMITTED and locks the row it decides on with `SELECT … FOR UPDATE` (the key for
//! delete, rotate and a recorded use; the member for a password change); a second replica's
//! transaction on the same row waits and then re-reads the committed row, so it decides on the
//! new state. Where there is no row to lock yet (a new member's email, a new key's hash) a unique
//! index is the arbiter. Why not SERIALIZABLE: the decisions are all per row, so row locks give
//! the same outcome without aborting whole transactions under load (the integration API's
//! first use of a key is the hot write), and no retry storm when many replicas touch one key.
//! Deadlocks and serialization failures (possible in principle when two rows are locked, as a
//! cancelled rotation locks the replacement and then the old key, always in that order) are
//! retried a few times with the whole transaction, then reported as
//! [`StoreError::Contention`].
//!
//! Schema migrations are versioned (`schema-N.sql`, version in `offkey_schema`) and applied
//! under a transaction-scoped advisory lock, so replicas that start at once apply each one once.

mod reader;
mod url;

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use postgres::error::SqlState;
use postgres::{GenericClient, Row, Transaction};
use r2d2_postgres::PostgresConnectionManager;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::lifecycle::{self, Cancel, record_works as working, settle};
use super::{
    AuditEntry, AuditEvent, Credentials, Exposure, ExposureReport, ExposureSummary, ImportCount,
    KeyCheck, KeyRecord, LAST_USED_RESOLUTION, LIMITER_SWEEP, LimiterRow, LookupHit, LookupStatus,
    Member, MemberRef, NewKey, NewMember, Result, Role, Rotation, SESSION_IDLE, Session, Store,
    StoreError,
};
use crate::key::KeyKind;

pub use url::DbUrl;

/// Forward migrations: entry `i` brings a database from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[include_str!("schema-1.sql"), include_str!("schema-2.sql")];

/// Key of the advisory lock that serializes migrations (any constant, the same everywhere).
const MIGRATION_LOCK: i64 = 0x6f66_666b_6579_0001;

/// How often a transaction that lost to a concurrent one (deadlock, serialization failure) is
/// run again before giving up.
const TRIES: u32 = 5;

/// Connections per replica for everything but the integration API's key check.
const POOL_SIZE: u32 = 16;

/// Async connections per replica for the integration API's key check ([`reader`]): one per
/// core (2 to 8). Each pipelines many concurrent reads, and the database has no more cores to
/// run more backends on at once.
fn readers() -> usize {
    std::thread::available_parallelism()
        .map_or(2, std::num::NonZero::get)
        .clamp(2, 8)
}

/// The columns [`key_from_row`] reads (16), from [`KEY_FROM`].
const KEY_COLUMNS: &str = "k.id, k.last4, k.memo, k.kind, k.created_at, k.last_used_at,
        k.deleted_at, k.replaces, k.expires_at, m.id, m.email, m.name,
        (SELECT COUNT(*) FROM exposures x WHERE x.key_id = k.id),
        e.source, e.location, e.seen_at";

/// A key, its creator and its latest exposure.
const KEY_FROM: &str = "FROM keys k
    LEFT JOIN members m ON m.id = k.created_by
    LEFT JOIN LATERAL (SELECT y.source, y.location, y.seen_at FROM exposures y
        WHERE y.key_id = k.id ORDER BY y.seen_at DESC LIMIT 1) e ON TRUE";

/// The integration API's hot read (see [`Store::check_key`]), prepared once per connection.
const CHECK_KEY: &str =
    "SELECT id, last_used_at, deleted_at, expires_at, retire_replaced_on_first_use,
        replaces FROM keys WHERE sha256 = $1";

/// A pooled connection idle for longer than this is checked (one empty query) before use; one
/// used more recently is handed out as it is. r2d2 checks every checkout by default, which cost
/// the integration API a second round trip per request (bench/SERVICE.md).
const CHECK_IDLE: Duration = Duration::from_secs(1);

type Pool = r2d2::Pool<Manager>;

/// One pooled connection: the client and its prepared hot statement.
pub(crate) struct PgConn {
    client: postgres::Client,
    /// [`CHECK_KEY`], prepared at its first use (not on connect: `migrate` connects before the
    /// table exists).
    check_key: Option<postgres::Statement>,
    last_used: Instant,
}

impl std::ops::Deref for PgConn {
    type Target = postgres::Client;
    fn deref(&self) -> &postgres::Client {
        &self.client
    }
}

impl std::ops::DerefMut for PgConn {
    fn deref_mut(&mut self) -> &mut postgres::Client {
        &mut self.client
    }
}

/// r2d2's connection manager: connects, and checks only connections that sat idle for
/// [`CHECK_IDLE`] or longer.
pub(crate) struct Manager(PostgresConnectionManager<MakeRustlsConnect>);

impl r2d2::ManageConnection for Manager {
    type Connection = PgConn;
    type Error = postgres::Error;

    fn connect(&self) -> std::result::Result<PgConn, postgres::Error> {
        Ok(PgConn {
            client: self.0.connect()?,
            check_key: None,
            last_used: Instant::now(),
        })
    }

    fn is_valid(&self, conn: &mut PgConn) -> std::result::Result<(), postgres::Error> {
        if conn.last_used.elapsed() < CHECK_IDLE {
            return Ok(());
        }
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        // Called on every check-in: the connection was just used.
        conn.last_used = Instant::now();
        conn.client.is_closed()
    }
}

/// The PostgreSQL key store.
pub struct PgStore {
    target: String,
    pool: Pool,
    reader: std::sync::Arc<reader::Reader>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .finish()
    }
}

/// Map a driver error. A database error is told by its message and SQLSTATE only: its detail
/// line can quote row values.
pub(crate) fn backend(err: &postgres::Error) -> StoreError {
    match err.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            let message = format!("{} (SQLSTATE {code})", db.message());
            // Connection exceptions (08), insufficient resources such as a full disk (53),
            // operator intervention such as a shutdown (57P), a read-only server (25006).
            if code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || code == "25006"
            {
                StoreError::Unavailable(message)
            } else {
                StoreError::Backend(message)
            }
        }
        // No database error: the connection broke (closed, I/O) or never was.
        None if err.is_closed()
            || std::error::Error::source(err).is_some_and(|s| s.is::<std::io::Error>()) =>
        {
            StoreError::Unavailable(err.to_string())
        }
        None => StoreError::Backend(err.to_string()),
    }
}

impl From<postgres::Error> for StoreError {
    fn from(err: postgres::Error) -> Self {
        backend(&err)
    }
}

fn code(err: &StoreError) -> Option<&'static str> {
    // Errors are mapped early, so the SQLSTATE is read back from the message.
    match err {
        StoreError::Backend(m) if m.ends_with("(SQLSTATE 40001)") => Some("40001"),
        StoreError::Backend(m) if m.ends_with("(SQLSTATE 40P01)") => Some("40P01"),
        _ => None,
    }
}

fn is_unique_violation(err: &postgres::Error) -> bool {
    err.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

fn opt_time(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.map(time)
}

fn member_from_row(row: &Row, at: usize) -> Member {
    let role: String = row.get(at + 3);
    Member {
        id: row.get(at),
        email: row.get(at + 1),
        name: row.get(at + 2),
        role: Role::parse(&role).unwrap_or(Role::Member),
    }
}

fn key_from_row(row: &Row) -> KeyRecord {
    let kind: String = row.get(3);
    let creator_id: Option<String> = row.get(9);
    let created_by = creator_id.map(|id| MemberRef {
        id,
        email: row.get(10),
        name: row.get(11),
    });
    let count: i64 = row.get(12);
    let last_source: Option<String> = row.get(13);
    let last = last_source.map(|source| Exposure {
        source,
        location: row.get(14),
        seen_at: time(row.get(15)),
    });
    KeyRecord {
        id: row.get(0),
        last4: row.get(1),
        memo: row.get(2),
        kind: if kind == "legacy" {
            KeyKind::Legacy
        } else {
            KeyKind::Current
        },
        created_at: time(row.get(4)),
        last_used_at: opt_time(row.get(5)),
        deleted_at: opt_time(row.get(6)),
        replaces: row.get(7),
        expires_at: opt_time(row.get(8)),
        created_by,
        exposures: ExposureSummary {
            count: u64::try_from(count).unwrap_or(0),
            last,
        },
    }
}

fn insert_audit(
    tx: &mut impl GenericClient,
    now: DateTime<Utc>,
    actor: Option<&str>,
    action: &str,
    key_id: Option<&str>,
    detail: Option<&str>,
) -> Result<()> {
    tx.execute(
        "INSERT INTO audit (at, actor, action, key_id, detail) VALUES ($1, $2, $3, $4, $5)",
        &[&ms(now), &actor, &action, &key_id, &detail],
    )?;
    Ok(())
}

fn insert_key(tx: &mut Transaction<'_>, key: &NewKey) -> Result<()> {
    let res = tx.execute(
        "INSERT INTO keys (id, sha256, last4, memo, kind, created_at, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &key.id,
            &key.sha256,
            &key.last4,
            &key.memo,
            &key.kind.as_str(),
            &ms(key.created_at),
            &key.created_by,
        ],
    );
    match res {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(StoreError::DuplicateKey),
        Err(e) => Err(e.into()),
    }
}

/// The key with this id, its row locked until the transaction ends.
fn key_for_update(tx: &mut Transaction<'_>, id: &str) -> Result<Option<KeyRecord>> {
    // Lock the key row alone (FOR UPDATE cannot apply to the outer joins' nullable side), then
    // read the record: the row lock makes the read see the latest committed version.
    let locked = tx.query_opt("SELECT 1 FROM keys WHERE id = $1 FOR UPDATE", &[&id])?;
    if locked.is_none() {
        return Ok(None);
    }
    key_by(tx, "id", id)
}

fn key_by(conn: &mut impl GenericClient, column: &str, value: &str) -> Result<Option<KeyRecord>> {
    let sql = format!("SELECT {KEY_COLUMNS} {KEY_FROM} WHERE k.{column} = $1");
    Ok(conn.query_opt(&sql, &[&value])?.map(|r| key_from_row(&r)))
}

/// What authenticating a key needs to know.
struct UseRow {
    id: String,
    last_used_at: Option<i64>,
    deleted_at: Option<i64>,
    expires_at: Option<i64>,
    retire_replaced_on_first_use: bool,
    replaces: Option<String>,
}

impl UseRow {
    /// A row of `CHECK_KEY` (or of any query selecting the same columns in the same order).
    fn from_row(r: &Row) -> UseRow {
        UseRow {
            id: r.get(0),
            last_used_at: r.get(1),
            deleted_at: r.get(2),
            expires_at: r.get(3),
            retire_replaced_on_first_use: r.get(4),
            replaces: r.get(5),
        }
    }

    /// What [`Store::check_key`] answers for this row (`None`: no key has the hash).
    fn check(row: Option<UseRow>, now: DateTime<Utc>) -> KeyCheck {
        match row {
            Some(row) if row.works(now) => {
                if row.fresh(now) {
                    KeyCheck::Recent(row.id)
                } else {
                    KeyCheck::Stale(row.id)
                }
            }
            _ => KeyCheck::Refused,
        }
    }

    fn works(&self, now: DateTime<Utc>) -> bool {
        lifecycle::works(opt_time(self.deleted_at), opt_time(self.expires_at), now)
    }

    fn fresh(&self, now: DateTime<Utc>) -> bool {
        self.last_used_at
            .is_some_and(|t| ms(now) - t < LAST_USED_RESOLUTION.num_milliseconds())
    }
}

/// The key with this hash, its row locked until the transaction ends.
fn use_row_for_update(conn: &mut impl GenericClient, sha256: &str) -> Result<Option<UseRow>> {
    let sql = "SELECT id, last_used_at, deleted_at, expires_at, retire_replaced_on_first_use,
            replaces FROM keys WHERE sha256 = $1 FOR UPDATE";
    Ok(conn
        .query_opt(sql, &[&sha256])?
        .as_ref()
        .map(UseRow::from_row))
}

impl PgStore {
    /// Connect to the database at `url`, without touching its schema (see [`PgStore::migrate`]
    /// and [`PgStore::open`]).
    pub fn connect(url: &str) -> Result<Self> {
        let url = DbUrl::parse(url)?;
        let target = url.target();
        let tls = url.tls()?;
        let reader = std::sync::Arc::new(reader::Reader::new(
            url.async_config.clone(),
            tls.clone(),
            target.clone(),
            readers(),
        ));
        let manager = Manager(PostgresConnectionManager::new(url.config.clone(), tls));
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            // How long a request waits for a connection: with the database away, a request
            // answers 503 after this rather than hanging (tests/it/faults.rs).
            .connection_timeout(Duration::from_secs(2))
            // r2d2 logs connection errors through `log`; we report them ourselves.
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build(manager)
            .map_err(|e| StoreError::Connect {
                target: target.clone(),
                message: e.to_string(),
            })?;
        Ok(PgStore {
            target,
            pool,
            reader,
        })
    }

    /// Connect and bring the schema up to date: what `offkey serve` does at start.
    pub fn open(url: &str) -> Result<Self> {
        let store = Self::connect(url)?;
        store.migrate()?;
        Ok(store)
    }

    /// The database as `host:port/dbname` (no user, no password).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The schema version this build writes.
    pub fn schema_version() -> i64 {
        i64::try_from(MIGRATIONS.len()).expect("a handful of migrations")
    }

    /// Apply the migrations this database lacks; answers the versions before and after. Safe
    /// when several replicas start at once: a transaction-scoped advisory lock lets one apply
    /// while the others wait, and they then find nothing left to do.
    pub fn migrate(&self) -> Result<(i64, i64)> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS offkey_schema (version INTEGER NOT NULL)")?;
        let found: i64 = match tx.query_opt("SELECT version FROM offkey_schema", &[])? {
            Some(r) => i64::from(r.get::<_, i32>(0)),
            None => {
                tx.execute("INSERT INTO offkey_schema (version) VALUES (0)", &[])?;
                0
            }
        };
        let known = Self::schema_version();
        if found > known {
            return Err(StoreError::TooNew {
                path: self.target.clone().into(),
                found,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate() {
            let version = i32::try_from(i).expect("a handful of migrations");
            if i64::from(version) < found {
                continue;
            }
            tx.batch_execute(sql)?;
            tx.execute("UPDATE offkey_schema SET version = $1", &[&(version + 1)])?;
        }
        tx.commit()?;
        Ok((found, known))
    }

    fn conn(&self) -> Result<r2d2::PooledConnection<Manager>> {
        self.pool.get().map_err(|e| StoreError::Connect {
            target: self.target.clone(),
            message: e.to_string(),
        })
    }

    /// Run `f` in one READ COMMITTED transaction, again (whole) when it lost to a concurrent
    /// one.
    fn tx<T>(&self, mut f: impl FnMut(&mut Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.conn()?;
        for _ in 0..TRIES {
            let mut tx = conn.transaction()?;
            match f(&mut tx).and_then(|v| tx.commit().map(|()| v).map_err(StoreError::from)) {
                Err(e) if code(&e).is_some() => continue,
                other => return other,
            }
        }
        Err(StoreError::Contention(TRIES))
    }

    /// Run `f` on a pooled connection without an explicit transaction (one statement).
    fn with<T>(&self, f: impl FnOnce(&mut postgres::Client) -> Result<T>) -> Result<T> {
        let mut conn = self.conn()?;
        f(&mut conn)
    }
}

impl PgStore {
    /// Every row of every table, in insertion order, from one snapshot.
    pub fn dump(&self) -> Result<super::copy::Dump> {
        use super::copy::{AuditRow, Dump, ExposureRow, KeyRow, MemberRow, SessionRow};
        let mut conn = self.conn()?;
        let mut tx = conn
            .build_transaction()
            .isolation_level(postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()?;
        let members = tx
            .query(
                "SELECT id, email, name, role, password_hash, created_at, removed_at
                 FROM members ORDER BY seq",
                &[],
            )?
            .iter()
            .map(|r| MemberRow {
                id: r.get(0),
                email: r.get(1),
                name: r.get(2),
                role: r.get(3),
                password_hash: r.get(4),
                created_at: r.get(5),
                removed_at: r.get(6),
            })
            .collect();
        let sessions = tx
            .query(
                "SELECT token_sha256, member_id, created_at, expires_at, last_seen_at
                 FROM sessions ORDER BY created_at, token_sha256",
                &[],
            )?
            .iter()
            .map(|r| SessionRow {
                token_sha256: r.get(0),
                member_id: r.get(1),
                created_at: r.get(2),
                expires_at: r.get(3),
                last_seen_at: r.get(4),
            })
            .collect();
        let keys = tx
            .query(
                "SELECT id, sha256, last4, memo, kind, created_at, created_by, last_used_at,
                    deleted_at, replaces, expires_at, retire_replaced_on_first_use,
                    rotation_deadline
                 FROM keys ORDER BY seq",
                &[],
            )?
            .iter()
            .map(|r| KeyRow {
                id: r.get(0),
                sha256: r.get(1),
                last4: r.get(2),
                memo: r.get(3),
                kind: r.get(4),
                created_at: r.get(5),
                created_by: r.get(6),
                last_used_at: r.get(7),
                deleted_at: r.get(8),
                replaces: r.get(9),
                expires_at: r.get(10),
                retire_replaced_on_first_use: r.get(11),
                rotation_deadline: r.get(12),
            })
            .collect();
        let exposures = tx
            .query(
                "SELECT key_id, location, source, seen_at, recorded_at FROM exposures
                 ORDER BY recorded_at, key_id, location",
                &[],
            )?
            .iter()
            .map(|r| ExposureRow {
                key_id: r.get(0),
                location: r.get(1),
                source: r.get(2),
                seen_at: r.get(3),
                recorded_at: r.get(4),
            })
            .collect();
        let audit = tx
            .query(
                "SELECT id, at, actor, action, key_id, detail FROM audit ORDER BY id",
                &[],
            )?
            .iter()
            .map(|r| AuditRow {
                id: r.get(0),
                at: r.get(1),
                actor: r.get(2),
                action: r.get(3),
                key_id: r.get(4),
                detail: r.get(5),
            })
            .collect();
        tx.commit()?;
        Ok(Dump {
            members,
            sessions,
            keys,
            exposures,
            audit,
        })
    }

    /// Write every row of `dump` that is not here yet (by primary key), in one transaction;
    /// answers how many rows were new per table. Loading the same dump again writes nothing.
    pub fn load(&self, dump: &super::copy::Dump) -> Result<[usize; 5]> {
        self.tx(|tx| {
            let mut n = [0usize; 5];
            let count = |x: u64| usize::try_from(x).unwrap_or(usize::MAX);
            for m in &dump.members {
                n[0] += count(tx.execute(
                    "INSERT INTO members (id, email, name, role, password_hash, created_at,
                        removed_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                    &[
                        &m.id,
                        &m.email,
                        &m.name,
                        &m.role,
                        &m.password_hash,
                        &m.created_at,
                        &m.removed_at,
                    ],
                )?);
            }
            for s in &dump.sessions {
                n[1] += count(tx.execute(
                    "INSERT INTO sessions (token_sha256, member_id, created_at, expires_at,
                        last_seen_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    &[
                        &s.token_sha256,
                        &s.member_id,
                        &s.created_at,
                        &s.expires_at,
                        &s.last_seen_at,
                    ],
                )?);
            }
            for k in &dump.keys {
                n[2] += count(tx.execute(
                    "INSERT INTO keys (id, sha256, last4, memo, kind, created_at, created_by,
                        last_used_at, deleted_at, replaces, expires_at,
                        retire_replaced_on_first_use, rotation_deadline)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                     ON CONFLICT DO NOTHING",
                    &[
                        &k.id,
                        &k.sha256,
                        &k.last4,
                        &k.memo,
                        &k.kind,
                        &k.created_at,
                        &k.created_by,
                        &k.last_used_at,
                        &k.deleted_at,
                        &k.replaces,
                        &k.expires_at,
                        &k.retire_replaced_on_first_use,
                        &k.rotation_deadline,
                    ],
                )?);
            }
            for e in &dump.exposures {
                n[3] += count(tx.execute(
                    "INSERT INTO exposures (key_id, location, source, seen_at, recorded_at)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    &[
                        &e.key_id,
                        &e.location,
                        &e.source,
                        &e.seen_at,
                        &e.recorded_at,
                    ],
                )?);
            }
            for a in &dump.audit {
                n[4] += count(tx.execute(
                    "INSERT INTO audit (id, at, actor, action, key_id, detail)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    &[&a.id, &a.at, &a.actor, &a.action, &a.key_id, &a.detail],
                )?);
            }
            // New events must number after the copied ones.
            tx.execute(
                "SELECT setval(pg_get_serial_sequence('audit', 'id'),
                    GREATEST((SELECT COALESCE(MAX(id), 0) FROM audit), 1))",
                &[],
            )?;
            Ok(n)
        })
    }
}

impl Store for PgStore {
    fn ping(&self) -> Result<()> {
        // A read: a pooled connection the server ended (checked only after 1 s idle) is
        // dropped and the next one tried, so /healthz says 200 as soon as the database is back.
        let mut tries = 0;
        loop {
            let mut conn = self.conn()?;
            match conn.query_one("SELECT 1", &[]) {
                Ok(_) => return Ok(()),
                Err(e)
                    if (conn.is_closed() || matches!(backend(&e), StoreError::Unavailable(_)))
                        && tries < POOL_SIZE =>
                {
                    tries += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn add_member(&self, m: NewMember, now: DateTime<Utc>) -> Result<Member> {
        self.tx(|tx| {
            let res = tx.execute(
                "INSERT INTO members (id, email, name, role, password_hash, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &m.id,
                    &m.email,
                    &m.name,
                    &m.role.as_str(),
                    &m.password_hash,
                    &ms(now),
                ],
            );
            match res {
                Ok(_) => {}
                // The partial unique index on lower(email) decides between concurrent adds.
                Err(e) if is_unique_violation(&e) => return Err(StoreError::DuplicateEmail),
                Err(e) => return Err(e.into()),
            }
            insert_audit(
                tx,
                now,
                Some("cli"),
                "member_add",
                None,
                Some(&format!("{} ({})", m.email, m.role.as_str())),
            )?;
            Ok(Member {
                id: m.id.clone(),
                email: m.email.clone(),
                name: m.name.clone(),
                role: m.role,
            })
        })
    }

    fn list_members(&self) -> Result<Vec<Member>> {
        self.with(|c| {
            Ok(c.query(
                "SELECT id, email, name, role FROM members WHERE removed_at IS NULL
                 ORDER BY created_at, seq",
                &[],
            )?
            .iter()
            .map(|r| member_from_row(r, 0))
            .collect())
        })
    }

    fn remove_member(&self, email_or_id: &str, now: DateTime<Utc>) -> Result<bool> {
        self.tx(|tx| {
            let Some(row) = tx.query_opt(
                "SELECT id FROM members
                 WHERE (lower(email) = lower($1) OR id = $1) AND removed_at IS NULL FOR UPDATE",
                &[&email_or_id],
            )?
            else {
                return Ok(false);
            };
            let id: String = row.get(0);
            tx.execute(
                "UPDATE members SET removed_at = $1 WHERE id = $2",
                &[&ms(now), &id],
            )?;
            tx.execute("DELETE FROM sessions WHERE member_id = $1", &[&id])?;
            insert_audit(tx, now, Some("cli"), "member_remove", None, Some(&id))?;
            Ok(true)
        })
    }

    fn member_credentials(&self, email: &str) -> Result<Option<Credentials>> {
        self.with(|c| {
            Ok(c.query_opt(
                "SELECT id, email, name, role, password_hash FROM members
                 WHERE lower(email) = lower($1) AND removed_at IS NULL",
                &[&email],
            )?
            .map(|r| Credentials {
                member: member_from_row(&r, 0),
                password_hash: r.get(4),
            }))
        })
    }

    fn create_session(
        &self,
        token_sha256: &str,
        member_id: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        self.tx(|tx| {
            tx.execute("DELETE FROM sessions WHERE expires_at <= $1", &[&ms(now)])?;
            tx.execute(
                "INSERT INTO sessions (token_sha256, member_id, created_at, expires_at, last_seen_at)
                 VALUES ($1, $2, $3, $4, $3)",
                &[&token_sha256, &member_id, &ms(now), &ms(expires_at)],
            )?;
            Ok(())
        })
    }

    fn session(&self, token_sha256: &str, now: DateTime<Utc>) -> Result<Option<Session>> {
        let idle_since = ms(now - SESSION_IDLE);
        let found = self.with(|c| {
            Ok(c.query_opt(
                "SELECT m.id, m.email, m.name, m.role, s.expires_at, s.last_seen_at
                 FROM sessions s JOIN members m ON m.id = s.member_id
                 WHERE s.token_sha256 = $1 AND s.expires_at > $2 AND s.last_seen_at > $3
                   AND m.removed_at IS NULL",
                &[&token_sha256, &ms(now), &idle_since],
            )?
            .map(|r| {
                (
                    Session {
                        member: member_from_row(&r, 0),
                        expires_at: time(r.get(4)),
                    },
                    r.get::<_, i64>(5),
                )
            }))
        })?;
        let Some((session, last_seen)) = found else {
            return Ok(None);
        };
        if ms(now) - last_seen < LAST_USED_RESOLUTION.num_milliseconds() {
            return Ok(Some(session));
        }
        // Record the use, conditional on the session still being live: a logout or a removal
        // that committed on another replica in between wins.
        self.with(|c| {
            let n = c.execute(
                "UPDATE sessions SET last_seen_at = GREATEST(last_seen_at, $2)
                 WHERE token_sha256 = $1 AND expires_at > $2 AND last_seen_at > $3",
                &[&token_sha256, &ms(now), &idle_since],
            )?;
            Ok((n > 0).then_some(session))
        })
    }

    fn end_session(&self, token_sha256: &str) -> Result<bool> {
        self.with(|c| {
            Ok(c.execute(
                "DELETE FROM sessions WHERE token_sha256 = $1",
                &[&token_sha256],
            )? > 0)
        })
    }

    fn end_member_sessions(&self, member_id: &str) -> Result<usize> {
        self.with(|c| {
            let n = c.execute("DELETE FROM sessions WHERE member_id = $1", &[&member_id])?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    fn set_password(&self, email: &str, password_hash: &str, now: DateTime<Utc>) -> Result<bool> {
        self.tx(|tx| {
            let Some(row) = tx.query_opt(
                "SELECT id FROM members WHERE lower(email) = lower($1) AND removed_at IS NULL
                 FOR UPDATE",
                &[&email],
            )?
            else {
                return Ok(false);
            };
            let id: String = row.get(0);
            tx.execute(
                "UPDATE members SET password_hash = $1 WHERE id = $2",
                &[&password_hash, &id],
            )?;
            tx.execute("DELETE FROM sessions WHERE member_id = $1", &[&id])?;
            insert_audit(
                tx,
                now,
                Some(email),
                "password",
                None,
                Some("password changed; sessions ended"),
            )?;
            Ok(true)
        })
    }

    fn create_key(&self, key: NewKey, actor: &str) -> Result<KeyRecord> {
        self.tx(|tx| {
            insert_key(tx, &key)?;
            insert_audit(
                tx,
                key.created_at,
                Some(actor),
                "create",
                Some(&key.id),
                Some(&key.memo),
            )?;
            key_by(tx, "id", &key.id)?
                .ok_or_else(|| StoreError::Backend("the new key vanished".into()))
        })
    }

    fn import_legacy(&self, keys: Vec<NewKey>, actor: &str) -> Result<ImportCount> {
        self.tx(|tx| {
            let mut count = ImportCount::default();
            let now = Utc::now();
            for key in &keys {
                // ON CONFLICT: a concurrent import of the same key stores it once.
                let n = tx.execute(
                    "INSERT INTO keys (id, sha256, last4, memo, kind, created_at, created_by)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (sha256) DO NOTHING",
                    &[
                        &key.id,
                        &key.sha256,
                        &key.last4,
                        &key.memo,
                        &key.kind.as_str(),
                        &ms(key.created_at),
                        &key.created_by,
                    ],
                )?;
                if n == 0 {
                    count.skipped += 1;
                    continue;
                }
                insert_audit(
                    tx,
                    now,
                    Some(actor),
                    "import",
                    Some(&key.id),
                    Some(&key.memo),
                )?;
                count.imported += 1;
            }
            Ok(count)
        })
    }

    fn list_keys(&self, now: DateTime<Utc>) -> Result<Vec<KeyRecord>> {
        self.with(|c| {
            let sql = format!(
                "SELECT {KEY_COLUMNS} {KEY_FROM} WHERE k.deleted_at IS NULL
                   AND (k.expires_at IS NULL OR k.expires_at > $1)
                 ORDER BY k.created_at DESC, k.seq DESC"
            );
            Ok(c.query(&sql, &[&ms(now)])?
                .iter()
                .map(key_from_row)
                .collect())
        })
    }

    fn delete_key(&self, id: &str, now: DateTime<Utc>, actor: &str) -> Result<Option<KeyRecord>> {
        self.tx(|tx| {
            let Some(key) = key_for_update(tx, id)? else {
                return Ok(None);
            };
            if !working(&key, now) {
                return Ok(None);
            }
            tx.execute(
                "UPDATE keys SET deleted_at = $1 WHERE id = $2",
                &[&ms(now), &id],
            )?;
            insert_audit(tx, now, Some(actor), "delete", Some(id), Some(&key.memo))?;
            let cancel = match &key.replaces {
                None => Cancel::None,
                Some(old_id) => {
                    // Locks in one order everywhere: the replacement, then the key it replaces.
                    let old = key_for_update(tx, old_id)?;
                    let old_works = old.as_ref().is_some_and(|o| working(o, now));
                    let standing: Vec<i64> = tx
                        .query(
                            "SELECT rotation_deadline FROM keys
                             WHERE replaces = $1 AND id <> $2 AND rotation_deadline IS NOT NULL
                               AND NOT (deleted_at IS NOT NULL AND last_used_at IS NULL)",
                            &[old_id, &id],
                        )?
                        .iter()
                        .map(|r| r.get(0))
                        .collect();
                    // A key GitHub found in public keeps its deadline whatever happens to its
                    // replacement.
                    let leaked: bool = tx
                        .query_one(
                            "SELECT EXISTS (SELECT 1 FROM exposures WHERE key_id = $1 AND source = $2)",
                            &[old_id, &super::PUBLIC_LEAK_SOURCE],
                        )?
                        .get(0);
                    lifecycle::cancel_on_delete(
                        &key,
                        old_works,
                        leaked,
                        standing.into_iter().map(time),
                    )
                }
            };
            if let Cancel::Restore { old_id, deadline } = &cancel {
                tx.execute(
                    "UPDATE keys SET expires_at = $1 WHERE id = $2",
                    &[&deadline.map(ms), old_id],
                )?;
            }
            if let Some((old_id, detail)) = cancel.audit(id) {
                insert_audit(tx, now, Some(actor), "cancel_rotation", Some(old_id), Some(&detail))?;
            }
            Ok(Some(KeyRecord {
                deleted_at: Some(now),
                ..key.clone()
            }))
        })
    }

    fn rotate_key(&self, r: Rotation, actor: &str) -> Result<Option<KeyRecord>> {
        self.tx(|tx| {
            let now = r.new.created_at;
            let Some(old) = key_for_update(tx, &r.old_id)? else {
                return Ok(None);
            };
            if !working(&old, now) {
                return Ok(None);
            }
            let mut new = r.new.clone();
            if new.memo.is_empty() {
                new.memo.clone_from(&old.memo);
            }
            insert_key(tx, &new)?;
            tx.execute(
                "UPDATE keys SET replaces = $1, retire_replaced_on_first_use = $2,
                    rotation_deadline = $3 WHERE id = $4",
                &[&old.id, &r.until_first_use, &ms(r.old_expires_at), &new.id],
            )?;
            let expires = lifecycle::rotated_deadline(old.expires_at, r.old_expires_at);
            if expires <= now {
                tx.execute(
                    "UPDATE keys SET deleted_at = $1, expires_at = $1 WHERE id = $2",
                    &[&ms(now), &old.id],
                )?;
            } else {
                tx.execute(
                    "UPDATE keys SET expires_at = $1 WHERE id = $2",
                    &[&ms(expires), &old.id],
                )?;
            }
            let detail = format!(
                "replaced by {}; old key works until {}{}",
                new.id,
                expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                if r.until_first_use {
                    " or the new key's first use"
                } else {
                    ""
                }
            );
            insert_audit(tx, now, Some(actor), "rotate", Some(&old.id), Some(&detail))?;
            key_by(tx, "id", &new.id)?
                .ok_or_else(|| StoreError::Backend("the new key vanished".into()))
                .map(Some)
        })
    }

    fn lookup(&self, hashes: &[String], now: DateTime<Utc>, actor: &str) -> Result<Vec<LookupHit>> {
        self.tx(|tx| {
            // One statement: one snapshot for every hash.
            let sql = format!("SELECT {KEY_COLUMNS}, k.sha256 {KEY_FROM} WHERE k.sha256 = ANY($1)");
            let by_hash: std::collections::HashMap<String, KeyRecord> = tx
                .query(&sql, &[&hashes])?
                .iter()
                .map(|r| (r.get::<_, String>(16), key_from_row(r)))
                .collect();
            let out: Vec<LookupHit> = hashes
                .iter()
                .map(|h| match by_hash.get(h) {
                    None => LookupHit {
                        status: LookupStatus::Unknown,
                        key: None,
                    },
                    Some(key) => LookupHit {
                        status: if working(key, now) {
                            LookupStatus::Active
                        } else {
                            LookupStatus::Revoked
                        },
                        key: Some(settle(key.clone(), now)),
                    },
                })
                .collect();
            let known = out.iter().filter(|h| h.key.is_some()).count();
            let detail = format!("{} hashes, {known} known", hashes.len());
            insert_audit(tx, now, Some(actor), "lookup", None, Some(&detail))?;
            Ok(out)
        })
    }

    fn check_key(&self, sha256: &str, now: DateTime<Utc>) -> Result<KeyCheck> {
        // The integration API's hot path: one round trip with the connection's prepared
        // statement (no parse or plan on the server). A read, so when the connection turns out
        // broken (the server ended it since its last use: a restart) the read is tried again on
        // another; each broken one leaves the pool as it is returned.
        let mut tries = 0;
        let row = loop {
            let mut conn = self.conn()?;
            let stmt = match &conn.check_key {
                Some(stmt) => Ok(stmt.clone()),
                None => conn.prepare_typed(CHECK_KEY, &[postgres::types::Type::TEXT]),
            };
            let read = stmt.and_then(|stmt| {
                conn.check_key = Some(stmt.clone());
                conn.query_opt(&stmt, &[&sha256])
            });
            match read {
                Ok(row) => {
                    break row.as_ref().map(UseRow::from_row);
                }
                // Ended by the server (57P01 arrives before the socket closes) or broken.
                Err(e)
                    if (conn.is_closed() || matches!(backend(&e), StoreError::Unavailable(_)))
                        && tries < POOL_SIZE =>
                {
                    tries += 1;
                }
                Err(e) => return Err(e.into()),
            }
        };
        Ok(UseRow::check(row, now))
    }

    fn check_key_async(
        &self,
        sha256: &str,
        now: DateTime<Utc>,
    ) -> Option<std::pin::Pin<Box<dyn Future<Output = Result<KeyCheck>> + Send + 'static>>> {
        let reader = std::sync::Arc::clone(&self.reader);
        let sha256 = sha256.to_owned();
        Some(Box::pin(async move {
            Ok(UseRow::check(reader.read(&sha256).await?, now))
        }))
    }

    fn use_key(&self, sha256: &str, now: DateTime<Utc>) -> Result<Option<String>> {
        match self.check_key(sha256, now)? {
            KeyCheck::Refused => return Ok(None),
            KeyCheck::Recent(id) => return Ok(Some(id)),
            KeyCheck::Stale(_) => {}
        }
        // Decide again on the locked row: a delete that committed meanwhile wins, a replica
        // that recorded the use meanwhile makes ours a no-op, and a first use (retiring the
        // replaced key) is seen as first by exactly one caller.
        self.tx(|tx| {
            let Some(row) = use_row_for_update(tx, sha256)? else {
                return Ok(None);
            };
            if !row.works(now) {
                return Ok(None);
            }
            if row.fresh(now) {
                return Ok(Some(row.id));
            }
            tx.execute(
                "UPDATE keys SET last_used_at = GREATEST(COALESCE(last_used_at, $1), $1)
                 WHERE id = $2",
                &[&ms(now), &row.id],
            )?;
            if row.last_used_at.is_none() && row.retire_replaced_on_first_use {
                if let Some(old) = &row.replaces {
                    let n = tx.execute(
                        "UPDATE keys SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL
                           AND (expires_at IS NULL OR expires_at > $1)",
                        &[&ms(now), old],
                    )?;
                    if n > 0 {
                        insert_audit(
                            tx,
                            now,
                            Some("integration"),
                            "retire",
                            Some(old),
                            Some(&format!("first use of its replacement {}", row.id)),
                        )?;
                    }
                }
            }
            Ok(Some(row.id.clone()))
        })
    }

    fn record_exposures(
        &self,
        reports: &[ExposureReport],
        now: DateTime<Utc>,
        actor: &str,
    ) -> Result<usize> {
        self.tx(|tx| {
            let mut recorded = 0;
            for e in reports {
                let Some(row) =
                    tx.query_opt("SELECT id FROM keys WHERE sha256 = $1", &[&e.sha256])?
                else {
                    continue;
                };
                let id: String = row.get(0);
                let n = tx.execute(
                    "INSERT INTO exposures (key_id, location, source, seen_at, recorded_at)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key_id, location) DO NOTHING",
                    &[&id, &e.location, &e.source, &ms(e.seen_at), &ms(now)],
                )?;
                if n > 0 {
                    insert_audit(
                        tx,
                        now,
                        Some(actor),
                        "exposure",
                        Some(&id),
                        Some(&e.location),
                    )?;
                    recorded += 1;
                }
            }
            Ok(recorded)
        })
    }

    fn audit(&self, entry: AuditEntry, now: DateTime<Utc>) -> Result<()> {
        self.with(|c| {
            insert_audit(
                c,
                now,
                entry.actor.as_deref(),
                &entry.action,
                entry.key_id.as_deref(),
                entry.detail.as_deref(),
            )
        })
    }

    fn audit_log(&self, limit: usize, before: Option<i64>) -> Result<Vec<AuditEvent>> {
        self.with(|c| {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            Ok(c.query(
                "SELECT id, at, actor, action, key_id, detail FROM audit WHERE id < $2
                 ORDER BY id DESC LIMIT $1",
                &[&limit, &before.unwrap_or(i64::MAX)],
            )?
            .iter()
            .map(|r| AuditEvent {
                id: r.get(0),
                at: time(r.get(1)),
                actor: r.get(2),
                action: r.get(3),
                key_id: r.get(4),
                detail: r.get(5),
            })
            .collect())
        })
    }

    fn limiter_update(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
        f: &mut dyn FnMut(&mut [LimiterRow]),
    ) -> Result<()> {
        let sorted = super::limiter_keys(keys);
        self.tx(|tx| {
            // One upsert creates the missing rows and locks all of them, in key order (so two
            // calls never lock in a cycle), answering their committed state. A row lock, not an
            // atomic counter upsert: the limits are decided on several rows at once (address,
            // email and both), and not SERIALIZABLE: a burst of sign-ins on one email would abort
            // and retry where it now queues for a few microseconds.
            let read = tx
                .query(
                    "INSERT INTO sign_in_limits (key, state, expires_at)
                     SELECT k, '', 0 FROM unnest($1::text[]) AS k ORDER BY k
                     ON CONFLICT (key) DO UPDATE SET state = sign_in_limits.state
                     RETURNING key, state, expires_at",
                    &[&sorted],
                )?
                .iter()
                .map(|r| LimiterRow {
                    key: r.get(0),
                    state: r.get(1),
                    expires_at: time(r.get(2)),
                })
                .collect();
            let mut rows = super::limiter_rows(keys, read);
            f(&mut rows);
            for row in &rows {
                if row.state.is_empty() {
                    tx.execute("DELETE FROM sign_in_limits WHERE key = $1", &[&row.key])?;
                } else {
                    tx.execute(
                        "UPDATE sign_in_limits SET state = $2, expires_at = $3 WHERE key = $1",
                        &[&row.key, &row.state, &ms(row.expires_at)],
                    )?;
                }
            }
            Ok(())
        })?;
        // Sweep in a statement of its own that waits for no lock (rows another call holds are
        // skipped), so it can never deadlock with a limiter call.
        self.with(|c| {
            c.execute(
                "DELETE FROM sign_in_limits WHERE key IN (SELECT key FROM sign_in_limits
                    WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
                &[&ms(now), &LIMITER_SWEEP],
            )?;
            Ok(())
        })
    }
}
