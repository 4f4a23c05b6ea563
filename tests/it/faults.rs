//! The key service under faults: `offkey serve` killed with SIGKILL in the middle of concurrent
//! creates, deletes and rotations (on SQLite and on PostgreSQL), its store's disk filling up (a
//! small tmpfs), its store turning read-only (immutable files on a loop-mounted ext4), and its PostgreSQL server stopped and started under load.
//! Every answered `201`/`204` must survive, nothing half-done may be visible, writes that cannot
//! be stored answer `503` with `Retry-After`, and the service recovers without a restart.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use offkey::key::sha256_hex;
use rand::Rng;
use serde_json::{Value, json};

use crate::common::{Server, add_member};

const PASSWORD: &str = "correct horse battery staple";
const ADMIN: &str = "faults@example.com";

/// A raw HTTP view of the API: statuses and bodies as they are, no retries.
#[derive(Clone)]
struct Api {
    http: reqwest::blocking::Client,
    url: String,
    token: String,
}

/// What a request came back with: a status and a JSON body, or no answer at all.
type Answer = Result<(u16, Value, Option<String>), String>;

impl Api {
    fn sign_in(url: &str) -> Api {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        let res = http
            .post(format!("{url}/v1/session"))
            .json(&json!({"email": ADMIN, "password": PASSWORD}))
            .send()
            .expect("sign in");
        assert_eq!(res.status(), 200, "sign in");
        let body: Value = res.json().expect("json");
        Api {
            http,
            url: url.to_owned(),
            token: body["token"].as_str().expect("token").to_owned(),
        }
    }

    fn at(&self, url: &str) -> Api {
        Api {
            url: url.to_owned(),
            ..self.clone()
        }
    }

    fn send(&self, req: reqwest::blocking::RequestBuilder) -> Answer {
        let res = req.send().map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        let retry = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = res.text().map_err(|e| e.to_string())?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok((status, body, retry))
    }

    fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Answer {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req)
    }

    fn create(&self, memo: &str) -> Answer {
        self.admin(
            reqwest::Method::POST,
            "/v1/keys",
            Some(json!({"memo": memo})),
        )
    }

    fn delete(&self, id: &str) -> Answer {
        self.admin(reqwest::Method::DELETE, &format!("/v1/keys/{id}"), None)
    }

    fn rotate(&self, id: &str, memo: &str) -> Answer {
        self.admin(
            reqwest::Method::POST,
            &format!("/v1/keys/{id}/rotate"),
            Some(json!({"memo": memo, "grace_seconds": 0})),
        )
    }

    fn list(&self) -> Answer {
        self.admin(reqwest::Method::GET, "/v1/keys", None)
    }

    fn lookup(&self, keys: &[&str]) -> Answer {
        let hashes: Vec<String> = keys.iter().map(|k| sha256_hex(k.as_bytes())).collect();
        self.admin(
            reqwest::Method::POST,
            "/v1/keys/lookup",
            Some(json!({ "sha256": hashes })),
        )
    }

    fn account(&self, key: &str) -> Answer {
        self.send(
            self.http
                .get(format!("{}/api/v1/account", self.url))
                .bearer_auth(key),
        )
    }

    fn healthz(&self) -> Answer {
        self.send(self.http.get(format!("{}/healthz", self.url)))
    }

    /// Listed keys as (id, memo).
    fn listed(&self) -> Vec<(String, String)> {
        let (status, body, _) = self.list().expect("list answers");
        assert_eq!(status, 200, "list: {body}");
        body["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| {
                (
                    k["id"].as_str().expect("id").to_owned(),
                    k["memo"].as_str().expect("memo").to_owned(),
                )
            })
            .collect()
    }

    /// Lookup statuses of these keys, in order.
    fn statuses(&self, keys: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        for chunk in keys.chunks(1000) {
            let (status, body, _) = self.lookup(chunk).expect("lookup answers");
            assert_eq!(status, 200, "lookup: {body}");
            out.extend(
                body["results"]
                    .as_array()
                    .expect("results")
                    .iter()
                    .map(|r| r["status"].as_str().expect("status").to_owned()),
            );
        }
        out
    }
}

/// A key a worker holds: its id and the whole key (kept in memory only).
#[derive(Clone, Debug)]
struct Held {
    id: String,
    key: String,
}

fn held(body: &Value) -> Held {
    Held {
        id: body["id"].as_str().expect("id").to_owned(),
        key: body["key"].as_str().expect("key").to_owned(),
    }
}

/// What the workers saw, answered or not.
#[derive(Default)]
struct Ledger {
    /// Answered 201 to a create (and not deleted or rotated away by an answered request since).
    created: Vec<Held>,
    /// Answered 204.
    deleted: Vec<Held>,
    /// Answered 201 to a rotation: (old, new).
    rotated: Vec<(Held, Held)>,
    /// Sent but not answered (the server died): the outcome is either, never half.
    unsure_delete: Vec<Held>,
    /// Sent but not answered: (old key, memo of the replacement).
    unsure_rotate: Vec<(Held, String)>,
    /// Answers with a 5xx status before the kill.
    server_errors: Vec<String>,
}

/// One worker: creates, deletes and rotates its own keys until the server stops answering.
fn worker(api: Api, tag: String, ledger: Arc<Mutex<Ledger>>, ops: Arc<AtomicUsize>) {
    let mut rng = rand::thread_rng();
    let mut mine: Vec<Held> = Vec::new();
    for n in 0.. {
        let choice = if mine.len() < 2 {
            0
        } else {
            rng.gen_range(0..3)
        };
        let answer = match choice {
            0 => {
                let memo = format!("{tag} create {n}");
                let a = api.create(&memo);
                if let Ok((201, body, _)) = &a {
                    let h = held(body);
                    mine.push(h.clone());
                    ledger.lock().expect("ledger").created.push(h);
                }
                a
            }
            1 => {
                let victim = mine.swap_remove(rng.gen_range(0..mine.len()));
                let a = api.delete(&victim.id);
                let mut l = ledger.lock().expect("ledger");
                match &a {
                    Ok((204, _, _)) => {
                        l.created.retain(|h| h.id != victim.id);
                        l.deleted.push(victim);
                    }
                    Err(_) => {
                        l.created.retain(|h| h.id != victim.id);
                        l.unsure_delete.push(victim);
                    }
                    Ok(_) => {}
                }
                a
            }
            _ => {
                let old = mine.swap_remove(rng.gen_range(0..mine.len()));
                let memo = format!("{tag} rotate {n}");
                let a = api.rotate(&old.id, &memo);
                let mut l = ledger.lock().expect("ledger");
                match &a {
                    Ok((201, body, _)) => {
                        let new = held(body);
                        l.created.retain(|h| h.id != old.id);
                        l.rotated.push((old, new.clone()));
                        mine.push(new);
                    }
                    Err(_) => {
                        l.created.retain(|h| h.id != old.id);
                        l.unsure_rotate.push((old, memo));
                    }
                    Ok(_) => {}
                }
                a
            }
        };
        ops.fetch_add(1, Ordering::Relaxed);
        match answer {
            Ok((status, body, _)) if status >= 500 => {
                ledger
                    .lock()
                    .expect("ledger")
                    .server_errors
                    .push(format!("{status} {body}"));
            }
            Ok((status, body, _)) if !(200..300).contains(&status) => {
                panic!("unexpected answer {status}: {body}")
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// Which store a SIGKILL round runs on.
enum Backend<'a> {
    Sqlite(&'a Path),
    Postgres(&'a str),
}

fn serve(data: &Path, backend: &Backend) -> Server {
    match backend {
        Backend::Sqlite(_) => Server::start_with(data, &[], "warn"),
        Backend::Postgres(url) => {
            Server::start_with(data, &["--database".into(), url.into()], "warn")
        }
    }
}

fn kill9(server: Server) {
    let status = Command::new("kill")
        .args(["-KILL", &server.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -9");
    drop(server);
}

/// 20 rounds of: concurrent writes, SIGKILL at a random moment, restart, check the ledger.
fn sigkill_rounds(backend: Backend) {
    let data = tempfile::tempdir().expect("temp dir");
    let data_dir = match &backend {
        Backend::Sqlite(d) => d.to_path_buf(),
        Backend::Postgres(_) => data.path().to_path_buf(),
    };
    let mut server = serve(&data_dir, &backend);
    let mut api = Api::sign_in(&server.url);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut rng = rand::thread_rng();
    let mut total_ops = 0;
    for round in 0..20 {
        let ops = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (api, ledger, ops) = (api.clone(), Arc::clone(&ledger), Arc::clone(&ops));
                std::thread::spawn(move || worker(api, format!("r{round}w{w}"), ledger, ops))
            })
            .collect();
        // A random moment, but not before some writes were answered.
        let deadline = Instant::now() + Duration::from_secs(20);
        while ops.load(Ordering::Relaxed) < 8 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..300)));
        kill9(server);
        for w in workers {
            w.join().expect("worker");
        }
        total_ops += ops.load(Ordering::Relaxed);
        server = serve(&data_dir, &backend);
        api = api.at(&server.url);
        check_ledger(&api, &ledger.lock().expect("ledger"), round);
        // What was unsure is now settled: fold it into the certain sets for later rounds.
        let mut l = ledger.lock().expect("ledger");
        settle(&api, &mut l);
    }
    let l = ledger.lock().expect("ledger");
    assert!(
        l.rotated.len() >= 20 && l.deleted.len() >= 20,
        "the rounds exercised rotations ({}) and deletes ({}) over {total_ops} requests",
        l.rotated.len(),
        l.deleted.len()
    );
    let log = server.log();
    for h in l.created.iter().chain(&l.deleted) {
        assert!(!log.contains(&h.key), "a whole key reached the server log");
    }
}

fn check_ledger(api: &Api, l: &Ledger, round: usize) {
    assert!(
        l.server_errors.is_empty(),
        "round {round}: 5xx answers before the kill: {:?}",
        l.server_errors
    );
    let listed = api.listed();
    let ids: HashSet<&str> = listed.iter().map(|(id, _)| id.as_str()).collect();
    let memos: HashSet<&str> = listed.iter().map(|(_, m)| m.as_str()).collect();
    let alive: Vec<&Held> = l
        .created
        .iter()
        .chain(l.rotated.iter().map(|(_, new)| new))
        .filter(|h| {
            // A rotated-to key may have been deleted or rotated again later.
            !l.deleted.iter().any(|d| d.id == h.id)
                && !l.rotated.iter().any(|(old, _)| old.id == h.id)
                && !l.unsure_delete.iter().any(|d| d.id == h.id)
                && !l.unsure_rotate.iter().any(|(old, _)| old.id == h.id)
        })
        .collect();
    for h in &alive {
        assert!(
            ids.contains(h.id.as_str()),
            "round {round}: an answered 201 ({}) is not listed after the restart",
            h.id
        );
        let (status, body, _) = api.account(&h.key).expect("account answers");
        assert_eq!(
            status, 200,
            "round {round}: an answered 201 key works: {body}"
        );
    }
    let gone: Vec<&Held> = l
        .deleted
        .iter()
        .chain(l.rotated.iter().map(|(old, _)| old))
        .collect();
    for h in &gone {
        assert!(
            !ids.contains(h.id.as_str()),
            "round {round}: an answered 204 (or rotated-away key) {} is listed again",
            h.id
        );
        let (status, _, _) = api.account(&h.key).expect("account answers");
        assert_eq!(status, 401, "round {round}: a deleted key stays refused");
    }
    let gone_keys: Vec<&str> = gone.iter().map(|h| h.key.as_str()).collect();
    assert!(
        api.statuses(&gone_keys).iter().all(|s| s == "revoked"),
        "round {round}: deleted keys look up as revoked"
    );
    // Unanswered deletes: done or not, but list, lookup and use agree.
    for h in &l.unsure_delete {
        let status = &api.statuses(&[&h.key])[0];
        let (used, _, _) = api.account(&h.key).expect("account answers");
        let is_listed = ids.contains(h.id.as_str());
        assert!(
            (status == "active" && used == 200 && is_listed)
                || (status == "revoked" && used == 401 && !is_listed),
            "round {round}: a delete cut off by the kill is half done: lookup {status}, \
             use {used}, listed {is_listed}"
        );
    }
    // Unanswered rotations: either the old key still works and no replacement exists, or the
    // old key is gone and its replacement is listed.
    for (old, memo) in &l.unsure_rotate {
        let status = &api.statuses(&[&old.key])[0];
        let replaced = memos.contains(memo.as_str());
        let old_listed = ids.contains(old.id.as_str());
        assert!(
            (status == "active" && old_listed && !replaced)
                || (status == "revoked" && !old_listed && replaced),
            "round {round}: a rotation cut off by the kill is half done: old key {status}, \
             old listed {old_listed}, replacement listed {replaced}"
        );
    }
}

/// Turn the unsure operations into certain ones by what the restarted server says.
fn settle(api: &Api, l: &mut Ledger) {
    for h in std::mem::take(&mut l.unsure_delete) {
        if api.statuses(&[&h.key])[0] == "active" {
            l.created.push(h);
        } else {
            l.deleted.push(h);
        }
    }
    for (old, _) in std::mem::take(&mut l.unsure_rotate) {
        // The replacement's key was never seen, so only the old key's fate is tracked.
        if api.statuses(&[&old.key])[0] == "active" {
            l.created.push(old);
        } else {
            l.deleted.push(old);
        }
    }
}

#[test]
fn sigkill_under_concurrent_writes_loses_nothing_answered_on_sqlite() {
    let data = tempfile::tempdir().expect("temp dir");
    add_member(data.path(), ADMIN, "admin", PASSWORD);
    sigkill_rounds(Backend::Sqlite(data.path()));
}

#[test]
fn sigkill_under_concurrent_writes_loses_nothing_answered_on_postgres() {
    let url = fresh_pg_schema(&shared_database_url());
    add_member_pg(&url);
    sigkill_rounds(Backend::Postgres(&url));
}

fn shared_database_url() -> String {
    match std::env::var("OFFKEY_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "OFFKEY_TEST_DATABASE_URL is not set: run the tests with scripts/test.sh (it installs \
             Debian's `postgresql` package when missing and starts a throwaway server)"
        ),
    }
}

/// A URL whose connections use a fresh, empty schema of `url`'s database.
fn fresh_pg_schema(url: &str) -> String {
    let schema = format!("faults_{}", offkey::store::new_id("").to_lowercase());
    let mut admin = postgres::Client::connect(url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .expect("create schema");
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

fn add_member_pg(url: &str) {
    let scratch = tempfile::tempdir().expect("temp dir");
    crate::common::offkey(scratch.path())
        .args([
            "members", "add", "--email", ADMIN, "--name", "Pat", "--role", "admin",
        ])
        .args(["--password-stdin", "--database", url])
        .env_remove("OFFKEY_DATABASE_URL")
        .write_stdin(format!("{PASSWORD}\n"))
        .assert()
        .success();
}

/// A small tmpfs mounted for one test (we run as root in CI; scripts/test.sh says so).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .expect("run mount (util-linux)");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs for the disk-full test: {} -- run the tests as root (or in a \
             container with CAP_SYS_ADMIN), with `mount` from util-linux installed",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Write until the file system says it is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("create filler");
    let chunk = vec![0u8; 16 * 1024];
    loop {
        if f.write_all(&chunk).and_then(|()| f.sync_all()).is_err() {
            break;
        }
    }
    // Also the last few bytes, so no page is left free.
    while f.write_all(&[0u8; 512]).is_ok() {}
    while f.write_all(&[0u8]).is_ok() {}
}

/// Creates until one is refused; every 201 on the way is kept in `answered`.
fn create_until_refused(
    api: &Api,
    answered: &mut Vec<Held>,
    what: &str,
) -> (u16, Value, Option<String>) {
    for i in 0..500 {
        let a = api.create(&format!("{what} {i}")).expect("create answers");
        if a.0 == 201 {
            answered.push(held(&a.1));
        } else {
            return a;
        }
    }
    panic!("{what}: 500 creates succeeded; the store never refused a write");
}

fn assert_refused_write(a: &(u16, Value, Option<String>), what: &str) {
    let (status, body, retry) = a;
    assert_eq!(
        *status, 503,
        "{what}: a write the store cannot keep answers 503: {body}"
    );
    assert_eq!(
        body["error"]["code"], "store_unavailable",
        "{what}: the error says the store is unavailable: {body}"
    );
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("cannot store"),
        "{what}: the message says what happened: {body}"
    );
    assert!(retry.is_some(), "{what}: a 503 carries Retry-After");
}

/// Reads answer while writes cannot be stored: the key list and the integration API.
fn assert_reads_work(api: &Api, answered: &[Held], what: &str) {
    let ids: HashSet<String> = api.listed().into_iter().map(|(id, _)| id).collect();
    for h in answered {
        assert!(ids.contains(&h.id), "{what}: an answered create is listed");
    }
    let (status, body, _) = api.account(&answered[0].key).expect("account answers");
    assert_eq!(status, 200, "{what}: integrations keep working: {body}");
    // (A lookup writes an audit event, so it is a write here.)
}

/// Creates succeed again within a few seconds, without a restart.
fn assert_recovers(api: &Api, answered: &mut Vec<Held>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let a = api
            .create(&format!("{what} recovered"))
            .expect("create answers");
        if a.0 == 201 {
            answered.push(held(&a.1));
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: writes did not recover by themselves: {} {}",
            a.0,
            a.1
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// After a test refused writes: the log of `server` says why and holds no whole key, SQLite's
/// integrity check passes, and after a restart every answered create is listed and works and
/// the answered delete stays deleted. The keys listed after the restart.
fn after_refused_writes(
    server: Server,
    data: &Path,
    api: &Api,
    answered: &[Held],
    deleted: &Held,
) -> Vec<(String, String)> {
    let log = server.stop();
    assert!(
        log.contains("key store unavailable"),
        "the server log says why writes were refused:\n{log}"
    );
    for h in answered.iter().chain([deleted]) {
        assert!(!log.contains(&h.key), "a whole key reached the server log");
    }
    let db = rusqlite::Connection::open(data.join("keys.db")).expect("open keys.db");
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    drop(db);
    let server = Server::start_with(data, &[], "warn");
    let api = api.at(&server.url);
    let listed = api.listed();
    let ids: HashSet<String> = listed.iter().map(|(id, _)| id.clone()).collect();
    for h in answered {
        assert!(ids.contains(&h.id), "an answered create survived");
        let (status, _, _) = api.account(&h.key).expect("account answers");
        assert_eq!(status, 200);
    }
    assert!(!ids.contains(&deleted.id), "the answered delete survived");
    listed
}

#[test]
fn disk_full_store_refuses_writes_with_503_keeps_reads_and_recovers_by_itself() {
    let fs = Tmpfs::mount("8m");
    let data = fs.path().join("data");
    add_member(&data, ADMIN, "admin", PASSWORD);
    let server = Server::start_with(&data, &[], "warn");
    let api = Api::sign_in(&server.url);
    let mut answered = Vec::new();
    for i in 0..5 {
        let a = api.create(&format!("before {i}")).expect("create answers");
        assert_eq!(a.0, 201, "{}", a.1);
        answered.push(held(&a.1));
    }

    // Disk full.
    let filler = fs.path().join("filler");
    fill(&filler);
    let refused = create_until_refused(&api, &mut answered, "disk full");
    assert_refused_write(&refused, "disk full");
    let (status, body, _) = api.delete(&answered[0].id).expect("delete answers");
    assert_eq!(status, 503, "disk full: a delete answers 503 too: {body}");
    assert_reads_work(&api, &answered, "disk full");
    let (status, body, _) = api.healthz().expect("healthz answers");
    assert_eq!(
        status, 200,
        "disk full: the store still answers reads: {body}"
    );
    std::fs::remove_file(&filler).expect("free the space");
    assert_recovers(&api, &mut answered, "after disk full");

    let (status, body, _) = api.delete(&answered[0].id).expect("delete answers");
    assert_eq!(status, 204, "{body}");
    let deleted = answered.remove(0);

    after_refused_writes(server, &data, &api, &answered, &deleted);
}

/// An ext4 file system in a loop-mounted image for one test: unlike tmpfs it keeps the immutable
/// attribute, which ext4 checks on every write, also through files already open.
struct Ext4 {
    dir: tempfile::TempDir,
    _image: tempfile::NamedTempFile,
}

impl Ext4 {
    fn mount(size: &str) -> Ext4 {
        let image = tempfile::NamedTempFile::new().expect("image file");
        let run = |cmd: &mut Command, what: &str| {
            let out = cmd
                .output()
                .unwrap_or_else(|e| panic!("run {what}: {e} -- install e2fsprogs and util-linux"));
            assert!(
                out.status.success(),
                "{what} failed: {} -- the read-only store test needs root (or CAP_SYS_ADMIN \
                 and loop devices), e2fsprogs (mkfs.ext4, chattr) and util-linux (mount)",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(
            Command::new("truncate")
                .args(["-s", size])
                .arg(image.path()),
            "truncate",
        );
        run(
            Command::new("mkfs.ext4")
                .args(["-q", "-F"])
                .arg(image.path()),
            "mkfs.ext4",
        );
        let dir = tempfile::tempdir().expect("mount point");
        run(
            Command::new("mount")
                .args(["-o", "loop"])
                .arg(image.path())
                .arg(dir.path()),
            "mount -o loop",
        );
        Ext4 { dir, _image: image }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Set (`+i`) or clear (`-i`) the immutable attribute on `paths`.
fn chattr(flag: &str, paths: &[PathBuf]) {
    let out = Command::new("chattr")
        .arg(flag)
        .args(paths)
        .output()
        .expect("run chattr (e2fsprogs)");
    assert!(
        out.status.success(),
        "chattr {flag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The store turning read-only under the running service. A read-only remount is refused by
/// the kernel while the service holds its database open (EBUSY), and ext4's own emergency
/// read-only (after an error) cannot be undone without unmounting, so the store's files and
/// folder are made immutable instead (ext4 refuses every write to them, from open files too,
/// with EPERM, as a read-only mount does with EROFS). SQLite's shared-memory index (`-shm`,
/// mapped into memory) stays writable: writes to an immutable mapping end in SIGBUS, which is
/// not a read-only store but a lost page. Writes answer 503, reads keep working, and writes
/// recover by themselves once the files are writable again; nothing is corrupted.
#[test]
fn read_only_store_refuses_writes_with_503_keeps_reads_and_recovers_by_itself() {
    let fs = Ext4::mount("64M");
    let data = fs.path().join("data");
    add_member(&data, ADMIN, "admin", PASSWORD);
    let server = Server::start_with(&data, &[], "warn");
    let api = Api::sign_in(&server.url);
    let mut answered = Vec::new();
    for i in 0..5 {
        let a = api.create(&format!("before {i}")).expect("create answers");
        assert_eq!(a.0, 201, "{}", a.1);
        answered.push(held(&a.1));
    }

    let mut frozen: Vec<PathBuf> = std::fs::read_dir(&data)
        .expect("list the store")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !p.to_string_lossy().ends_with("-shm"))
        .collect();
    assert!(
        frozen.iter().any(|p| p.ends_with("keys.db")),
        "the store is {}: {frozen:?}",
        data.display()
    );
    frozen.push(data.clone());
    chattr("+i", &frozen);

    let refused = api.create("read-only").expect("create answers");
    let still = api.create("read-only again").expect("create answers");
    let rotated = api
        .rotate(&answered[1].id, "read-only rotation")
        .expect("rotate answers");
    let deleted = api.delete(&answered[0].id).expect("delete answers");
    let reads_ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert_reads_work(&api, &answered, "read-only")
    }));
    let health = api.healthz().expect("healthz answers");
    chattr("-i", &frozen);
    assert_refused_write(&refused, "read-only store");
    assert_refused_write(&still, "read-only store, a second write");
    assert_eq!(
        rotated.0, 503,
        "read-only: a rotation answers 503 too: {}",
        rotated.1
    );
    assert_eq!(
        deleted.0, 503,
        "read-only: a delete answers 503 too: {}",
        deleted.1
    );
    assert!(reads_ok.is_ok(), "read-only: reads keep working");
    assert_eq!(
        health.0, 200,
        "read-only: the store still answers reads: {}",
        health.1
    );

    assert_recovers(&api, &mut answered, "after read-only");
    let (status, body, _) = api.delete(&answered[0].id).expect("delete answers");
    assert_eq!(status, 204, "{body}");
    let deleted = answered.remove(0);
    // The refused rotation left the old key working and made no new one.
    let (status, body, _) = api.account(&answered[0].key).expect("account answers");
    assert_eq!(
        status, 200,
        "the key of the refused rotation still works: {body}"
    );

    let listed = after_refused_writes(server, &data, &api, &answered, &deleted);
    assert_eq!(
        listed.len(),
        answered.len(),
        "nothing refused was stored: {listed:?}"
    );
}

/// A private PostgreSQL server for one test (so stopping it leaves the shared one alone),
/// started as scripts/test.sh does: initdb and pg_ctl from Debian's packages, as `postgres`.
struct PrivatePg {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivatePg {
    fn start() -> PrivatePg {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.path().join("bin"))
                    .filter(|b| b.join("pg_ctl").exists())
                    .max()
            })
            .unwrap_or_else(|| {
                panic!(
                    "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin: install \
                     Debian's `postgresql` package (scripts/test.sh does)"
                )
            });
        let dir = tempfile::tempdir().expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let _ = Command::new("useradd")
            .args(["--system", "--no-create-home", "postgres"])
            .stderr(Stdio::null())
            .status();
        let chown = Command::new("chown")
            .arg("postgres")
            .arg(dir.path())
            .status()
            .expect("chown");
        assert!(chown.success(), "chown postgres {}", dir.path().display());
        let pg = PrivatePg { bin, dir, port };
        let out = pg
            .as_postgres("initdb")
            .arg("-D")
            .arg(pg.data())
            .args(["-U", "offkey", "--auth=trust", "-E", "UTF8"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.start_again();
        let out = pg
            .as_postgres("createdb")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "offkey",
                "faults",
            ])
            .output()
            .expect("run createdb");
        assert!(
            out.status.success(),
            "createdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn as_postgres(&self, tool: &str) -> Command {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
        cmd
    }

    fn url(&self) -> String {
        format!("postgres://offkey@127.0.0.1:{}/faults", self.port)
    }

    fn start_again(&self) {
        let out = self
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .arg("-w")
            .arg("-o")
            .arg(format!(
                "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
                self.port,
                self.dir.path().display()
            ))
            .arg("start")
            .output()
            .expect("run pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn stop(&self) {
        let out = self
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output()
            .expect("run pg_ctl stop");
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        let _ = self
            .as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn postgres_stopped_and_started_under_load_fails_fast_with_503_and_recovers_without_restart() {
    let pg = PrivatePg::start();
    let url = pg.url();
    add_member_pg(&url);
    let data = tempfile::tempdir().expect("temp dir");
    let server = Server::start_with(data.path(), &["--database".into(), url.into()], "warn");
    let api = Api::sign_in(&server.url);
    let mut answered = Vec::new();
    for i in 0..3 {
        let a = api.create(&format!("before {i}")).expect("create answers");
        assert_eq!(a.0, 201, "{}", a.1);
        answered.push(held(&a.1));
    }

    // Load: readers and writers until told to stop; every answer is 2xx or 503, never a hang.
    let stop = Arc::new(AtomicBool::new(false));
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    let bad = Arc::new(Mutex::new(Vec::<String>::new()));
    let load: Vec<_> = (0..4)
        .map(|w| {
            let (api, stop, slowest, bad) = (
                api.clone(),
                Arc::clone(&stop),
                Arc::clone(&slowest),
                Arc::clone(&bad),
            );
            let key = answered[w % answered.len()].key.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let a = match n % 3 {
                        0 => api.list(),
                        1 => api.account(&key),
                        _ => api.create(&format!("load {w} {n}")),
                    };
                    let took = started.elapsed();
                    {
                        let mut s = slowest.lock().expect("slowest");
                        *s = (*s).max(took);
                    }
                    match a {
                        Ok((s, _, _)) if s < 300 => {}
                        Ok((503, _, Some(_))) => {}
                        Ok((s, body, retry)) => bad
                            .lock()
                            .expect("bad")
                            .push(format!("{s} {body} retry-after {retry:?}")),
                        Err(e) => bad.lock().expect("bad").push(format!("no answer: {e}")),
                    }
                    n += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    pg.stop();
    // /healthz says so, quickly.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body, retry) = api.healthz().expect("healthz answers");
        if status == 503 {
            assert_eq!(body["error"]["code"], "store_unavailable", "{body}");
            assert!(retry.is_some(), "Retry-After on /healthz");
            break;
        }
        assert!(Instant::now() < deadline, "/healthz kept saying ok: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Requests fail fast with 503 (not a hang, not a 500) while the database is away.
    for what in ["list", "create"] {
        let started = Instant::now();
        let a = if what == "list" {
            api.list()
        } else {
            api.create("while down")
        }
        .expect("answers");
        assert_refused_write(&a, &format!("{what} with PostgreSQL stopped"));
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{what} with PostgreSQL stopped hung for {:?}",
            started.elapsed()
        );
    }
    std::thread::sleep(Duration::from_secs(1));

    pg.start_again();
    // Recovery without a restart.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body, _) = api.healthz().expect("healthz answers");
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/healthz did not recover: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_recovers(&api, &mut answered, "after PostgreSQL came back");
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().expect("load thread");
    }
    let bad = bad.lock().expect("bad");
    assert!(
        bad.is_empty(),
        "answers other than 2xx or 503 with Retry-After: {bad:?}"
    );
    let slowest = *slowest.lock().expect("slowest");
    assert!(
        slowest < Duration::from_secs(8),
        "a request hung for {slowest:?} while PostgreSQL was away"
    );
    let ids: HashSet<String> = api.listed().into_iter().map(|(id, _)| id).collect();
    for h in &answered {
        assert!(
            ids.contains(&h.id),
            "an answered create survived the outage"
        );
    }
}
