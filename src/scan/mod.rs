//! Blob → findings: one Aho-Corasick pass over every rule keyword and every encoded form of them,
//! regex confirmation only around hits, then validators (checksum, context, boundaries),
//! then the allowlists and the baseline.

mod ai;
mod blob;
mod container;
mod dispatch;
mod encoded;
mod finding;
mod matcher;
mod policy;
mod stream;

pub use ai::scan_ai_file;
pub use blob::{LineIndex, scan_blob};
pub use dispatch::{scan_any, scan_file};
pub use finding::{Encoding, Finding, Location, Origin, SourceKind, Verification, VerifyStatus};
pub use matcher::{Match, Matcher};
pub use policy::{Baseline, Config, ConfigError, Policy};
pub use stream::{redact_stream, scan_reader};
