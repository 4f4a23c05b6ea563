//! `offkey serve`: the key service (HTTP API, the Settings → API Keys page, the embedded store),
//! and the `--data DIR` / `OFFKEY_DATA` choice of store shared with `members` and
//! `keys import-legacy`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::Outcome;
use crate::server::routes::github::{GithubAlerts, LeakAction};
use crate::server::{AppState, serve};
use crate::store::{Store, default_data_dir};

/// Where the key store lives.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Directory of the key store (keys.db) [default: the platform data dir, e.g.
    /// ~/.local/share/offkey].
    #[arg(long, env = "OFFKEY_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
}

impl DataArgs {
    /// The chosen data directory.
    pub fn dir(&self) -> Result<PathBuf> {
        match &self.data {
            Some(d) => Ok(d.clone()),
            None => default_data_dir()
                .context("no data directory on this platform; pass --data DIR or set OFFKEY_DATA"),
        }
    }

    /// Open the store.
    pub fn open(&self) -> Result<Arc<dyn Store>> {
        Ok(crate::store::open(&self.dir()?)?)
    }
}

/// Arguments of `offkey serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the address is printed on stderr).
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR")]
    pub listen: String,
    #[command(flatten)]
    pub data: DataArgs,
    /// Accept GitHub secret scanning alerts at POST /v1/secret-scanning/github, verified with
    /// the public keys in FILE (GitHub's published JSON, re-read when it changes).
    #[arg(long, value_name = "FILE")]
    pub github_keys: Option<PathBuf>,
    /// What to do with an active key GitHub found in public: revoke (delete it now),
    /// rotate:DURATION (issue a replacement; the leaked key stops after DURATION, e.g. 1h, 7d)
    /// or notify (record only).
    #[arg(long, default_value = "revoke", value_name = "ACTION", value_parser = parse_leak_action, requires = "github_keys")]
    pub on_public_leak: LeakAction,
    /// POST a Slack-compatible {"text": ...} to URL for each key GitHub reports (memo and last
    /// 4 only, never the key).
    #[arg(long, value_name = "URL", requires = "github_keys")]
    pub notify_url: Option<reqwest::Url>,
}

/// `revoke`, `notify` or `rotate:DURATION` (up to 30 days).
fn parse_leak_action(s: &str) -> Result<LeakAction, String> {
    let bad = || {
        format!(
            "{s:?}: expected revoke, notify or rotate:DURATION (e.g. rotate:1h, rotate:7d; at most 30d)"
        )
    };
    match s {
        "revoke" => Ok(LeakAction::Revoke),
        "notify" => Ok(LeakAction::Notify),
        _ => {
            let secs = s
                .strip_prefix("rotate:")
                .and_then(crate::rotate::parse_duration)
                .filter(|&n| n <= crate::server::routes::keys::MAX_GRACE_SECONDS)
                .ok_or_else(bad)?;
            let secs = i64::try_from(secs).map_err(|_| bad())?;
            Ok(LeakAction::Rotate(chrono::Duration::seconds(secs)))
        }
    }
}

/// Run the service until SIGTERM or Ctrl-C; requests in flight finish first.
pub fn run(args: ServeArgs) -> Result<Outcome> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OFFKEY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init()
        .ok();
    let dir = args.data.dir()?;
    let mut state = AppState::new(crate::store::open(&dir)?);
    if let Some(file) = &args.github_keys {
        let github = GithubAlerts::new(file.clone(), args.on_public_leak, args.notify_url.clone())?;
        state = state.with_github(github);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr().context("no local address")?;
        eprintln!("offkey serve listening on http://{addr}");
        eprintln!("offkey serve data {}", dir.display());
        if let Some(file) = &args.github_keys {
            eprintln!(
                "offkey serve GitHub secret scanning alerts at POST /v1/secret-scanning/github, keys {}",
                file.display()
            );
        }
        serve(listener, state, shutdown_signal())
            .await
            .context("the server failed")?;
        eprintln!("offkey serve stopped");
        Ok(Outcome::Clean)
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
