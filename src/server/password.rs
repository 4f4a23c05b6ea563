//! Password hashing with argon2id (the `argon2` crate's defaults: v19, m=19 MiB, t=2, p=1).

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};

/// Hashing failed (only on absurd parameters or input).
#[derive(Debug, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct PasswordError(String);

/// The PHC string of `password` under argon2id with a fresh random salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError(e.to_string()))
}

thread_local! {
    /// argon2's working memory (19 MiB), kept by each thread that checks passwords and reused:
    /// allocating it afresh per check let the allocator keep a copy in every thread's arena
    /// (a burst of sign-ins peaked at 137 MB). The server checks on a fixed few threads
    /// ([`crate::server::AppState::check_password`]), so this is bounded.
    static BLOCKS: std::cell::RefCell<Vec<argon2::Block>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether `password` matches the PHC string `phc`. A malformed hash never matches.
pub fn verify(password: &str, phc: &str) -> bool {
    use argon2::password_hash::Output;
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(expected), Some(salt)) = (parsed.hash, parsed.salt) else {
        return false;
    };
    let Ok(algorithm) = argon2::Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(argon2::Version::try_from) {
        None => argon2::Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = argon2::Params::try_from(&parsed) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let blocks = params.block_count();
    let argon = Argon2::new(algorithm, version, params);
    let computed = BLOCKS.with(|cell| {
        let mut memory = cell.borrow_mut();
        memory.resize(blocks, argon2::Block::default());
        argon
            .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..])
            .is_ok()
    });
    // Output's equality is constant-time.
    computed && Output::new(&out).is_ok_and(|o| o == expected)
}

/// Spend the same time as a real check when the email is unknown, so that timing does not tell
/// which emails are members.
pub fn verify_dummy(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash("offkey-dummy-password").unwrap_or_default());
    let _ = verify(password, phc);
}

#[cfg(test)]
mod tests {
    #[test]
    fn hash_and_verify() {
        let h = super::hash("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(super::verify("correct horse", &h));
        assert!(!super::verify("wrong", &h));
        assert!(!super::verify("x", "not a hash"));
    }
}

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD: usize = 12;

/// Why a password is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WeakPassword {
    /// Fewer than [`MIN_PASSWORD`] characters.
    #[error("the password must be at least {MIN_PASSWORD} characters")]
    TooShort,
    /// Only spaces, tabs and the like.
    #[error("the password must not be all whitespace")]
    Whitespace,
    /// The member's own email (whatever its case).
    #[error("the password must not be the member's email")]
    IsEmail,
}

/// The password policy of `spec/api.md`: at least 12 characters, not all whitespace, not the
/// member's email.
pub fn check_policy(password: &str, email: &str) -> Result<(), WeakPassword> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(WeakPassword::TooShort);
    }
    if password.trim().is_empty() {
        return Err(WeakPassword::Whitespace);
    }
    if password.trim().eq_ignore_ascii_case(email.trim()) {
        return Err(WeakPassword::IsEmail);
    }
    Ok(())
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    #[test]
    fn policy() {
        assert_eq!(
            check_policy("short pass", "a@x.io"),
            Err(WeakPassword::TooShort)
        );
        assert_eq!(
            check_policy("elevenchars", "a@x.io"),
            Err(WeakPassword::TooShort)
        );
        assert_eq!(
            check_policy("            ", "a@x.io"),
            Err(WeakPassword::Whitespace)
        );
        assert_eq!(
            check_policy("Ana.Long@Example.com", "ana.long@example.com"),
            Err(WeakPassword::IsEmail)
        );
        assert_eq!(check_policy("correct horse battery", "a@x.io"), Ok(()));
    }
}
