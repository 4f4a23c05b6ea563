//! The command line: one file per subcommand. `anyhow` lives here only; every subcommand
//! returns an [`Outcome`] that `main` maps to the exit code.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod config;
pub mod extras;
pub mod hook;
pub mod images;
pub mod keys;
pub mod login;
pub mod members;
pub mod progress;
pub mod redact;
pub mod rotate;
pub mod scan;
pub mod serve;
pub mod store;
pub mod verify;

/// How a command ended, as the exit code says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0: nothing found, or the command did what was asked.
    Clean,
    /// Exit 1: findings remain after allowlists and baseline.
    Findings,
    /// Exit 2: something failed (named on stderr); the run went on where it could.
    Failed,
}

impl Outcome {
    /// The process exit code for this outcome.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Clean => 0,
            Outcome::Findings => 1,
            Outcome::Failed => 2,
        }
    }
}

/// Find, verify, redact and rotate Offset Commerce API keys; run the key service.
#[derive(Debug, Parser)]
#[command(name = "offkey", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Every subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scan files, folders or standard input (`-`) for Offset keys.
    Scan(Box<scan::ScanArgs>),
    /// Copy standard input to standard output with every key replaced by a placeholder.
    Redact(redact::RedactArgs),
    /// Rotate a key safely: new key first, delivered, then the old key retired.
    Rotate(Box<rotate::RotateArgs>),
    /// Delete a key now (for a key pasted into a chat or published).
    Revoke(rotate::RevokeArgs),
    /// Git hooks.
    #[command(subcommand)]
    Hook(hook::HookCommand),
    /// Print shell completions.
    Completions(extras::CompletionsArgs),
    /// Print the man page.
    Man,
    /// Write a commented starter .offkey.toml.
    Init(extras::InitArgs),
    /// Run the key service: HTTP API, Settings → API Keys page, embedded key store.
    Serve(Box<serve::ServeArgs>),
    /// Manage team members on the server host (direct store access).
    #[command(subcommand)]
    Members(members::MembersCommand),
    /// List, create, delete and import API keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Maintain the key store: migrate a PostgreSQL schema, copy SQLite into PostgreSQL.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Sign in to a key service and keep the session token in the config dir.
    Login(login::LoginArgs),
    /// End the saved session.
    Logout(login::LogoutArgs),
}

/// Parse the command line, run it and turn the outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(outcome) => ExitCode::from(outcome.code()),
        Err(err) => {
            // Errors may quote user input (a config line); never let a key through.
            eprintln!("offkey: error: {}", crate::key::scrub(&format!("{err:#}")));
            ExitCode::from(Outcome::Failed.code())
        }
    }
}

/// Run one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Scan(args) => scan::run(*args),
        Command::Redact(args) => redact::run(args),
        Command::Rotate(args) => rotate::run(*args),
        Command::Revoke(args) => rotate::run_revoke(args),
        Command::Hook(cmd) => hook::run(cmd),
        Command::Completions(args) => extras::completions(args),
        Command::Man => extras::man(),
        Command::Init(args) => extras::init(args),
        Command::Serve(args) => serve::run(*args),
        Command::Members(cmd) => members::run(cmd),
        Command::Keys(cmd) => keys::run(cmd),
        Command::Store(cmd) => store::run(cmd),
        Command::Login(args) => login::run(args),
        Command::Logout(args) => login::run_logout(args),
    }
}
