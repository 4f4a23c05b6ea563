//! Blob → findings: one Aho-Corasick pass over every rule keyword and every encoded form of them,
//! regex confirmation only around hits, then validators (checksum, context, boundaries),
//! then the allowlists and the baseline. A [`Scanner`] holds all of that for one worker; the
//! sources that need more than blob by blob (git history, the index) are its callers here.

mod ai;
mod blob;
mod container;
mod dispatch;
mod encoded;
mod finding;
mod git;
mod matcher;
mod policy;
mod scanner;
mod stream;

pub use blob::LineIndex;
pub use finding::{Encoding, Finding, Location, Origin, SourceKind, Verification, VerifyStatus};
pub use git::{BlobHook, GitScan, SharedWarn, scan_history, scan_staged};
pub use matcher::{Match, Matcher};
pub use policy::{Baseline, Config, ConfigError, Policy};
pub use scanner::{Scanner, WarnSink};
pub use stream::{redact_stream, scan_reader};
