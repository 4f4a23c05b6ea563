//! The authorization matrix, generated from the router's own route table ([`routes`]): every
//! route against every kind of caller, so that a route cannot be added without being covered.

use p256::pkcs8::EncodePublicKey as _;

use super::*;
use crate::server::{Access, routes};

/// The kinds of caller of spec/api.md, and the ways a credential stops working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Anonymous,
    Member,
    Admin,
    AdminCookieWithoutCsrf,
    ApiKey,
    ApiKeyHeader,
    ExpiredSession,
    LoggedOutSession,
    RemovedMemberSession,
    DeletedKey,
}

const CALLERS: [Caller; 10] = [
    Caller::Anonymous,
    Caller::Member,
    Caller::Admin,
    Caller::AdminCookieWithoutCsrf,
    Caller::ApiKey,
    Caller::ApiKeyHeader,
    Caller::ExpiredSession,
    Caller::LoggedOutSession,
    Caller::RemovedMemberSession,
    Caller::DeletedKey,
];

/// Whether `caller` may pass the route's authorization (the answer may still be 400 or 404
/// about the request itself, never 401 or 403).
fn may(access: Access, caller: Caller, changes_state: bool) -> bool {
    match access {
        // In-process (no socket) a request counts as loopback; the peer check itself is a
        // unit test in server::metrics.
        Access::Anonymous | Access::Operator => true,
        Access::Member => {
            matches!(caller, Caller::Member | Caller::Admin)
                || (caller == Caller::AdminCookieWithoutCsrf && !changes_state)
        }
        Access::Admin => {
            caller == Caller::Admin || (caller == Caller::AdminCookieWithoutCsrf && !changes_state)
        }
        Access::Integration => matches!(caller, Caller::ApiKey | Caller::ApiKeyHeader),
        // Only a valid signature opens it, never a session or an API key.
        Access::Signed => false,
    }
}

fn member_id(store: &Arc<dyn Store>, email: &str) -> String {
    store
        .member_credentials(email)
        .expect("read")
        .expect("member")
        .member
        .id
}

/// A key put straight into the store (the admin's own sessions may have been ended by a
/// sign-out-everywhere row of the matrix); answers its id.
fn store_key(store: &Arc<dyn Store>) -> String {
    let secret = generate();
    let id = new_id("key_");
    store
        .create_key(
            NewKey {
                id: id.clone(),
                sha256: secret.sha256(),
                last4: secret.last4().to_owned(),
                memo: "target".into(),
                kind: crate::key::KeyKind::Current,
                created_at: Utc::now(),
                created_by: None,
            },
            "test",
        )
        .expect("key");
    id
}

#[tokio::test]
async fn every_route_against_every_caller() {
    let f = fixture();
    let (api_key, key_id) = create(&f, "matrix").await;
    let (deleted_key, deleted_id) = create(&f, "deleted").await;
    let a = call(
        &f.app,
        Method::DELETE,
        &format!("/v1/keys/{deleted_id}"),
        Auth::Bearer(&f.admin),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    // A removed member, whose session must stop working.
    let removed = f
        .store
        .add_member(
            NewMember {
                id: new_id("mem_"),
                email: "gone@example.com".into(),
                name: "Gone".into(),
                role: Role::Admin,
                password_hash: password_hash(),
            },
            Utc::now(),
        )
        .expect("member");
    let removed_session = session_at(&f.store, &removed.id, Utc::now(), Duration::hours(1));
    assert!(
        f.store
            .remove_member("gone@example.com", Utc::now())
            .expect("remove")
    );
    let admin_id = member_id(&f.store, "admin@example.com");
    let member_id = member_id(&f.store, "member@example.com");
    let logged_out = session_at(&f.store, &admin_id, Utc::now(), Duration::hours(1));
    assert!(
        f.store
            .end_session(&sha256_hex(logged_out.as_bytes()))
            .expect("end")
    );

    // The GitHub endpoint switched on, with a key of our own (so that its refusals are real).
    let keys_file = f._dir.path().join("github-keys.json");
    let public = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng)
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .expect("pem");
    std::fs::write(
        &keys_file,
        json!({"public_keys": [{"key_identifier": "k1", "key": public, "is_current": true}]})
            .to_string(),
    )
    .expect("write");
    let alerts = crate::server::routes::github::GithubAlerts::new(
        keys_file,
        crate::server::routes::github::LeakAction::Revoke,
        None,
    )
    .expect("keys load");
    let app = router(AppState::new(f.store.clone()).with_github(alerts));

    let table = routes();
    assert!(table.len() >= 18, "the table lists every route");
    for r in &table {
        let changes_state = !matches!(r.method, Method::GET | Method::HEAD);
        // A key that exists, so an allowed caller's delete or rotate reaches the handler
        // (a fresh one each time: a delete or rotation uses it up).
        for caller in CALLERS {
            let target = if r.path.contains("{id}") {
                store_key(&f.store)
            } else {
                key_id.clone()
            };
            let path = r.path.replace("{id}", &target);
            // Fresh sessions each call: a sign-out route ends the one it is given.
            let admin = session_at(&f.store, &admin_id, Utc::now(), Duration::hours(1));
            let member = session_at(&f.store, &member_id, Utc::now(), Duration::hours(1));
            let auth = match caller {
                Caller::Anonymous => Auth::None,
                Caller::Member => Auth::Bearer(&member),
                Caller::Admin => Auth::Bearer(&admin),
                Caller::AdminCookieWithoutCsrf => Auth::Cookie(&admin),
                Caller::ApiKey => Auth::Bearer(&api_key),
                Caller::ApiKeyHeader => Auth::KeyHeader(&api_key),
                Caller::ExpiredSession => Auth::Bearer(&f.expired),
                Caller::LoggedOutSession => Auth::Bearer(&logged_out),
                Caller::RemovedMemberSession => Auth::Bearer(&removed_session),
                Caller::DeletedKey => Auth::Bearer(&deleted_key),
            };
            let a = call(&app, r.method.clone(), &path, auth, None).await;
            let what = format!(
                "{caller:?} on {} {}: {} {}",
                r.method, r.path, a.status, a.text
            );
            if may(r.access, caller, changes_state) {
                assert!(
                    a.status != StatusCode::UNAUTHORIZED && a.status != StatusCode::FORBIDDEN,
                    "{what}"
                );
            } else {
                let expected = match (r.access, caller) {
                    // Signed in, but not allowed: 403 (a member on an admin route, a cookie
                    // change without the CSRF header).
                    (Access::Admin, Caller::Member)
                    | (Access::Admin | Access::Member, Caller::AdminCookieWithoutCsrf) => {
                        StatusCode::FORBIDDEN
                    }
                    _ => StatusCode::UNAUTHORIZED,
                };
                assert_eq!(a.status, expected, "{what}");
                assert!(a.body["error"]["code"].is_string(), "{what}");
            }
            for secret in [&api_key, &deleted_key, &admin, &member] {
                assert!(!a.text.contains(secret.as_str()), "{what}");
            }
        }
    }
}

super::also_on_postgres! {
    every_route_against_every_caller,
}
