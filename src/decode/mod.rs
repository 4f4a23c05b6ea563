//! Views of bytes in which keys hide: JSON escapes, percent-encoding, base64, ANSI colour codes,
//! UTF-16. Pure functions over bytes; the matcher (`scan`) decides where to apply them, only in
//! the neighbourhood of a prefilter hit, so decoding costs nothing where there is nothing.
//! Containers whose text is elsewhere than their bytes (office documents, email) are in
//! [`formats`], one file per format.

mod around;
mod error;
pub mod formats;
pub mod json_index;
mod limits;
mod runs;

pub use around::escape_before;
pub use error::DecodeError;
pub use formats::json_export::{
    Fetch, Parsed, Part, Structured, parts as structured_parts, parts_of, parts_of_within,
    parts_within as structured_parts_within, sniff,
};
pub use json_index::{Indexer, Skeleton};
pub use limits::{Limits, PART_MAX};
pub use runs::{Decoded, base64_token, decode_run, encoded_literals, reencode_base64};

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
    /// In an email part sent quoted-printable (a soft line break inside it, `=5F` for `_`).
    QuotedPrintable,
    /// Written with XML or HTML character references (`&#95;`).
    XmlEntity,
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
            Encoding::QuotedPrintable => "quoted-printable",
            Encoding::XmlEntity => "xml-entity",
        }
    }
}

/// The text of a UTF-16 (LE or BE) file that starts with a byte-order mark; `None` otherwise.
/// Malformed sequences (unpaired surrogates, an odd last byte) become U+FFFD.
pub fn utf16_with_bom(data: &[u8]) -> Option<String> {
    let enc = match data {
        [0xff, 0xfe, ..] => encoding_rs::UTF_16LE,
        [0xfe, 0xff, ..] => encoding_rs::UTF_16BE,
        _ => return None,
    };
    Some(enc.decode_without_bom_handling(&data[2..]).0.into_owned())
}

/// The text of a UTF-16 stream (its byte-order mark already read), as UTF-8, a read at a time
/// (`encoding_rs_io`, as ripgrep reads UTF-16): what [`utf16_with_bom`] gives for the whole, in
/// constant memory.
pub struct Utf16Reader<R: std::io::Read>(encoding_rs_io::DecodeReaderBytes<R, Vec<u8>>);

impl<R: std::io::Read> Utf16Reader<R> {
    /// Read UTF-16 (little-endian when `le`) from `inner`.
    pub fn new(inner: R, le: bool) -> Self {
        let enc = if le {
            encoding_rs::UTF_16LE
        } else {
            encoding_rs::UTF_16BE
        };
        Utf16Reader(
            encoding_rs_io::DecodeReaderBytesBuilder::new()
                .encoding(Some(enc))
                .build(inner),
        )
    }
}

impl<R: std::io::Read> std::io::Read for Utf16Reader<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(out)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Hands out at most `step` bytes per read.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(self.1).min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn utf16_reader_agrees_with_the_whole_decode() {
        // Pairs, lone high and low surrogates (also last), and an odd last byte, split at
        // every place by reads of 1 to 7 bytes.
        let text = "key: oc_live_x \u{1F511} é\n";
        let mut units: Vec<u16> = text.encode_utf16().collect();
        units.extend([0xD83D, 0x0041, 0xDC11, 0x0042, 0xD83D, 0xDD11, 0xD800]);
        for le in [true, false] {
            let mut data = if le {
                vec![0xff, 0xfe]
            } else {
                vec![0xfe, 0xff]
            };
            for u in &units {
                data.extend(if le { u.to_le_bytes() } else { u.to_be_bytes() });
            }
            for odd in [false, true] {
                let mut d = data.clone();
                if odd {
                    d.push(0x41);
                }
                let whole = utf16_with_bom(&d).expect("bom");
                for step in 1..=7 {
                    let mut got = String::new();
                    Utf16Reader::new(Trickle(&d[2..], step), le)
                        .read_to_string(&mut got)
                        .expect("decodes");
                    assert_eq!(got, whole, "le {le}, odd {odd}, step {step}");
                }
            }
        }
    }
}
