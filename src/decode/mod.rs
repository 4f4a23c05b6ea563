//! Views of bytes in which keys hide: JSON escapes, percent-encoding, base64, ANSI colour codes,
//! UTF-16. Pure functions over bytes; the matcher (`scan`) decides where to apply them, only in
//! the neighbourhood of a prefilter hit, so decoding costs nothing where there is nothing.

mod around;
mod runs;
mod skeleton;
mod structured;

pub use around::escape_before;
pub use runs::{Decoded, base64_token, decode_run, encoded_literals, reencode_base64};
pub use skeleton::{Indexer, Skeleton};
pub use structured::{
    Fetch, PART_MAX, Parsed, Part, Structured, parts as structured_parts, parts_of, sniff,
};

use serde::{Deserialize, Serialize};

/// How a key was hidden in the bytes it was found in (the report's `encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// As is.
    Plain,
    /// Inside a JSON string, right after an escape (`\n`, `\u201c`, …), or written with escapes.
    JsonEscaped,
    /// Percent-encoded (`%3D` before it, or `oc%5Flive%5F…`).
    UrlEncoded,
    /// Inside a base64 or base64url token (an HTTP Basic header, a Kubernetes Secret).
    Base64,
    /// Wrapped in ANSI escape sequences (coloured terminal output).
    Ansi,
    /// UTF-16 text.
    #[serde(rename = "utf-16")]
    Utf16,
}

impl Encoding {
    /// The report's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Plain => "plain",
            Encoding::JsonEscaped => "json-escaped",
            Encoding::UrlEncoded => "url-encoded",
            Encoding::Base64 => "base64",
            Encoding::Ansi => "ansi",
            Encoding::Utf16 => "utf-16",
        }
    }
}

/// The text of a UTF-16 (LE or BE) file that starts with a byte-order mark; `None` otherwise.
/// Unpaired surrogates become U+FFFD.
pub fn utf16_with_bom(data: &[u8]) -> Option<String> {
    let le = match data {
        [0xff, 0xfe, ..] => true,
        [0xfe, 0xff, ..] => false,
        _ => return None,
    };
    let units = data[2..].chunks_exact(2).map(|c| {
        if le {
            u16::from_le_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], c[1]])
        }
    });
    Some(
        char::decode_utf16(units)
            .map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect(),
    )
}

/// An encoded form of a keyword, as a prefilter literal stands for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Base64 (or base64url): the literal starts `lead` characters after the start of its
    /// 4-character group.
    Base64 {
        /// Characters between the group start and the literal.
        lead: u8,
    },
    /// `%5F`-style percent-encoding of the keyword's punctuation.
    Percent,
    /// JSON `\u005f`-style escapes of the keyword's punctuation.
    JsonUnicode,
    /// UTF-16 little-endian.
    Utf16Le,
    /// UTF-16 big-endian.
    Utf16Be,
}

impl Form {
    /// The report's encoding for a key found through this form.
    pub fn encoding(self) -> Encoding {
        match self {
            Form::Base64 { .. } => Encoding::Base64,
            Form::Percent => Encoding::UrlEncoded,
            Form::JsonUnicode => Encoding::JsonEscaped,
            Form::Utf16Le | Form::Utf16Be => Encoding::Utf16,
        }
    }
}
