//! HAR 1.2 captures (`log.entries[]`): each entry's URL, headers, query, cookies, posted data
//! and response content (base64-decoded when marked so), named by entry index and field.

use serde_json::Value;

use base64::Engine;

use super::json_export::{Fetch, Part, Reading, parse_span, str_of};
use crate::decode::DecodeError;
use crate::decode::json_index::Skeleton;

pub(super) fn parts(
    skel: &Skeleton,
    r: &mut Reading<'_>,
    fetch: &mut Fetch<'_, '_>,
) -> Result<Vec<Part>, DecodeError> {
    let mut out = Vec::new();
    let entries = skel
        .conversations
        .iter()
        .flat_map(|c| c.messages.iter().copied());
    for (i, span) in entries.enumerate() {
        if !r.wanted(span) || r.too_big(span) {
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
    use super::super::json_export::tests::all;
    use super::super::json_export::{Structured, parts_of, sniff};

    #[test]
    fn fields_of_each_entry() {
        let har_doc = br#"{"log":{"entries":[{"request":{"url":"https://x/?k=v","headers":[{"name":"Authorization","value":"Bearer t"}],"postData":{"params":[{"name":"api_key","value":"p"}]}},"response":{"content":{"text":"aGVsbG8=","encoding":"base64"}}}]}}"#;
        assert_eq!(sniff(har_doc), Some(Structured::Har));
        let p = parts_of(har_doc, Structured::Har, &all(har_doc))
            .expect("parses")
            .parts;
        let field = |f: &str| {
            p.iter()
                .find(|x| x.field.as_deref() == Some(f))
                .map(|x| x.text.as_str())
        };
        assert_eq!(
            field("request.headers[Authorization]"),
            Some("Authorization: Bearer t")
        );
        assert_eq!(field("request.postData.params[api_key]"), Some("api_key=p"));
        assert_eq!(field("response.content.text"), Some("hello"));
        assert!(p.iter().all(|x| x.entry == Some(0)));
        let e = parts_of(br#"{"nolog":{}}"#, Structured::Har, &[1]).expect_err("no log");
        assert_eq!(e.to_string(), "not a HAR capture: no \"log\" object");
    }
}
