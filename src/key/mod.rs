//! The Offset key format (spec/key-format.md): generate, checksum, parse, last 4, sha256 and the
//! redacted display. `Secret` is the only type that holds a whole key; its `Debug` and `Display`
//! show the redacted form, so a key cannot reach a log or a panic message by accident.

mod format;
mod secret;

pub use format::{
    ALPHABET, BODY_LEN, CSUM_LEN, KEY_LEN, KeyKind, LEGACY_LEN, PREFIX, base62, checksum,
    contains_key, generate, is_current, is_legacy_shape, redacted, scrub, scrub_name, sha256_hex,
};
pub use secret::{ParseKeyError, Secret};
