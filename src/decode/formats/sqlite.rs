//! SQLite databases (a browser's local storage, an editor's `state.vscdb`, an app's cache),
//! recognised by their 16-byte header only: every text and blob cell of every table, with the
//! table, rowid and column it sits in. Opened read-only and immutable (nothing is written, no
//! journal is created, a lock held by the running editor does not matter) and read within
//! [`Limits::max_part`] bytes of cells.

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::{DecodeError, Limits};

/// The first 16 bytes of every SQLite 3 database.
pub const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Whether `data` starts like a SQLite database.
pub fn looks_like_sqlite(data: &[u8]) -> bool {
    data.starts_with(SQLITE_MAGIC)
}

/// One text or blob cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlCell {
    /// The table.
    pub table: String,
    /// Its rowid (`None` for a `WITHOUT ROWID` table).
    pub row: Option<i64>,
    /// The column.
    pub column: String,
    /// The value of the row's `key` column, if the table has one (`ItemTable`, `cursorDiskKV`).
    pub key: Option<String>,
    /// The cell's bytes (text as UTF-8, a blob as it is).
    pub bytes: Vec<u8>,
}

/// What [`sqlite_cells`] read, and what it had to leave out.
#[derive(Debug, Default)]
pub struct SqlCells {
    /// The cells.
    pub cells: Vec<SqlCell>,
    /// Tables left out (or cut short), and why.
    pub problems: Vec<DecodeError>,
}

fn err(e: impl std::fmt::Display) -> DecodeError {
    DecodeError::Sqlite(e.to_string())
}

/// The text and blob cells of the database file at `path`.
pub fn sqlite_cells(path: &Path, limits: &Limits) -> Result<SqlCells, DecodeError> {
    let abs = std::path::absolute(path).map_err(err)?;
    let uri = format!("file:{}?mode=ro&immutable=1", uri_path(&abs));
    let conn = Connection::open_with_flags(
        uri.as_str(),
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    let tables: Vec<(String, bool)> = {
        let mut st = conn
            .prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'table'")
            .map_err(err)?;
        let rows = st
            .query_map([], |r| {
                let sql: Option<String> = r.get(1)?;
                Ok((
                    r.get::<_, String>(0)?,
                    sql.is_some_and(|s| s.to_ascii_uppercase().contains("WITHOUT ROWID")),
                ))
            })
            .map_err(err)?;
        rows.collect::<Result<_, _>>().map_err(err)?
    };
    let mut out = SqlCells::default();
    let mut left = limits.max_part;
    for (table, without_rowid) in tables {
        if let Err(e) = read_table(&conn, &table, without_rowid, &mut left, &mut out.cells) {
            out.problems
                .push(DecodeError::Sqlite(format!("table {table:?}: {e}")));
        }
        if left == 0 {
            out.problems.push(DecodeError::TooBig {
                part: format!("table {table:?}"),
                limit: limits.max_part,
            });
            break;
        }
    }
    Ok(out)
}

/// The path as a `file:` URI path: every byte but unreserved ones and `/` percent-encoded.
fn uri_path(path: &Path) -> String {
    let mut out = String::new();
    for &b in path.as_os_str().as_encoded_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn read_table(
    conn: &Connection,
    table: &str,
    without_rowid: bool,
    left: &mut u64,
    cells: &mut Vec<SqlCell>,
) -> Result<(), DecodeError> {
    let sql = if without_rowid {
        format!("SELECT NULL, * FROM {}", quote(table))
    } else {
        format!("SELECT rowid, * FROM {}", quote(table))
    };
    let mut st = conn.prepare(&sql).map_err(err)?;
    let columns: Vec<String> = st.column_names().iter().map(|c| (*c).to_owned()).collect();
    let key_col = columns
        .iter()
        .skip(1)
        .position(|c| c.eq_ignore_ascii_case("key"))
        .map(|i| i + 1);
    let mut rows = st.query([]).map_err(err)?;
    while let Some(r) = rows.next().map_err(err)? {
        let row: Option<i64> = r.get(0).ok();
        let key = key_col.and_then(|i| match r.get_ref(i) {
            Ok(ValueRef::Text(t)) => Some(String::from_utf8_lossy(t).into_owned()),
            _ => None,
        });
        for (i, column) in columns.iter().enumerate().skip(1) {
            let bytes = match r.get_ref(i).map_err(err)? {
                ValueRef::Text(t) | ValueRef::Blob(t) => t,
                _ => continue,
            };
            if bytes.len() as u64 > *left {
                *left = 0;
                return Ok(());
            }
            *left -= bytes.len() as u64;
            cells.push(SqlCell {
                table: table.to_owned(),
                row,
                column: column.clone(),
                key: key.clone(),
                bytes: bytes.to_vec(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_text_and_blob_cells_with_rowid() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.db");
        let c = Connection::open(&path).expect("create");
        c.execute_batch(
            "CREATE TABLE ItemTable (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB);
             INSERT INTO ItemTable VALUES ('a', 'text one'), ('b', x'00ff6869');
             CREATE TABLE n (x INTEGER);
             INSERT INTO n VALUES (1);",
        )
        .expect("fill");
        drop(c);
        let head = std::fs::read(&path).expect("read");
        assert!(looks_like_sqlite(&head));
        let got = sqlite_cells(&path, &Limits::default()).expect("open");
        let values: Vec<_> = got
            .cells
            .iter()
            .filter(|c| c.column == "value")
            .map(|c| (c.row, c.key.clone(), c.bytes.clone()))
            .collect();
        assert_eq!(
            values,
            vec![
                (Some(1), Some("a".into()), b"text one".to_vec()),
                (Some(2), Some("b".into()), vec![0, 0xff, b'h', b'i']),
            ]
        );
        assert!(got.problems.is_empty());
    }

    #[test]
    fn a_broken_file_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bad.db");
        let mut data = SQLITE_MAGIC.to_vec();
        data.extend_from_slice(&[0xAB; 200]);
        std::fs::write(&path, data).expect("write");
        assert!(sqlite_cells(&path, &Limits::default()).is_err());
    }
}
