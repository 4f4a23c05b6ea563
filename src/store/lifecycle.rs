//! The key lifecycle rules, once for every backend: which key works, how a key that stopped
//! working reads, when a replaced key retires, and what cancelling a rotation may restore.
//!
//! The one invariant everything here keeps: **a key that was refused once (deleted, expired,
//! replaced) is refused forever.** No operation pushes a deadline that has passed back, and
//! none clears a `deleted_at`.

use chrono::{DateTime, Utc};

use super::KeyRecord;

/// A key works when it is not deleted and its deadline (a rotation's grace), if any, is still
/// ahead.
pub fn works(
    deleted_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    deleted_at.is_none() && expires_at.is_none_or(|e| e > now)
}

/// [`works`] for a whole record.
pub fn record_works(key: &KeyRecord, now: DateTime<Utc>) -> bool {
    works(key.deleted_at, key.expires_at, now)
}

/// A key that stopped working reads as revoked: an expired key's `deleted_at` is the moment its
/// grace ran out.
pub fn settle(mut key: KeyRecord, now: DateTime<Utc>) -> KeyRecord {
    if key.deleted_at.is_none() {
        if let Some(e) = key.expires_at {
            if e <= now {
                key.deleted_at = Some(e);
            }
        }
    }
    key
}

/// The old key's deadline after a rotation asking for `requested`: an earlier rotation's
/// deadline is never pushed back.
pub fn rotated_deadline(current: Option<DateTime<Utc>>, requested: DateTime<Utc>) -> DateTime<Utc> {
    current.map_or(requested, |e| e.min(requested))
}

/// What deleting a replacement does to the key it was to replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancel {
    /// Not a cancellation (the deleted key replaced nothing, or had been used).
    None,
    /// The old key still works: its deadline becomes the earliest one that the rotations still
    /// standing asked for (`None`: no deadline).
    Restore {
        /// The old key.
        old_id: String,
        /// Its new deadline.
        deadline: Option<DateTime<Utc>>,
    },
    /// The old key still works but was found in public (a GitHub alert): its deadline stands.
    Stands {
        /// The old key.
        old_id: String,
    },
    /// The old key had already stopped working: it stays refused.
    TooLate {
        /// The old key.
        old_id: String,
    },
}

/// Deleting `new` (a key that may replace another): a never-used replacement cancels its
/// rotation, restoring the old key only while the old key still works (`old_works_now`).
/// `standing` are the deadlines asked for by the old key's other rotations that still stand
/// (every replacement except the cancelled ones: deleted before their first use), so that
/// cancelling one rotation never undoes another's deadline. A key found in public
/// (`publicly_leaked`) is never restored.
pub fn cancel_on_delete(
    new: &KeyRecord,
    old_works_now: bool,
    publicly_leaked: bool,
    standing: impl IntoIterator<Item = DateTime<Utc>>,
) -> Cancel {
    match (&new.replaces, new.last_used_at) {
        (Some(old_id), None) if old_works_now && publicly_leaked => Cancel::Stands {
            old_id: old_id.clone(),
        },
        (Some(old_id), None) if old_works_now => Cancel::Restore {
            old_id: old_id.clone(),
            deadline: standing.into_iter().min(),
        },
        (Some(old_id), None) => Cancel::TooLate {
            old_id: old_id.clone(),
        },
        _ => Cancel::None,
    }
}

impl Cancel {
    /// The audit row a cancel writes: the old key's id and what happened to it.
    pub fn audit(&self, new_id: &str) -> Option<(&str, String)> {
        let (old_id, what) = match self {
            Cancel::None => return None,
            Cancel::Restore { old_id, deadline } => (
                old_id,
                deadline.map_or_else(
                    || "the old key works again with no deadline".to_owned(),
                    |d| {
                        format!(
                            "the old key works until {}",
                            d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        )
                    },
                ),
            ),
            Cancel::Stands { old_id } => (
                old_id,
                "the old key was found in public and its deadline stands".to_owned(),
            ),
            Cancel::TooLate { old_id } => (
                old_id,
                "the old key had already stopped working and stays revoked".to_owned(),
            ),
        };
        Some((
            old_id.as_str(),
            format!("replacement {new_id} deleted before its first use; {what}"),
        ))
    }
}
