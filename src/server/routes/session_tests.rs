//! Sign-in under attack, through the router: parallel guesses, lock-out attempts, aggregated
//! refusals in the audit log, the cap on password checks, the public URL's Host, Origin and
//! cookie rules. Peers are set with `ConnectInfo`, as the real listener does.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use chrono::Utc;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::server::net::{NetSettings, PublicUrl};
use crate::server::{AppState, password, router};
use crate::store::{NewMember, Role, new_id};

const PASSWORD: &str = "correct horse battery staple";
const ADMIN: &str = "admin@example.com";

struct Fixture {
    _dir: tempfile::TempDir,
    state: AppState,
    app: Router,
    admin_token: String,
}

fn fixture(net: NetSettings) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = crate::server::tests::test_store(dir.path());
    let m = store
        .add_member(
            NewMember {
                id: new_id("mem_"),
                email: ADMIN.into(),
                name: "Admin".into(),
                role: Role::Admin,
                password_hash: password::hash(PASSWORD).expect("hash"),
            },
            Utc::now(),
        )
        .expect("member");
    let admin_token = format!("test-session-{}", new_id(""));
    let now = Utc::now();
    store
        .create_session(
            &crate::key::sha256_hex(admin_token.as_bytes()),
            &m.id,
            now,
            now + chrono::Duration::hours(1),
        )
        .expect("session");
    let state = AppState::new(store).with_net(net);
    Fixture {
        _dir: dir,
        app: router(state.clone()),
        state,
        admin_token,
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
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text,
    }
}

fn sign_in_request(from: &str, email: &str, password: &str, host: &str) -> Request<Body> {
    let peer: SocketAddr = format!("{from}:40000").parse().expect("addr");
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/v1/session")
        .header(header::HOST, host)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"email": email, "password": password}).to_string(),
        ))
        .expect("request");
    req.extensions_mut().insert(ConnectInfo(peer));
    req
}

async fn sign_in(f: &Fixture, from: &str, email: &str, password: &str) -> Answer {
    send(
        &f.app,
        sign_in_request(from, email, password, "localhost:8787"),
    )
    .await
}

async fn audit(f: &Fixture) -> Vec<Value> {
    let req = Request::builder()
        .uri("/v1/audit?limit=1000")
        .header(header::HOST, "localhost:8787")
        .header(header::AUTHORIZATION, format!("Bearer {}", f.admin_token))
        .body(Body::empty())
        .expect("request");
    let a = send(&f.app, req).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    a.body["events"].as_array().expect("events").clone()
}

fn assert_retry_after(a: &Answer) {
    let secs: u64 = a
        .headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{} without Retry-After: {:?}", a.status, a.headers));
    assert!((1..=3600).contains(&secs), "{secs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_parallel_guesses_get_five_checks() {
    // Room for all 40 checks at once, so only the limiter can refuse them.
    let f = fixture(NetSettings {
        max_password_checks: 40,
        ..NetSettings::default()
    });
    let tries: Vec<_> = (0..40)
        .map(|i| {
            let app = f.app.clone();
            tokio::spawn(async move {
                send(
                    &app,
                    sign_in_request("192.0.2.1", ADMIN, &format!("guess {i}"), "localhost:8787"),
                )
                .await
            })
        })
        .collect();
    let mut unauthorized = 0;
    let mut limited = 0;
    for t in tries {
        let a = t.await.expect("task");
        match a.status {
            StatusCode::UNAUTHORIZED => unauthorized += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_retry_after(&a);
                assert_eq!(a.body["error"]["code"], "rate_limited");
                limited += 1;
            }
            other => panic!("unexpected {other}: {}", a.text),
        }
    }
    assert_eq!((unauthorized, limited), (5, 35));
    let events = audit(&f).await;
    let failed = events
        .iter()
        .filter(|e| e["action"] == "login_failed")
        .count();
    assert_eq!(failed, 5);
    // 35 refusals, one audit row.
    let refused: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "login_refused")
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["actor"], ADMIN);
    let detail = refused[0]["detail"].as_str().expect("detail");
    assert!(detail.contains("address_and_email_per_minute"), "{detail}");
    assert!(detail.contains("192.0.2.1"), "{detail}");
}

#[tokio::test]
async fn failures_from_one_address_never_lock_the_admin_out_elsewhere() {
    let f = fixture(NetSettings::default());
    for _ in 0..5 {
        let a = sign_in(&f, "192.0.2.66", ADMIN, "wrong guess").await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    }
    let a = sign_in(&f, "192.0.2.66", ADMIN, PASSWORD).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.text);
    assert_retry_after(&a);
    let a = sign_in(&f, "198.51.100.7", ADMIN, PASSWORD).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
}

#[tokio::test]
async fn an_address_spraying_emails_is_refused_after_twenty_checks() {
    let f = fixture(NetSettings::default());
    for i in 0..20 {
        let a = sign_in(&f, "192.0.2.8", &format!("user{i}@example.com"), "x").await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    }
    for i in 20..30 {
        let a = sign_in(&f, "192.0.2.8", &format!("user{i}@example.com"), "x").await;
        assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
        assert_retry_after(&a);
    }
    let events = audit(&f).await;
    let refused: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "login_refused")
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["actor"], "address 192.0.2.8");
    // The unknown emails were never stored, only `unknown email`.
    for e in events.iter().filter(|e| e["action"] == "login_failed") {
        assert_eq!(e["actor"], "unknown email");
    }
    assert!(
        !serde_json::to_string(&events)
            .expect("json")
            .contains("user1@")
    );
}

#[tokio::test]
async fn failed_sign_in_audit_names_only_members_and_no_control_characters() {
    let f = fixture(NetSettings::default());
    sign_in(&f, "192.0.2.1", "  Admin@Example.com ", "wrong").await;
    sign_in(&f, "192.0.2.2", "intruder@example.com", "wrong").await;
    sign_in(&f, "192.0.2.3", "evil\n2026-01-01 login ok@x", "wrong").await;
    sign_in(&f, "192.0.2.4", "bell\u{7}@example.com", "wrong").await;
    sign_in(&f, "192.0.2.5", PASSWORD, "pasted into the wrong field").await;
    let events = audit(&f).await;
    let mut actors: Vec<String> = events
        .iter()
        .filter(|e| e["action"] == "login_failed")
        .map(|e| e["actor"].as_str().expect("actor").to_owned())
        .collect();
    actors.sort();
    assert_eq!(
        actors,
        [
            ADMIN,
            "unknown email",
            "unknown email",
            "unknown email",
            "unknown email"
        ]
    );
    let all = serde_json::to_string(&events).expect("json");
    for e in &events {
        for field in ["actor", "detail"] {
            let v = e[field].as_str().unwrap_or("");
            assert!(!v.contains(char::is_control), "{v:?}");
        }
    }
    assert!(!all.contains("intruder") && !all.contains("evil") && !all.contains("bell"));
    assert!(!all.contains(PASSWORD));
}

#[tokio::test]
async fn beyond_the_cap_on_password_checks_sign_ins_get_503() {
    let f = fixture(NetSettings {
        max_password_checks: 1,
        ..NetSettings::default()
    });
    // The one permit is busy (as with a check in progress).
    let busy = Arc::clone(f.state.password_checks())
        .acquire_owned()
        .await
        .expect("permit");
    let a = sign_in(&f, "192.0.2.1", ADMIN, PASSWORD).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "overloaded");
    assert_retry_after(&a);
    drop(busy);
    // The refused attempts were not checked, so they do not count as failures either.
    for _ in 0..5 {
        let busy = Arc::clone(f.state.password_checks())
            .acquire_owned()
            .await
            .expect("permit");
        let a = sign_in(&f, "192.0.2.1", ADMIN, "wrong").await;
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
        drop(busy);
    }
    let a = sign_in(&f, "192.0.2.1", ADMIN, PASSWORD).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
}

fn public(url: &str) -> NetSettings {
    NetSettings {
        public_url: Some(PublicUrl::parse(url).expect("url")),
        ..NetSettings::default()
    }
}

#[tokio::test]
async fn a_public_url_refuses_other_hosts() {
    let f = fixture(public("https://keys.example.com"));
    for host in [
        "attacker.example",
        "localhost:8787",
        "keys.example.com:8443",
    ] {
        let a = send(&f.app, sign_in_request("192.0.2.1", ADMIN, PASSWORD, host)).await;
        assert_eq!(a.status, StatusCode::MISDIRECTED_REQUEST, "{host}");
        assert_eq!(a.body["error"]["code"], "misdirected_request");
    }
    let a = send(
        &f.app,
        sign_in_request("192.0.2.1", ADMIN, PASSWORD, "keys.example.com"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    // Behind https the cookie is host-only and Secure.
    let cookie = a
        .headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("cookie");
    assert!(cookie.starts_with("__Host-offkey_session="), "{cookie}");
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(
        cookie.contains("Path=/") && !cookie.contains("Domain"),
        "{cookie}"
    );
}

#[tokio::test]
async fn cookie_changes_need_the_public_origin() {
    let f = fixture(public("https://keys.example.com"));
    let a = send(
        &f.app,
        sign_in_request("192.0.2.1", ADMIN, PASSWORD, "keys.example.com"),
    )
    .await;
    let token = a.body["token"].as_str().expect("token").to_owned();
    let create = |cookie: String, origin: Option<&str>| {
        let mut b = Request::builder()
            .method(Method::POST)
            .uri("/v1/keys")
            .header(header::HOST, "keys.example.com")
            .header(header::COOKIE, cookie)
            .header("x-offkey-csrf", "1")
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(o) = origin {
            b = b.header(header::ORIGIN, o);
        }
        b.body(Body::from(json!({"memo": "ci"}).to_string()))
            .expect("request")
    };
    let host_cookie = format!("__Host-offkey_session={token}");
    let a = send(&f.app, create(host_cookie.clone(), None)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "csrf");
    let a = send(
        &f.app,
        create(host_cookie.clone(), Some("http://keys.example.com")),
    )
    .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.text);
    // The plain cookie name is not the session cookie behind https.
    let a = send(
        &f.app,
        create(
            format!("offkey_session={token}"),
            Some("https://keys.example.com"),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.text);
    let a = send(
        &f.app,
        create(host_cookie, Some("https://keys.example.com")),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
}

#[tokio::test]
async fn without_a_public_url_the_cookie_is_as_before() {
    let f = fixture(NetSettings::default());
    let a = sign_in(&f, "192.0.2.1", ADMIN, PASSWORD).await;
    let cookie = a
        .headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .expect("cookie");
    assert!(cookie.starts_with("offkey_session="), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
}

crate::server::tests::also_on_postgres! {
    forty_parallel_guesses_get_five_checks,
    failures_from_one_address_never_lock_the_admin_out_elsewhere,
    an_address_spraying_emails_is_refused_after_twenty_checks,
    failed_sign_in_audit_names_only_members_and_no_control_characters,
    beyond_the_cap_on_password_checks_sign_ins_get_503,
    a_public_url_refuses_other_hosts,
    cookie_changes_need_the_public_origin,
    without_a_public_url_the_cookie_is_as_before,
}
