//! `offkey scan` and `offkey redact` end to end, over temp trees and standard input. Every key is
//! generated at test time; nothing here reads files outside its own temp dirs.

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::tree::*;

/// A finding reduced to what identifies it: (path, line, column, sha256).
fn places(findings: &[Value]) -> BTreeSet<(String, u64, u64, String)> {
    findings
        .iter()
        .map(|f| {
            (
                f["location"]["path"].as_str().expect("path").to_owned(),
                f["location"]["line"].as_u64().expect("line"),
                f["location"]["column"].as_u64().expect("column"),
                f["sha256"].as_str().expect("sha256").to_owned(),
            )
        })
        .collect()
}

/// The sha256 of every finding.
fn hashes(findings: &[Value]) -> BTreeSet<String> {
    findings
        .iter()
        .map(|f| f["sha256"].as_str().expect("sha256").to_owned())
        .collect()
}

fn set(keys: &[&String]) -> BTreeSet<String> {
    keys.iter().map(|k| sha256(k)).collect()
}

/// `offkey scan . --format json EXTRA…` in the tree.
fn scan_json(tree: &Tree, extra: &[&str]) -> Run {
    let mut args = vec!["scan", ".", "--format", "json"];
    args.extend_from_slice(extra);
    offkey(tree, &args)
}

/// ASCII filler of exactly `n` bytes made of short lines, ending in a space.
fn filler(n: usize) -> String {
    let mut s = String::with_capacity(n + 64);
    let mut i = 0;
    while s.len() < n {
        s.push_str(&format!("{i:06} lorem ipsum dolor sit amet, consectetur\n"));
        i += 1;
    }
    s.truncate(n);
    if n > 0 {
        s.pop();
        s.push(' ');
    }
    s
}

const MIB: usize = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Where keys hide in ordinary files

#[test]
fn keys_in_common_file_formats_and_next_to_punctuation_are_found_where_they_are() {
    let templates: &[(&str, &str)] = &[
        (".env", "# prod\nOFFSET_API_KEY={K}\nDEBUG=0\n"),
        (
            "config/app.yaml",
            "offset:\n  api_key: {K}\n  url: https://x\n",
        ),
        ("config/app.yml", "offset:\n  api_key: \"{K}\"\n"),
        (
            "settings.json",
            "{\n  \"offset\": {\"key\": \"{K}\", \"n\": 1}\n}\n",
        ),
        ("client.py", "import os\nKEY = '{K}'\n"),
        ("src/main.rs", "fn main() {\n    let k = \"{K}\";\n}\n"),
        ("web/app.js", "const k = `{K}`;\n"),
        ("conf.xml", "<cfg>\n  <key>{K}</key>\n</cfg>\n"),
        ("keys.csv", "name,key,env\nshop,{K},prod\n"),
        ("colon.txt", "key:{K}\n"),
        ("eq.ini", "[offset]\nkey={K}\n"),
        ("angle.html", "<p>\n<{K}>\n"),
        ("Dockerfile", "FROM debian\nENV OFFSET_KEY {K}\n"),
        (
            "deploy.sh",
            "curl -H \"Authorization: Bearer {K}\" https://api\n",
        ),
        ("start-of-file.txt", "{K}"),
    ];
    let tree = Tree::new();
    let mut keys = Vec::new();
    let mut want = BTreeSet::new();
    for (path, tpl) in templates {
        let key = current_key();
        let text = tpl.replace("{K}", &key);
        tree.file(path, &text);
        let (line, col) = line_col(&text, &key);
        want.insert((path.to_string(), line, col, sha256(&key)));
        keys.push(key);
    }
    let run = scan_json(&tree, &[]);
    assert_eq!(run.status, Some(1), "stderr: {}", run.stderr);
    let findings = run.findings();
    assert_eq!(places(&findings), want);
    assert_eq!(findings.len(), want.len(), "each key once");
    for f in &findings {
        assert_eq!(f["rule"], "offset-api-key");
        assert_eq!(f["kind"], "current");
        assert_eq!(f["confidence"], "high");
        assert_eq!(f["encoding"], "plain");
        assert_eq!(f["location"]["source"], "file");
    }
    assert_no_key_leak(&[&run.stdout, &run.stderr], &keys);
}

#[test]
fn text_report_is_one_line_per_finding_with_path_line_column_rule_and_redacted_key() {
    let tree = Tree::new();
    let key = current_key();
    let legacy = legacy_key();
    tree.file(
        "config/prod.env",
        format!("A=1\nOFFSET_API_KEY={key}\nOFFSET_LEGACY={legacy}\n"),
    );
    let run = offkey(&tree, &["scan", "."]);
    assert_eq!(run.status, Some(1), "stderr: {}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines,
        vec![
            format!("config/prod.env:2:16  offset-api-key  {}", redacted(&key)),
            format!(
                "config/prod.env:3:15  offset-legacy-key  {}",
                redacted(&legacy)
            ),
        ]
    );
    assert!(
        run.stderr.contains("2 finding(s)"),
        "summary on stderr: {}",
        run.stderr
    );
    assert!(
        run.stderr.to_lowercase().contains("rotate"),
        "advice on stderr: {}",
        run.stderr
    );
    assert_no_key_leak(&[&run.stdout, &run.stderr], &[key, legacy]);
}

#[test]
fn crlf_files_give_the_right_line_column_and_key() {
    let tree = Tree::new();
    let (k1, k2) = (current_key(), current_key());
    let text = format!("# a\r\nA=1\r\nOFFSET_API_KEY={k1}\r\nB={k2}\r\n\r\n");
    tree.file("win.env", &text);
    let run = scan_json(&tree, &[]);
    assert_eq!(run.status, Some(1), "stderr: {}", run.stderr);
    let findings = run.findings();
    assert_eq!(
        places(&findings),
        BTreeSet::from([
            ("win.env".to_owned(), 3, 16, sha256(&k1)),
            ("win.env".to_owned(), 4, 3, sha256(&k2)),
        ])
    );
    let shown: BTreeSet<&str> = findings
        .iter()
        .map(|f| f["redacted"].as_str().expect("redacted"))
        .collect();
    assert_eq!(
        shown,
        BTreeSet::from([redacted(&k1).as_str(), redacted(&k2).as_str()])
    );
}

#[test]
fn keys_among_invalid_utf8_and_in_binary_files_are_found() {
    let tree = Tree::new();
    let (k1, k2, k3) = (current_key(), current_key(), current_key());
    let mut bad = b"\xff\xfe\x00garbage\xc3( key=".to_vec();
    bad.extend_from_slice(k1.as_bytes());
    bad.extend_from_slice(b"\x80\xff\n\xe9t\xe9 ");
    bad.extend_from_slice(k2.as_bytes());
    bad.extend_from_slice(b"\xff\xc0\n");
    tree.file("latin1.log", &bad);
    let mut bin = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x01\0".to_vec();
    bin.extend((0..3000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 & 0x7f | 0x80));
    bin.push(0);
    bin.extend_from_slice(k3.as_bytes());
    bin.push(0);
    bin.extend((0..3000u32).map(|i| (i.wrapping_mul(40_503) >> 3) as u8 | 0x80));
    tree.file("image.png", &bin);
    let run = scan_json(&tree, &[]);
    assert_eq!(run.status, Some(1), "stderr: {}", run.stderr);
    let findings = run.findings();
    assert_eq!(findings.len(), 3, "{}", run.stdout);
    assert_eq!(hashes(&findings), set(&[&k1, &k2, &k3]));
    let line_of = |k: &str| {
        findings
            .iter()
            .find(|f| f["sha256"] == sha256(k))
            .map(|f| (f["location"]["path"].clone(), f["location"]["line"].clone()))
            .expect("found")
    };
    assert_eq!(line_of(&k1), (json!("latin1.log"), json!(1)));
    assert_eq!(line_of(&k2), (json!("latin1.log"), json!(2)));
    assert_eq!(line_of(&k3).0, json!("image.png"));
}

// ---------------------------------------------------------------------------------------------
// What is not a key

#[test]
fn decoys_are_not_reported() {
    let tree = Tree::new();
    let k = current_key();
    let md5 = legacy_key();
    let x38 = "X".repeat(38);
    let lines = [
        format!("bad_checksum={}", bad_checksum(&k)),
        format!("truncated={}", &k[..k.len() - 1]),
        format!("truncated_quoted=\"{}\"", &k[..k.len() - 6]),
        format!("glued_before=x{k}"),
        format!("glued_before_digits=123{k}"),
        format!("glued_underscore=_{k}"),
        format!("glued_after={k}Z"),
        format!("glued_after_digit={k}0"),
        format!("glued_both=abc{k}def"),
        format!("placeholder=oc_live_{x38}"),
        format!("placeholder_lower=oc_live_{}", "x".repeat(38)),
        "placeholder_dots=oc_live_...".to_owned(),
        "placeholder_angle=oc_live_<your-key-here>".to_owned(),
        "placeholder_short=oc_live_XXXX".to_owned(),
        "docs_example=oc_live_0123456789ABCDEFGHIJKLMNOPQRSTUV1ggZdL".to_owned(),
        format!("build_md5 = {md5}"),
        format!("sha: {md5}  package.tar.gz"),
        format!("{md5}  app.zip"),
    ];
    tree.file("decoys.env", lines.join("\n") + "\n");
    tree.file(
        "MD5SUMS",
        format!("{md5}  a.bin\n{}  b.bin\n", legacy_key()),
    );
    let run = scan_json(&tree, &[]);
    assert_eq!(
        run.findings(),
        Vec::<Value>::new(),
        "decoys reported; stderr: {}",
        run.stderr
    );
    assert_eq!(run.status, Some(0), "stderr: {}", run.stderr);
    assert_eq!(run.json()["summary"]["findings"], 0);
}

#[test]
fn legacy_keys_are_reported_only_with_context_and_with_low_confidence() {
    let tree = Tree::new();
    let with: Vec<String> = (0..4).map(|_| legacy_key()).collect();
    let without: Vec<String> = (0..5).map(|_| legacy_key()).collect();
    let text = [
        format!("OFFSET_API_KEY={}", with[0]),
        format!("curl -H 'X-Offset-Key: {}' https://api", with[1]),
        format!("oc_key: \"{}\"", with[2]),
        format!("offset {} {}", ".".repeat(60), with[3]),
        format!("md5={}", without[0]),
        "# offset".to_owned(),
        format!("checksum={}", without[1]),
        format!("{} # offset", without[2]),
        format!("offset {} {}", ".".repeat(100), without[3]),
        format!("OFFSET_API_KEY={}00", without[4]),
    ]
    .join("\n")
        + "\n";
    tree.file("legacy.cfg", &text);
    let run = scan_json(&tree, &[]);
    assert_eq!(run.status, Some(1), "stderr: {}", run.stderr);
    let findings = run.findings();
    let want: BTreeSet<_> = with
        .iter()
        .map(|k| {
            let (l, c) = line_col(&text, k);
            ("legacy.cfg".to_owned(), l, c, sha256(k))
        })
        .collect();
    assert_eq!(places(&findings), want);
    for f in &findings {
        assert_eq!(f["rule"], "offset-legacy-key");
        assert_eq!(f["kind"], "legacy");
        assert_eq!(f["confidence"], "low");
        let r = f["redacted"].as_str().expect("redacted");
        assert!(r.starts_with('…') && r.chars().count() == 5, "{r}");
    }
    let mut all = with.clone();
    all.extend(without);
    assert_no_key_leak(&[&run.stdout, &run.stderr], &all);
}

// ---------------------------------------------------------------------------------------------
// Suppressing findings

#[test]
fn offkey_allow_comment_suppresses_only_its_line() {
    let tree = Tree::new();
    let (allowed, kept) = (current_key(), current_key());
    tree.file(
        "test_client.py",
        format!("FAKE = '{allowed}'  # offkey:allow\nREAL = '{kept}'\n"),
    );
    let run = scan_json(&tree, &[]);
    assert_eq!(run.status, Some(1), "stderr: {}", run.stderr);
    assert_eq!(hashes(&run.findings()), set(&[&kept]));

    let only_allowed = Tree::new();
    only_allowed.file("a.env", format!("K={allowed} # offkey:allow\n"));
    let run = scan_json(&only_allowed, &[]);
    assert_eq!(run.findings(), Vec::<Value>::new());
    assert_eq!(run.status, Some(0), "stderr: {}", run.stderr);
}

#[test]
fn config_allowlist_paths_and_sha256_suppress() {
    let tree = Tree::new();
    let (in_fixtures, fake, real) = (current_key(), current_key(), current_key());
    tree.file("fixtures/sample.env", format!("KEY={in_fixtures}\n"));
    tree.file(
        "docs/a.md",
        format!("use {fake} in tests\nbut {real} leaked\n"),
    );
    tree.file(
        ".offkey.toml",
        format!(
            "[allowlist]\npaths = [\"fixtures/**\"]\nsha256 = [\"{}\"]\n",
            sha256(&fake)
        ),
    );
    let run = scan_json(&tree, &[]);
    assert_eq!(run.status, Some(1), "stderr: {}", run.stderr);
    assert_eq!(
        places(&run.findings()),
        BTreeSet::from([("docs/a.md".to_owned(), 2, 5, sha256(&real))])
    );

    // Without the config every key is reported: the suppression above came from it.
    std::fs::remove_file(tree.path(".offkey.toml")).expect("rm config");
    let run = scan_json(&tree, &[]);
    assert_eq!(hashes(&run.findings()), set(&[&in_fixtures, &fake, &real]));

    // The same config given with --config from elsewhere.
    let elsewhere = Tree::new();
    let cfg = elsewhere.file(
        "offkey.toml",
        format!(
            "[allowlist]\npaths = [\"fixtures/**\"]\nsha256 = [\"{}\"]\n",
            sha256(&fake)
        ),
    );
    let run = scan_json(&tree, &["--config", cfg.to_str().expect("utf-8 path")]);
    assert_eq!(hashes(&run.findings()), set(&[&real]));
}

#[test]
fn baseline_suppresses_known_findings_but_not_new_ones_or_new_places() {
    let tree = Tree::new();
    let (old, new) = (current_key(), current_key());
    tree.file("a.env", format!("KEY={old}\n"));
    let baseline_dir = Tree::new();
    let baseline = baseline_dir.path("baseline.json");
    let b = baseline.to_str().expect("utf-8 path");
    let first = scan_json(&tree, &["--output", b]);
    assert_eq!(first.status, Some(1), "stderr: {}", first.stderr);

    let again = scan_json(&tree, &["--baseline", b]);
    assert_eq!(again.findings(), Vec::<Value>::new());
    assert_eq!(again.status, Some(0), "stderr: {}", again.stderr);

    tree.file("b.env", format!("KEY={new}\nCOPY={old}\n"));
    let run = scan_json(&tree, &["--baseline", b]);
    assert_eq!(run.status, Some(1), "stderr: {}", run.stderr);
    assert_eq!(
        places(&run.findings()),
        BTreeSet::from([
            ("b.env".to_owned(), 1, 5, sha256(&new)),
            ("b.env".to_owned(), 2, 6, sha256(&old)),
        ])
    );
}

#[test]
fn exclude_globs_and_offkeyignore_skip_paths() {
    let tree = Tree::new();
    let (vendored, built, kept) = (current_key(), current_key(), current_key());
    tree.file("vendor/lib/conf.env", format!("K={vendored}\n"));
    tree.file("build/out.log", format!("K={built}\n"));
    tree.file("src/app.env", format!("K={kept}\n"));
    let run = scan_json(&tree, &[]);
    assert_eq!(hashes(&run.findings()), set(&[&vendored, &built, &kept]));

    let run = scan_json(&tree, &["--exclude", "vendor/**"]);
    assert_eq!(hashes(&run.findings()), set(&[&built, &kept]));

    tree.file(".offkeyignore", "build/\n");
    let run = scan_json(&tree, &[]);
    assert_eq!(hashes(&run.findings()), set(&[&vendored, &kept]));

    let run = scan_json(&tree, &["--exclude", "vendor/**"]);
    assert_eq!(run.status, Some(1), "stderr: {}", run.stderr);
    assert_eq!(hashes(&run.findings()), set(&[&kept]));
}

#[test]
fn gitignored_env_is_scanned_by_default_and_skipped_with_gitignore() {
    let tree = Tree::new();
    tree.dir(".git");
    let (ignored, tracked) = (current_key(), current_key());
    tree.file(".gitignore", ".env\ntarget/\n");
    tree.file(".env", format!("OFFSET_API_KEY={ignored}\n"));
    tree.file("src/config.rs", format!("const K: &str = \"{tracked}\";\n"));
    let run = scan_json(&tree, &[]);
    assert_eq!(run.status, Some(1), "stderr: {}", run.stderr);
    assert_eq!(hashes(&run.findings()), set(&[&ignored, &tracked]));

    let run = scan_json(&tree, &["--gitignore"]);
    assert_eq!(run.status, Some(1), "stderr: {}", run.stderr);
    assert_eq!(hashes(&run.findings()), set(&[&tracked]));
}

#[test]
fn git_internals_are_not_scanned() {
    let tree = Tree::new();
    let (internal, worktree) = (current_key(), current_key());
    tree.file(".git/config", format!("[remote]\n  token = {internal}\n"));
    tree.file("app.env", format!("K={worktree}\n"));
    let run = scan_json(&tree, &[]);
    assert_eq!(hashes(&run.findings()), set(&[&worktree]));
}

#[test]
fn files_over_max_file_size_are_skipped_with_a_warning() {
    let tree = Tree::new();
    let (big, small) = (current_key(), current_key());
    tree.file("big.log", format!("{}\nK={big}\n", filler(4000)));
    tree.file("small.env", format!("K={small}\n"));
    let run = scan_json(&tree, &["--max-file-size", "1000"]);
    assert_eq!(run.status, Some(1), "stderr: {}", run.stderr);
    assert_eq!(hashes(&run.findings()), set(&[&small]));
    let warning = run
        .stderr
        .lines()
        .find(|l| l.contains("big.log"))
        .unwrap_or_else(|| panic!("no line naming big.log on stderr: {}", run.stderr));
    assert!(warning.contains("warning"), "{warning}");

    // Only the big file: skipping it is not an error and not a finding.
    std::fs::remove_file(tree.path("small.env")).expect("rm");
    let run = scan_json(&tree, &["--max-file-size", "1000"]);
    assert_eq!(run.findings(), Vec::<Value>::new());
    assert_eq!(run.status, Some(0), "stderr: {}", run.stderr);
    assert!(run.stderr.contains("big.log"), "{}", run.stderr);

    // Under the limit it is scanned.
    let run = scan_json(&tree, &[]);
    assert_eq!(hashes(&run.findings()), set(&[&big]));
}

// ---------------------------------------------------------------------------------------------
// Errors and odd files

/// A dangling symlink named on the command line cannot be read, even by root.
#[cfg(unix)]
#[test]
fn unreadable_path_named_explicitly_is_exit_2_alone_and_exit_1_with_findings() {
    let tree = Tree::new();
    let key = current_key();
    std::os::unix::fs::symlink(tree.path("nowhere.env"), tree.path("dangling.env"))
        .expect("symlink");
    let run = offkey(&tree, &["scan", "dangling.env", "--format", "json"]);
    assert_eq!(run.status, Some(2), "stderr: {}", run.stderr);
    assert!(run.stderr.contains("dangling.env"), "{}", run.stderr);

    tree.file("src/app.env", format!("K={key}\n"));
    let run = offkey(&tree, &["scan", "dangling.env", "src", "--format", "json"]);
    assert!(
        run.stderr.contains("dangling.env"),
        "the error names the path: {}",
        run.stderr
    );
    assert_eq!(
        run.status,
        Some(1),
        "findings beat errors, and the scan goes on past the bad path; stdout: {} stderr: {}",
        run.stdout,
        run.stderr
    );
    assert_eq!(hashes(&run.findings()), set(&[&key]));
}

#[cfg(unix)]
#[test]
fn symlink_loops_and_fifos_do_not_hang_the_scan() {
    let tree = Tree::new();
    let key = current_key();
    tree.file("dir/app.env", format!("K={key}\n"));
    std::os::unix::fs::symlink(".", tree.path("dir/self")).expect("symlink");
    std::os::unix::fs::symlink(tree.root(), tree.path("dir/up")).expect("symlink");
    std::os::unix::fs::symlink("b", tree.path("a")).expect("symlink");
    std::os::unix::fs::symlink("a", tree.path("b")).expect("symlink");
    let fifo = tree.path("dir/pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo failed");
    // `offkey_in` kills the run after 60 s: a hang fails with no exit code.
    let run = scan_json(&tree, &[]);
    assert_eq!(run.status, Some(1), "stderr: {}", run.stderr);
    assert_eq!(
        places(&run.findings()),
        BTreeSet::from([("dir/app.env".to_owned(), 1, 3, sha256(&key))]),
        "the key once, not again through a link"
    );
    // Named explicitly, the FIFO must not block either (nobody writes to it).
    let run = offkey(&tree, &["scan", "dir/pipe", "--format", "json"]);
    assert!(run.status.is_some(), "scan of a FIFO hung: {run:?}");
}

#[test]
fn missing_path_is_exit_2_naming_it_and_other_paths_are_still_scanned() {
    let tree = Tree::new();
    let run = offkey(&tree, &["scan", "no/such/dir"]);
    assert_eq!(run.status, Some(2), "stderr: {}", run.stderr);
    assert!(run.stderr.contains("no/such/dir"), "{}", run.stderr);

    let key = current_key();
    tree.file("here/a.env", format!("K={key}\n"));
    let run = offkey(&tree, &["scan", "no/such/dir", "here", "--format", "json"]);
    assert_eq!(run.status, Some(1), "stderr: {}", run.stderr);
    assert!(run.stderr.contains("no/such/dir"), "{}", run.stderr);
    assert_eq!(hashes(&run.findings()), set(&[&key]));
}

#[test]
fn malformed_rules_file_is_exit_2_naming_the_file_and_the_rule() {
    let tree = Tree::new();
    tree.file("a.env", format!("K={}\n", current_key()));
    tree.file(
        "extra-rules.toml",
        "[[rule]]\nid = \"acme-token\"\ndescription = \"ACME\"\nkeywords = [\"acme_\"]\nregex = '''acme_([a-z'''\n",
    );
    let run = offkey(&tree, &["scan", ".", "--rules", "extra-rules.toml"]);
    assert_eq!(run.status, Some(2), "stderr: {}", run.stderr);
    assert!(run.stderr.contains("extra-rules.toml"), "{}", run.stderr);
    assert!(run.stderr.contains("acme-token"), "{}", run.stderr);
    assert_eq!(run.stdout, "", "no report from a scan that could not start");

    tree.file(
        "typo-rules.toml",
        "[[rule]]\nid = \"acme-token\"\ndescription = \"ACME\"\nkeywords = [\"acme_\"]\nregex = 'acme_[a-z]{8}'\nvalidator = \"luhn\"\n",
    );
    let run = offkey(&tree, &["scan", ".", "--rules", "typo-rules.toml"]);
    assert_eq!(run.status, Some(2), "stderr: {}", run.stderr);
    assert!(run.stderr.contains("typo-rules.toml"), "{}", run.stderr);
    assert!(run.stderr.contains("acme-token"), "{}", run.stderr);
}

#[test]
fn a_valid_user_rule_file_adds_its_rule() {
    let tree = Tree::new();
    tree.file("a.txt", "token acme_qwertyui here\n");
    tree.file(
        "extra-rules.toml",
        "[[rule]]\nid = \"acme-token\"\ndescription = \"ACME\"\nkeywords = [\"acme_\"]\nregex = 'acme_[a-z]{8}'\n",
    );
    let run = scan_json(&tree, &["--rules", "extra-rules.toml"]);
    assert_eq!(run.status, Some(1), "stderr: {}", run.stderr);
    let findings = run.findings();
    assert_eq!(findings.len(), 1, "{}", run.stdout);
    assert_eq!(findings[0]["rule"], "acme-token");
    assert_eq!(findings[0]["location"]["path"], "a.txt");
    assert_eq!(findings[0]["location"]["column"], 7);
}

/// Error messages quote what they complain about; a key pasted into the wrong place must still
/// not be echoed back (spec: the full key never appears in any error message).
#[test]
fn config_and_rule_errors_never_echo_a_key() {
    let tree = Tree::new();
    let (k1, k2, k3) = (current_key(), current_key(), current_key());
    tree.file("a.env", "nothing here\n");
    // Someone pastes the key itself where its hash belongs.
    tree.file(
        ".offkey.toml",
        format!("[allowlist]\nsha256 = [\"{k1}\"]\n"),
    );
    let r1 = scan_json(&tree, &[]);
    assert_eq!(r1.status, Some(2), "stderr: {}", r1.stderr);
    assert!(r1.stderr.contains(".offkey.toml"), "{}", r1.stderr);
    // ... or unquoted, a TOML syntax error on the key's line.
    tree.file(".offkey.toml", format!("[allowlist]\nsha256 = [{k2}]\n"));
    let r2 = scan_json(&tree, &[]);
    assert_eq!(r2.status, Some(2), "stderr: {}", r2.stderr);
    // A rule file with a broken line holding a key.
    std::fs::remove_file(tree.path(".offkey.toml")).expect("rm");
    tree.file(
        "rules.toml",
        format!("[[rule]]\nid = \"x\"\ndescription = \"x\"\nregex = 'x'\nexamples = [\"{k3}\"\n"),
    );
    let r3 = scan_json(&tree, &["--rules", "rules.toml"]);
    assert_eq!(r3.status, Some(2), "stderr: {}", r3.stderr);
    assert!(r3.stderr.contains("rules.toml"), "{}", r3.stderr);
    assert_no_key_leak(
        &[
            &r1.stdout, &r1.stderr, &r2.stdout, &r2.stderr, &r3.stdout, &r3.stderr,
        ],
        &[k1, k2, k3],
    );
}

// ---------------------------------------------------------------------------------------------
// Report formats

#[test]
fn json_report_matches_the_spec_field_by_field() {
    let tree = Tree::new();
    let (key, legacy) = (current_key(), legacy_key());
    let prod = format!("# Offset\nDEBUG=1\nOFFSET_API_KEY={key}\n");
    let old = format!("offset_key = {legacy}\n");
    let readme = "nothing to see\n";
    tree.file("config/prod.env", &prod);
    tree.file("legacy.cfg", &old);
    tree.file("README", readme);
    let cwd = Tree::new();
    let root = tree.root().to_str().expect("utf-8 path");
    let run = offkey_in(cwd.root(), &["scan", root, "--format", "json"], None);
    assert_eq!(run.status, Some(1), "stderr: {}", run.stderr);
    let report = run.json();
    let top: BTreeSet<&str> = report
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(top, BTreeSet::from(["version", "findings", "summary"]));
    assert_eq!(report["version"], json!(1));
    let location = |path: &str, line: u64, column: u64| {
        json!({
            "source": "file", "path": path, "line": line, "column": column,
            "commit": null, "author": null, "date": null, "conversation": null, "message": null
        })
    };
    assert_eq!(
        report["findings"],
        json!([
            {
                "rule": "offset-api-key",
                "kind": "current",
                "confidence": "high",
                "redacted": redacted(&key),
                "sha256": sha256(&key),
                "location": location("config/prod.env", 3, 16),
                "encoding": "plain",
                "verification": null
            },
            {
                "rule": "offset-legacy-key",
                "kind": "legacy",
                "confidence": "low",
                "redacted": redacted(&legacy),
                "sha256": sha256(&legacy),
                "location": location("legacy.cfg", 1, 14),
                "encoding": "plain",
                "verification": null
            }
        ])
    );
    let summary = report["summary"].as_object().expect("summary object");
    let keys: BTreeSet<&str> = summary.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["files", "bytes", "findings", "elapsed_ms"])
    );
    assert_eq!(summary["files"], json!(3));
    assert_eq!(
        summary["bytes"],
        json!(prod.len() + old.len() + readme.len())
    );
    assert_eq!(summary["findings"], json!(2));
    assert!(summary["elapsed_ms"].is_u64(), "{}", summary["elapsed_ms"]);
    let sha = report["findings"][0]["sha256"].as_str().expect("sha");
    assert!(
        sha.len() == 64
            && sha
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "lowercase hex: {sha}"
    );
    assert_no_key_leak(&[&run.stdout, &run.stderr], &[key, legacy]);
}

#[test]
fn jsonl_writes_one_finding_object_per_line() {
    let tree = Tree::new();
    let keys: Vec<String> = (0..5).map(|_| current_key()).collect();
    for (i, k) in keys.iter().enumerate() {
        tree.file(&format!("d{i}/k.env"), format!("line\nK={k}\n"));
    }
    let run = offkey(&tree, &["scan", ".", "--format", "jsonl"]);
    assert_eq!(run.status, Some(1), "stderr: {}", run.stderr);
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert_eq!(lines.len(), 5, "{}", run.stdout);
    for (f, _) in lines.iter().zip(&keys) {
        assert_eq!(f["rule"], "offset-api-key");
        assert_eq!(f["location"]["line"], 2);
        assert_eq!(f["location"]["column"], 3);
        assert_eq!(f["verification"], Value::Null);
        assert!(f.get("summary").is_none());
    }
    let refs: Vec<&String> = keys.iter().collect();
    assert_eq!(hashes(&lines), set(&refs));
    assert_no_key_leak(&[&run.stdout, &run.stderr], &keys);
}

#[test]
fn output_option_writes_the_report_to_a_file_not_stdout() {
    let tree = Tree::new();
    let key = current_key();
    tree.file("a.env", format!("K={key}\n"));
    let out = Tree::new();
    let report = out.path("report.json");
    let run = scan_json(&tree, &["--output", report.to_str().expect("utf-8 path")]);
    assert_eq!(run.status, Some(1), "stderr: {}", run.stderr);
    assert_eq!(run.stdout, "");
    let text = std::fs::read_to_string(&report).expect("report written");
    let v: Value = serde_json::from_str(&text).expect("json report");
    assert_eq!(
        hashes(v["findings"].as_array().expect("findings")),
        set(&[&key])
    );
    assert_no_key_leak(&[&text, &run.stderr], &[key]);
}

// ---------------------------------------------------------------------------------------------
// Standard input

#[test]
fn stdin_scan_reports_path_dash_and_source_stdin() {
    let key = current_key();
    let input = format!("log line 1\nlog line 2\n  auth key={key} ok\n");
    let cwd = Tree::new();
    let run = offkey_in(
        cwd.root(),
        &["scan", "-", "--format", "json"],
        Some(input.as_bytes()),
    );
    assert_eq!(run.status, Some(1), "stderr: {}", run.stderr);
    let findings = run.findings();
    assert_eq!(findings.len(), 1, "{}", run.stdout);
    assert_eq!(findings[0]["location"]["source"], "stdin");
    assert_eq!(findings[0]["location"]["path"], "-");
    assert_eq!(findings[0]["location"]["line"], 3);
    assert_eq!(findings[0]["location"]["column"], 12);
    assert_eq!(findings[0]["sha256"], sha256(&key));

    let clean = offkey_in(
        cwd.root(),
        &["scan", "-", "--format", "json"],
        Some(b"nothing\n"),
    );
    assert_eq!(clean.status, Some(0), "stderr: {}", clean.stderr);
}

#[test]
fn stdin_key_across_the_1_mib_chunk_boundary_is_found_once_on_the_right_line() {
    let cwd = Tree::new();
    // The key starts this many bytes before a chunk boundary (1 MiB, 2 MiB).
    for (boundary, before) in [(MIB, 1), (MIB, 8), (MIB, 23), (MIB, 45), (2 * MIB, 30)] {
        let key = current_key();
        let head = filler(boundary - before);
        let input = format!("{head}{key}\n{}", filler(MIB / 2));
        let line = head.matches('\n').count() as u64 + 1;
        let column = (head.len() - head.rfind('\n').map_or(0, |i| i + 1)) as u64 + 1;
        let run = offkey_in(
            cwd.root(),
            &["scan", "-", "--format", "json"],
            Some(input.as_bytes()),
        );
        assert_eq!(run.status, Some(1), "offset {before}: {}", run.stderr);
        let findings = run.findings();
        assert_eq!(
            places(&findings),
            BTreeSet::from([("-".to_owned(), line, column, sha256(&key))]),
            "key starting {before} bytes before {boundary}"
        );
        assert_eq!(findings.len(), 1, "exactly once");
    }
}

#[test]
fn stdin_legacy_key_with_its_context_word_before_the_chunk_boundary_is_found() {
    let cwd = Tree::new();
    let key = legacy_key();
    let head = filler(MIB - 10);
    let input = format!("{head}\nOFFSET_KEY={key}\n{}", filler(1000));
    let run = offkey_in(
        cwd.root(),
        &["scan", "-", "--format", "json"],
        Some(input.as_bytes()),
    );
    assert_eq!(run.status, Some(1), "stderr: {}", run.stderr);
    let line = head.matches('\n').count() as u64 + 2;
    assert_eq!(
        places(&run.findings()),
        BTreeSet::from([("-".to_owned(), line, 12, sha256(&key))])
    );
}

// ---------------------------------------------------------------------------------------------
// Encodings (decoded views)

#[test]
fn keys_behind_encodings_are_reported_with_their_encoding() {
    let tree = Tree::new();
    let keys: Vec<String> = (0..5).map(|_| current_key()).collect();
    let basic = STANDARD.encode(format!("{}:", keys[0]));
    tree.file(
        "request.http",
        format!("GET /v1/orders HTTP/1.1\r\nAuthorization: Basic {basic}\r\n\r\n"),
    );
    tree.file(
        "access.log",
        format!("GET /cb?next=%2Fx%3Fk%3D{}%26a%3D1 HTTP/1.1\n", keys[1]),
    );
    tree.file(
        "chat.json",
        format!(
            "{{\"role\": \"user\",\n \"text\": \"here it is:\\n{}\"}}\n",
            keys[2]
        ),
    );
    let utf16: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain(
            format!("name = test\r\nkey = {}\r\n", keys[3])
                .encode_utf16()
                .flat_map(|u| u.to_le_bytes()),
        )
        .collect();
    tree.file("win-utf16.txt", &utf16);
    tree.file(
        "pct.log",
        format!("u={}&x=1\n", keys[4].replace('_', "%5F")),
    );
    let run = scan_json(&tree, &[]);
    assert_eq!(run.status, Some(1), "stderr: {}", run.stderr);
    let findings = run.findings();
    let got: BTreeSet<(String, String, u64, String)> = findings
        .iter()
        .map(|f| {
            (
                f["location"]["path"].as_str().expect("path").to_owned(),
                f["encoding"].as_str().expect("encoding").to_owned(),
                f["location"]["line"].as_u64().expect("line"),
                f["sha256"].as_str().expect("sha").to_owned(),
            )
        })
        .collect();
    let want = BTreeSet::from([
        ("request.http".into(), "base64".into(), 2, sha256(&keys[0])),
        (
            "access.log".into(),
            "url-encoded".into(),
            1,
            sha256(&keys[1]),
        ),
        (
            "chat.json".into(),
            "json-escaped".into(),
            2,
            sha256(&keys[2]),
        ),
        ("win-utf16.txt".into(), "utf-16".into(), 2, sha256(&keys[3])),
        ("pct.log".into(), "url-encoded".into(), 1, sha256(&keys[4])),
    ]);
    assert_eq!(got, want);
    assert_no_key_leak(&[&run.stdout, &run.stderr], &keys);
}

#[test]
fn utf16_line_and_column_are_counted_in_the_decoded_text() {
    let tree = Tree::new();
    let keys: Vec<String> = (0..3).map(|_| current_key()).collect();
    let le = |s: &str| -> Vec<u8> { s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect() };
    let be = |s: &str| -> Vec<u8> { s.encode_utf16().flat_map(|u| u.to_be_bytes()).collect() };
    tree.file(
        "le.txt",
        le(&format!("name = test\r\nkey = {}\r\n", keys[0])),
    );
    tree.file("be.txt", be(&format!("name = test\nkey: {}\n", keys[1])));
    let mut bom = vec![0xff, 0xfe];
    bom.extend(le(&format!("k={}\r\n", keys[2])));
    tree.file("bom.txt", bom);
    let run = scan_json(&tree, &[]);
    assert_eq!(
        places(&run.findings()),
        BTreeSet::from([
            ("le.txt".to_owned(), 2, 7, sha256(&keys[0])),
            ("be.txt".to_owned(), 2, 6, sha256(&keys[1])),
            ("bom.txt".to_owned(), 1, 3, sha256(&keys[2])),
        ]),
        "spec/report.md: line and column are in the decoded text"
    );
}

// ---------------------------------------------------------------------------------------------
// No key in any output

#[test]
fn no_full_key_appears_in_stdout_or_stderr_for_any_format() {
    let tree = Tree::new();
    let current: Vec<String> = (0..6).map(|_| current_key()).collect();
    let legacy: Vec<String> = (0..2).map(|_| legacy_key()).collect();
    tree.file(
        ".env",
        format!(
            "OFFSET_API_KEY={}\nOFFSET_LEGACY={}\n",
            current[0], legacy[0]
        ),
    );
    tree.file(
        "request.http",
        format!(
            "Authorization: Basic {}\r\nX-Offset-Key: {}\r\n",
            STANDARD.encode(format!("{}:", current[1])),
            legacy[1]
        ),
    );
    tree.file(
        "access.log",
        format!(
            "GET /?k%3D{}&u={} HTTP/1.1\n",
            current[2],
            current[3].replace('_', "%5F")
        ),
    );
    tree.file(
        "log.json",
        format!(
            "{{\"m\":\"a\\n{}\"}}\n\x1b[1;31m{}\x1b[0m\n",
            current[4], current[5]
        ),
    );
    let mut keys = current.clone();
    keys.extend(legacy.iter().cloned());
    let planted = keys.len();
    let mut outputs: Vec<String> = Vec::new();
    for format in ["text", "json", "jsonl", "sarif"] {
        // A directory scan (with an error in the same run) and a stdin scan of the same bytes.
        let run = offkey(&tree, &["scan", ".", "missing-dir", "--format", format]);
        assert_eq!(run.status, Some(1), "{format}: {}", run.stderr);
        if format == "json" {
            assert_eq!(run.findings().len(), planted, "{}", run.stdout);
        }
        outputs.push(run.stdout);
        outputs.push(run.stderr);
        let all: Vec<u8> = ["access.log", "log.json", ".env", "request.http"]
            .iter()
            .flat_map(|p| std::fs::read(tree.path(p)).expect("read back"))
            .collect();
        let run = offkey_in(tree.root(), &["scan", "-", "--format", format], Some(&all));
        assert_eq!(run.status, Some(1), "stdin {format}: {}", run.stderr);
        outputs.push(run.stdout);
        outputs.push(run.stderr);
    }
    let refs: Vec<&str> = outputs.iter().map(String::as_str).collect();
    assert_no_key_leak(&refs, &keys);
}

// ---------------------------------------------------------------------------------------------
// Redact

fn redact(input: &[u8], extra: &[&str]) -> Run {
    let cwd = Tree::new();
    let mut args = vec!["redact"];
    args.extend_from_slice(extra);
    offkey_in(cwd.root(), &args, Some(input))
}

#[test]
fn redact_replaces_keys_with_the_placeholder_and_counts_them_on_stderr() {
    let (k1, k2, legacy, md5) = (current_key(), current_key(), legacy_key(), legacy_key());
    let bad = bad_checksum(&current_key());
    let input = format!(
        "INFO start\nOFFSET_API_KEY={k1}\nheaders: {{'X-Offset-Key': '{legacy}'}}\n\
         md5 {md5}\ntypo {bad}\n\"{k2}\",\n"
    );
    let run = redact(input.as_bytes(), &[]);
    assert_eq!(run.status, Some(0), "stderr: {}", run.stderr);
    let want = input
        .replace(&k1, "YOUR_API_KEY")
        .replace(&k2, "YOUR_API_KEY")
        .replace(&legacy, "YOUR_API_KEY");
    assert_eq!(run.stdout, want);
    assert!(run.stderr.contains("redacted 3 key"), "{}", run.stderr);
    assert_no_key_leak(&[&run.stdout, &run.stderr], &[k1.clone(), k2, legacy]);

    let run = redact(input.as_bytes(), &["--placeholder", "<redacted>"]);
    assert!(run.stdout.contains("OFFSET_API_KEY=<redacted>\n"));
    assert!(!run.stdout.contains(&k1));
    assert!(!run.stdout.contains("YOUR_API_KEY"));

    let clean = b"nothing \xff\x00 secret here\r\n";
    let run = redact(clean, &[]);
    assert_eq!(run.stdout_bytes, clean.to_vec());
    assert!(run.stderr.contains("redacted 0 key"), "{}", run.stderr);
}

#[test]
fn redact_handles_keys_behind_encodings() {
    let keys: Vec<String> = (0..6).map(|_| current_key()).collect();
    let basic = STANDARD.encode(format!("{}:", keys[5]));
    let lines = [
        (
            format!("{{\"log\":\"start\\n{}\\ndone\"}}", keys[0]),
            "{\"log\":\"start\\nYOUR_API_KEY\\ndone\"}".to_owned(),
        ),
        (
            format!("GET /cb?next=%2Fx%3Fk%3D{}%26a%3D1 HTTP/1.1", keys[1]),
            "GET /cb?next=%2Fx%3Fk%3DYOUR_API_KEY%26a%3D1 HTTP/1.1".to_owned(),
        ),
        (
            format!("u={}&x=1", keys[2].replace('_', "%5F")),
            "u=YOUR_API_KEY&x=1".to_owned(),
        ),
        (
            format!("\x1b[1;31m{}\x1b[0m", keys[3]),
            "\x1b[1;31mYOUR_API_KEY\x1b[0m".to_owned(),
        ),
        (
            format!("{{\"k\":\"{}\"}}", keys[4].replace('_', "\\u005f")),
            "{\"k\":\"YOUR_API_KEY\"}".to_owned(),
        ),
        (
            format!("Authorization: Basic {basic}"),
            format!("Authorization: Basic {}", STANDARD.encode("YOUR_API_KEY:")),
        ),
    ];
    for (input, want) in &lines {
        let run = redact(format!("{input}\n").as_bytes(), &[]);
        assert_eq!(run.stdout, format!("{want}\n"), "input {input:?}");
        assert!(run.stderr.contains("redacted 1 key"), "{}", run.stderr);
    }
    let all: String = lines.iter().map(|(i, _)| format!("{i}\r\n")).collect();
    let want: String = lines.iter().map(|(_, w)| format!("{w}\r\n")).collect();
    let run = redact(all.as_bytes(), &[]);
    assert_eq!(run.stdout, want);
    assert!(run.stderr.contains("redacted 6 key"), "{}", run.stderr);
    assert_no_key_leak(&[&run.stdout, &run.stderr], &keys);
    // The new Basic token decodes to the placeholder.
    let token = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Authorization: Basic "))
        .expect("basic line")
        .trim_end();
    let decoded = STANDARD.decode(token).expect("still base64");
    assert_eq!(decoded, b"YOUR_API_KEY:");
}

#[test]
fn redact_of_a_multi_mib_stream_finds_keys_across_chunk_boundaries() {
    let keys: Vec<String> = (0..4).map(|_| current_key()).collect();
    let mut input = String::new();
    input.push_str(&filler(MIB - 20));
    input.push_str(&keys[0]);
    input.push('\n');
    input.push_str(&filler(2 * MIB - input.len() - 1));
    input.push_str(&keys[1]);
    input.push(' ');
    input.push_str(&filler(3 * MIB - input.len() - 45));
    input.push_str(&keys[2]);
    input.push(',');
    input.push_str(&filler(MIB / 3));
    input.push_str(&keys[3]);
    input.push('\n');
    let mut want = input.clone();
    for k in &keys {
        want = want.replace(k.as_str(), "YOUR_API_KEY");
    }
    let run = redact(input.as_bytes(), &[]);
    assert_eq!(run.status, Some(0), "stderr: {}", run.stderr);
    assert!(
        run.stdout == want,
        "redacted output differs from the input with keys replaced"
    );
    assert!(run.stderr.contains("redacted 4 key"), "{}", run.stderr);
}

mod property {
    use proptest::prelude::*;

    use super::redact;

    /// Bytes that end a key without gluing it to its neighbours.
    const SEPARATORS: &[u8] = b" \n\t\r,;:=\"'()<>[]{}|!#&*@/+-.?";

    fn current_key(body: &str) -> String {
        let csum = offkey::key::checksum(body.as_bytes());
        format!(
            "oc_live_{body}{}",
            std::str::from_utf8(&csum).expect("base62")
        )
    }

    #[derive(Debug, Clone)]
    enum Planted {
        Current(String),
        Legacy(String),
    }

    fn filler() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..120),
            "[ -~\n\t]{0,120}".prop_map(String::into_bytes),
        ]
    }

    fn planted() -> impl Strategy<Value = Planted> {
        prop_oneof![
            3 => "[0-9A-Za-z]{32}".prop_map(|b| Planted::Current(current_key(&b))),
            1 => "[0-9a-f]{32}".prop_map(Planted::Legacy),
        ]
    }

    fn piece() -> impl Strategy<Value = (Vec<u8>, u8, Planted, u8)> {
        (
            filler(),
            proptest::sample::select(SEPARATORS),
            planted(),
            proptest::sample::select(SEPARATORS),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Random bytes or text with keys planted between separators: the output is the input
        /// with exactly each key's span replaced, and the count is the number of keys.
        #[test]
        fn redact_changes_only_the_key_spans(pieces in proptest::collection::vec(piece(), 0..12), tail in filler()) {
            let mut input = Vec::new();
            let mut want = Vec::new();
            for (fill, before, key, after) in &pieces {
                input.extend_from_slice(fill);
                want.extend_from_slice(fill);
                input.push(*before);
                want.push(*before);
                let secret = match key {
                    Planted::Current(k) => k.clone(),
                    Planted::Legacy(h) => {
                        // Legacy keys are keys only next to a context word.
                        input.extend_from_slice(b"offset_key=");
                        want.extend_from_slice(b"offset_key=");
                        h.clone()
                    }
                };
                input.extend_from_slice(secret.as_bytes());
                want.extend_from_slice(b"YOUR_API_KEY");
                input.push(*after);
                want.push(*after);
            }
            input.extend_from_slice(&tail);
            want.extend_from_slice(&tail);
            let run = redact(&input, &[]);
            prop_assert_eq!(run.status, Some(0));
            prop_assert!(
                run.stdout_bytes == want,
                "output:   {:?}\nexpected: {:?}",
                String::from_utf8_lossy(&run.stdout_bytes),
                String::from_utf8_lossy(&want)
            );
            let count = format!("redacted {} key", pieces.len());
            prop_assert!(run.stderr.contains(&count), "{}", run.stderr);
        }
    }
}
