//! `offkey serve`: the key service. (Placeholder until the service lands.)

use super::Outcome;

/// Arguments of `offkey serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub listen: String,
}

/// Run the service.
pub fn run(_args: ServeArgs) -> anyhow::Result<Outcome> {
    anyhow::bail!("offkey serve is not built yet")
}
