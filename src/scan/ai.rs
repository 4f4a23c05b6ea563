//! The AI tools' own history (`offkey scan --ai-history`) and SQLite databases in general. A
//! history file's bytes are scanned, then its messages (see [`formats::ai_messages`]), whose
//! findings name the tool, session, message index and time and replace those the bytes gave for
//! the same key. A SQLite database's cells are scanned one by one, naming table, rowid and
//! column; a cell holding JSON is scanned as the strings it holds (escapes decoded), and in an
//! editor's `state.vscdb` the chat arrays in it (`conversation`, `bubbles`, `requests`,
//! `messages`) give the session and message index.

use std::cell::Cell;
use std::path::Path;

use serde_json::Value;

use super::dispatch::prefer_view;
use super::finding::{Finding, Origin, SourceKind};
use super::scanner::{Nest, Scanner};
use crate::decode::formats::{self, AiTool, Limits, strings_of, text_field};
use crate::key::scrub;

impl Scanner<'_> {
    /// Scan one history file of `tool` (read whole into `data`; `file` is where it is on disk, for
    /// the SQLite ones). `origin.path` names the file.
    pub(super) fn scan_ai(
        &mut self,
        tool: AiTool,
        data: &[u8],
        file: &Path,
        origin: &Origin,
        out: &mut Vec<Finding>,
    ) {
        let origin = Origin {
            tool: Some(tool.name().to_owned()),
            ..origin.clone()
        };
        let start = out.len();
        self.scan_blob(data, &origin, out);
        if matches!(tool, AiTool::Cursor | AiTool::VsCode | AiTool::Windsurf) {
            if file.to_string_lossy().ends_with("-wal") {
                // A write-ahead log: pages of the database as bytes, scanned above.
            } else if formats::looks_like_sqlite(data) {
                self.sqlite_at(file, &origin, out, start, true);
            } else {
                self.warn(format!(
                    "{}: not a SQLite database; scanned as bytes",
                    origin.path
                ));
            }
            return;
        }
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (messages, problem) = formats::ai_messages(tool, data, &stem);
        if let Some(e) = problem {
            self.warn(scrub(&format!("{}: {e}; the rest was read", origin.path)));
        }
        let mut view = Vec::new();
        for m in messages {
            let o = Origin {
                source: Some(SourceKind::Transcript),
                session: m.session.as_deref().map(scrub),
                message: m.index,
                date: m.date.as_deref().map(scrub),
                role: m.role.as_deref().map(scrub),
                ..origin.clone()
            };
            self.scan_blob(m.text.as_bytes(), &o, &mut view);
        }
        prefer_view(out, start, view, None, &|_| false);
    }

    /// The cell view of a SQLite database whose bytes were scanned into `out[start..]`: opened
    /// where it is on disk when `origin.path` is that file, else from a private temporary copy.
    pub(super) fn sqlite_view(
        &mut self,
        data: &[u8],
        origin: &Origin,
        out: &mut Vec<Finding>,
        start: usize,
    ) {
        let on_disk = Path::new(&origin.path);
        let same = origin.part.is_none()
            && matches!(origin.source, None | Some(SourceKind::File))
            && std::fs::metadata(on_disk)
                .is_ok_and(|m| m.is_file() && m.len() == data.len() as u64);
        if same {
            self.sqlite_at(on_disk, origin, out, start, false);
            return;
        }
        let copy = tempfile::NamedTempFile::new().and_then(|mut f| {
            std::io::Write::write_all(&mut f, data)?;
            Ok(f)
        });
        match copy {
            Ok(f) => self.sqlite_at(f.path(), origin, out, start, false),
            Err(e) => self.warn(format!(
                "{}: SQLite database not opened (temporary copy: {e}); scanned as bytes",
                origin.path
            )),
        }
    }
}

/// Where a JSON cell's strings sit: a chat message (session, index, time) or the rest.
struct JsonPiece {
    session: Option<String>,
    index: Option<usize>,
    date: Option<String>,
    text: String,
}

const MESSAGE_ARRAYS: [&str; 4] = ["conversation", "bubbles", "requests", "messages"];
const SESSION_KEYS: [&str; 4] = ["sessionId", "composerId", "tabId", "conversationId"];
const TIME_KEYS: [&str; 4] = ["timestamp", "createdAt", "time", "date"];

fn json_pieces(v: &Value, session: Option<String>, out: &mut Vec<JsonPiece>, rest: &mut String) {
    match v {
        Value::Object(o) => {
            let session = SESSION_KEYS
                .iter()
                .find_map(|k| text_field(v, k))
                .or(session);
            for (k, x) in o {
                match x {
                    Value::Array(items) if MESSAGE_ARRAYS.contains(&k.as_str()) => {
                        for (i, m) in items.iter().enumerate() {
                            let mut text = String::new();
                            strings_of(m, &mut text);
                            out.push(JsonPiece {
                                session: session.clone(),
                                index: Some(i),
                                date: TIME_KEYS.iter().find_map(|k| text_field(m, k)),
                                text,
                            });
                        }
                    }
                    Value::Object(_) | Value::Array(_) => {
                        json_pieces(x, session.clone(), out, rest)
                    }
                    other => strings_of(other, rest),
                }
            }
        }
        Value::Array(a) => a
            .iter()
            .for_each(|x| json_pieces(x, session.clone(), out, rest)),
        other => strings_of(other, rest),
    }
}

/// The session a `state.vscdb` key names (`composerData:<id>`, `bubbleId:<composer>:<bubble>`).
fn session_of_key(key: &str) -> Option<String> {
    let (kind, rest) = key.split_once(':')?;
    match kind {
        "composerData" | "bubbleId" | "checkpointId" | "messageRequestContext" => {
            Some(rest.split(':').next().unwrap_or(rest).to_owned())
        }
        _ => None,
    }
}

impl Scanner<'_> {
    /// The cell view of the SQLite database at `file`; with `chats`, an editor's `state.vscdb`
    /// whose chat arrays give sessions and message indexes.
    fn sqlite_at(
        &mut self,
        file: &Path,
        origin: &Origin,
        out: &mut Vec<Finding>,
        start: usize,
        chats: bool,
    ) {
        let cells = match formats::sqlite_cells(file, &Limits::default()) {
            Ok(c) => c,
            Err(e) => {
                self.warn(scrub(&format!("{}: {e}; scanned as bytes", origin.path)));
                return;
            }
        };
        for e in &cells.problems {
            self.warn(scrub(&format!("{}: {e}", origin.path)));
        }
        let budget = Cell::new(crate::source::ArchiveLimits::default().max_total);
        let mut view = Vec::new();
        for cell in cells.cells {
            let o = Origin {
                source: Some(SourceKind::Sqlite),
                table: Some(scrub(&cell.table)),
                row: cell.row,
                column_name: Some(scrub(&cell.column)),
                session: if chats {
                    cell.key
                        .as_deref()
                        .and_then(session_of_key)
                        .map(|s| scrub(&s))
                } else {
                    None
                },
                ..origin.clone()
            };
            let json = match cell.bytes.first() {
                Some(b'{' | b'[' | b'"') => serde_json::from_slice::<Value>(&cell.bytes).ok(),
                _ => None,
            };
            let Some(json) = json else {
                let nest = Nest {
                    depth: 1,
                    budget: &budget,
                };
                self.scan_nested(&cell.bytes, &o, &mut view, nest);
                continue;
            };
            if !chats {
                let mut text = String::new();
                strings_of(&json, &mut text);
                self.scan_blob(text.as_bytes(), &o, &mut view);
                continue;
            }
            let (mut pieces, mut rest) = (Vec::new(), String::new());
            json_pieces(&json, None, &mut pieces, &mut rest);
            pieces.push(JsonPiece {
                session: None,
                index: None,
                date: None,
                text: rest,
            });
            for p in pieces {
                let po = Origin {
                    source: Some(if p.index.is_some() {
                        SourceKind::Transcript
                    } else {
                        SourceKind::Sqlite
                    }),
                    session: p
                        .session
                        .as_deref()
                        .map(scrub)
                        .or_else(|| o.session.clone()),
                    message: p.index,
                    date: p.date.as_deref().map(scrub),
                    ..o.clone()
                };
                self.scan_blob(p.text.as_bytes(), &po, &mut view);
            }
        }
        prefer_view(out, start, view, None, &|_| false);
    }
}
