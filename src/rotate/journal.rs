//! The rotation journal: one JSON file per rotation (mode 0600) in the config dir, rewritten
//! atomically before each step. It holds ids, hashes and last 4 characters, never a key.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::RotateError;

/// How far a rotation got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Nothing done yet.
    Planned,
    /// The rotate request is being sent.
    Creating,
    /// The replacement exists; not delivered yet.
    Created,
    /// Delivery failed and the replacement was deleted again: as if planned.
    RolledBack,
    /// The replacement is in place.
    Delivered,
    /// The old key is retired as planned.
    Done,
}

impl State {
    /// The journal's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Planned => "planned",
            State::Creating => "creating",
            State::Created => "created",
            State::RolledBack => "rolled_back",
            State::Delivered => "delivered",
            State::Done => "done",
        }
    }
}

/// One rotation's journal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Journal {
    /// Where it lives.
    #[serde(skip)]
    pub path: PathBuf,
    /// Format version.
    pub version: u32,
    /// The key service.
    pub server: String,
    /// When the rotation started.
    pub started_at: DateTime<Utc>,
    /// Last step taken.
    pub state: State,
    /// The key being replaced.
    pub old_key_id: String,
    /// Its last 4 characters.
    pub old_last4: String,
    /// Its memo.
    pub memo: String,
    /// The sink, as given (`file:PATH`, `exec:CMD`, `stdout`).
    pub sink: String,
    /// `--force` for a file sink.
    #[serde(default)]
    pub force: bool,
    /// The old-key policy (`now`, `after-first-use:86400s`, `in:3600s`).
    pub policy: String,
    /// The replacement's id, once created.
    pub new_key_id: Option<String>,
    /// The replacement's hash, once created.
    pub new_sha256: Option<String>,
    /// The replacement's last 4 characters, once created.
    pub new_last4: Option<String>,
    /// The old key's deadline, once set.
    pub old_expires_at: Option<String>,
    /// The last failure, if any.
    pub error: Option<String>,
}

impl Journal {
    /// Start a journal for rotating `old_key_id` in `dir`.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        dir: &Path,
        server: &str,
        old_key_id: &str,
        old_last4: &str,
        memo: &str,
        sink: &str,
        force: bool,
        policy: &str,
    ) -> Result<Self, RotateError> {
        let now = Utc::now();
        let safe: String = old_key_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        let path = dir.join(format!("{}-{safe}.json", now.format("%Y%m%dT%H%M%S%.3fZ")));
        let j = Journal {
            path,
            version: 1,
            server: server.to_owned(),
            started_at: now,
            state: State::Planned,
            old_key_id: old_key_id.to_owned(),
            old_last4: old_last4.to_owned(),
            memo: memo.to_owned(),
            sink: sink.to_owned(),
            force,
            policy: policy.to_owned(),
            new_key_id: None,
            new_sha256: None,
            new_last4: None,
            old_expires_at: None,
            error: None,
        };
        j.save()?;
        Ok(j)
    }

    fn err(&self, message: impl std::fmt::Display) -> RotateError {
        RotateError::Journal {
            path: self.path.display().to_string(),
            message: message.to_string(),
        }
    }

    /// Record a new state (and any fields `f` sets), durably, before going on.
    pub fn set(&mut self, state: State, f: impl FnOnce(&mut Journal)) -> Result<(), RotateError> {
        self.state = state;
        f(self);
        self.save()
    }

    fn save(&self) -> Result<(), RotateError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.err(e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let tmp = self.path.with_extension("json.tmp");
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(|e| self.err(e))?;
        let text = serde_json::to_vec_pretty(self).map_err(|e| self.err(e))?;
        f.write_all(&text)
            .and_then(|_| f.sync_all())
            .map_err(|e| self.err(e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Read one journal.
    pub fn load(path: &Path) -> Result<Self, RotateError> {
        let text = std::fs::read(path).map_err(|e| RotateError::Journal {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let mut j: Journal = serde_json::from_slice(&text).map_err(|e| RotateError::Journal {
            path: path.display().to_string(),
            message: format!("not a rotation journal: {e}"),
        })?;
        j.path = path.to_path_buf();
        Ok(j)
    }

    /// Every unfinished journal in `dir`, oldest first.
    pub fn unfinished(dir: &Path) -> Result<Vec<Self>, RotateError> {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return Ok(Vec::new());
        };
        let mut paths: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        let mut out = Vec::new();
        for p in paths {
            let j = Journal::load(&p)?;
            if j.state != State::Done {
                out.push(j);
            }
        }
        Ok(out)
    }
}
