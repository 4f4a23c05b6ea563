//! The JSON report of spec/report.md, field by field.

use std::io::Write;

use serde::Serialize;

use crate::key::KeyKind;
use crate::rules::Confidence;
use crate::scan::{Encoding, Finding, Location, Verification};

/// `summary` of the report.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Summary {
    /// Files (or blobs) scanned.
    pub files: u64,
    /// Bytes scanned.
    pub bytes: u64,
    /// Findings reported (places, not distinct keys).
    pub findings: u64,
    /// Wall time of the scan.
    pub elapsed_ms: u64,
}

#[derive(Serialize)]
struct JsonFinding<'a> {
    rule: &'a str,
    kind: KeyKind,
    confidence: Confidence,
    redacted: String,
    sha256: String,
    location: &'a Location,
    encoding: Encoding,
    #[serde(skip_serializing_if = "Option::is_none")]
    corrections: Option<u8>,
    verification: &'a Option<Verification>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rotation: Option<Rotation<'a>>,
}

#[derive(Serialize)]
struct Rotation<'a> {
    new_key_id: &'a str,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    version: u32,
    findings: Vec<JsonFinding<'a>>,
    summary: Summary,
}

fn view(f: &Finding) -> JsonFinding<'_> {
    JsonFinding {
        rule: &f.rule,
        kind: f.kind,
        confidence: f.confidence,
        redacted: f.secret.redacted(),
        sha256: f.secret.sha256(),
        location: &f.location,
        encoding: f.encoding,
        corrections: f.corrections,
        verification: &f.verification,
        rotation: f
            .rotated_to
            .as_deref()
            .map(|id| Rotation { new_key_id: id }),
    }
}

/// One finding as a JSON value (for other formats that embed it).
pub fn json_finding(f: &Finding) -> serde_json::Value {
    serde_json::to_value(view(f)).expect("a finding always serializes")
}

/// The whole report as one JSON object.
pub fn write_json(
    w: &mut dyn Write,
    findings: &[Finding],
    summary: Summary,
) -> std::io::Result<()> {
    let report = JsonReport {
        version: 1,
        findings: findings.iter().map(view).collect(),
        summary,
    };
    // serde_json writes a few bytes at a time: a local buffer keeps those writes statically
    // dispatched (through `dyn Write` each cost a call; the report is written after the scan,
    // while nothing else runs).
    let mut w = std::io::BufWriter::with_capacity(1 << 16, w);
    serde_json::to_writer_pretty(&mut w, &report)?;
    writeln!(w)?;
    w.flush()
}

/// One finding on one line.
pub fn write_jsonl_line(w: &mut dyn Write, f: &Finding) -> std::io::Result<()> {
    serde_json::to_writer(&mut *w, &view(f))?;
    writeln!(w)
}
