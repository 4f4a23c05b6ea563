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
    ("ocr_recover", ocr_recover),
    ("pack", pack),
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

/// The OCR-correction search (`ocr::recover`) on arbitrary OCR text, each line as OCR would
/// hand it over, and Tesseract's TSV parser on the same text: every candidate's span lies inside
/// its line, in order, and a recovered key took at most `MAX_EDITS` corrections.
pub fn ocr_recover(data: &[u8]) {
    use crate::ocr::recover::{MAX_EDITS, Outcome, recover};
    let text = String::from_utf8_lossy(data);
    for line in text.lines() {
        let chars = line.chars().count();
        let mut last = 0;
        for c in recover(line) {
            assert!(
                c.span.start < c.span.end && c.span.end <= chars,
                "candidate {:?} outside a line of {chars} characters",
                c.span
            );
            assert!(c.span.start >= last, "candidates out of order");
            last = c.span.start;
            if let Outcome::Key { corrections, .. } = c.outcome {
                assert!(corrections <= MAX_EDITS, "{corrections} corrections");
            }
        }
    }
    for words in crate::ocr::parse_tsv(&text) {
        assert!(!words.is_empty(), "a TSV line without words");
    }
}

/// A pack and its index (`source::walk_packs`, the delta-order walk of git history):
/// the first four bytes (little-endian) give the index's length, the index follows, then the
/// pack. Deltas in the pack are applied to their bases by the walk. A pack that cannot be
/// walked must come back as a warning naming it, never a panic.
pub fn pack(data: &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let len = (u32::from_le_bytes(*len) as usize).min(rest.len());
    let (idx, pack) = rest.split_at(len);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let packs = dir.path().join("pack");
    std::fs::create_dir(&packs).expect("create objects/pack");
    std::fs::write(packs.join("pack-fuzz.idx"), idx).expect("write the index");
    std::fs::write(packs.join("pack-fuzz.pack"), pack).expect("write the pack");
    let walk = crate::source::walk_packs(
        dir.path(),
        1 << 20,
        1,
        || (),
        |_, blob: &[u8]| {
            assert!(blob.len() <= 1 << 20, "a blob over the size limit visited");
            false
        },
    );
    for w in &walk.warnings {
        assert!(
            w.contains("pack-fuzz.pack"),
            "a warning not naming the pack: {w}"
        );
    }
}
