//! `offkey store`: the key store's own maintenance: `migrate` brings a PostgreSQL database's
//! schema up to date (also done at `serve` start), `copy` moves an embedded SQLite store into
//! PostgreSQL with nothing lost and checks the result.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::Outcome;
use crate::store::{PgStore, SqliteStore, copy, db_path};

/// `offkey store …`
#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// Apply the schema migrations a PostgreSQL key store lacks (safe while replicas run or
    /// start).
    Migrate(MigrateArgs),
    /// Copy an embedded store (a --data directory) into PostgreSQL: members, sessions, keys
    /// with their tombstones and rotation links, exposures, audit. Checks counts and key hashes
    /// after; running it again changes nothing.
    Copy(CopyArgs),
}

/// Arguments of `offkey store migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// postgres://user@host:port/dbname
    #[arg(
        long,
        env = "OFFKEY_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database: String,
}

/// Arguments of `offkey store copy`.
#[derive(Debug, clap::Args)]
pub struct CopyArgs {
    /// The embedded store's directory (holding keys.db).
    #[arg(long, value_name = "DIR")]
    pub from_data: PathBuf,
    /// The PostgreSQL database to copy into: postgres://user@host:port/dbname
    #[arg(long, value_name = "URL")]
    pub to: String,
}

/// Run `offkey store …`.
pub fn run(cmd: StoreCommand) -> Result<Outcome> {
    match cmd {
        StoreCommand::Migrate(a) => {
            let store = PgStore::connect(&a.database)?;
            let (before, after) = store.migrate()?;
            if before == after {
                eprintln!("{}: schema version {after}, up to date", store.target());
            } else {
                eprintln!("{}: schema version {before} -> {after}", store.target());
            }
            Ok(Outcome::Clean)
        }
        StoreCommand::Copy(a) => {
            let db = db_path(&a.from_data);
            if !db.is_file() {
                anyhow::bail!(
                    "no key store in {} (no keys.db there)",
                    a.from_data.display()
                );
            }
            let from = SqliteStore::open(&db)?;
            let to = PgStore::connect(&a.to)?;
            let report = copy::sqlite_to_postgres(&from, &to)
                .with_context(|| format!("copying {} to {}", db.display(), to.target()))?;
            let names = ["members", "sessions", "keys", "exposures", "audit events"];
            for ((name, n), w) in names.iter().zip(report.source).zip(report.written) {
                eprintln!("{name}: {n} in the source, {w} newly copied");
            }
            eprintln!(
                "copied {} to {}; counts and key hashes match",
                db.display(),
                to.target()
            );
            Ok(Outcome::Clean)
        }
    }
}
