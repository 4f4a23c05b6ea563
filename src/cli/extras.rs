//! `offkey completions`, `offkey man` and `offkey init`: generated from the clap definitions,
//! and a commented starter `.offkey.toml`.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::CommandFactory;

use super::{Cli, Outcome};

/// Arguments of `offkey completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Arguments of `offkey init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Where to write it.
    #[arg(default_value = ".offkey.toml")]
    pub path: PathBuf,
    /// Replace an existing file.
    #[arg(long)]
    pub force: bool,
}

/// Print shell completions.
pub fn completions(a: CompletionsArgs) -> anyhow::Result<Outcome> {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "offkey", &mut std::io::stdout());
    Ok(Outcome::Clean)
}

/// Print the man page (roff).
pub fn man() -> anyhow::Result<Outcome> {
    let cmd = Cli::command();
    clap_mangen::Man::new(cmd)
        .render(&mut std::io::stdout())
        .context("writing the man page")?;
    Ok(Outcome::Clean)
}

const STARTER: &str = r#"# offkey configuration (https://github.com/offset-commerce/offkey)
# Read by `offkey scan` from the scan root, or given with --config FILE.

# Paths never scanned (gitignore-style globs, like --exclude).
exclude = [
    # "vendor/**",
]

# Extra rule files (same format as offkey's rules/offset.toml), relative to this file.
rules = []

[allowlist]
# Report paths (globs) never reported: test fixtures with fake keys, documentation examples.
paths = [
    # "fixtures/**",
    # "docs/examples/*.md",
]
# SHA-256 of keys known to be fakes (the `sha256` field of a JSON report).
sha256 = [
    # "5f1c…",
]
"#;

/// Write a starter `.offkey.toml`.
pub fn init(a: InitArgs) -> anyhow::Result<Outcome> {
    if a.path.exists() && !a.force {
        bail!(
            "{}: already exists (use --force to replace it)",
            a.path.display()
        );
    }
    std::fs::write(&a.path, STARTER)
        .with_context(|| format!("{}: cannot write", a.path.display()))?;
    eprintln!("offkey: wrote {}", a.path.display());
    Ok(Outcome::Clean)
}
