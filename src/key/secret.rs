//! `Secret`: a whole key in memory, which formats itself only as its redacted form.

use std::fmt;

use super::format::{KeyKind, is_current, is_legacy_shape, redacted, sha256_hex};

/// A whole key. `Debug` and `Display` print `oc_live_…last4` (or `…last4`); only
/// [`Secret::expose`] gives the key itself, for the few places that must (the create answer,
/// the rotation sink, hashing).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret {
    text: String,
    kind: KeyKind,
}

/// A string that is not a key. Never carries the input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseKeyError {
    /// Neither a current key nor a legacy key shape.
    #[error("not an Offset key (expected oc_live_ + 38 base62 characters, or 32 lowercase hex)")]
    Shape,
    /// Current-key shape with a wrong checksum.
    #[error("not an Offset key: the checksum does not match (typo or truncated key?)")]
    Checksum,
}

impl Secret {
    pub(super) fn from_trusted(text: String, kind: KeyKind) -> Self {
        Secret { text, kind }
    }

    /// Parse a whole key (current with a valid checksum, or legacy shape). Surrounding
    /// whitespace is trimmed.
    pub fn parse(s: &str) -> Result<Self, ParseKeyError> {
        let s = s.trim();
        let b = s.as_bytes();
        if is_current(b) {
            Ok(Secret::from_trusted(s.to_owned(), KeyKind::Current))
        } else if is_legacy_shape(b) {
            Ok(Secret::from_trusted(s.to_owned(), KeyKind::Legacy))
        } else if b.starts_with(super::PREFIX.as_bytes()) && b.len() == super::KEY_LEN {
            Err(ParseKeyError::Checksum)
        } else {
            Err(ParseKeyError::Shape)
        }
    }

    /// Wrap bytes the matcher already validated (any rule, any shape).
    pub fn from_match(bytes: &[u8], kind: KeyKind) -> Self {
        Secret::from_trusted(String::from_utf8_lossy(bytes).into_owned(), kind)
    }

    /// The whole key. Call only where the key must leave memory on purpose.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// Current or legacy.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The last 4 characters.
    pub fn last4(&self) -> &str {
        let start = self
            .text
            .char_indices()
            .rev()
            .nth(3)
            .map(|(i, _)| i)
            .unwrap_or(0);
        &self.text[start..]
    }

    /// Lowercase hex SHA-256 of the key.
    pub fn sha256(&self) -> String {
        sha256_hex(self.text.as_bytes())
    }

    /// `oc_live_…last4` or `…last4`.
    pub fn redacted(&self) -> String {
        let shown = if self.text.starts_with(super::PREFIX) {
            KeyKind::Current
        } else {
            KeyKind::Legacy
        };
        redacted(shown, self.last4())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.redacted())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "oc_live_0123456789ABCDEFGHIJKLMNOPQRSTUV1ggZdL";

    #[test]
    fn parse_current_and_legacy() {
        let k = Secret::parse(KEY).expect("valid");
        assert_eq!(k.kind(), KeyKind::Current);
        assert_eq!(k.last4(), "gZdL");
        assert_eq!(k.redacted(), "oc_live_…gZdL");
        let l = Secret::parse("43daa2ac214ae4da6a592a611e7824e4").expect("legacy");
        assert_eq!(l.kind(), KeyKind::Legacy);
        assert_eq!(l.redacted(), "…24e4");
        assert_eq!(
            Secret::parse("oc_live_0123456789ABCDEFGHIJKLMNOPQRSTUV1ggZdM"),
            Err(ParseKeyError::Checksum)
        );
        assert_eq!(Secret::parse("hello"), Err(ParseKeyError::Shape));
    }

    #[test]
    fn debug_display_and_errors_never_show_the_key() {
        let k = Secret::parse(KEY).expect("valid");
        for shown in [
            format!("{k}"),
            format!("{k:?}"),
            format!("{:?}", Some(&k)),
            format!("{}", ParseKeyError::Checksum),
        ] {
            assert!(!shown.contains(KEY), "{shown}");
            assert!(!shown.contains("0123456789ABCDEF"), "{shown}");
        }
    }
}
