//! Why a file, or a part of it, could not be decoded.

/// Why a document or message could not be read (or a part of it left out).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The zip container.
    #[error("not a readable zip container ({0})")]
    Zip(String),
    /// A part is not well-formed XML.
    #[error("{part}: not well-formed XML at byte {at} ({reason})")]
    Xml {
        /// The part's name in the container.
        part: String,
        /// Byte offset of the error in the part.
        at: usize,
        /// The parser's words.
        reason: String,
    },
    /// A part over [`Limits::max_part`] or [`Limits::max_ratio`].
    #[error("{part}: expands beyond {limit} bytes; left out")]
    TooBig {
        /// The part.
        part: String,
        /// The limit it met.
        limit: u64,
    },
    /// Reading a part failed.
    #[error("{part}: cannot decompress ({reason})")]
    Read {
        /// The part.
        part: String,
        /// Why.
        reason: String,
    },
    /// A PDF that does not parse.
    #[error("not a readable PDF ({0})")]
    Pdf(String),
    /// A SQLite database that cannot be read.
    #[error("not a readable SQLite database ({0})")]
    Sqlite(String),
    /// An AI tool's history file that cannot be read (or only in part).
    #[error("{tool} history: {reason}")]
    History {
        /// The tool (`claude-code`, …).
        tool: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// Not an email message.
    #[error("not a MIME message")]
    NotMail,
    /// JSON that is not well-formed (or not the shape its format has) at a byte of the file.
    #[error("not valid JSON at byte {at}: {what}")]
    Json {
        /// Byte offset in the file.
        at: usize,
        /// What was wrong.
        what: String,
    },
    /// A JSON document cut short.
    #[error("not valid JSON: the file ends inside a value ({len} bytes)")]
    JsonEnds {
        /// The file's length.
        len: usize,
    },
    /// A HAR capture without its `log` object.
    #[error("not a HAR capture: no \"log\" object")]
    NotHar,
    /// A ChatGPT `mapping` that is not well-formed, indexed on its own.
    #[error("in the mapping at byte {at}: {inner}")]
    InMapping {
        /// Where the mapping starts.
        at: usize,
        /// What is wrong in it.
        inner: Box<DecodeError>,
    },
    /// A line of a chat JSONL file.
    #[error("line {line}: {what}")]
    JsonLine {
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        what: String,
    },
    /// Reading part of the file again failed.
    #[error("reading bytes {start}..{end}: {source}")]
    Fetch {
        /// First byte.
        start: usize,
        /// End (exclusive).
        end: usize,
        /// The I/O error.
        source: std::io::Error,
    },
}
