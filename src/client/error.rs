//! [`ClientError`]: what can go wrong talking to the key service. Never carries a key or token:
//! the server's error messages are written never to echo them, and transport errors are stripped
//! of their URL's query.

/// A failed call to the key service.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server address is not an http(s) URL.
    #[error("the key service address {0:?} is not an http:// or https:// URL")]
    BadUrl(String),
    /// No session token for a call that needs one.
    #[error("not signed in: run `offkey login` or set OFFKEY_TOKEN")]
    NoToken,
    /// The service could not be reached or the connection broke.
    #[error("cannot reach the key service at {url}: {message}")]
    Transport {
        /// Base URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The service answered with an error.
    #[error("the key service refused {what}: {message} ({status} {code})")]
    Api {
        /// What was asked (method and path).
        what: String,
        /// HTTP status.
        status: u16,
        /// `error.code`.
        code: String,
        /// `error.message`.
        message: String,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer from the key service to {what} ({status}): {message}")]
    Decode {
        /// What was asked.
        what: String,
        /// HTTP status.
        status: u16,
        /// Why it did not parse.
        message: String,
    },
}

impl ClientError {
    /// The HTTP status of an API refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The `error.code` of an API refusal.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}
