//! Pure functions over the key format: the base62 CRC-32 checksum, shape checks, hashing, display.

use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The prefix of every current key.
pub const PREFIX: &str = "oc_live_";
/// Random base62 characters after the prefix.
pub const BODY_LEN: usize = 32;
/// Base62 characters of the CRC-32 checksum.
pub const CSUM_LEN: usize = 6;
/// Length of a whole current key.
pub const KEY_LEN: usize = PREFIX.len() + BODY_LEN + CSUM_LEN;
/// Length of a legacy key (lowercase hex).
pub const LEGACY_LEN: usize = 32;
/// `0`=0 … `9`=9, `A`=10 … `Z`=35, `a`=36 … `z`=61.
pub const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Which generation of key a string is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// `oc_live_` + 32 base62 + 6 base62 checksum.
    Current,
    /// 32 lowercase hex, no prefix, no checksum.
    Legacy,
}

impl KeyKind {
    /// The name used in reports and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Current => "current",
            KeyKind::Legacy => "legacy",
        }
    }
}

/// `n` in base62, most significant digit first, left-padded with `0` to `width`.
pub fn base62(mut n: u64, width: usize) -> String {
    let mut out = Vec::with_capacity(width.max(11));
    while n > 0 {
        out.push(ALPHABET[(n % 62) as usize]);
        n /= 62;
    }
    while out.len() < width {
        out.push(b'0');
    }
    out.reverse();
    String::from_utf8(out).expect("base62 digits are ASCII")
}

/// The 6-character checksum of a 32-byte body.
pub fn checksum(body: &[u8]) -> [u8; CSUM_LEN] {
    let mut n = crc32fast::hash(body);
    let mut out = [b'0'; CSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    out
}

fn is_base62(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// True when `s` is exactly a well-formed current key (prefix, base62 body, checksum).
/// Boundaries are the matcher's business: this looks at the 46 bytes only.
pub fn is_current(s: &[u8]) -> bool {
    s.len() == KEY_LEN
        && s.starts_with(PREFIX.as_bytes())
        && s[PREFIX.len()..].iter().all(|&b| is_base62(b))
        && checksum(&s[PREFIX.len()..PREFIX.len() + BODY_LEN]) == s[PREFIX.len() + BODY_LEN..]
}

/// True when `s` has the legacy shape: exactly 32 lowercase hex characters.
pub fn is_legacy_shape(s: &[u8]) -> bool {
    s.len() == LEGACY_LEN && s.iter().all(|&b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether `text` holds a whole key of either format (so it must not be stored as a memo or
/// location): a current key, wherever it stands, or a legacy key (exactly 32 lowercase hex
/// bounded by non-alphanumerics, the shape of `spec/key-format.md`).
pub fn contains_key(text: &str) -> bool {
    let b = text.as_bytes();
    let current = memchr::memmem::find_iter(b, PREFIX.as_bytes())
        .any(|i| b.get(i..i + KEY_LEN).is_some_and(is_current));
    current || contains_legacy(b)
}

fn contains_legacy(b: &[u8]) -> bool {
    b.split(|c| !c.is_ascii_alphanumeric()).any(is_legacy_shape)
}

/// A fresh current key from the operating system's CSPRNG.
pub fn generate() -> super::Secret {
    let mut rng = rand::rngs::OsRng;
    let mut key = String::with_capacity(KEY_LEN);
    key.push_str(PREFIX);
    let body: Vec<u8> = (0..BODY_LEN)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())])
        .collect();
    key.push_str(std::str::from_utf8(&body).expect("base62 is ASCII"));
    key.push_str(std::str::from_utf8(&checksum(&body)).expect("base62 is ASCII"));
    super::Secret::from_trusted(key, KeyKind::Current)
}

/// Lowercase hex SHA-256 of the key's bytes: the key's identity everywhere outside the process.
pub fn sha256_hex(key: &[u8]) -> String {
    hex::encode(Sha256::digest(key))
}

/// The displayable form: `oc_live_…q9Zx` for current keys, `…c55a` for legacy ones.
pub fn redacted(kind: KeyKind, last4: &str) -> String {
    match kind {
        KeyKind::Current => format!("{PREFIX}…{last4}"),
        KeyKind::Legacy => format!("…{last4}"),
    }
}

/// `text` with every current key in it (`oc_live_` + 38 base62 that pass the checksum,
/// wherever they stand) replaced by its redacted form: for names and messages naming files (a
/// path, an archive member, a warning). Anything else is left as it is, so `src/oc_live_client/`
/// or a file named after a hash keeps its name; text without `oc_live_` is not copied.
pub fn scrub_name(text: &str) -> std::borrow::Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut done = 0;
    for at in memchr::memmem::find_iter(bytes, PREFIX.as_bytes()) {
        let end = at + KEY_LEN;
        // Glued to other characters it is still the key, in a name.
        if at < done || end > bytes.len() || !is_current(&bytes[at..end]) {
            continue;
        }
        out.push_str(&text[done..at]);
        out.push_str(&redacted(KeyKind::Current, &text[end - 4..end]));
        done = end;
    }
    if done == 0 {
        return std::borrow::Cow::Borrowed(text);
    }
    out.push_str(&text[done..]);
    std::borrow::Cow::Owned(out)
}

/// `text` with every key-shaped run (`oc_live_` + base62, or 32 lowercase hex standing alone)
/// replaced by its redacted form: for messages that quote user input (a parser's error shows the
/// offending line, and that line may hold a key pasted into the wrong place).
pub fn scrub(text: &str) -> String {
    static RE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"oc_live_[0-9A-Za-z]+|\b[0-9a-f]{32}\b").expect("a valid regex")
    });
    RE.replace_all(text, |c: &regex::Captures<'_>| {
        let m = &c[0];
        let kind = if m.starts_with(PREFIX) {
            KeyKind::Current
        } else {
            KeyKind::Legacy
        };
        redacted(kind, &m[m.len().saturating_sub(4)..])
    })
    .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_in_text() {
        assert!(contains_key(
            "see oc_live_0123456789ABCDEFGHIJKLMNOPQRSTUV1ggZdL here"
        ));
        assert!(!contains_key("oc_live_…gZdL"));
        assert!(!contains_key("Fulfillment integration"));
        assert!(contains_key("old key 0123456789abcdef0123456789abcdef!"));
        assert!(contains_key("0123456789abcdef0123456789abcdef"));
        assert!(
            !contains_key("commit 0123456789abcdef0123456789abcdef01234567"),
            "40 hex is a commit, not a legacy key"
        );
        assert!(!contains_key("x0123456789abcdef0123456789abcdef"));
    }

    #[test]
    fn scrub_hides_key_shaped_runs() {
        let text = "2 | sha256 = [oc_live_0123456789ABCDEFGHIJKLMNOPQRSTUV1ggZdL, 43daa2ac214ae4da6a592a611e7824e4]";
        assert_eq!(scrub(text), "2 | sha256 = [oc_live_…gZdL, …24e4]");
        let sha = "5f1c".repeat(16);
        assert_eq!(scrub(&sha), sha, "a 64-hex hash is not a key");
    }

    #[test]
    fn scrub_name_redacts_keys_only() {
        // Keys made with shared/bench/ockey.py.
        let k = "oc_live_Ky9Pf34qY6Nb3wWD25RQ4F5ZR3qa7yEe2zI7BX"; // offkey:allow (fake)
        assert!(is_current(k.as_bytes()));
        assert_eq!(
            scrub_name(&format!("logs/{k}.env")),
            "logs/oc_live_…I7BX.env"
        );
        assert_eq!(
            scrub_name(&format!("x_{k}v2.env and {k}")),
            "x_oc_live_…I7BXv2.env and oc_live_…I7BX"
        );
        for same in [
            "src/oc_live_client/mod.rs",
            "oc_live_Ky9Pf34qY6Nb3wWD25RQ4F5ZR3qa7yEe2zI7BY.env",
            "cache/1ecccc3fc1626e53a13043b026c48bbf/x",
        ] {
            assert!(matches!(scrub_name(same), std::borrow::Cow::Borrowed(s) if s == same));
        }
    }

    #[test]
    fn worked_example_from_the_spec() {
        assert_eq!(
            crc32fast::hash(b"0123456789ABCDEFGHIJKLMNOPQRSTUV"),
            0x5c33_9a43
        );
        assert_eq!(&checksum(b"0123456789ABCDEFGHIJKLMNOPQRSTUV"), b"1ggZdL");
        assert!(is_current(
            b"oc_live_0123456789ABCDEFGHIJKLMNOPQRSTUV1ggZdL"
        ));
        assert!(!is_current(
            b"oc_live_0123456789ABCDEFGHIJKLMNOPQRSTUV1ggZdM"
        ));
    }

    #[test]
    fn base62_matches_the_reference() {
        assert_eq!(base62(0, 6), "000000");
        assert_eq!(base62(61, 1), "z");
        assert_eq!(base62(62, 2), "10");
        assert_eq!(base62(u32::MAX as u64, 6), "4gfFC3");
    }

    #[test]
    fn keys_from_the_reference_generator_check() {
        // Produced by `python3 shared/bench/ockey.py`; fake keys.
        for k in [
            "oc_live_gDAjFzv82BtA0l0PW3pJSYXMGBcdM9O82CQMR2", // offkey:allow (fake key)
            "oc_live_KXwbaU4ENTOjbt7ZIpwKx4JejnWLGZPS2vJoO6", // offkey:allow (fake key)
            "oc_live_MagMEstLBg2fUHraR0cBOKdxYgRQYl0P2UlmSU", // offkey:allow (fake key)
        ] {
            assert!(is_current(k.as_bytes()), "{k}");
            let mut bad = k.as_bytes().to_vec();
            let last = bad.len() - 1;
            bad[last] = if bad[last] == b'0' { b'1' } else { b'0' };
            assert!(!is_current(&bad));
            assert!(!is_current(&k.as_bytes()[..45]));
        }
        assert!(is_legacy_shape(b"43daa2ac214ae4da6a592a611e7824e4"));
        assert!(!is_legacy_shape(b"43DAA2AC214AE4DA6A592A611E7824E4"));
    }

    #[test]
    fn generated_keys_are_valid_and_distinct() {
        let a = generate();
        let b = generate();
        assert!(is_current(a.expose().as_bytes()));
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn sha256_is_lowercase_hex_of_the_ascii_bytes() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
