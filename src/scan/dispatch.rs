//! Any blob → findings: archives are opened (within limits) and their members scanned as blobs;
//! everything else gets the plain pass, and a file where it saw a trigger and that looks like an AI
//! chat export or a HAR capture is parsed so its findings name the conversation and message (or
//! the HAR entry and field). A malformed export keeps its plain findings, with a warning.

use std::collections::{HashMap, HashSet};

use super::blob::{scan_blob, scan_blob_hits};
use super::finding::{Finding, Origin, SourceKind};
use super::matcher::{Match, Matcher};
use super::policy::Policy;
use crate::decode::{self, Encoding, Structured};
use crate::source::{ArchiveLimits, expand_archive, looks_like_archive};

/// Scan one blob of any kind. `warn` hears about skipped archive members and malformed exports.
#[allow(clippy::too_many_arguments)]
pub fn scan_any(
    matcher: &Matcher,
    policy: &Policy,
    data: &[u8],
    origin: &Origin,
    scratch: &mut Vec<Match>,
    out: &mut Vec<Finding>,
    warn: &mut dyn FnMut(String),
    depth: u8,
) {
    let limits = ArchiveLimits::default();
    if let Some(kind) = looks_like_archive(data) {
        if depth >= limits.max_depth {
            warn(format!(
                "{}: archive nested deeper than {} levels, scanned as bytes",
                origin.path, limits.max_depth
            ));
        } else {
            let mut members: Vec<(String, Vec<u8>)> = Vec::new();
            let mut opened = false;
            expand_archive(
                data,
                kind,
                &origin.path,
                limits,
                &mut |name, bytes| {
                    opened = true;
                    members.push((name.to_owned(), bytes.to_vec()));
                },
                warn,
            );
            for (name, bytes) in members {
                let inner = Origin {
                    path: format!("{}!{}", origin.path, name),
                    ..origin.clone()
                };
                scan_any(
                    matcher,
                    policy,
                    &bytes,
                    &inner,
                    scratch,
                    out,
                    warn,
                    depth + 1,
                );
            }
            if opened {
                return;
            }
        }
    }
    let start = out.len();
    scan_text(matcher, policy, data, origin, scratch, out, warn);
    // A UTF-16 file with a byte-order mark is also scanned as the text it holds, so legacy keys
    // (whose context words have no UTF-16 literals) are found too, with lines and columns in
    // that text; a key the byte view found that this view did not is kept (the BOM may lie).
    if let Some(text) = decode::utf16_with_bom(data) {
        let mut utf16 = Vec::new();
        scan_blob(
            matcher,
            policy,
            text.as_bytes(),
            origin,
            scratch,
            &mut utf16,
        );
        prefer_view(out, start, utf16, Some(Encoding::Utf16));
    }
}

/// Replace the findings in `out[start..]` whose key `view` (a decoded view of the same blob)
/// also found, keeping the rest (never lose what the byte view found). A key the view found as
/// plain text is reported with `plain_as`, or else with the encoding it had in the bytes (for a
/// chat message, which is already decoded JSON).
fn prefer_view(
    out: &mut Vec<Finding>,
    start: usize,
    mut view: Vec<Finding>,
    plain_as: Option<Encoding>,
) {
    if view.is_empty() {
        return;
    }
    let bytes: Vec<Finding> = out.drain(start..).collect();
    let in_bytes: HashMap<String, Encoding> = bytes
        .iter()
        .map(|f| (f.secret.sha256(), f.encoding))
        .collect();
    let mut placed = HashSet::new();
    for f in &mut view {
        let sha = f.secret.sha256();
        if f.encoding == Encoding::Plain {
            f.encoding = plain_as
                .or_else(|| in_bytes.get(&sha).copied())
                .unwrap_or(Encoding::Plain);
        }
        placed.insert(sha);
    }
    out.extend(
        bytes
            .into_iter()
            .filter(|f| !placed.contains(&f.secret.sha256())),
    );
    out.extend(view);
}

/// The plain pass over a blob, then the structured view of a chat export or HAR capture.
fn scan_text(
    matcher: &Matcher,
    policy: &Policy,
    data: &[u8],
    origin: &Origin,
    scratch: &mut Vec<Match>,
    out: &mut Vec<Finding>,
    warn: &mut dyn FnMut(String),
) {
    let start = out.len();
    // Structured files are parsed only when the plain pass saw a trigger at all (a key, or a
    // context word such as a HAR header name on the line before its value).
    let mut hits = Vec::new();
    scan_blob_hits(matcher, policy, data, origin, scratch, out, &mut hits);
    if hits.is_empty() {
        return;
    }
    let Some(kind) = decode::sniff(data) else {
        return;
    };
    hits.extend(scratch.iter().map(|m| m.start));
    let parts = match decode::parts_of(data, kind, &hits) {
        Ok(p) => p,
        Err(e) => {
            warn(format!(
                "{}: looks like {} but {e}; scanned as plain text",
                origin.path,
                describe(kind)
            ));
            return;
        }
    };
    let mut structured = Vec::new();
    for part in parts {
        let o = Origin {
            source: Some(if kind == Structured::Har {
                SourceKind::Har
            } else {
                SourceKind::Transcript
            }),
            conversation: part.conversation,
            message: part.message,
            role: part.role,
            date: part.timestamp.or_else(|| origin.date.clone()),
            entry: part.entry,
            field: part.field,
            ..origin.clone()
        };
        scan_blob(
            matcher,
            policy,
            part.text.as_bytes(),
            &o,
            scratch,
            &mut structured,
        );
    }
    prefer_view(out, start, structured, None);
}

fn describe(kind: Structured) -> &'static str {
    match kind {
        Structured::ChatGpt => "a ChatGPT export",
        Structured::Claude => "a Claude export",
        Structured::ChatJsonl => "a chat JSONL file",
        Structured::Har => "a HAR capture",
    }
}
