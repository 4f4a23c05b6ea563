//! `offkey login` / `offkey logout`. (Placeholder until the service lands.)

use super::Outcome;

/// Arguments of `offkey login`.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// Key service address.
    #[arg(long, env = "OFFKEY_SERVER")]
    pub server: Option<String>,
}

/// Arguments of `offkey logout`.
#[derive(Debug, clap::Args)]
pub struct LogoutArgs {}

/// Sign in.
pub fn run(_args: LoginArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("offkey login is not built yet")
}

/// Sign out.
pub fn run_logout(_args: LogoutArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("offkey logout is not built yet")
}
