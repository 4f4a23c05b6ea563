//! The key service end to end: `offkey serve` on an ephemeral port, driven over a real socket by
//! the library's client and by the CLI (`members`, `login`, `keys`, `logout`). Keys are fake,
//! generated at test time; no whole key may appear in the server log or the CLI's stderr.

use offkey::client::{ExposureReport, LookupStatus, RotateRequest, SessionToken};
use offkey::key::{generate, sha256_hex};

use crate::common::{Server, add_member, offkey};

const PASSWORD: &str = "correct horse battery staple";

fn assert_secret_free(text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "a secret leaked into:\n{text}");
    }
}

#[test]
fn cli_and_client_end_to_end() {
    let data = tempfile::tempdir().expect("temp dir");
    let config = tempfile::tempdir().expect("temp dir");
    add_member(data.path(), "admin@example.com", "admin", PASSWORD);
    add_member(data.path(), "member@example.com", "member", PASSWORD);
    let server = Server::start(data.path());
    let cli = || offkey(config.path());

    // Not signed in yet.
    cli()
        .args(["keys", "list", "--server", &server.url])
        .assert()
        .code(2);

    let wrong = cli()
        .args([
            "login",
            "--server",
            &server.url,
            "--email",
            "admin@example.com",
        ])
        .arg("--password-stdin")
        .write_stdin("not-the-password\n")
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    let wrong = String::from_utf8_lossy(&wrong);
    assert!(wrong.contains("wrong email or password"), "{wrong}");
    assert_secret_free(&wrong, &["not-the-password"]);

    cli()
        .args([
            "login",
            "--server",
            &server.url,
            "--email",
            "admin@example.com",
            "--password-stdin",
        ])
        .write_stdin(format!("{PASSWORD}\n"))
        .assert()
        .success();
    let session_file = config.path().join("session.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&session_file)
            .expect("saved")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&session_file).expect("read")).expect("json");
    let token = saved["token"].as_str().expect("token").to_owned();

    // Create: the key once on stdout, the advice on stderr.
    let out = cli()
        .args(["keys", "create", "--memo", "Fulfillment integration"])
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let stderr = String::from_utf8(out.stderr).expect("utf-8");
    let key = stdout.trim().to_owned();
    assert!(offkey::key::is_current(key.as_bytes()), "{stdout}");
    assert_eq!(stdout.lines().count(), 1);
    assert!(
        stderr.contains("not into a doc, an email or a chat"),
        "{stderr}"
    );
    assert_secret_free(&stderr, &[&key, &token]);
    let last4 = &key[key.len() - 4..];

    // The saved token is never sent to another server.
    let other = cli()
        .args(["keys", "list", "--server", "http://127.0.0.1:9"])
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&other).contains("signed in to"));

    // The table: memo, …last4, created by, never used.
    let table = cli()
        .args(["keys", "list"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let table = String::from_utf8(table).expect("utf-8");
    assert!(table.contains("Fulfillment integration"), "{table}");
    assert!(table.contains(&format!("oc_live_…{last4}")), "{table}");
    assert!(table.contains("never"), "{table}");
    assert!(table.contains("Test Person"), "{table}");
    assert_secret_free(&table, &[&key]);

    // The library client with the saved token.
    let client = server.client().with_token(SessionToken::new(token.clone()));
    assert_eq!(client.me().expect("me").role, "admin");
    let listed = client.list_keys().expect("list");
    assert_eq!(listed.len(), 1);
    let id = listed[0].id.clone();
    assert_eq!(listed[0].last4, last4);
    assert!(listed[0].last_used_at.is_none());

    // An integration call records the use; a lookup does not.
    let secret = offkey::key::Secret::parse(&key).expect("key");
    let account = client.account(&secret).expect("account");
    assert_eq!(account.key_id, id);
    let used = client.list_keys().expect("list")[0].last_used_at;
    assert!(used.is_some());
    let hits = client
        .lookup_keys(std::slice::from_ref(&secret))
        .expect("lookup");
    assert_eq!(hits[0].status, LookupStatus::Active);
    assert_eq!(client.list_keys().expect("list")[0].last_used_at, used);
    let table = cli()
        .args(["keys", "list"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(String::from_utf8_lossy(&table).contains("just now"));

    // JSON list.
    let json = cli()
        .args(["keys", "list", "--json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&json).expect("json");
    assert_eq!(json["keys"][0]["id"], id.as_str());

    // Exposures through the client.
    let n = client
        .record_exposures(&[ExposureReport {
            sha256: sha256_hex(key.as_bytes()),
            source: "offkey scan".into(),
            location: "src/app.py:12 @ 3f2a9c1".into(),
            seen_at: chrono::Utc::now(),
        }])
        .expect("exposures");
    assert_eq!(n, 1);
    assert_eq!(client.list_keys().expect("list")[0].exposures.count, 1);

    // Rotation through the client: until first use, an hour at most.
    let rotated = client
        .rotate(
            &id,
            &RotateRequest {
                memo: None,
                grace_seconds: Some(3600),
                until_first_use: true,
            },
        )
        .expect("rotate");
    assert_eq!(rotated.replaces, id);
    assert_eq!(rotated.info.memo, "Fulfillment integration");
    client.account(&secret).expect("old key still works");
    client.account(&rotated.key).expect("new key works");
    let err = client
        .account(&secret)
        .expect_err("old key retired at the new key's first use");
    assert_eq!(err.status(), Some(401));
    assert_secret_free(&err.to_string(), &[&key]);
    let new_id = rotated.info.id.clone();

    // Delete: refuses without confirmation off a terminal, then --yes.
    cli().args(["keys", "delete", &new_id]).assert().code(2);
    client.account(&rotated.key).expect("still works");
    let out = cli()
        .args(["keys", "delete", &new_id, "--yes"])
        .assert()
        .success()
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Fulfillment integration"), "{stderr}");
    assert!(stderr.contains("last used"), "{stderr}");
    let err = client.account(&rotated.key).expect_err("deleted");
    assert_eq!(err.status(), Some(401));
    let hits = client
        .lookup_keys(&[rotated.key.clone(), secret.clone()])
        .expect("lookup");
    assert!(hits.iter().all(|h| h.status == LookupStatus::Revoked));
    assert!(hits.iter().all(|h| h.deleted_at.is_some()));
    cli()
        .args(["keys", "delete", &new_id, "--yes"])
        .assert()
        .code(2);

    // A member may sign in but not manage keys.
    let member = server.client();
    let login = member
        .login("member@example.com", PASSWORD)
        .expect("member login");
    let member = member.with_token(login.token);
    assert_eq!(member.me().expect("me").role, "member");
    assert_eq!(member.list_keys().expect_err("403").status(), Some(403));
    assert_eq!(
        server
            .client()
            .login("member@example.com", "nope")
            .expect_err("401")
            .status(),
        Some(401)
    );

    // The audit log saw it all.
    let actions: Vec<String> = client
        .audit(100)
        .expect("audit")
        .into_iter()
        .map(|e| e.action)
        .collect();
    for a in [
        "create",
        "lookup",
        "rotate",
        "retire",
        "delete",
        "login",
        "login_failed",
        "exposure",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }

    // Logout ends the session at once and forgets it.
    cli().args(["logout"]).assert().success();
    assert!(!session_file.exists());
    assert_eq!(client.me().expect_err("ended").status(), Some(401));
    cli()
        .args(["keys", "list", "--server", &server.url])
        .assert()
        .code(2);

    let log = server.stop();
    assert!(log.contains("/v1/keys"), "requests are logged:\n{log}");
    assert!(log.contains("status=201"), "{log}");
    assert_secret_free(&log, &[&key, rotated.key.expose(), &token, PASSWORD]);
}

#[test]
fn legacy_import_and_restart_keep_every_key() {
    let data = tempfile::tempdir().expect("temp dir");
    let config = tempfile::tempdir().expect("temp dir");
    add_member(data.path(), "admin@example.com", "admin", PASSWORD);
    let legacy: Vec<String> = (0..3)
        .map(|_| sha256_hex(generate().expose().as_bytes())[..32].to_owned())
        .collect();
    let mut lines: Vec<String> = legacy
        .iter()
        .enumerate()
        .map(|(i, k)| {
            serde_json::json!({"key": k, "memo": format!("ERP link {i}"), "created_at": "2019-03-01T10:00:00Z"})
                .to_string()
        })
        .collect();
    let bad = "oc_live_notakey".to_owned();
    lines.push(serde_json::json!({"key": bad, "memo": "bad"}).to_string());
    // A memo holding a key (here the legacy key itself, and a current key) is refused as the
    // API refuses one: the line is skipped and the key never reaches the store.
    let in_memo = sha256_hex(generate().expose().as_bytes())[..32].to_owned();
    let current = generate().expose().to_owned();
    lines.push(serde_json::json!({"key": in_memo, "memo": format!("key {in_memo}")}).to_string());
    lines.push(serde_json::json!({"key": in_memo, "memo": format!("was {current}")}).to_string());
    let out = offkey(config.path())
        .args(["keys", "import-legacy", "--data"])
        .arg(data.path())
        .write_stdin(lines.join("\n"))
        .assert()
        .code(2)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 4"), "{stderr}");
    assert!(
        stderr.contains("line 5: the memo contains an API key"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 6: the memo contains an API key"),
        "{stderr}"
    );
    assert!(stderr.contains("imported 3"), "{stderr}");
    assert_secret_free(&stderr, &[&bad, &legacy[0], &in_memo, &current]);

    let server = Server::start(data.path());
    let login = server
        .client()
        .login("admin@example.com", PASSWORD)
        .expect("login");
    let token = login.token.clone();
    let client = server.client().with_token(login.token);
    let listed = client.list_keys().expect("list");
    assert_eq!(listed.len(), 3);
    assert!(
        listed
            .iter()
            .all(|k| k.created_by.is_none() && k.kind == offkey::key::KeyKind::Legacy)
    );
    assert_eq!(listed.iter().filter(|k| k.memo == "ERP link 0").count(), 1);
    for k in &legacy {
        let secret = offkey::key::Secret::parse(k).expect("legacy");
        server
            .client()
            .account(&secret)
            .expect("legacy key authenticates");
    }
    // The CLI's table, with the server and token from the environment: legacy keys show a
    // blank "created by" and "never" as last use... until the use above, which says "just now".
    let table = offkey(config.path())
        .args(["keys", "list"])
        .env("OFFKEY_SERVER", &server.url)
        .env("OFFKEY_TOKEN", token.expose())
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let table = String::from_utf8(table).expect("utf-8");
    let row = table
        .lines()
        .find(|l| l.contains("ERP link 0"))
        .expect("legacy row");
    assert!(row.contains(&format!("…{}", &legacy[0][28..])), "{row}");
    assert!(row.contains("2019-03-01"), "{row}");
    assert!(row.contains("just now"), "{row}");
    assert!(
        !row.contains("Test Person"),
        "no creator for legacy keys: {row}"
    );
    assert_secret_free(&table, &[&legacy[0]]);

    let mut created = Vec::new();
    for i in 0..10 {
        created.push(client.create_key(&format!("key {i}")).expect("create"));
    }
    let before: Vec<String> = client
        .list_keys()
        .expect("list")
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(before.len(), 13);
    server.stop();

    // Same store, new process: every key, and the session, are still there.
    let server = Server::start(data.path());
    let client = server.client().with_token(token);
    let after: Vec<String> = client
        .list_keys()
        .expect("list")
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(before, after);
    for c in &created {
        assert_eq!(
            server.client().account(&c.key).expect("works").key_id,
            c.info.id
        );
    }
    server.stop();
}

#[test]
fn members_cli() {
    let data = tempfile::tempdir().expect("temp dir");
    let config = tempfile::tempdir().expect("temp dir");
    add_member(data.path(), "ana@example.com", "admin", PASSWORD);
    add_member(data.path(), "bo@example.com", "member", PASSWORD);
    let cli = || {
        let mut c = offkey(config.path());
        c.env("OFFKEY_DATA", data.path());
        c
    };
    let list = cli()
        .args(["members", "list"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let list = String::from_utf8_lossy(&list);
    assert!(
        list.contains("ana@example.com") && list.contains("admin"),
        "{list}"
    );
    assert!(
        list.contains("bo@example.com") && list.contains("member"),
        "{list}"
    );
    assert!(!list.contains("argon2"), "no hashes: {list}");
    // Duplicate email, bad role, short password.
    cli()
        .args([
            "members",
            "add",
            "--email",
            "ANA@example.com",
            "--name",
            "A",
            "--role",
            "admin",
            "--password-stdin",
        ])
        .write_stdin(format!("{PASSWORD}\n"))
        .assert()
        .code(2);
    cli()
        .args([
            "members",
            "add",
            "--email",
            "c@example.com",
            "--name",
            "C",
            "--role",
            "owner",
            "--password-stdin",
        ])
        .write_stdin(format!("{PASSWORD}\n"))
        .assert()
        .failure();
    cli()
        .args([
            "members",
            "add",
            "--email",
            "c@example.com",
            "--name",
            "C",
            "--role",
            "member",
            "--password-stdin",
        ])
        .write_stdin("short\n")
        .assert()
        .code(2);
    // The password policy: 12 characters at least, not all whitespace, not the email.
    for (weak, why) in [
        ("elevenchars", "at least 12 characters"),
        ("              ", "all whitespace"),
        ("CARLA.LONG@example.com", "the member's email"),
        ("carla.long@example.com", "the member's email"),
    ] {
        let out = cli()
            .args([
                "members",
                "add",
                "--email",
                "carla.long@example.com",
                "--name",
                "C",
                "--role",
                "member",
                "--password-stdin",
            ])
            .write_stdin(format!("{weak}\n"))
            .assert()
            .code(2)
            .get_output()
            .clone();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{weak:?}: {err}");
    }

    let server = Server::start(data.path());
    let bo = server
        .client()
        .login("bo@example.com", PASSWORD)
        .expect("bo signs in");
    // A new password: the old one stops working and so do bo's sessions.
    let new_password = "a much longer new passphrase";
    cli()
        .args([
            "members",
            "passwd",
            "--email",
            "bo@example.com",
            "--password-stdin",
        ])
        .write_stdin("short\n")
        .assert()
        .code(2);
    cli()
        .args([
            "members",
            "passwd",
            "--email",
            "bo@example.com",
            "--password-stdin",
        ])
        .write_stdin(format!("{new_password}\n"))
        .assert()
        .success();
    cli()
        .args([
            "members",
            "passwd",
            "--email",
            "nobody@example.com",
            "--password-stdin",
        ])
        .write_stdin(format!("{new_password}\n"))
        .assert()
        .code(2);
    let err = server
        .client()
        .with_token(bo.token)
        .me()
        .expect_err("the old session ended");
    assert_eq!(err.status(), Some(401));
    let err = server
        .client()
        .login("bo@example.com", PASSWORD)
        .expect_err("the old password");
    assert_eq!(err.status(), Some(401));
    server
        .client()
        .login("bo@example.com", new_password)
        .expect("bo signs in with the new password");
    cli()
        .args(["members", "remove", "bo@example.com"])
        .assert()
        .success();
    let err = server
        .client()
        .login("bo@example.com", PASSWORD)
        .expect_err("removed");
    assert_eq!(err.status(), Some(401));
    cli()
        .args(["members", "remove", "bo@example.com"])
        .assert()
        .code(2);
    server.stop();
}

/// What the web page does, over a real socket: sign in, use the session cookie, the CSRF header
/// and the same-origin check; and what a cross-site form cannot do.
#[test]
fn browser_session_over_the_socket() {
    let data = tempfile::tempdir().expect("temp dir");
    add_member(data.path(), "admin@example.com", "admin", PASSWORD);
    let server = Server::start(data.path());
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http");
    let url = |p: &str| format!("{}{p}", server.url);

    let page = http.get(url("/settings/api-keys")).send().expect("page");
    assert_eq!(page.status(), 200);
    let h = page.headers();
    assert!(
        h["content-security-policy"]
            .to_str()
            .expect("csp")
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(h["x-frame-options"], "DENY");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    let root = http.get(url("/")).send().expect("root");
    assert!(root.status().is_redirection());
    assert_eq!(root.headers()["location"], "/settings/api-keys");

    let login = http
        .post(url("/v1/session"))
        .header("Origin", &server.url)
        .json(&serde_json::json!({"email": "admin@example.com", "password": PASSWORD}))
        .send()
        .expect("login");
    assert_eq!(login.status(), 200);
    assert_eq!(login.headers()["cache-control"], "no-store");
    let set_cookie = login.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
    let cookie = set_cookie.split(';').next().expect("pair").to_owned();
    assert!(cookie.starts_with("offkey_session="));

    let me = http
        .get(url("/v1/me"))
        .header("Cookie", &cookie)
        .send()
        .expect("me");
    assert_eq!(me.status(), 200);
    let me: serde_json::Value = me.json().expect("json");
    assert_eq!(me["role"], "admin");

    let post = |origin: Option<&str>, csrf: bool| {
        let mut req = http
            .post(url("/v1/keys"))
            .header("Cookie", &cookie)
            .json(&serde_json::json!({"memo": "from the page"}));
        if let Some(o) = origin {
            req = req.header("Origin", o);
        }
        if csrf {
            req = req.header("X-Offkey-CSRF", "1");
        }
        req.send().expect("post")
    };
    let refused = post(Some(&server.url), false);
    assert_eq!(refused.status(), 403);
    let body: serde_json::Value = refused.json().expect("json");
    assert_eq!(body["error"]["code"], "csrf");
    assert_eq!(post(Some("https://evil.example"), true).status(), 403);
    let form = http
        .post(url("/v1/keys"))
        .header("Cookie", &cookie)
        .header("Origin", "https://evil.example")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("memo=pwned")
        .send()
        .expect("form");
    assert_eq!(form.status(), 403);
    let created = post(Some(&server.url), true);
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["cache-control"], "no-store");
    let list: serde_json::Value = http
        .get(url("/v1/keys"))
        .header("Cookie", &cookie)
        .send()
        .expect("list")
        .json()
        .expect("json");
    assert_eq!(
        list["keys"].as_array().expect("keys").len(),
        1,
        "only the page's key"
    );

    let out = http
        .delete(url("/v1/session"))
        .header("Cookie", &cookie)
        .header("X-Offkey-CSRF", "1")
        .send()
        .expect("logout");
    assert_eq!(out.status(), 204);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .expect("cookie")
            .contains("Max-Age=0")
    );
    let me = http
        .get(url("/v1/me"))
        .header("Cookie", &cookie)
        .send()
        .expect("me");
    assert_eq!(me.status(), 401);
    server.stop();
}

/// `GET /metrics` over a real socket from loopback (the peer check sees 127.0.0.1).
#[test]
fn metrics_over_the_socket_from_loopback() {
    let data = tempfile::tempdir().expect("temp dir");
    let server = Server::start(data.path());
    let health = reqwest::blocking::get(format!("{}/healthz", server.url)).expect("healthz");
    assert_eq!(health.status(), 200);
    let r = reqwest::blocking::get(format!("{}/metrics", server.url)).expect("metrics");
    assert_eq!(r.status(), 200);
    let text = r.text().expect("text");
    assert!(
        text.contains(
            r#"offkey_http_requests_total{method="GET",route="/healthz",status="200"} 1"#
        ),
        "{text}"
    );
    server.stop();
}
