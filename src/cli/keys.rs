//! `offkey keys list|create|delete` (through the key service's API) and
//! `offkey keys import-legacy` (on the store directly, on the server host).

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};

use super::Outcome;
use super::login::ServerArgs;
use super::serve::DataArgs;
use crate::client::ApiKey;
use crate::key::{KeyKind, Secret, is_legacy_shape};
use crate::store::{NewKey, new_id};

/// `offkey keys …`
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// List the working API keys (never the keys themselves).
    List(ListArgs),
    /// Create an API key; it is printed once, on stdout.
    Create(CreateArgs),
    /// Delete an API key for good: integrations using it stop working at once.
    Delete(DeleteArgs),
    /// Load legacy keys (JSON lines {"key","memo","created_at"} on stdin) into the store.
    ImportLegacy(ImportArgs),
}

/// Arguments of `keys list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Arguments of `keys create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// What the key is for (1–100 characters).
    #[arg(long)]
    pub memo: String,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Arguments of `keys delete`.
#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// The key's id (key_…), as `offkey keys list` shows it.
    pub id: String,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Arguments of `keys import-legacy`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub data: DataArgs,
}

/// Run a keys subcommand.
pub fn run(cmd: KeysCommand) -> Result<Outcome> {
    match cmd {
        KeysCommand::List(a) => list(a),
        KeysCommand::Create(a) => create(a),
        KeysCommand::Delete(a) => delete(a),
        KeysCommand::ImportLegacy(a) => import_legacy(a),
    }
}

pub use crate::report::relative_time as relative;

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

fn table(keys: &[ApiKey], now: DateTime<Utc>) -> String {
    let mut out = format!(
        "{:<22}  {:<30}  {:<14}  {:<10}  {:<24}  {}\n",
        "ID", "MEMO", "KEY", "CREATED", "CREATED BY", "LAST USED"
    );
    for k in keys {
        let by = k.created_by.as_ref().map_or("", |c| c.name.as_str());
        out.push_str(&format!(
            "{:<22}  {:<30}  {:<14}  {:<10}  {:<24}  {}\n",
            k.id,
            truncate(&k.memo, 30),
            k.redacted(),
            k.created_at.format("%Y-%m-%d"),
            truncate(by, 24),
            relative(k.last_used_at, now)
        ));
    }
    out
}

fn list(a: ListArgs) -> Result<Outcome> {
    let keys = a.server.client()?.list_keys()?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "keys": keys }))?
        );
    } else {
        print!("{}", table(&keys, Utc::now()));
    }
    Ok(Outcome::Clean)
}

fn create(a: CreateArgs) -> Result<Outcome> {
    let created = a.server.client()?.create_key(&a.memo)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", created.key.expose()).context("cannot write the key to stdout")?;
    out.flush().context("cannot write the key to stdout")?;
    eprintln!(
        "created {} ({}) for {:?}.\n\
         This is the only time the whole key is shown. Paste it straight into the tool that\n\
         needs it (its secret store or environment), not into a doc, an email or a chat.",
        created.info.id,
        created.key.redacted(),
        created.info.memo
    );
    Ok(Outcome::Clean)
}

fn delete(a: DeleteArgs) -> Result<Outcome> {
    let client = a.server.client()?;
    let keys = client.list_keys()?;
    let Some(key) = keys.iter().find(|k| k.id == a.id) else {
        bail!("no working key with id {:?} (see `offkey keys list`)", a.id);
    };
    let last = relative(key.last_used_at, Utc::now());
    eprintln!(
        "key {} {:?} ({}), last used {last}",
        key.id,
        key.memo,
        key.redacted()
    );
    if !a.yes {
        if !std::io::stdin().is_terminal() {
            bail!("not deleting without confirmation: pass --yes to delete from a script");
        }
        eprint!(
            "Delete it? Integrations using it stop working at once; this cannot be undone. [y/N] "
        );
        std::io::stderr().flush().ok();
        let mut answer = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut answer)
            .context("cannot read the answer")?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            eprintln!("not deleted");
            return Ok(Outcome::Clean);
        }
    }
    client.delete_key(&key.id)?;
    eprintln!("deleted {} {:?}", key.id, key.memo);
    Ok(Outcome::Clean)
}

#[derive(serde::Deserialize)]
struct LegacyLine {
    key: String,
    #[serde(default)]
    memo: Option<String>,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
}

fn import_legacy(a: ImportArgs) -> Result<Outcome> {
    let mut keys = Vec::new();
    let mut bad = 0usize;
    let now = Utc::now();
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let n = i + 1;
        let line = line.with_context(|| format!("cannot read line {n} of standard input"))?;
        if line.trim().is_empty() {
            continue;
        }
        // Parse errors are reported by line number only: the line holds a key.
        let Ok(parsed) = serde_json::from_str::<LegacyLine>(&line) else {
            eprintln!("line {n}: not a JSON object with a \"key\" string; skipped");
            bad += 1;
            continue;
        };
        let text = parsed.key.trim();
        if !is_legacy_shape(text.as_bytes()) {
            eprintln!("line {n}: the key is not 32 lowercase hex characters; skipped");
            bad += 1;
            continue;
        }
        let Ok(secret) = Secret::parse(text) else {
            eprintln!("line {n}: not a legacy key; skipped");
            bad += 1;
            continue;
        };
        // A memo is checked as the API checks one (a key pasted into it is refused); an old
        // system's long memo is cut to the longest allowed rather than refused.
        let memo = match parsed
            .memo
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
        {
            None => "Legacy key".to_owned(),
            Some(m) => match crate::store::check_memo(
                &m.chars().take(crate::store::MAX_MEMO).collect::<String>(),
            ) {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("line {n}: {e}; skipped");
                    bad += 1;
                    continue;
                }
            },
        };
        keys.push(NewKey {
            id: new_id("key_"),
            sha256: secret.sha256(),
            last4: secret.last4().to_owned(),
            memo,
            kind: KeyKind::Legacy,
            created_at: parsed.created_at.unwrap_or(now),
            created_by: None,
        });
    }
    let store = a.data.open()?;
    let count = store.import_legacy(keys, "cli")?;
    eprintln!(
        "imported {} legacy keys, {} already present, {bad} bad lines",
        count.imported, count.skipped
    );
    Ok(if bad > 0 {
        Outcome::Failed
    } else {
        Outcome::Clean
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times() {
        let now = Utc::now();
        assert_eq!(relative(None, now), "never");
        assert_eq!(relative(Some(now), now), "just now");
        assert_eq!(
            relative(Some(now - chrono::Duration::minutes(5)), now),
            "5 minutes ago"
        );
        assert_eq!(
            relative(Some(now - chrono::Duration::hours(1)), now),
            "1 hour ago"
        );
        assert_eq!(
            relative(Some(now - chrono::Duration::days(3)), now),
            "3 days ago"
        );
    }
}
