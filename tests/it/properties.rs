//! Properties of the matcher and of `redact` (proptest): a key planted anywhere in random bytes,
//! between neighbours the boundary rule allows, is found exactly once and where it was put, and
//! not at all when a neighbour breaks the rule; redact's output is the input with each key
//! replaced and nothing else changed, for each encoding it handles; the decoders find what
//! the matching encoders wrote.

use std::sync::{Arc, OnceLock};

use base64::Engine;
use offkey::rules::RuleSet;
use offkey::scan::{Encoding, Match, Matcher, redact_stream};
use proptest::prelude::*;

fn matcher() -> &'static Matcher {
    static M: OnceLock<Matcher> = OnceLock::new();
    M.get_or_init(|| Matcher::new(Arc::new(RuleSet::builtin().expect("rules")), true))
}

fn find(data: &[u8]) -> Vec<Match> {
    let mut out = Vec::new();
    matcher().find(data, &mut out);
    out
}

/// Random filler that cannot itself hold a key or a legacy key's context: no letters or digits.
fn filler() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..300).prop_map(|v| {
        v.into_iter()
            .map(|b| if b.is_ascii_alphanumeric() { b' ' } else { b })
            .collect()
    })
}

/// A byte the current-key rule allows before a key (not `[0-9A-Za-z_]`).
fn ok_before() -> impl Strategy<Value = u8> {
    any::<u8>().prop_filter("boundary", |b| !(b.is_ascii_alphanumeric() || *b == b'_'))
}

/// A byte it allows after one (not `[0-9A-Za-z]`).
fn ok_after() -> impl Strategy<Value = u8> {
    any::<u8>().prop_filter("boundary", |b| !b.is_ascii_alphanumeric())
}

fn key() -> impl Strategy<Value = String> {
    any::<u8>().prop_map(|_| offkey::key::generate().expose().to_owned())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn a_planted_key_is_found_once_where_it_was_put(
        head in filler(), before in ok_before(), key in key(), after in ok_after(), tail in filler()
    ) {
        let mut data = head.clone();
        data.push(before);
        let at = data.len();
        data.extend_from_slice(key.as_bytes());
        data.push(after);
        data.extend_from_slice(&tail);
        let hits: Vec<Match> = find(&data)
            .into_iter()
            .filter(|m| m.secret.expose() == key)
            .collect();
        prop_assert_eq!(hits.len(), 1, "found {} times", hits.len());
        prop_assert_eq!(hits[0].start, at);
        prop_assert_eq!(hits[0].end, at + key.len());
        prop_assert_eq!(hits[0].encoding, Encoding::Plain);
    }

    #[test]
    fn a_key_whose_neighbour_breaks_the_boundary_rule_is_not_found(
        head in filler(), bad in prop_oneof![
            Just(b'_'), (b'0'..=b'9'), (b'a'..=b'z'), (b'A'..=b'Z')
        ], before_side in any::<bool>(), key in key(), tail in filler()
    ) {
        let mut data = head.clone();
        // A space first, so `bad` cannot complete an escape (`\n`, `\x1b[m`) that a decoder
        // would read as a boundary.
        data.push(b' ');
        if before_side {
            data.push(bad);
            data.extend_from_slice(key.as_bytes());
            data.push(b' ');
        } else if bad != b'_' {
            data.push(b' ');
            data.extend_from_slice(key.as_bytes());
            data.push(bad);
        } else {
            // `_` after a key is allowed by the rule: nothing to break on this side.
            return Ok(());
        }
        data.extend_from_slice(&tail);
        prop_assert!(
            find(&data).iter().all(|m| m.secret.expose() != key),
            "found despite the neighbour {:?}", bad as char
        );
    }

    #[test]
    fn redact_replaces_each_key_and_changes_nothing_else(
        parts in proptest::collection::vec((filler(), key(), 0u8..5), 1..6), tail in filler()
    ) {
        // Each key written plainly, percent-encoded, with JSON \u escapes, in base64, or in
        // ANSI colour; between neighbours every encoding allows.
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for (head, key, how) in &parts {
            input.extend_from_slice(head);
            input.push(b' ');
            expected.extend_from_slice(head);
            expected.push(b' ');
            let encoded: Vec<u8> = match how {
                0 => key.clone().into_bytes(),
                1 => key.replace('_', "%5F").into_bytes(),
                2 => key.replace('_', "\\u005f").into_bytes(),
                3 => base64::engine::general_purpose::STANDARD
                    .encode(format!("user:{key}"))
                    .into_bytes(),
                _ => format!("\x1b[31m{key}\x1b[0m").into_bytes(),
            };
            input.extend_from_slice(&encoded);
            input.push(b' ');
            let mut out = Vec::new();
            let n = redact_stream(matcher(), &mut encoded.as_slice(), &mut out, "REDACTED")
                .expect("redact one");
            prop_assert_eq!(n, 1, "encoding {} not redacted alone", how);
            prop_assert!(!String::from_utf8_lossy(&out).contains(key.as_str()));
            expected.extend_from_slice(&out);
            expected.push(b' ');
        }
        input.extend_from_slice(&tail);
        expected.extend_from_slice(&tail);
        let mut out = Vec::new();
        let n = redact_stream(matcher(), &mut input.as_slice(), &mut out, "REDACTED")
            .expect("redact");
        prop_assert_eq!(n as usize, parts.len());
        prop_assert_eq!(out, expected);
    }

    #[test]
    fn each_decoder_finds_what_its_encoder_wrote(key in key(), how in 0u8..5) {
        let (data, encoding): (Vec<u8>, Encoding) = match how {
            0 => (format!("k={}", key.replace('_', "%5F")).into_bytes(), Encoding::UrlEncoded),
            1 => (format!("\"{}\"", key.replace('_', "\\u005f")).into_bytes(), Encoding::JsonEscaped),
            2 => (
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("u:{key}")))
                    .into_bytes(),
                Encoding::Base64,
            ),
            3 => (
                format!("K={key}\n").encode_utf16().flat_map(u16::to_le_bytes).collect(),
                Encoding::Utf16,
            ),
            _ => (format!("\x1b[1;32m{key}\x1b[0m").into_bytes(), Encoding::Ansi),
        };
        let hits: Vec<Match> = find(&data).into_iter().filter(|m| m.secret.expose() == key).collect();
        prop_assert_eq!(hits.len(), 1, "{:?}: found {} times", encoding, hits.len());
        // ANSI codes around a key leave it plain bytes; the others must say how it was hidden.
        if encoding != Encoding::Ansi {
            prop_assert_eq!(hits[0].encoding, encoding);
        }
    }
}
