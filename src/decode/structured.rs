//! Structured files whose text lives in JSON fields: AI chat exports (ChatGPT and Claude
//! `conversations.json`, OpenAI-style chat JSONL) and HAR captures. Detected by content, not by
//! file name; each yields the texts to scan with where they sit (conversation, message, role,
//! time; or HAR entry and field).

use std::borrow::Cow;
use std::collections::HashMap;

use base64::Engine;
use serde_json::Value;

use serde_json::value::RawValue;

use super::skeleton::{Conv, Indexer, Node, Skeleton, Span, hash_id};

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

/// Largest message (chat message, HAR entry, JSONL line, ChatGPT mapping node) fetched and
/// parsed to name where a finding sits: parsing holds it about three times over. A bigger one
/// is left out, listed in [`Parsed::skipped`]; the findings in it keep their line and column.
#[cfg(not(test))]
pub const PART_MAX: usize = 16 << 20;
/// (Unit tests use a small limit.)
#[cfg(test)]
pub const PART_MAX: usize = 256;

/// What [`parts`] read.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The texts, with where they sit.
    pub parts: Vec<Part>,
    /// Messages left out for being over [`PART_MAX`] bytes.
    pub skipped: Vec<Span>,
}

/// Whether `span` is over [`PART_MAX`] (noted in `skipped` when it is).
fn too_big(span: Span, skipped: &mut Vec<Span>) -> bool {
    let big = span.1.saturating_sub(span.0) > PART_MAX;
    if big {
        skipped.push(span);
    }
    big
}

/// Fetches the bytes `start..end` of the file being read (a slice of it in memory, or a
/// positioned read of a file scanned in chunks).
pub type Fetch<'a, 'f> = dyn FnMut(usize, usize) -> Result<Cow<'a, [u8]>, String> + 'f;

/// The texts of a structured file that contain one of the `interesting` byte offsets (keys and
/// context words the plain pass saw), given the file's [`Skeleton`] (where its messages sit).
/// Only the messages holding an interesting offset are fetched and decoded.
pub fn parts(
    skel: &Skeleton,
    kind: Structured,
    interesting: &[usize],
    fetch: &mut Fetch<'_, '_>,
) -> Result<Parsed, String> {
    let mut sorted = interesting.to_vec();
    sorted.sort_unstable();
    let wanted = |(start, end): Span| -> bool {
        let i = sorted.partition_point(|&o| o < start);
        i < sorted.len() && sorted[i] < end
    };
    let mut skipped = Vec::new();
    let parts = match kind {
        Structured::ChatJsonl => jsonl(skel, &wanted, fetch, &mut skipped),
        Structured::ChatGpt => chatgpt(skel, &wanted, fetch, &mut skipped),
        Structured::Claude => claude(skel, &wanted, fetch, &mut skipped),
        Structured::Har => har(skel, &wanted, fetch, &mut skipped),
    }?;
    Ok(Parsed { parts, skipped })
}

/// [`parts`] of a document held whole in memory.
pub fn parts_of(data: &[u8], kind: Structured, interesting: &[usize]) -> Result<Parsed, String> {
    let mut ix = Indexer::without_nodes(kind);
    ix.feed(data);
    let skel = ix.finish()?;
    parts(&skel, kind, interesting, &mut |a, b| {
        Ok(Cow::Borrowed(&data[a..b]))
    })
}

/// Fetch one span and parse it.
fn parse_span(span: Span, fetch: &mut Fetch<'_, '_>) -> Result<Value, String> {
    parse_at(&fetch(span.0, span.1)?, span.0)
}

/// Parse the JSON value that starts at byte `at` of the file.
fn parse_at(bytes: &[u8], at: usize) -> Result<Value, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON at byte {at}: {e}"))
}

/// Every string inside `v`, joined by newlines.
fn all_strings(v: &Value, out: &mut String) {
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

/// The text of a ChatGPT `content`: its `parts` (strings, or every string inside a part
/// object), else every string but the `content_type` tag.
fn content_text(c: &Value, out: &mut String) {
    if let Some(parts) = c.get("parts").and_then(Value::as_array) {
        parts.iter().for_each(|p| all_strings(p, out));
    } else if let Some(o) = c.as_object() {
        o.iter()
            .filter(|(k, _)| k.as_str() != "content_type")
            .for_each(|(_, v)| all_strings(v, out));
    } else {
        all_strings(c, out);
    }
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn unix_time(v: Option<&Value>) -> Option<String> {
    let secs = v?.as_f64()?;
    chrono::DateTime::from_timestamp(secs as i64, ((secs.fract()) * 1e9) as u32)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// A conversation's name: its title unless empty, else its ids.
fn conv_title(conv: &Conv) -> Option<String> {
    conv.title
        .as_deref()
        .filter(|t| !t.is_empty())
        .or(conv.conv_id.as_deref())
        .or(conv.id.as_deref())
        .map(str::to_owned)
}

/// Largest ChatGPT `mapping` read in one piece for a conversation with a hit. (Unit tests use
/// a tiny limit so their exports go the node-by-node way; the integration tests go the other.)
#[cfg(not(test))]
const MAPPING_AT_ONCE: usize = 4 << 20;
#[cfg(test)]
const MAPPING_AT_ONCE: usize = 64;

/// Bytes of a large `mapping` read at a time to index its nodes (tiny in unit tests, so
/// their mappings cross many reads).
const MAPPING_PIECE: usize = if cfg!(test) { 7 } else { 1 << 20 };

/// A ChatGPT node with its links, ids hashed.
struct Linked {
    id: u64,
    parent: Option<u64>,
    children: Vec<u64>,
    message: Option<Span>,
}

/// The links of a ChatGPT mapping node too big to hold, streamed from the file a piece at a
/// time without keeping its message (which stands in as the whole node's span). `None` when
/// the node is not an object with the expected fields, as for a small node.
fn big_node(n: &Node, fetch: &mut Fetch<'_, '_>) -> Option<Linked> {
    #[derive(serde::Deserialize)]
    struct Fields {
        #[serde(default)]
        parent: Option<Value>,
        #[serde(default)]
        children: Option<Value>,
        #[serde(default)]
        message: Option<serde::de::IgnoredAny>,
    }
    /// The node's bytes as a reader.
    struct Pieces<'r, 'a, 'f> {
        fetch: &'r mut Fetch<'a, 'f>,
        at: usize,
        end: usize,
        piece: Vec<u8>,
        used: usize,
    }
    impl std::io::Read for Pieces<'_, '_, '_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.used == self.piece.len() {
                if self.at == self.end {
                    return Ok(0);
                }
                let to = (self.at + MAPPING_PIECE).min(self.end);
                self.piece = (self.fetch)(self.at, to)
                    .map_err(std::io::Error::other)?
                    .into_owned();
                self.at = to;
                self.used = 0;
            }
            let n = out.len().min(self.piece.len() - self.used);
            out[..n].copy_from_slice(&self.piece[self.used..self.used + n]);
            self.used += n;
            Ok(n)
        }
    }
    let r = Pieces {
        fetch,
        at: n.span.0,
        end: n.span.1,
        piece: Vec::new(),
        used: 0,
    };
    let f: Fields = serde_json::from_reader(r).ok()?;
    let id = |v: &Value| v.as_str().map(|s| hash_id(s.as_bytes()));
    Some(Linked {
        id: n.id,
        parent: f.parent.as_ref().and_then(id),
        children: f
            .children
            .as_ref()
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(id)
            .collect(),
        message: f.message.map(|_| n.span),
    })
}

fn chatgpt(
    skel: &Skeleton,
    wanted: &dyn Fn(Span) -> bool,
    fetch: &mut Fetch<'_, '_>,
    skipped: &mut Vec<Span>,
) -> Result<Vec<Part>, String> {
    let mut out = Vec::new();
    for conv in &skel.convs {
        // Only a conversation with a hit in its mapping has its nodes indexed (from the
        // mapping alone: the scan's index skips mappings whole) and its links read.
        let Some(map) = conv.mapping.filter(|&m| wanted(m)) else {
            continue;
        };
        // The mapping is read in one piece when small, else node by node (and each wanted
        // message again), so one huge conversation is never held whole.
        let whole = if map.1 - map.0 <= MAPPING_AT_ONCE {
            Some(fetch(map.0, map.1)?)
        } else {
            None
        };
        let conv_nodes = mapping_nodes(map, whole.as_deref(), fetch)?;
        let read = |span: Span, fetch: &mut Fetch<'_, '_>| -> Result<Cow<'_, [u8]>, String> {
            match &whole {
                Some(b) => Ok(Cow::Borrowed(
                    b.get(span.0.wrapping_sub(map.0)..span.1.wrapping_sub(map.0))
                        .unwrap_or_default(),
                )),
                None => Ok(Cow::Owned(fetch(span.0, span.1)?.into_owned())),
            }
        };
        let mut nodes = Vec::with_capacity(conv_nodes.len());
        for n in &conv_nodes {
            // A node too big to hold (a mapping that big is read piece by piece) has its links
            // streamed; its message stays in the order, to be left out below if wanted.
            if n.span.1 - n.span.0 > PART_MAX {
                if let Some(l) = big_node(n, fetch) {
                    nodes.push(l);
                }
                continue;
            }
            // Read leniently, as the export's own viewer would: a node whose fields are not
            // what they should be just has no links (or no message) rather than failing the file.
            let bytes = read(n.span, fetch)?;
            let raw: &[u8] = &bytes;
            let Ok(fields) = serde_json::from_slice::<HashMap<Cow<'_, str>, &RawValue>>(raw) else {
                continue;
            };
            let field = |k: &str| fields.get(k).map(|r| r.get());
            let message = field("message").filter(|m| m.starts_with('{')).map(|m| {
                let at = n.span.0 + (m.as_ptr() as usize - raw.as_ptr() as usize);
                (at, at + m.len())
            });
            let text = |r: &str| serde_json::from_str::<String>(r).ok();
            let children = field("children")
                .and_then(|r| serde_json::from_str::<Vec<&RawValue>>(r).ok())
                .unwrap_or_default();
            nodes.push(Linked {
                id: n.id,
                parent: field("parent")
                    .and_then(text)
                    .map(|p| hash_id(p.as_bytes())),
                children: children
                    .iter()
                    .filter_map(|c| text(c.get()))
                    .map(|c| hash_id(c.as_bytes()))
                    .collect(),
                message,
            });
        }
        let title = conv_title(conv);
        for (idx, span) in conversation_order(&nodes).into_iter().enumerate() {
            if !wanted(span) || too_big(span, skipped) {
                continue;
            }
            let m = parse_at(&read(span, fetch)?, span.0)?;
            let mut text = String::new();
            if let Some(c) = m.get("content") {
                content_text(c, &mut text);
            }
            if let Some(meta) = m.get("metadata") {
                let mut extra = String::new();
                all_strings(meta, &mut extra);
                if !extra.is_empty() {
                    text.push('\n');
                    text.push_str(&extra);
                }
            }
            out.push(Part {
                text,
                conversation: title.clone(),
                message: Some(idx),
                role: m.get("author").and_then(|a| str_of(a, "role")),
                timestamp: unix_time(m.get("create_time")),
                ..Part::default()
            });
        }
    }
    Ok(out)
}

/// The nodes of the ChatGPT `mapping` at `map` (held in `whole`, or read a piece at a time):
/// the mapping indexed on its own, as the one conversation of a document made around it and
/// placed so that spans and error offsets are those of the file.
fn mapping_nodes(
    map: Span,
    whole: Option<&[u8]>,
    fetch: &mut Fetch<'_, '_>,
) -> Result<Vec<Node>, String> {
    const BEFORE: &[u8] = b"{\"mapping\":";
    // A mapping always has at least `{"mapping":` before it in its file.
    let from = map
        .0
        .checked_sub(BEFORE.len())
        .ok_or("a mapping at the file's start")?;
    let mut ix = Indexer::new(Structured::ChatGpt).starting_at(from);
    ix.feed(BEFORE);
    match whole {
        Some(bytes) => ix.feed(bytes),
        None => {
            let mut at = map.0;
            while at < map.1 {
                let to = (at + MAPPING_PIECE).min(map.1);
                ix.feed(&fetch(at, to)?);
                at = to;
            }
        }
    }
    ix.feed(b"}");
    let skel = ix
        .finish()
        .map_err(|e| format!("in the mapping at byte {}: {e}", map.0))?;
    Ok(skel
        .convs
        .into_iter()
        .next()
        .map(|c| c.nodes)
        .unwrap_or_default())
}

/// Messages of a ChatGPT `mapping` in conversation order: depth first from the root node(s)
/// along `children`, so every branch is included; nodes no walk reaches come last (roots, and
/// those, in file order).
fn conversation_order(nodes: &[Linked]) -> Vec<Span> {
    // A repeated id keeps its last node, as a JSON object does.
    let by_id: HashMap<u64, usize> = nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
    let live = |i: usize| by_id.get(&nodes[i].id) == Some(&i);
    let mut out = Vec::new();
    let mut seen = vec![false; nodes.len()];
    let roots = (0..nodes.len()).filter(|&i| {
        live(i)
            && nodes[i]
                .parent
                .is_none_or(|p| !by_id.contains_key(&p) || p == nodes[i].id)
    });
    let mut stack: Vec<usize> = roots.collect();
    stack.reverse();
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        if let Some(m) = nodes[i].message {
            out.push(m);
        }
        for c in nodes[i].children.iter().rev() {
            if let Some(&j) = by_id.get(c) {
                stack.push(j);
            }
        }
    }
    out.extend(
        (0..nodes.len())
            .filter(|&i| live(i) && !seen[i])
            .filter_map(|i| nodes[i].message),
    );
    out
}

fn claude(
    skel: &Skeleton,
    wanted: &dyn Fn(Span) -> bool,
    fetch: &mut Fetch<'_, '_>,
    skipped: &mut Vec<Span>,
) -> Result<Vec<Part>, String> {
    let mut out = Vec::new();
    for conv in &skel.convs {
        let title = conv_title(conv);
        for (idx, &span) in conv.messages.iter().enumerate() {
            if !wanted(span) || too_big(span, skipped) {
                continue;
            }
            let m = &parse_span(span, fetch)?;
            let mut text = str_of(m, "text").unwrap_or_default();
            if let Some(items) = m.get("content").and_then(Value::as_array) {
                for item in items {
                    let mut s = String::new();
                    all_strings(item, &mut s);
                    // `text` usually repeats the text items of `content[]`; keep each once.
                    if !s.is_empty() && !text.contains(&s) {
                        text.push('\n');
                        text.push_str(&s);
                    }
                }
            }
            for key in ["attachments", "files"] {
                for a in m.get(key).and_then(Value::as_array).into_iter().flatten() {
                    if let Some(c) = str_of(a, "extracted_content") {
                        text.push('\n');
                        text.push_str(&c);
                    }
                }
            }
            out.push(Part {
                text,
                conversation: title.clone(),
                message: Some(idx),
                role: str_of(m, "sender"),
                timestamp: str_of(m, "created_at"),
                ..Part::default()
            });
        }
    }
    Ok(out)
}

fn jsonl(
    skel: &Skeleton,
    wanted: &dyn Fn(Span) -> bool,
    fetch: &mut Fetch<'_, '_>,
    skipped: &mut Vec<Span>,
) -> Result<Vec<Part>, String> {
    let mut out = Vec::new();
    let mut start = 0usize;
    let ends = skel
        .line_ends
        .iter()
        .copied()
        .chain(std::iter::once(skel.len));
    for (ln, end) in ends.enumerate() {
        let span = (start, end);
        start = end + 1;
        if span.0 >= span.1 || !wanted(span) || too_big(span, skipped) {
            continue;
        }
        let line = fetch(span.0, span.1)?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: Value =
            serde_json::from_slice(&line).map_err(|e| format!("line {}: not JSON: {e}", ln + 1))?;
        let msgs = v
            .get("messages")
            .and_then(Value::as_array)
            .ok_or(format!("line {}: no \"messages\" list", ln + 1))?;
        let conv = str_of(&v, "title")
            .or_else(|| str_of(&v, "id"))
            .unwrap_or_else(|| format!("line {}", ln + 1));
        for (idx, m) in msgs.iter().enumerate() {
            let mut text = String::new();
            if let Some(c) = m.get("content") {
                all_strings(c, &mut text);
            }
            if let Some(tc) = m.get("tool_calls") {
                all_strings(tc, &mut text);
            }
            out.push(Part {
                text,
                conversation: Some(conv.clone()),
                message: Some(idx),
                role: str_of(m, "role"),
                ..Part::default()
            });
        }
    }
    Ok(out)
}

fn har(
    skel: &Skeleton,
    wanted: &dyn Fn(Span) -> bool,
    fetch: &mut Fetch<'_, '_>,
    skipped: &mut Vec<Span>,
) -> Result<Vec<Part>, String> {
    let mut out = Vec::new();
    let entries = skel.convs.iter().flat_map(|c| c.messages.iter().copied());
    for (i, span) in entries.enumerate() {
        if !wanted(span) || too_big(span, skipped) {
            continue;
        }
        let e = &parse_span(span, fetch)?;
        let mut push = |field: String, text: String| {
            if !text.is_empty() {
                out.push(Part {
                    text,
                    entry: Some(i),
                    field: Some(field),
                    ..Part::default()
                });
            }
        };
        for side in ["request", "response"] {
            let Some(r) = e.get(side) else { continue };
            if let Some(u) = str_of(r, "url") {
                push(format!("{side}.url"), u);
            }
            for list in ["headers", "queryString", "cookies"] {
                for h in r.get(list).and_then(Value::as_array).into_iter().flatten() {
                    let name = str_of(h, "name").unwrap_or_default();
                    let value = str_of(h, "value").unwrap_or_default();
                    push(format!("{side}.{list}[{name}]"), format!("{name}: {value}"));
                }
            }
            if let Some(pd) = r.get("postData") {
                if let Some(t) = str_of(pd, "text") {
                    push(format!("{side}.postData.text"), t);
                }
                for p in pd
                    .get("params")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let name = str_of(p, "name").unwrap_or_default();
                    let value = str_of(p, "value").unwrap_or_default();
                    push(
                        format!("{side}.postData.params[{name}]"),
                        format!("{name}={value}"),
                    );
                }
            }
            if let Some(c) = r.get("content") {
                if let Some(t) = str_of(c, "text") {
                    let text = if str_of(c, "encoding").as_deref() == Some("base64") {
                        base64::engine::general_purpose::STANDARD
                            .decode(t.trim())
                            .map(|b| String::from_utf8_lossy(&b).into_owned())
                            .unwrap_or(t)
                    } else {
                        t
                    };
                    push(format!("{side}.content.text"), text);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(d: &[u8]) -> Vec<usize> {
        (0..d.len()).collect()
    }

    #[test]
    fn sniffs_and_parses_each_format() {
        let gpt = br#"[{"title":"Deploy","mapping":{"a":{"message":null},"b":{"message":{"author":{"role":"user"},"create_time":1700000000.5,"content":{"content_type":"text","parts":["hello","key here"]}}}}}]"#;
        assert_eq!(sniff(gpt), Some(Structured::ChatGpt));
        let p = parts_of(gpt, Structured::ChatGpt, &all(gpt))
            .expect("parses")
            .parts;
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].conversation.as_deref(), Some("Deploy"));
        assert_eq!(p[0].role.as_deref(), Some("user"));
        assert!(p[0].text.contains("key here"));

        let claude = br#"[{"uuid":"u1","name":"","chat_messages":[{"sender":"human","text":"a","created_at":"2024-10-18T05:30:20Z","attachments":[{"extracted_content":"secret file"}]}]}]"#;
        assert_eq!(sniff(claude), Some(Structured::Claude));
        let p = parts_of(claude, Structured::Claude, &all(claude))
            .expect("parses")
            .parts;
        assert_eq!(p[0].conversation.as_deref(), Some("u1"));
        assert!(p[0].text.contains("secret file"));

        let jl = b"{\"messages\":[{\"role\":\"system\",\"content\":\"x\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"y\"}]}]}\n";
        assert_eq!(sniff(jl), Some(Structured::ChatJsonl));
        assert!(
            parts_of(jl, Structured::ChatJsonl, &all(jl))
                .expect("parses")
                .parts[1]
                .text
                .contains('y')
        );

        let har_doc = br#"{"log":{"entries":[{"request":{"url":"https://x/?k=v","headers":[{"name":"Authorization","value":"Bearer t"}]},"response":{"content":{"text":"aGVsbG8=","encoding":"base64"}}}]}}"#;
        assert_eq!(sniff(har_doc), Some(Structured::Har));
        let p = parts_of(har_doc, Structured::Har, &all(har_doc))
            .expect("parses")
            .parts;
        assert!(
            p.iter()
                .any(|x| x.field.as_deref() == Some("request.headers[Authorization]"))
        );
        assert!(p.iter().any(|x| x.text == "hello"));
    }

    #[test]
    fn messages_over_the_size_limit_are_left_out_and_listed() {
        // Unit tests parse at most PART_MAX = 256 bytes a message.
        let big = "b".repeat(PART_MAX);
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
            let p = parts_of(d, kind, &hits).expect("parses");
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
                b - a > PART_MAX && d[a..b].windows(3).any(|w| w == b"hit"),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn a_big_chatgpt_node_without_a_hit_keeps_its_links() {
        // Node `r` is over the limit (and the mapping is read in pieces under cfg(test)): its
        // links are streamed, so `s` (its child) stays message 1 and nothing is left out.
        let big = "b".repeat(PART_MAX);
        let gpt = format!(
            r#"[{{"title":"t","mapping":{{"s":{{"message":{{"content":{{"parts":["small hit"]}}}},"parent":"r"}},"r":{{"id":"r","message":{{"content":{{"parts":["{big}"]}}}},"children":["s"]}}}}}}]"#
        );
        let d = gpt.as_bytes();
        let hit = d.windows(3).position(|w| w == b"hit").expect("hit");
        let p = parts_of(d, Structured::ChatGpt, &[hit]).expect("parses");
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        assert_eq!(p.parts.len(), 1);
        assert_eq!(p.parts[0].message, Some(1));
    }

    #[test]
    fn a_bad_mapping_is_reported_at_its_file_offset() {
        // The scan's index only counts brackets inside a mapping; the mapping's own index
        // rejects the wrong one, at the byte where it is in the file.
        let doc = br#"[{"title":"t","mapping":{"a":{"x":["hit"}]}}]"#;
        let at = doc
            .windows(2)
            .position(|w| w == b"}]")
            .expect("bad bracket")
            + 1;
        let hit = doc.windows(3).position(|w| w == b"hit").expect("hit");
        let e = parts_of(doc, Structured::ChatGpt, &[hit]).expect_err("a bad mapping");
        assert!(e.contains(&format!("at byte {at}:")), "{e}");
        assert!(e.contains("in the mapping at byte 24"), "{e}");
    }

    #[test]
    fn odd_chatgpt_nodes_do_not_fail_the_file() {
        // A repeated `mapping` (the last counts), `children: null`, a numeric parent, a
        // message that is a string: the messages that are objects are still read, in order.
        let doc = br#"[{"title":"T","mapping":{"z":{"message":{"content":{"parts":["old"]}}}},
            "mapping":{
              "r":{"message":null,"parent":5,"children":["a"]},
              "a":{"message":{"author":{"role":"user"},"content":{"parts":["first"]}},"parent":"r","children":null},
              "s":{"message":"not an object","parent":"r"},
              "b":{"message":{"author":{"role":"assistant"},"content":{"parts":["second"]}},"parent":"a"}}}]"#;
        let p = parts_of(doc, Structured::ChatGpt, &all(doc))
            .expect("parses")
            .parts;
        let texts: Vec<(&str, Option<usize>)> =
            p.iter().map(|x| (x.text.as_str(), x.message)).collect();
        assert_eq!(texts, vec![("first", Some(0)), ("second", Some(1))]);
    }
}
