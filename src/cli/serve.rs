//! `offkey serve`: the key service (HTTP API, the Settings → API Keys page, the embedded store),
//! and the `--data DIR` / `OFFKEY_DATA` choice of store shared with `members` and
//! `keys import-legacy`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::Outcome;
use crate::server::net::{NetSettings, PublicUrl, ServeOptions};
use crate::server::routes::github::{GithubAlerts, LeakAction};
use crate::server::{AppState, serve_with};
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
    /// Address to listen on (port 0 picks a free port; the address is printed on stderr). A
    /// non-loopback address needs TLS (--tls-cert/--tls-key), an https --public-url (TLS ends
    /// at a proxy in front) or --insecure-http.
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR")]
    pub listen: String,
    /// A reverse proxy whose X-Forwarded-For is believed (its last entry is the client's
    /// address, for the sign-in limits); repeatable; an address or a CIDR range.
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr)]
    pub trusted_proxy: Vec<ipnet::IpNet>,
    /// Besides loopback, a range that may read `GET /metrics` (repeatable).
    #[arg(long, value_name = "CIDR", value_parser = parse_cidr)]
    pub metrics_from: Vec<ipnet::IpNet>,
    /// The URL users reach the service at, e.g. https://keys.example.com: other Host headers
    /// are refused (421), cookie changes must come from this origin, and with https the
    /// session cookie is __Host-offkey_session with Secure.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address anyway (passwords and session tokens then
    /// cross the network unencrypted).
    #[arg(long)]
    pub insecure_http: bool,
    /// Password checks allowed at once (argon2 takes 19 MiB each); more sign-ins get 503.
    #[arg(long, value_name = "N", default_value_t = crate::server::net::DEFAULT_PASSWORD_CHECKS,
          value_parser = clap::value_parser!(usize))]
    pub max_password_checks: usize,
    /// Seconds allowed for a request's headers (and a TLS handshake); idle connections are
    /// closed after it too.
    #[arg(long, value_name = "SECONDS", hide = true, value_parser = parse_seconds,
          default_value = "10")]
    pub header_timeout: Duration,
    /// Seconds allowed for a request's body.
    #[arg(long, value_name = "SECONDS", hide = true, value_parser = parse_seconds,
          default_value = "30")]
    pub body_timeout: Duration,
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

fn parse_cidr(s: &str) -> std::result::Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is not an address or a CIDR range such as 10.0.0.0/8"))
}

fn parse_seconds(s: &str) -> std::result::Result<Duration, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0 && *v <= 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{s:?} is not a number of seconds between 0 and 86400"))
}

/// Refuse plain HTTP on an address other machines can reach, unless TLS ends at a proxy in
/// front (an https public URL) or the operator insists.
fn check_exposure(
    addr: std::net::SocketAddr,
    tls: bool,
    public_url: Option<&PublicUrl>,
    insecure_http: bool,
) -> Result<()> {
    if tls
        || insecure_http
        || addr.ip().is_loopback()
        || public_url.is_some_and(PublicUrl::is_https)
    {
        return Ok(());
    }
    bail!(
        "refusing to serve plain HTTP on {addr}, which is not a loopback address: passwords and session \
         tokens would cross the network unencrypted. Add --tls-cert FILE --tls-key FILE to serve HTTPS, \
         or --public-url https://… when a TLS proxy in front forwards to this address, or \
         --insecure-http to insist"
    )
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
    let public_url = args
        .public_url
        .as_deref()
        .map(PublicUrl::parse)
        .transpose()?;
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(crate::server::net::tls_config(cert, key)?),
        _ => None,
    };
    let options = ServeOptions {
        tls,
        header_timeout: args.header_timeout,
        body_timeout: args.body_timeout,
    };
    let net = NetSettings {
        trusted_proxies: args.trusted_proxy.clone(),
        public_url,
        max_password_checks: args.max_password_checks.max(1),
        metrics_from: args.metrics_from.clone(),
    };
    let where_ = args.data.describe()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr().context("no local address")?;
        check_exposure(
            addr,
            options.tls.is_some(),
            net.public_url.as_ref(),
            args.insecure_http,
        )?;
        // The store is opened off the runtime's threads: PostgreSQL's synchronous client runs a
        // runtime of its own and may not start inside this one.
        let data = args.data.clone();
        let store = tokio::task::spawn_blocking(move || data.open())
            .await
            .context("opening the store stopped")??;
        // ... and closed off them too: this handle outlives the server's, so the last drop of
        // the store (its pooled connections) happens below, on the blocking pool.
        let keep = Arc::clone(&store);
        let served = run_server(args, listener, store, net, options, where_).await;
        let _ = tokio::task::spawn_blocking(move || drop(keep)).await;
        served
    })
}

/// Serve until a shutdown signal, with the store already open.
async fn run_server(
    args: ServeArgs,
    listener: tokio::net::TcpListener,
    store: Arc<dyn Store>,
    net: NetSettings,
    options: ServeOptions,
    where_: String,
) -> Result<Outcome> {
    let addr = listener.local_addr().context("no local address")?;
    {
        let mut state = AppState::new(store).with_net(net);
        if let Some(file) = &args.github_keys {
            let github =
                GithubAlerts::new(file.clone(), args.on_public_leak, args.notify_url.clone())?;
            state = state.with_github(github);
        }
        let scheme = if options.tls.is_some() {
            "https"
        } else {
            "http"
        };
        eprintln!("offkey serve listening on {scheme}://{addr}");
        eprintln!("offkey serve data {where_}");
        if let Some(file) = &args.github_keys {
            eprintln!(
                "offkey serve GitHub secret scanning alerts at POST /v1/secret-scanning/github, keys {}",
                file.display()
            );
        }
        serve_with(listener, state, options, shutdown_signal())
            .await
            .context("the server failed")?;
        eprintln!("offkey serve stopped");
        Ok(Outcome::Clean)
    }
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
