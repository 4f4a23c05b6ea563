//! One full scenario through every CLI command, the page and the service with debug logging,
//! including a rotation with a journal; afterwards every stdout, stderr, log file, journal,
//! report and the SQLite files are searched for every full key and session token used. The
//! only places a secret may stand are the answer that created it (the `keys create` output, the
//! login token file the user asked for) and the rotation sink the user chose.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use offkey::client::SessionToken;
use offkey::key::{generate, sha256_hex};

use crate::common::{Server, add_member};
use crate::util::offkey_bin;

const PASSWORD: &str = "correct horse battery staple";

struct Scenario {
    config: tempfile::TempDir,
    server_url: String,
    /// Every stdout and stderr that may not hold a secret.
    outputs: Vec<(String, String)>,
}

impl Scenario {
    fn cmd(&self, dir: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(offkey_bin());
        c.current_dir(dir)
            .args(args)
            .env("OFFKEY_CONFIG_DIR", self.config.path())
            .env("OFFKEY_SERVER", &self.server_url)
            .env("OFFKEY_LOG", "debug")
            .env("RUST_LOG", "debug")
            .env("NO_COLOR", "1")
            .env_remove("OFFKEY_TOKEN")
            .env_remove("OFFKEY_DATA");
        c
    }

    /// Run, keep both streams for the search, answer the output.
    fn run(&mut self, dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
        let out = self.run_private(dir, args, stdin);
        self.keep(args, &out, true);
        out
    }

    /// Run a command whose stdout is the one answer allowed to hold a secret (it is still
    /// searched on stderr).
    fn run_private(&mut self, dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = self.cmd(dir, args);
        c.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c.spawn().expect("offkey runs");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        let out = child.wait_with_output().expect("offkey finishes");
        self.keep(args, &out, false);
        out
    }

    fn keep(&mut self, args: &[&str], out: &Output, stdout: bool) {
        let what = args.join(" ");
        if stdout {
            self.outputs.push((
                format!("stdout of {what}"),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            ));
        }
        self.outputs.push((
            format!("stderr of {what}"),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
}

fn git(dir: &Path, args: &[&str]) -> Output {
    Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "T")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "T")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git runs")
}

/// Every file under `dir`, as bytes, with its path.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push((p, bytes));
            }
        }
    }
    out
}

fn assert_free(what: &str, haystack: &[u8], secrets: &[(String, String)]) {
    for (name, s) in secrets {
        assert!(
            memchr::memmem::find(haystack, s.as_bytes()).is_none(),
            "{name} found in {what}"
        );
    }
}

#[test]
fn no_key_or_token_anywhere_after_a_full_scenario() {
    let data = tempfile::tempdir().expect("tmp");
    let work = tempfile::tempdir().expect("tmp");
    let w = work.path();
    add_member(data.path(), "ana@example.com", "admin", PASSWORD);
    add_member(data.path(), "bo@example.com", "member", PASSWORD);
    let server = Server::start_with(data.path(), &[], "debug");
    let mut s = Scenario {
        config: tempfile::tempdir().expect("tmp"),
        server_url: server.url.clone(),
        outputs: Vec::new(),
    };
    let mut secrets: Vec<(String, String)> = Vec::new();

    // Sign in with the CLI (the token goes to the login file the user asked for, mode 0600)
    // and with the library client, as the page does (its token only in the answer).
    let o = s.run(
        w,
        &["login", "--email", "ana@example.com", "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let login = server
        .client()
        .login("ana@example.com", PASSWORD)
        .expect("login");
    let token = login.token.expose().to_owned();
    secrets.push(("the session token".into(), token.clone()));
    let member = server
        .client()
        .login("bo@example.com", PASSWORD)
        .expect("member login");
    secrets.push((
        "the member's token".into(),
        member.token.expose().to_owned(),
    ));
    let client = server.client().with_token(SessionToken::new(token.clone()));

    // Keys: created by the CLI (its stdout is the one answer holding the key) and the client.
    let o = s.run_private(
        w,
        &["keys", "create", "--memo", "Fulfillment integration"],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let k1 = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    assert!(offkey::key::is_current(k1.as_bytes()), "the key on stdout");
    secrets.push(("key 1".into(), k1.clone()));
    let k2 = client
        .create_key("Marketing site cart")
        .expect("create")
        .key;
    secrets.push(("key 2".into(), k2.expose().to_owned()));
    let legacy = sha256_hex(generate().expose().as_bytes())[..32].to_owned();
    secrets.push(("the legacy key".into(), legacy.clone()));
    let mut import = Command::new(offkey_bin());
    let o = import
        .args(["keys", "import-legacy", "--data"])
        .arg(data.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            let line = serde_json::json!({"key": legacy, "memo": "ERP"}).to_string();
            c.stdin.take().expect("stdin").write_all(line.as_bytes())?;
            c.wait_with_output()
        })
        .expect("import");
    s.keep(&["keys", "import-legacy"], &o, true);
    assert!(o.status.success());
    s.run(w, &["keys", "list"], None);
    s.run(w, &["keys", "list", "--json"], None);
    // An integration uses key 1.
    server
        .client()
        .account(&offkey::key::Secret::parse(&k1).expect("key"))
        .expect("key 1 works");

    // The page and its assets, as a browser loads them.
    for path in [
        "/login",
        "/settings/api-keys",
        "/assets/app.js",
        "/assets/app.css",
    ] {
        let body = reqwest::blocking::get(format!("{}{path}", server.url))
            .and_then(|r| r.text())
            .expect("page");
        s.outputs.push((format!("page {path}"), body));
    }

    // A repository that leaks both keys: scans in every format, verify and exposures, redact.
    git(w, &["init", "-q", "-b", "main"]);
    std::fs::write(
        w.join("prod.env"),
        format!("OFFSET_API_KEY={k1}\nX_OFFSET_KEY={legacy}\n"),
    )
    .expect("write");
    std::fs::write(
        w.join("cart.js"),
        format!("const key = \"{}\";\n", k2.expose()),
    )
    .expect("write");
    git(w, &["add", "."]);
    git(w, &["commit", "-q", "-m", "config"]);
    let reports = tempfile::tempdir().expect("tmp");
    for (fmt, name) in [
        ("text", "r.txt"),
        ("json", "r.json"),
        ("jsonl", "r.jsonl"),
        ("sarif", "r.sarif"),
    ] {
        let out = reports.path().join(name);
        let o = s.run(
            w,
            &[
                "scan",
                ".",
                "--verify",
                "--format",
                fmt,
                "-o",
                out.to_str().expect("utf-8"),
            ],
            None,
        );
        assert_eq!(
            o.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    s.run(
        w,
        &[
            "scan",
            "--git",
            ".",
            "--verify",
            "--report-exposures",
            "--format",
            "json",
        ],
        None,
    );
    s.run(
        w,
        &["scan", "-"],
        Some(&format!("log line Authorization: Bearer {k1}\n")),
    );
    let o = s.run(
        w,
        &["redact"],
        Some(&format!("token={k1} legacy offset {legacy}\n")),
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("YOUR_API_KEY"));

    // Rotation with a journal: key 1 to a file sink (the sink the user chose).
    let sink = tempfile::tempdir().expect("tmp");
    let sink_file = sink.path().join("offset.key");
    let id1 = client
        .list_keys()
        .expect("list")
        .into_iter()
        .find(|k| k.memo == "Fulfillment integration")
        .expect("key 1 listed")
        .id;
    let deliver = format!("file:{}", sink_file.display());
    let o = s.run(
        w,
        &[
            "rotate",
            &id1,
            "--deliver",
            &deliver,
            "--old-key",
            "now",
            "--yes",
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let k3 = std::fs::read_to_string(&sink_file)
        .expect("sink")
        .trim()
        .to_owned();
    assert!(
        offkey::key::is_current(k3.as_bytes()),
        "the new key in the sink"
    );
    secrets.push(("the rotated-in key".into(), k3));
    s.run(w, &["rotate", "--resume"], None);
    let id2 = client
        .list_keys()
        .expect("list")
        .into_iter()
        .find(|k| k.memo == "Marketing site cart")
        .expect("key 2 listed")
        .id;
    s.run(w, &["revoke", &id2, "--yes"], None);

    // Hooks: a refused commit with a staged key.
    s.run(w, &["hook", "install"], None);
    let k4 = generate().expose().to_owned();
    secrets.push(("a staged key".into(), k4.clone()));
    std::fs::write(w.join("staged.py"), format!("KEY = '{k4}'\n")).expect("write");
    git(w, &["add", "staged.py"]);
    let o = Command::new("git")
        .current_dir(w)
        .args(["commit", "-q", "-m", "oops"])
        .env("GIT_AUTHOR_NAME", "T")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "T")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("git commit");
    assert!(!o.status.success(), "the hook refuses the commit");
    s.keep(&["git", "commit"], &o, true);
    s.run(w, &["scan", "--staged"], None);

    // The rest of the CLI: members, completions, man, init; then sign out.
    let mut members = Command::new(offkey_bin());
    let o = members
        .args(["members", "list", "--data"])
        .arg(data.path())
        .output()
        .expect("members");
    s.keep(&["members", "list"], &o, true);
    s.run(w, &["completions", "bash"], None);
    s.run(w, &["man"], None);
    s.run(w, &["logout"], None);
    client.logout().ok();

    let log = server.stop();
    s.outputs.push(("the server's debug log".into(), log));

    for (what, text) in &s.outputs {
        assert_free(what, text.as_bytes(), &secrets);
    }
    // Reports, journals and the store's files (keys.db, -wal, -shm).
    for dir in [reports.path(), data.path()] {
        for (path, bytes) in files_under(dir) {
            assert_free(&path.display().to_string(), &bytes, &secrets);
        }
    }
    let journals = s.config.path().join("rotations");
    let journal_files = files_under(&journals);
    assert!(!journal_files.is_empty(), "the rotation left a journal");
    for (path, bytes) in journal_files {
        assert_free(&path.display().to_string(), &bytes, &secrets);
    }
    // The working tree is the user's own (it holds the keys they leaked), but nothing offkey
    // wrote there (the hook) holds one.
    let hook = std::fs::read(w.join(".git/hooks/pre-commit")).expect("hook");
    assert_free("the pre-commit hook", &hook, &secrets);
    // The login file holds the CLI's own session token (the sink the user asked for) and
    // none of the others.
    for (path, bytes) in files_under(s.config.path()) {
        if path.starts_with(&journals) {
            continue;
        }
        assert_free(&path.display().to_string(), &bytes, &secrets);
    }
}
