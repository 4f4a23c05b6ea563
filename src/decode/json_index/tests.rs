//! The index over chat exports and HAR captures: spans, names, and agreement however the bytes
//! arrive and whichever instruction set classifies them.

use super::indexer::id_hash;
use super::*;

/// Every split of the document into two chunks gives the same skeleton as one chunk, with
/// and without AVX2.
fn chunked_agrees(doc: &[u8], kind: Structured) -> Skeleton {
    let whole = index(doc, kind).expect("indexes");
    let mut sse2 = Indexer::new(kind).with_simd(Simd::baseline());
    sse2.feed(doc);
    let sse2 = sse2.finish().expect("indexes without AVX2");
    assert_eq!(format!("{sse2:?}"), format!("{whole:?}"));
    for cut in 0..=doc.len() {
        let mut ix = Indexer::new(kind);
        ix.feed(&doc[..cut]);
        ix.feed(&doc[cut..]);
        let s = ix.finish().expect("indexes in two chunks");
        assert_eq!(format!("{s:?}"), format!("{whole:?}"), "cut at {cut}");
    }
    whole
}

#[test]
fn chatgpt_nodes_messages_and_escaped_titles() {
    let doc = br#"[{"title":"De\"ploy \u00e9","id":"c1","mapping":{"a":{"id":"a","message":null,"parent":null,"children":["b"]},"b":{"message":{"author":{"role":"user"},"content":{"parts":["x [ } \\"]}},"parent":"a","children":[]}}}, {"title":"","conversation_id":"c2","mapping":{}}]"#;
    let s = chunked_agrees(doc, Structured::ChatGpt);
    assert_eq!(s.conversations.len(), 2);
    let c = &s.conversations[0];
    assert_eq!(c.title.as_deref(), Some("De\"ploy é"));
    assert_eq!(c.id.as_deref(), Some("c1"));
    assert_eq!(c.nodes.len(), 2);
    assert_eq!(c.nodes[0].id, hash_id(b"a"));
    assert_eq!(c.nodes[1].id, hash_id(b"b"));
    let (a, b) = c.nodes[1].span;
    let n: serde_json::Value = serde_json::from_slice(&doc[a..b]).expect("span is the node");
    assert_eq!(n["message"]["author"]["role"], "user");
    let (a, b) = c.mapping.expect("mapping span");
    let m: serde_json::Value = serde_json::from_slice(&doc[a..b]).expect("the mapping");
    assert_eq!(m.as_object().map(|o| o.len()), Some(2));
    assert_eq!(id_hash(br"\u0061"), hash_id(b"a"));
    assert_eq!(id_hash(br"a\\b"), hash_id(br"a\b"));
    assert_eq!(s.conversations[1].conversation_id.as_deref(), Some("c2"));
    // Without nodes: the same mapping span and titles, no nodes, in any two pieces.
    let mut lean = Indexer::without_nodes(Structured::ChatGpt);
    lean.feed(doc);
    let lean = lean.finish().expect("indexes");
    assert!(lean.conversations.iter().all(|c| c.nodes.is_empty()));
    assert_eq!(lean.conversations[0].mapping, c.mapping);
    assert_eq!(lean.conversations[0].title, c.title);
    for cut in 0..=doc.len() {
        let mut ix = Indexer::without_nodes(Structured::ChatGpt);
        ix.feed(&doc[..cut]);
        ix.feed(&doc[cut..]);
        let again = ix.finish().expect("indexes in two chunks");
        assert_eq!(format!("{again:?}"), format!("{lean:?}"), "cut at {cut}");
    }
}

#[test]
fn claude_and_har_spans() {
    let doc = br#"{"summary":"a long string that is not kept, running past one block of 64 bytes","uuid":"u","name":"N","chat_messages":[{"text":"a"},{"text":"b]"}]}"#;
    let s = chunked_agrees(doc, Structured::Claude);
    assert_eq!(s.conversations[0].title.as_deref(), Some("N"));
    // Strings that are not kept, crossing a block boundary from anywhere in a block.
    for pad in 0..64 {
        let doc = format!(
            r#"{{{}"summary":"{}","name":"T{pad}","chat_messages":[]}}"#,
            " ".repeat(pad),
            "s".repeat(70)
        );
        let s = index(doc.as_bytes(), Structured::Claude).expect("indexes");
        assert_eq!(s.conversations[0].title, Some(format!("T{pad}")));
    }
    assert_eq!(s.conversations[0].messages.len(), 2);
    let (a, b) = s.conversations[0].messages[1];
    assert_eq!(&doc[a..b], br#"{"text":"b]"}"#);

    let har = b"{\n \"log\": {\"version\": \"1.2\", \"entries\": [\n  {\"request\": {\"url\": \"u\"}},\n  {\"x\": [1, 2.5e3, true, null]}\n ]}\n}\n";
    let s = chunked_agrees(har, Structured::Har);
    assert_eq!(s.conversations[0].messages.len(), 2);
    let (a, b) = s.conversations[0].messages[0];
    assert_eq!(&har[a..b], br#"{"request": {"url": "u"}}"#);
}

#[test]
fn malformed_documents_are_errors() {
    for (doc, kind) in [
        (&br#"[{"title":"x","mapping":{"#[..], Structured::ChatGpt),
        (br#"[{"title":"x"]"#, Structured::ChatGpt),
        (br#"[{"title" "x"}]"#, Structured::ChatGpt),
        (br#"[{"title":"x"}] ]"#, Structured::ChatGpt),
        (br#"[{"title":"x",}"#, Structured::Claude),
        (br#"{"nolog":{}}"#, Structured::Har),
        (br#"["unterminated]"#, Structured::Claude),
    ] {
        assert!(
            index(doc, kind).is_err(),
            "{}",
            String::from_utf8_lossy(doc)
        );
    }
}

#[test]
fn escapes_and_brackets_in_strings_at_every_block_offset() {
    // Messages whose text holds backslash runs, escaped quotes and brackets, shifted by one
    // byte each time so every pattern crosses a 64-byte block boundary somewhere.
    let tricky = ["\\", "\"", "\\\"", "\\\\", "{[", "]}", "\\\\\"]\\"];
    let mut msgs = Vec::new();
    for pad in 0..130 {
        let text = format!("{}{}", "x".repeat(pad), tricky.concat().repeat(1 + pad % 3));
        // Nesting within a message: deep, and many brackets closing in one block.
        let deep: serde_json::Value = serde_json::from_str(&format!(
            "{}{pad}{}",
            "[".repeat(pad % 70),
            "]".repeat(pad % 70)
        ))
        .expect("nested arrays");
        let empties = vec![serde_json::json!({}); pad % 9];
        msgs.push(serde_json::json!({
            "text": text, "n": [pad, { "k": null }], "deep": deep, "e": empties
        }));
    }
    let doc = serde_json::to_vec(&serde_json::json!([
        { "uuid": "u\\\"1", "name": "t", "chat_messages": msgs }
    ]))
    .expect("json");
    let s = index(&doc, Structured::Claude).expect("indexes");
    assert_eq!(
        s.conversations[0].conversation_id.as_deref(),
        Some("u\\\"1")
    );
    assert_eq!(s.conversations[0].messages.len(), msgs.len());
    for (span, want) in s.conversations[0].messages.iter().zip(&msgs) {
        let got: serde_json::Value =
            serde_json::from_slice(&doc[span.0..span.1]).expect("a whole message");
        assert_eq!(&got, want);
    }
    // Fed in odd-sized pieces, and without AVX2, the same.
    let mut ix = Indexer::new(Structured::Claude).with_simd(Simd::baseline());
    for piece in doc.chunks(37) {
        ix.feed(piece);
    }
    let again = ix.finish().expect("indexes in pieces");
    assert_eq!(again.conversations[0].messages, s.conversations[0].messages);
}

#[test]
fn an_escaped_quote_right_after_a_block_edge() {
    // The backslash is the last byte of a block, its quote the first of the next, and that
    // next block holds no other backslash: the escape must be carried across.
    let head = r#"[{"uuid":"u","chat_messages":[{"text":""#;
    for extra in 0..3 {
        let pad = (63 - head.len() % 64) % 64 + 64 * extra;
        let (x, y) = ("x".repeat(pad), "y".repeat(100));
        let doc = format!(r#"{head}{x}\"{y}"}},{{"text":"b"}}]}}]"#);
        assert_eq!((head.len() + pad) % 64, 63);
        assert_eq!(doc.as_bytes()[head.len() + pad], b'\\');
        let s = chunked_agrees(doc.as_bytes(), Structured::Claude);
        let texts: Vec<String> = s.conversations[0]
            .messages
            .iter()
            .map(|&(a, b)| {
                let v: serde_json::Value = serde_json::from_str(&doc[a..b]).expect("a message");
                v["text"].as_str().expect("text").to_owned()
            })
            .collect();
        assert_eq!(texts.len(), 2, "{doc}");
        assert_eq!(texts[0], format!("{x}\"{y}"));
        assert_eq!(texts[1], "b");
    }
}

#[test]
fn back_to_back_messages_in_one_block() {
    // Tiny messages and whitespace of every kind between them, so many messages end and
    // begin in one 64-byte block and the separators cross block boundaries everywhere.
    let msgs = [
        r#"{}"#,
        r#"{"t":"},{"}"#,
        r#"{"a":[{}],"b":{}}"#,
        r#"{"x":"\"}\\"}"#,
        r#"{"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#,
    ];
    let seps = [
        ",",
        " ,\n  ",
        ",\t",
        "\r\n,\r\n",
        "                                ,  ",
    ];
    for shift in 0..70 {
        let mut doc = format!(r#"[{{"uuid":"{}","chat_messages":["#, "u".repeat(shift));
        let mut want = Vec::new();
        for k in 0..60 {
            if k > 0 {
                doc.push_str(seps[(k + shift) % seps.len()]);
            }
            let m = msgs[(k * 7 + shift) % msgs.len()];
            want.push((doc.len(), doc.len() + m.len()));
            doc.push_str(m);
        }
        doc.push_str("]}]");
        let s = index(doc.as_bytes(), Structured::Claude).expect("indexes");
        assert_eq!(s.conversations[0].messages, want, "shift {shift}");
        if shift % 9 == 0 {
            let again = chunked_agrees(doc.as_bytes(), Structured::Claude);
            assert_eq!(
                again.conversations[0].messages, want,
                "shift {shift}, in pieces"
            );
        }
    }
}

#[test]
fn jsonl_line_ends() {
    let s = chunked_agrees(b"{\"a\":1}\n{\"b\":2}\n", Structured::ChatJsonl);
    assert_eq!(s.line_ends, vec![7, 15]);
    assert_eq!(s.len, 16);
}
