//! Sources and decoded views end to end: git history, staged changes, AI chat exports (files and
//! zips), HAR captures, archives with their limits, encodings.

use std::io::Write;

use crate::util::*;

#[test]
fn git_history_finds_deleted_and_unmerged_keys_with_the_introducing_commit() {
    let r = repo();
    let d = r.path();
    let (k1, k2, k3) = (key(), key(), key());
    let mut bad = k3.clone();
    bad.pop();
    bad.push(if k3.ends_with('0') { '1' } else { '0' });
    commit_file(d, "README.md", "hello\n", "init");
    let intro = commit_file(
        d,
        "config/prod.env",
        &format!("A=1\nOFFSET_API_KEY={k1}\n"),
        "add config",
    );
    commit_file(d, "notes.txt", &format!("decoy {bad}\n"), "notes");
    std::fs::remove_file(d.join("config/prod.env")).expect("rm");
    git(d, &["add", "-A"]);
    git(d, &["commit", "-q", "-m", "remove key"]);
    // The same key in two files: two findings, one blob.
    commit_file(d, "a.txt", &format!("k={k2}\n"), "a");
    commit_file(d, "b.txt", &format!("k={k2}\n"), "b");
    git(d, &["checkout", "-q", "-b", "feature"]);
    let side = commit_file(d, "side.py", &format!("KEY = '{k3}'\n"), "side");
    git(d, &["checkout", "-q", "main"]);

    let o = offkey(d, &["scan", "--git", ".", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    assert_no_leak(&all_output(&o), &[&k1, &k2, &k3]);
    let f = findings(&o);
    let at = |path: &str| {
        f.iter()
            .filter(|x| x["location"]["path"] == path)
            .collect::<Vec<_>>()
    };
    let deleted = at("config/prod.env");
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["location"]["source"], "git");
    assert_eq!(deleted[0]["location"]["commit"], intro.as_str());
    assert_eq!(
        deleted[0]["location"]["author"],
        "Ana Example <ana@example.com>"
    );
    assert_eq!(deleted[0]["location"]["line"], 2);
    assert!(
        deleted[0]["location"]["date"]
            .as_str()
            .is_some_and(|s| s.contains('T'))
    );
    assert_eq!(at("a.txt").len(), 1);
    assert_eq!(at("b.txt").len(), 1);
    assert_eq!(at("side.py")[0]["location"]["commit"], side.as_str());
    assert!(
        at("notes.txt").is_empty(),
        "a bad-checksum decoy was reported"
    );
    assert_eq!(f.len(), 4);
    // Blobs are counted once: the a.txt/b.txt blob is one.
    let summary = &report(&o)["summary"];
    assert!(
        summary["files"].as_u64().is_some_and(|n| n <= 6),
        "{summary}"
    );
}

#[test]
fn git_history_paths_named_after_a_key_do_not_leak_it() {
    // The same blob at a plain path and, copied, at a path named after a key: each path is
    // reported, the second redacted.
    let r = repo();
    let d = r.path();
    let (k1, k2) = (key(), key());
    commit_file(d, "a.env", &format!("OFFSET_API_KEY={k2}\n"), "a");
    commit_file(
        d,
        &format!("{k1}.env"),
        &format!("OFFSET_API_KEY={k2}\n"),
        "copy",
    );
    let o = offkey(d, &["scan", "--git", ".", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    assert_no_leak(&all_output(&o), &[&k1, &k2]);
    let mut paths: Vec<String> = findings(&o)
        .iter()
        .map(|x| x["location"]["path"].as_str().unwrap_or("").to_owned())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        vec![
            "a.env".to_owned(),
            format!("oc_live_…{}.env", &k1[k1.len() - 4..])
        ]
    );
}

#[test]
fn git_history_applies_the_allowlist_to_each_path_of_a_blob() {
    // The same blob first at an allowlisted fixture, then copied to a config file: the copy is
    // reported (the blob's first path used to decide for all of them).
    let r = repo();
    let d = r.path();
    let k = key();
    std::fs::write(
        d.join(".offkey.toml"),
        "[allowlist]\npaths = [\"fixtures/**\"]\n",
    )
    .expect("write");
    commit_file(
        d,
        "fixtures/sample.env",
        &format!("OFFSET_API_KEY={k}\n"),
        "fixture",
    );
    commit_file(
        d,
        "config/prod.env",
        &format!("OFFSET_API_KEY={k}\n"),
        "copy",
    );
    let o = offkey(d, &["scan", "--git", ".", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    let paths: Vec<String> = findings(&o)
        .iter()
        .map(|x| x["location"]["path"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(paths, vec!["config/prod.env".to_owned()]);
}

#[test]
fn git_range_scans_only_the_new_commits() {
    let r = repo();
    let d = r.path();
    let (old, new) = (key(), key());
    commit_file(d, "old.env", &format!("K={old}\n"), "old");
    let base = git(d, &["rev-parse", "HEAD"]);
    commit_file(d, "new.env", &format!("K={new}\n"), "new");
    let o = offkey(
        d,
        &[
            "scan",
            "--git",
            ".",
            "--range",
            &format!("{base}..HEAD"),
            "--format",
            "json",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let f = findings(&o);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["location"]["path"], "new.env");
}

#[test]
fn git_errors_are_clear_and_exit_2() {
    let plain = tempfile::tempdir().expect("tmp");
    let o = offkey(plain.path(), &["scan", "--git", "."], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a git repository"));
    let r = repo();
    commit_file(r.path(), "a", "a\n", "a");
    let o = offkey(
        r.path(),
        &["scan", "--git", ".", "--range", "nope..HEAD"],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope..HEAD"));
}

#[test]
fn shallow_clone_is_scanned_with_a_note() {
    let r = repo();
    let d = r.path();
    let k = key();
    commit_file(d, "a.env", &format!("K={k}\n"), "one");
    commit_file(d, "b.txt", "b\n", "two");
    let clone = tempfile::tempdir().expect("tmp");
    let url = format!("file://{}", d.display());
    git(clone.path(), &["clone", "-q", "--depth", "1", &url, "c"]);
    let o = offkey(
        &clone.path().join("c"),
        &["scan", "--git", ".", "--format", "json"],
        None,
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("shallow clone"),
        "{}",
        all_output(&o)
    );
    assert_eq!(
        findings(&o).len(),
        1,
        "the key is in the one commit the clone has"
    );
}

#[test]
fn staged_scans_added_lines_only() {
    let r = repo();
    let d = r.path();
    let (committed, staged, unstaged) = (key(), key(), key());
    commit_file(d, "app.env", &format!("OLD={committed}\n"), "init");
    std::fs::write(
        d.join("app.env"),
        format!("OLD={committed}\nA=1\nNEW={staged}\n"),
    )
    .expect("write");
    git(d, &["add", "app.env"]);
    std::fs::write(
        d.join("app.env"),
        format!("OLD={committed}\nA=1\nNEW={staged}\nMORE={unstaged}\n"),
    )
    .expect("write");
    std::fs::write(d.join("untracked.env"), format!("X={unstaged}\n")).expect("write");
    let o = offkey(d, &["scan", "--staged", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    let f = findings(&o);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["location"]["source"], "staged");
    assert_eq!(f[0]["location"]["path"], "app.env");
    assert_eq!(f[0]["location"]["line"], 3);
    assert_eq!(f[0]["sha256"], offkey::key::sha256_hex(staged.as_bytes()));

    // Before the first commit: against the empty tree.
    let r2 = repo();
    std::fs::write(r2.path().join("x.env"), format!("K={staged}\n")).expect("write");
    git(r2.path(), &["add", "x.env"]);
    let o = offkey(r2.path(), &["scan", "--staged"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("x.env:1:"));
    let clean = repo();
    commit_file(clean.path(), "a.txt", "nothing\n", "a");
    assert_eq!(
        offkey(clean.path(), &["scan", "--staged"], None)
            .status
            .code(),
        Some(0)
    );
}

fn chatgpt_export(k: &str) -> String {
    serde_json::json!([{
        "title": "Deploy the fulfillment sync",
        "create_time": 1_767_000_000.0,
        "mapping": {
            "root": {"id": "root", "message": null, "parent": null, "children": ["m1"]},
            "m1": {"id": "m1", "parent": "root", "children": ["m2"], "message": {
                "author": {"role": "system"}, "create_time": null,
                "content": {"content_type": "text", "parts": [""]}}},
            "m2": {"id": "m2", "parent": "m1", "children": ["m3"], "message": {
                "author": {"role": "user"}, "create_time": 1_767_000_100.5,
                "content": {"content_type": "text", "parts": [format!("why does this fail?\ncurl -H \"X-Offset-Key: {k}\" https://api")]}}},
            "m3": {"id": "m3", "parent": "m2", "children": [], "message": {
                "author": {"role": "assistant"}, "create_time": 1_767_000_200.0,
                "content": {"content_type": "text", "parts": ["Rotate that key."]}}}
        }
    }])
    .to_string()
}

#[test]
fn chatgpt_claude_and_jsonl_exports_name_conversation_and_message() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let (k1, k2, k3) = (key(), key(), key());
    std::fs::write(d.join("conversations.json"), chatgpt_export(&k1)).expect("write");
    // A real Claude export with a key planted in the third message's text.
    let real = include_str!("../../fixtures/real/claude/simonw-claude-to-sqlite-artifacts.json");
    let mut v: serde_json::Value = serde_json::from_str(real).expect("fixture parses");
    let msg = &mut v[0]["chat_messages"][2]["text"];
    *msg = serde_json::Value::String(format!("{}\nmy key is {k2}", msg.as_str().unwrap_or("")));
    let title = v[0]["name"].as_str().unwrap_or("").to_owned();
    std::fs::create_dir(d.join("claude")).expect("mkdir");
    std::fs::write(d.join("claude/export.json"), v.to_string()).expect("write");
    let line = serde_json::json!({"messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": [{"type": "text", "text": format!("key={k3}")}]}
    ]});
    std::fs::write(d.join("train.jsonl"), format!("{line}\n{line}\n")).expect("write");

    let o = offkey(d, &["scan", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    assert_no_leak(&all_output(&o), &[&k1, &k2, &k3]);
    let f = findings(&o);
    let by = |sha: &str| {
        f.iter()
            .filter(|x| x["sha256"] == sha)
            .cloned()
            .collect::<Vec<_>>()
    };
    let g = by(&offkey::key::sha256_hex(k1.as_bytes()));
    assert_eq!(g.len(), 1, "{f:?}");
    assert_eq!(g[0]["location"]["source"], "transcript");
    assert_eq!(
        g[0]["location"]["conversation"],
        "Deploy the fulfillment sync"
    );
    assert_eq!(g[0]["location"]["message"], 1);
    assert_eq!(g[0]["location"]["role"], "user");
    assert_eq!(g[0]["location"]["line"], 2);
    assert!(
        g[0]["location"]["date"]
            .as_str()
            .is_some_and(|s| s.starts_with("2025-12-29"))
    );
    let c = by(&offkey::key::sha256_hex(k2.as_bytes()));
    assert_eq!(c.len(), 1);
    assert_eq!(c[0]["location"]["conversation"], title.as_str());
    assert_eq!(c[0]["location"]["message"], 2);
    let j = by(&offkey::key::sha256_hex(k3.as_bytes()));
    assert_eq!(j.len(), 2, "one per JSONL line");
    assert_eq!(j[0]["location"]["message"], 1);
    assert_eq!(j[0]["location"]["role"], "user");
}

fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in members {
            z.start_file(*name, opts).expect("zip member");
            z.write_all(data).expect("zip write");
        }
        z.finish().expect("zip finish");
    }
    buf.into_inner()
}

#[test]
fn export_zip_and_gzip_members_are_scanned() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let (k1, k2) = (key(), key());
    let export = chatgpt_export(&k1);
    std::fs::write(
        d.join("chatgpt-export.zip"),
        zip_of(&[("conversations.json", export.as_bytes())]),
    )
    .expect("write");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(format!("2026-01-01 INFO key={k2}\n").as_bytes())
        .expect("gz");
    std::fs::write(d.join("app.log.gz"), gz.finish().expect("gz")).expect("write");
    let o = offkey(d, &["scan", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    let f = findings(&o);
    assert_eq!(f.len(), 2, "{f:?}");
    let z = f
        .iter()
        .find(|x| x["location"]["path"] == "chatgpt-export.zip!conversations.json")
        .expect("zip member");
    assert_eq!(z["location"]["source"], "transcript");
    assert_eq!(z["location"]["message"], 1);
    assert!(
        f.iter()
            .any(|x| x["location"]["path"] == "app.log.gz!app.log" && x["location"]["line"] == 1)
    );
}

#[test]
fn a_gzip_log_is_scanned_as_it_decompresses_however_well_it_compresses() {
    // A repetitive log compresses far beyond the 100:1 that bounds what an archive may expand
    // to in memory: a rotated `app.log.1.gz` must still be scanned, all of it, with exact lines.
    let dir = tempfile::tempdir().expect("tmp");
    let (k1, k2) = (key(), key());
    let mut log = String::new();
    log.push_str(&format!("2026-11-27 INFO start key={k1}\n"));
    log.push_str(&"2026-11-27 INFO request handled in 12ms path=/api/v1/orders\n".repeat(300_000));
    log.push_str(&format!("2026-11-27 WARN retry with OFFSET_API_KEY={k2}\n"));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(log.as_bytes()).expect("gzip");
    let gz = gz.finish().expect("gzip");
    assert!(
        log.len() as u64 > 100 * gz.len() as u64,
        "{} -> {}",
        log.len(),
        gz.len()
    );
    std::fs::write(dir.path().join("app.log.1.gz"), gz).expect("write");
    let o = offkey(dir.path(), &["scan", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    assert_no_leak(&all_output(&o), &[&k1, &k2]);
    let f = findings(&o);
    assert_eq!(f.len(), 2, "{f:?}");
    let line = |k: &str| {
        f.iter()
            .find(|x| x["sha256"] == offkey::key::sha256_hex(k.as_bytes()))
            .map(|x| (x["location"]["path"].clone(), x["location"]["line"].clone()))
    };
    assert_eq!(line(&k1), Some(("app.log.1.gz!app.log.1".into(), 1.into())));
    assert_eq!(
        line(&k2),
        Some(("app.log.1.gz!app.log.1".into(), 300_002.into()))
    );
}

#[test]
fn a_gzip_cut_off_is_scanned_as_far_as_it_goes() {
    // A log gzipped while still being written (or half downloaded): the text before the cut
    // is scanned, also its last piece, and a warning names the file. One long, one short.
    let dir = tempfile::tempdir().expect("tmp");
    let (k1, k2) = (key(), key());
    let mut x = 7u64;
    let mut noise = String::new();
    while noise.len() < 40_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.push_str(&format!("{x:016x}\n"));
    }
    for (name, filler, k) in [("long.log.gz", 200_000, &k1), ("short.log.gz", 10, &k2)] {
        let log = format!(
            "{}2026-11-27 WARN retry with OFFSET_API_KEY={k}\n{noise}",
            "2026-11-27 INFO request handled in 12ms\n".repeat(filler)
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(log.as_bytes()).expect("gzip");
        let mut gz = gz.finish().expect("gzip");
        gz.truncate(gz.len() - 8_000); // into the deflate data of the noise
        std::fs::write(dir.path().join(name), gz).expect("write");
    }
    let o = offkey(dir.path(), &["scan", "--format", "json"], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("long.log.gz: cannot decompress further")
            && err.contains("short.log.gz: cannot decompress further"),
        "{err}"
    );
    assert_no_leak(&all_output(&o), &[&k1, &k2]);
    let f = findings(&o);
    let at = |k: &str| {
        f.iter()
            .find(|x| x["sha256"] == offkey::key::sha256_hex(k.as_bytes()))
            .map(|x| (x["location"]["path"].clone(), x["location"]["line"].clone()))
    };
    assert_eq!(
        at(&k1),
        Some(("long.log.gz!long.log".into(), 200_001.into()))
    );
    assert_eq!(at(&k2), Some(("short.log.gz!short.log".into(), 11.into())));
}

#[test]
fn zip_members_are_scanned_as_they_decompress() {
    // A zip of logs: a 3 MB member with keys at both ends (lines exact across pieces), and one
    // that compresses beyond 100:1, scanned as far as the limits allow, its key early on found.
    let dir = tempfile::tempdir().expect("tmp");
    let (k1, k2, k3) = (key(), key(), key());
    let mut x = 7u64;
    let mut log = format!("2026-11-27 start key={k1}\n");
    for i in 0..60_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        log.push_str(&format!("2026-11-27 INFO {i} id={x:016x} handled\n"));
    }
    log.push_str(&format!("2026-11-27 end OFFSET_API_KEY={k2}\n"));
    let dense = format!(
        "note key={k3}\n{}",
        "2026-11-27 INFO request handled in 12ms\n".repeat(200_000)
    );
    std::fs::write(
        dir.path().join("logs.zip"),
        zip_of(&[("app.log", log.as_bytes()), ("dense.log", dense.as_bytes())]),
    )
    .expect("write");
    let o = offkey(dir.path(), &["scan", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    assert_no_leak(&all_output(&o), &[&k1, &k2, &k3]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("logs.zip!dense.log: expands beyond the archive limits"),
        "{err}"
    );
    let f = findings(&o);
    let at = |k: &str| {
        f.iter()
            .find(|x| x["sha256"] == offkey::key::sha256_hex(k.as_bytes()))
            .map(|x| (x["location"]["path"].clone(), x["location"]["line"].clone()))
    };
    assert_eq!(at(&k1), Some(("logs.zip!app.log".into(), 1.into())));
    assert_eq!(at(&k2), Some(("logs.zip!app.log".into(), 60_002.into())));
    assert_eq!(at(&k3), Some(("logs.zip!dense.log".into(), 1.into())));
}

#[test]
fn a_file_that_only_starts_like_gzip_is_scanned_as_bytes() {
    // Two bytes of gzip magic must not hide what follows.
    let dir = tempfile::tempdir().expect("tmp");
    let k = key();
    let mut data = vec![0x1f, 0x8b, 0xff, 0x00];
    data.extend_from_slice(format!("\nOFFSET_API_KEY={k}\n").as_bytes());
    std::fs::write(dir.path().join("notes.gz"), data).expect("write");
    let o = offkey(dir.path(), &["scan", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    let f = findings(&o);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["location"]["path"], "notes.gz");
    assert_eq!(f[0]["location"]["line"], 2);
}

#[test]
fn a_file_or_member_named_after_a_key_does_not_leak_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let (k1, k2, k3, k4) = (key(), key(), key(), key());
    std::fs::write(
        dir.path().join(format!("{k1}.env")),
        format!("OFFSET_API_KEY={k2}\n"),
    )
    .expect("write");
    std::fs::write(
        dir.path().join("backup.zip"),
        zip_of(&[(&format!("{k3}.txt"), format!("k={k4}\n").as_bytes())]),
    )
    .expect("write");
    for format in ["text", "json", "sarif"] {
        let o = offkey(dir.path(), &["scan", "--format", format], None);
        assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
        assert_no_leak(&all_output(&o), &[&k1, &k2, &k3, &k4]);
    }
    // An allowlist glob is matched against the real name, and a baseline written by a scan
    // (which holds the redacted names) suppresses the same findings later.
    let base = dir.path().join("base.json");
    let o = offkey(
        dir.path(),
        &[
            "scan",
            "--format",
            "json",
            "-o",
            base.to_str().expect("utf-8"),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    let o = offkey(
        dir.path(),
        &["scan", "--baseline", base.to_str().expect("utf-8")],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
    std::fs::write(
        dir.path().join(".offkey.toml"),
        "[allowlist]\npaths = [\"oc_live_*.env\", \"base.json\"]\n",
    )
    .expect("write");
    let o = offkey(dir.path(), &["scan", "--format", "json"], None);
    assert_eq!(findings(&o).len(), 1, "only the zip member is left");
    std::fs::remove_file(dir.path().join(".offkey.toml")).expect("rm");
    std::fs::remove_file(&base).expect("rm");
    let o = offkey(dir.path(), &["scan", "--format", "json"], None);
    let paths: Vec<String> = findings(&o)
        .iter()
        .map(|x| x["location"]["path"].as_str().unwrap_or("").to_owned())
        .collect();
    let last4 = |k: &str| k[k.len() - 4..].to_owned();
    assert!(
        paths.contains(&format!("oc_live_…{}.env", last4(&k1))),
        "{paths:?}"
    );
    assert!(
        paths.contains(&format!("backup.zip!oc_live_…{}.txt", last4(&k3))),
        "{paths:?}"
    );
}

#[test]
fn a_member_read_whole_but_cut_by_the_limits_is_still_scanned() {
    // It starts like a zip, so it must be read whole; past 100:1 it is cut, and what was
    // read is scanned (as bytes, since it does not open as a zip) rather than dropped.
    let dir = tempfile::tempdir().expect("tmp");
    let k = key();
    let mut data = b"PK\x03\x04\n".to_vec();
    data.extend_from_slice(format!("OFFSET_API_KEY={k}\n").as_bytes());
    data.extend(std::iter::repeat_n(b'x', 5 << 20));
    std::fs::write(dir.path().join("t.zip"), zip_of(&[("weird.bin", &data)])).expect("write");
    let o = offkey(dir.path(), &["scan", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("t.zip!weird.bin: expands beyond the archive limits"),
        "{err}"
    );
    let f = findings(&o);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["location"]["path"], "t.zip!weird.bin");
    assert_eq!(f[0]["location"]["line"], 2);
}

#[test]
fn zip_bombs_and_deep_nesting_are_stopped_by_the_limits() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let k = key();
    let zeros = vec![0u8; 32 << 20];
    // A gzip bomb inside the zip counts against the zip's limits (a gzip file on its own is
    // scanned as it decompresses, up to 1 GiB): scanned as far as they allow, with a warning.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&zeros).expect("gzip");
    let gz = gz.finish().expect("gzip");
    std::fs::write(
        d.join("bomb.zip"),
        zip_of(&[
            ("zeros.bin", &zeros),
            ("zeros.gz", &gz),
            ("ok.txt", format!("k={k}\n").as_bytes()),
        ]),
    )
    .expect("write");
    let mut nested = zip_of(&[("inner.txt", format!("k={}\n", key()).as_bytes())]);
    for i in 0..4 {
        nested = zip_of(&[(&format!("level{i}.zip"), &nested)]);
    }
    std::fs::write(d.join("nested.zip"), nested).expect("write");
    let o = offkey(d, &["scan", "--format", "json"], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bomb.zip!zeros.bin") && err.contains("limits"),
        "{err}"
    );
    assert!(
        err.contains("bomb.zip!zeros.gz: expands beyond the archive limits")
            && err.contains("scanned its first"),
        "{err}"
    );
    assert!(err.contains("nested deeper"), "{err}");
    let f = findings(&o);
    assert_eq!(
        f.len(),
        1,
        "the bomb's small member is still scanned: {f:?}"
    );
    assert_eq!(f[0]["location"]["path"], "bomb.zip!ok.txt");
}

#[test]
fn har_headers_queries_and_base64_bodies() {
    let dir = tempfile::tempdir().expect("tmp");
    let (k1, k2, k3) = (key(), key(), key());
    let real = include_str!("../../fixtures/real/har/mitmproxy-chrome-postdata.har");
    let mut v: serde_json::Value = serde_json::from_str(real).expect("fixture parses");
    let e = &mut v["log"]["entries"][0];
    e["request"]["headers"]
        .as_array_mut()
        .expect("headers")
        .push(serde_json::json!({"name": "X-Offset-Key", "value": k1}));
    e["request"]["queryString"]
        .as_array_mut()
        .expect("query")
        .push(serde_json::json!({"name": "api_key", "value": k2}));
    use base64::Engine;
    e["response"]["content"] = serde_json::json!({
        "mimeType": "application/json", "encoding": "base64",
        "text": base64::engine::general_purpose::STANDARD.encode(format!("{{\"key\":\"{k3}\"}}"))
    });
    std::fs::write(
        dir.path().join("capture.har"),
        serde_json::to_string_pretty(&v).expect("json"),
    )
    .expect("write");
    let o = offkey(dir.path(), &["scan", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    assert_no_leak(&all_output(&o), &[&k1, &k2, &k3]);
    let f = findings(&o);
    let field = |k: &str| {
        f.iter()
            .find(|x| x["sha256"] == offkey::key::sha256_hex(k.as_bytes()))
            .map(|x| {
                (
                    x["location"]["source"].clone(),
                    x["location"]["entry"].clone(),
                    x["location"]["field"].clone(),
                )
            })
    };
    assert_eq!(
        field(&k1),
        Some((
            "har".into(),
            0.into(),
            "request.headers[X-Offset-Key]".into()
        ))
    );
    assert_eq!(
        field(&k2),
        Some((
            "har".into(),
            0.into(),
            "request.queryString[api_key]".into()
        ))
    );
    assert_eq!(
        field(&k3),
        Some(("har".into(), 0.into(), "response.content.text".into()))
    );
}

#[test]
fn a_har_entry_too_big_to_parse_keeps_its_findings_with_a_warning() {
    // A 17 MiB response body (over the 16 MiB parsed per entry): the key in that entry's
    // request header is still reported, by line and column, also where a small entry holds
    // the same key; the small entries keep their entry and field.
    let dir = tempfile::tempdir().expect("tmp");
    let (k1, k2) = (key(), key());
    let entry = |k: &str, body: &str| {
        serde_json::json!({
            "request": {"method": "GET", "url": "https://shop.example/",
                        "headers": [{"name": "X-Offset-Key", "value": k}]},
            "response": {"status": 200, "content": {"mimeType": "text/plain", "text": body}}
        })
    };
    let body = "x".repeat(17 << 20);
    let har = serde_json::json!({"log": {"version": "1.2", "entries": [
        entry(&k1, &body), entry(&k2, "ok"), entry(&k1, "ok")
    ]}});
    std::fs::write(dir.path().join("big.har"), har.to_string()).expect("write");
    let o = offkey(dir.path(), &["scan", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    assert_no_leak(&all_output(&o), &[&k1, &k2]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("big.har: 1 entry over 16 MiB not parsed (the largest, 17.0 MiB, at byte 19)"),
        "{err}"
    );
    let f = findings(&o);
    let of = |k: &str| -> Vec<serde_json::Value> {
        f.iter()
            .filter(|x| x["sha256"] == offkey::key::sha256_hex(k.as_bytes()))
            .map(|x| x["location"].clone())
            .collect()
    };
    let k1s = of(&k1);
    assert_eq!(k1s.len(), 2, "{k1s:?}");
    let big = k1s.iter().find(|l| l["source"] == "file").expect("by line");
    assert_eq!(big["line"], 1);
    assert!(big["entry"].is_null() && big["field"].is_null(), "{big}");
    let again = k1s
        .iter()
        .find(|l| l["source"] == "har")
        .expect("in entry 2");
    assert_eq!(again["entry"], 2);
    let small = &of(&k2)[0];
    assert_eq!(small["source"], "har");
    assert_eq!(small["entry"], 1);
    assert_eq!(small["field"], "request.headers[X-Offset-Key]");
}

#[test]
fn malformed_export_falls_back_to_plain_text_with_a_warning() {
    let dir = tempfile::tempdir().expect("tmp");
    let k = key();
    let broken = chatgpt_export(&k);
    std::fs::write(
        dir.path().join("conversations.json"),
        &broken[..broken.len() - 40],
    )
    .expect("write");
    let o = offkey(dir.path(), &["scan", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("scanned as plain text"));
    let f = findings(&o);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["location"]["source"], "file");
}

#[test]
fn kubernetes_secret_utf16_and_encoded_views() {
    use base64::Engine;
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let (k1, k2, k3) = (key(), key(), key());
    let real = include_str!("../../fixtures/real/k8s/kubernetes-examples-iscsi-chap-secret.yaml");
    let b64 = base64::engine::general_purpose::STANDARD.encode(&k1);
    std::fs::write(
        d.join("secret.yaml"),
        format!("{real}  offset.api.key: {b64}\n"),
    )
    .expect("write");
    let utf16: Vec<u8> = [0xff, 0xfe]
        .into_iter()
        .chain(
            format!("token={k2}\r\n")
                .encode_utf16()
                .flat_map(|u| u.to_le_bytes()),
        )
        .collect();
    std::fs::write(d.join("win.txt"), utf16).expect("write");
    let url = format!(
        "GET /cb?redirect=https%3A%2F%2Fx%2F%3Fkey%3D{}%26a%3D1\n",
        k3.replace('_', "%5F")
    );
    std::fs::write(d.join("access.log"), url).expect("write");
    let o = offkey(d, &["scan", "--format", "json"], None);
    assert_no_leak(&all_output(&o), &[&k1, &k2, &k3]);
    let f = findings(&o);
    let enc = |k: &str| {
        f.iter()
            .find(|x| x["sha256"] == offkey::key::sha256_hex(k.as_bytes()))
            .map(|x| x["encoding"].as_str().unwrap_or("").to_owned())
    };
    assert_eq!(enc(&k1).as_deref(), Some("base64"));
    assert_eq!(enc(&k2).as_deref(), Some("utf-16"));
    assert_eq!(enc(&k3).as_deref(), Some("url-encoded"));
    let real_lines = real.lines().count();
    let k8s = f
        .iter()
        .find(|x| x["location"]["path"] == "secret.yaml")
        .expect("k8s finding");
    assert_eq!(k8s["location"]["line"], real_lines + 1);
}

#[test]
fn a_corrupt_object_is_named_in_a_warning_and_the_scan_goes_on() {
    let r = repo();
    let d = r.path();
    let k = key();
    commit_file(d, "keys.env", &format!("K={k}\n"), "key");
    commit_file(d, "other.txt", "some other content\n", "other");
    let blob = git(d, &["rev-parse", "HEAD:other.txt"]);
    let obj = d.join(".git/objects").join(&blob[..2]).join(&blob[2..]);
    let mut perms = std::fs::metadata(&obj).expect("loose object").permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&obj, perms).expect("chmod");
    std::fs::write(&obj, b"this is not a zlib stream").expect("corrupt it");
    let o = offkey(d, &["scan", "--git", ".", "--format", "json"], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&blob), "the warning names the object: {err}");
    assert_eq!(
        o.status.code(),
        Some(1),
        "the key in the intact blob is still found: {err}"
    );
    assert_eq!(findings(&o).len(), 1);
}

#[test]
fn utf16_file_with_a_bom_finds_legacy_keys_too() {
    let dir = tempfile::tempdir().expect("tmp");
    let (k, l) = (key(), legacy());
    let text = format!("[offset]\r\napi_key = {k}\r\nOFFSET_LEGACY_KEY={l}\r\n");
    let bytes: Vec<u8> = [0xfe, 0xff]
        .into_iter()
        .chain(text.encode_utf16().flat_map(|u| u.to_be_bytes()))
        .collect();
    std::fs::write(dir.path().join("settings.ini"), bytes).expect("write");
    let o = offkey(dir.path(), &["scan", "--format", "json"], None);
    let f = findings(&o);
    assert_eq!(f.len(), 2, "{f:?}");
    let legacy_f = f
        .iter()
        .find(|x| x["kind"] == "legacy")
        .expect("legacy key found");
    assert_eq!(legacy_f["encoding"], "utf-16");
    assert_eq!(legacy_f["location"]["line"], 3);
    assert_eq!(legacy_f["location"]["column"], 19);
    assert_no_leak(&all_output(&o), &[&k, &l]);
}

#[test]
fn git_blobs_over_max_file_size_are_skipped_with_a_warning_not_an_error() {
    let r = repo();
    let d = r.path();
    let k = key();
    commit_file(
        d,
        "big.log",
        &format!("{}\nK={k}\n", "x".repeat(4096)),
        "big",
    );
    let o = offkey(d, &["scan", "--git", ".", "--max-file-size", "1024"], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("big.log") && err.contains("--max-file-size"),
        "{err}"
    );
    assert_eq!(o.status.code(), Some(0), "a skip is a warning: {err}");
    let o = offkey(d, &["scan", "--git", "."], None);
    assert_eq!(o.status.code(), Some(1));
}

/// A file whose size the file system gives as 0 (procfs) is still read: here the scanner's
/// own environment, holding a key, through `/proc/self/environ`.
#[cfg(target_os = "linux")]
#[test]
fn a_file_reported_empty_by_its_file_system_is_still_read() {
    let k = key();
    let dir = tempfile::tempdir().expect("tmp");
    let o = std::process::Command::new(offkey_bin())
        .current_dir(dir.path())
        .args(["scan", "/proc/self/environ", "--format", "json"])
        .env("OFFSET_API_KEY", &k)
        .output()
        .expect("offkey runs");
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(&k[k.len() - 4..]), "{out}");
    assert!(!out.contains(&k) && !String::from_utf8_lossy(&o.stderr).contains(&k));
}

/// Files from 256 KiB up are read in pieces (64 KiB) that overlap: a key at the start, at the
/// very end, or lying across a piece boundary is found once, with the line and column of the
/// whole file (also on a line that began pieces earlier).
#[test]
fn large_files_are_read_in_pieces_with_exact_lines_and_columns() {
    let dir = tempfile::tempdir().expect("tmp");
    let keys: Vec<String> = (0..5).map(|_| key()).collect();
    let more: Vec<String> = (0..40).map(|_| key()).collect();
    let mut text = String::new();
    let mut want = Vec::new(); // (key, line, column)
    let mut line = 1;
    let mut put = |text: &mut String, line: &mut usize, k: &str, before: &str| {
        text.push_str(before);
        let col = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        want.push((k.to_owned(), *line, col));
        text.push_str(k);
        text.push('\n');
        *line += 1 + before.matches('\n').count();
    };
    put(&mut text, &mut line, &keys[0], "KEY=");
    // Keys ending 0..40 bytes past a multiple of 64 KiB (wherever the reads are cut, some lie
    // across a cut).
    let filler = "log line with an offset of nothing in particular é\n";
    for (j, k) in more.iter().enumerate() {
        let at = (j + 1) * (64 << 10) - 40 + j;
        while text.len() + 60 < at {
            text.push_str(filler);
            line += 1;
        }
        while text.len() < at {
            text.push('.');
        }
        put(&mut text, &mut line, k, "");
    }
    put(&mut text, &mut line, &keys[1], "X=");
    // One long line (over two pieces) with a key near its end: its column counts the whole line.
    let long = "ü".repeat(700_000);
    put(&mut text, &mut line, &keys[2], &format!("{long} token="));
    while text.len() < 3 << 20 {
        text.push_str(filler);
        line += 1;
    }
    put(&mut text, &mut line, &keys[3], "");
    // A key within the last few bytes of the file, without a newline after it.
    text.push_str("tail ");
    let col = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    text.push_str(&keys[4]);
    want.push((keys[4].clone(), line, col));
    std::fs::write(dir.path().join("big.log"), &text).expect("write");
    let o = offkey(dir.path(), &["scan", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    let got: Vec<(String, usize, usize)> = findings(&o)
        .iter()
        .map(|f| {
            let k = want
                .iter()
                .find(|(k, _, _)| {
                    f["redacted"]
                        .as_str()
                        .is_some_and(|r| r.ends_with(&k[k.len() - 4..]))
                })
                .map(|w| w.0.clone())
                .unwrap_or_default();
            (
                k,
                f["location"]["line"].as_u64().unwrap_or(0) as usize,
                f["location"]["column"].as_u64().unwrap_or(0) as usize,
            )
        })
        .collect();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(got_sorted, want_sorted);
    let all: Vec<&str> = keys.iter().chain(&more).map(String::as_str).collect();
    assert_no_leak(&all_output(&o), &all);
}

/// A chat export larger than one read piece still names the conversation and message of each
/// key, for keys on both sides of a piece boundary; a large truncated export falls back to plain
/// findings with a warning.
#[test]
fn large_exports_are_indexed_across_pieces() {
    let dir = tempfile::tempdir().expect("tmp");
    let (k1, k2) = (key(), key());
    let mut msgs = Vec::new();
    let words = "more many from why other some so all up over also if many has it that are the ";
    for i in 0..3000 {
        let text = match i {
            5 => format!("here: {k1}"),
            2500 => format!("and \"quoted\" \\ {k2} here"),
            _ => format!("{i} {}", words.repeat(6)),
        };
        msgs.push(serde_json::json!({
            "uuid": format!("m{i}"), "sender": if i % 2 == 0 { "human" } else { "assistant" },
            "created_at": "2025-01-02T03:04:05Z", "text": text, "content": [], "attachments": []
        }));
    }
    let doc = serde_json::to_string_pretty(&serde_json::json!([
        { "uuid": "c0", "name": "Short one", "chat_messages": [] },
        { "uuid": "c1", "name": "Long \"talk\"", "chat_messages": msgs }
    ]))
    .expect("json");
    assert!(
        doc.find(&k2).is_some_and(|at| at > 3 << 19),
        "{}",
        doc.len()
    );
    std::fs::write(dir.path().join("conversations.json"), &doc).expect("write");
    let o = offkey(dir.path(), &["scan", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    let mut f = findings(&o);
    f.sort_by_key(|x| x["location"]["message"].as_u64());
    assert_eq!(f.len(), 2, "{f:?}");
    for (x, (msg, role)) in f.iter().zip([(5, "assistant"), (2500, "human")]) {
        assert_eq!(x["location"]["source"], "transcript");
        assert_eq!(x["location"]["conversation"], "Long \"talk\"");
        assert_eq!(x["location"]["message"], msg);
        assert_eq!(x["location"]["role"], role);
    }
    assert_no_leak(&all_output(&o), &[&k1, &k2]);

    std::fs::write(
        dir.path().join("conversations.json"),
        &doc[..doc.len() - 100],
    )
    .expect("write");
    let o = offkey(dir.path(), &["scan", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("scanned as plain text"));
    let f = findings(&o);
    assert_eq!(f.len(), 2);
    assert!(f.iter().all(|x| x["location"]["source"] == "file"));
}

/// A large ChatGPT export (read in pieces, its mappings indexed only where a key is): findings
/// name the conversation, the role and the message's place in conversation order, though the
/// mapping lists its nodes last to first.
#[test]
fn large_chatgpt_exports_keep_conversation_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let (k0, k1, k2) = (key(), key(), key());
    let node =
        |id: &str, role: Option<&str>, text: &str, parent: Option<&str>, child: Option<&str>| {
            let message = role.map(|r| {
                serde_json::json!({
                    "id": id, "author": { "role": r }, "create_time": 1_700_000_000.5,
                    "content": { "content_type": "text", "parts": [text] }
                })
            });
            serde_json::json!({
                "id": id, "message": message, "parent": parent,
                "children": child.map_or(vec![], |c| vec![c])
            })
        };
    // r → a → b (k1) → f0 … f1999 → z (k2), listed in the mapping from z back to r.
    let filler = "more many from why other some so all up over also if many has it that ".repeat(5);
    let mut chain: Vec<(String, Option<&str>, String)> = vec![
        ("r".into(), None, String::new()),
        ("a".into(), Some("user"), "hello".into()),
        ("b".into(), Some("assistant"), format!("use {k1} for now")),
    ];
    for i in 0..2000 {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        chain.push((format!("f{i}"), Some(role), format!("{i} {filler}")));
    }
    chain.push((
        "z".into(),
        Some("user"),
        format!("and \"this\" one \\ {k2}"),
    ));
    // Written by hand: serde_json's map would sort the keys.
    let mut mapping = Vec::new();
    for i in (0..chain.len()).rev() {
        let (id, role, text) = &chain[i];
        let parent = i.checked_sub(1).map(|p| chain[p].0.as_str());
        let child = chain.get(i + 1).map(|c| c.0.as_str());
        mapping.push(format!(
            "\"{id}\": {}",
            node(id, *role, text, parent, child)
        ));
    }
    let small = serde_json::json!({ "title": "Small", "mapping": {
        "s0": node("s0", Some("user"), &format!("key {k0}"), None, None)
    }});
    let doc = format!(
        "[{},\n{{\"title\": \"Big\", \"mapping\": {{{}}}}}]",
        small,
        mapping.join(",\n")
    );
    assert!(doc.len() > 1 << 20, "{}", doc.len());
    assert!(doc.find("\"z\"").expect("z") < doc.find("\"r\"").expect("r"));
    std::fs::write(dir.path().join("conversations.json"), &doc).expect("write");
    let o = offkey(dir.path(), &["scan", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    let f = findings(&o);
    assert_eq!(f.len(), 3, "{f:?}");
    let want = [
        (&k0, "Small", 0, "user"),
        (&k1, "Big", 1, "assistant"),
        (&k2, "Big", 2002, "user"),
    ];
    for (k, conv, msg, role) in want {
        let x = f
            .iter()
            .find(|x| {
                x["redacted"]
                    .as_str()
                    .is_some_and(|r| r.ends_with(&k[k.len() - 4..]))
            })
            .expect("the key is found");
        assert_eq!(x["location"]["source"], "transcript", "{x}");
        assert_eq!(x["location"]["conversation"], conv, "{x}");
        assert_eq!(x["location"]["message"], msg, "{x}");
        assert_eq!(x["location"]["role"], role, "{x}");
    }
    assert_no_leak(&all_output(&o), &[&k0, &k1, &k2]);
}

/// A conversation titled with a key (chat apps title a chat after its first message) is named
/// in the report with the key redacted.
#[test]
fn a_key_in_a_conversation_title_is_redacted_in_the_report() {
    let dir = tempfile::tempdir().expect("tmp");
    let (k1, k2) = (key(), key());
    let doc = serde_json::json!([{
        "uuid": "c1", "name": format!("why does {k1} fail"),
        "chat_messages": [{ "uuid": "m1", "sender": "human", "text": format!("it is {k2}") }]
    }]);
    std::fs::write(dir.path().join("conversations.json"), doc.to_string()).expect("write");
    for format in ["json", "text", "sarif"] {
        let o = offkey(dir.path(), &["scan", "--format", format], None);
        assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
        assert_no_leak(&all_output(&o), &[&k1, &k2]);
    }
    let o = offkey(dir.path(), &["scan", "--format", "json"], None);
    let f = findings(&o);
    let c = f
        .iter()
        .find(|x| x["location"]["message"] == 0)
        .expect("the message's key");
    assert_eq!(
        c["location"]["conversation"],
        format!("why does oc_live_…{} fail", &k1[k1.len() - 4..])
    );
}

/// Large archives and UTF-16 files, which must be whole to be decoded, are still scanned.
#[test]
fn large_gzip_and_utf16_files_are_still_decoded() {
    let dir = tempfile::tempdir().expect("tmp");
    let (k1, k2) = (key(), key());
    let mut plain = Vec::new();
    // Incompressible-ish filler so the gzip itself is over 256 KiB.
    let mut x = 7u64;
    while plain.len() < 600_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        plain.extend_from_slice(format!("{x:016x} ").as_bytes());
    }
    plain.extend_from_slice(format!("\nOFFSET_API_KEY={k1}\n").as_bytes());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).expect("gzip");
    let gz = gz.finish().expect("gzip");
    assert!(gz.len() > 256 * 1024);
    std::fs::write(dir.path().join("app.log.gz"), gz).expect("write");
    // A UTF-16 file of 720 KB, read in pieces and decoded as it is read: a current key (its
    // UTF-16 literal is in the prefilter) and a legacy one (found only in the decoded text),
    // each on its line of that text; a character outside the BMP before them.
    let k3 = legacy();
    let text = format!(
        "{}\u{1F511} key {k2}\noffset_api_key={k3}\n",
        "filler line\n".repeat(30_000)
    );
    let mut utf16 = vec![0xff, 0xfe];
    utf16.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    std::fs::write(dir.path().join("notes.txt"), utf16).expect("write");
    let o = offkey(dir.path(), &["scan", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    assert_no_leak(&all_output(&o), &[&k1, &k2, &k3]);
    let f = findings(&o);
    assert_eq!(f.len(), 3, "{f:?}");
    assert!(
        f.iter()
            .any(|x| x["location"]["path"] == "app.log.gz!app.log")
    );
    let at = |k: &str| {
        f.iter()
            .find(|x| x["sha256"] == offkey::key::sha256_hex(k.as_bytes()))
            .map(|x| {
                (
                    x["encoding"].clone(),
                    x["location"]["line"].clone(),
                    x["location"]["column"].clone(),
                )
            })
    };
    assert_eq!(at(&k2), Some(("utf-16".into(), 30_001.into(), 7.into())));
    assert_eq!(at(&k3), Some(("utf-16".into(), 30_002.into(), 16.into())));
}

/// Long base64 tokens (a Kubernetes Secret holding a whole `.env`, say) are found wherever the
/// reads of a large file are cut: a key deep inside a token is reported at the token's start,
/// so a cut inside the token must not lose it.
#[test]
fn large_files_keep_keys_deep_inside_base64_tokens_across_piece_cuts() {
    use base64::Engine;
    let dir = tempfile::tempdir().expect("tmp");
    let keys: Vec<String> = (0..8).map(|_| key()).collect();
    let mut text = String::new();
    for (i, k) in keys.iter().enumerate() {
        // ~40 KB tokens back to back: every cut between 64 KiB reads falls inside one, and each
        // key's encoded form is far (> 25 KB) from its token's start.
        let env = format!(
            "{}OFFSET_API_KEY={k}\n",
            format!("SETTING_{i}=value\n").repeat(1900)
        );
        let token = base64::engine::general_purpose::STANDARD.encode(env);
        text.push_str(&format!("  env{i}.b64: {token}\n"));
    }
    assert!(text.len() > 300_000);
    std::fs::write(dir.path().join("secret.yaml"), &text).expect("write");
    let o = offkey(dir.path(), &["scan", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    let f = findings(&o);
    assert_eq!(f.len(), keys.len(), "{f:?}");
    for (i, x) in f.iter().enumerate() {
        assert_eq!(x["encoding"], "base64");
        assert_eq!(x["location"]["line"], i + 1);
    }
    let all: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert_no_leak(&all_output(&o), &all);
}

#[test]
fn keys_in_and_after_a_base64_token_longer_than_a_read_are_found_once() {
    use base64::Engine;
    let dir = tempfile::tempdir().expect("tmp");
    let keys: Vec<String> = (0..4).map(|_| key()).collect();
    let filler = |n: usize| "lorem ipsum dolor sit amet\n".repeat(n);
    // One token of about 900 KB (longer than the 128 KiB a read may grow to), keys at three
    // depths; then a line with a 40 KB token, whose key is reported at that token's start.
    let mut big = String::new();
    for k in &keys[..3] {
        big.push_str(&filler(8_000));
        big.push_str(&format!("OFFSET_API_KEY={k}\n"));
    }
    big.push_str(&filler(8_000));
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let small = format!("{}OFFSET_API_KEY={}\n", filler(1_000), keys[3]);
    let text = format!("  a: {}\n  b: {}\n", b64(&big), b64(&small));
    assert!(text.len() > 900_000);
    std::fs::write(dir.path().join("blob.yaml"), &text).expect("write");
    let o = offkey(dir.path(), &["scan", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    let all: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert_no_leak(&all_output(&o), &all);
    let f = findings(&o);
    assert_eq!(f.len(), keys.len(), "{f:?}");
    for (i, k) in keys.iter().enumerate() {
        let sha = offkey::key::sha256_hex(k.as_bytes());
        let x: Vec<_> = f.iter().filter(|x| x["sha256"] == sha).collect();
        assert_eq!(x.len(), 1, "key {i}: {f:?}");
        assert_eq!(x[0]["encoding"], "base64");
        assert_eq!(x[0]["location"]["line"], if i < 3 { 1 } else { 2 });
    }
    let last = f
        .iter()
        .find(|x| x["sha256"] == offkey::key::sha256_hex(keys[3].as_bytes()))
        .expect("last key");
    assert_eq!(
        last["location"]["column"], 6,
        "reported at its token's start"
    );
}

/// `offkey:allow` at the start of a line longer than a read piece (minified code) still
/// suppresses a key at its end; the same line without the marker is reported.
#[test]
fn allow_comment_on_a_line_longer_than_a_read_piece() {
    let dir = tempfile::tempdir().expect("tmp");
    let (k1, k2) = (key(), key());
    let filler = "a=1;".repeat(100_000);
    let text = format!("/* offkey:allow */ {filler} k=\"{k1}\";\n{filler} k=\"{k2}\";\n");
    std::fs::write(dir.path().join("bundle.min.js"), &text).expect("write");
    let o = offkey(dir.path(), &["scan", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    let f = findings(&o);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["location"]["line"], 2);
    assert_eq!(
        f[0]["redacted"]
            .as_str()
            .map(|r| r.ends_with(&k2[k2.len() - 4..])),
        Some(true)
    );
    assert_no_leak(&all_output(&o), &[&k1, &k2]);
}
