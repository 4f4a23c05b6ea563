//! The store's error type, backend-neutral: each backend maps its driver's errors into it (see
//! `sqlite/` and `postgres/`). Messages name the store file, the database (without password) or
//! the conflict, never a key, token or password.

use std::path::PathBuf;

/// What can go wrong in the key store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or created.
    #[error("cannot open the key store {path}: {message}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The database server could not be reached or refused us.
    #[error("cannot connect to the key store {target}: {message}")]
    Connect {
        /// The database, as `host:port/dbname` (never the password).
        target: String,
        /// What went wrong.
        message: String,
    },
    /// The database URL is not one offkey can use.
    #[error("bad database URL: {0}")]
    BadUrl(String),
    /// The database was written by a newer offkey.
    #[error("the key store {path} has schema version {found}; this offkey knows up to {known}")]
    TooNew {
        /// The database file, or the database as `host:port/dbname`.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// Ours.
        known: i64,
    },
    /// An active member already has this email.
    #[error("a member with this email already exists")]
    DuplicateEmail,
    /// A key with this hash is already stored.
    #[error("a key with this hash is already stored")]
    DuplicateKey,
    /// The store cannot take writes (disk full, read-only) or cannot be reached right now; the
    /// operation changed nothing and may succeed when tried again.
    #[error("key store unavailable: {0}")]
    Unavailable(String),
    /// The backend failed.
    #[error("key store: {0}")]
    Backend(String),
    /// A transaction kept losing to concurrent ones (serialization failures or deadlocks)
    /// after every retry; nothing was changed.
    #[error("key store: too much contention, gave up after {0} tries; nothing was changed")]
    Contention(u32),
}
