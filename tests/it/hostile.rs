//! Hostile and broken input for the scanner, generated at test time, each small enough to run in
//! seconds: sockets, links out of the root, folders 1,000 deep, JSON and other formats nested
//! 10,000 deep, BOM-less UTF-16, a PDF whose object graph is a cycle, corrupt zips and a nest of
//! zips. For each: no crash, no hang (runs are killed after 60 s), a warning naming the path
//! where something was skipped, and every key elsewhere still found. The big cases (a 2 GB line,
//! a million files, 500 MB exports, a 30,000² image) are in bench/hostile.sh.
//! Also: a file deleted between walk and read, character devices in the tree, invalid UTF-8,
//! unreadable files and folders (the scan run as `nobody`).
//! (Symlink loops, FIFOs, zip bombs and cut gzip are in scan.rs and sources.rs.)

use std::collections::BTreeSet;
use std::io::Write;

use crate::tree::{Run, Tree, current_key, offkey, sha256};

fn scan(tree: &Tree) -> Run {
    let run = offkey(tree, &["scan", ".", "--format", "json"]);
    assert!(
        run.status.is_some(),
        "the scan hung or was killed: {}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("panicked") && !run.stderr.contains("stack overflow"),
        "the scan crashed: {}",
        run.stderr
    );
    assert!(
        matches!(run.status, Some(0..=2)),
        "the scan ended abnormally ({:?}): {}",
        run.status,
        run.stderr
    );
    run
}

/// Paths (relative) and hashes of the findings.
fn found(run: &Run) -> BTreeSet<(String, String)> {
    run.findings()
        .iter()
        .map(|f| {
            (
                f["location"]["path"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                f["sha256"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// A tree with a key in `sentinel.env`, which every scan below must still find.
fn tree_with_sentinel() -> (Tree, String) {
    let tree = Tree::new();
    let key = current_key();
    tree.file("sentinel.env", format!("OFFSET_KEY={key}\n"));
    (tree, key)
}

fn assert_found(run: &Run, path: &str, key: &str) {
    assert!(
        found(run).contains(&(path.to_owned(), sha256(key))),
        "{path}: key not found; findings {:?}\nstderr: {}",
        found(run),
        run.stderr
    );
}

#[test]
fn a_unix_socket_in_the_tree_is_passed_over_and_the_rest_is_scanned() {
    let (tree, key) = tree_with_sentinel();
    let _listener =
        std::os::unix::net::UnixListener::bind(tree.path("app.sock")).expect("bind socket");
    let run = scan(&tree);
    assert_eq!(run.status, Some(1), "{}", run.stderr);
    assert_found(&run, "sentinel.env", &key);
    // Named explicitly, it is refused with its name, not read.
    let run = offkey(
        &tree,
        &["scan", "app.sock", "sentinel.env", "--format", "json"],
    );
    assert!(run.status.is_some(), "hung on a socket: {}", run.stderr);
    assert_found(&run, "sentinel.env", &key);
}

#[test]
fn links_out_of_the_root_are_not_followed() {
    let (tree, key) = tree_with_sentinel();
    let outside = tempfile::tempdir().expect("temp dir");
    let secret = current_key();
    std::fs::write(
        outside.path().join("elsewhere.env"),
        format!("K={secret}\n"),
    )
    .expect("write");
    std::os::unix::fs::symlink(outside.path(), tree.path("out")).expect("symlink dir");
    std::os::unix::fs::symlink(outside.path().join("elsewhere.env"), tree.path("out.env"))
        .expect("symlink file");
    let run = scan(&tree);
    assert_found(&run, "sentinel.env", &key);
    assert!(
        !found(&run).iter().any(|(_, h)| *h == sha256(&secret)),
        "a link out of the root was followed: {:?}",
        found(&run)
    );
}

#[test]
fn folders_a_thousand_deep_are_walked_to_the_bottom() {
    let (tree, key) = tree_with_sentinel();
    let deep_key = current_key();
    // 1,000 levels of `dN/`: about 3,000 characters, under PATH_MAX.
    let rel: String = (0..1000).map(|i| format!("d{}/", i % 10)).collect();
    tree.file(&format!("{rel}deep.env"), format!("K={deep_key}\n"));
    let run = scan(&tree);
    assert_eq!(run.status, Some(1), "{}", run.stderr);
    assert_found(&run, "sentinel.env", &key);
    assert!(
        found(&run).iter().any(|(_, h)| *h == sha256(&deep_key)),
        "the key 1,000 folders down was not found ({} chars of path): {}",
        rel.len(),
        run.stderr
    );
}

/// `[[[[…{"k": KEY}…]]]]`, `depth` deep.
fn nested_json(depth: usize, key: &str) -> String {
    let mut s = String::with_capacity(depth * 2 + 64);
    s.push_str(&"[".repeat(depth));
    s.push_str(&format!("{{\"api_key\": \"{key}\"}}"));
    s.push_str(&"]".repeat(depth));
    s
}

#[test]
fn json_nested_ten_thousand_deep_does_not_crash_and_its_key_is_found() {
    let (tree, key) = tree_with_sentinel();
    let deep = current_key();
    tree.file("deep.json", nested_json(10_000, &deep));
    let jsonl_key = current_key();
    tree.file(
        "deep.jsonl",
        format!("{}\n{}\n", nested_json(10_000, &jsonl_key), "{\"a\": 1}"),
    );
    // A ChatGPT-style export whose message content nests without end.
    let export_key = current_key();
    let export = format!(
        "[{{\"title\": \"t\", \"mapping\": {{\"n\": {{\"message\": {{\"content\": {{\"parts\": [{}]}}}}}}}}}}]",
        nested_json(10_000, &export_key)
    );
    tree.file("conversations.json", export);
    let run = scan(&tree);
    assert_found(&run, "sentinel.env", &key);
    for (path, k) in [
        ("deep.json", &deep),
        ("deep.jsonl", &jsonl_key),
        ("conversations.json", &export_key),
    ] {
        assert!(
            found(&run)
                .iter()
                .any(|(p, h)| p == path && *h == sha256(k)),
            "{path}: the key inside 10,000 levels was not found: {:?}\n{}",
            found(&run),
            run.stderr
        );
    }
}

#[test]
fn bom_less_utf16_is_decoded() {
    let (tree, key) = tree_with_sentinel();
    let le = current_key();
    let be = current_key();
    let text = |k: &str| format!("# settings written by a Windows tool\r\nOFFSET_KEY={k}\r\n");
    let le_bytes: Vec<u8> = text(&le)
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let be_bytes: Vec<u8> = text(&be)
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    tree.file("le.txt", le_bytes);
    tree.file("be.txt", be_bytes);
    let run = scan(&tree);
    assert_found(&run, "sentinel.env", &key);
    assert_found(&run, "le.txt", &le);
    assert_found(&run, "be.txt", &be);
}

/// A PDF whose page tree is a cycle (the Pages node is its own kid, and a page's parent is a
/// page), with one honest page after it holding a key in a text operator.
fn cyclic_pdf(key: &str) -> Vec<u8> {
    let content = format!("BT /F1 12 Tf 72 712 Td (OFFSET_KEY={key}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [2 0 R 3 0 R 4 0 R] /Count 3 /Parent 2 0 R >>".to_owned(),
        "<< /Type /Page /Parent 3 0 R /Contents 5 0 R /Resources << /Font << /F1 6 0 R >> >> >>"
            .to_owned(),
        "<< /Type /Page /Parent 2 0 R /Contents 5 0 R /Resources << /Font << /F1 6 0 R >> >> >>"
            .to_owned(),
        format!(
            "<< /Length {} >>\nstream\n{content}\nendstream",
            content.len()
        ),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_owned(),
    ];
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        write!(pdf, "{} 0 obj\n{o}\nendobj\n", i + 1).expect("write");
    }
    let xref = pdf.len();
    write!(pdf, "xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).expect("write");
    for off in offsets {
        writeln!(pdf, "{off:010} 00000 n ").expect("write");
    }
    write!(
        pdf,
        "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    )
    .expect("write");
    pdf
}

#[test]
fn a_pdf_with_a_cyclic_page_tree_does_not_hang() {
    let (tree, key) = tree_with_sentinel();
    let in_pdf = current_key();
    tree.file("cycle.pdf", cyclic_pdf(&in_pdf));
    let run = scan(&tree);
    assert_found(&run, "sentinel.env", &key);
    // The key is in the one real content stream: found, or the file is named in a warning.
    let pdf_found = found(&run).iter().any(|(_, h)| *h == sha256(&in_pdf));
    assert!(
        pdf_found || run.stderr.contains("cycle.pdf"),
        "cycle.pdf: neither its key nor a warning naming it: {}",
        run.stderr
    );
}

fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in members {
        w.start_file(
            *name,
            zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated),
        )
        .expect("start member");
        w.write_all(data).expect("member");
    }
    w.finish().expect("finish zip").into_inner()
}

#[test]
fn corrupt_zips_are_named_in_a_warning_and_the_scan_goes_on() {
    let (tree, key) = tree_with_sentinel();
    let inner = current_key();
    let good = zip_of(&[("a.env", format!("K={inner}\n").as_bytes())]);
    // Central directory overwritten with garbage.
    let mut cd = good.clone();
    let eocd = cd.len() - 22;
    let cd_start =
        u32::from_le_bytes(cd[eocd + 16..eocd + 20].try_into().expect("4 bytes")) as usize;
    for b in &mut cd[cd_start..eocd] {
        *b ^= 0x5a;
    }
    tree.file("garbled-directory.zip", cd);
    // Cut in half.
    tree.file("cut.zip", &good[..good.len() / 2]);
    // The compressed data of the member flipped: a deflate or CRC error.
    let mut data = good.clone();
    for b in &mut data[40..60] {
        *b = !*b;
    }
    tree.file("bad-data.zip", data);
    // Only a zip's signature.
    tree.file("empty.zip", b"PK\x03\x04");
    let run = scan(&tree);
    assert_found(&run, "sentinel.env", &key);
    for name in ["garbled-directory.zip", "bad-data.zip", "empty.zip"] {
        assert!(
            run.stderr.contains(name),
            "{name}: no warning naming it: {}",
            run.stderr
        );
    }
    assert!(
        !run.stderr.contains(&inner),
        "a key inside a corrupt zip reached stderr"
    );
}

#[test]
fn zips_nested_twenty_deep_stop_at_the_depth_limit_with_a_warning() {
    let (tree, key) = tree_with_sentinel();
    let shallow = current_key();
    let bottom = current_key();
    let mut z = zip_of(&[("bottom.env", format!("K={bottom}\n").as_bytes())]);
    for i in 0..20 {
        let name = format!("level{i}.zip");
        if i == 0 {
            z = zip_of(&[
                (&name, &z),
                ("shallow.env", format!("K={shallow}\n").as_bytes()),
            ]);
        } else {
            z = zip_of(&[(&name, &z)]);
        }
    }
    tree.file("nest.zip", z);
    let run = scan(&tree);
    assert_found(&run, "sentinel.env", &key);
    let hashes: BTreeSet<String> = found(&run).into_iter().map(|(_, h)| h).collect();
    assert!(
        hashes.contains(&sha256(&shallow)) || run.stderr.contains("nest.zip"),
        "neither the nested key nor a warning naming nest.zip: {}",
        run.stderr
    );
    if !hashes.contains(&sha256(&bottom)) {
        assert!(
            run.stderr.contains("nest.zip"),
            "the bottom of the nest was not reached and no warning says so: {}",
            run.stderr
        );
    }
}

#[test]
fn rtf_xml_and_mime_nested_ten_thousand_deep_do_not_crash() {
    let (tree, key) = tree_with_sentinel();
    let rtf_key = current_key();
    tree.file(
        "deep.rtf",
        format!(
            "{{\\rtf1\\ansi {}OFFSET_KEY={rtf_key}{}}}",
            "{".repeat(10_000),
            "}".repeat(10_000)
        ),
    );
    let xml_key = current_key();
    tree.file(
        "deep.xml",
        format!(
            "<?xml version=\"1.0\"?>{}<key>{xml_key}</key>{}",
            "<a>".repeat(10_000),
            "</a>".repeat(10_000)
        ),
    );
    let mime_key = current_key();
    let mut mime = String::from("From: a@example.com\r\nSubject: deep\r\nMIME-Version: 1.0\r\n");
    for i in 0..2_000 {
        mime.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    mime.push_str(&format!(
        "Content-Type: text/plain\r\n\r\nOFFSET_KEY={mime_key}\r\n"
    ));
    for i in (0..2_000).rev() {
        mime.push_str(&format!("--b{i}--\r\n"));
    }
    tree.file("deep.eml", mime);
    let run = scan(&tree);
    assert_found(&run, "sentinel.env", &key);
    for (path, k) in [
        ("deep.rtf", &rtf_key),
        ("deep.xml", &xml_key),
        ("deep.eml", &mime_key),
    ] {
        let hit = found(&run)
            .iter()
            .any(|(p, h)| p == path && *h == sha256(k));
        assert!(
            hit || run.stderr.contains(path),
            "{path}: neither its key nor a warning naming it: {}",
            run.stderr
        );
    }
}

/// A file listed by the walk and gone when it is opened: the walk reads a folder's entries
/// whole before it visits any of them (one thread here, so the order is fixed), so deleting a
/// sibling from the visitor of the first file deletes it between walk and read. A warning (not
/// an error: the exit code must not say the scan failed) names it and every other file is read.
#[test]
fn a_file_deleted_between_walk_and_read_is_named_and_the_others_are_read() {
    use offkey::source::{Event, WalkOptions, walk};
    use std::sync::Mutex;
    let tree = Tree::new();
    let names = ["a.env", "b.env", "c.env", "d.env"];
    for n in names {
        tree.file(&format!("dir/{n}"), format!("K={}\n", current_key()));
    }
    let seen: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let warnings: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let deleted: Mutex<Option<String>> = Mutex::new(None);
    let opts = WalkOptions {
        roots: vec![tree.root().to_path_buf()],
        excludes: Vec::new(),
        gitignore: false,
        max_file_size: 1 << 20,
        threads: 1,
    };
    walk(&opts, || {
        |ev: Event<'_>| match ev {
            Event::Blob(bytes, origin) => {
                assert!(
                    String::from_utf8_lossy(bytes).contains("oc_live_"),
                    "{}: read whole",
                    origin.path
                );
                let mut seen = seen.lock().expect("lock");
                seen.push(origin.path.clone());
                let mut deleted = deleted.lock().expect("lock");
                if deleted.is_none() {
                    // The last of the others in name order that is not read yet.
                    let victim = names
                        .iter()
                        .rev()
                        .map(|n| format!("dir/{n}"))
                        .find(|p| !seen.contains(p))
                        .expect("another file");
                    std::fs::remove_file(tree.path(&victim)).expect("delete");
                    *deleted = Some(victim);
                }
            }
            Event::Large(_, _, origin) => panic!("{}: small files are read whole", origin.path),
            Event::Error(e) => panic!("a vanished file is not an error: {e}"),
            Event::Skipped(s) => warnings.lock().expect("lock").push(s),
        }
    })
    .expect("the walk runs");
    let victim = deleted
        .into_inner()
        .expect("lock")
        .expect("a file was deleted");
    let mut seen = seen.into_inner().expect("lock");
    seen.sort();
    let warnings = warnings.into_inner().expect("lock");
    assert_eq!(
        warnings.len(),
        1,
        "one warning, for the deleted file ({victim}): {warnings:?}"
    );
    assert!(
        warnings[0] == format!("{victim}: vanished before it was read"),
        "the warning names the deleted file and says why: {warnings:?}"
    );
    let mut others: Vec<String> = names
        .iter()
        .map(|n| format!("dir/{n}"))
        .filter(|p| *p != victim)
        .collect();
    others.sort();
    assert_eq!(seen, others, "every other file is read, once");
}

/// A folder deleted after its parent was listed but before the walk read it (a build cleaning
/// up, a checkout switching branches) is a warning naming the folder, not an error (exit 2):
/// nothing is left there to scan. The folders read before it are scanned in full.
#[test]
fn a_folder_deleted_during_the_walk_is_named_and_the_others_are_read() {
    use offkey::source::{Event, WalkOptions, walk};
    use std::sync::Mutex;
    let tree = Tree::new();
    let dirs = ["d1", "d2", "d3", "d4"];
    for d in dirs {
        tree.file(&format!("{d}/sub/k.env"), format!("K={}\n", current_key()));
    }
    let seen: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let warnings: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let deleted: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let opts = WalkOptions {
        roots: vec![tree.root().to_path_buf()],
        excludes: Vec::new(),
        gitignore: false,
        max_file_size: 1 << 20,
        threads: 1,
    };
    walk(&opts, || {
        |ev: Event<'_>| match ev {
            Event::Blob(_, origin) => {
                seen.lock().expect("lock").push(origin.path.clone());
                let mut deleted = deleted.lock().expect("lock");
                if deleted.is_empty() {
                    // Every other top folder: listed by the root's read, not read yet.
                    let first = origin.path.split('/').next().expect("a folder").to_string();
                    for d in dirs.iter().filter(|d| **d != first) {
                        std::fs::remove_dir_all(tree.path(d)).expect("delete");
                        deleted.push(d.to_string());
                    }
                }
            }
            Event::Large(_, _, origin) => panic!("{}: small files are read whole", origin.path),
            Event::Error(e) => panic!("a vanished folder is not an error: {e}"),
            Event::Skipped(s) => warnings.lock().expect("lock").push(s),
        }
    })
    .expect("the walk runs");
    let deleted = deleted.into_inner().expect("lock");
    assert_eq!(deleted.len(), 3, "three folders were deleted");
    let seen = seen.into_inner().expect("lock");
    assert_eq!(
        seen.len(),
        1,
        "only the first folder's file was left: {seen:?}"
    );
    let mut warnings = warnings.into_inner().expect("lock");
    warnings.sort();
    assert!(
        warnings
            .iter()
            .any(|w| w.ends_with(": vanished before it was read") && !w.contains("k.env")),
        "a deleted folder is named as vanished: {warnings:?}"
    );
    for w in &warnings {
        assert!(
            w.ends_with(": vanished before it was read")
                && deleted
                    .iter()
                    .any(|d| w.starts_with(&format!("{d}/")) || w.starts_with(&format!("{d}:"))),
            "each warning names a deleted folder or a file in one: {w}"
        );
    }
}

/// Character devices in the tree (`zero`, `null` and `tty` nodes, made with mknod) are never
/// opened: reading `zero` never ends, opening `tty` fails (no controlling terminal: the scan
/// would exit 2) or reads the terminal (the scan would hang).
#[test]
fn devices_in_the_tree_are_not_opened_and_the_rest_is_scanned() {
    let (tree, key) = tree_with_sentinel();
    tree.dir("dev");
    for (name, major, minor) in [("zero", "1", "5"), ("null", "1", "3"), ("tty", "5", "0")] {
        let out = std::process::Command::new("mknod")
            .arg(tree.path(&format!("dev/{name}")))
            .args(["c", major, minor])
            .output()
            .expect("run mknod (coreutils)");
        assert!(
            out.status.success(),
            "mknod needs root (CAP_MKNOD), as the rest of the suite: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let run = scan(&tree);
    assert_eq!(run.status, Some(1), "{}", run.stderr);
    assert_eq!(
        found(&run),
        BTreeSet::from([("sentinel.env".to_owned(), sha256(&key))])
    );
}

/// Invalid UTF-8 all around a key (lone continuation bytes, overlong forms, surrogates, 0xFF):
/// the key is found once, at its place.
#[test]
fn invalid_utf8_around_a_key_does_not_hide_it() {
    let (tree, key) = tree_with_sentinel();
    let planted = current_key();
    let mut bytes = b"\x80\xbf\xc0\xaf\xed\xa0\x80\xff\xfe\xf8\x88\x80\x80\x80 K=".to_vec();
    bytes.extend_from_slice(planted.as_bytes());
    bytes.extend_from_slice(b"\n\xc3\x28\xe2\x82\x28\xf0\x28\x8c\xbc\xff\n");
    tree.file("bad.txt", &bytes);
    let run = scan(&tree);
    assert_eq!(run.status, Some(1), "{}", run.stderr);
    assert_eq!(
        found(&run),
        BTreeSet::from([
            ("sentinel.env".to_owned(), sha256(&key)),
            ("bad.txt".to_owned(), sha256(&planted)),
        ])
    );
    let f = run
        .findings()
        .into_iter()
        .find(|f| f["location"]["path"] == "bad.txt")
        .expect("the planted finding");
    assert_eq!(f["location"]["line"], 1, "{f}");
}

/// Unreadable files and folders, for real: root reads mode-000 files, so the scan runs as
/// `nobody` (setpriv from util-linux). Each is named on stderr and the rest is scanned.
#[test]
fn unreadable_files_and_folders_are_named_and_the_rest_is_scanned_as_a_user() {
    use std::os::unix::fs::PermissionsExt;
    let (tree, key) = tree_with_sentinel();
    let hidden = current_key();
    tree.file("locked.env", format!("K={hidden}\n"));
    tree.file("shut/inner.env", format!("K={hidden}\n"));
    let open_key = current_key();
    tree.file("open/app.env", format!("K={open_key}\n"));
    let mode = |p: &str, m: u32| {
        std::fs::set_permissions(tree.path(p), std::fs::Permissions::from_mode(m)).expect("chmod")
    };
    for (p, m) in [
        ("", 0o755),
        ("open", 0o755),
        ("open/app.env", 0o644),
        ("sentinel.env", 0o644),
        ("locked.env", 0o000),
        ("shut", 0o000),
    ] {
        mode(p, m);
    }
    let run = scan_as_nobody(&tree);
    let stderr = run.stderr.clone();
    mode("shut", 0o755);
    assert_eq!(run.status, Some(1), "findings beat errors: {stderr}");
    assert_eq!(
        found(&run),
        BTreeSet::from([
            ("sentinel.env".to_owned(), sha256(&key)),
            ("open/app.env".to_owned(), sha256(&open_key)),
        ])
    );
    for p in ["locked.env", "shut"] {
        assert!(
            stderr.contains(p) && stderr.contains("ermission denied"),
            "{p} is named with the reason: {stderr}"
        );
    }

    // Nothing readable holds a key: the unreadable file alone makes the scan fail (exit 2).
    mode("shut", 0o000);
    for p in ["sentinel.env", "open/app.env"] {
        std::fs::remove_file(tree.path(p)).expect("rm");
    }
    let run = scan_as_nobody(&tree);
    mode("shut", 0o755);
    assert_eq!(run.status, Some(2), "{}", run.stderr);
    assert_eq!(found(&run), BTreeSet::new());
    assert!(run.stderr.contains("locked.env"), "{}", run.stderr);
}

/// `offkey scan . --format json` in `tree`, run as `nobody` (setpriv, util-linux), so that
/// mode-000 files are unreadable even when the tests run as root.
fn scan_as_nobody(tree: &Tree) -> Run {
    let bin = env!("CARGO_BIN_EXE_offkey");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(bin)
        .args(["scan", ".", "--format", "json"])
        .current_dir(tree.root())
        .env("NO_COLOR", "1")
        .env("HOME", "/nonexistent")
        .output()
        .unwrap_or_else(|e| panic!("run setpriv (util-linux) as root: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("setpriv:"),
        "setpriv could not drop to nobody (run the tests as root): {stderr}"
    );
    Run {
        status: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
        stdout_bytes: out.stdout,
    }
}

/// A pack (and its index, version 2) holding one blob, `hello`, whose entry header claims
/// `claimed` bytes once inflated. Checksums are zeros: the walk does not verify them.
fn pack_claiming(claimed: u64) -> (Vec<u8>, Vec<u8>) {
    use flate2::{Compression, write::ZlibEncoder};
    let mut pack = b"PACK\0\0\0\x02\0\0\0\x01".to_vec();
    // Type 3 (blob), size in 4 bits then 7 bits a byte.
    let mut size = claimed;
    let mut byte = 0x30 | (size & 0x0f) as u8;
    size >>= 4;
    while size > 0 {
        pack.push(byte | 0x80);
        byte = (size & 0x7f) as u8;
        size >>= 7;
    }
    pack.push(byte);
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    z.write_all(b"hello").expect("deflate");
    pack.extend(z.finish().expect("deflate"));
    pack.extend([0u8; 20]);
    let oid = [0x11u8; 20];
    let mut idx = b"\xfftOc\0\0\0\x02".to_vec();
    for i in 0..256u32 {
        idx.extend(u32::from(i >= 0x11).to_be_bytes());
    }
    idx.extend(oid);
    idx.extend([0u8; 4]); // CRC-32 of the entry
    idx.extend(12u32.to_be_bytes()); // its offset, right after the pack header
    idx.extend([0u8; 40]); // pack and index checksums
    (pack, idx)
}

/// Found by the `pack` fuzz target: a pack entry whose header claims an enormous size made the
/// delta-order walk reserve and zero that many bytes before inflating anything (no allocation
/// limit), so a few bytes of pack could take all memory (the fuzzer's input asked for 123 PB).
/// Now a claim over the size limit stops the walk of that pack with a warning naming it (its
/// blobs are then read one by one, where the size is checked first), and nothing is allocated.
#[test]
fn a_pack_entry_claiming_a_huge_size_is_refused_not_allocated() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("pack")).expect("objects/pack");
    // 256 MiB claimed, the walk's size limit 1 MiB: without a limit the walk zeroes 256 MiB
    // and then hands over a "blob" of 256 MiB.
    let (pack, idx) = pack_claiming(256 << 20);
    std::fs::write(dir.path().join("pack/pack-big.pack"), pack).expect("write pack");
    std::fs::write(dir.path().join("pack/pack-big.idx"), idx).expect("write idx");
    let walk = offkey::source::walk_packs(dir.path(), 1 << 20, 1, || (), |_, _: &[u8]| true);
    assert!(
        walk.seen.is_empty(),
        "nothing reconstructed over the limit: {:?}",
        walk.seen
    );
    assert_eq!(walk.warnings.len(), 1, "{:?}", walk.warnings);
    assert!(
        walk.warnings[0].contains("pack-big.pack"),
        "the warning names the pack: {:?}",
        walk.warnings
    );

    // A claim within the limit is walked as before: the blob as it inflates.
    let ok = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(ok.path().join("pack")).expect("objects/pack");
    let (pack, idx) = pack_claiming(5);
    std::fs::write(ok.path().join("pack/pack-ok.pack"), pack).expect("write pack");
    std::fs::write(ok.path().join("pack/pack-ok.idx"), idx).expect("write idx");
    let walk = offkey::source::walk_packs(
        ok.path(),
        1 << 20,
        1,
        || (),
        |_, b: &[u8]| {
            assert_eq!(b, b"hello");
            false
        },
    );
    assert!(walk.warnings.is_empty(), "{:?}", walk.warnings);
    assert_eq!(walk.seen.values().copied().collect::<Vec<_>>(), vec![5]);
}
