//! Findings → bytes: human text, JSON and JSON lines (spec/report.md), SARIF. Nothing else in
//! offkey writes reports. Only a key's redacted form and its SHA-256 ever leave through here.

mod json;
mod sarif;
mod text;

pub use json::{Summary, json_finding, write_json, write_jsonl_line};
pub use sarif::write_sarif;
pub use text::{TextStyle, relative_time, write_text};

/// The report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line per finding, for people.
    Text,
    /// One JSON object (spec/report.md).
    Json,
    /// One JSON object per finding, as found.
    Jsonl,
    /// SARIF 2.1.0, for GitHub code scanning.
    Sarif,
}
