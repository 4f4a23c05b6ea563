//! Helpers for the source and integration tests: fake keys, git repos, running offkey.

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A fresh fake current key.
pub fn key() -> String {
    offkey::key::generate().expose().to_owned()
}

/// A fresh fake legacy key (32 lowercase hex).
pub fn legacy() -> String {
    let k = offkey::key::generate();
    offkey::key::sha256_hex(k.expose().as_bytes())[..32].to_owned()
}

/// The offkey binary under test.
pub fn offkey_bin() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_offkey"))
}

/// Run offkey in `dir` with `args` and optional stdin.
pub fn offkey(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut c = Command::new(offkey_bin());
    c.current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("offkey runs");
    if let Some(input) = stdin {
        use std::io::Write;
        let mut si = child.stdin.take().expect("stdin");
        si.write_all(input).expect("write stdin");
    }
    child.wait_with_output().expect("offkey finishes")
}

/// Text of both streams, for leak checks.
pub fn all_output(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Assert that no key appears in `text`.
pub fn assert_no_leak(text: &str, keys: &[&str]) {
    for k in keys {
        assert!(!text.contains(k), "a whole key leaked into the output");
    }
}

/// Run git in `dir`, asserting success; returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Ana Example")
        .env("GIT_AUTHOR_EMAIL", "ana@example.com")
        .env("GIT_COMMITTER_NAME", "Ana Example")
        .env("GIT_COMMITTER_EMAIL", "ana@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git runs");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// A new repository with one branch `main`.
pub fn repo() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("temp dir");
    git(d.path(), &["init", "-q", "-b", "main"]);
    d
}

/// Write a file and commit it.
pub fn commit_file(dir: &Path, path: &str, text: &str, msg: &str) -> String {
    let p = dir.join(path);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&p, text).expect("write");
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", msg]);
    git(dir, &["rev-parse", "HEAD"])
}

/// Parse a JSON report from stdout.
pub fn report(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not a JSON report ({e}); stderr: {}",
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

/// The findings of a JSON report.
pub fn findings(o: &Output) -> Vec<serde_json::Value> {
    report(o)["findings"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}
