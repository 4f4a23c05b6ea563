//! `scan --git` over packed histories, built here with real git (`git gc --aggressive`, `git
//! repack`) so that blobs are stored as deltas, in several packs, loose, on unmerged branches,
//! corrupt or missing: each key is found once per path, with the commit that introduced it.

use std::path::Path;

use crate::util::*;

/// Lines of filler that make a delta worth git's while.
fn filler(tag: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!("{tag} line {i}: lorem ipsum dolor sit amet, consectetur adipiscing\n"))
        .collect()
}

/// The blob ids stored as deltas in the repository's packs (`git verify-pack -v`: a delta's line
/// has seven columns, the last two its depth and its base).
fn deltas(d: &Path) -> Vec<String> {
    let pack_dir = d.join(".git/objects/pack");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&pack_dir).expect("pack dir") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "idx") {
            let v = git(d, &["verify-pack", "-v", p.to_str().expect("utf-8 path")]);
            out.extend(v.lines().filter_map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                (cols.len() == 7 && cols[1] == "blob").then(|| cols[0].to_owned())
            }));
        }
    }
    out
}

fn packs(d: &Path) -> usize {
    std::fs::read_dir(d.join(".git/objects/pack"))
        .expect("pack dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "pack"))
        })
        .count()
}

fn scan(d: &Path) -> (std::process::Output, Vec<serde_json::Value>) {
    let o = offkey(d, &["scan", "--git", ".", "--format", "json"], None);
    let f = findings(&o);
    (o, f)
}

#[test]
fn a_key_made_of_copied_and_inserted_bytes_of_a_delta_is_found() {
    let r = repo();
    let d = r.path();
    let k = key();
    // v1 holds the key's first 24 characters and a placeholder; v2 replaces the placeholder
    // with the rest: in a delta between them the key is part copy, part insert.
    let (head, tail) = (filler("head", 120), filler("tail", 120));
    let v1 = format!("{head}OFFSET_API_KEY={}PLACEHOLDER\n{tail}", &k[..24]);
    let v2 = format!("{head}OFFSET_API_KEY={k}\n{tail}");
    commit_file(d, "settings.env", &v1, "settings");
    let intro = commit_file(d, "settings.env", &v2, "fill in the key");
    commit_file(
        d,
        "settings.env",
        &format!("{head}{tail}"),
        "remove the key",
    );
    git(d, &["gc", "-q", "--aggressive", "--prune=now"]);
    assert!(
        !deltas(d).is_empty(),
        "gc made no deltas: the test tests nothing"
    );

    let (o, f) = scan(d);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    assert_no_leak(&all_output(&o), &[&k]);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["location"]["path"], "settings.env");
    assert_eq!(f[0]["location"]["commit"], intro.as_str());
    assert_eq!(f[0]["location"]["line"], 121);
}

#[test]
fn a_key_joined_from_two_copies_of_a_delta_is_found() {
    let r = repo();
    let d = r.path();
    let k = key();
    // v1 has the key cut in two by a block of lines; v2 drops the block, so a delta from
    // either to the other joins two copied runs into the key.
    let (head, middle, tail) = (filler("head", 80), filler("middle", 60), filler("tail", 80));
    let v1 = format!(
        "{head}OFFSET_API_KEY={}\n{middle}{}\n{tail}",
        &k[..20],
        &k[20..]
    );
    let v2 = format!("{head}OFFSET_API_KEY={k}\n{tail}");
    commit_file(d, "app.cfg", &v1, "config");
    let intro = commit_file(d, "app.cfg", &v2, "tidy");
    commit_file(d, "app.cfg", &format!("{head}{middle}{tail}"), "rotate");
    git(d, &["gc", "-q", "--aggressive", "--prune=now"]);
    assert!(
        !deltas(d).is_empty(),
        "gc made no deltas: the test tests nothing"
    );

    let (o, f) = scan(d);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    assert_no_leak(&all_output(&o), &[&k]);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["location"]["commit"], intro.as_str());
    assert_eq!(f[0]["location"]["line"], 81);
}

#[test]
fn keys_in_two_packs_and_a_loose_object_are_all_found() {
    let r = repo();
    let d = r.path();
    let (k1, k2, k3) = (key(), key(), key());
    let body = filler("config", 100);
    let c1 = commit_file(d, "a.env", &format!("{body}K={k1}\n"), "one");
    git(d, &["repack", "-q", "-a", "-d"]);
    // The second version of a.env, packed on its own: its base is in the first pack or it is
    // whole in the second (git keeps packs self-contained), either way a second pack.
    let c2 = commit_file(d, "a.env", &format!("{body}K={k2}\nMORE=1\n"), "two");
    git(d, &["repack", "-q", "-d"]);
    assert_eq!(packs(d), 2, "two packs expected");
    let c3 = commit_file(d, "b.env", &format!("K={k3}\n"), "three");
    let loose = git(d, &["rev-parse", "HEAD:b.env"]);
    assert!(
        d.join(".git/objects")
            .join(&loose[..2])
            .join(&loose[2..])
            .is_file(),
        "b.env's blob should be a loose object"
    );

    let (o, f) = scan(d);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    assert_no_leak(&all_output(&o), &[&k1, &k2, &k3]);
    let commit_of = |path: &str, line: u64| -> Vec<String> {
        let mut c: Vec<String> = f
            .iter()
            .filter(|x| x["location"]["path"] == path && x["location"]["line"] == line)
            .map(|x| x["location"]["commit"].as_str().unwrap_or("").to_owned())
            .collect();
        c.sort();
        c
    };
    assert_eq!(commit_of("a.env", 101), {
        let mut v = vec![c1, c2];
        v.sort();
        v
    });
    assert_eq!(commit_of("b.env", 1), vec![c3]);
    assert_eq!(f.len(), 3, "{f:?}");
}

#[test]
fn a_key_on_an_unmerged_branch_of_a_packed_history_is_found() {
    let r = repo();
    let d = r.path();
    let k = key();
    let body = filler("main", 100);
    commit_file(d, "service.yaml", &body, "init");
    git(d, &["checkout", "-q", "-b", "experiment"]);
    let side = commit_file(
        d,
        "service.yaml",
        &format!("{body}token: {k}\n"),
        "try a key",
    );
    git(d, &["checkout", "-q", "main"]);
    commit_file(d, "service.yaml", &format!("{body}replicas: 3\n"), "scale");
    git(d, &["gc", "-q", "--aggressive", "--prune=now"]);

    let (o, f) = scan(d);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    assert_no_leak(&all_output(&o), &[&k]);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["location"]["commit"], side.as_str());
    assert_eq!(f[0]["location"]["line"], 101);
}

#[test]
fn a_corrupt_packed_object_is_named_in_a_warning_and_the_scan_goes_on() {
    let r = repo();
    let d = r.path();
    let k = key();
    commit_file(d, "keys.env", &format!("K={k}\n"), "key");
    commit_file(d, "other.txt", &filler("other", 50), "other");
    git(d, &["gc", "-q", "--prune=now"]);
    let blob = git(d, &["rev-parse", "HEAD:other.txt"]);
    // Where other.txt's blob sits in the pack (`verify-pack -v`: id, type, size, size in
    // pack, offset), and scribble over the middle of its compressed bytes.
    let idx = std::fs::read_dir(d.join(".git/objects/pack"))
        .expect("pack dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|x| x == "idx"))
        .expect("a pack index");
    let v = git(d, &["verify-pack", "-v", idx.to_str().expect("utf-8 path")]);
    let cols: Vec<u64> = v
        .lines()
        .find(|l| l.starts_with(&blob))
        .expect("the blob is packed")
        .split_whitespace()
        .skip(3)
        .take(2)
        .map(|c| c.parse().expect("a number"))
        .collect();
    let (in_pack, offset) = (cols[0], cols[1]);
    let pack = idx.with_extension("pack");
    let mut perms = std::fs::metadata(&pack).expect("pack").permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&pack, perms).expect("chmod");
    let mut bytes = std::fs::read(&pack).expect("read pack");
    let from = (offset + in_pack / 3) as usize;
    for b in &mut bytes[from..from + (in_pack / 3) as usize] {
        *b ^= 0x5a;
    }
    std::fs::write(&pack, bytes).expect("corrupt it");

    let (o, f) = scan(d);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&blob), "the warning names the object: {err}");
    assert_eq!(o.status.code(), Some(1), "the intact key is found: {err}");
    assert_no_leak(&all_output(&o), &[&k]);
    assert_eq!(f.len(), 1, "{f:?}");
}

#[test]
fn a_partial_clone_warns_about_missing_blobs_and_scans_the_rest() {
    let src = repo();
    let s = src.path();
    let (old, current) = (key(), key());
    commit_file(s, "old.env", &format!("K={old}\n"), "old key");
    std::fs::remove_file(s.join("old.env")).expect("rm");
    git(s, &["add", "-A"]);
    git(s, &["commit", "-q", "-m", "drop it"]);
    let intro = commit_file(s, "now.env", &format!("K={current}\n"), "current key");
    git(s, &["config", "uploadpack.allowFilter", "true"]);
    let dst = tempfile::tempdir().expect("temp dir");
    let url = format!("file://{}", s.display());
    let clone = dst.path().join("clone");
    git(
        dst.path(),
        &[
            "clone",
            "-q",
            "--filter=blob:none",
            &url,
            clone.to_str().expect("utf-8 path"),
        ],
    );
    let missing = git(s, &["rev-parse", "HEAD~2:old.env"]);
    // Listed as missing (`?id`) without fetching it from the promisor remote.
    let listed = git(
        &clone,
        &["rev-list", "--objects", "--all", "--missing=print"],
    );
    assert!(
        listed.lines().any(|l| l == format!("?{missing}")),
        "the clone should lack the old blob: {listed}"
    );
    let o = offkey(&clone, &["scan", "--git", ".", "--format", "json"], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_no_leak(&all_output(&o), &[&old, &current]);
    assert!(err.contains(&missing), "the missing blob is named: {err}");
    let f = findings(&o);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["location"]["path"], "now.env");
    assert_eq!(f[0]["location"]["commit"], intro.as_str());
}

/// A repository whose older history is packed and whose newest commit (holding `new_key`) is
/// loose; `old_key` is in the pack. Answers the pack file and the newest commit.
fn packed_then_loose(d: &Path, old_key: &str, new_key: &str) -> (std::path::PathBuf, String) {
    for i in 0..20 {
        commit_file(
            d,
            &format!("f{i}.txt"),
            &filler(&format!("f{i}"), 60),
            "filler",
        );
    }
    commit_file(d, "old.env", &format!("K={old_key}\n"), "old key");
    git(d, &["gc", "-q", "--prune=now"]);
    let newest = commit_file(d, "new.env", &format!("K={new_key}\n"), "new key");
    let pack = std::fs::read_dir(d.join(".git/objects/pack"))
        .expect("pack dir")
        .map(|e| e.expect("entry").path())
        .find(|p| p.extension().is_some_and(|x| x == "pack"))
        .expect("a pack");
    let mut perms = std::fs::metadata(&pack).expect("pack").permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&pack, perms).expect("chmod");
    (pack, newest)
}

/// The scan of a repository whose pack is damaged: the loose newest commit's key is still
/// found, the damage is a warning naming what could not be read, and nothing leaks.
fn assert_scans_what_is_readable(d: &Path, keys: &[&str], newest: &str) {
    let (o, f) = scan(d);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_no_leak(&all_output(&o), keys);
    assert!(
        err.contains("offkey: warning:"),
        "the damage is reported: {err}"
    );
    let found: Vec<_> = f
        .iter()
        .filter(|x| x["location"]["path"] == "new.env")
        .collect();
    assert_eq!(found.len(), 1, "the loose key is found: {f:?}; {err}");
    assert_eq!(found[0]["location"]["commit"], newest);
    assert_eq!(o.status.code(), Some(1), "{err}");
}

#[test]
fn a_truncated_pack_is_a_warning_and_what_can_be_read_is_scanned() {
    let r = repo();
    let d = r.path();
    let (old, new) = (key(), key());
    let (pack, newest) = packed_then_loose(d, &old, &new);
    let len = std::fs::metadata(&pack).expect("pack").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&pack)
        .and_then(|f| f.set_len(len / 2))
        .expect("truncate the pack");
    assert_scans_what_is_readable(d, &[&old, &new], &newest);
}

#[test]
fn a_missing_pack_is_a_warning_and_what_can_be_read_is_scanned() {
    let r = repo();
    let d = r.path();
    let (old, new) = (key(), key());
    let (pack, newest) = packed_then_loose(d, &old, &new);
    std::fs::remove_file(&pack).expect("remove the pack");
    std::fs::remove_file(pack.with_extension("idx")).expect("remove its index");
    assert_scans_what_is_readable(d, &[&old, &new], &newest);
}

#[test]
fn a_history_with_nothing_readable_behind_the_tips_is_an_error_not_clean() {
    let r = repo();
    let d = r.path();
    let (old, new) = (key(), key());
    let (pack, _) = packed_then_loose(d, &old, &new);
    // The loose commit's key gone too: nothing to find, so the damage decides the exit code.
    let blob = git(d, &["rev-parse", "HEAD:new.env"]);
    std::fs::remove_file(d.join(".git/objects").join(&blob[..2]).join(&blob[2..]))
        .expect("remove the loose blob");
    std::fs::remove_file(&pack).expect("remove the pack");
    let (o, f) = scan(d);
    assert!(f.is_empty(), "{f:?}");
    assert_eq!(
        o.status.code(),
        Some(2),
        "an unreadable history is not a clean one: {}",
        all_output(&o)
    );
}

/// The trees of a packed history are mostly deltas of other trees: the pack walk keeps such a
/// tree as its delta (what it copies from its base, what it inserts) and derives its entries
/// when it attributes. A large flat folder changed one file at a time, packed aggressively:
/// keys in old versions, a blob copied to a new path in a later commit (an entry the delta
/// inserts, pointing at a blob the base tree's base holds) and a rename (an entry copied
/// under a new name) are all attributed to the right path and commit, and the summary counts
/// every blob of the history once.
#[test]
fn keys_behind_delta_trees_of_a_flat_folder_are_attributed_at_every_path() {
    let r = repo();
    let d = r.path();
    let (k1, k2) = (key(), key());
    for i in 0..60 {
        let extra = if i == 3 {
            format!("K={k2}\n")
        } else {
            String::new()
        };
        std::fs::create_dir_all(d.join("conf")).expect("mkdir");
        std::fs::write(
            d.join(format!("conf/f{i:02}.env")),
            format!("{}{extra}", filler(&format!("f{i}"), 3)),
        )
        .expect("write");
    }
    git(d, &["add", "-A"]);
    git(d, &["commit", "-q", "-m", "sixty files"]);
    let first = git(d, &["rev-parse", "HEAD"]);
    let with_k1 = format!("{}K={k1}\n", filler("f7 v2", 3));
    let mut intro_k1 = String::new();
    let mut copied_k1 = String::new();
    let mut renamed_k2 = String::new();
    for c in 2..=30 {
        // Never f03 or f07: their versions are the ones the test follows.
        let i = match (c * 7) % 60 {
            3 | 7 => 50,
            i => i,
        };
        let msg = format!("change {c}");
        match c {
            10 => intro_k1 = commit_file(d, "conf/f07.env", &with_k1, &msg),
            11 => {
                commit_file(d, "conf/f07.env", &filler("f7 v3", 3), &msg);
            }
            20 => copied_k1 = commit_file(d, "conf/copy.env", &with_k1, &msg),
            25 => {
                std::fs::rename(d.join("conf/f03.env"), d.join("conf/g03.env")).expect("rename");
                git(d, &["add", "-A"]);
                git(d, &["commit", "-q", "-m", &msg]);
                renamed_k2 = git(d, &["rev-parse", "HEAD"]);
            }
            _ => {
                commit_file(
                    d,
                    &format!("conf/f{i:02}.env"),
                    &filler(&format!("f{i} v{c}"), 3),
                    &msg,
                );
            }
        }
    }
    git(d, &["gc", "-q", "--aggressive", "--prune=now"]);
    let tree_deltas = {
        let pack_dir = d.join(".git/objects/pack");
        let mut n = 0;
        for e in std::fs::read_dir(&pack_dir).expect("pack dir") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "idx") {
                let v = git(d, &["verify-pack", "-v", p.to_str().expect("utf-8 path")]);
                n += v
                    .lines()
                    .filter(|l| {
                        let cols: Vec<&str> = l.split_whitespace().collect();
                        cols.len() == 7 && cols[1] == "tree"
                    })
                    .count();
            }
        }
        n
    };
    assert!(
        tree_deltas >= 10,
        "gc stored {tree_deltas} trees as deltas: the test tests little"
    );

    // Every tree's entries were derived from its delta (none left unknown, which would be
    // read again with libgit2), and the tree of the commit that introduced k1 holds it.
    let walk = offkey::source::walk_packs(&d.join(".git/objects"), 1 << 20, 2, || (), |_, _| false);
    assert!(walk.graph_complete);
    let unknown = walk.graph.dirty_trees(|_| false);
    assert!(unknown.is_empty(), "{} trees not derived", unknown.len());
    let key_of = |rev: &str| {
        let id = git(d, &["rev-parse", rev]);
        let bytes: Vec<u8> = (0..20)
            .map(|i| u8::from_str_radix(&id[2 * i..2 * i + 2], 16).expect("hex"))
            .collect();
        offkey::source::object_key(&bytes)
    };
    let k1_blob = key_of(&format!("{intro_k1}:conf/f07.env"));
    let dirty = walk.graph.dirty_trees(|b| b == k1_blob);
    assert!(dirty.contains(&key_of(&format!("{intro_k1}^{{tree}}"))));
    assert!(dirty.contains(&key_of(&format!("{copied_k1}:conf"))));
    assert!(!dirty.contains(&key_of(&format!("{first}^{{tree}}"))));

    let (o, f) = scan(d);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    assert_no_leak(&all_output(&o), &[&k1, &k2]);
    let mut got: Vec<(String, String)> = f
        .iter()
        .map(|x| {
            (
                x["location"]["path"].as_str().unwrap_or("").to_owned(),
                x["location"]["commit"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    got.sort();
    let mut want = vec![
        ("conf/copy.env".to_owned(), copied_k1),
        ("conf/f03.env".to_owned(), first),
        ("conf/f07.env".to_owned(), intro_k1),
        ("conf/g03.env".to_owned(), renamed_k2),
    ];
    want.sort();
    assert_eq!(got, want, "{f:?}");
    // Every blob of the history, once: what git lists.
    let listed = git(d, &["rev-list", "--objects", "--all"]);
    let ids: Vec<&str> = listed.lines().filter_map(|l| l.split(' ').next()).collect();
    let types = {
        let mut c = std::process::Command::new("git");
        c.current_dir(d)
            .args(["cat-file", "--batch-check=%(objecttype)"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        let mut child = c.spawn().expect("git cat-file");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin
                .write_all(ids.join("\n").as_bytes())
                .expect("write ids");
            stdin.write_all(b"\n").expect("write ids");
        }
        String::from_utf8(child.wait_with_output().expect("git cat-file").stdout).expect("utf-8")
    };
    let blobs = types.lines().filter(|t| *t == "blob").count();
    assert_eq!(
        report(&o)["summary"]["files"].as_u64(),
        Some(blobs as u64),
        "every blob once"
    );
}
