//! `offkey hook install`: a plain git pre-commit hook for people who don't use the pre-commit
//! framework. It runs `offkey scan --staged`, so a commit carrying a key is refused.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use super::Outcome;

/// `offkey hook …`
#[derive(Debug, clap::Subcommand)]
pub enum HookCommand {
    /// Write .git/hooks/pre-commit running `offkey scan --staged`.
    Install(InstallArgs),
}

/// Arguments of `offkey hook install`.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// The repository (default: the current one).
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Replace an existing pre-commit hook.
    #[arg(long, conflicts_with = "append")]
    pub force: bool,
    /// Keep an existing pre-commit hook and run offkey after it.
    #[arg(long)]
    pub append: bool,
}

const MARKER: &str = "# offkey pre-commit hook";

fn hook_body(offkey: &Path) -> String {
    // offkey itself prints each finding and what to do when it refuses the commit.
    format!(
        "{MARKER}: refuses a commit that adds an Offset API key.\n\
         OFFKEY=\"{}\"\n\
         [ -x \"$OFFKEY\" ] || OFFKEY=offkey\n\
         \"$OFFKEY\" scan --staged || exit $?\n",
        offkey.display()
    )
}

/// Run a hook subcommand.
pub fn run(cmd: HookCommand) -> anyhow::Result<Outcome> {
    match cmd {
        HookCommand::Install(a) => install(&a),
    }
}

fn install(a: &InstallArgs) -> anyhow::Result<Outcome> {
    let repo = git2::Repository::discover(&a.repo)
        .with_context(|| format!("{}: not inside a git repository", a.repo.display()))?;
    let hooks = match repo
        .config()
        .ok()
        .and_then(|c| c.get_path("core.hooksPath").ok())
    {
        Some(p) if p.is_absolute() => p,
        Some(p) => repo.workdir().unwrap_or(repo.path()).join(p),
        None => repo.path().join("hooks"),
    };
    std::fs::create_dir_all(&hooks)
        .with_context(|| format!("{}: cannot create", hooks.display()))?;
    let path = hooks.join("pre-commit");
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("offkey"));
    let body = hook_body(&exe);
    let existing = std::fs::read_to_string(&path).ok();
    let text = match existing {
        Some(old) if old.contains(MARKER) && !a.force => {
            eprintln!("offkey: {} already runs offkey", path.display());
            return Ok(Outcome::Clean);
        }
        Some(old) if a.append => format!("{}\n{body}", old.trim_end()),
        Some(_) if !a.force => bail!(
            "{}: a pre-commit hook already exists; use --append to run offkey after it, or --force to replace it",
            path.display()
        ),
        _ => format!("#!/bin/sh\n{body}"),
    };
    let mut f = std::fs::File::create(&path)
        .with_context(|| format!("{}: cannot write", path.display()))?;
    f.write_all(text.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    eprintln!("offkey: installed {}", path.display());
    Ok(Outcome::Clean)
}
