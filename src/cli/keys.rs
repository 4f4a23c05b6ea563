//! `offkey keys`: API keys through the service. (Placeholder until the service lands.)

use super::Outcome;

/// `offkey keys …`
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// List keys.
    List,
}

/// Run a keys subcommand.
pub fn run(_cmd: KeysCommand) -> anyhow::Result<Outcome> {
    anyhow::bail!("offkey keys is not built yet")
}
