//! Detection rules: `rules/*.toml` (embedded in the binary) plus user rule files, parsed into raw
//! serde types ([`raw`]) and compiled into a checked [`RuleSet`] whose one Aho-Corasick automaton
//! covers every rule's keywords and context words.

mod compile;
mod raw;

pub use compile::{Boundary, Confidence, Context, Rule, RuleError, RuleSet, Trigger, Validator};

/// The built-in rule files, embedded at build time.
pub const BUILTIN: &[(&str, &str)] =
    &[("rules/offset.toml", include_str!("../../rules/offset.toml"))];
