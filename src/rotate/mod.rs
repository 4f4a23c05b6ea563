//! The rotation assistant: create the replacement first, deliver it to the one sink the user
//! chose, retire the old key only after that; every step written to a journal (ids and hashes,
//! never a key) before it is taken, so `--resume` after a crash neither leaves two replacements
//! nor retires the old key before the new one was delivered.

mod journal;
mod policy;
mod sink;

use chrono::Utc;

pub use journal::{Journal, State};
pub use policy::{OldKeyPolicy, PolicyError, parse_duration};
pub use sink::{Sink, SinkError};

use crate::client::{ApiKey, Client, ClientError, RotateRequest};

/// A rotation that stopped. Never contains a key.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// The key service refused or could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The new key could not be delivered; it was deleted again and the old key is untouched.
    #[error(
        "delivering the new key failed: {0}; the new key was deleted again and the old key keeps working (retry with `offkey rotate --resume`)"
    )]
    Delivery(SinkError),
    /// The journal could not be written: nothing was done that it does not record.
    #[error("rotation journal {path}: {message}")]
    Journal {
        /// The journal file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The key to rotate is not a working key of this account.
    #[error("key {0} is not a working key of this account (deleted, expired or unknown)")]
    NotWorking(String),
}

/// What a finished rotation did, for the report and the summary line.
#[derive(Debug, Clone)]
pub struct Rotated {
    /// The old key's id.
    pub old_id: String,
    /// The old key's last 4 characters.
    pub old_last4: String,
    /// The replacement's id.
    pub new_id: String,
    /// The replacement's last 4 characters.
    pub new_last4: String,
    /// What happens to the old key.
    pub old_key: String,
}

/// Test hook: abort the process right after this state is journaled (simulates a crash).
const CRASH_ENV: &str = "OFFKEY_TEST_CRASH_AFTER";

fn maybe_crash(state: State) {
    if std::env::var(CRASH_ENV).is_ok_and(|v| v == state.as_str()) {
        eprintln!("offkey: simulated crash after {}", state.as_str());
        std::process::abort();
    }
}

/// The replacement's memo: `<old memo> (rotated YYYY-MM-DD)`.
pub fn rotated_memo(old: &str) -> String {
    let base = old.split(" (rotated ").next().unwrap_or(old);
    let memo = format!("{base} (rotated {})", Utc::now().format("%Y-%m-%d"));
    memo.chars().take(100).collect()
}

/// Rotate one key: journal → create → deliver → retire → done. On a delivery failure the new
/// key is deleted again (never delivered, so nobody can be using it), which also lifts the old
/// key's deadline.
pub fn rotate(
    client: &Client,
    old: &ApiKey,
    policy: OldKeyPolicy,
    sink: &Sink,
    journal: &mut Journal,
) -> Result<Rotated, RotateError> {
    journal.set(State::Creating, |_| {})?;
    maybe_crash(State::Creating);
    let req = RotateRequest {
        memo: Some(rotated_memo(&old.memo)),
        grace_seconds: Some(policy.grace_seconds()),
        until_first_use: policy.until_first_use(),
    };
    let created = client.rotate(&old.id, &req).map_err(|e| match e.status() {
        Some(404) => RotateError::NotWorking(old.id.clone()),
        _ => RotateError::Client(e),
    })?;
    journal.set(State::Created, |j| {
        j.new_key_id = Some(created.info.id.clone());
        j.new_sha256 = Some(created.key.sha256());
        j.new_last4 = Some(created.key.last4().to_owned());
        j.old_expires_at = Some(created.old_expires_at.to_rfc3339());
    })?;
    maybe_crash(State::Created);
    if let Err(e) = sink.deliver(&created.key, old) {
        let rolled_back = client.delete_key(&created.info.id).is_ok();
        journal.set(
            if rolled_back {
                State::RolledBack
            } else {
                State::Created
            },
            |j| {
                j.error = Some(e.to_string());
            },
        )?;
        return Err(RotateError::Delivery(e));
    }
    drop(created.key);
    journal.set(State::Delivered, |_| {})?;
    maybe_crash(State::Delivered);
    finish(client, journal, policy)
}

/// Retire the old key as the policy says and close the journal.
fn finish(
    client: &Client,
    journal: &mut Journal,
    policy: OldKeyPolicy,
) -> Result<Rotated, RotateError> {
    if policy == OldKeyPolicy::Now {
        match client.delete_key(&journal.old_key_id) {
            Ok(()) => {}
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e.into()),
        }
    }
    journal.set(State::Done, |_| {})?;
    Ok(Rotated {
        old_id: journal.old_key_id.clone(),
        old_last4: journal.old_last4.clone(),
        new_id: journal.new_key_id.clone().unwrap_or_default(),
        new_last4: journal.new_last4.clone().unwrap_or_default(),
        old_key: policy.describe(journal.old_expires_at.as_deref()),
    })
}

/// Continue an unfinished rotation from its journal.
pub fn resume(client: &Client, journal: &mut Journal) -> Result<Rotated, RotateError> {
    let policy: OldKeyPolicy =
        journal
            .policy
            .parse()
            .map_err(|e: PolicyError| RotateError::Journal {
                path: journal.path.display().to_string(),
                message: e.to_string(),
            })?;
    let sink: Sink = journal
        .sink
        .parse()
        .map_err(|e: SinkError| RotateError::Journal {
            path: journal.path.display().to_string(),
            message: e.to_string(),
        })?;
    let sink = sink.with_force(journal.force);
    match journal.state {
        State::Delivered => return finish(client, journal, policy),
        State::Done => {
            return Ok(Rotated {
                old_id: journal.old_key_id.clone(),
                old_last4: journal.old_last4.clone(),
                new_id: journal.new_key_id.clone().unwrap_or_default(),
                new_last4: journal.new_last4.clone().unwrap_or_default(),
                old_key: policy.describe(journal.old_expires_at.as_deref()),
            });
        }
        State::Created => {
            // The new key was created but never delivered: its value is gone with the crashed
            // process, and nobody can be using it. Delete it, then rotate again.
            if let Some(id) = journal.new_key_id.clone() {
                match client.delete_key(&id) {
                    Ok(()) => {}
                    Err(e) if e.status() == Some(404) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        State::Creating => {
            // The create may or may not have happened: a replacement made for this journal has
            // the journal's memo and no use yet.
            let memo = rotated_memo(&journal.memo);
            for k in client.list_keys()? {
                if k.memo == memo && k.last_used_at.is_none() && k.created_at >= journal.started_at
                {
                    client.delete_key(&k.id).or_else(|e| {
                        if e.status() == Some(404) {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    })?;
                }
            }
        }
        State::Planned | State::RolledBack => {}
    }
    let old = client
        .list_keys()?
        .into_iter()
        .find(|k| k.id == journal.old_key_id)
        .ok_or_else(|| RotateError::NotWorking(journal.old_key_id.clone()))?;
    journal.set(State::Planned, |j| {
        j.new_key_id = None;
        j.new_sha256 = None;
        j.new_last4 = None;
        j.error = None;
    })?;
    rotate(client, &old, policy, &sink, journal)
}
