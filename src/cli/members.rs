//! `offkey members`: team members, on the store directly. (Placeholder until the service lands.)

use super::Outcome;

/// `offkey members …`
#[derive(Debug, clap::Subcommand)]
pub enum MembersCommand {
    /// List members.
    List,
}

/// Run a members subcommand.
pub fn run(_cmd: MembersCommand) -> anyhow::Result<Outcome> {
    anyhow::bail!("offkey members is not built yet")
}
