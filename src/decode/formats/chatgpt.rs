//! ChatGPT `conversations.json`: a list of conversations, each a `mapping` of nodes linked by
//! `parent` and `children`, messages in the nodes. Messages are given in conversation order
//! (depth first along `children`), only for conversations whose mapping holds a hit, and a
//! mapping too big to hold is read node by node.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::Value;
use serde_json::value::RawValue;

use super::json_export::{
    Fetch, Part, Reading, Structured, all_strings, conversation_title, fetch_span, parse_at, str_of,
};
use crate::decode::DecodeError;
use crate::decode::json_index::{Indexer, Node, Skeleton, Span, hash_id};

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

fn unix_time(v: Option<&Value>) -> Option<String> {
    let secs = v?.as_f64()?;
    chrono::DateTime::from_timestamp(secs as i64, ((secs.fract()) * 1e9) as u32)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

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
fn big_node(n: &Node, piece: usize, fetch: &mut Fetch<'_, '_>) -> Option<Linked> {
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
        size: usize,
        piece: Vec<u8>,
        used: usize,
    }
    impl std::io::Read for Pieces<'_, '_, '_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.used == self.piece.len() {
                if self.at == self.end {
                    return Ok(0);
                }
                let to = (self.at + self.size).min(self.end);
                self.piece = (self.fetch)(self.at, to)?.into_owned();
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
        size: piece,
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

pub(super) fn parts(
    skel: &Skeleton,
    r: &mut Reading<'_>,
    fetch: &mut Fetch<'_, '_>,
) -> Result<Vec<Part>, DecodeError> {
    let mut out = Vec::new();
    for conv in &skel.conversations {
        // Only a conversation with a hit in its mapping has its nodes indexed (from the
        // mapping alone: the scan's index skips mappings whole) and its links read.
        let Some(map) = conv.mapping.filter(|&m| r.wanted(m)) else {
            continue;
        };
        // The mapping is read in one piece when small, else node by node (and each wanted
        // message again), so one huge conversation is never held whole.
        let whole = if map.1 - map.0 <= r.limits.max_mapping_at_once {
            Some(fetch_span(fetch, map)?)
        } else {
            None
        };
        let conv_nodes = mapping_nodes(map, whole.as_deref(), r.limits.read_piece, fetch)?;
        let read = |span: Span, fetch: &mut Fetch<'_, '_>| -> Result<Cow<'_, [u8]>, DecodeError> {
            match &whole {
                Some(b) => Ok(Cow::Borrowed(
                    b.get(span.0.wrapping_sub(map.0)..span.1.wrapping_sub(map.0))
                        .unwrap_or_default(),
                )),
                None => Ok(Cow::Owned(fetch_span(fetch, span)?.into_owned())),
            }
        };
        let mut nodes = Vec::with_capacity(conv_nodes.len());
        for n in &conv_nodes {
            // A node too big to hold (a mapping that big is read piece by piece) has its links
            // streamed; its message stays in the order, to be left out below if wanted.
            if n.span.1 - n.span.0 > r.limits.max_message {
                if let Some(l) = big_node(n, r.limits.read_piece, fetch) {
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
        let title = conversation_title(conv);
        for (idx, span) in conversation_order(&nodes).into_iter().enumerate() {
            if !r.wanted(span) || r.too_big(span) {
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
    piece: usize,
    fetch: &mut Fetch<'_, '_>,
) -> Result<Vec<Node>, DecodeError> {
    const BEFORE: &[u8] = b"{\"mapping\":";
    // A mapping always has at least `{"mapping":` before it in its file.
    let from = map
        .0
        .checked_sub(BEFORE.len())
        .ok_or_else(|| DecodeError::Json {
            at: map.0,
            what: "a mapping at the file's start".into(),
        })?;
    let mut ix = Indexer::new(Structured::ChatGpt).starting_at(from);
    ix.feed(BEFORE);
    match whole {
        Some(bytes) => ix.feed(bytes),
        None => {
            let mut at = map.0;
            while at < map.1 {
                let to = (at + piece).min(map.1);
                ix.feed(&fetch_span(fetch, (at, to))?);
                at = to;
            }
        }
    }
    ix.feed(b"}");
    let skel = ix.finish().map_err(|e| DecodeError::InMapping {
        at: map.0,
        inner: Box::new(e),
    })?;
    Ok(skel
        .conversations
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

#[cfg(test)]
mod tests {
    use super::super::json_export::tests::{all, small};
    use super::super::json_export::{parts_of, parts_of_within};
    use super::*;

    #[test]
    fn messages_in_conversation_order_with_role_and_time() {
        let gpt = br#"[{"title":"Deploy","mapping":{"a":{"message":null},"b":{"message":{"author":{"role":"user"},"create_time":1700000000.5,"content":{"content_type":"text","parts":["hello","key here"]}}}}}]"#;
        assert_eq!(
            super::super::json_export::sniff(gpt),
            Some(Structured::ChatGpt)
        );
        for limits in [small(), Default::default()] {
            let p = parts_of_within(gpt, Structured::ChatGpt, &all(gpt), &limits)
                .expect("parses")
                .parts;
            assert_eq!(p.len(), 1);
            assert_eq!(p[0].conversation.as_deref(), Some("Deploy"));
            assert_eq!(p[0].role.as_deref(), Some("user"));
            assert_eq!(p[0].timestamp.as_deref(), Some("2023-11-14T22:13:20Z"));
            assert!(p[0].text.contains("key here"));
        }
        assert!(
            parts_of(gpt, Structured::ChatGpt, &[])
                .expect("parses")
                .parts
                .is_empty()
        );
    }

    #[test]
    fn a_big_chatgpt_node_without_a_hit_keeps_its_links() {
        // Node `r` is over the limit (and the mapping is read in pieces, being over 64 bytes):
        // its links are streamed, so `s` (its child) stays message 1 and nothing is left out.
        let limits = small();
        let big = "b".repeat(limits.max_message);
        let gpt = format!(
            r#"[{{"title":"t","mapping":{{"s":{{"message":{{"content":{{"parts":["small hit"]}}}},"parent":"r"}},"r":{{"id":"r","message":{{"content":{{"parts":["{big}"]}}}},"children":["s"]}}}}}}]"#
        );
        let d = gpt.as_bytes();
        let hit = d.windows(3).position(|w| w == b"hit").expect("hit");
        let p = parts_of_within(d, Structured::ChatGpt, &[hit], &limits).expect("parses");
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
        let e = parts_of_within(doc, Structured::ChatGpt, &[hit], &small())
            .expect_err("a bad mapping")
            .to_string();
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
        let p = parts_of_within(doc, Structured::ChatGpt, &all(doc), &small())
            .expect("parses")
            .parts;
        let texts: Vec<(&str, Option<usize>)> =
            p.iter().map(|x| (x.text.as_str(), x.message)).collect();
        assert_eq!(texts, vec![("first", Some(0)), ("second", Some(1))]);
    }
}
