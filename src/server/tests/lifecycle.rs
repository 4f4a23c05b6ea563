//! The key lifecycle under a moving clock: a key refused once is refused forever (a model-based
//! property test over random create / rotate / use / delete / lookup / list / clock moves), the
//! cancelled-rotation regression, idle sessions, `DELETE /v1/sessions`, audit paging and the
//! checks on exposures.

use std::collections::HashSet;

use proptest::prelude::*;

use super::*;
use crate::server::clock::{Clock, ManualClock};

fn clock() -> ManualClock {
    ManualClock::at(
        chrono::DateTime::parse_from_rfc3339("2026-06-01T09:00:00Z")
            .expect("time")
            .with_timezone(&Utc),
    )
}

fn clocked() -> (ManualClock, Fixture) {
    let c = clock();
    let f = fixture_with(Arc::new(c.clone()));
    (c, f)
}

async fn rotate(f: &Fixture, id: &str, body: Value) -> Answer {
    call(
        &f.app,
        Method::POST,
        &format!("/v1/keys/{id}/rotate"),
        Auth::Bearer(&f.admin),
        Some(body),
    )
    .await
}

async fn delete(f: &Fixture, id: &str) -> Answer {
    call(
        &f.app,
        Method::DELETE,
        &format!("/v1/keys/{id}"),
        Auth::Bearer(&f.admin),
        None,
    )
    .await
}

async fn audit_actions(f: &Fixture) -> Vec<(String, String)> {
    let a = call(
        &f.app,
        Method::GET,
        "/v1/audit?limit=1000",
        Auth::Bearer(&f.admin),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    a.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_owned(),
                e["detail"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The reported bug: rotate with a 2 s grace, let it run out, delete the never-used
/// replacement. The old key had stopped working; it must not come back.
#[tokio::test]
async fn deleting_a_replacement_after_the_grace_ran_out_does_not_revive_the_old_key() {
    let (clock, f) = clocked();
    let (old_key, old_id) = create(&f, "Fulfillment").await;
    let r = rotate(&f, &old_id, json!({"grace_seconds": 2})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let new_id = r.body["id"].as_str().expect("id").to_owned();
    clock.advance(Duration::seconds(3));
    assert_eq!(account(&f, &old_key).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(lookup(&f, &old_key).await["status"], "revoked");

    assert_eq!(delete(&f, &new_id).await.status, StatusCode::NO_CONTENT);
    assert_eq!(
        account(&f, &old_key).await.status,
        StatusCode::UNAUTHORIZED,
        "the old key stays refused"
    );
    assert_eq!(lookup(&f, &old_key).await["status"], "revoked");
    assert!(
        listed(&f).await.iter().all(|k| k["id"] != old_id.as_str()),
        "not listed again"
    );
    let audit = audit_actions(&f).await;
    assert!(
        audit
            .iter()
            .any(|(a, d)| a == "cancel_rotation" && d.contains("stays revoked")),
        "{audit:?}"
    );
}

/// Within the grace, cancelling restores the old key, says so in the audit log, and a second
/// rotation's deadline is not undone by cancelling the first.
#[tokio::test]
async fn cancelling_within_the_grace_restores_only_what_the_other_rotations_allow() {
    let (clock, f) = clocked();
    let (old_key, old_id) = create(&f, "Reporting").await;
    let first = rotate(&f, &old_id, json!({"grace_seconds": 3600})).await;
    let first_id = first.body["id"].as_str().expect("id").to_owned();
    let second = rotate(&f, &old_id, json!({"grace_seconds": 600})).await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.text);
    // Cancel the first rotation: the second one's 10 minutes still stand.
    assert_eq!(delete(&f, &first_id).await.status, StatusCode::NO_CONTENT);
    clock.advance(Duration::seconds(601));
    assert_eq!(
        account(&f, &old_key).await.status,
        StatusCode::UNAUTHORIZED,
        "the second rotation's deadline holds"
    );

    // A lone rotation cancelled in time: the old key works again with no deadline.
    let (k2, id2) = create(&f, "Marketing").await;
    let r = rotate(&f, &id2, json!({"grace_seconds": 60})).await;
    let new2 = r.body["id"].as_str().expect("id").to_owned();
    assert_eq!(delete(&f, &new2).await.status, StatusCode::NO_CONTENT);
    clock.advance(Duration::minutes(110));
    assert_eq!(account(&f, &k2).await.status, StatusCode::OK);
    let audit = audit_actions(&f).await;
    assert!(
        audit
            .iter()
            .any(|(a, d)| a == "cancel_rotation" && d.contains("no deadline")),
        "{audit:?}"
    );
}

/// One step of the model test.
#[derive(Debug, Clone)]
enum Op {
    Create,
    Rotate {
        key: usize,
        grace: u64,
        until_first_use: bool,
    },
    Use(usize),
    Delete(usize),
    Advance(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => Just(Op::Create),
        3 => (any::<usize>(), prop_oneof![Just(0u64), 1u64..120], any::<bool>()).prop_map(
            |(key, grace, until_first_use)| Op::Rotate { key, grace, until_first_use }
        ),
        4 => any::<usize>().prop_map(Op::Use),
        2 => any::<usize>().prop_map(Op::Delete),
        3 => prop_oneof![Just(0i64), 1i64..90, Just(61)].prop_map(Op::Advance),
    ]
}

/// The model's view of one key.
#[derive(Debug, Clone)]
struct ModelKey {
    key: String,
    id: String,
    deleted: bool,
    expires_at: Option<chrono::DateTime<Utc>>,
    replaces: Option<usize>,
    retire_on_first_use: bool,
    used: bool,
    rotation_deadline: Option<chrono::DateTime<Utc>>,
}

impl ModelKey {
    fn works(&self, now: chrono::DateTime<Utc>) -> bool {
        !self.deleted && self.expires_at.is_none_or(|e| e > now)
    }
}

async fn run_model(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (clock, f) = clocked();
    let mut keys: Vec<ModelKey> = Vec::new();
    let mut refused: HashSet<usize> = HashSet::new();
    for op in ops {
        let now = clock.now();
        match op {
            Op::Create => {
                let (key, id) = create(&f, "model").await;
                keys.push(ModelKey {
                    key,
                    id,
                    deleted: false,
                    expires_at: None,
                    replaces: None,
                    retire_on_first_use: false,
                    used: false,
                    rotation_deadline: None,
                });
            }
            Op::Rotate {
                key,
                grace,
                until_first_use,
            } if !keys.is_empty() => {
                let i = key % keys.len();
                let a = rotate(
                    &f,
                    &keys[i].id.clone(),
                    json!({"grace_seconds": grace, "until_first_use": until_first_use}),
                )
                .await;
                if keys[i].works(now) {
                    prop_assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
                    let deadline = now + Duration::seconds(grace as i64);
                    let old = &mut keys[i];
                    let e = old.expires_at.map_or(deadline, |e| e.min(deadline));
                    if e <= now {
                        old.deleted = true;
                    } else {
                        old.expires_at = Some(e);
                    }
                    keys.push(ModelKey {
                        key: a.body["key"].as_str().expect("key").to_owned(),
                        id: a.body["id"].as_str().expect("id").to_owned(),
                        deleted: false,
                        expires_at: None,
                        replaces: Some(i),
                        retire_on_first_use: until_first_use,
                        used: false,
                        rotation_deadline: Some(deadline),
                    });
                } else {
                    prop_assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text);
                }
            }
            Op::Use(key) if !keys.is_empty() => {
                let i = key % keys.len();
                let a = account(&f, &keys[i].key.clone()).await;
                if keys[i].works(now) {
                    prop_assert_eq!(a.status, StatusCode::OK, "{}", a.text);
                    let first = !keys[i].used;
                    keys[i].used = true;
                    if let (true, true, Some(o)) =
                        (first, keys[i].retire_on_first_use, keys[i].replaces)
                    {
                        if keys[o].works(now) {
                            keys[o].deleted = true;
                        }
                    }
                } else {
                    prop_assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.text);
                }
            }
            Op::Delete(key) if !keys.is_empty() => {
                let i = key % keys.len();
                let a = delete(&f, &keys[i].id.clone()).await;
                if keys[i].works(now) {
                    prop_assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text);
                    keys[i].deleted = true;
                    if let (Some(o), false) = (keys[i].replaces, keys[i].used) {
                        if keys[o].works(now) {
                            keys[o].expires_at = keys
                                .iter()
                                .enumerate()
                                .filter(|(j, k)| {
                                    *j != i && k.replaces == Some(o) && (!k.deleted || k.used)
                                })
                                .filter_map(|(_, k)| k.rotation_deadline)
                                .min();
                        }
                    }
                } else {
                    prop_assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text);
                }
            }
            Op::Advance(s) => clock.advance(Duration::seconds(s)),
            _ => {}
        }
        if keys.is_empty() {
            continue;
        }
        // After every step: lookup and the list agree with the model, and no key refused
        // before reads as active.
        let now = clock.now();
        let hashes: Vec<String> = keys.iter().map(|k| sha256_hex(k.key.as_bytes())).collect();
        let a = call(
            &f.app,
            Method::POST,
            "/v1/keys/lookup",
            Auth::Bearer(&f.admin),
            Some(json!({ "sha256": hashes })),
        )
        .await;
        prop_assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let list: HashSet<String> = listed(&f)
            .await
            .iter()
            .filter_map(|k| k["id"].as_str().map(str::to_owned))
            .collect();
        for (i, k) in keys.iter().enumerate() {
            let status = a.body["results"][i]["status"].as_str().unwrap_or_default();
            let active = status == "active";
            prop_assert!(
                !(active && refused.contains(&i)),
                "key {} was refused once and reads active again",
                i
            );
            prop_assert_eq!(active, k.works(now), "key {} lookup {}", i, status);
            prop_assert_eq!(list.contains(&k.id), k.works(now), "key {} listed", i);
            if !active {
                refused.insert(i);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// A key that was refused once (deleted, expired, replaced) is refused forever, and lookup
    /// never says `active` for it again; every answer matches a small model.
    #[test]
    fn refused_once_refused_forever(ops in proptest::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(run_model(ops))?;
    }
}

#[tokio::test]
async fn sessions_end_after_two_idle_hours_and_all_at_once_on_request() {
    let (clock, f) = clocked();
    let me = |t: &str| {
        let t = t.to_owned();
        let app = f.app.clone();
        async move { call(&app, Method::GET, "/v1/me", Auth::Bearer(&t), None).await }
    };
    // Used every 100 minutes, the session lives on.
    for _ in 0..3 {
        clock.advance(Duration::minutes(100));
        assert_eq!(me(&f.admin).await.status, StatusCode::OK);
    }
    // Two hours without use end it.
    clock.advance(Duration::minutes(121));
    assert_eq!(me(&f.admin).await.status, StatusCode::UNAUTHORIZED);

    // DELETE /v1/sessions ends every session of the caller, not another member's.
    let id = f
        .store
        .member_credentials("member@example.com")
        .expect("read")
        .expect("member")
        .member
        .id;
    let other = session_at(&f.store, &id, clock.now(), Duration::hours(1));
    assert_eq!(me(&f.member).await.status, StatusCode::UNAUTHORIZED);
    let admin_id = f
        .store
        .member_credentials("admin@example.com")
        .expect("read")
        .expect("admin")
        .member
        .id;
    let a1 = session_at(&f.store, &admin_id, clock.now(), Duration::hours(1));
    let a2 = session_at(&f.store, &admin_id, clock.now(), Duration::hours(1));
    let a = call(
        &f.app,
        Method::DELETE,
        "/v1/sessions",
        Auth::Bearer(&a1),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text);
    assert_eq!(me(&a1).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&a2).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&other).await.status, StatusCode::OK);
}

#[tokio::test]
async fn audit_log_pages_with_a_cursor() {
    let f = fixture();
    for i in 0..7 {
        create(&f, &format!("memo {i}")).await;
    }
    let mut seen = Vec::new();
    let mut url = "/v1/audit?limit=3".to_owned();
    loop {
        let a = call(&f.app, Method::GET, &url, Auth::Bearer(&f.admin), None).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        let events = a.body["events"].as_array().expect("events").clone();
        assert!(events.len() <= 3);
        seen.extend(events.iter().map(|e| e["detail"].clone()));
        match a.body["next"].as_str() {
            Some(c) => url = format!("/v1/audit?limit=3&before={c}"),
            None => break,
        }
    }
    let expected: Vec<Value> = (0..7).rev().map(|i| json!(format!("memo {i}"))).collect();
    assert_eq!(seen[..7], expected[..], "newest first");
    let all = call(
        &f.app,
        Method::GET,
        "/v1/audit?limit=1000",
        Auth::Bearer(&f.admin),
        None,
    )
    .await;
    let all: Vec<Value> = all.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["detail"].clone())
        .collect();
    assert_eq!(seen, all, "the pages hold every event once, in order");
    assert!(all.len() > 7);
    let bad = call(
        &f.app,
        Method::GET,
        "/v1/audit?before=abc",
        Auth::Bearer(&f.admin),
        None,
    )
    .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_cursor");
}

#[tokio::test]
async fn exposures_check_where_source_and_time_and_legacy_keys_are_refused_in_memos() {
    let (clock, f) = clocked();
    let (key, _) = create(&f, "Cart").await;
    let legacy = &sha256_hex(b"a legacy key")[..32];
    let sha = sha256_hex(key.as_bytes());
    let now = clock.now();
    let post = |e: Value| {
        let app = f.app.clone();
        let admin = f.admin.clone();
        async move {
            call(
                &app,
                Method::POST,
                "/v1/keys/exposures",
                Auth::Bearer(&admin),
                Some(json!({ "exposures": [e] })),
            )
            .await
        }
    };
    let at = |d: Duration| rfc(now + d);
    for (e, code) in [
        (
            json!({"sha256": sha, "source": "git", "where": format!("cfg.py:1 {legacy}"), "seen_at": at(Duration::zero())}),
            "key_in_where",
        ),
        (
            json!({"sha256": sha, "source": format!("x {legacy}"), "where": "cfg.py:1", "seen_at": at(Duration::zero())}),
            "key_in_where",
        ),
        (
            json!({"sha256": sha, "source": "git\u{7}", "where": "cfg.py:1", "seen_at": at(Duration::zero())}),
            "invalid_source",
        ),
        (
            json!({"sha256": sha, "source": "a".repeat(501), "where": "cfg.py:1", "seen_at": at(Duration::zero())}),
            "invalid_source",
        ),
        (
            json!({"sha256": sha, "source": "git", "where": "cfg.py:1\nx", "seen_at": at(Duration::zero())}),
            "invalid_where",
        ),
        (
            json!({"sha256": sha, "source": "git", "where": "cfg.py:1", "seen_at": at(Duration::minutes(6))}),
            "invalid_seen_at",
        ),
    ] {
        let a = post(e).await;
        assert_error(&a, StatusCode::BAD_REQUEST, code);
        assert!(!a.text.contains(legacy), "{}", a.text);
    }
    let ok = post(json!({"sha256": sha, "source": "a".repeat(500), "where": "cfg.py:1", "seen_at": at(Duration::minutes(4))})).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    assert_eq!(ok.body["recorded"], 1);

    let memo = call(
        &f.app,
        Method::POST,
        "/v1/keys",
        Auth::Bearer(&f.admin),
        Some(json!({ "memo": format!("old key {legacy}") })),
    )
    .await;
    assert_error(&memo, StatusCode::BAD_REQUEST, "key_in_memo");
}

fn rfc(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

super::also_on_postgres! {
    deleting_a_replacement_after_the_grace_ran_out_does_not_revive_the_old_key,
    cancelling_within_the_grace_restores_only_what_the_other_rotations_allow,
    refused_once_refused_forever,
    sessions_end_after_two_idle_hours_and_all_at_once_on_request,
    audit_log_pages_with_a_cursor,
    exposures_check_where_source_and_time_and_legacy_keys_are_refused_in_memos,
}
