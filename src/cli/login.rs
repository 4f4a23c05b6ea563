//! `offkey login` / `offkey logout`: sign in to a key service and keep the session token in the
//! login config (mode 0600); sign out and forget it. Also how the other service commands find
//! the server and token ([`ServerArgs::client`]).

use anyhow::{Context, Result, bail};

use super::Outcome;
use super::config::{self, LoginConfig};
use crate::client::{Client, SessionToken};

/// Which key service, for commands that talk to one.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Key service address [default: $OFFKEY_SERVER, else the one `offkey login` saved].
    #[arg(long, env = "OFFKEY_SERVER", value_name = "URL")]
    pub server: Option<String>,
}

impl ServerArgs {
    /// A signed-in client: token from `OFFKEY_TOKEN`, else the login config.
    pub fn client(&self) -> Result<Client> {
        let saved = config::load()?;
        let server = match (&self.server, &saved) {
            (Some(s), _) => s.clone(),
            (None, Some(c)) => c.server.clone(),
            (None, None) => {
                bail!("no key service: run `offkey login --server URL` or pass --server")
            }
        };
        let same =
            |a: &str, b: &str| a.trim().trim_end_matches('/') == b.trim().trim_end_matches('/');
        let token = match std::env::var("OFFKEY_TOKEN") {
            Ok(t) if !t.trim().is_empty() => t.trim().to_owned(),
            // The saved token goes only to the server that issued it.
            _ => match &saved {
                Some(c) if same(&c.server, &server) => c.token.clone(),
                Some(c) => bail!(
                    "signed in to {}, not {server}: run `offkey login --server {server}` or set OFFKEY_TOKEN",
                    c.server
                ),
                None => bail!("not signed in: run `offkey login` or set OFFKEY_TOKEN"),
            },
        };
        Ok(Client::new(&server)?.with_token(SessionToken::new(token)))
    }
}

/// Arguments of `offkey login`.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// Key service address, e.g. http://127.0.0.1:8787.
    #[arg(long, env = "OFFKEY_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Your email.
    #[arg(long)]
    pub email: String,
    /// Read the password from the first line of standard input (otherwise prompt).
    #[arg(long)]
    pub password_stdin: bool,
}

/// Arguments of `offkey logout`.
#[derive(Debug, clap::Args)]
pub struct LogoutArgs {}

/// Sign in and save the session.
pub fn run(args: LoginArgs) -> Result<Outcome> {
    let server = match args.server {
        Some(s) => s,
        None => match config::load()? {
            Some(c) => c.server,
            None => bail!("pass --server URL (or set OFFKEY_SERVER)"),
        },
    };
    let client = Client::new(&server)?;
    if plain_http_off_host(client.base_url()) {
        eprintln!(
            "warning: {} is plain http: the password and session token cross the network unencrypted",
            client.base_url()
        );
    }
    let password = super::members::read_password(args.password_stdin, false)?;
    let login = client.login(args.email.trim(), &password)?;
    let saved = config::save(&LoginConfig {
        server: client.base_url().to_owned(),
        token: login.token.expose().to_owned(),
        email: login.member.email.clone(),
        expires_at: login.expires_at.to_rfc3339(),
    })?;
    eprintln!(
        "signed in to {} as {} ({}); the session ends {} (saved in {})",
        client.base_url(),
        login.member.email,
        login.member.role,
        login.expires_at.format("%Y-%m-%d %H:%M UTC"),
        saved.display()
    );
    Ok(Outcome::Clean)
}

/// Whether `url` is plain `http://` to anything but this machine: the parsed host must be a
/// loopback address or exactly `localhost` (not a name that merely starts with it, such as
/// `localhost.evil.example`). An unparsable URL counts as remote.
pub fn plain_http_off_host(url: &str) -> bool {
    let Ok(u) = reqwest::Url::parse(url.trim()) else {
        return true;
    };
    if u.scheme() != "http" {
        return false;
    }
    let Some(host) = u.host_str() else {
        return true;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => !ip.is_loopback(),
        Err(_) => !host.eq_ignore_ascii_case("localhost"),
    }
}

/// End the saved session on the server and forget it.
pub fn run_logout(_args: LogoutArgs) -> Result<Outcome> {
    let Some(saved) = config::load()? else {
        eprintln!("not signed in");
        return Ok(Outcome::Clean);
    };
    let client = Client::new(&saved.server)?.with_token(SessionToken::new(saved.token.clone()));
    let ended = client.logout();
    config::remove().context("cannot forget the session")?;
    match ended {
        Ok(()) => eprintln!("signed out of {}", saved.server),
        // Already ended or expired: forgetting it is all that was left to do.
        Err(e) if e.status() == Some(401) => {
            eprintln!("signed out (the session had already ended)")
        }
        Err(e) => {
            eprintln!("forgot the local session, but the server did not confirm: {e}");
            return Ok(Outcome::Failed);
        }
    }
    Ok(Outcome::Clean)
}

#[cfg(test)]
mod tests {
    use super::plain_http_off_host;

    #[test]
    fn only_loopback_or_exactly_localhost_is_local() {
        for local in [
            "http://localhost:8787",
            "http://LOCALHOST:8787/",
            "http://127.0.0.1:8787",
            "http://127.9.9.9",
            "http://[::1]:8787",
            "https://keys.example.com",
            "https://localhost.evil.example",
        ] {
            assert!(!plain_http_off_host(local), "{local}");
        }
        for remote in [
            "http://localhost.evil.example",
            "http://localhost.evil.example:8787",
            "http://127.0.0.1.evil.example",
            "http://127.attacker.example",
            "http://[::1].evil.example",
            "http://10.0.0.5:8787",
            "http://keys.example.com",
            "http://user@localhost.evil.example",
            "not a url",
        ] {
            assert!(plain_http_off_host(remote), "{remote}");
        }
    }
}
