//! The login config: the key service's address and the session token, kept in
//! `<platform config dir>/offkey/session.json` (or `$OFFKEY_CONFIG_DIR/session.json`), readable
//! by its owner only (mode 0600, directory 0700).

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// What `offkey login` keeps.
#[derive(Clone, Serialize, Deserialize)]
pub struct LoginConfig {
    /// Key service base URL.
    pub server: String,
    /// Session token (secret).
    pub token: String,
    /// Who signed in.
    pub email: String,
    /// When the session ends by itself (RFC 3339).
    pub expires_at: String,
}

impl std::fmt::Debug for LoginConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginConfig")
            .field("server", &self.server)
            .field("email", &self.email)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// The config directory: `$OFFKEY_CONFIG_DIR`, else `<config dir>/offkey`.
pub fn dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("OFFKEY_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    dirs::config_dir()
        .map(|d| d.join("offkey"))
        .context("no config directory on this platform; set OFFKEY_CONFIG_DIR")
}

/// The login config file.
pub fn path() -> Result<PathBuf> {
    Ok(dir()?.join("session.json"))
}

/// The saved login, if any.
pub fn load() -> Result<Option<LoginConfig>> {
    let path = path()?;
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{} is not a valid login config", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Save the login, readable by the owner only.
pub fn save(config: &LoginConfig) -> Result<PathBuf> {
    let dir = dir()?;
    let path = dir.join("session.json");
    create_private_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(".session.json.tmp");
    let bytes = serde_json::to_vec_pretty(config).context("cannot encode the login config")?;
    write_private(&tmp, &bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// Forget the login; `false` if there was none.
pub fn remove() -> Result<bool> {
    let path = path()?;
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An older file keeps its mode through O_CREAT; make sure.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}
