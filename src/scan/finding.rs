//! A finding: which rule, which key (inside [`Secret`]), where, and how it was hidden.

use serde::{Deserialize, Serialize};

use crate::key::{KeyKind, Secret};
use crate::rules::Confidence;

pub use crate::decode::Encoding;
pub use crate::source::{Origin, SourceKind};

/// `location` of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// See [`SourceKind`].
    pub source: SourceKind,
    /// See [`Origin::path`].
    pub path: String,
    /// 1-based line in the text the key was found in; 0 (`null` in the report) for an image.
    #[serde(serialize_with = "zero_as_null", deserialize_with = "null_as_zero")]
    pub line: usize,
    /// 1-based column (Unicode scalar values) in that line; 0 (`null`) for an image.
    #[serde(serialize_with = "zero_as_null", deserialize_with = "null_as_zero")]
    pub column: usize,
    /// See [`Origin`].
    pub commit: Option<String>,
    /// See [`Origin`].
    pub author: Option<String>,
    /// See [`Origin`].
    pub date: Option<String>,
    /// See [`Origin`].
    pub conversation: Option<String>,
    /// See [`Origin`].
    pub message: Option<usize>,
    /// Transcript: the author role of the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// HAR: 0-based entry index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<usize>,
    /// HAR: the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Inside a container: the part (`word/document.xml`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
    /// Document: 1-based page (PDF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<usize>,
    /// Spreadsheet: sheet name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sheet: Option<String>,
    /// Spreadsheet: cell (`B7`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell: Option<String>,
    /// Presentation: 1-based slide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slide: Option<usize>,
    /// Email: the message's Message-ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Email: the message's subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// AI history: the tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// AI history: the session or conversation id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// SQLite: the table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// SQLite: the rowid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<i64>,
    /// SQLite: the column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column_name: Option<String>,
    /// Image: the key's box in pixels.
    #[serde(default, rename = "box", skip_serializing_if = "Option::is_none")]
    pub bbox: Option<crate::ocr::PixelBox>,
}

fn zero_as_null<S: serde::Serializer>(n: &usize, s: S) -> Result<S::Ok, S::Error> {
    if *n == 0 {
        s.serialize_none()
    } else {
        s.serialize_u64(*n as u64)
    }
}

fn null_as_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    Ok(Option::<usize>::deserialize(d)?.unwrap_or(0))
}

impl Location {
    /// The location of `origin` before a line and column are known (both 0); the path
    /// scrubbed of keys (a file named after one).
    fn from_origin(origin: &Origin) -> Location {
        Location::at(origin, 0, 0)
    }

    /// The location of `origin` at `line` and `column`; the path scrubbed of keys (a file or
    /// archive member named after one must not carry it into the report).
    pub(crate) fn at(origin: &Origin, line: usize, column: usize) -> Location {
        Location {
            source: origin.source.unwrap_or(SourceKind::File),
            path: crate::key::scrub_name(&origin.path).into_owned(),
            line,
            column,
            commit: origin.commit.clone(),
            author: origin.author.clone(),
            date: origin.date.clone(),
            conversation: origin.conversation.clone(),
            message: origin.message,
            role: origin.role.clone(),
            entry: origin.entry,
            field: origin.field.clone(),
            part: origin.part.clone(),
            page: origin.page,
            sheet: origin.sheet.clone(),
            cell: origin.cell.clone(),
            slide: origin.slide,
            message_id: origin.message_id.clone(),
            subject: origin.subject.clone(),
            tool: origin.tool.clone(),
            session: origin.session.clone(),
            table: origin.table.clone(),
            row: origin.row,
            column_name: origin.column_name.clone(),
            bbox: None,
        }
    }

    /// Where a key read from an image of `origin` stands: its box, no line or column.
    pub fn image(origin: &Origin, bbox: crate::ocr::PixelBox) -> Location {
        Location {
            line: 0,
            column: 0,
            bbox: Some(bbox),
            ..Location::from_origin(origin)
        }
    }

    /// `path:line:col` (an image: `path (box WxH at X,Y)`), plus the commit or conversation
    /// where there is one.
    pub fn display(&self) -> String {
        let mut s = match &self.bbox {
            Some(b) => format!(
                "{} (box {}x{} at {},{})",
                self.path, b.width, b.height, b.x, b.y
            ),
            None => format!("{}:{}:{}", self.path, self.line, self.column),
        };
        if let Some(c) = &self.commit {
            s.push_str(&format!(" @ {}", &c[..c.len().min(12)]));
        }
        if let Some(conv) = &self.conversation {
            s.push_str(&format!(" (conversation {conv:?}"));
            if let Some(m) = self.message {
                s.push_str(&format!(", message {m}"));
            }
            s.push(')');
        }
        if let Some(t) = &self.tool {
            s.push_str(&format!(" ({t}"));
            if let Some(id) = &self.session {
                s.push_str(&format!(" session {id}"));
            }
            if let Some(m) = self.message.filter(|_| self.conversation.is_none()) {
                s.push_str(&format!(", message {m}"));
            }
            s.push(')');
        }
        if let Some(t) = &self.table {
            s.push_str(&format!(" (table {t:?}"));
            if let Some(r) = self.row {
                s.push_str(&format!(", row {r}"));
            }
            if let Some(c) = &self.column_name {
                s.push_str(&format!(", column {c:?}"));
            }
            s.push(')');
        }
        if let (Some(e), Some(f)) = (self.entry, &self.field) {
            s.push_str(&format!(" (entry {e}, {f})"));
        }
        let mut at = Vec::new();
        if let Some(p) = &self.part {
            at.push(p.clone());
        }
        if let Some(sheet) = &self.sheet {
            at.push(format!("sheet {sheet:?}"));
        }
        if let Some(c) = &self.cell {
            at.push(format!("cell {c}"));
        }
        if let Some(n) = self.slide {
            at.push(format!("slide {n}"));
        }
        if let Some(n) = self.page {
            at.push(format!("page {n}"));
        }
        if let Some(m) = self.message_id.as_ref().or(self.subject.as_ref()) {
            at.push(format!("message {m}"));
        }
        if !at.is_empty() {
            s.push_str(&format!(" ({})", at.join(", ")));
        }
        s
    }
}

/// What the key service said about a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyStatus {
    /// The key works.
    Active,
    /// The key was deleted or expired.
    Revoked,
    /// The service does not know it.
    Unknown,
    /// The service could not be asked.
    Error,
}

/// `verification` of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// See [`VerifyStatus`].
    pub status: VerifyStatus,
    /// The key's id in the service.
    pub key_id: Option<String>,
    /// Its memo.
    pub memo: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: Option<String>,
    /// Who created it (email), `None` for legacy keys.
    pub created_by: Option<String>,
    /// Last use (RFC 3339), `None` if never used.
    pub last_used_at: Option<String>,
    /// When it was deleted, for revoked keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    /// The key was used after the moment this finding shows it exposed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub used_after_exposure: bool,
    /// Why verification failed, for `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One key in one place.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Rule id.
    pub rule: String,
    /// Current or legacy.
    pub kind: KeyKind,
    /// High or low.
    pub confidence: Confidence,
    /// The key itself; shows only its redacted form.
    pub secret: Secret,
    /// Where.
    pub location: Location,
    /// How it was hidden.
    pub encoding: Encoding,
    /// Filled by `--verify`.
    pub verification: Option<Verification>,
    /// Filled by `--rotate`: the replacement key's id.
    pub rotated_to: Option<String>,
    /// Length of the matched text on its line, in the same unit as the column.
    pub span: usize,
    /// Read by OCR: how many characters the checksum-guided correction changed.
    pub corrections: Option<u8>,
}

impl Finding {
    /// Sort key: path, line, column, rule.
    pub fn sort_key(&self) -> (&str, Option<&str>, usize, usize, &str) {
        (
            &self.location.path,
            self.location.commit.as_deref(),
            self.location.line,
            self.location.column,
            &self.rule,
        )
    }
}
