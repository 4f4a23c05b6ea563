//! `--verify`, the rotation assistant and auto-rotation against a real `offkey serve`.

use std::path::{Path, PathBuf};
use std::process::Output;

use offkey::client::{Client, SessionToken};
use offkey::key::Secret;

use crate::common::{Server, add_member};
use crate::util::*;

struct Env {
    _data: tempfile::TempDir,
    config: tempfile::TempDir,
    server: Server,
    client: Client,
    token: String,
}

fn start() -> Env {
    let data = tempfile::tempdir().expect("tmp");
    add_member(
        data.path(),
        "ana@example.com",
        "admin",
        "correct horse battery staple",
    );
    let server = Server::start(data.path());
    let login = server
        .client()
        .login("ana@example.com", "correct horse battery staple")
        .expect("login");
    let token = login.token.expose().to_owned();
    let client = server.client().with_token(SessionToken::new(token.clone()));
    Env {
        _data: data,
        config: tempfile::tempdir().expect("tmp"),
        server,
        client,
        token,
    }
}

impl Env {
    fn run(&self, dir: &Path, args: &[&str]) -> Output {
        self.run_env(dir, args, &[])
    }

    fn run_env(&self, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = std::process::Command::new(offkey_bin());
        c.current_dir(dir)
            .args(args)
            .env("OFFKEY_SERVER", &self.server.url)
            .env("OFFKEY_TOKEN", &self.token)
            .env("OFFKEY_CONFIG_DIR", self.config.path())
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("offkey runs")
    }

    fn journals(&self) -> String {
        let dir = self.config.path().join("rotations");
        std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    }

    fn works(&self, key: &Secret) -> bool {
        self.server.client().account(key).is_ok()
    }
}

fn new_key(env: &Env, memo: &str) -> Secret {
    env.client.create_key(memo).expect("create").key
}

#[test]
fn verify_says_active_with_memo_and_creator_then_revoked() {
    let env = start();
    let k = new_key(&env, "Fulfillment integration");
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join("prod.env"),
        format!("OFFSET_API_KEY={}\n", k.expose()),
    )
    .expect("write");
    let o = env.run(dir.path(), &["scan", "--verify", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    let f = findings(&o);
    let v = &f[0]["verification"];
    assert_eq!(v["status"], "active");
    assert_eq!(v["memo"], "Fulfillment integration");
    assert_eq!(v["created_by"], "ana@example.com");
    assert!(
        v["key_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("key_"))
    );
    assert!(v["last_used_at"].is_null());
    let sarif = dir
        .path()
        .join("..")
        .join(format!("verified-{}.sarif", std::process::id()));
    let o = env.run(
        dir.path(),
        &[
            "scan",
            "--verify",
            "--format",
            "sarif",
            "-o",
            sarif.to_str().expect("utf8"),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let sv = crate::integrations::check_sarif(&sarif, &[k.expose().to_owned()]);
    let r = &sv["runs"][0]["results"][0];
    assert_eq!(r["properties"]["verification"]["status"], "active");
    assert!(
        r["message"]["text"]
            .as_str()
            .is_some_and(|m| m.contains("ACTIVE"))
    );
    std::fs::remove_file(&sarif).ok();
    let o = env.run(dir.path(), &["scan", "--verify"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("ACTIVE  \"Fulfillment integration\", created 20"),
        "{text}"
    );
    assert!(text.contains("by ana@example.com, never used"), "{text}");
    // A lookup is not a use.
    assert!(
        env.client.list_keys().expect("list")[0]
            .last_used_at
            .is_none()
    );
    let id = v["key_id"].as_str().expect("id").to_owned();
    env.client.delete_key(&id).expect("delete");
    let o = env.run(dir.path(), &["scan", "--verify", "--format", "json"]);
    assert_eq!(findings(&o)[0]["verification"]["status"], "revoked");
    let o = env.run(dir.path(), &["scan", "--verify"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("revoked on 20"));
    assert_no_leak(
        &format!("{}{}", all_output(&o), env.server.log()),
        &[k.expose()],
    );
}

#[test]
fn legacy_candidates_are_confirmed_or_dropped() {
    let env = start();
    let known = legacy();
    let md5 = legacy();
    let import = tempfile::tempdir().expect("tmp");
    let line = serde_json::json!({"key": known, "memo": "Old reporting tool", "created_at": "2023-05-01T00:00:00Z"});
    let mut cmd = std::process::Command::new(offkey_bin());
    let data = env._data.path().to_path_buf();
    let o = cmd
        .current_dir(import.path())
        .args(["keys", "import-legacy", "--data"])
        .arg(&data)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .expect("stdin")
                .write_all(format!("{line}\n").as_bytes())?;
            c.wait_with_output()
        })
        .expect("import runs");
    assert!(o.status.success(), "{}", all_output(&o));
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join("legacy.cfg"),
        format!("offset_key = {known}\noffset_build_md5 = {md5}\n"),
    )
    .expect("write");
    let o = env.run(dir.path(), &["scan", "--verify", "--format", "json"]);
    let f = findings(&o);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0]["confidence"], "high");
    assert_eq!(f[0]["verification"]["status"], "active");
    assert!(f[0]["verification"]["created_by"].is_null());
    let o = env.run(
        dir.path(),
        &["scan", "--verify", "--keep-unverified", "--format", "json"],
    );
    let f = findings(&o);
    assert_eq!(f.len(), 2);
    assert!(
        f.iter()
            .any(|x| x["confidence"] == "low" && x["verification"]["status"] == "unknown")
    );
}

#[test]
fn used_after_exposure_from_a_commit_date() {
    let env = start();
    let k = new_key(&env, "Marketing site cart");
    let r = repo();
    std::fs::write(
        r.path().join("cart.js"),
        format!("const KEY = '{}';\n", k.expose()),
    )
    .expect("write");
    git(r.path(), &["add", "-A"]);
    let o = std::process::Command::new("git")
        .current_dir(r.path())
        .args(["commit", "-q", "-m", "cart"])
        .env("GIT_AUTHOR_NAME", "Bo")
        .env("GIT_AUTHOR_EMAIL", "bo@example.com")
        .env("GIT_COMMITTER_NAME", "Bo")
        .env("GIT_COMMITTER_EMAIL", "bo@example.com")
        .env("GIT_AUTHOR_DATE", "2021-03-01T12:00:00Z")
        .env("GIT_COMMITTER_DATE", "2021-03-01T12:00:00Z")
        .output()
        .expect("git");
    assert!(o.status.success());
    env.server.client().account(&k).expect("the key works");
    let o = env.run(
        r.path(),
        &[
            "scan",
            "--git",
            ".",
            "--verify",
            "--report-exposures",
            "--format",
            "json",
        ],
    );
    let f = findings(&o);
    assert_eq!(f[0]["verification"]["used_after_exposure"], true, "{f:?}");
    let o = env.run(r.path(), &["scan", "--git", ".", "--verify"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("USED AFTER EXPOSURE"));
    let listed = env.client.list_keys().expect("list");
    assert_eq!(
        listed[0].exposures.count, 1,
        "one exposure per (key, where), repeats ignored"
    );
    let seen = listed[0].exposures.last.as_ref().expect("last exposure");
    assert!(
        seen.location.starts_with("cart.js:1 @ "),
        "{}",
        seen.location
    );
}

#[test]
fn unreachable_or_unauthorised_service_is_one_clear_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let k = key();
    std::fs::write(dir.path().join("a.env"), format!("K={k}\n")).expect("write");
    let cfg = tempfile::tempdir().expect("tmp");
    let o = std::process::Command::new(offkey_bin())
        .current_dir(dir.path())
        .args([
            "scan",
            "--verify",
            "--server",
            "http://127.0.0.1:9",
            "--format",
            "json",
        ])
        .env("OFFKEY_TOKEN", "whatever")
        .env("OFFKEY_CONFIG_DIR", cfg.path())
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(1), "findings still make it 1");
    let f = findings(&o);
    assert_eq!(f[0]["verification"]["status"], "error");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.matches("cannot verify").count(), 1, "{err}");
    assert!(err.contains("cannot reach the key service"), "{err}");
    let env = start();
    let o = env.run_env(
        dir.path(),
        &["scan", "--verify", "--format", "json"],
        &[("OFFKEY_TOKEN", "bad-token")],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("offkey login"), "{err}");
    assert!(!err.contains("bad-token"), "errors never echo a token");
    assert_no_leak(&all_output(&o), &[&k]);
    // --rotate without --deliver is refused before any scanning.
    let o = env.run(dir.path(), &["scan", "--verify", "--rotate"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--revoke-exposed"));
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

fn read_key(p: &Path) -> Secret {
    Secret::parse(std::fs::read_to_string(p).expect("sink file").trim()).expect("a valid key")
}

#[test]
fn rotate_to_a_file_keeps_the_old_key_until_the_new_one_is_used() {
    let env = start();
    let old = new_key(&env, "Fulfillment integration");
    let id = env.client.list_keys().expect("list")[0].id.clone();
    let out = tempfile::tempdir().expect("tmp");
    let sink = out.path().join("new.key");
    let o = env.run(
        out.path(),
        &[
            "rotate",
            &id,
            "--deliver",
            &format!("file:{}", sink.display()),
            "--yes",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
    assert_eq!(mode(&sink), 0o600);
    let new = read_key(&sink);
    assert_ne!(new.expose(), old.expose());
    let text = all_output(&o);
    assert!(
        text.contains(&format!("…{}", old.last4())) && text.contains(&format!("…{}", new.last4()))
    );
    assert_no_leak(&text, &[old.expose(), new.expose()]);
    let listed = env.client.list_keys().expect("list");
    let fresh = listed
        .iter()
        .find(|k| k.id != id)
        .expect("replacement listed");
    assert!(
        fresh
            .memo
            .starts_with("Fulfillment integration (rotated 20"),
        "{}",
        fresh.memo
    );
    assert!(env.works(&old), "old key works until the new one is used");
    assert!(env.works(&new));
    assert!(
        !env.works(&old),
        "old key refused after the new key's first use"
    );
    // Refuses to overwrite the sink file, and a path git would pick up.
    let id2 = fresh.id.clone();
    let o = env.run(
        out.path(),
        &[
            "rotate",
            &id2,
            "--deliver",
            &format!("file:{}", sink.display()),
            "--yes",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    let r = repo();
    let o = env.run(
        r.path(),
        &["rotate", &id2, "--deliver", "file:prod.key", "--yes"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("git work tree"));
    std::fs::write(r.path().join(".gitignore"), "*.key\n").expect("write");
    let o = env.run(
        r.path(),
        &[
            "rotate",
            &id2,
            "--deliver",
            "file:prod.key",
            "--yes",
            "--old-key",
            "now",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
    assert!(
        !env.works(&new),
        "--old-key now retires it right after delivery"
    );
    assert!(env.works(&read_key(&r.path().join("prod.key"))));
    assert_no_leak(
        &format!("{}{}", env.journals(), env.server.log()),
        &[old.expose(), new.expose()],
    );
}

#[test]
fn failing_exec_sink_leaves_the_old_key_and_a_resumable_journal() {
    let env = start();
    let old = new_key(&env, "Reporting");
    let id = env.client.list_keys().expect("list")[0].id.clone();
    let dir = tempfile::tempdir().expect("tmp");
    let o = env.run(
        dir.path(),
        &[
            "rotate",
            &id,
            "--deliver",
            "exec:cat >/dev/null; exit 3",
            "--yes",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", all_output(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("exited with"));
    assert!(env.works(&old));
    let listed = env.client.list_keys().expect("list");
    assert_eq!(listed.len(), 1, "the undelivered key was deleted again");
    assert!(
        listed[0].expires_at.is_none(),
        "the old key has no deadline left"
    );
    assert!(env.journals().contains("rolled_back"));
    // Resume with a working sink: exactly one replacement.
    let got = dir.path().join("got.key");
    let o = env.run(
        dir.path(),
        &[
            "rotate",
            "--resume",
            "--deliver",
            &format!("exec:cat > {}", got.display()),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
    let new = read_key(&got);
    assert_eq!(
        env.client.list_keys().expect("list").len(),
        2,
        "old key + exactly one replacement"
    );
    assert!(env.works(&new));
    assert!(!env.works(&old), "retired on the new key's first use");
    assert_no_leak(
        &format!("{}{}{}", env.journals(), all_output(&o), env.server.log()),
        &[old.expose(), new.expose()],
    );
}

#[test]
fn crash_between_create_and_deliver_resumes_with_one_replacement() {
    let env = start();
    let old = new_key(&env, "Warehouse sync");
    let id = env.client.list_keys().expect("list")[0].id.clone();
    let dir = tempfile::tempdir().expect("tmp");
    let sink: PathBuf = dir.path().join("k");
    let o = env.run_env(
        dir.path(),
        &[
            "rotate",
            &id,
            "--deliver",
            &format!("file:{}", sink.display()),
            "--yes",
        ],
        &[("OFFKEY_TEST_CRASH_AFTER", "created")],
    );
    assert_ne!(o.status.code(), Some(0), "the simulated crash aborts");
    assert!(!sink.exists());
    assert_eq!(
        env.client.list_keys().expect("list").len(),
        2,
        "the orphan replacement exists"
    );
    assert!(env.works(&old));
    let o = env.run(dir.path(), &["rotate", "--resume"]);
    assert_eq!(o.status.code(), Some(0), "{}", all_output(&o));
    let listed = env.client.list_keys().expect("list");
    assert_eq!(
        listed.len(),
        2,
        "old key + exactly one replacement: {listed:?}"
    );
    let new = read_key(&sink);
    assert!(env.works(&new));
    assert!(!env.works(&old));
    let o = env.run(dir.path(), &["rotate", "--resume"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no unfinished rotation"));
    assert_no_leak(
        &format!("{}{}", env.journals(), env.server.log()),
        &[old.expose(), new.expose()],
    );
}

#[test]
fn auto_rotation_rotates_a_key_found_in_three_files_once() {
    let env = start();
    let k = new_key(&env, "CI deploys");
    let dir = tempfile::tempdir().expect("tmp");
    for f in ["a.env", "b.yaml", "c.json"] {
        std::fs::write(dir.path().join(f), format!("key: {}\n", k.expose())).expect("write");
    }
    let sinks = tempfile::tempdir().expect("tmp");
    let target = format!("file:{}/{{id}}.key", sinks.path().display());
    let o = env.run(
        dir.path(),
        &[
            "scan",
            "--verify",
            "--rotate",
            "--deliver",
            &target,
            "--format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", all_output(&o));
    let f = findings(&o);
    assert_eq!(f.len(), 3);
    let new_ids: Vec<&str> = f
        .iter()
        .filter_map(|x| x["rotation"]["new_key_id"].as_str())
        .collect();
    assert_eq!(new_ids.len(), 3);
    assert!(new_ids.iter().all(|i| *i == new_ids[0]));
    let files: Vec<_> = std::fs::read_dir(sinks.path()).expect("dir").collect();
    assert_eq!(files.len(), 1, "rotated once");
    assert_eq!(env.client.list_keys().expect("list").len(), 2);
    assert_no_leak(
        &format!("{}{}{}", all_output(&o), env.journals(), env.server.log()),
        &[k.expose()],
    );
}
