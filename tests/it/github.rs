//! GitHub secret scanning partner alerts (`POST /v1/secret-scanning/github`): each test makes
//! its own P-256 key pair, publishes it in a keys file shaped like GitHub's, and signs bodies
//! exactly as GitHub does (ECDSA P-256 / SHA-256 over the raw body, ASN.1 DER, base64). Driven
//! through the router, plus one run of a real `offkey serve` whose debug log is searched for keys.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration as StdDuration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use chrono::{Duration, Utc};
use http_body_util::BodyExt;
use offkey::key::{KeyKind, Secret, generate, sha256_hex};
use offkey::server::routes::github::{GithubAlerts, LeakAction};
use offkey::server::{AppState, router};
use offkey::store::{KeyRecord, LookupStatus, NewKey, Store, new_id};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::{EncodePublicKey as _, LineEnding};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::common::Server;

/// One of "GitHub's" signing keys.
struct GithubKey {
    id: String,
    signing: SigningKey,
}

impl GithubKey {
    fn new() -> GithubKey {
        let signing = SigningKey::random(&mut rand::rngs::OsRng);
        let der = signing
            .verifying_key()
            .to_public_key_der()
            .expect("public key DER");
        // GitHub's identifiers are the hex sha256 of the key.
        GithubKey {
            id: sha256_hex(der.as_bytes()),
            signing,
        }
    }

    fn pem(&self) -> String {
        self.signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("public key PEM")
    }

    /// `Github-Public-Key-Signature` for `body`.
    fn sign(&self, body: &[u8]) -> String {
        let sig: Signature = self.signing.sign(body);
        base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
    }
}

/// Write the keys file in GitHub's published shape (the first key is the current one).
fn write_keys(path: &Path, keys: &[&GithubKey]) {
    let list: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| json!({"key_identifier": k.id, "key": k.pem(), "is_current": i == 0}))
        .collect();
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(&json!({ "public_keys": list })).expect("json"),
    )
    .expect("write keys");
    std::fs::rename(&tmp, path).expect("replace keys file");
}

fn new_key(store: &dyn Store, memo: &str, secret: &Secret) -> KeyRecord {
    store
        .create_key(
            NewKey {
                id: new_id("key_"),
                sha256: secret.sha256(),
                last4: secret.last4().to_owned(),
                memo: memo.to_owned(),
                kind: secret.kind(),
                created_at: Utc::now() - Duration::days(1),
                created_by: None,
            },
            "test",
        )
        .expect("create key")
}

/// A random legacy key (32 lowercase hex).
fn legacy_secret() -> Secret {
    let bytes: [u8; 16] = rand::random();
    Secret::parse(&hex::encode(bytes)).expect("legacy shape")
}

/// A current-shaped token whose checksum is wrong.
fn checksum_invalid() -> String {
    let good = generate();
    let mut s = good.expose().to_owned();
    let last = s.pop().expect("non-empty");
    s.push(if last == 'A' { 'B' } else { 'A' });
    assert!(Secret::parse(&s).is_err());
    s
}

struct Fixture {
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    keys_file: PathBuf,
    github: GithubKey,
    app: Router,
}

fn fixture(on_leak: LeakAction, notify_url: Option<&str>) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = offkey::store::open(dir.path()).expect("store");
    let github = GithubKey::new();
    let keys_file = dir.path().join("github-keys.json");
    write_keys(&keys_file, &[&github]);
    let alerts = GithubAlerts::new(
        keys_file.clone(),
        on_leak,
        notify_url.map(|u| u.parse().expect("url")),
    )
    .expect("keys file loads");
    let app = router(AppState::new(Arc::clone(&store)).with_github(alerts));
    Fixture {
        dir,
        store,
        keys_file,
        github,
        app,
    }
}

fn alert(tokens: &[&str]) -> Vec<u8> {
    let list: Vec<Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({
                "token": t,
                "type": "offset_commerce_api_key",
                "url": format!("https://github.com/octo/leaky/blob/abc123/config{i}.env"),
                "source": "content",
            })
        })
        .collect();
    serde_json::to_vec(&list).expect("json")
}

async fn post(app: &Router, body: Vec<u8>, key_id: &str, signature: &str) -> (StatusCode, Value) {
    let req = Request::post("/v1/secret-scanning/github")
        .header("content-type", "application/json")
        .header("Github-Public-Key-Identifier", key_id)
        .header("Github-Public-Key-Signature", signature)
        .body(Body::from(body))
        .expect("request");
    let res = app.clone().oneshot(req).await.expect("answer");
    let status = res.status();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

async fn signed(f: &Fixture, body: Vec<u8>) -> (StatusCode, Value) {
    let sig = f.github.sign(&body);
    post(&f.app, body, &f.github.id, &sig).await
}

fn status_of(store: &dyn Store, secret: &Secret) -> (LookupStatus, KeyRecord) {
    let hit = store
        .lookup(&[secret.sha256()], Utc::now(), "test")
        .expect("lookup")
        .remove(0);
    (hit.status, hit.key.expect("known key"))
}

fn audit_actions(store: &dyn Store) -> Vec<(String, Option<String>, Option<String>)> {
    store
        .audit_log(1000, None)
        .expect("audit")
        .into_iter()
        .filter(|e| e.action != "lookup")
        .map(|e| (e.action, e.key_id, e.detail))
        .collect()
}

fn count(actions: &[(String, Option<String>, Option<String>)], action: &str) -> usize {
    actions.iter().filter(|a| a.0 == action).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_a_batch_in_order_revokes_and_is_idempotent() {
    let f = fixture(LeakAction::Revoke, None);
    let active = generate();
    let revoked = generate();
    let legacy = legacy_secret();
    let unknown = generate();
    let invalid = checksum_invalid();
    let active_rec = new_key(f.store.as_ref(), "Fulfillment integration", &active);
    let revoked_rec = new_key(f.store.as_ref(), "Old import job", &revoked);
    new_key(f.store.as_ref(), "Legacy ERP", &legacy);
    f.store
        .delete_key(&revoked_rec.id, Utc::now(), "test")
        .expect("delete")
        .expect("was active");

    let tokens = [
        active.expose(),
        revoked.expose(),
        unknown.expose(),
        invalid.as_str(),
        legacy.expose(),
    ];
    let body = alert(&tokens);
    let (status, answer) = signed(&f, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let labels: Vec<(&str, &str, &str)> = answer
        .as_array()
        .expect("array")
        .iter()
        .map(|l| {
            (
                l["token_hash"].as_str().expect("hash"),
                l["token_type"].as_str().expect("type"),
                l["label"].as_str().expect("label"),
            )
        })
        .collect();
    let hashes: Vec<String> = tokens.iter().map(|t| sha256_hex(t.as_bytes())).collect();
    let expected = [
        "true_positive",
        "true_positive",
        "false_positive",
        "false_positive",
        "true_positive",
    ];
    assert_eq!(labels.len(), 5);
    for (i, (hash, ty, label)) in labels.iter().enumerate() {
        assert_eq!(*hash, hashes[i], "entry {i} in request order");
        assert_eq!(*ty, "offset_commerce_api_key");
        assert_eq!(*label, expected[i], "entry {i}");
    }
    let text = answer.to_string();
    for t in &tokens {
        assert!(!text.contains(t), "the answer echoes a token: {text}");
    }

    // The active key is deleted, with the exposure on its row; so is the legacy key.
    let (st, rec) = status_of(f.store.as_ref(), &active);
    assert_eq!(st, LookupStatus::Revoked);
    assert_eq!(rec.exposures.count, 1);
    let last = rec.exposures.last.expect("exposure");
    assert_eq!(last.source, "github");
    assert_eq!(
        last.location,
        "https://github.com/octo/leaky/blob/abc123/config0.env"
    );
    assert_eq!(
        status_of(f.store.as_ref(), &legacy).0,
        LookupStatus::Revoked
    );
    // The revoked key gets the exposure too, and stays revoked.
    assert_eq!(status_of(f.store.as_ref(), &revoked).1.exposures.count, 1);

    let audit = audit_actions(f.store.as_ref());
    assert!(
        audit.iter().any(|(a, k, d)| a == "public_leak"
            && k.as_deref() == Some(active_rec.id.as_str())
            && d.as_deref().is_some_and(|d| d.contains("deleted")
                && d.contains("config0.env")
                && d.contains(active.last4()))),
        "{audit:?}"
    );
    assert_eq!(
        count(&audit, "delete"),
        3,
        "two by the alert, one by the test"
    );
    assert_eq!(count(&audit, "public_leak"), 3);
    assert_eq!(count(&audit, "exposure"), 3);
    let dump = format!("{audit:?}");
    for t in &tokens {
        assert!(!dump.contains(t), "a token in the audit log: {dump}");
    }

    // The same alert again: the same answer, and nothing changes.
    let (status, again) = signed(&f, body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, answer);
    let after = audit_actions(f.store.as_ref());
    assert_eq!(after, audit, "a repeated alert changes nothing");
    assert_eq!(status_of(f.store.as_ref(), &active).1.exposures.count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_and_unknown_identifiers_are_refused_and_change_nothing() {
    let f = fixture(LeakAction::Revoke, None);
    let active = generate();
    new_key(f.store.as_ref(), "Checkout", &active);
    let body = alert(&[active.expose()]);
    let stranger = GithubKey::new();

    let tampered = {
        let mut b = body.clone();
        let sig = f.github.sign(&b);
        b.push(b' ');
        (b, sig)
    };
    let cases: Vec<(&str, Vec<u8>, String, String)> = vec![
        (
            "signature of another body",
            tampered.0,
            f.github.id.clone(),
            tampered.1,
        ),
        (
            "signature by another key under our identifier",
            body.clone(),
            f.github.id.clone(),
            stranger.sign(&body),
        ),
        (
            "not base64",
            body.clone(),
            f.github.id.clone(),
            "%%%".to_owned(),
        ),
        (
            "base64 but not DER",
            body.clone(),
            f.github.id.clone(),
            base64::engine::general_purpose::STANDARD.encode(b"not a signature"),
        ),
        (
            "unknown identifier",
            body.clone(),
            stranger.id.clone(),
            stranger.sign(&body),
        ),
        ("no headers", body.clone(), String::new(), String::new()),
    ];
    for (what, body, id, sig) in cases {
        let (status, answer) = if id.is_empty() {
            let req = Request::post("/v1/secret-scanning/github")
                .header("content-type", "application/json")
                .body(Body::from(body))
                .expect("request");
            let res = f.app.clone().oneshot(req).await.expect("answer");
            let status = res.status();
            let bytes = res.into_body().collect().await.expect("body").to_bytes();
            (status, serde_json::from_slice(&bytes).expect("json error"))
        } else {
            post(&f.app, body, &id, &sig).await
        };
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_signature", "{what}");
        assert!(!answer.to_string().contains(active.expose()), "{what}");
    }
    let (st, rec) = status_of(f.store.as_ref(), &active);
    assert_eq!(st, LookupStatus::Active, "nothing changed");
    assert_eq!(rec.exposures.count, 0);
    let audit = audit_actions(f.store.as_ref());
    assert_eq!(count(&audit, "public_leak_refused"), 6, "{audit:?}");
    assert!(
        audit
            .iter()
            .any(|a| a.2.as_deref() == Some("unknown key identifier"))
    );
    assert!(
        audit
            .iter()
            .any(|a| a.2.as_deref() == Some("bad signature"))
    );
    assert_eq!(count(&audit, "delete") + count(&audit, "exposure"), 0);

    // A signed body that is not an alert: a clear 400, nothing changes.
    for (what, body) in [
        ("not JSON", b"{oops".to_vec()),
        ("not an array", br#"{"token": "x"}"#.to_vec()),
        ("empty", b"[]".to_vec()),
        ("too many", alert(&vec!["x"; 1001])),
    ] {
        let (status, answer) = signed(&f, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {answer}");
        assert!(answer["error"]["message"].is_string(), "{what}");
    }
    // Over 1 MiB: 413 before anything is read.
    let huge = vec![b' '; 1024 * 1024 + 1];
    let (status, answer) = signed(&f, huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer["error"]["code"], "body_too_large");
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("1 MiB")),
        "{answer}"
    );
    assert_eq!(status_of(f.store.as_ref(), &active).0, LookupStatus::Active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_file_is_re_read_when_it_changes() {
    let f = fixture(LeakAction::Notify, None);
    let next = GithubKey::new();
    let body = alert(&[generate().expose()]);
    let by_next = next.sign(&body);
    let by_old = f.github.sign(&body);

    // Not listed yet.
    let (status, _) = post(&f.app, body.clone(), &next.id, &by_next).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // GitHub publishes a new current key: both verify while both are listed.
    write_keys(&f.keys_file, &[&next, &f.github]);
    let (status, answer) = post(&f.app, body.clone(), &next.id, &by_next).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, _) = post(&f.app, body.clone(), &f.github.id, &by_old).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the old key still works while listed"
    );

    // The old key is withdrawn.
    write_keys(&f.keys_file, &[&next]);
    let (status, _) = post(&f.app, body.clone(), &f.github.id, &by_old).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a withdrawn key is refused"
    );
    let (status, _) = post(&f.app, body.clone(), &next.id, &by_next).await;
    assert_eq!(status, StatusCode::OK);

    // A broken file keeps the last good keys rather than refusing every alert.
    std::fs::write(&f.keys_file, b"{not json").expect("write");
    let (status, _) = post(&f.app, body.clone(), &next.id, &by_next).await;
    assert_eq!(status, StatusCode::OK);
    let _ = &f.dir;
}

#[test]
fn a_bad_keys_file_fails_at_startup_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (content, says) in [
        ("{\"keys\": []}", "GitHub's shape"),
        ("{\"public_keys\": []}", "no public keys"),
        (
            "{\"public_keys\": [{\"key_identifier\": \"k1\", \"key\": \"-----BEGIN PUBLIC KEY-----\\nAAAA\\n-----END PUBLIC KEY-----\", \"is_current\": true}]}",
            "\"k1\"",
        ),
    ] {
        let path = dir.path().join("keys.json");
        std::fs::write(&path, content).expect("write");
        let err = GithubAlerts::new(path, LeakAction::Revoke, None)
            .expect_err("refused")
            .to_string();
        assert!(err.contains("keys.json") && err.contains(says), "{err}");
    }
    let err = GithubAlerts::new(dir.path().join("missing.json"), LeakAction::Revoke, None)
        .expect_err("refused")
        .to_string();
    assert!(err.contains("missing.json"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_mode_replaces_once_and_the_deadline_stands() {
    let f = fixture(LeakAction::Rotate(Duration::hours(1)), None);
    let active = generate();
    let rec = new_key(f.store.as_ref(), "Warehouse sync", &active);
    let body = alert(&[active.expose()]);
    let before = Utc::now();
    let (status, answer) = signed(&f, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer[0]["label"], "true_positive");

    let (st, old) = status_of(f.store.as_ref(), &active);
    assert_eq!(st, LookupStatus::Active, "works during the grace period");
    let expires = old.expires_at.expect("a deadline");
    assert!(
        expires >= before + Duration::minutes(59) && expires <= Utc::now() + Duration::hours(1)
    );
    assert_eq!(old.exposures.count, 1);
    let listed = f.store.list_keys(Utc::now()).expect("list");
    let replacements: Vec<&KeyRecord> = listed
        .iter()
        .filter(|k| k.replaces.as_deref() == Some(rec.id.as_str()))
        .collect();
    assert_eq!(replacements.len(), 1, "{listed:?}");
    assert_eq!(replacements[0].memo, "Warehouse sync");
    assert_eq!(replacements[0].kind, KeyKind::Current);

    // Again: no second replacement.
    let (status, _) = signed(&f, body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        f.store.list_keys(Utc::now()).expect("list").len(),
        listed.len()
    );
    let audit = audit_actions(f.store.as_ref());
    assert_eq!(count(&audit, "rotate"), 1);
    assert_eq!(count(&audit, "public_leak"), 1);

    // An admin deletes the (unusable) replacement: the leaked key's deadline is not lifted,
    // as it would be for a rotation the rotation assistant rolls back.
    f.store
        .delete_key(&replacements[0].id, Utc::now(), "admin@example.com")
        .expect("delete")
        .expect("deleted");
    let (_, old) = status_of(f.store.as_ref(), &active);
    assert_eq!(
        old.expires_at,
        Some(expires),
        "the public key still expires"
    );
    // The owner rotates the leaked key to get a usable replacement: the alert's deadline is
    // never pushed back.
    let usable = generate();
    f.store
        .rotate_key(
            offkey::store::Rotation {
                old_id: rec.id.clone(),
                new: NewKey {
                    id: new_id("key_"),
                    sha256: usable.sha256(),
                    last4: usable.last4().to_owned(),
                    memo: String::new(),
                    kind: KeyKind::Current,
                    created_at: Utc::now(),
                    created_by: None,
                },
                old_expires_at: Utc::now() + Duration::days(7),
                until_first_use: false,
            },
            "admin@example.com",
        )
        .expect("rotate")
        .expect("rotated");
    assert_eq!(
        status_of(f.store.as_ref(), &active).1.expires_at,
        Some(expires)
    );
    // After the grace period the key is refused.
    let later = f
        .store
        .lookup(&[active.sha256()], expires + Duration::seconds(1), "test")
        .expect("lookup");
    assert_eq!(later[0].status, LookupStatus::Revoked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_mode_records_only() {
    let f = fixture(LeakAction::Notify, None);
    let active = generate();
    let rec = new_key(f.store.as_ref(), "Reports", &active);
    let (status, answer) = signed(&f, alert(&[active.expose()])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer[0]["label"], "true_positive");
    let (st, now) = status_of(f.store.as_ref(), &active);
    assert_eq!(st, LookupStatus::Active);
    assert_eq!(now.expires_at, None);
    assert_eq!(now.exposures.count, 1);
    assert_eq!(f.store.list_keys(Utc::now()).expect("list").len(), 1);
    let audit = audit_actions(f.store.as_ref());
    assert!(
        audit.iter().any(|(a, k, d)| a == "public_leak"
            && k.as_deref() == Some(rec.id.as_str())
            && d.as_deref().is_some_and(|d| d.contains("recorded only"))),
        "{audit:?}"
    );
    assert_eq!(count(&audit, "delete") + count(&audit, "rotate"), 0);
}

/// A one-shot-per-connection HTTP listener that answers 200 and hands over each body.
fn listener() -> (String, mpsc::Receiver<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook/T000/B000", l.local_addr().expect("addr"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { break };
            let mut reader = BufReader::new(conn.try_clone().expect("clone"));
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            if tx.send(body).is_err() {
                break;
            }
        }
    });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_url_receives_memo_and_last4_never_the_key() {
    let (url, rx) = listener();
    let f = fixture(LeakAction::Revoke, Some(&url));
    let active = generate();
    let rec = new_key(f.store.as_ref(), "Payments webhook", &active);
    let (status, _) = signed(&f, alert(&[active.expose()])).await;
    assert_eq!(status, StatusCode::OK);
    let body = rx
        .recv_timeout(StdDuration::from_secs(30))
        .expect("a notification arrives");
    let v: Value = serde_json::from_slice(&body).expect("JSON body");
    let text = v["text"].as_str().expect("text");
    assert!(text.contains("Payments webhook"), "{text}");
    assert!(text.contains(active.last4()), "{text}");
    assert!(text.contains("deleted"), "{text}");
    assert!(text.contains(&rec.id), "{text}");
    assert!(!text.contains(active.expose()), "{text}");

    // A repeat sends nothing: the next notification to arrive is the next key's.
    let (status, _) = signed(&f, alert(&[active.expose()])).await;
    assert_eq!(status, StatusCode::OK);
    let other = generate();
    new_key(f.store.as_ref(), "Second integration", &other);
    let (status, _) = signed(&f, alert(&[other.expose()])).await;
    assert_eq!(status, StatusCode::OK);
    let body = rx
        .recv_timeout(StdDuration::from_secs(30))
        .expect("a notification arrives");
    let text = String::from_utf8(body).expect("utf-8");
    assert!(
        text.contains("Second integration"),
        "a repeat notified: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_notify_url_never_fails_the_answer() {
    // A port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/", closed.local_addr().expect("addr"));
    drop(closed);
    let f = fixture(LeakAction::Revoke, Some(&url));
    let active = generate();
    new_key(f.store.as_ref(), "Batch", &active);
    let (status, answer) = signed(&f, alert(&[active.expose()])).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer[0]["label"], "true_positive");
    assert_eq!(
        status_of(f.store.as_ref(), &active).0,
        LookupStatus::Revoked
    );
}

#[test]
fn end_to_end_with_a_real_server_and_no_key_in_its_debug_log() {
    let data = tempfile::tempdir().expect("temp dir");
    let store = offkey::store::open(data.path()).expect("store");
    let active = generate();
    let legacy = legacy_secret();
    new_key(store.as_ref(), "Storefront", &active);
    new_key(store.as_ref(), "Legacy ERP", &legacy);
    drop(store);
    let github = GithubKey::new();
    let keys_file = data.path().join("github-keys.json");
    write_keys(&keys_file, &[&github]);
    let (notify, rx) = listener();

    let args: Vec<std::ffi::OsString> = vec![
        "--github-keys".into(),
        keys_file.clone().into(),
        "--on-public-leak".into(),
        "rotate:2h".into(),
        "--notify-url".into(),
        notify.clone().into(),
    ];
    let server = Server::start_with(data.path(), &args, "debug");
    let unknown = generate();
    let invalid = checksum_invalid();
    let tokens = [
        active.expose(),
        legacy.expose(),
        unknown.expose(),
        invalid.as_str(),
    ];
    let body = alert(&tokens);
    let http = reqwest::blocking::Client::new();
    let send = |body: Vec<u8>, sig: String| {
        http.post(format!("{}/v1/secret-scanning/github", server.url))
            .header("content-type", "application/json")
            .header("Github-Public-Key-Identifier", &github.id)
            .header("Github-Public-Key-Signature", sig)
            .body(body)
            .send()
            .expect("send")
    };
    let res = send(body.clone(), github.sign(&body));
    assert_eq!(res.status().as_u16(), 200);
    let answer: Value = res.json().expect("json");
    let labels: Vec<&str> = answer
        .as_array()
        .expect("array")
        .iter()
        .map(|l| l["label"].as_str().expect("label"))
        .collect();
    assert_eq!(
        labels,
        [
            "true_positive",
            "true_positive",
            "false_positive",
            "false_positive"
        ]
    );
    let res = send(body.clone(), github.sign(b"something else"));
    assert_eq!(res.status().as_u16(), 401);
    // Over the limit, with a Content-Length: refused before the body is read.
    let huge = vec![b' '; 1024 * 1024 + 1];
    let res = send(huge.clone(), github.sign(&huge));
    assert_eq!(res.status().as_u16(), 413);
    let err: Value = res.json().expect("json error");
    assert!(err.to_string().contains("1 MiB"), "{err}");
    let texts: Vec<String> = (0..2)
        .map(|_| {
            let b = rx
                .recv_timeout(StdDuration::from_secs(30))
                .expect("notification");
            String::from_utf8(b).expect("utf-8")
        })
        .collect();
    let log = server.stop();
    assert!(log.contains("GitHub secret scanning alert"), "{log}");
    assert!(log.contains("DEBUG") || log.contains("debug"), "{log}");
    let store = offkey::store::open(data.path()).expect("store");
    let (st, rec) = status_of(store.as_ref(), &active);
    assert_eq!(st, LookupStatus::Active);
    assert!(rec.expires_at.is_some(), "rotated with a deadline");
    let audit = format!("{:?}", store.audit_log(1000, None).expect("audit"));
    // The replacement's secret is unknown to the test; no key-shaped text may appear at all.
    for (what, text) in [
        ("log", &log),
        ("audit", &audit),
        ("notify", &texts.join("\n")),
    ] {
        for t in &tokens {
            assert!(!text.contains(t), "a token in the {what}:\n{text}");
        }
        let found = offkey_keys_in(text);
        assert!(found.is_empty(), "key-shaped text in the {what}: {found:?}");
    }
    drop(store);
    for file in ["keys.db", "keys.db-wal"] {
        let Ok(db) = std::fs::read(data.path().join(file)) else {
            continue;
        };
        let db = String::from_utf8_lossy(&db);
        for t in &tokens[..2] {
            assert!(!db.contains(t), "a key in {file}");
        }
    }
}

#[test]
fn serve_flags_are_checked_with_clear_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = dir.path().join("github-keys.json");
    write_keys(&keys, &[&GithubKey::new()]);
    let run = |args: &[&std::ffi::OsStr]| {
        let out = crate::common::offkey(dir.path())
            .arg("serve")
            .arg("--data")
            .arg(dir.path().join("data"))
            .args(args)
            .assert()
            .code(2)
            .get_output()
            .clone();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let k = keys.as_os_str();
    let err = run(&[
        "--github-keys".as_ref(),
        k,
        "--on-public-leak".as_ref(),
        "rotate:forever".as_ref(),
    ]);
    assert!(
        err.contains("rotate:forever") && err.contains("rotate:DURATION"),
        "{err}"
    );
    let err = run(&[
        "--github-keys".as_ref(),
        k,
        "--on-public-leak".as_ref(),
        "rotate:31d".as_ref(),
    ]);
    assert!(err.contains("at most 30d"), "{err}");
    let err = run(&[
        "--notify-url".as_ref(),
        "https://hooks.example.com/x".as_ref(),
    ]);
    assert!(err.contains("--github-keys"), "{err}");
    std::fs::write(&keys, b"[]").expect("write");
    let err = run(&["--github-keys".as_ref(), k]);
    assert!(
        err.contains("github-keys.json") && err.contains("GitHub's shape"),
        "{err}"
    );
}

/// Every whole current key in `text` (redacted forms are not keys).
fn offkey_keys_in(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    (0..b.len())
        .filter_map(|i| {
            b.get(i..i + offkey::key::KEY_LEN)
                .filter(|w| offkey::key::is_current(w))
                .map(|w| {
                    offkey::key::redacted(KeyKind::Current, &String::from_utf8_lossy(&w[42..]))
                })
        })
        .collect()
}
