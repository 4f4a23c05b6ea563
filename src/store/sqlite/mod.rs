//! [`SqliteStore`]: the embedded key store. WAL, `synchronous=FULL` (an answered change survives
//! a crash or a power cut), `foreign_keys=on`; one writer connection behind a mutex and a small
//! pool of reader connections. The schema lives in `schema-*.sql`; its version is
//! `PRAGMA user_version`, and [`MIGRATIONS`] brings an older store forward.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use super::lifecycle::{self, Cancel, record_works as working, settle};
use super::{
    AuditEntry, AuditEvent, Credentials, Exposure, ExposureReport, ExposureSummary, ImportCount,
    KeyCheck, KeyRecord, LAST_USED_RESOLUTION, LIMITER_SWEEP, LimiterRow, LookupHit, LookupStatus,
    Member, MemberRef, NewKey, NewMember, Result, Role, Rotation, SESSION_IDLE, Session, Store,
    StoreError,
};
use crate::key::KeyKind;

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        // rusqlite's messages carry SQL and constraint names, never bound values.
        use rusqlite::ErrorCode::{CannotOpen, DiskFull, ReadOnly, SystemIoFailure};
        match err.sqlite_error_code() {
            Some(DiskFull | ReadOnly | SystemIoFailure | CannotOpen) => {
                StoreError::Unavailable(err.to_string())
            }
            _ => StoreError::Backend(err.to_string()),
        }
    }
}

/// Forward migrations: entry `i` brings a store from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("schema-1.sql"),
    include_str!("schema-2.sql"),
    include_str!("schema-3.sql"),
];

/// Reader connections kept open for reuse.
const READER_POOL: usize = 8;

/// The columns [`key_from_row`] reads, over `keys k LEFT JOIN members m` and the latest exposure `e`.
const KEY_SELECT: &str = "SELECT k.id, k.last4, k.memo, k.kind, k.created_at, k.last_used_at,
        k.deleted_at, k.replaces, k.expires_at, m.id, m.email, m.name,
        (SELECT COUNT(*) FROM exposures x WHERE x.key_id = k.id),
        e.source, e.location, e.seen_at
    FROM keys k
    LEFT JOIN members m ON m.id = k.created_by
    LEFT JOIN exposures e ON e.rowid =
        (SELECT y.rowid FROM exposures y WHERE y.key_id = k.id ORDER BY y.seen_at DESC LIMIT 1)";

/// The SQLite key store.
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a connection cannot leave a transaction half-applied (SQLite rolls
    // it back when the statement or transaction is dropped), so the poison flag carries no news.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn member_from_row(row: &Row<'_>, at: usize) -> rusqlite::Result<Member> {
    let role: String = row.get(at + 3)?;
    Ok(Member {
        id: row.get(at)?,
        email: row.get(at + 1)?,
        name: row.get(at + 2)?,
        role: Role::parse(&role).unwrap_or(Role::Member),
    })
}

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<KeyRecord> {
    let kind: String = row.get(3)?;
    let creator_id: Option<String> = row.get(9)?;
    let created_by = match creator_id {
        Some(id) => Some(MemberRef {
            id,
            email: row.get(10)?,
            name: row.get(11)?,
        }),
        None => None,
    };
    let count: i64 = row.get(12)?;
    let last_source: Option<String> = row.get(13)?;
    let last = match last_source {
        Some(source) => Some(Exposure {
            source,
            location: row.get(14)?,
            seen_at: time(row.get(15)?),
        }),
        None => None,
    };
    Ok(KeyRecord {
        id: row.get(0)?,
        last4: row.get(1)?,
        memo: row.get(2)?,
        kind: if kind == "legacy" {
            KeyKind::Legacy
        } else {
            KeyKind::Current
        },
        created_at: time(row.get(4)?),
        last_used_at: opt_time(row.get(5)?),
        deleted_at: opt_time(row.get(6)?),
        replaces: row.get(7)?,
        expires_at: opt_time(row.get(8)?),
        created_by,
        exposures: ExposureSummary {
            count: u64::try_from(count).unwrap_or(0),
            last,
        },
    })
}

fn insert_audit(
    tx: &Connection,
    now: DateTime<Utc>,
    actor: Option<&str>,
    action: &str,
    key_id: Option<&str>,
    detail: Option<&str>,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO audit (at, actor, action, key_id, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![ms(now), actor, action, key_id, detail])?;
    Ok(())
}

fn insert_key(tx: &Connection, key: &NewKey) -> Result<()> {
    let res = tx
        .prepare_cached(
            "INSERT INTO keys (id, sha256, last4, memo, kind, created_at, created_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            key.id,
            key.sha256,
            key.last4,
            key.memo,
            key.kind.as_str(),
            ms(key.created_at),
            key.created_by
        ]);
    match res {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(StoreError::DuplicateKey)
        }
        Err(e) => Err(e.into()),
    }
}

fn key_by(conn: &Connection, column: &str, value: &str) -> rusqlite::Result<Option<KeyRecord>> {
    let sql = format!("{KEY_SELECT} WHERE k.{column} = ?1");
    conn.prepare_cached(&sql)?
        .query_row([value], key_from_row)
        .optional()
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
    fn works(&self, now: DateTime<Utc>) -> bool {
        lifecycle::works(opt_time(self.deleted_at), opt_time(self.expires_at), now)
    }
}

fn use_row(conn: &Connection, sha256: &str) -> rusqlite::Result<Option<UseRow>> {
    conn.prepare_cached(
        "SELECT id, last_used_at, deleted_at, expires_at, retire_replaced_on_first_use, replaces
         FROM keys WHERE sha256 = ?1",
    )?
    .query_row([sha256], |r| {
        Ok(UseRow {
            id: r.get(0)?,
            last_used_at: r.get(1)?,
            deleted_at: r.get(2)?,
            expires_at: r.get(3)?,
            retire_replaced_on_first_use: r.get(4)?,
            replaces: r.get(5)?,
        })
    })
    .optional()
}

/// A write transaction, IMMEDIATE: it takes the write lock at `BEGIN`, so two processes (or two
/// store instances) on one file never both read and then deadlock upgrading to a write (a
/// deferred transaction would fail with SQLITE_BUSY there instead of waiting).
fn write_tx(conn: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

/// The data directory, created `0700` whatever the umask (and tightened to it if it exists):
/// it holds key hashes, session hashes and the audit log.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        // `mode` is filtered by the umask, and an existing directory keeps its own.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// `keys.db` created `0600` before SQLite opens it (SQLite gives `-wal` and `-shm` the main
/// file's mode), and any existing `keys.db`, `-wal`, `-shm` tightened to `0600`.
fn private_files(db: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(db)?;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = db.as_os_str().to_owned();
            name.push(suffix);
            match std::fs::set_permissions(&name, std::fs::Permissions::from_mode(0o600)) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
    }
    #[cfg(not(unix))]
    let _ = db;
    Ok(())
}

impl SqliteStore {
    /// Open (creating if needed) the store at `path` and bring its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        let open_err = |e: &dyn std::fmt::Display| StoreError::Open {
            path: path.to_owned(),
            message: e.to_string(),
        };
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                private_dir(dir).map_err(|e| open_err(&e))?;
            }
        }
        private_files(path).map_err(|e| open_err(&e))?;
        let conn = Connection::open(path).map_err(|e| open_err(&e))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| open_err(&e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(open_err(&format!("journal_mode is {mode}, WAL needed")));
        }
        configure(&conn).map_err(|e| open_err(&e))?;
        let mut store = SqliteStore {
            path: path.to_owned(),
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version this build writes.
    pub fn schema_version() -> i64 {
        i64::try_from(MIGRATIONS.len()).expect("a handful of migrations")
    }

    fn migrate(&mut self) -> Result<()> {
        let conn = self.writer.get_mut().unwrap_or_else(|p| p.into_inner());
        let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let known = Self::schema_version();
        if found > known {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate() {
            let version = i64::try_from(i).expect("a handful of migrations");
            if version < found {
                continue;
            }
            let tx = write_tx(conn)?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", version + 1)?;
            tx.commit()?;
        }
        Ok(())
    }

    fn with_writer<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut conn = lock(&self.writer);
        f(&mut conn)
    }

    fn with_reader<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let pooled = lock(&self.readers).pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                configure(&c)?;
                c
            }
        };
        let out = f(&mut conn);
        let mut pool = lock(&self.readers);
        if pool.len() < READER_POOL {
            pool.push(conn);
        }
        out
    }
}

impl SqliteStore {
    /// Every row of every table, in insertion order, from one snapshot (for `offkey store copy`).
    pub fn dump(&self) -> Result<super::copy::Dump> {
        use super::copy::{AuditRow, Dump, ExposureRow, KeyRow, MemberRow, SessionRow};
        self.with_reader(|conn| {
            let tx = conn.transaction()?;
            let members = tx
                .prepare(
                    "SELECT id, email, name, role, password_hash, created_at, removed_at
                     FROM members ORDER BY rowid",
                )?
                .query_map([], |r| {
                    Ok(MemberRow {
                        id: r.get(0)?,
                        email: r.get(1)?,
                        name: r.get(2)?,
                        role: r.get(3)?,
                        password_hash: r.get(4)?,
                        created_at: r.get(5)?,
                        removed_at: r.get(6)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let sessions = tx
                .prepare(
                    "SELECT token_sha256, member_id, created_at, expires_at,
                        COALESCE(last_seen_at, created_at) FROM sessions ORDER BY rowid",
                )?
                .query_map([], |r| {
                    Ok(SessionRow {
                        token_sha256: r.get(0)?,
                        member_id: r.get(1)?,
                        created_at: r.get(2)?,
                        expires_at: r.get(3)?,
                        last_seen_at: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let keys = tx
                .prepare(
                    "SELECT id, sha256, last4, memo, kind, created_at, created_by, last_used_at,
                        deleted_at, replaces, expires_at, retire_replaced_on_first_use,
                        rotation_deadline
                     FROM keys ORDER BY rowid",
                )?
                .query_map([], |r| {
                    Ok(KeyRow {
                        id: r.get(0)?,
                        sha256: r.get(1)?,
                        last4: r.get(2)?,
                        memo: r.get(3)?,
                        kind: r.get(4)?,
                        created_at: r.get(5)?,
                        created_by: r.get(6)?,
                        last_used_at: r.get(7)?,
                        deleted_at: r.get(8)?,
                        replaces: r.get(9)?,
                        expires_at: r.get(10)?,
                        retire_replaced_on_first_use: r.get(11)?,
                        rotation_deadline: r.get(12)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let exposures = tx
                .prepare(
                    "SELECT key_id, location, source, seen_at, recorded_at
                     FROM exposures ORDER BY rowid",
                )?
                .query_map([], |r| {
                    Ok(ExposureRow {
                        key_id: r.get(0)?,
                        location: r.get(1)?,
                        source: r.get(2)?,
                        seen_at: r.get(3)?,
                        recorded_at: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let audit = tx
                .prepare("SELECT id, at, actor, action, key_id, detail FROM audit ORDER BY id")?
                .query_map([], |r| {
                    Ok(AuditRow {
                        id: r.get(0)?,
                        at: r.get(1)?,
                        actor: r.get(2)?,
                        action: r.get(3)?,
                        key_id: r.get(4)?,
                        detail: r.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(Dump {
                members,
                sessions,
                keys,
                exposures,
                audit,
            })
        })
    }
}

impl Store for SqliteStore {
    fn ping(&self) -> Result<()> {
        self.with_reader(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
    }

    fn add_member(&self, m: NewMember, now: DateTime<Utc>) -> Result<Member> {
        self.with_writer(|conn| {
            let tx = write_tx(conn)?;
            let taken: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM members WHERE email = ?1 AND removed_at IS NULL)",
                [&m.email],
                |r| r.get(0),
            )?;
            if taken {
                return Err(StoreError::DuplicateEmail);
            }
            tx.execute(
                "INSERT INTO members (id, email, name, role, password_hash, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    m.id,
                    m.email,
                    m.name,
                    m.role.as_str(),
                    m.password_hash,
                    ms(now)
                ],
            )?;
            insert_audit(
                &tx,
                now,
                Some("cli"),
                "member_add",
                None,
                Some(&format!("{} ({})", m.email, m.role.as_str())),
            )?;
            tx.commit()?;
            Ok(Member {
                id: m.id,
                email: m.email,
                name: m.name,
                role: m.role,
            })
        })
    }

    fn list_members(&self) -> Result<Vec<Member>> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, email, name, role FROM members WHERE removed_at IS NULL
                 ORDER BY created_at, rowid",
            )?;
            let rows = stmt.query_map([], |r| member_from_row(r, 0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn remove_member(&self, email_or_id: &str, now: DateTime<Utc>) -> Result<bool> {
        self.with_writer(|conn| {
            let tx = write_tx(conn)?;
            let id: Option<String> = tx
                .query_row(
                    "SELECT id FROM members WHERE (email = ?1 OR id = ?1) AND removed_at IS NULL",
                    [email_or_id],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(id) = id else {
                return Ok(false);
            };
            tx.execute(
                "UPDATE members SET removed_at = ?1 WHERE id = ?2",
                params![ms(now), id],
            )?;
            tx.execute("DELETE FROM sessions WHERE member_id = ?1", [&id])?;
            insert_audit(&tx, now, Some("cli"), "member_remove", None, Some(&id))?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn member_credentials(&self, email: &str) -> Result<Option<Credentials>> {
        self.with_reader(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT id, email, name, role, password_hash FROM members
                     WHERE email = ?1 AND removed_at IS NULL",
                )?
                .query_row([email], |r| {
                    Ok(Credentials {
                        member: member_from_row(r, 0)?,
                        password_hash: r.get(4)?,
                    })
                })
                .optional()?)
        })
    }

    fn create_session(
        &self,
        token_sha256: &str,
        member_id: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        self.with_writer(|conn| {
            let tx = write_tx(conn)?;
            // Sweep ended sessions while we are writing anyway.
            tx.prepare_cached("DELETE FROM sessions WHERE expires_at <= ?1")?
                .execute([ms(now)])?;
            tx.prepare_cached(
                "INSERT INTO sessions (token_sha256, member_id, created_at, expires_at, last_seen_at)
                 VALUES (?1, ?2, ?3, ?4, ?3)",
            )?
            .execute(params![token_sha256, member_id, ms(now), ms(expires_at)])?;
            tx.commit()?;
            Ok(())
        })
    }

    fn session(&self, token_sha256: &str, now: DateTime<Utc>) -> Result<Option<Session>> {
        let idle_since = ms(now - SESSION_IDLE);
        let found = self.with_reader(|conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT m.id, m.email, m.name, m.role, s.expires_at, s.last_seen_at
                     FROM sessions s JOIN members m ON m.id = s.member_id
                     WHERE s.token_sha256 = ?1 AND s.expires_at > ?2 AND s.last_seen_at > ?3
                       AND m.removed_at IS NULL",
                )?
                .query_row(params![token_sha256, ms(now), idle_since], |r| {
                    Ok((
                        Session {
                            member: member_from_row(r, 0)?,
                            expires_at: time(r.get(4)?),
                        },
                        r.get::<_, i64>(5)?,
                    ))
                })
                .optional()?)
        })?;
        let Some((session, last_seen)) = found else {
            return Ok(None);
        };
        if ms(now) - last_seen < LAST_USED_RESOLUTION.num_milliseconds() {
            return Ok(Some(session));
        }
        // Record the use; re-checked under the writer, so a logout that just happened wins.
        self.with_writer(|conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE sessions SET last_seen_at = ?2
                     WHERE token_sha256 = ?1 AND expires_at > ?2 AND last_seen_at > ?3",
                )?
                .execute(params![token_sha256, ms(now), idle_since])?;
            Ok((n > 0).then_some(session))
        })
    }

    fn end_member_sessions(&self, member_id: &str) -> Result<usize> {
        self.with_writer(|conn| {
            Ok(conn
                .prepare_cached("DELETE FROM sessions WHERE member_id = ?1")?
                .execute([member_id])?)
        })
    }

    fn set_password(&self, email: &str, password_hash: &str, now: DateTime<Utc>) -> Result<bool> {
        self.with_writer(|conn| {
            let tx = write_tx(conn)?;
            let id: Option<String> = tx
                .prepare_cached("SELECT id FROM members WHERE email = ?1 AND removed_at IS NULL")?
                .query_row([email], |r| r.get(0))
                .optional()?;
            let Some(id) = id else { return Ok(false) };
            tx.prepare_cached("UPDATE members SET password_hash = ?1 WHERE id = ?2")?
                .execute(params![password_hash, id])?;
            tx.prepare_cached("DELETE FROM sessions WHERE member_id = ?1")?
                .execute([&id])?;
            insert_audit(
                &tx,
                now,
                Some(email),
                "password",
                None,
                Some("password changed; sessions ended"),
            )?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn end_session(&self, token_sha256: &str) -> Result<bool> {
        self.with_writer(|conn| {
            let n = conn
                .prepare_cached("DELETE FROM sessions WHERE token_sha256 = ?1")?
                .execute([token_sha256])?;
            Ok(n > 0)
        })
    }

    fn create_key(&self, key: NewKey, actor: &str) -> Result<KeyRecord> {
        self.with_writer(|conn| {
            let tx = write_tx(conn)?;
            insert_key(&tx, &key)?;
            insert_audit(
                &tx,
                key.created_at,
                Some(actor),
                "create",
                Some(&key.id),
                Some(&key.memo),
            )?;
            let record = key_by(&tx, "id", &key.id)?
                .ok_or_else(|| StoreError::Backend("the new key vanished".into()))?;
            tx.commit()?;
            Ok(record)
        })
    }

    fn import_legacy(&self, keys: Vec<NewKey>, actor: &str) -> Result<ImportCount> {
        self.with_writer(|conn| {
            let tx = write_tx(conn)?;
            let mut count = ImportCount::default();
            let now = Utc::now();
            for key in &keys {
                let exists: bool = tx
                    .prepare_cached("SELECT EXISTS (SELECT 1 FROM keys WHERE sha256 = ?1)")?
                    .query_row([&key.sha256], |r| r.get(0))?;
                if exists {
                    count.skipped += 1;
                    continue;
                }
                insert_key(&tx, key)?;
                insert_audit(
                    &tx,
                    now,
                    Some(actor),
                    "import",
                    Some(&key.id),
                    Some(&key.memo),
                )?;
                count.imported += 1;
            }
            tx.commit()?;
            Ok(count)
        })
    }

    fn list_keys(&self, now: DateTime<Utc>) -> Result<Vec<KeyRecord>> {
        self.with_reader(|conn| {
            let sql = format!(
                "{KEY_SELECT} WHERE k.deleted_at IS NULL
                   AND (k.expires_at IS NULL OR k.expires_at > ?1)
                 ORDER BY k.created_at DESC, k.rowid DESC"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map([ms(now)], key_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn delete_key(&self, id: &str, now: DateTime<Utc>, actor: &str) -> Result<Option<KeyRecord>> {
        self.with_writer(|conn| {
            let tx = write_tx(conn)?;
            let Some(key) = key_by(&tx, "id", id)? else {
                return Ok(None);
            };
            if !working(&key, now) {
                return Ok(None);
            }
            tx.prepare_cached("UPDATE keys SET deleted_at = ?1 WHERE id = ?2")?
                .execute(params![ms(now), id])?;
            insert_audit(&tx, now, Some(actor), "delete", Some(id), Some(&key.memo))?;
            // Deleting a replacement that was never used cancels its rotation (the rotation
            // assistant's rollback when the new key could not be delivered): the old key is
            // restored, but only while it still works.
            let cancel = match &key.replaces {
                None => Cancel::None,
                Some(old_id) => {
                    let old = key_by(&tx, "id", old_id)?;
                    let old_works = old.as_ref().is_some_and(|o| working(o, now));
                    // The deadlines of the old key's other rotations that still stand.
                    let standing: Vec<i64> = tx
                        .prepare_cached(
                            "SELECT rotation_deadline FROM keys
                             WHERE replaces = ?1 AND id <> ?2 AND rotation_deadline IS NOT NULL
                               AND NOT (deleted_at IS NOT NULL AND last_used_at IS NULL)",
                        )?
                        .query_map(params![old_id, id], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()?;
                    // A key GitHub found in public keeps its deadline whatever happens to its
                    // replacement.
                    let leaked: bool = tx
                        .prepare_cached(
                            "SELECT EXISTS (SELECT 1 FROM exposures WHERE key_id = ?1 AND source = ?2)",
                        )?
                        .query_row(params![old_id, super::PUBLIC_LEAK_SOURCE], |r| r.get(0))?;
                    lifecycle::cancel_on_delete(
                        &key,
                        old_works,
                        leaked,
                        standing.into_iter().map(time),
                    )
                }
            };
            if let Cancel::Restore { old_id, deadline } = &cancel {
                tx.prepare_cached("UPDATE keys SET expires_at = ?1 WHERE id = ?2")?
                    .execute(params![deadline.map(ms), old_id])?;
            }
            if let Some((old_id, detail)) = cancel.audit(id) {
                insert_audit(&tx, now, Some(actor), "cancel_rotation", Some(old_id), Some(&detail))?;
            }
            tx.commit()?;
            Ok(Some(KeyRecord {
                deleted_at: Some(now),
                ..key
            }))
        })
    }

    fn rotate_key(&self, r: Rotation, actor: &str) -> Result<Option<KeyRecord>> {
        self.with_writer(|conn| {
            let now = r.new.created_at;
            let tx = write_tx(conn)?;
            let Some(old) = key_by(&tx, "id", &r.old_id)? else {
                return Ok(None);
            };
            if !working(&old, now) {
                return Ok(None);
            }
            let mut new = r.new;
            if new.memo.is_empty() {
                new.memo.clone_from(&old.memo);
            }
            insert_key(&tx, &new)?;
            tx.prepare_cached(
                "UPDATE keys SET replaces = ?1, retire_replaced_on_first_use = ?2,
                    rotation_deadline = ?3 WHERE id = ?4",
            )?
            .execute(params![
                old.id,
                r.until_first_use,
                ms(r.old_expires_at),
                new.id
            ])?;
            let expires = lifecycle::rotated_deadline(old.expires_at, r.old_expires_at);
            if expires <= now {
                tx.prepare_cached(
                    "UPDATE keys SET deleted_at = ?1, expires_at = ?1 WHERE id = ?2",
                )?
                .execute(params![ms(now), old.id])?;
            } else {
                tx.prepare_cached("UPDATE keys SET expires_at = ?1 WHERE id = ?2")?
                    .execute(params![ms(expires), old.id])?;
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
            insert_audit(
                &tx,
                now,
                Some(actor),
                "rotate",
                Some(&old.id),
                Some(&detail),
            )?;
            let record = key_by(&tx, "id", &new.id)?
                .ok_or_else(|| StoreError::Backend("the new key vanished".into()))?;
            tx.commit()?;
            Ok(Some(record))
        })
    }

    fn lookup(&self, hashes: &[String], now: DateTime<Utc>, actor: &str) -> Result<Vec<LookupHit>> {
        let hits = self.with_reader(|conn| {
            let tx = conn.transaction()?;
            let mut out = Vec::with_capacity(hashes.len());
            for h in hashes {
                let hit = match key_by(&tx, "sha256", h)? {
                    None => LookupHit {
                        status: LookupStatus::Unknown,
                        key: None,
                    },
                    Some(key) => {
                        let status = if working(&key, now) {
                            LookupStatus::Active
                        } else {
                            LookupStatus::Revoked
                        };
                        LookupHit {
                            status,
                            key: Some(settle(key, now)),
                        }
                    }
                };
                out.push(hit);
            }
            Ok(out)
        })?;
        let known = hits.iter().filter(|h| h.key.is_some()).count();
        let detail = format!("{} hashes, {known} known", hashes.len());
        self.with_writer(|conn| {
            // A lookup changes nothing, so its audit row need not wait for the disk: in WAL mode
            // synchronous=NORMAL still survives a crash of the process (only a power cut can
            // lose it), and the next FULL commit syncs it along. This keeps a lookup's latency
            // free of fsync stalls.
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            let written = insert_audit(conn, now, Some(actor), "lookup", None, Some(&detail));
            conn.pragma_update(None, "synchronous", "FULL")?;
            Ok(written?)
        })?;
        Ok(hits)
    }

    fn check_key(&self, sha256: &str, now: DateTime<Utc>) -> Result<KeyCheck> {
        let Some(row) = self.with_reader(|conn| Ok(use_row(conn, sha256)?))? else {
            return Ok(KeyCheck::Refused);
        };
        if !row.works(now) {
            return Ok(KeyCheck::Refused);
        }
        let fresh = row
            .last_used_at
            .is_some_and(|t| ms(now) - t < LAST_USED_RESOLUTION.num_milliseconds());
        Ok(if fresh {
            KeyCheck::Recent(row.id)
        } else {
            KeyCheck::Stale(row.id)
        })
    }

    fn use_key(&self, sha256: &str, now: DateTime<Utc>) -> Result<Option<String>> {
        match self.check_key(sha256, now)? {
            KeyCheck::Refused => return Ok(None),
            KeyCheck::Recent(id) => return Ok(Some(id)),
            KeyCheck::Stale(_) => {}
        }
        // Record the use; re-read under the writer so a delete that just happened wins.
        self.with_writer(|conn| {
            let tx = write_tx(conn)?;
            let Some(row) = use_row(&tx, sha256)? else {
                return Ok(None);
            };
            if !row.works(now) {
                return Ok(None);
            }
            let UseRow {
                id,
                last_used_at: last_used,
                retire_replaced_on_first_use: retire,
                replaces,
                ..
            } = row;
            tx.prepare_cached("UPDATE keys SET last_used_at = ?1 WHERE id = ?2")?
                .execute(params![ms(now), id])?;
            if last_used.is_none() && retire {
                if let Some(old) = replaces {
                    let n = tx
                        .prepare_cached(
                            "UPDATE keys SET deleted_at = ?1 WHERE id = ?2 AND deleted_at IS NULL
                               AND (expires_at IS NULL OR expires_at > ?1)",
                        )?
                        .execute(params![ms(now), old])?;
                    if n > 0 {
                        insert_audit(
                            &tx,
                            now,
                            Some("integration"),
                            "retire",
                            Some(&old),
                            Some(&format!("first use of its replacement {id}")),
                        )?;
                    }
                }
            }
            tx.commit()?;
            Ok(Some(id))
        })
    }

    fn record_exposures(
        &self,
        reports: &[ExposureReport],
        now: DateTime<Utc>,
        actor: &str,
    ) -> Result<usize> {
        self.with_writer(|conn| {
            let tx = write_tx(conn)?;
            let mut recorded = 0;
            for e in reports {
                let id: Option<String> = tx
                    .prepare_cached("SELECT id FROM keys WHERE sha256 = ?1")?
                    .query_row([&e.sha256], |r| r.get(0))
                    .optional()?;
                let Some(id) = id else { continue };
                let n = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO exposures (key_id, location, source, seen_at, recorded_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![id, e.location, e.source, ms(e.seen_at), ms(now)])?;
                if n > 0 {
                    insert_audit(&tx, now, Some(actor), "exposure", Some(&id), Some(&e.location))?;
                    recorded += 1;
                }
            }
            tx.commit()?;
            Ok(recorded)
        })
    }

    fn audit(&self, entry: AuditEntry, now: DateTime<Utc>) -> Result<()> {
        self.with_writer(|conn| {
            insert_audit(
                conn,
                now,
                entry.actor.as_deref(),
                &entry.action,
                entry.key_id.as_deref(),
                entry.detail.as_deref(),
            )?;
            Ok(())
        })
    }

    fn audit_log(&self, limit: usize, before: Option<i64>) -> Result<Vec<AuditEvent>> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, at, actor, action, key_id, detail FROM audit WHERE id < ?2
                 ORDER BY id DESC LIMIT ?1",
            )?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = stmt.query_map(params![limit, before.unwrap_or(i64::MAX)], |r| {
                Ok(AuditEvent {
                    id: r.get(0)?,
                    at: time(r.get(1)?),
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    key_id: r.get(4)?,
                    detail: r.get(5)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn limiter_update(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
        f: &mut dyn FnMut(&mut [LimiterRow]),
    ) -> Result<()> {
        // The one writer (an IMMEDIATE transaction across processes) is the lock on every row.
        self.with_writer(|conn| {
            let tx = write_tx(conn)?;
            let mut read = Vec::with_capacity(keys.len());
            {
                let mut stmt = tx.prepare_cached(
                    "SELECT state, expires_at FROM sign_in_limits WHERE key = ?1",
                )?;
                for key in super::limiter_keys(keys) {
                    let row = stmt
                        .query_row([&key], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?;
                    if let Some((state, expires_at)) = row {
                        read.push(LimiterRow {
                            key,
                            state,
                            expires_at: time(expires_at),
                        });
                    }
                }
            }
            let mut rows = super::limiter_rows(keys, read);
            f(&mut rows);
            for row in &rows {
                if row.state.is_empty() {
                    tx.prepare_cached("DELETE FROM sign_in_limits WHERE key = ?1")?
                        .execute([&row.key])?;
                } else {
                    tx.prepare_cached(
                        "INSERT INTO sign_in_limits (key, state, expires_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (key) DO UPDATE SET state = excluded.state,
                            expires_at = excluded.expires_at",
                    )?
                    .execute(params![
                        row.key,
                        row.state,
                        ms(row.expires_at)
                    ])?;
                }
            }
            tx.prepare_cached(
                "DELETE FROM sign_in_limits WHERE rowid IN
                    (SELECT rowid FROM sign_in_limits WHERE expires_at <= ?1 LIMIT ?2)",
            )?
            .execute(params![ms(now), LIMITER_SWEEP])?;
            tx.commit()?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::generate;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let s = SqliteStore::open(&dir.path().join("keys.db")).expect("open");
        (dir, s)
    }

    fn new_key(memo: &str, now: DateTime<Utc>) -> (crate::key::Secret, NewKey) {
        let secret = generate();
        let key = NewKey {
            id: super::super::new_id("key_"),
            sha256: secret.sha256(),
            last4: secret.last4().to_owned(),
            memo: memo.into(),
            kind: KeyKind::Current,
            created_at: now,
            created_by: None,
        };
        (secret, key)
    }

    #[test]
    fn schema_version_is_set_and_reopen_keeps_keys() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("keys.db");
        let now = Utc::now();
        {
            let s = SqliteStore::open(&path).expect("open");
            s.create_key(new_key("a", now).1, "test").expect("create");
        }
        let s = SqliteStore::open(&path).expect("reopen");
        assert_eq!(s.list_keys(now).expect("list").len(), 1);
        let conn = lock(&s.writer);
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(v, SqliteStore::schema_version());
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .expect("sync");
        assert_eq!(sync, 2, "synchronous=FULL");
        let fk: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .expect("fk");
        assert_eq!(fk, 1);
    }

    #[test]
    fn use_key_records_use_and_lookup_does_not() {
        let (_d, s) = store();
        let now = Utc::now();
        let (secret, key) = new_key("a", now);
        let id = key.id.clone();
        s.create_key(key, "t").expect("create");
        let hits = s.lookup(&[secret.sha256()], now, "t").expect("lookup");
        assert_eq!(hits[0].status, LookupStatus::Active);
        assert!(hits[0].key.as_ref().expect("key").last_used_at.is_none());
        let sync: i64 = lock(&s.writer)
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .expect("sync");
        assert_eq!(sync, 2, "back to FULL after the lookup's audit row");
        assert_eq!(
            s.use_key(&secret.sha256(), now).expect("use"),
            Some(id.clone())
        );
        let listed = s.list_keys(now).expect("list");
        assert!(listed[0].last_used_at.is_some());
        s.delete_key(&id, now, "t")
            .expect("delete")
            .expect("was there");
        assert_eq!(s.use_key(&secret.sha256(), now).expect("use"), None);
        let hits = s.lookup(&[secret.sha256()], now, "t").expect("lookup");
        assert_eq!(hits[0].status, LookupStatus::Revoked);
        assert!(s.delete_key(&id, now, "t").expect("delete").is_none());
    }

    #[test]
    fn rotation_expiry_reads_as_revoked() {
        let (_d, s) = store();
        let now = Utc::now();
        let (old_secret, old) = new_key("a", now);
        let old_id = old.id.clone();
        s.create_key(old, "t").expect("create");
        let (_new_secret, new) = new_key("a", now);
        s.rotate_key(
            Rotation {
                old_id: old_id.clone(),
                new,
                old_expires_at: now + chrono::Duration::seconds(30),
                until_first_use: false,
            },
            "t",
        )
        .expect("rotate")
        .expect("rotated");
        assert!(s.use_key(&old_secret.sha256(), now).expect("use").is_some());
        let later = now + chrono::Duration::seconds(31);
        assert!(
            s.use_key(&old_secret.sha256(), later)
                .expect("use")
                .is_none()
        );
        let hit = &s
            .lookup(&[old_secret.sha256()], later, "t")
            .expect("lookup")[0];
        assert_eq!(hit.status, LookupStatus::Revoked);
        assert!(hit.key.as_ref().expect("key").deleted_at.is_some());
        assert_eq!(s.list_keys(later).expect("list").len(), 1);
    }

    #[test]
    fn exposures_one_per_key_and_location() {
        let (_d, s) = store();
        let now = Utc::now();
        let (secret, key) = new_key("a", now);
        s.create_key(key, "t").expect("create");
        let report = |loc: &str| ExposureReport {
            sha256: secret.sha256(),
            source: "offkey scan".into(),
            location: loc.into(),
            seen_at: now,
        };
        let unknown = ExposureReport {
            sha256: "0".repeat(64),
            ..report("x")
        };
        let n = s
            .record_exposures(
                &[
                    report("a.py:1"),
                    report("a.py:1"),
                    report("b.py:2"),
                    unknown,
                ],
                now,
                "t",
            )
            .expect("record");
        assert_eq!(n, 2);
        assert_eq!(
            s.record_exposures(&[report("a.py:1")], now, "t")
                .expect("again"),
            0
        );
        let listed = s.list_keys(now).expect("list");
        assert_eq!(listed[0].exposures.count, 2);
        assert!(listed[0].exposures.last.is_some());
    }

    #[test]
    fn members_and_sessions() {
        let (_d, s) = store();
        let now = Utc::now();
        let m = s
            .add_member(
                NewMember {
                    id: "mem_1".into(),
                    email: "a@example.com".into(),
                    name: "A".into(),
                    role: Role::Admin,
                    password_hash: "x".into(),
                },
                now,
            )
            .expect("add");
        let dup = s.add_member(
            NewMember {
                id: "mem_2".into(),
                email: "A@example.com".into(),
                name: "A".into(),
                role: Role::Admin,
                password_hash: "x".into(),
            },
            now,
        );
        assert!(matches!(dup, Err(StoreError::DuplicateEmail)));
        s.create_session("h", &m.id, now, now + chrono::Duration::hours(1))
            .expect("session");
        assert!(s.session("h", now).expect("get").is_some());
        assert!(
            s.session("h", now + chrono::Duration::hours(2))
                .expect("get")
                .is_none()
        );
        assert!(s.end_session("h").expect("end"));
        assert!(s.session("h", now).expect("get").is_none());
        assert!(s.remove_member("a@example.com", now).expect("remove"));
        assert!(
            s.member_credentials("a@example.com")
                .expect("creds")
                .is_none()
        );
    }
}
