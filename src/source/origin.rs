//! Where a blob came from: the part of a finding's location that the source knows.

use serde::{Deserialize, Serialize};

/// Where bytes came from, as `location.source` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A file on disk.
    File,
    /// A blob in git history.
    Git,
    /// The git index (what the next commit would hold).
    Staged,
    /// Standard input.
    Stdin,
    /// A message of an exported AI conversation.
    Transcript,
    /// A field of a HAR capture.
    Har,
    /// The text of an office document (a Word run, a cell, a slide).
    Document,
    /// A part or attachment of an email message.
    Email,
    /// A cell of a SQLite database.
    Sqlite,
    /// Text in an image, read by OCR.
    Image,
}

/// Where a blob came from; a finding adds line and column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// `location.source`.
    pub source: Option<SourceKind>,
    /// Path as the user named it, relative to the scan root; `-` for stdin.
    pub path: String,
    /// Git: the oldest commit that introduced the blob.
    pub commit: Option<String>,
    /// Git: its author (`Name <email>`).
    pub author: Option<String>,
    /// Git: its date (RFC 3339). Transcripts: the message time.
    pub date: Option<String>,
    /// Transcript: conversation title or id.
    pub conversation: Option<String>,
    /// Transcript: 0-based message index.
    pub message: Option<usize>,
    /// Transcript: who wrote the message.
    pub role: Option<String>,
    /// HAR: 0-based entry index.
    pub entry: Option<usize>,
    /// HAR: which field (`request.headers[Authorization]`, …).
    pub field: Option<String>,
    /// Inside a container: the part (`word/document.xml`, `invoice.docx!word/document.xml`).
    pub part: Option<String>,
    /// Document: 1-based page (PDF).
    pub page: Option<usize>,
    /// Spreadsheet: the sheet name.
    pub sheet: Option<String>,
    /// Spreadsheet: the cell (`B7`).
    pub cell: Option<String>,
    /// Presentation: 1-based slide.
    pub slide: Option<usize>,
    /// Email: the message's Message-ID.
    pub message_id: Option<String>,
    /// Email: the message's subject.
    pub subject: Option<String>,
    /// AI history: the tool (`claude-code`, `codex`, `gemini-cli`, `cursor`, `vscode`, `windsurf`).
    pub tool: Option<String>,
    /// AI history: the session or conversation id.
    pub session: Option<String>,
    /// SQLite: the table.
    pub table: Option<String>,
    /// SQLite: the rowid.
    pub row: Option<i64>,
    /// SQLite: the column.
    pub column_name: Option<String>,
}
