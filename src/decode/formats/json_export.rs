//! Structured files whose text lives in JSON fields: AI chat exports (ChatGPT and Claude
//! `conversations.json`, OpenAI-style chat JSONL) and HAR captures. Detected by content, not by
//! file name; each yields the texts to scan with where they sit (conversation, message, role,
//! time; or HAR entry and field). The file is indexed first ([`crate::decode::json_index`]);
//! each format's file ([`super::chatgpt`], [`super::claude`], [`super::jsonl`], [`super::har`])
//! reads only the messages holding an interesting offset.

use std::borrow::Cow;

use serde_json::Value;

use crate::decode::json_index::{Conversation, Indexer, Skeleton, Span};
use crate::decode::{DecodeError, Limits};

/// Which structured format a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Structured {
    /// ChatGPT `conversations.json`.
    ChatGpt,
    /// Claude `conversations.json`.
    Claude,
    /// OpenAI-style chat JSONL: `{"messages": [{"role", "content"}]}` per line.
    ChatJsonl,
    /// HAR 1.2 (`log.entries[]`).
    Har,
}

/// One text to scan and where it sits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Part {
    /// The decoded text.
    pub text: String,
    /// Transcript: conversation title (or id).
    pub conversation: Option<String>,
    /// Transcript: 0-based message index.
    pub message: Option<usize>,
    /// Transcript: author role.
    pub role: Option<String>,
    /// Transcript: message time (RFC 3339).
    pub timestamp: Option<String>,
    /// HAR: 0-based entry index.
    pub entry: Option<usize>,
    /// HAR: field name.
    pub field: Option<String>,
}

/// Guess the format from the first bytes (cheap: looks at most at 64 KiB).
pub fn sniff(data: &[u8]) -> Option<Structured> {
    let head = &data[..data.len().min(64 * 1024)];
    let first = head.iter().copied().find(|b| !b.is_ascii_whitespace())?;
    let has = |s: &[u8]| memchr::memmem::find(head, s).is_some();
    match first {
        b'[' if has(b"\"mapping\"") => Some(Structured::ChatGpt),
        b'[' if has(b"\"chat_messages\"") => Some(Structured::Claude),
        b'{' if has(b"\"log\"") && has(b"\"entries\"") => Some(Structured::Har),
        b'{' if has(b"\"mapping\"") => Some(Structured::ChatGpt),
        b'{' if has(b"\"chat_messages\"") => Some(Structured::Claude),
        b'{' if has(b"\"messages\"") && has(b"\"role\"") => Some(Structured::ChatJsonl),
        _ => None,
    }
}

/// What [`parts`] read.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The texts, with where they sit.
    pub parts: Vec<Part>,
    /// Messages left out for being over [`Limits::max_message`] bytes.
    pub skipped: Vec<Span>,
}

/// Fetches the bytes `start..end` of the file being read (a slice of it in memory, or a
/// positioned read of a file scanned in chunks).
pub type Fetch<'a, 'f> = dyn FnMut(usize, usize) -> std::io::Result<Cow<'a, [u8]>> + 'f;

/// What a format's reader is given besides the index: which spans hold an interesting offset,
/// the limits, and where to note the messages left out.
pub(super) struct Reading<'w> {
    wanted: &'w dyn Fn(Span) -> bool,
    pub limits: &'w Limits,
    skipped: Vec<Span>,
}

impl Reading<'_> {
    /// Whether `span` holds an interesting offset.
    pub fn wanted(&self, span: Span) -> bool {
        (self.wanted)(span)
    }

    /// Whether `span` is over [`Limits::max_message`] (noted as left out when it is).
    pub fn too_big(&mut self, span: Span) -> bool {
        let big = span.1.saturating_sub(span.0) > self.limits.max_message;
        if big {
            self.skipped.push(span);
        }
        big
    }
}

/// The bytes `start..end`, through `fetch`.
pub(super) fn fetch_span<'a>(
    fetch: &mut Fetch<'a, '_>,
    (start, end): Span,
) -> Result<Cow<'a, [u8]>, DecodeError> {
    fetch(start, end).map_err(|source| DecodeError::Fetch { start, end, source })
}

/// The texts of a structured file that contain one of the `interesting` byte offsets (keys and
/// context words the plain pass saw), given the file's [`Skeleton`] (where its messages sit),
/// within the default [`Limits`]. Only the messages holding an interesting offset are fetched
/// and decoded.
pub fn parts(
    skel: &Skeleton,
    kind: Structured,
    interesting: &[usize],
    fetch: &mut Fetch<'_, '_>,
) -> Result<Parsed, DecodeError> {
    parts_within(skel, kind, interesting, fetch, &Limits::default())
}

/// [`parts`] within `limits`.
pub fn parts_within(
    skel: &Skeleton,
    kind: Structured,
    interesting: &[usize],
    fetch: &mut Fetch<'_, '_>,
    limits: &Limits,
) -> Result<Parsed, DecodeError> {
    let mut sorted = interesting.to_vec();
    sorted.sort_unstable();
    let wanted = |(start, end): Span| -> bool {
        let i = sorted.partition_point(|&o| o < start);
        i < sorted.len() && sorted[i] < end
    };
    let mut r = Reading {
        wanted: &wanted,
        limits,
        skipped: Vec::new(),
    };
    let parts = match kind {
        Structured::ChatJsonl => super::jsonl::parts(skel, &mut r, fetch),
        Structured::ChatGpt => super::chatgpt::parts(skel, &mut r, fetch),
        Structured::Claude => super::claude::parts(skel, &mut r, fetch),
        Structured::Har => super::har::parts(skel, &mut r, fetch),
    }?;
    Ok(Parsed {
        parts,
        skipped: r.skipped,
    })
}

/// [`parts`] of a document held whole in memory.
pub fn parts_of(
    data: &[u8],
    kind: Structured,
    interesting: &[usize],
) -> Result<Parsed, DecodeError> {
    parts_of_within(data, kind, interesting, &Limits::default())
}

/// [`parts_of`] within `limits`.
pub fn parts_of_within(
    data: &[u8],
    kind: Structured,
    interesting: &[usize],
    limits: &Limits,
) -> Result<Parsed, DecodeError> {
    let mut ix = Indexer::without_nodes(kind);
    ix.feed(data);
    let skel = ix.finish()?;
    parts_within(
        &skel,
        kind,
        interesting,
        &mut |a, b| Ok(Cow::Borrowed(&data[a..b])),
        limits,
    )
}

/// Fetch one span and parse it.
pub(super) fn parse_span(span: Span, fetch: &mut Fetch<'_, '_>) -> Result<Value, DecodeError> {
    parse_at(&fetch_span(fetch, span)?, span.0)
}

/// Parse the JSON value that starts at byte `at` of the file.
pub(super) fn parse_at(bytes: &[u8], at: usize) -> Result<Value, DecodeError> {
    serde_json::from_slice(bytes).map_err(|e| DecodeError::Json {
        at,
        what: e.to_string(),
    })
}

/// Every string inside `v`, joined by newlines.
pub(super) fn all_strings(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(s);
        }
        Value::Array(a) => a.iter().for_each(|x| all_strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| all_strings(x, out)),
        _ => {}
    }
}

/// The string field `key` of `v`.
pub(super) fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// A conversation's name: its title unless empty, else its ids.
pub(super) fn conversation_title(conv: &Conversation) -> Option<String> {
    conv.title
        .as_deref()
        .filter(|t| !t.is_empty())
        .or(conv.conversation_id.as_deref())
        .or(conv.id.as_deref())
        .map(str::to_owned)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Every offset of `d`.
    pub fn all(d: &[u8]) -> Vec<usize> {
        (0..d.len()).collect()
    }

    /// Limits small enough that the unit tests' documents meet them: messages over 256
    /// bytes, ChatGPT mappings over 64 bytes read node by node, 7 bytes at a time.
    pub fn small() -> Limits {
        Limits {
            max_message: 256,
            max_mapping_at_once: 64,
            read_piece: 7,
            ..Limits::default()
        }
    }

    #[test]
    fn messages_over_the_size_limit_are_left_out_and_listed() {
        let limits = small();
        let big = "b".repeat(limits.max_message);
        let claude = format!(
            r#"[{{"name":"c","chat_messages":[{{"sender":"human","text":"{big} hit"}},{{"sender":"assistant","text":"small hit"}}]}}]"#
        );
        let har = format!(
            r#"{{"log":{{"entries":[{{"request":{{"url":"https://x/{big}hit"}}}},{{"request":{{"url":"https://x/small-hit"}}}}]}}}}"#
        );
        let jl = format!(
            "{{\"messages\":[{{\"role\":\"user\",\"content\":\"{big} hit\"}}]}}\n{{\"messages\":[{{\"role\":\"user\",\"content\":\"small hit\"}}]}}\n"
        );
        let gpt = format!(
            r#"[{{"title":"t","mapping":{{"r":{{"message":{{"content":{{"parts":["{big} hit"]}}}},"children":["s"]}},"s":{{"message":{{"content":{{"parts":["small hit"]}}}},"parent":"r"}}}}}}]"#
        );
        for (doc, kind, small_at) in [
            (claude, Structured::Claude, 1),
            (har, Structured::Har, 1),
            (jl, Structured::ChatJsonl, 0),
            (gpt, Structured::ChatGpt, 1),
        ] {
            let d = doc.as_bytes();
            let hits: Vec<usize> = d
                .windows(3)
                .enumerate()
                .filter(|(_, w)| *w == b"hit")
                .map(|(i, _)| i)
                .collect();
            let p = parts_of_within(d, kind, &hits, &limits).expect("parses");
            let texts: Vec<&str> = p.parts.iter().map(|x| x.text.as_str()).collect();
            assert!(
                texts.iter().all(|t| !t.contains(&big)),
                "{kind:?}: {texts:?}"
            );
            let small = p
                .parts
                .iter()
                .find(|x| x.text.contains("small"))
                .unwrap_or_else(|| panic!("{kind:?}: {texts:?}"));
            // The left-out message still counts in the order of the others.
            assert_eq!(small.message.or(small.entry), Some(small_at), "{kind:?}");
            assert_eq!(p.skipped.len(), 1, "{kind:?}");
            let (a, b) = p.skipped[0];
            assert!(
                b - a > limits.max_message && d[a..b].windows(3).any(|w| w == b"hit"),
                "{kind:?}"
            );
            // Within the default limits the same message is read.
            let p = parts_of(d, kind, &hits).expect("parses");
            assert!(p.skipped.is_empty(), "{kind:?}");
            assert!(p.parts.iter().any(|x| x.text.contains(&big)), "{kind:?}");
        }
    }

    #[test]
    fn a_failed_fetch_names_the_bytes() {
        let doc = br#"[{"name":"c","chat_messages":[{"text":"hit"}]}]"#;
        let mut ix = Indexer::without_nodes(Structured::Claude);
        ix.feed(doc);
        let skel = ix.finish().expect("indexes");
        let e = parts(&skel, Structured::Claude, &[35], &mut |_, _| {
            Err(std::io::Error::other("disk gone"))
        })
        .expect_err("cannot read");
        assert!(matches!(e, DecodeError::Fetch { .. }), "{e:?}");
        assert!(e.to_string().starts_with("reading bytes 30.."), "{e}");
    }
}
