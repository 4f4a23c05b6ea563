//! `offkey serve`: the key service (HTTP API, the Settings → API Keys page, the embedded store),
//! and the `--data DIR` / `OFFKEY_DATA` choice of store shared with `members` and
//! `keys import-legacy`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};

use super::Outcome;
use crate::server::{AppState, serve};
use crate::store::{Store, default_data_dir};

/// Where the key store lives.
#[derive(Debug, Clone, clap::Args)]
pub struct DataArgs {
    /// Directory of the key store (keys.db) [default: the platform data dir, e.g.
    /// ~/.local/share/offkey].
    #[arg(long, env = "OFFKEY_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// A PostgreSQL key store instead, shared by any number of `offkey serve` replicas:
    /// postgres://user@host:port/dbname (add ?sslmode=verify-full for TLS). Its schema is
    /// brought up to date when opened. Given, it wins over --data / OFFKEY_DATA.
    #[arg(
        long,
        env = "OFFKEY_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database: Option<String>,
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
        match &self.database {
            Some(url) => Ok(crate::store::open_url(url)?),
            None => Ok(crate::store::open(&self.dir()?)?),
        }
    }

    /// Where the store is, for messages: the directory, or the database without password.
    pub fn describe(&self) -> Result<String> {
        match &self.database {
            Some(url) => Ok(crate::store::DbUrl::parse(url)?.target()),
            None => Ok(self.dir()?.display().to_string()),
        }
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
    let where_ = args.data.describe()?;
    let state = AppState::new(args.data.open()?);
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
        eprintln!("offkey serve data {where_}");
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
