//! What the user chose not to hear about: `.offkey.toml` allowlists (paths, key hashes) and a
//! baseline (an earlier JSON report).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;

/// `.offkey.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Findings never reported.
    #[serde(default)]
    pub allowlist: RawAllowlist,
    /// Paths never scanned (gitignore-style globs, like `--exclude`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Extra rule files, relative to the config file.
    #[serde(default)]
    pub rules: Vec<PathBuf>,
}

/// `[allowlist]` of `.offkey.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAllowlist {
    /// Globs over report paths (`fixtures/**`).
    #[serde(default)]
    pub paths: Vec<String>,
    /// SHA-256 hashes of keys that are known fakes.
    #[serde(default)]
    pub sha256: Vec<String>,
}

/// A config or baseline that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Malformed.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Read a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: p.clone(),
            source,
        })?;
        let cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: p.clone(),
            message: e.to_string(),
        })?;
        for (i, h) in cfg.allowlist.sha256.iter().enumerate() {
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                // Not echoed: a key pasted here instead of its hash must not reach the terminal.
                return Err(ConfigError::Invalid {
                    path: p,
                    message: format!(
                        "allowlist.sha256[{i}] is not 64 hex characters (put the key's SHA-256 \
                         here, as the JSON report's `sha256` shows it, never the key)"
                    ),
                });
            }
        }
        Ok(cfg)
    }
}

/// An earlier report: (sha256, path) pairs already known.
#[derive(Debug, Default)]
pub struct Baseline {
    seen: HashSet<(String, String)>,
}

#[derive(Deserialize)]
struct BaselineReport {
    findings: Vec<BaselineFinding>,
}

#[derive(Deserialize)]
struct BaselineFinding {
    sha256: String,
    location: BaselineLocation,
}

#[derive(Deserialize)]
struct BaselineLocation {
    path: String,
}

impl Baseline {
    /// Read a JSON report written by `offkey scan --format json`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: p.clone(),
            source,
        })?;
        let report: BaselineReport =
            serde_json::from_slice(&text).map_err(|e| ConfigError::Invalid {
                path: p,
                message: format!("not an offkey JSON report: {e}"),
            })?;
        Ok(Baseline {
            seen: report
                .findings
                .into_iter()
                .map(|f| (f.sha256.to_ascii_lowercase(), f.location.path))
                .collect(),
        })
    }
}

/// Allowlists and baseline, compiled.
#[derive(Debug)]
pub struct Policy {
    paths: GlobSet,
    sha256: HashSet<String>,
    baseline: Baseline,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            paths: GlobSet::empty(),
            sha256: HashSet::new(),
            baseline: Baseline::default(),
        }
    }
}

impl Policy {
    /// Compile a config's allowlist with a baseline.
    pub fn new(config: &Config, baseline: Baseline) -> Result<Self, ConfigError> {
        let mut b = GlobSetBuilder::new();
        for p in &config.allowlist.paths {
            let glob = Glob::new(p).map_err(|e| ConfigError::Invalid {
                path: ".offkey.toml".into(),
                message: format!("allowlist.paths: {p:?}: {e}"),
            })?;
            b.add(glob);
            // `fixtures/` and `fixtures` mean everything under it, as in .gitignore.
            let dir = p.trim_end_matches('/');
            if !dir.contains('*') {
                if let Ok(g) = Glob::new(&format!("{dir}/**")) {
                    b.add(g);
                }
            }
        }
        Ok(Policy {
            paths: b.build().map_err(|e| ConfigError::Invalid {
                path: ".offkey.toml".into(),
                message: e.to_string(),
            })?,
            sha256: config
                .allowlist
                .sha256
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            baseline,
        })
    }

    /// Is a whole path allowlisted (so it need not be scanned)?
    pub fn path_allowed(&self, path: &str) -> bool {
        self.paths.is_match(path)
    }

    /// Should a finding of this key at this path be reported?
    pub fn keeps(&self, path: &str, sha256: &str) -> bool {
        // Allowlist globs match the real path; a baseline holds reported paths, which are
        // scrubbed of keys.
        !self.paths.is_match(path)
            && !self.sha256.contains(sha256)
            && (self.baseline.seen.is_empty()
                || !self
                    .baseline
                    .seen
                    .contains(&(sha256.to_owned(), crate::key::scrub_name(path).into_owned())))
    }
}
