//! Router tests: every endpoint and every error status through `tower::ServiceExt::oneshot`,
//! the authorization matrix, CSRF and the security headers. Keys are generated at test time.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use chrono::{Duration, Utc};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{AppState, router};
use crate::key::{generate, sha256_hex};
use crate::store::{NewKey, NewMember, PgStore, Role, SqliteStore, Store, new_id};

const PASSWORD: &str = "correct horse battery staple";

thread_local! {
    /// Whether the fixtures of this test open PostgreSQL (set by [`on_postgres`]).
    static ON_POSTGRES: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A fresh store for one server test: SQLite in `dir`, or a fresh schema of
/// `OFFKEY_TEST_DATABASE_URL` when the test runs [`on_postgres`] (it fails, naming what to
/// install, when there is no database).
pub(crate) fn test_store(dir: &std::path::Path) -> Arc<dyn Store> {
    if ON_POSTGRES.get() {
        // Off this thread: the synchronous client cannot start inside a test's runtime.
        let store = std::thread::scope(|s| {
            s.spawn(|| {
                let url = crate::store::conformance::fresh_pg_url();
                PgStore::open(&url).expect("open postgres")
            })
            .join()
            .expect("open postgres")
        });
        Arc::new(pg_store::OffRuntime::new(store))
    } else {
        Arc::new(SqliteStore::open(&dir.join("keys.db")).expect("open"))
    }
}

/// Run `test` (a `#[tokio::test]`, a plain function once expanded) with its fixtures on
/// PostgreSQL.
pub(crate) fn on_postgres(test: fn()) {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            ON_POSTGRES.set(false);
        }
    }
    ON_POSTGRES.set(true);
    let _reset = Reset;
    test();
}

/// The named tests of this module again, their fixtures on PostgreSQL: `on_postgres::NAME`.
macro_rules! also_on_postgres {
    ($($name:ident),* $(,)?) => {
        /// The tests of this module with their fixtures on PostgreSQL.
        mod on_postgres {
            $(
                #[test]
                fn $name() {
                    crate::server::tests::on_postgres(super::$name);
                }
            )*
        }
    };
}
pub(crate) use also_on_postgres;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    app: Router,
    admin: String,
    member: String,
    expired: String,
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    None,
    Bearer(&'a str),
    Cookie(&'a str),
    CookieCsrf(&'a str),
    KeyHeader(&'a str),
}

fn password_hash() -> String {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| super::password::hash(PASSWORD).expect("hash"))
        .clone()
}

fn session_at(
    store: &Arc<dyn Store>,
    member_id: &str,
    now: chrono::DateTime<Utc>,
    expires_in: Duration,
) -> String {
    let token = format!("test-session-{}", new_id(""));
    store
        .create_session(
            &sha256_hex(token.as_bytes()),
            member_id,
            now - Duration::minutes(1),
            now + expires_in,
        )
        .expect("session");
    token
}

fn fixture() -> Fixture {
    fixture_with(Arc::new(super::clock::SystemClock))
}

/// A fixture whose service reads the time from `clock`.
fn fixture_with(clock: Arc<dyn super::clock::Clock>) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = test_store(dir.path());
    let now = clock.now();
    let mut ids = Vec::new();
    for (email, role) in [
        ("admin@example.com", Role::Admin),
        ("member@example.com", Role::Member),
    ] {
        let m = store
            .add_member(
                NewMember {
                    id: new_id("mem_"),
                    email: email.into(),
                    name: email.split('@').next().unwrap_or("x").into(),
                    role,
                    password_hash: password_hash(),
                },
                now,
            )
            .expect("member");
        ids.push(m.id);
    }
    let admin = session_at(&store, &ids[0], now, Duration::hours(11));
    let member = session_at(&store, &ids[1], now, Duration::hours(11));
    let expired = session_at(&store, &ids[0], now, Duration::seconds(-1));
    let app = router(AppState::with_clock(
        store.clone(),
        super::SESSION_TTL,
        clock,
    ));
    Fixture {
        _dir: dir,
        store,
        app,
        admin,
        member,
        expired,
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

async fn send(app: &Router, req: Request<Body>) -> Answer {
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
        text,
    }
}

fn request(method: Method, path: &str, auth: Auth<'_>, body: Option<&Value>) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "localhost:8787");
    b = match auth {
        Auth::None => b,
        Auth::Bearer(t) => b.header(header::AUTHORIZATION, format!("Bearer {t}")),
        Auth::Cookie(t) => b.header(header::COOKIE, format!("offkey_session={t}")),
        Auth::CookieCsrf(t) => b
            .header(header::COOKIE, format!("offkey_session={t}"))
            .header("x-offkey-csrf", "1"),
        Auth::KeyHeader(t) => b.header("x-offset-key", t),
    };
    match body {
        Some(v) => b
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(v.to_string())),
        None => b.body(Body::empty()),
    }
    .expect("request")
}

async fn call(
    app: &Router,
    method: Method,
    path: &str,
    auth: Auth<'_>,
    body: Option<Value>,
) -> Answer {
    send(app, request(method, path, auth, body.as_ref())).await
}

fn assert_error(a: &Answer, status: StatusCode, code: &str) {
    assert_eq!(a.status, status, "{}", a.text);
    assert_eq!(a.body["error"]["code"], code, "{}", a.text);
    assert!(a.body["error"]["message"].is_string(), "{}", a.text);
}

/// Create a key through the API; answers (key, id).
async fn create(f: &Fixture, memo: &str) -> (String, String) {
    let a = call(
        &f.app,
        Method::POST,
        "/v1/keys",
        Auth::Bearer(&f.admin),
        Some(json!({"memo": memo})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    (
        a.body["key"].as_str().expect("key").to_owned(),
        a.body["id"].as_str().expect("id").to_owned(),
    )
}

async fn account(f: &Fixture, key: &str) -> Answer {
    call(
        &f.app,
        Method::GET,
        "/api/v1/account",
        Auth::Bearer(key),
        None,
    )
    .await
}

async fn lookup(f: &Fixture, key: &str) -> Value {
    let a = call(
        &f.app,
        Method::POST,
        "/v1/keys/lookup",
        Auth::Bearer(&f.admin),
        Some(json!({"sha256": [sha256_hex(key.as_bytes())]})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    a.body["results"][0].clone()
}

async fn listed(f: &Fixture) -> Vec<Value> {
    let a = call(
        &f.app,
        Method::GET,
        "/v1/keys",
        Auth::Bearer(&f.admin),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    a.body["keys"].as_array().expect("keys").clone()
}

#[tokio::test]
async fn healthz_and_pages() {
    let f = fixture();
    let a = call(&f.app, Method::GET, "/healthz", Auth::None, None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["status"], "ok");
    for (path, ct) in [
        ("/login", "text/html"),
        ("/settings/api-keys", "text/html"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
    ] {
        let a = call(&f.app, Method::GET, path, Auth::None, None).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        let got = a.headers[header::CONTENT_TYPE].to_str().expect("ascii");
        assert!(got.starts_with(ct), "{path}: {got}");
    }
    let a = call(&f.app, Method::GET, "/", Auth::None, None).await;
    assert!(a.status.is_redirection());
    assert_eq!(a.headers[header::LOCATION], "/settings/api-keys");
}

#[tokio::test]
async fn security_headers_on_every_answer() {
    let f = fixture();
    let (key, _) = create(&f, "headers").await;
    let answers = [
        call(&f.app, Method::GET, "/login", Auth::None, None).await,
        call(
            &f.app,
            Method::GET,
            "/v1/keys",
            Auth::Bearer(&f.admin),
            None,
        )
        .await,
        call(&f.app, Method::GET, "/v1/keys", Auth::None, None).await,
        call(&f.app, Method::GET, "/nowhere", Auth::None, None).await,
        account(&f, &key).await,
        call(
            &f.app,
            Method::POST,
            "/v1/keys",
            Auth::Bearer(&f.admin),
            Some(json!({"memo": "x"})),
        )
        .await,
    ];
    for a in &answers {
        assert_eq!(a.headers["content-security-policy"], super::middleware::CSP);
        assert_eq!(a.headers["x-frame-options"], "DENY");
        assert_eq!(a.headers["x-content-type-options"], "nosniff");
        assert_eq!(a.headers["referrer-policy"], "no-referrer");
        assert_eq!(a.headers["cache-control"], "no-store");
    }
}

#[tokio::test]
async fn login_me_logout() {
    let f = fixture();
    let a = call(
        &f.app,
        Method::POST,
        "/v1/session",
        Auth::None,
        Some(json!({"email": "admin@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let token = a.body["token"].as_str().expect("token").to_owned();
    assert!(token.len() >= 43, "256-bit token");
    assert_eq!(a.body["member"]["role"], "admin");
    assert_eq!(a.body["member"]["email"], "admin@example.com");
    assert!(
        a.body["expires_at"]
            .as_str()
            .expect("expires")
            .ends_with('Z')
    );
    let cookie = a.headers[header::SET_COOKIE].to_str().expect("ascii");
    assert!(cookie.starts_with(&format!("offkey_session={token}")));
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    // The token is stored hashed only.
    assert!(f.store.session(&token, Utc::now()).expect("get").is_none());
    assert!(
        f.store
            .session(&sha256_hex(token.as_bytes()), Utc::now())
            .expect("get")
            .is_some()
    );

    let me = call(&f.app, Method::GET, "/v1/me", Auth::Bearer(&token), None).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["email"], "admin@example.com");
    assert_eq!(me.body["role"], "admin");
    assert!(me.body["id"].as_str().expect("id").starts_with("mem_"));
    let me = call(&f.app, Method::GET, "/v1/me", Auth::Cookie(&token), None).await;
    assert_eq!(me.status, StatusCode::OK);

    let out = call(
        &f.app,
        Method::DELETE,
        "/v1/session",
        Auth::Bearer(&token),
        None,
    )
    .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(
        out.headers[header::SET_COOKIE]
            .to_str()
            .expect("ascii")
            .contains("Max-Age=0")
    );
    let me = call(&f.app, Method::GET, "/v1/me", Auth::Bearer(&token), None).await;
    assert_error(&me, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let again = call(
        &f.app,
        Method::DELETE,
        "/v1/session",
        Auth::Bearer(&token),
        None,
    )
    .await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_by_cookie_needs_csrf_header() {
    let f = fixture();
    let a = call(
        &f.app,
        Method::DELETE,
        "/v1/session",
        Auth::Cookie(&f.member),
        None,
    )
    .await;
    assert_error(&a, StatusCode::FORBIDDEN, "csrf");
    let a = call(
        &f.app,
        Method::DELETE,
        "/v1/session",
        Auth::CookieCsrf(&f.member),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let a = call(&f.app, Method::GET, "/v1/me", Auth::Cookie(&f.member), None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_failures_look_alike_and_are_rate_limited() {
    let f = fixture();
    let wrong_password = call(
        &f.app,
        Method::POST,
        "/v1/session",
        Auth::None,
        Some(json!({"email": "admin@example.com", "password": "nope"})),
    )
    .await;
    let unknown_email = call(
        &f.app,
        Method::POST,
        "/v1/session",
        Auth::None,
        Some(json!({"email": "nobody@example.com", "password": "nope"})),
    )
    .await;
    assert_error(
        &wrong_password,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    assert_eq!(wrong_password.text, unknown_email.text);
    // Failures count per address and email: the unknown email's does not count for the admin.
    for _ in 0..4 {
        let a = call(
            &f.app,
            Method::POST,
            "/v1/session",
            Auth::None,
            Some(json!({"email": "admin@example.com", "password": "nope"})),
        )
        .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    }
    // Five failures for this email from this address within the minute: even the right
    // password waits there.
    let a = call(
        &f.app,
        Method::POST,
        "/v1/session",
        Auth::None,
        Some(json!({"email": "admin@example.com", "password": PASSWORD})),
    )
    .await;
    assert_error(&a, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(
        a.headers.contains_key(header::RETRY_AFTER),
        "{:?}",
        a.headers
    );
    let audit = call(
        &f.app,
        Method::GET,
        "/v1/audit?limit=50",
        Auth::Bearer(&f.admin),
        None,
    )
    .await;
    let failed = audit.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["action"] == "login_failed")
        .count();
    assert_eq!(failed, 6);
    assert!(!audit.text.contains("nope"), "no password in the audit log");
}

#[tokio::test]
async fn bad_bodies_get_json_errors() {
    let f = fixture();
    let raw = |body: &'static str, ct: &'static str| {
        Request::builder()
            .method(Method::POST)
            .uri("/v1/session")
            .header(header::CONTENT_TYPE, ct)
            .body(Body::from(body))
            .expect("request")
    };
    let a = send(&f.app, raw("{not json", "application/json")).await;
    assert_error(&a, StatusCode::BAD_REQUEST, "malformed_json");
    let a = send(
        &f.app,
        raw(r#"{"email": "a@example.com"}"#, "application/json"),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid_body");
    assert!(
        a.text.contains("password"),
        "names the missing field: {}",
        a.text
    );
    let a = send(
        &f.app,
        raw("email=a&password=b", "application/x-www-form-urlencoded"),
    )
    .await;
    assert_error(
        &a,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );

    let big = json!({"memo": "x".repeat(70 * 1024)});
    let a = call(
        &f.app,
        Method::POST,
        "/v1/keys",
        Auth::Bearer(&f.admin),
        Some(big),
    )
    .await;
    assert_error(&a, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    // 4000 hashes: about 268 KB, over the 256 KiB of a lookup.
    let big = json!({"sha256": vec!["0".repeat(64); 4000]});
    let a = call(
        &f.app,
        Method::POST,
        "/v1/keys/lookup",
        Auth::Bearer(&f.admin),
        Some(big),
    )
    .await;
    assert_error(&a, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    let big = json!({"email": "x".repeat(70 * 1024), "password": "p"});
    let a = call(&f.app, Method::POST, "/v1/session", Auth::None, Some(big)).await;
    assert_error(&a, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");

    for memo in ["", "   ", &"m".repeat(101)] {
        let a = call(
            &f.app,
            Method::POST,
            "/v1/keys",
            Auth::Bearer(&f.admin),
            Some(json!({"memo": memo})),
        )
        .await;
        assert_error(&a, StatusCode::BAD_REQUEST, "invalid_memo");
    }
    let a = call(
        &f.app,
        Method::POST,
        "/v1/keys",
        Auth::Bearer(&f.admin),
        Some(json!({"memo": 5})),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid_body");
    let a = call(
        &f.app,
        Method::POST,
        "/v1/keys",
        Auth::Bearer(&f.admin),
        Some(json!({})),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid_body");

    let a = call(&f.app, Method::GET, "/v1/nothing", Auth::None, None).await;
    assert_error(&a, StatusCode::NOT_FOUND, "not_found");
    let a = call(
        &f.app,
        Method::PUT,
        "/v1/keys",
        Auth::Bearer(&f.admin),
        None,
    )
    .await;
    assert_error(&a, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn errors_never_echo_a_key_or_token() {
    let f = fixture();
    let key = generate();
    let k = key.expose();
    let answers = [
        call(
            &f.app,
            Method::POST,
            "/v1/keys",
            Auth::Bearer(&f.admin),
            Some(json!({"memo": k})),
        )
        .await,
        call(
            &f.app,
            Method::POST,
            "/v1/keys",
            Auth::Bearer(&f.admin),
            Some(json!({"memo": [k]})),
        )
        .await,
        call(
            &f.app,
            Method::POST,
            "/v1/keys/lookup",
            Auth::Bearer(&f.admin),
            Some(json!({"sha256": [k]})),
        )
        .await,
        call(
            &f.app,
            Method::POST,
            "/v1/keys/lookup",
            Auth::Bearer(&f.admin),
            Some(json!({"sha256": k})),
        )
        .await,
        call(&f.app, Method::GET, "/v1/keys", Auth::Bearer(k), None).await,
        call(
            &f.app,
            Method::GET,
            "/api/v1/account",
            Auth::Bearer(k),
            None,
        )
        .await,
        call(
            &f.app,
            Method::GET,
            "/api/v1/account",
            Auth::KeyHeader(k),
            None,
        )
        .await,
        call(
            &f.app,
            Method::GET,
            "/api/v1/account",
            Auth::Bearer(&f.admin),
            None,
        )
        .await,
        call(
            &f.app,
            Method::POST,
            "/v1/session",
            Auth::None,
            Some(json!({"email": k, "password": k})),
        )
        .await,
        call(
            &f.app,
            Method::POST,
            "/v1/session",
            Auth::None,
            Some(json!({"email": 1, "password": k})),
        )
        .await,
        call(
            &f.app,
            Method::POST,
            &format!("/v1/keys/{k}/rotate"),
            Auth::Bearer(&f.admin),
            None,
        )
        .await,
    ];
    for a in &answers {
        assert!(a.status.is_client_error(), "{}", a.text);
        assert!(a.body["error"]["code"].is_string(), "{}", a.text);
        assert!(!a.text.contains(k), "key echoed: {}", a.text);
        assert!(!a.text.contains(&f.admin), "token echoed: {}", a.text);
    }
    assert_eq!(answers[0].body["error"]["code"], "key_in_memo");
}

#[tokio::test]
async fn create_list_use_lookup_delete() {
    let f = fixture();
    let (key, id) = create(&f, "  Fulfillment integration  ").await;
    assert!(crate::key::is_current(key.as_bytes()));
    assert!(id.starts_with("key_"));

    let keys = listed(&f).await;
    assert_eq!(keys.len(), 1);
    let k = &keys[0];
    assert_eq!(k["id"], id.as_str());
    assert_eq!(k["memo"], "Fulfillment integration");
    assert_eq!(k["last4"], &key[key.len() - 4..]);
    assert_eq!(k["kind"], "current");
    assert_eq!(k["created_by"]["email"], "admin@example.com");
    assert!(k["last_used_at"].is_null());
    assert_eq!(k["exposures"]["count"], 0);
    assert!(k.get("key").is_none() && k.get("sha256").is_none());
    let text = k.to_string();
    assert!(!text.contains(&key) && !text.contains(&sha256_hex(key.as_bytes())));

    let a = account(&f, &key).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["key_id"], id.as_str());
    assert!(a.body["account"]["name"].is_string());
    let a = call(
        &f.app,
        Method::GET,
        "/api/v1/account",
        Auth::KeyHeader(&key),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "X-Offset-Key works too");
    let used = listed(&f).await[0]["last_used_at"].clone();
    assert!(used.is_string());

    let hit = lookup(&f, &key).await;
    assert_eq!(hit["status"], "active");
    assert_eq!(hit["sha256"], sha256_hex(key.as_bytes()));
    assert_eq!(hit["key"]["id"], id.as_str());
    assert!(hit["deleted_at"].is_null());
    assert_eq!(
        listed(&f).await[0]["last_used_at"],
        used,
        "lookup leaves last_used_at alone"
    );

    let d = call(
        &f.app,
        Method::DELETE,
        &format!("/v1/keys/{id}"),
        Auth::Bearer(&f.admin),
        None,
    )
    .await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    assert_error(
        &account(&f, &key).await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    let hit = lookup(&f, &key).await;
    assert_eq!(hit["status"], "revoked");
    assert!(hit["deleted_at"].is_string());
    assert!(listed(&f).await.is_empty());
    let d = call(
        &f.app,
        Method::DELETE,
        &format!("/v1/keys/{id}"),
        Auth::Bearer(&f.admin),
        None,
    )
    .await;
    assert_error(&d, StatusCode::NOT_FOUND, "not_found");
    let d = call(
        &f.app,
        Method::DELETE,
        "/v1/keys/key_nope",
        Auth::Bearer(&f.admin),
        None,
    )
    .await;
    assert_error(&d, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn lookup_order_unknown_and_bounds() {
    let f = fixture();
    let (a_key, _) = create(&f, "a").await;
    let (b_key, _) = create(&f, "b").await;
    let unknown = sha256_hex(generate().expose().as_bytes());
    let hashes = [
        sha256_hex(b_key.as_bytes()),
        unknown.clone(),
        sha256_hex(a_key.as_bytes()),
    ];
    let a = call(
        &f.app,
        Method::POST,
        "/v1/keys/lookup",
        Auth::Bearer(&f.admin),
        Some(json!({"sha256": hashes})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let r = a.body["results"].as_array().expect("results");
    assert_eq!(r.len(), 3);
    assert_eq!(r[0]["key"]["memo"], "b");
    assert_eq!(r[1]["status"], "unknown");
    assert!(r[1]["key"].is_null());
    assert_eq!(r[1]["sha256"], unknown.as_str());
    assert_eq!(r[2]["key"]["memo"], "a");

    let many: Vec<String> = (0..1000)
        .map(|i| sha256_hex(format!("{i}").as_bytes()))
        .collect();
    let a = call(
        &f.app,
        Method::POST,
        "/v1/keys/lookup",
        Auth::Bearer(&f.admin),
        Some(json!({"sha256": many})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let too_many: Vec<String> = (0..1001)
        .map(|i| sha256_hex(format!("{i}").as_bytes()))
        .collect();
    for body in [json!({"sha256": too_many}), json!({"sha256": []})] {
        let a = call(
            &f.app,
            Method::POST,
            "/v1/keys/lookup",
            Auth::Bearer(&f.admin),
            Some(body),
        )
        .await;
        assert_error(&a, StatusCode::BAD_REQUEST, "invalid_batch");
    }
    let a = call(
        &f.app,
        Method::POST,
        "/v1/keys/lookup",
        Auth::Bearer(&f.admin),
        Some(json!({"sha256": [unknown.to_uppercase()]})),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid_sha256");
}

#[tokio::test]
async fn list_is_newest_first() {
    let f = fixture();
    create(&f, "first").await;
    create(&f, "second").await;
    let keys = listed(&f).await;
    assert_eq!(keys[0]["memo"], "second");
    assert_eq!(keys[1]["memo"], "first");
}

#[tokio::test]
async fn rotate_with_grace_zero_retires_at_once() {
    let f = fixture();
    let (old, old_id) = create(&f, "shop").await;
    let a = call(
        &f.app,
        Method::POST,
        &format!("/v1/keys/{old_id}/rotate"),
        Auth::Bearer(&f.admin),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let new = a.body["key"].as_str().expect("key").to_owned();
    assert_eq!(a.body["replaces"], old_id.as_str());
    assert_eq!(a.body["memo"], "shop");
    assert!(a.body["old_expires_at"].is_string());
    assert_eq!(a.headers["cache-control"], "no-store");
    assert_eq!(account(&f, &old).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(account(&f, &new).await.status, StatusCode::OK);
    let hit = lookup(&f, &old).await;
    assert_eq!(hit["status"], "revoked");
    assert!(hit["deleted_at"].is_string());
    let keys = listed(&f).await;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["id"], a.body["id"]);
    // Rotating it again is 404: it is gone.
    let a = call(
        &f.app,
        Method::POST,
        &format!("/v1/keys/{old_id}/rotate"),
        Auth::Bearer(&f.admin),
        None,
    )
    .await;
    assert_error(&a, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn rotate_with_grace_keeps_old_key_until_expiry() {
    let f = fixture();
    let (old, old_id) = create(&f, "shop").await;
    let a = call(
        &f.app,
        Method::POST,
        &format!("/v1/keys/{old_id}/rotate"),
        Auth::Bearer(&f.admin),
        Some(json!({"memo": "shop v2", "grace_seconds": 1})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(a.body["memo"], "shop v2");
    let new = a.body["key"].as_str().expect("key").to_owned();
    assert_eq!(account(&f, &old).await.status, StatusCode::OK, "in grace");
    assert_eq!(account(&f, &new).await.status, StatusCode::OK);
    assert_eq!(lookup(&f, &old).await["status"], "active");
    assert_eq!(listed(&f).await.len(), 2);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        account(&f, &old).await.status,
        StatusCode::UNAUTHORIZED,
        "grace over"
    );
    let hit = lookup(&f, &old).await;
    assert_eq!(hit["status"], "revoked");
    assert!(hit["deleted_at"].is_string());
    assert_eq!(listed(&f).await.len(), 1);
    assert_eq!(account(&f, &new).await.status, StatusCode::OK);
}

#[tokio::test]
async fn rotate_until_first_use_of_the_new_key() {
    let f = fixture();
    let (old, old_id) = create(&f, "shop").await;
    let a = call(
        &f.app,
        Method::POST,
        &format!("/v1/keys/{old_id}/rotate"),
        Auth::Bearer(&f.admin),
        Some(json!({"grace_seconds": 3600, "until_first_use": true})),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let new = a.body["key"].as_str().expect("key").to_owned();
    assert_eq!(account(&f, &old).await.status, StatusCode::OK);
    assert_eq!(account(&f, &old).await.status, StatusCode::OK);
    assert_eq!(
        lookup(&f, &new).await["status"],
        "active",
        "lookup is not a use"
    );
    assert_eq!(account(&f, &old).await.status, StatusCode::OK);
    assert_eq!(account(&f, &new).await.status, StatusCode::OK);
    assert_eq!(account(&f, &old).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(lookup(&f, &old).await["status"], "revoked");
    assert_eq!(account(&f, &new).await.status, StatusCode::OK);
}

#[tokio::test]
async fn rotate_errors() {
    let f = fixture();
    let (_, id) = create(&f, "shop").await;
    let a = call(
        &f.app,
        Method::POST,
        "/v1/keys/key_nope/rotate",
        Auth::Bearer(&f.admin),
        None,
    )
    .await;
    assert_error(&a, StatusCode::NOT_FOUND, "not_found");
    let a = call(
        &f.app,
        Method::POST,
        &format!("/v1/keys/{id}/rotate"),
        Auth::Bearer(&f.admin),
        Some(json!({"grace_seconds": -1})),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid_body");
    let a = call(
        &f.app,
        Method::POST,
        &format!("/v1/keys/{id}/rotate"),
        Auth::Bearer(&f.admin),
        Some(json!({"grace_seconds": 999_999_999})),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid_grace");
    let a = call(
        &f.app,
        Method::POST,
        &format!("/v1/keys/{id}/rotate"),
        Auth::Bearer(&f.admin),
        Some(json!({"memo": ""})),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid_memo");
    assert_eq!(listed(&f).await.len(), 1, "failed rotations change nothing");
}

#[tokio::test]
async fn exposures_are_recorded_once_per_place() {
    let f = fixture();
    let (key, _) = create(&f, "shop").await;
    let sha = sha256_hex(key.as_bytes());
    let e = |w: &str| json!({"sha256": sha, "source": "offkey scan", "where": w, "seen_at": "2026-11-27T09:00:00Z"});
    let unknown = json!({"sha256": "0".repeat(64), "source": "offkey scan", "where": "x", "seen_at": "2026-11-27T09:00:00Z"});
    let a = call(
        &f.app,
        Method::POST,
        "/v1/keys/exposures",
        Auth::Bearer(&f.admin),
        Some(json!({"exposures": [e("src/app.py:12 @ 3f2a9c1"), e("src/app.py:12 @ 3f2a9c1"), e("README.md:3"), unknown]})),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["recorded"], 2);
    let a = call(
        &f.app,
        Method::POST,
        "/v1/keys/exposures",
        Auth::Bearer(&f.admin),
        Some(json!({"exposures": [e("README.md:3")]})),
    )
    .await;
    assert_eq!(a.body["recorded"], 0);
    let k = &listed(&f).await[0];
    assert_eq!(k["exposures"]["count"], 2);
    assert_eq!(k["exposures"]["last"]["source"], "offkey scan");
    assert!(k["exposures"]["last"]["where"].is_string());
    assert_eq!(k["exposures"]["last"]["seen_at"], "2026-11-27T09:00:00Z");

    let a = call(
        &f.app,
        Method::POST,
        "/v1/keys/exposures",
        Auth::Bearer(&f.admin),
        Some(json!({"exposures": [e(&format!("config.py:1 {key}"))]})),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "key_in_where");
    assert!(!a.text.contains(&key));
    let a = call(
        &f.app,
        Method::POST,
        "/v1/keys/exposures",
        Auth::Bearer(&f.admin),
        Some(json!({"exposures": []})),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid_batch");
    let a = call(
        &f.app,
        Method::POST,
        "/v1/keys/exposures",
        Auth::Bearer(&f.admin),
        Some(json!({"exposures": [{"sha256": sha}]})),
    )
    .await;
    assert_error(&a, StatusCode::BAD_REQUEST, "invalid_body");
}

#[tokio::test]
async fn audit_log_records_changes() {
    let f = fixture();
    let (key, id) = create(&f, "shop").await;
    lookup(&f, &key).await;
    call(
        &f.app,
        Method::DELETE,
        &format!("/v1/keys/{id}"),
        Auth::Bearer(&f.admin),
        None,
    )
    .await;
    let a = call(
        &f.app,
        Method::GET,
        "/v1/audit",
        Auth::Bearer(&f.admin),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    let events = a.body["events"].as_array().expect("events");
    let actions: Vec<&str> = events.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(
        &actions[..3],
        ["delete", "lookup", "create"],
        "newest first"
    );
    assert_eq!(events[0]["key_id"], id.as_str());
    assert_eq!(events[0]["actor"], "admin@example.com");
    assert!(events[0]["at"].is_string());
    assert!(!a.text.contains(&key));
    let a = call(
        &f.app,
        Method::GET,
        "/v1/audit?limit=1",
        Auth::Bearer(&f.admin),
        None,
    )
    .await;
    assert_eq!(a.body["events"].as_array().expect("events").len(), 1);
    for bad in ["0", "x", "100000"] {
        let a = call(
            &f.app,
            Method::GET,
            &format!("/v1/audit?limit={bad}"),
            Auth::Bearer(&f.admin),
            None,
        )
        .await;
        assert_error(&a, StatusCode::BAD_REQUEST, "invalid_limit");
    }
}

#[tokio::test]
async fn legacy_keys_list_without_creator_and_authenticate() {
    let f = fixture();
    let legacy = "43daa2ac214ae4da6a592a611e7824e4";
    let count = f
        .store
        .import_legacy(
            vec![NewKey {
                id: new_id("key_"),
                sha256: sha256_hex(legacy.as_bytes()),
                last4: "24e4".into(),
                memo: "Old ERP link".into(),
                kind: crate::key::KeyKind::Legacy,
                created_at: Utc::now() - Duration::days(400),
                created_by: None,
            }],
            "cli",
        )
        .expect("import");
    assert_eq!(count.imported, 1);
    let k = &listed(&f).await[0];
    assert!(k["created_by"].is_null());
    assert_eq!(k["kind"], "legacy");
    assert_eq!(k["last4"], "24e4");
    let a = call(
        &f.app,
        Method::GET,
        "/api/v1/account",
        Auth::KeyHeader(legacy),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn cookie_changes_need_csrf_header_and_same_origin() {
    let f = fixture();
    let memo = json!({"memo": "x"});
    let a = call(
        &f.app,
        Method::POST,
        "/v1/keys",
        Auth::Cookie(&f.admin),
        Some(memo.clone()),
    )
    .await;
    assert_error(&a, StatusCode::FORBIDDEN, "csrf");
    // A cross-site HTML form: cookie, form encoding, no custom header.
    let form = Request::builder()
        .method(Method::POST)
        .uri("/v1/keys")
        .header(header::HOST, "localhost:8787")
        .header(header::ORIGIN, "https://evil.example")
        .header(header::COOKIE, format!("offkey_session={}", f.admin))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("memo=pwned"))
        .expect("request");
    assert_error(&send(&f.app, form).await, StatusCode::FORBIDDEN, "csrf");
    let form = Request::builder()
        .method(Method::POST)
        .uri("/v1/keys")
        .header(header::COOKIE, format!("offkey_session={}", f.admin))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("memo=pwned"))
        .expect("request");
    assert_error(&send(&f.app, form).await, StatusCode::FORBIDDEN, "csrf");
    let mut req = request(
        Method::POST,
        "/v1/keys",
        Auth::CookieCsrf(&f.admin),
        Some(&memo),
    );
    req.headers_mut().insert(
        header::ORIGIN,
        "http://evil.example".parse().expect("value"),
    );
    assert_error(&send(&f.app, req).await, StatusCode::FORBIDDEN, "csrf");
    assert!(listed(&f).await.is_empty(), "nothing was created");

    let mut req = request(
        Method::POST,
        "/v1/keys",
        Auth::CookieCsrf(&f.admin),
        Some(&memo),
    );
    req.headers_mut().insert(
        header::ORIGIN,
        "http://localhost:8787".parse().expect("value"),
    );
    assert_eq!(send(&f.app, req).await.status, StatusCode::CREATED);
    let a = call(
        &f.app,
        Method::POST,
        "/v1/keys",
        Auth::CookieCsrf(&f.admin),
        Some(memo.clone()),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED);
    let a = call(
        &f.app,
        Method::POST,
        "/v1/keys",
        Auth::Bearer(&f.admin),
        Some(memo),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "bearer needs no CSRF header");
    let a = call(
        &f.app,
        Method::GET,
        "/v1/keys",
        Auth::Cookie(&f.admin),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "reads need no CSRF header");
}

/// Every route × every kind of caller.
#[tokio::test]
async fn removed_member_session_stops_working() {
    let f = fixture();
    assert!(
        f.store
            .remove_member("member@example.com", Utc::now())
            .expect("remove")
    );
    let a = call(&f.app, Method::GET, "/v1/me", Auth::Bearer(&f.member), None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn graceful_shutdown_finishes_requests_in_flight() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let f = fixture();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let state = AppState::new(f.store.clone());
    let server = tokio::spawn(super::serve(listener, state, async {
        let _ = stopped.await;
    }));
    // A create whose body is still arriving when the shutdown signal comes.
    let body = json!({"memo": "in flight"}).to_string();
    let head = format!(
        "POST /v1/keys HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        f.admin,
        body.len()
    );
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    conn.write_all(head.as_bytes()).await.expect("write");
    conn.write_all(&body.as_bytes()[..5]).await.expect("write");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.send(()).expect("signal");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!server.is_finished(), "waits for the request in flight");
    conn.write_all(&body.as_bytes()[5..]).await.expect("write");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    tokio::time::timeout(std::time::Duration::from_secs(10), server)
        .await
        .expect("stops once idle")
        .expect("joined")
        .expect("served");
    let keys = f.store.list_keys(Utc::now()).expect("list");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].memo, "in flight");
}

also_on_postgres! {
    healthz_and_pages,
    security_headers_on_every_answer,
    login_me_logout,
    logout_by_cookie_needs_csrf_header,
    login_failures_look_alike_and_are_rate_limited,
    bad_bodies_get_json_errors,
    errors_never_echo_a_key_or_token,
    create_list_use_lookup_delete,
    lookup_order_unknown_and_bounds,
    list_is_newest_first,
    rotate_with_grace_zero_retires_at_once,
    rotate_with_grace_keeps_old_key_until_expiry,
    rotate_until_first_use_of_the_new_key,
    rotate_errors,
    exposures_are_recorded_once_per_place,
    audit_log_records_changes,
    legacy_keys_list_without_creator_and_authenticate,
    cookie_changes_need_csrf_header_and_same_origin,
    removed_member_session_stops_working,
    graceful_shutdown_finishes_requests_in_flight,
}

mod blocking;
mod lifecycle;
mod matrix;
mod ops;
mod pg_store;
