//! Fuzz targets: one function per target over arbitrary bytes, called by the cargo-fuzz crate in
//! `fuzz/` (nightly, libFuzzer) and by the stable corpus replay in `tests/it/fuzz_replay.rs`, so
//! both run the same code. Each target must not panic, hang or blow up in memory on any input;
//! where an answer has an invariant (a match inside the input, a decoded map as long as the
//! text), the target asserts it. Not part of the public API.

use std::sync::{Arc, OnceLock};

use crate::decode::{self, Form};
use crate::rules::RuleSet;
use crate::scan::{Finding, Match, Matcher, Origin, Policy, Scanner};

/// A fuzz target: any bytes in, no panic out.
pub type Target = fn(&[u8]);

/// Every target, by the name `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/` use.
pub const TARGETS: &[(&str, Target)] = &[
    ("matcher", matcher),
    ("decode_run", decode_run),
    ("base64_token", base64_token),
    ("chatgpt", chatgpt),
    ("claude", claude),
    ("jsonl", jsonl),
    ("har", har),
    ("ooxml", ooxml),
    ("odf", odf),
    ("rtf", rtf),
    ("pdf", pdf),
    ("mime", mime),
    ("ai_tools", ai_tools),
    ("sqlite", sqlite),
    ("zip", zip),
    ("gzip", gzip),
    ("rules", rules),
    ("config", config),
    ("api_bodies", api_bodies),
];

fn shared_matcher() -> &'static Matcher {
    static M: OnceLock<Matcher> = OnceLock::new();
    M.get_or_init(|| {
        Matcher::new(
            Arc::new(RuleSet::builtin().expect("the built-in rules compile")),
            true,
        )
    })
}

/// The matcher over arbitrary bytes, decoders on: every match lies inside the input.
pub fn matcher(data: &[u8]) {
    let mut out: Vec<Match> = Vec::new();
    shared_matcher().find(data, &mut out);
    for m in &out {
        let (s, e) = (m.start, m.end);
        assert!(
            s <= e && e <= data.len(),
            "match {s}..{e} outside {} bytes",
            data.len()
        );
    }
}

/// Each run decoder (percent, JSON `\u` escapes, UTF-16 LE/BE) from a position the first bytes
/// choose: the map has one entry per decoded byte plus the end, all inside the input.
pub fn decode_run(data: &[u8]) {
    let [sel, pos, rest @ ..] = data else { return };
    let form = match sel % 4 {
        0 => Form::Percent,
        1 => Form::JsonUnicode,
        2 => Form::Utf16Le,
        _ => Form::Utf16Be,
    };
    let p = if rest.is_empty() {
        0
    } else {
        usize::from(*pos) % rest.len()
    };
    if let Some(d) = decode::decode_run(rest, p, form) {
        assert_eq!(
            d.map.len(),
            d.text.len() + 1,
            "one map entry per byte + end"
        );
        assert!(d.map.iter().all(|&o| o <= rest.len()), "map inside input");
    }
}

/// The base64 token decoder around a position and lead the first bytes choose.
pub fn base64_token(data: &[u8]) {
    let [pos, lead, rest @ ..] = data else { return };
    if rest.is_empty() {
        return;
    }
    let p = usize::from(*pos) % rest.len();
    if let Some((d, start, end)) = decode::base64_token(rest, p, usize::from(*lead % 4)) {
        assert!(
            start <= end && end <= rest.len(),
            "token {start}..{end} inside input"
        );
        assert_eq!(
            d.map.len(),
            d.text.len() + 1,
            "one map entry per byte + end"
        );
    }
}

/// Scan `data` as a file named `name` with the one scan pipeline (`scan::Scanner`): the
/// dispatch (archives, exports, documents, email) and every reader it picks.
fn scan_named(name: &str, data: &[u8]) {
    let origin = Origin {
        path: name.to_owned(),
        ..Origin::default()
    };
    let policy = Policy::default();
    let mut out: Vec<Finding> = Vec::new();
    Scanner::new(shared_matcher(), &policy, Box::new(|_| {})).scan_any(data, &origin, &mut out);
}

/// A ChatGPT export (`conversations.json`).
pub fn chatgpt(data: &[u8]) {
    scan_named("conversations.json", data);
}

/// A Claude export.
pub fn claude(data: &[u8]) {
    scan_named("claude/conversations.json", data);
}

/// JSON lines.
pub fn jsonl(data: &[u8]) {
    scan_named("export.jsonl", data);
}

/// A HAR capture.
pub fn har(data: &[u8]) {
    scan_named("capture.har", data);
}

/// Word, Excel, PowerPoint (a zip of XML parts).
pub fn ooxml(data: &[u8]) {
    scan_named("document.docx", data);
}

/// OpenDocument.
pub fn odf(data: &[u8]) {
    scan_named("document.odt", data);
}

/// RTF.
pub fn rtf(data: &[u8]) {
    scan_named("document.rtf", data);
}

/// PDF.
pub fn pdf(data: &[u8]) {
    scan_named("document.pdf", data);
}

/// Email (RFC 822 / MIME, mbox).
pub fn mime(data: &[u8]) {
    scan_named("message.eml", data);
}

/// A SQLite database (an AI tool's state, a browser's history).
pub fn sqlite(data: &[u8]) {
    scan_named("state.sqlite", data);
}

/// A zip archive.
pub fn zip(data: &[u8]) {
    scan_named("archive.zip", data);
}

/// A gzip stream.
pub fn gzip(data: &[u8]) {
    scan_named("log.gz", data);
}

/// An AI tool's history file, the tool chosen by the first byte.
pub fn ai_tools(data: &[u8]) {
    use crate::decode::formats::AiTool;
    let [sel, rest @ ..] = data else { return };
    let (tool, file) = match sel % 6 {
        0 => (AiTool::ClaudeCode, "session.jsonl"),
        1 => (AiTool::Codex, "rollout.jsonl"),
        2 => (AiTool::GeminiCli, "checkpoint.json"),
        3 => (AiTool::Cursor, "state.vscdb"),
        4 => (AiTool::VsCode, "chatSessions.json"),
        _ => (AiTool::Windsurf, "state.vscdb"),
    };
    let origin = Origin {
        path: file.to_owned(),
        ..Origin::default()
    };
    let policy = Policy::default();
    let mut out: Vec<Finding> = Vec::new();
    Scanner::new(shared_matcher(), &policy, Box::new(|_| {})).scan_ai_file(
        tool,
        rest,
        std::path::Path::new(file),
        &origin,
        &mut out,
    );
}

/// Write `data` to a private temporary file and hand its path to `f` (the loaders read files).
fn with_file(name: &str, data: &[u8], f: impl FnOnce(&std::path::Path)) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join(name);
    std::fs::write(&path, data).expect("write the input");
    f(&path);
}

/// A user rule file: loads or fails with an error, never panics.
pub fn rules(data: &[u8]) {
    with_file("rules.toml", data, |p| {
        let _ = RuleSet::load(&[p]);
    });
}

/// A `.offkey.toml` config and its allowlist globs.
pub fn config(data: &[u8]) {
    with_file(".offkey.toml", data, |p| {
        if let Ok(cfg) = crate::scan::Config::load(p) {
            let _ = Policy::new(&cfg, crate::scan::Baseline::default());
        }
    });
}

/// The API's JSON request bodies, as the server's extractors parse them.
pub fn api_bodies(data: &[u8]) {
    use crate::server::wire::{CreateBody, ExposuresBody, LoginBody, LookupBody, RotateBody};
    let _ = serde_json::from_slice::<LoginBody>(data);
    let _ = serde_json::from_slice::<CreateBody>(data);
    let _ = serde_json::from_slice::<RotateBody>(data);
    let _ = serde_json::from_slice::<LookupBody>(data);
    let _ = serde_json::from_slice::<ExposuresBody>(data);
}
