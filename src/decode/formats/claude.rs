//! Claude `conversations.json`: a list of conversations, each with `chat_messages[]` whose text
//! is in `text`, `content[]` items and attachments' `extracted_content`.

use serde_json::Value;

use super::json_export::{
    Fetch, Part, Reading, all_strings, conversation_title, parse_span, str_of,
};
use crate::decode::DecodeError;
use crate::decode::json_index::Skeleton;

pub(super) fn parts(
    skel: &Skeleton,
    r: &mut Reading<'_>,
    fetch: &mut Fetch<'_, '_>,
) -> Result<Vec<Part>, DecodeError> {
    let mut out = Vec::new();
    for conv in &skel.conversations {
        let title = conversation_title(conv);
        for (idx, &span) in conv.messages.iter().enumerate() {
            if !r.wanted(span) || r.too_big(span) {
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

#[cfg(test)]
mod tests {
    use super::super::json_export::tests::all;
    use super::super::json_export::{Structured, parts_of, sniff};

    #[test]
    fn messages_attachments_and_untitled_conversations() {
        let claude = br#"[{"uuid":"u1","name":"","chat_messages":[{"sender":"human","text":"a","created_at":"2024-10-18T05:30:20Z","content":[{"type":"text","text":"a"},{"type":"text","text":"more"}],"attachments":[{"extracted_content":"secret file"}]}]}]"#;
        assert_eq!(sniff(claude), Some(Structured::Claude));
        let p = parts_of(claude, Structured::Claude, &all(claude))
            .expect("parses")
            .parts;
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].conversation.as_deref(), Some("u1"));
        assert_eq!(p[0].role.as_deref(), Some("human"));
        assert_eq!(p[0].timestamp.as_deref(), Some("2024-10-18T05:30:20Z"));
        assert!(p[0].text.contains("secret file"));
        assert!(p[0].text.contains("more"));
    }
}
