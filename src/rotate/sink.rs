//! Where a new key goes: exactly one sink. `file:PATH` (mode 0600, never over an existing file
//! without `--force`, never inside a git work tree unless git ignores it), `exec:CMD` (the key
//! on the command's standard input; a non-zero exit is a failure), or `stdout` (only by name).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;

use crate::client::ApiKey;
use crate::key::Secret;

/// A delivery target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    /// Write the key to a new file. `{id}` in the path becomes the old key's id.
    File {
        /// Where.
        path: PathBuf,
        /// Replace an existing file.
        force: bool,
    },
    /// Run a command with the key on its standard input (and `OFFKEY_OLD_KEY_ID`,
    /// `OFFKEY_NEW_KEY_LAST4`, `OFFKEY_MEMO` in its environment).
    Exec(String),
    /// Print the key on standard output.
    Stdout,
}

/// Why a delivery failed, or a sink string that does not parse. Never contains a key.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Bad `--deliver` value.
    #[error("--deliver {0:?}: expected file:PATH, exec:COMMAND or stdout")]
    Parse(String),
    /// The file exists.
    #[error("{0}: already exists (use --force to replace it)")]
    Exists(String),
    /// The file would land in a git work tree where git would pick it up.
    #[error(
        "{0}: inside a git work tree and not ignored by git; a key there is one `git add` away from a commit (choose another path, or ignore it in .gitignore)"
    )]
    InWorkTree(String),
    /// Writing failed.
    #[error("{path}: cannot write: {message}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The command failed.
    #[error("exec sink `{cmd}`: {message}")]
    Exec {
        /// The command.
        cmd: String,
        /// What happened.
        message: String,
    },
}

impl FromStr for Sink {
    type Err = SinkError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(p) = s.strip_prefix("file:").filter(|p| !p.is_empty()) {
            Ok(Sink::File {
                path: PathBuf::from(p),
                force: false,
            })
        } else if let Some(c) = s.strip_prefix("exec:").filter(|c| !c.trim().is_empty()) {
            Ok(Sink::Exec(c.to_owned()))
        } else if s == "stdout" {
            Ok(Sink::Stdout)
        } else {
            Err(SinkError::Parse(s.to_owned()))
        }
    }
}

impl std::fmt::Display for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sink::File { path, .. } => write!(f, "file:{}", path.display()),
            Sink::Exec(c) => write!(f, "exec:{c}"),
            Sink::Stdout => f.write_str("stdout"),
        }
    }
}

impl Sink {
    /// The same sink with `--force` (files only).
    pub fn with_force(self, force: bool) -> Self {
        match self {
            Sink::File { path, .. } => Sink::File { path, force },
            other => other,
        }
    }

    /// The file path for rotating `old` (`{id}` replaced).
    fn file_path(path: &Path, old: &ApiKey) -> PathBuf {
        PathBuf::from(path.to_string_lossy().replace("{id}", &old.id))
    }

    /// Whether this sink can take several keys in one run (a file path needs `{id}`).
    pub fn takes_many(&self) -> bool {
        match self {
            Sink::File { path, .. } => path.to_string_lossy().contains("{id}"),
            _ => true,
        }
    }

    /// Check what can be checked before a key exists (file exists, work tree).
    pub fn precheck(&self, old: &ApiKey) -> Result<(), SinkError> {
        if let Sink::File { path, force } = self {
            let path = Self::file_path(path, old);
            let shown = path.display().to_string();
            if path.exists() && !force {
                return Err(SinkError::Exists(shown));
            }
            let abs = if path.is_absolute() {
                path.clone()
            } else {
                std::env::current_dir()
                    .map(|d| d.join(&path))
                    .unwrap_or(path.clone())
            };
            let parent = abs.parent().unwrap_or(Path::new("/"));
            if let Ok(repo) = git2::Repository::discover(parent) {
                if let Some(wt) = repo.workdir() {
                    let wt = wt.canonicalize().unwrap_or(wt.to_path_buf());
                    let parent = parent.canonicalize().unwrap_or(parent.to_path_buf());
                    if let Ok(rel_dir) = parent.strip_prefix(&wt) {
                        let rel = rel_dir.join(abs.file_name().unwrap_or_default());
                        if !repo.is_path_ignored(&rel).unwrap_or(false) {
                            return Err(SinkError::InWorkTree(shown));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Hand the new key over. The key travels only from memory to the sink.
    pub fn deliver(&self, key: &Secret, old: &ApiKey) -> Result<(), SinkError> {
        self.precheck(old)?;
        match self {
            Sink::File { path, force } => {
                let path = Self::file_path(path, old);
                let shown = path.display().to_string();
                let werr = |e: std::io::Error| SinkError::Write {
                    path: shown.clone(),
                    message: e.to_string(),
                };
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true);
                if *force {
                    opts.create(true).truncate(true);
                } else {
                    opts.create_new(true);
                }
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    opts.mode(0o600);
                }
                let mut f = opts.open(&path).map_err(werr)?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    f.set_permissions(std::fs::Permissions::from_mode(0o600))
                        .map_err(werr)?;
                }
                f.write_all(key.expose().as_bytes())
                    .and_then(|_| f.write_all(b"\n"))
                    .and_then(|_| f.sync_all())
                    .map_err(werr)
            }
            Sink::Exec(cmd) => {
                let err = |message: String| SinkError::Exec {
                    cmd: cmd.clone(),
                    message,
                };
                let mut child = Command::new("sh")
                    .arg("-c")
                    .arg(cmd)
                    .env("OFFKEY_OLD_KEY_ID", &old.id)
                    .env("OFFKEY_MEMO", &old.memo)
                    .env("OFFKEY_NEW_KEY_LAST4", key.last4())
                    .stdin(Stdio::piped())
                    .stdout(Stdio::inherit())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .map_err(|e| err(format!("cannot start: {e}")))?;
                if let Some(mut stdin) = child.stdin.take() {
                    // A command that exits without reading is judged by its exit status below.
                    let _ = stdin
                        .write_all(key.expose().as_bytes())
                        .and_then(|_| stdin.write_all(b"\n"));
                }
                let status = child
                    .wait()
                    .map_err(|e| err(format!("did not finish: {e}")))?;
                if status.success() {
                    Ok(())
                } else {
                    Err(err(format!("exited with {status}")))
                }
            }
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{}", key.expose())
                    .and_then(|_| out.flush())
                    .map_err(|e| SinkError::Write {
                        path: "standard output".into(),
                        message: e.to_string(),
                    })
            }
        }
    }
}
