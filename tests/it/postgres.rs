//! The key service on a real PostgreSQL (`OFFKEY_TEST_DATABASE_URL`, started by scripts/test.sh):
//! two `offkey serve` replicas on one database, `members add` racing from two processes,
//! `offkey store migrate` and `offkey store copy`. Each test uses its own schema.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use chrono::Utc;
use offkey::client::SessionToken;
use offkey::store::{NewKey, NewMember, Role, Rotation, SqliteStore, Store};

use crate::common::{offkey, offkey_bin};

const PASSWORD: &str = "correct horse battery staple";

fn database_url() -> String {
    match std::env::var("OFFKEY_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "OFFKEY_TEST_DATABASE_URL is not set: run the tests with scripts/test.sh (it installs \
             Debian's `postgresql` package when missing and starts a throwaway server), or point \
             OFFKEY_TEST_DATABASE_URL at a database in which you may create schemas"
        ),
    }
}

/// A URL whose connections use a fresh, empty schema.
pub(crate) fn fresh_url() -> String {
    let url = database_url();
    let schema = format!("it_{}", offkey::store::new_id("").to_lowercase());
    let mut admin = postgres::Client::connect(&url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("cannot connect to OFFKEY_TEST_DATABASE_URL: {e}"));
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .expect("create schema");
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

/// `offkey serve --database URL` on a free port.
pub(crate) struct Replica {
    child: Child,
    url: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Replica {
    fn start(db: &str) -> Replica {
        Self::start_with(db, &["--listen", "127.0.0.1:0"])
    }

    fn start_with(db: &str, args: &[&str]) -> Replica {
        let mut child = Command::new(offkey_bin())
            .args(["serve", "--database", db])
            .args(args)
            .env_remove("OFFKEY_DATA")
            .env_remove("OFFKEY_DATABASE_URL")
            .env("OFFKEY_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start offkey serve");
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                {
                    let mut l = sink.lock().expect("log lock");
                    l.push_str(&line);
                    l.push('\n');
                }
                if let Some(url) = line.strip_prefix("offkey serve listening on ") {
                    let _ = tx.send(Ok(url.trim().to_owned()));
                }
            }
            let _ = tx.send(Err(()));
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(url)) => Replica { child, url, log },
            _ => {
                let _ = child.kill();
                panic!(
                    "offkey serve --database did not start: {}",
                    log.lock().expect("log lock")
                );
            }
        }
    }

    /// Everything the replica wrote on stderr so far.
    pub(crate) fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    fn client(&self) -> offkey::client::Client {
        offkey::client::Client::new(&self.url).expect("client")
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn members_add(db: &str, email: &str) -> std::process::Output {
    let scratch = tempfile::tempdir().expect("temp dir");
    offkey(scratch.path())
        .args([
            "members", "add", "--email", email, "--name", "Pat", "--role", "admin",
        ])
        .args(["--password-stdin", "--database", db])
        .env_remove("OFFKEY_DATABASE_URL")
        .write_stdin(format!("{PASSWORD}\n"))
        .output()
        .expect("run members add")
}

#[test]
fn two_replicas_share_keys_and_a_delete_is_refused_by_the_other_at_once() {
    let db = fresh_url();
    let out = members_add(&db, "admin@example.com");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let a = Replica::start(&db);
    let b = Replica::start(&db);
    let login = a
        .client()
        .login("admin@example.com", PASSWORD)
        .expect("login on a");
    let token = login.token.expose().to_owned();
    let on_a = a.client().with_token(SessionToken::new(token.clone()));
    let on_b = b.client().with_token(SessionToken::new(token));
    for round in 0..5 {
        let created = on_a
            .create_key(&format!("round {round}"))
            .expect("create on a");
        assert!(
            on_b.list_keys()
                .expect("list on b")
                .iter()
                .any(|k| k.id == created.info.id),
            "the session and the key are seen by the other replica"
        );
        assert!(
            b.client().account(&created.key).is_ok(),
            "the key works on b"
        );
        on_b.delete_key(&created.info.id).expect("delete on b");
        assert!(
            a.client().account(&created.key).is_err(),
            "round {round}: a key deleted on b is refused by a on the very next request"
        );
    }
}

#[test]
fn two_members_add_processes_of_one_email_give_one_member() {
    let db = fresh_url();
    // Create the schema first so both processes race on the insert, not on the migration.
    let out = members_add(&db, "first@example.com");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for round in 0..4 {
        let email = format!("twin{round}@example.com");
        let (x, y) = std::thread::scope(|s| {
            let x = s.spawn(|| members_add(&db, &email));
            let y = s.spawn(|| members_add(&db, &email.to_uppercase()));
            (x.join().expect("x"), y.join().expect("y"))
        });
        let ok = [&x, &y].iter().filter(|o| o.status.success()).count();
        assert_eq!(ok, 1, "round {round}: exactly one add succeeds");
        let failed = if x.status.success() { &y } else { &x };
        let err = String::from_utf8_lossy(&failed.stderr);
        assert!(err.contains("already exists"), "round {round}: {err}");
    }
    let store = offkey::store::PgStore::open(&db).expect("open");
    let n = store.list_members().expect("list").len();
    assert_eq!(n, 5);
}

#[test]
fn store_migrate_applies_once_and_bad_urls_say_what_is_wrong() {
    let db = fresh_url();
    let scratch = tempfile::tempdir().expect("temp dir");
    let first = offkey(scratch.path())
        .args(["store", "migrate", "--database", &db])
        .output()
        .expect("migrate");
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let known = offkey::store::PgStore::schema_version();
    assert!(
        String::from_utf8_lossy(&first.stderr).contains(&format!("schema version 0 -> {known}")),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let again = offkey(scratch.path())
        .args(["store", "migrate", "--database", &db])
        .output()
        .expect("migrate");
    assert!(String::from_utf8_lossy(&again.stderr).contains("up to date"));
    let bad = offkey(scratch.path())
        .args([
            "store",
            "migrate",
            "--database",
            "postgres://u:hunter2@127.0.0.1:1/x?sslmode=allow",
        ])
        .output()
        .expect("migrate");
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("sslmode") && !err.contains("hunter2"), "{err}");
    let down = offkey(scratch.path())
        .args([
            "store",
            "migrate",
            "--database",
            "postgres://u:hunter2@127.0.0.1:1/x",
        ])
        .output()
        .expect("migrate");
    let err = String::from_utf8_lossy(&down.stderr);
    assert_eq!(down.status.code(), Some(2));
    assert!(
        err.contains("cannot connect to the key store 127.0.0.1:1/x"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

fn key(memo: &str) -> (offkey::key::Secret, NewKey) {
    let secret = offkey::key::generate();
    let k = NewKey {
        id: offkey::store::new_id("key_"),
        sha256: secret.sha256(),
        last4: secret.last4().to_owned(),
        memo: memo.into(),
        kind: offkey::key::KeyKind::Current,
        created_at: Utc::now(),
        created_by: None,
    };
    (secret, k)
}

fn copy(data: &Path, db: &str) -> String {
    let scratch = tempfile::tempdir().expect("temp dir");
    let out = offkey(scratch.path())
        .args(["store", "copy", "--from-data"])
        .arg(data)
        .args(["--to", db])
        .output()
        .expect("copy");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    err
}

#[test]
fn store_copy_moves_everything_checks_it_and_twice_changes_nothing() {
    let data = tempfile::tempdir().expect("temp dir");
    let (kept_s, kept, gone_s, old_s, new_s);
    {
        let s = SqliteStore::open(&data.path().join("keys.db")).expect("open sqlite");
        let now = Utc::now();
        let m = s
            .add_member(
                NewMember {
                    id: offkey::store::new_id("mem_"),
                    email: "copy@example.com".into(),
                    name: "C".into(),
                    role: Role::Admin,
                    password_hash: "$argon2id$fake".into(),
                },
                now,
            )
            .expect("member");
        s.create_session("token-hash", &m.id, now, now + chrono::Duration::hours(8))
            .expect("session");
        let k;
        (kept_s, k) = key("kept");
        kept = k.id.clone();
        s.create_key(k, "t").expect("kept");
        let (g_s, g) = key("gone");
        gone_s = g_s;
        let gid = g.id.clone();
        s.create_key(g, "t").expect("gone");
        s.delete_key(&gid, now, "t")
            .expect("delete")
            .expect("deleted");
        let (o_s, o) = key("old");
        old_s = o_s;
        let oid = o.id.clone();
        s.create_key(o, "t").expect("old");
        let (n_s, n) = key("");
        new_s = n_s;
        s.rotate_key(
            Rotation {
                old_id: oid,
                new: n,
                old_expires_at: now + chrono::Duration::days(1),
                until_first_use: true,
            },
            "t",
        )
        .expect("rotate")
        .expect("rotated");
        s.record_exposures(
            &[offkey::store::ExposureReport {
                sha256: kept_s.sha256(),
                source: "offkey scan".into(),
                location: "a.py:1".into(),
                seen_at: now,
            }],
            now,
            "t",
        )
        .expect("exposure");
    }
    let db = fresh_url();
    let first = copy(data.path(), &db);
    assert!(
        first.contains("keys: 4 in the source, 4 newly copied"),
        "{first}"
    );
    assert!(first.contains("counts and key hashes match"), "{first}");
    let second = copy(data.path(), &db);
    for table in ["members", "sessions", "keys", "exposures", "audit events"] {
        assert!(second.contains(&format!("{table}: ")), "{second}");
    }
    assert!(
        !second.contains(" 1 newly") && second.contains("0 newly copied"),
        "{second}"
    );
    for secret in [&kept_s, &gone_s, &old_s, &new_s] {
        let k = secret.expose();
        assert!(
            !first.contains(k) && !second.contains(k),
            "no key in the output"
        );
    }

    let pg = offkey::store::PgStore::open(&db).expect("open pg");
    let now = Utc::now();
    let listed = pg.list_keys(now).expect("list");
    assert_eq!(
        listed.len(),
        3,
        "the deleted key stays a tombstone, not listed"
    );
    let kept_rec = listed.iter().find(|k| k.id == kept).expect("kept");
    assert_eq!(kept_rec.exposures.count, 1);
    let hits = pg
        .lookup(&[gone_s.sha256(), kept_s.sha256()], now, "t")
        .expect("lookup");
    assert_eq!(hits[0].status, offkey::store::LookupStatus::Revoked);
    assert_eq!(hits[1].status, offkey::store::LookupStatus::Active);
    // The rotation link survived: the new key's first use retires the old one.
    assert!(pg.use_key(&old_s.sha256(), now).expect("use").is_some());
    assert!(pg.use_key(&new_s.sha256(), now).expect("use").is_some());
    assert!(pg.use_key(&old_s.sha256(), now).expect("use").is_none());
    assert!(pg.session("token-hash", now).expect("session").is_some());
    let before = pg.audit_log(1, None).expect("audit")[0].id;
    pg.audit(
        offkey::store::AuditEntry {
            actor: None,
            action: "after_copy".into(),
            key_id: None,
            detail: None,
        },
        now,
    )
    .expect("audit");
    assert!(
        pg.audit_log(1, None).expect("audit")[0].id > before,
        "ids continue after the copy"
    );
}

#[test]
fn healthz_answers_503_while_the_database_is_unreachable_and_200_again_after() {
    let url = database_url();
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let name = format!("hz_{}", offkey::store::new_id("").to_lowercase());
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create database");
    let (base, _) = url.split_once('?').unwrap_or((&url, ""));
    let (server, _) = base.rsplit_once('/').expect("a database in the URL");
    let db = format!("{server}/{name}");
    let replica = Replica::start(&db);
    let health = |path: &str| {
        let resp = reqwest::blocking::get(format!("{}{path}", replica.url)).expect("request");
        let retry = resp.headers().get("retry-after").cloned();
        (
            resp.status().as_u16(),
            retry,
            resp.text().unwrap_or_default(),
        )
    };
    assert_eq!(health("/healthz").0, 200);
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .expect("cut the replica off");
    let (status, retry, body) = health("/healthz");
    assert_eq!(status, 503, "{body}");
    assert!(retry.is_some(), "Retry-After");
    assert!(body.contains("store_unavailable"), "{body}");
    admin
        .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .expect("let it back");
    assert_eq!(
        health("/healthz").0,
        200,
        "healthy again once the database is back"
    );
}

#[test]
fn tls_through_rustls_verifies_the_server_certificate() {
    let url = database_url();
    let ca = std::env::var("OFFKEY_TEST_PG_CA").unwrap_or_else(|_| {
        panic!(
            "OFFKEY_TEST_PG_CA is not set: the TLS test needs the CA of a TLS-enabled test server \
             (scripts/test.sh makes one with openssl and starts PostgreSQL with ssl=on)"
        )
    });
    let (base, _) = url.split_once('?').unwrap_or((&url, ""));
    // Our CA: a TLS connection, and the store works over it.
    let tls_url = format!("{base}?sslmode=verify-full&sslrootcert={ca}");
    let parsed = offkey::store::DbUrl::parse(&tls_url).expect("parse");
    let mut client = parsed
        .config
        .connect(parsed.tls().expect("tls"))
        .expect("a TLS connection to the test server");
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .expect("pg_stat_ssl")
        .get(0);
    assert!(ssl, "the connection is encrypted");
    offkey::store::PgStore::connect(&tls_url)
        .expect("the store over TLS")
        .ping()
        .expect("ping over TLS");
    // Without our CA (the Mozilla roots only), the self-made certificate is refused.
    let untrusted = offkey::store::PgStore::connect(&format!("{base}?sslmode=require"));
    let err = untrusted.expect_err("an unknown CA is refused").to_string();
    assert!(err.contains("cannot connect to the key store"), "{err}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// haproxy in front of `backends`, round robin, health-checked on `GET /healthz`.
pub(crate) struct Balancer {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Balancer {
    pub(crate) fn start(backends: &[&Replica]) -> Balancer {
        let haproxy = ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or_else(|| {
                panic!(
                    "haproxy is not installed: `apt-get install haproxy` (scripts/test.sh does it)"
                )
            });
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut servers = String::new();
        for (i, b) in backends.iter().enumerate() {
            let addr = b.url.trim_start_matches("http://");
            servers.push_str(&format!(
                "    server r{i} {addr} check inter 200ms fall 1 rise 1\n"
            ));
        }
        let cfg = format!(
            "global\n    maxconn 256\ndefaults\n    mode http\n    timeout connect 1s\n    \
             timeout client 10s\n    timeout server 10s\n    retries 2\n    option redispatch\n\
             frontend f\n    bind 127.0.0.1:{port}\n    default_backend b\n\
             backend b\n    balance roundrobin\n    option httpchk GET /healthz\n{servers}"
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, cfg).expect("write haproxy.cfg");
        let mut child = Command::new(haproxy)
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy");
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if reqwest::blocking::get(format!("{url}/healthz")).is_ok_and(|r| r.status() == 200) {
                return Balancer {
                    child,
                    url,
                    _dir: dir,
                };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("haproxy did not start on {url}");
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn three_replicas_behind_haproxy_share_one_store_and_survive_losing_one() {
    let db = fresh_url();
    let out = members_add(&db, "lb@example.com");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replicas: Vec<Replica> = (0..3).map(|_| Replica::start(&db)).collect();
    let lb = Balancer::start(&replicas.iter().collect::<Vec<_>>());
    let anon = || offkey::client::Client::new(&lb.url).expect("client");
    let login = anon()
        .login("lb@example.com", PASSWORD)
        .expect("sign in through the balancer");
    let admin = anon().with_token(login.token);
    let mut created = Vec::new();
    for i in 0..6 {
        created.push(admin.create_key(&format!("lb {i}")).expect("create"));
    }
    for c in &created {
        // Three uses: round robin sends them to three replicas.
        for _ in 0..3 {
            assert!(
                anon().account(&c.key).is_ok(),
                "the key works on every replica"
            );
        }
    }
    let listed = admin.list_keys().expect("list");
    assert!(
        created
            .iter()
            .all(|c| listed.iter().any(|k| k.id == c.info.id))
    );
    let doomed = &created[0];
    admin.delete_key(&doomed.info.id).expect("delete");
    for _ in 0..3 {
        assert!(
            anon().account(&doomed.key).is_err(),
            "a delete answered by one replica is refused by the others on the very next request"
        );
    }
    // Lose one replica: the balancer routes around it and nothing answered is lost.
    let mut replicas = replicas;
    let mut dead = replicas.remove(1);
    let _ = dead.child.kill();
    let _ = dead.child.wait();
    let mut answered = Vec::new();
    for i in 0..12 {
        // A request in flight to the killed replica may fail once; what was answered counts.
        if let Ok(c) = admin.create_key(&format!("after {i}")) {
            answered.push(c);
        }
    }
    assert!(
        answered.len() >= 10,
        "the balancer routes around the dead replica"
    );
    let listed = admin.list_keys().expect("list");
    for c in &answered {
        assert!(
            listed.iter().any(|k| k.id == c.info.id),
            "every answered 201 is listed"
        );
        assert!(anon().account(&c.key).is_ok(), "and works");
    }
    assert!(
        anon().account(&doomed.key).is_err(),
        "the deleted key stays deleted"
    );
}

#[test]
fn keys_import_legacy_takes_the_database_option_and_wins_over_data() {
    let db = fresh_url();
    let data = tempfile::tempdir().expect("temp dir");
    let legacy = hex::encode(rand::random::<[u8; 16]>());
    let scratch = tempfile::tempdir().expect("temp dir");
    let out = offkey(scratch.path())
        .args(["keys", "import-legacy", "--database", &db])
        .env("OFFKEY_DATA", data.path())
        .env_remove("OFFKEY_DATABASE_URL")
        .write_stdin(format!(
            "{{\"key\":\"{legacy}\",\"memo\":\"old integration\"}}\n"
        ))
        .output()
        .expect("import");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains(&legacy), "the key is never echoed: {err}");
    assert!(
        !data.path().join("keys.db").exists(),
        "--database wins over OFFKEY_DATA"
    );
    let store = offkey::store::PgStore::open(&db).expect("open");
    let hit = &store
        .lookup(
            &[offkey::key::sha256_hex(legacy.as_bytes())],
            Utc::now(),
            "t",
        )
        .expect("lookup")[0];
    assert_eq!(hit.status, offkey::store::LookupStatus::Active);
}

/// Three replicas on the database `db` behind haproxy: what the browser test runs against.
pub(crate) struct Balanced {
    /// The balancer's URL.
    pub(crate) url: String,
    replicas: Vec<Replica>,
    _lb: Balancer,
}

impl Balanced {
    pub(crate) fn start(db: &str) -> Balanced {
        let replicas: Vec<Replica> = (0..3).map(|_| Replica::start(db)).collect();
        let lb = Balancer::start(&replicas.iter().collect::<Vec<_>>());
        Balanced {
            url: lb.url.clone(),
            replicas,
            _lb: lb,
        }
    }

    /// The three replicas' logs.
    pub(crate) fn log(&self) -> String {
        self.replicas
            .iter()
            .enumerate()
            .map(|(i, r)| format!("--- replica {i} ---\n{}", r.log()))
            .collect()
    }
}

/// Three replicas and a balancer in front of them, on a fresh schema with one admin.
fn three_behind_haproxy(email: &str, serve_args: &[&str]) -> (String, Vec<Replica>, Balancer) {
    let db = fresh_url();
    let out = members_add(&db, email);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut args = vec!["--listen", "127.0.0.1:0"];
    args.extend_from_slice(serve_args);
    let replicas: Vec<Replica> = (0..3).map(|_| Replica::start_with(&db, &args)).collect();
    let lb = Balancer::start(&replicas.iter().collect::<Vec<_>>());
    (db, replicas, lb)
}

#[test]
fn three_replicas_behind_haproxy_allow_the_sign_in_limit_once_not_three_times() {
    // Room for every password check at once on each replica, so only the limiter refuses.
    let (_db, _replicas, lb) =
        three_behind_haproxy("limit@example.com", &["--max-password-checks", "16"]);
    let admin = offkey::client::Client::new(&lb.url)
        .expect("client")
        .with_token(
            offkey::client::Client::new(&lb.url)
                .expect("client")
                .login("limit@example.com", PASSWORD)
                .expect("sign in")
                .token,
        );
    // 15 wrong guesses at once from one address (haproxy's, 127.0.0.1): round robin gives
    // each replica five, so replicas counting on their own would check all fifteen.
    let url = format!("{}/v1/session", lb.url);
    let barrier = std::sync::Barrier::new(15);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..15)
            .map(|i| {
                let (url, barrier) = (&url, &barrier);
                s.spawn(move || {
                    let client = reqwest::blocking::Client::new();
                    barrier.wait();
                    let r = client
                        .post(url)
                        .json(&serde_json::json!({
                            "email": "limit@example.com",
                            "password": format!("guess {i}"),
                        }))
                        .send()
                        .expect("an answer");
                    let status = r.status().as_u16();
                    if status == 429 {
                        assert!(
                            r.headers().contains_key("retry-after"),
                            "429 without Retry-After"
                        );
                    }
                    status
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let count = |code| statuses.iter().filter(|s| **s == code).count();
    assert_eq!((count(401), count(429)), (5, 10), "{statuses:?}");
    // The next guess, on whichever replica, is refused too; the right password as well (the
    // pair is blocked for the minute), while the admin's session works everywhere.
    for _ in 0..3 {
        let r = offkey::client::Client::new(&lb.url)
            .expect("client")
            .login("limit@example.com", "one more guess");
        assert!(r.is_err());
    }
    let events = admin.audit(1000).expect("audit");
    let actions = |a: &str| events.iter().filter(|e| e.action == a).count();
    assert_eq!(
        actions("login_failed"),
        5,
        "five checks, on all replicas together"
    );
    assert_eq!(
        actions("login_refused"),
        1,
        "thirteen refusals in one window, one audit row"
    );
}

#[test]
fn sigkill_of_one_replica_mid_burst_loses_nothing_answered_and_it_serves_again() {
    use offkey::client::RotateRequest;
    use std::sync::atomic::{AtomicBool, Ordering};

    let (db, mut replicas, lb) = three_behind_haproxy("burst@example.com", &[]);
    let anon = || offkey::client::Client::new(&lb.url).expect("client");
    let token = anon()
        .login("burst@example.com", PASSWORD)
        .expect("sign in")
        .token
        .expose()
        .to_owned();
    let admin = || anon().with_token(SessionToken::new(token.clone()));

    /// What a worker was answered.
    #[derive(Default)]
    struct Answered {
        live: Vec<offkey::client::CreatedKey>,
        deleted: Vec<offkey::key::Secret>,
        retired: Vec<offkey::key::Secret>,
        ops: usize,
        after_kill: usize,
        errors: Vec<String>,
    }
    let stop = AtomicBool::new(false);
    let killed = AtomicBool::new(false);
    let results: Vec<Answered> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (stop, killed, admin) = (&stop, &killed, &admin);
                s.spawn(move || {
                    let c = admin();
                    let mut a = Answered::default();
                    let mut i = 0usize;
                    while !stop.load(Ordering::SeqCst) {
                        i += 1;
                        let after = killed.load(Ordering::SeqCst);
                        let done = match i % 3 {
                            // Delete the oldest live key.
                            0 if !a.live.is_empty() => {
                                let k = a.live.remove(0);
                                match c.delete_key(&k.info.id) {
                                    Ok(()) => {
                                        a.deleted.push(k.key);
                                        true
                                    }
                                    Err(e) => {
                                        a.errors.push(format!("delete: {e}"));
                                        false
                                    }
                                }
                            }
                            // Rotate the newest live key, the old one retired at once.
                            1 if !a.live.is_empty() => {
                                let k = a.live.pop().expect("not empty");
                                let req = RotateRequest {
                                    memo: None,
                                    grace_seconds: Some(0),
                                    until_first_use: false,
                                };
                                match c.rotate(&k.info.id, &req) {
                                    Ok(r) => {
                                        a.retired.push(k.key);
                                        a.live.push(offkey::client::CreatedKey {
                                            key: r.key,
                                            info: r.info,
                                        });
                                        true
                                    }
                                    Err(e) => {
                                        a.errors.push(format!("rotate: {e}"));
                                        false
                                    }
                                }
                            }
                            _ => match c.create_key(&format!("w{w} {i}")) {
                                Ok(k) => {
                                    a.live.push(k);
                                    true
                                }
                                Err(e) => {
                                    a.errors.push(format!("create: {e}"));
                                    false
                                }
                            },
                        };
                        if done {
                            a.ops += 1;
                            a.after_kill += usize::from(after);
                        }
                    }
                    a
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(800));
        // SIGKILL (what `Child::kill` sends on Unix): no shutdown, requests in flight cut.
        let _ = replicas[1].child.kill();
        let _ = replicas[1].child.wait();
        killed.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::SeqCst);
        workers
            .into_iter()
            .map(|h| h.join().expect("worker"))
            .collect()
    });
    let ops: usize = results.iter().map(|a| a.ops).sum();
    let after: usize = results.iter().map(|a| a.after_kill).sum();
    let errors: Vec<&String> = results.iter().flat_map(|a| &a.errors).collect();
    eprintln!(
        "burst: {ops} answered, {after} after the kill, {} errors",
        errors.len()
    );
    assert!(
        after >= 20,
        "the balancer routes around the dead replica: {after} after"
    );
    // A request in flight on the killed replica may be cut (one per worker at most, and a
    // few more while haproxy has not yet seen the health check fail).
    assert!(errors.len() <= 12, "{errors:?}");
    let c = admin();
    let listed = c.list_keys().expect("list");
    for a in &results {
        for k in &a.live {
            assert!(
                listed.iter().any(|l| l.id == k.info.id),
                "every answered 201 is listed"
            );
            assert!(anon().account(&k.key).is_ok(), "and works");
        }
        for k in a.deleted.iter().chain(&a.retired) {
            assert!(
                anon().account(k).is_err(),
                "every answered delete (and retired key) stays refused"
            );
        }
    }
    let deleted: usize = results.iter().map(|a| a.deleted.len()).sum();
    let retired: usize = results.iter().map(|a| a.retired.len()).sum();
    assert!(
        deleted > 0 && retired > 0,
        "{deleted} deletes, {retired} rotations"
    );

    // Restart it where it was: the balancer's health check takes it back, and it serves.
    let addr = replicas[1].url.trim_start_matches("http://").to_owned();
    replicas[1] = Replica::start_with(&db, &["--listen", &addr]);
    let probe = &results
        .iter()
        .find(|a| !a.live.is_empty())
        .expect("a live key")
        .live[0];
    assert!(
        offkey::client::Client::new(&replicas[1].url)
            .expect("client")
            .account(&probe.key)
            .is_ok(),
        "the restarted replica serves"
    );
    std::thread::sleep(Duration::from_millis(600));
    for _ in 0..6 {
        assert!(
            anon().account(&probe.key).is_ok(),
            "every replica behind the balancer answers"
        );
    }
}
