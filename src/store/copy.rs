//! Moving a store between backends with nothing lost: every row of every table as stored
//! (members with their password hashes, sessions by token hash, keys with tombstones and
//! rotation links, exposures, the audit log with its ids), loaded idempotently and checked
//! after. Key hashes are compared, never shown.

use super::Result;

/// A member row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub password_hash: String,
    pub created_at: i64,
    pub removed_at: Option<i64>,
}

/// A session row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub token_sha256: String,
    pub member_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_seen_at: i64,
}

/// A key row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub id: String,
    pub sha256: String,
    pub last4: String,
    pub memo: String,
    pub kind: String,
    pub created_at: i64,
    pub created_by: Option<String>,
    pub last_used_at: Option<i64>,
    pub deleted_at: Option<i64>,
    pub replaces: Option<String>,
    pub expires_at: Option<i64>,
    pub retire_replaced_on_first_use: bool,
    pub rotation_deadline: Option<i64>,
}

/// An exposure row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExposureRow {
    pub key_id: String,
    pub location: String,
    pub source: String,
    pub seen_at: i64,
    pub recorded_at: i64,
}

/// An audit row as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub actor: Option<String>,
    pub action: String,
    pub key_id: Option<String>,
    pub detail: Option<String>,
}

/// A whole store, in insertion order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dump {
    pub members: Vec<MemberRow>,
    pub sessions: Vec<SessionRow>,
    pub keys: Vec<KeyRow>,
    pub exposures: Vec<ExposureRow>,
    pub audit: Vec<AuditRow>,
}

impl Dump {
    /// Rows per table: members, sessions, keys, exposures, audit.
    pub fn counts(&self) -> [usize; 5] {
        [
            self.members.len(),
            self.sessions.len(),
            self.keys.len(),
            self.exposures.len(),
            self.audit.len(),
        ]
    }
}

/// What a copy did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyReport {
    /// Rows per table in the source (members, sessions, keys, exposures, audit).
    pub source: [usize; 5],
    /// Rows newly written to the target, per table.
    pub written: [usize; 5],
}

/// Copy `from` (SQLite) into `to` (PostgreSQL, schema brought up to date) and check that the
/// target now holds exactly the source's rows: same counts per table, same key ids with the
/// same hashes, and every other row equal. Running it again writes nothing.
pub fn sqlite_to_postgres(from: &super::SqliteStore, to: &super::PgStore) -> Result<CopyReport> {
    let source = from.dump()?;
    to.migrate()?;
    let written = to.load(&source)?;
    let target = to.dump()?;
    let names = ["members", "sessions", "keys", "exposures", "audit"];
    for ((name, s), t) in names.iter().zip(source.counts()).zip(target.counts()) {
        if s != t {
            return Err(super::StoreError::Backend(format!(
                "copy check failed: {name}: {s} rows in the source, {t} in the target \
                 (was the target empty before the first copy?)"
            )));
        }
    }
    let hashes = |d: &Dump| {
        let mut v: Vec<(String, String)> = d
            .keys
            .iter()
            .map(|k| (k.id.clone(), k.sha256.clone()))
            .collect();
        v.sort();
        v
    };
    if hashes(&source) != hashes(&target) {
        return Err(super::StoreError::Backend(
            "copy check failed: the target's key hashes differ from the source's".into(),
        ));
    }
    let sorted = |mut d: Dump| {
        d.members.sort_by(|a, b| a.id.cmp(&b.id));
        d.sessions
            .sort_by(|a, b| a.token_sha256.cmp(&b.token_sha256));
        d.keys.sort_by(|a, b| a.id.cmp(&b.id));
        d.exposures
            .sort_by(|a, b| (&a.key_id, &a.location).cmp(&(&b.key_id, &b.location)));
        d.audit.sort_by_key(|a| a.id);
        d
    };
    if sorted(source.clone()) != sorted(target) {
        return Err(super::StoreError::Backend(
            "copy check failed: some rows differ between the source and the target".into(),
        ));
    }
    Ok(CopyReport {
        source: source.counts(),
        written,
    })
}
