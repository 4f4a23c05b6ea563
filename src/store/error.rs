//! The store's error type. Messages name the store file or the conflict, never a key or token.

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
    /// The database was written by a newer offkey.
    #[error("the key store {path} has schema version {found}; this offkey knows up to {known}")]
    TooNew {
        /// The database file.
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
    /// The backend failed.
    #[error("key store: {0}")]
    Backend(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> Self {
        // rusqlite's messages carry SQL and constraint names, never bound values.
        StoreError::Backend(err.to_string())
    }
}
