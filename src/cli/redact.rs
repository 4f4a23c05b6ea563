//! `offkey redact`: standard input to standard output with every key replaced, streaming.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context as _;

use super::Outcome;
use crate::rules::RuleSet;
use crate::scan::{Matcher, redact_stream};

/// Arguments of `offkey redact`.
#[derive(Debug, clap::Args)]
pub struct RedactArgs {
    /// What replaces each key.
    #[arg(long, default_value = "YOUR_API_KEY")]
    pub placeholder: String,
    /// Extra rule file; repeatable.
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<std::path::PathBuf>,
}

/// Run `offkey redact`.
pub fn run(args: RedactArgs) -> anyhow::Result<Outcome> {
    let refs: Vec<&std::path::Path> = args.rules.iter().map(|p| p.as_path()).collect();
    let matcher = Matcher::new(Arc::new(RuleSet::load(&refs)?), true);
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let n = redact_stream(&matcher, &mut stdin.lock(), &mut w, &args.placeholder)
        .context("redacting standard input")?;
    w.flush().context("writing standard output")?;
    eprintln!("offkey: redacted {n} key(s)");
    Ok(Outcome::Clean)
}
