//! `offkey rotate` and `offkey revoke`: the rotation assistant on the command line.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use chrono::Utc;

use super::Outcome;
use super::login::ServerArgs;
use crate::client::{ApiKey, Client, LookupStatus};
use crate::rotate::{Journal, OldKeyPolicy, Rotated, Sink};

/// Arguments of `offkey rotate`.
#[derive(Debug, clap::Args)]
pub struct RotateArgs {
    /// The key to rotate (its id, `key_…`).
    #[arg(required_unless_present_any = ["sha256", "from_report", "resume"])]
    pub key_id: Option<String>,
    /// Find the key by the SHA-256 of its value (as in a scan report).
    #[arg(long, value_name = "HASH", conflicts_with_all = ["key_id", "from_report"])]
    pub sha256: Option<String>,
    /// Rotate every ACTIVE finding of an `offkey scan --verify --format json` report.
    #[arg(long, value_name = "REPORT.json", conflicts_with = "key_id")]
    pub from_report: Option<PathBuf>,
    /// Where the new key goes: file:PATH (mode 0600), exec:COMMAND (key on its stdin) or stdout.
    /// With --resume: a sink that replaces the journal's.
    #[arg(long, value_name = "SINK", required_unless_present = "resume")]
    pub deliver: Option<String>,
    /// What happens to the old key: now, after-first-use[:DURATION] (default, 24h bound), in:DURATION.
    #[arg(long, default_value = "after-first-use", value_name = "WHEN")]
    pub old_key: String,
    /// Replace an existing file sink.
    #[arg(long)]
    pub force: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Continue unfinished rotations from their journals.
    #[arg(long, conflicts_with_all = ["key_id", "sha256", "from_report"])]
    pub resume: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Arguments of `offkey revoke`.
#[derive(Debug, clap::Args)]
pub struct RevokeArgs {
    /// The key to delete now (its id, `key_…`).
    pub key_id: String,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub server: ServerArgs,
}

/// Where rotation journals live.
pub fn journal_dir() -> Result<PathBuf> {
    Ok(super::config::dir()?.join("rotations"))
}

fn last_use(k: &ApiKey) -> String {
    match k.last_used_at {
        Some(t) => format!("last used {}", super::keys::relative(Some(t), Utc::now())),
        None => "never used".into(),
    }
}

/// Ask on a TTY; refuse without one unless `--yes`.
pub fn confirm(question: &str, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("not a terminal: pass --yes to confirm");
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if matches!(line.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        bail!("cancelled; nothing was changed")
    }
}

/// Resolve the keys to rotate.
fn targets(a: &RotateArgs, client: &Client) -> Result<Vec<ApiKey>> {
    let keys = client.list_keys().context("listing keys")?;
    let by_id = |id: &str| -> Result<ApiKey> {
        keys.iter()
            .find(|k| k.id == id)
            .cloned()
            .with_context(|| format!("key {id} is not a working key of this account"))
    };
    if let Some(id) = &a.key_id {
        return Ok(vec![by_id(id)?]);
    }
    let hashes: Vec<String> = if let Some(h) = &a.sha256 {
        vec![h.to_ascii_lowercase()]
    } else if let Some(p) = &a.from_report {
        let text = std::fs::read(p).with_context(|| format!("{}: cannot read", p.display()))?;
        let v: serde_json::Value = serde_json::from_slice(&text)
            .with_context(|| format!("{}: not a JSON report", p.display()))?;
        let mut hs: Vec<String> = v["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["verification"]["status"] == "active")
            .filter_map(|f| f["sha256"].as_str().map(str::to_owned))
            .collect();
        hs.sort();
        hs.dedup();
        if hs.is_empty() {
            bail!(
                "{}: no ACTIVE findings (scan with --verify first)",
                p.display()
            );
        }
        hs
    } else {
        bail!("name a key: KEY_ID, --sha256 HASH or --from-report REPORT.json");
    };
    let mut out = Vec::new();
    for r in client.lookup(&hashes).context("looking up keys")? {
        match (r.status, r.key) {
            (LookupStatus::Active, Some(k)) => out.push(by_id(&k.id)?),
            (status, _) => eprintln!(
                "offkey: skipping key with sha256 {}…: {}",
                &r.sha256[..r.sha256.len().min(12)],
                match status {
                    LookupStatus::Revoked => "already revoked",
                    _ => "unknown to this account",
                }
            ),
        }
    }
    Ok(out)
}

/// Print what a rotation did, with ids and last 4 characters only.
pub fn print_rotated(r: &Rotated) {
    eprintln!(
        "offkey: rotated {} (…{}) → {} (…{}) delivered; old key {}",
        r.old_id, r.old_last4, r.new_id, r.new_last4, r.old_key
    );
}

/// Rotate one key with a journal.
pub fn rotate_key(
    client: &Client,
    old: &ApiKey,
    policy: OldKeyPolicy,
    sink: &Sink,
    force: bool,
) -> Result<Rotated> {
    let mut journal = Journal::create(
        &journal_dir()?,
        client.base_url(),
        &old.id,
        &old.last4,
        &old.memo,
        &sink.to_string(),
        force,
        &policy.to_string(),
    )?;
    Ok(crate::rotate::rotate(
        client,
        old,
        policy,
        sink,
        &mut journal,
    )?)
}

/// Run `offkey rotate`.
pub fn run(a: RotateArgs) -> Result<Outcome> {
    let client = a.server.client()?;
    if a.resume {
        let journals = Journal::unfinished(&journal_dir()?)?;
        if journals.is_empty() {
            eprintln!("offkey: no unfinished rotation");
            return Ok(Outcome::Clean);
        }
        let mut failed = false;
        for mut j in journals {
            eprintln!(
                "offkey: resuming rotation of {} (…{}) from step {}",
                j.old_key_id,
                j.old_last4,
                j.state.as_str()
            );
            if let Some(d) = &a.deliver {
                // A failed sink can be replaced on resume (e.g. after fixing a secret store).
                j.sink = d.parse::<Sink>()?.to_string();
                j.force = a.force;
            }
            match crate::rotate::resume(&client, &mut j) {
                Ok(r) => print_rotated(&r),
                Err(e) => {
                    failed = true;
                    eprintln!("offkey: error: {e}");
                }
            }
        }
        return Ok(if failed {
            Outcome::Failed
        } else {
            Outcome::Clean
        });
    }
    let policy: OldKeyPolicy = a.old_key.parse()?;
    let sink: Sink = a
        .deliver
        .as_deref()
        .unwrap_or_default()
        .parse::<Sink>()?
        .with_force(a.force);
    let olds = targets(&a, &client)?;
    if olds.is_empty() {
        bail!("nothing to rotate");
    }
    if olds.len() > 1 && !sink.takes_many() {
        bail!(
            "{} keys to rotate but one file sink: put {{id}} in the path (file:secrets/{{id}}.key)",
            olds.len()
        );
    }
    eprintln!("offkey: rotation plan ({} key(s)):", olds.len());
    for k in &olds {
        eprintln!(
            "  {} {}  {:?}, {}; new key → {}; old key: {}",
            k.id,
            k.redacted(),
            k.memo,
            last_use(k),
            sink,
            policy.describe(None)
        );
        sink.precheck(k)?;
    }
    confirm("Rotate now?", a.yes)?;
    let mut failed = false;
    for k in &olds {
        match rotate_key(&client, k, policy, &sink, a.force) {
            Ok(r) => print_rotated(&r),
            Err(e) => {
                failed = true;
                eprintln!("offkey: error: rotating {} (…{}): {e:#}", k.id, k.last4);
            }
        }
    }
    Ok(if failed {
        Outcome::Failed
    } else {
        Outcome::Clean
    })
}

/// Run `offkey revoke`.
pub fn run_revoke(a: RevokeArgs) -> Result<Outcome> {
    let client = a.server.client()?;
    let keys = client.list_keys().context("listing keys")?;
    let k = keys
        .iter()
        .find(|k| k.id == a.key_id)
        .with_context(|| format!("key {} is not a working key of this account", a.key_id))?;
    eprintln!(
        "offkey: revoke {} {} {:?}, {}. Deletion is immediate and permanent: every integration using it stops working now.",
        k.id,
        k.redacted(),
        k.memo,
        last_use(k)
    );
    confirm("Delete this key now?", a.yes)?;
    client.delete_key(&k.id).context("deleting the key")?;
    eprintln!("offkey: revoked {} (…{})", k.id, k.last4);
    Ok(Outcome::Clean)
}
