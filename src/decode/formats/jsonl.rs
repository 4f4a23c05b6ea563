//! OpenAI-style chat JSONL: one `{"messages": [{"role", "content"}]}` conversation a line
//! (fine-tuning sets, eval logs).

use serde_json::Value;

use super::json_export::{Fetch, Part, Reading, all_strings, fetch_span, str_of};
use crate::decode::DecodeError;
use crate::decode::json_index::Skeleton;

pub(super) fn parts(
    skel: &Skeleton,
    r: &mut Reading<'_>,
    fetch: &mut Fetch<'_, '_>,
) -> Result<Vec<Part>, DecodeError> {
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
        if span.0 >= span.1 || !r.wanted(span) || r.too_big(span) {
            continue;
        }
        let line = fetch_span(fetch, span)?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: Value = serde_json::from_slice(&line).map_err(|e| DecodeError::JsonLine {
            line: ln + 1,
            what: format!("not JSON: {e}"),
        })?;
        let msgs =
            v.get("messages")
                .and_then(Value::as_array)
                .ok_or_else(|| DecodeError::JsonLine {
                    line: ln + 1,
                    what: "no \"messages\" list".into(),
                })?;
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

#[cfg(test)]
mod tests {
    use super::super::json_export::tests::all;
    use super::super::json_export::{Structured, parts_of, sniff};

    #[test]
    fn messages_per_line_and_bad_lines() {
        let jl = b"{\"id\":\"c7\",\"messages\":[{\"role\":\"system\",\"content\":\"x\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"y\"}]}]}\n\n{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"arguments\":\"z\"}}]}]}\n";
        assert_eq!(sniff(jl), Some(Structured::ChatJsonl));
        let p = parts_of(jl, Structured::ChatJsonl, &all(jl))
            .expect("parses")
            .parts;
        assert_eq!(p.len(), 3);
        assert_eq!(
            (p[1].conversation.as_deref(), p[1].message),
            (Some("c7"), Some(1))
        );
        assert!(p[1].text.contains('y'));
        assert_eq!(p[2].conversation.as_deref(), Some("line 3"));
        assert!(p[2].text.contains('z'));
        let bad = b"{\"messages\":[]}\n{\"role\":\"user\"}\n";
        let e = parts_of(bad, Structured::ChatJsonl, &all(bad)).expect_err("no messages");
        assert_eq!(e.to_string(), "line 2: no \"messages\" list");
    }
}
