//! Structured files whose text lives in JSON fields: AI chat exports (ChatGPT and Claude
//! `conversations.json`, OpenAI-style chat JSONL) and HAR captures. Detected by content, not by
//! file name; each yields the texts to scan with where they sit (conversation, message, role,
//! time; or HAR entry and field).

use base64::Engine;
use serde_json::Value;

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

/// The texts of a structured file, or why it does not parse as that format.
pub fn parts(data: &[u8], kind: Structured) -> Result<Vec<Part>, String> {
    match kind {
        Structured::ChatJsonl => jsonl(data),
        _ => {
            let v: Value =
                serde_json::from_slice(data).map_err(|e| format!("not valid JSON: {e}"))?;
            match kind {
                Structured::ChatGpt => chatgpt(&v),
                Structured::Claude => claude(&v),
                Structured::Har => har(&v),
                Structured::ChatJsonl => unreachable!("handled above"),
            }
        }
    }
}

fn as_list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![v],
        _ => Vec::new(),
    }
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

fn chatgpt(v: &Value) -> Result<Vec<Part>, String> {
    let convs = as_list(v);
    if convs.is_empty() {
        return Err("expected a list of conversations".into());
    }
    let mut out = Vec::new();
    for conv in convs {
        let mapping = conv
            .get("mapping")
            .and_then(Value::as_object)
            .ok_or("a conversation has no \"mapping\" object")?;
        let title = str_of(conv, "title")
            .filter(|t| !t.is_empty())
            .or_else(|| str_of(conv, "conversation_id"))
            .or_else(|| str_of(conv, "id"));
        let msgs = conversation_order(mapping);
        for (idx, m) in msgs.into_iter().enumerate() {
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

/// Messages of a ChatGPT `mapping` in conversation order: depth first from the root node(s)
/// along `children`, so every branch is included; nodes no walk reaches come last, by time.
fn conversation_order(mapping: &serde_json::Map<String, Value>) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<&str> = mapping
        .iter()
        .filter(|(id, n)| {
            n.get("parent")
                .and_then(Value::as_str)
                .is_none_or(|p| !mapping.contains_key(p) || p == id.as_str())
        })
        .map(|(id, _)| id.as_str())
        .collect();
    stack.reverse();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        let Some(node) = mapping.get(id) else {
            continue;
        };
        if let Some(m) = node.get("message").filter(|m| !m.is_null()) {
            out.push(m);
        }
        if let Some(children) = node.get("children").and_then(Value::as_array) {
            for c in children.iter().rev().filter_map(Value::as_str) {
                stack.push(c);
            }
        }
    }
    let mut rest: Vec<&Value> = mapping
        .iter()
        .filter(|(id, _)| !seen.contains(id.as_str()))
        .filter_map(|(_, n)| n.get("message").filter(|m| !m.is_null()))
        .collect();
    rest.sort_by(|a, b| {
        let t = |m: &Value| {
            m.get("create_time")
                .and_then(Value::as_f64)
                .unwrap_or(f64::MAX)
        };
        t(a).total_cmp(&t(b))
    });
    out.extend(rest);
    out
}

fn claude(v: &Value) -> Result<Vec<Part>, String> {
    let convs = as_list(v);
    if convs.is_empty() {
        return Err("expected a list of conversations".into());
    }
    let mut out = Vec::new();
    for conv in convs {
        let msgs = conv
            .get("chat_messages")
            .and_then(Value::as_array)
            .ok_or("a conversation has no \"chat_messages\" list")?;
        let title = str_of(conv, "name")
            .filter(|t| !t.is_empty())
            .or_else(|| str_of(conv, "uuid"));
        for (idx, m) in msgs.iter().enumerate() {
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

fn jsonl(data: &[u8]) -> Result<Vec<Part>, String> {
    let mut out = Vec::new();
    for (ln, line) in data.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: Value =
            serde_json::from_slice(line).map_err(|e| format!("line {}: not JSON: {e}", ln + 1))?;
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

fn har(v: &Value) -> Result<Vec<Part>, String> {
    let entries = v
        .get("log")
        .and_then(|l| l.get("entries"))
        .and_then(Value::as_array)
        .ok_or("no log.entries list")?;
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
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

    #[test]
    fn sniffs_and_parses_each_format() {
        let gpt = br#"[{"title":"Deploy","mapping":{"a":{"message":null},"b":{"message":{"author":{"role":"user"},"create_time":1700000000.5,"content":{"content_type":"text","parts":["hello","key here"]}}}}}]"#;
        assert_eq!(sniff(gpt), Some(Structured::ChatGpt));
        let p = parts(gpt, Structured::ChatGpt).expect("parses");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].conversation.as_deref(), Some("Deploy"));
        assert_eq!(p[0].role.as_deref(), Some("user"));
        assert!(p[0].text.contains("key here"));

        let claude = br#"[{"uuid":"u1","name":"","chat_messages":[{"sender":"human","text":"a","created_at":"2024-10-18T05:30:20Z","attachments":[{"extracted_content":"secret file"}]}]}]"#;
        assert_eq!(sniff(claude), Some(Structured::Claude));
        let p = parts(claude, Structured::Claude).expect("parses");
        assert_eq!(p[0].conversation.as_deref(), Some("u1"));
        assert!(p[0].text.contains("secret file"));

        let jl = b"{\"messages\":[{\"role\":\"system\",\"content\":\"x\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"y\"}]}]}\n";
        assert_eq!(sniff(jl), Some(Structured::ChatJsonl));
        assert!(
            parts(jl, Structured::ChatJsonl).expect("parses")[1]
                .text
                .contains('y')
        );

        let har_doc = br#"{"log":{"entries":[{"request":{"url":"https://x/?k=v","headers":[{"name":"Authorization","value":"Bearer t"}]},"response":{"content":{"text":"aGVsbG8=","encoding":"base64"}}}]}}"#;
        assert_eq!(sniff(har_doc), Some(Structured::Har));
        let p = parts(har_doc, Structured::Har).expect("parses");
        assert!(
            p.iter()
                .any(|x| x.field.as_deref() == Some("request.headers[Authorization]"))
        );
        assert!(p.iter().any(|x| x.text == "hello"));
    }
}
