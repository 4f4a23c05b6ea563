//! Helpers shared by the integration tests: fake keys made at test time, temp trees, running
//! the `offkey` binary, and the "no key leaks" assertion.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::Rng;
use sha2::{Digest, Sha256};

/// A fresh, checksum-valid current key (`oc_live_…`), made by the library's generator.
pub fn current_key() -> String {
    offkey::key::generate().expose().to_owned()
}

/// A fresh legacy key: 32 random lowercase hex characters.
pub fn legacy_key() -> String {
    let mut rng = rand::thread_rng();
    (0..32)
        .map(|_| char::from(b"0123456789abcdef"[rng.gen_range(0..16)]))
        .collect()
}

/// `key` with its last character changed, so its checksum no longer matches.
pub fn bad_checksum(key: &str) -> String {
    let mut b = key.as_bytes().to_vec();
    let last = b.len() - 1;
    b[last] = if b[last] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).expect("ascii")
}

/// Lowercase hex SHA-256, as reports identify keys.
pub fn sha256(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// What a report shows of a key: `oc_live_…last4` or `…last4`.
pub fn redacted(key: &str) -> String {
    let last4 = &key[key.len() - 4..];
    if key.starts_with("oc_live_") {
        format!("oc_live_…{last4}")
    } else {
        format!("…{last4}")
    }
}

/// 1-based line and column (in characters) of the first occurrence of `needle` in `text`.
pub fn line_col(text: &str, needle: &str) -> (u64, u64) {
    let at = text.find(needle).expect("needle planted in text");
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line as u64, col as u64)
}

/// A temporary folder tree that tests fill with files.
pub struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Self {
        Tree {
            dir: tempfile::Builder::new()
                .prefix("offkey-it-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    /// The tree's root.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `root/rel`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Write `rel` (creating its folders) and return its path.
    pub fn file(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("create folders");
        }
        std::fs::write(&p, content).expect("write file");
        p
    }

    /// Create the folder `rel` and return its path.
    pub fn dir(&self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(&p).expect("create folder");
        p
    }
}

/// How a run of the binary ended.
#[derive(Debug)]
pub struct Run {
    /// Exit code (`None` if killed, e.g. by the timeout).
    pub status: Option<i32>,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
    /// Standard output as bytes.
    pub stdout_bytes: Vec<u8>,
}

impl Run {
    /// Standard output parsed as one JSON value.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    /// The `findings` array of a JSON report on stdout.
    pub fn findings(&self) -> Vec<serde_json::Value> {
        self.json()["findings"]
            .as_array()
            .unwrap_or_else(|| panic!("no findings array: {}", self.stdout))
            .clone()
    }
}

/// Run `offkey ARGS` in `cwd` with `stdin`, killed after 60 s so a hang fails the test.
pub fn offkey_in(cwd: &Path, args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut cmd = assert_cmd::Command::cargo_bin("offkey").expect("the offkey binary is built");
    cmd.current_dir(cwd)
        .args(args)
        .env("NO_COLOR", "1")
        .timeout(Duration::from_secs(60));
    if let Some(input) = stdin {
        cmd.write_stdin(input.to_vec());
    }
    let out = cmd.output().expect("offkey runs");
    Run {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        stdout_bytes: out.stdout,
    }
}

/// Run `offkey ARGS` in the tree's root.
pub fn offkey(tree: &Tree, args: &[&str]) -> Run {
    offkey_in(tree.root(), args, None)
}

/// Assert that no planted key shows in any of `outputs`: neither whole nor any 12-character
/// piece of its secret part (everything but the 4 characters a report may show).
pub fn assert_no_key_leak(outputs: &[&str], keys: &[String]) {
    for key in keys {
        let secret = key.strip_prefix("oc_live_").unwrap_or(key);
        let hidden = &secret[..secret.len() - 4];
        for (i, out) in outputs.iter().enumerate() {
            assert!(
                !out.contains(key.as_str()),
                "output #{i} contains a whole key ({}):\n{out}",
                redacted(key)
            );
            for w in hidden.as_bytes().windows(12) {
                let piece = std::str::from_utf8(w).expect("keys are ASCII");
                assert!(
                    !out.contains(piece),
                    "output #{i} contains part of key {} ({piece:?}):\n{out}",
                    redacted(key)
                );
            }
        }
    }
}
