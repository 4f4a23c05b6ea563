//! The store contract as tests: every case takes `&dyn Store` (the races take two instances on
//! one database, as two replicas would be), and each backend runs them all on fresh stores:
//! SQLite always, PostgreSQL on `OFFKEY_TEST_DATABASE_URL` (a test fails, naming what to
//! install, when it is not set).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use chrono::{DateTime, Duration, Utc};

use super::{
    AuditEntry, ExposureReport, KeyCheck, LAST_USED_RESOLUTION, LimiterRow, LookupStatus, NewKey,
    NewMember, Role, Rotation, SESSION_IDLE, Store, StoreError, new_id,
};
use crate::key::{KeyKind, Secret, generate};

/// A contract case on one store.
pub(crate) type Case = fn(&dyn Store);
/// A race between two instances of one store.
pub(crate) type Race = fn(&dyn Store, &dyn Store);

/// Every single-instance case, by name.
pub(crate) const CASES: &[(&str, Case)] = &[
    ("ping", ping),
    ("members", members),
    ("sessions", sessions),
    ("keys", keys),
    ("rotation_and_cancel", rotation_and_cancel),
    ("lookup", lookup),
    (
        "use_key_coalesces_and_retires_once",
        use_key_coalesces_and_retires_once,
    ),
    ("exposures", exposures),
    ("audit_paging", audit_paging),
    ("import_legacy", import_legacy),
    ("limiter_rows", limiter_rows),
];

/// Every race, by name.
pub(crate) const RACES: &[(&str, Race)] = &[
    ("two_rotations_one_replacement", race_two_rotations),
    ("first_use_retires_once", race_first_use),
    ("delete_beats_later_use", race_delete_vs_use),
    ("two_adds_one_member", race_two_adds),
    ("limiter_counts_exactly", race_limiter_counts),
    ("last_use_coalescing_is_shared", shared_last_use),
];

/// How often each race is run (each round on fresh rows).
const ROUNDS: usize = 12;

fn t0() -> DateTime<Utc> {
    // Whole milliseconds: both backends store milliseconds.
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).expect("a valid time")
}

fn new_key(memo: &str, now: DateTime<Utc>) -> (Secret, NewKey) {
    let secret = generate();
    let key = NewKey {
        id: new_id("key_"),
        sha256: secret.sha256(),
        last4: secret.last4().to_owned(),
        memo: memo.into(),
        kind: KeyKind::Current,
        created_at: now,
        created_by: None,
    };
    (secret, key)
}

fn member(email: &str, role: Role) -> NewMember {
    NewMember {
        id: new_id("mem_"),
        email: email.into(),
        name: email.split('@').next().unwrap_or("x").into(),
        role,
        password_hash: "$argon2id$fake".into(),
    }
}

fn rotation(old_id: &str, new: NewKey, deadline: DateTime<Utc>, first_use: bool) -> Rotation {
    Rotation {
        old_id: old_id.into(),
        new,
        old_expires_at: deadline,
        until_first_use: first_use,
    }
}

fn works(s: &dyn Store, secret: &Secret, now: DateTime<Utc>) -> bool {
    s.use_key(&secret.sha256(), now).expect("use").is_some()
}

fn actions(s: &dyn Store, action: &str) -> usize {
    s.audit_log(10_000, None)
        .expect("audit")
        .iter()
        .filter(|e| e.action == action)
        .count()
}

fn ping(s: &dyn Store) {
    s.ping().expect("ping");
}

fn members(s: &dyn Store) {
    let now = t0();
    let a = s
        .add_member(member("a@example.com", Role::Admin), now)
        .expect("add a");
    let b = s
        .add_member(
            member("b@example.com", Role::Member),
            now + Duration::seconds(1),
        )
        .expect("add b");
    let dup = s.add_member(member("A@Example.com", Role::Member), now);
    assert!(matches!(dup, Err(StoreError::DuplicateEmail)), "{dup:?}");
    let listed = s.list_members().expect("list");
    assert_eq!(
        listed,
        vec![a.clone(), b.clone()],
        "oldest first, no duplicate"
    );
    let creds = s
        .member_credentials("a@example.com")
        .expect("creds")
        .expect("a has credentials");
    assert_eq!(creds.member, a);
    assert_eq!(creds.password_hash, "$argon2id$fake");
    assert!(
        s.member_credentials("nobody@example.com")
            .expect("none")
            .is_none()
    );

    s.create_session("tok-a", &a.id, now, now + Duration::hours(8))
        .expect("session");
    assert!(
        s.set_password("a@example.com", "$argon2id$new", now)
            .expect("passwd")
    );
    assert!(
        s.session("tok-a", now).expect("get").is_none(),
        "passwd ends sessions"
    );
    assert_eq!(
        s.member_credentials("a@example.com")
            .expect("creds")
            .expect("a")
            .password_hash,
        "$argon2id$new"
    );
    assert!(
        !s.set_password("nobody@example.com", "x", now)
            .expect("passwd")
    );

    s.create_session("tok-b", &b.id, now, now + Duration::hours(8))
        .expect("session");
    assert!(s.remove_member("b@example.com", now).expect("remove"));
    assert!(
        s.session("tok-b", now).expect("get").is_none(),
        "removal ends sessions"
    );
    assert!(!s.remove_member(&b.id, now).expect("again"));
    assert_eq!(s.list_members().expect("list"), vec![a]);
    // The email is free again once its member is removed.
    s.add_member(member("b@example.com", Role::Member), now)
        .expect("re-add");
}

fn sessions(s: &dyn Store) {
    let now = t0();
    let m = s
        .add_member(member("s@example.com", Role::Admin), now)
        .expect("add");
    let end = now + Duration::hours(8);
    s.create_session("t1", &m.id, now, end).expect("create");
    let got = s.session("t1", now).expect("get").expect("live");
    assert_eq!(got.member, m);
    assert_eq!(got.expires_at, end);
    // Idle timeout: used within SESSION_IDLE keeps it alive...
    let mut at = now;
    for _ in 0..5 {
        at += SESSION_IDLE - Duration::minutes(5);
        if at >= end {
            break;
        }
        assert!(
            s.session("t1", at).expect("get").is_some(),
            "used in time at {at}"
        );
    }
    // ... and a gap longer than SESSION_IDLE ends it.
    s.create_session("t2", &m.id, now, end).expect("create");
    assert!(
        s.session("t2", now + SESSION_IDLE + Duration::seconds(1))
            .expect("get")
            .is_none(),
        "idle too long"
    );
    // Fixed lifetime.
    assert!(s.session("t1", end).expect("get").is_none(), "expired");
    s.create_session("t3", &m.id, now, end).expect("create");
    assert!(s.end_session("t3").expect("end"));
    assert!(!s.end_session("t3").expect("end twice"));
    assert!(s.session("t3", now).expect("get").is_none());
    let m2 = s
        .add_member(member("s2@example.com", Role::Member), now)
        .expect("add");
    s.create_session("t4", &m2.id, now, end).expect("create");
    s.create_session("t5", &m2.id, now, end).expect("create");
    assert_eq!(s.end_member_sessions(&m2.id).expect("end all"), 2);
    assert!(s.session("t4", now).expect("get").is_none());
    assert!(s.session("unknown", now).expect("get").is_none());
}

fn keys(s: &dyn Store) {
    let now = t0();
    let creator = s
        .add_member(member("k@example.com", Role::Admin), now)
        .expect("add");
    let (sa, mut a) = new_key("first", now);
    a.created_by = Some(creator.id.clone());
    let ra = s.create_key(a.clone(), "k@example.com").expect("create a");
    assert_eq!(ra.id, a.id);
    assert_eq!(ra.last4, sa.last4());
    assert_eq!(
        ra.created_by.as_ref().map(|c| c.email.as_str()),
        Some("k@example.com")
    );
    assert!(ra.deleted_at.is_none() && ra.last_used_at.is_none());
    let (_sb, b) = new_key("second", now + Duration::seconds(1));
    s.create_key(b.clone(), "t").expect("create b");
    let (_sc, c) = new_key("same instant as b", now + Duration::seconds(1));
    s.create_key(c.clone(), "t").expect("create c");
    let dup = s.create_key(
        NewKey {
            id: new_id("key_"),
            ..a.clone()
        },
        "t",
    );
    assert!(matches!(dup, Err(StoreError::DuplicateKey)), "{dup:?}");
    let ids: Vec<String> = s
        .list_keys(now)
        .expect("list")
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(
        ids,
        vec![c.id.clone(), b.id.clone(), a.id.clone()],
        "newest first"
    );

    let later = now + Duration::seconds(5);
    let del = s
        .delete_key(&b.id, later, "t")
        .expect("delete")
        .expect("was there");
    assert_eq!(del.deleted_at, Some(later));
    assert!(s.delete_key(&b.id, later, "t").expect("again").is_none());
    assert!(
        s.delete_key("key_unknown", later, "t")
            .expect("unknown")
            .is_none()
    );
    let ids: Vec<String> = s
        .list_keys(later)
        .expect("list")
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids, vec![c.id, a.id]);
    assert!(works(s, &sa, later));
    assert_eq!(actions(s, "create"), 3);
    assert_eq!(actions(s, "delete"), 1);
}

fn rotation_and_cancel(s: &dyn Store) {
    let now = t0();
    // Rotation with grace: both work until the deadline, then the old one reads revoked.
    let (old_s, old) = new_key("svc", now);
    s.create_key(old.clone(), "t").expect("create");
    let (new_s, mut new) = new_key("", now);
    new.memo.clear();
    let rec = s
        .rotate_key(
            rotation(&old.id, new, now + Duration::seconds(30), false),
            "t",
        )
        .expect("rotate")
        .expect("rotated");
    assert_eq!(rec.memo, "svc", "an empty memo keeps the old one");
    assert_eq!(rec.replaces.as_deref(), Some(old.id.as_str()));
    assert!(works(s, &old_s, now) && works(s, &new_s, now));
    let after = now + Duration::seconds(31);
    assert!(!works(s, &old_s, after), "grace ran out");
    assert!(works(s, &new_s, after));
    let hit = &s.lookup(&[old_s.sha256()], after, "t").expect("lookup")[0];
    assert_eq!(hit.status, LookupStatus::Revoked);
    assert_eq!(
        hit.key.as_ref().and_then(|k| k.deleted_at),
        Some(now + Duration::seconds(30))
    );
    // A key that stopped working cannot be rotated.
    assert!(
        s.rotate_key(rotation(&old.id, new_key("x", after).1, after, false), "t")
            .expect("rotate")
            .is_none()
    );
    assert!(
        s.rotate_key(
            rotation("key_unknown", new_key("x", after).1, after, false),
            "t"
        )
        .expect("rotate")
        .is_none()
    );

    // Two rotations of one key; cancelling the second keeps the first one's deadline.
    let (k_s, k) = new_key("two", now);
    s.create_key(k.clone(), "t").expect("create");
    let d1 = now + Duration::seconds(60);
    let d2 = now + Duration::seconds(600);
    s.rotate_key(rotation(&k.id, new_key("r1", now).1, d1, false), "t")
        .expect("rotate")
        .expect("r1");
    let r2 = s
        .rotate_key(rotation(&k.id, new_key("r2", now).1, d2, false), "t")
        .expect("rotate")
        .expect("r2");
    let listed = s.list_keys(now).expect("list");
    let k_rec = listed.iter().find(|x| x.id == k.id).expect("listed");
    assert_eq!(
        k_rec.expires_at,
        Some(d1),
        "a later rotation never pushes a deadline back"
    );
    s.delete_key(&r2.id, now, "t")
        .expect("cancel")
        .expect("deleted");
    let listed = s.list_keys(now).expect("list");
    let k_rec = listed.iter().find(|x| x.id == k.id).expect("still listed");
    assert_eq!(
        k_rec.expires_at,
        Some(d1),
        "the standing rotation's deadline stays"
    );
    assert!(works(s, &k_s, now));

    // Cancelling the only rotation restores the old key without a deadline.
    let (c_s, c) = new_key("cancel", now);
    s.create_key(c.clone(), "t").expect("create");
    let rc = s
        .rotate_key(
            rotation(
                &c.id,
                new_key("rc", now).1,
                now + Duration::seconds(60),
                false,
            ),
            "t",
        )
        .expect("rotate")
        .expect("rc");
    s.delete_key(&rc.id, now + Duration::seconds(10), "t")
        .expect("cancel")
        .expect("deleted");
    assert!(
        works(s, &c_s, now + Duration::days(30)),
        "restored for good"
    );

    // Too late: the old key already stopped working, and stays refused.
    let (l_s, l) = new_key("late", now);
    s.create_key(l.clone(), "t").expect("create");
    let rl = s
        .rotate_key(
            rotation(
                &l.id,
                new_key("rl", now).1,
                now + Duration::seconds(5),
                false,
            ),
            "t",
        )
        .expect("rotate")
        .expect("rl");
    s.delete_key(&rl.id, now + Duration::seconds(6), "t")
        .expect("cancel")
        .expect("deleted");
    assert!(
        !works(s, &l_s, now + Duration::seconds(7)),
        "refused once, refused forever"
    );

    // A used replacement is not a cancellation: deleting it leaves the old key's deadline.
    let (u_s, u) = new_key("used", now);
    s.create_key(u.clone(), "t").expect("create");
    let (ru_s, ru) = new_key("ru", now);
    let ru = s
        .rotate_key(rotation(&u.id, ru, now + Duration::seconds(60), false), "t")
        .expect("rotate")
        .expect("ru");
    assert!(works(s, &ru_s, now));
    s.delete_key(&ru.id, now + Duration::seconds(1), "t")
        .expect("delete")
        .expect("deleted");
    assert!(works(s, &u_s, now + Duration::seconds(59)));
    assert!(!works(s, &u_s, now + Duration::seconds(61)));
    assert_eq!(actions(s, "cancel_rotation"), 3);
}

fn lookup(s: &dyn Store) {
    let now = t0();
    let (a_s, a) = new_key("a", now);
    let (b_s, b) = new_key("b", now);
    s.create_key(a, "t").expect("a");
    s.create_key(b.clone(), "t").expect("b");
    s.delete_key(&b.id, now, "t").expect("delete").expect("b");
    let unknown = generate().sha256();
    let hits = s
        .lookup(&[b_s.sha256(), unknown, a_s.sha256()], now, "scanner")
        .expect("lookup");
    let statuses: Vec<LookupStatus> = hits.iter().map(|h| h.status).collect();
    assert_eq!(
        statuses,
        vec![
            LookupStatus::Revoked,
            LookupStatus::Unknown,
            LookupStatus::Active
        ],
        "in order"
    );
    assert!(hits[1].key.is_none());
    assert_eq!(hits[0].key.as_ref().and_then(|k| k.deleted_at), Some(now));
    assert!(hits[2].key.as_ref().expect("a").last_used_at.is_none());
    assert!(s.lookup(&[], now, "scanner").expect("empty").is_empty());
    assert_eq!(actions(s, "lookup"), 2, "one audit event per lookup");
    let again = s.lookup(&[a_s.sha256()], now, "scanner").expect("lookup");
    assert!(
        again[0].key.as_ref().expect("a").last_used_at.is_none(),
        "lookup never records a use"
    );
}

fn use_key_coalesces_and_retires_once(s: &dyn Store) {
    let now = t0();
    let (a_s, a) = new_key("a", now);
    s.create_key(a.clone(), "t").expect("a");
    let last_used = |at| {
        s.list_keys(at)
            .expect("list")
            .into_iter()
            .find(|k| k.id == a.id)
            .and_then(|k| k.last_used_at)
    };
    assert_eq!(
        s.check_key(&a_s.sha256(), now).expect("check"),
        KeyCheck::Stale(a.id.clone())
    );
    assert_eq!(
        s.use_key(&a_s.sha256(), now).expect("use"),
        Some(a.id.clone())
    );
    assert_eq!(last_used(now), Some(now));
    assert_eq!(
        s.check_key(&a_s.sha256(), now).expect("check"),
        KeyCheck::Recent(a.id.clone())
    );
    let soon = now + LAST_USED_RESOLUTION - Duration::seconds(1);
    assert!(works(s, &a_s, soon));
    assert_eq!(
        last_used(soon),
        Some(now),
        "coalesced: no write within the resolution"
    );
    let later = now + LAST_USED_RESOLUTION + Duration::seconds(1);
    assert!(works(s, &a_s, later));
    assert_eq!(last_used(later), Some(later));
    assert_eq!(s.use_key(&generate().sha256(), now).expect("unknown"), None);
    assert_eq!(
        s.check_key(&generate().sha256(), now).expect("unknown"),
        KeyCheck::Refused
    );

    // Retire on first use: the old key stops at the new key's first use, once.
    let (o_s, o) = new_key("old", now);
    s.create_key(o.clone(), "t").expect("old");
    let (n_s, n) = new_key("new", now);
    s.rotate_key(rotation(&o.id, n, now + Duration::days(7), true), "t")
        .expect("rotate")
        .expect("rotated");
    assert!(works(s, &o_s, now), "old works until the first use");
    assert!(works(s, &n_s, now + Duration::seconds(1)));
    assert!(
        !works(s, &o_s, now + Duration::seconds(2)),
        "retired by the first use"
    );
    assert!(works(s, &n_s, now + Duration::minutes(5)));
    assert_eq!(actions(s, "retire"), 1);
    let hit = &s
        .lookup(&[o_s.sha256()], now + Duration::minutes(5), "t")
        .expect("lookup")[0];
    assert_eq!(hit.status, LookupStatus::Revoked);
}

fn exposures(s: &dyn Store) {
    let now = t0();
    let (secret, key) = new_key("a", now);
    s.create_key(key, "t").expect("create");
    let report = |loc: &str, at: DateTime<Utc>| ExposureReport {
        sha256: secret.sha256(),
        source: "offkey scan".into(),
        location: loc.into(),
        seen_at: at,
    };
    let unknown = ExposureReport {
        sha256: generate().sha256(),
        ..report("x", now)
    };
    let n = s
        .record_exposures(
            &[
                report("a.py:1", now),
                report("a.py:1", now),
                report("b.py:2", now + Duration::seconds(1)),
                unknown,
            ],
            now,
            "t",
        )
        .expect("record");
    assert_eq!(n, 2);
    assert_eq!(
        s.record_exposures(&[report("a.py:1", now)], now, "t")
            .expect("again"),
        0
    );
    let listed = s.list_keys(now).expect("list");
    assert_eq!(listed[0].exposures.count, 2);
    let last = listed[0].exposures.last.as_ref().expect("latest");
    assert_eq!(last.location, "b.py:2");
    assert_eq!(last.seen_at, now + Duration::seconds(1));
    assert_eq!(actions(s, "exposure"), 2);
}

fn audit_paging(s: &dyn Store) {
    let now = t0();
    for i in 0..7 {
        s.audit(
            AuditEntry {
                actor: Some("t".into()),
                action: "login".into(),
                key_id: None,
                detail: Some(format!("event {i}")),
            },
            now + Duration::seconds(i),
        )
        .expect("audit");
    }
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = s.audit_log(3, before).expect("page");
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        before = Some(page.last().expect("non-empty").id);
        seen.extend(page);
    }
    let details: Vec<String> = seen.iter().filter_map(|e| e.detail.clone()).collect();
    let want: Vec<String> = (0..7).rev().map(|i| format!("event {i}")).collect();
    assert_eq!(details, want, "newest first, each once");
    assert!(seen.windows(2).all(|w| w[0].id > w[1].id));
    assert_eq!(seen[0].at, now + Duration::seconds(6));
    assert_eq!(seen[0].actor.as_deref(), Some("t"));
}

fn import_legacy(s: &dyn Store) {
    let now = t0();
    let legacy = |memo: &str| {
        let k = hex::encode(rand::random::<[u8; 16]>());
        NewKey {
            id: new_id("key_"),
            sha256: crate::key::sha256_hex(k.as_bytes()),
            last4: k[k.len() - 4..].to_owned(),
            memo: memo.into(),
            kind: KeyKind::Legacy,
            created_at: now,
            created_by: None,
        }
    };
    let a = legacy("a");
    let b = legacy("b");
    let count = s
        .import_legacy(vec![a.clone(), b.clone()], "cli")
        .expect("import");
    assert_eq!((count.imported, count.skipped), (2, 0));
    let again = NewKey {
        id: new_id("key_"),
        ..a
    };
    let count = s
        .import_legacy(vec![again, legacy("c")], "cli")
        .expect("again");
    assert_eq!((count.imported, count.skipped), (1, 1));
    let listed = s.list_keys(now).expect("list");
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|k| k.kind == KeyKind::Legacy));
}

fn shared_last_use(a: &dyn Store, b: &dyn Store) {
    // The coalescing of `last_used_at` is decided on the stored time, not on what one instance
    // remembers: a use recorded on one instance makes the other's uses within the resolution
    // no-ops, and the first use after it is recorded wherever it lands.
    let now = t0();
    let (k_s, k) = new_key("shared", now);
    a.create_key(k.clone(), "t").expect("create");
    let last_used = |s: &dyn Store| {
        s.list_keys(now)
            .expect("list")
            .into_iter()
            .find(|x| x.id == k.id)
            .and_then(|x| x.last_used_at)
    };
    assert!(a.use_key(&k_s.sha256(), now).expect("use").is_some());
    let within = now + LAST_USED_RESOLUTION - Duration::seconds(1);
    assert_eq!(
        b.check_key(&k_s.sha256(), within).expect("check"),
        KeyCheck::Recent(k.id.clone()),
        "the other instance sees the recorded use"
    );
    assert!(b.use_key(&k_s.sha256(), within).expect("use").is_some());
    assert_eq!(
        last_used(b),
        Some(now),
        "no second write within the resolution"
    );
    let next = now + LAST_USED_RESOLUTION + Duration::seconds(1);
    assert!(b.use_key(&k_s.sha256(), next).expect("use").is_some());
    assert_eq!(last_used(a), Some(next));
    let (ua, ub) = at_once(
        || a.use_key(&k_s.sha256(), next + Duration::seconds(30)),
        || b.use_key(&k_s.sha256(), next + Duration::seconds(31)),
    );
    assert!(ua.expect("use a").is_some() && ub.expect("use b").is_some());
    assert_eq!(
        last_used(a),
        Some(next),
        "both within the resolution of the last write"
    );
}

/// The state of one limiter row (empty when there is none), changing nothing.
fn limiter_state(s: &dyn Store, key: &str, now: DateTime<Utc>) -> String {
    let mut state = String::new();
    s.limiter_update(&[key.to_owned()], now, &mut |rows| {
        state = rows[0].state.clone();
    })
    .expect("limiter read");
    state
}

fn limiter_rows(s: &dyn Store) {
    let now = t0();
    let keys = ["b".to_owned(), "a".to_owned(), "c".to_owned()];
    // Missing rows read as empty, in the caller's order.
    s.limiter_update(&keys, now, &mut |rows: &mut [LimiterRow]| {
        let names: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(names, ["b", "a", "c"]);
        assert!(rows.iter().all(|r| r.state.is_empty()));
        rows[0].state = "B".into();
        rows[0].expires_at = now + Duration::minutes(1);
        rows[1].state = "A".into();
        rows[1].expires_at = now + Duration::hours(1);
    })
    .expect("write");
    assert_eq!(limiter_state(s, "b", now), "B");
    assert_eq!(limiter_state(s, "a", now), "A");
    assert_eq!(limiter_state(s, "c", now), "", "left empty: not stored");
    // Emptied: deleted.
    s.limiter_update(&["a".to_owned()], now, &mut |rows| rows[0].state.clear())
        .expect("clear");
    assert_eq!(limiter_state(s, "a", now), "");
    // Past its expiry a row is swept by a call on other keys.
    let later = now + Duration::minutes(2);
    s.limiter_update(&["z".to_owned()], later, &mut |_| {})
        .expect("sweep");
    let mut seen = None;
    s.limiter_update(&["b".to_owned()], later, &mut |rows| {
        seen = Some(rows[0].state.clone());
    })
    .expect("read");
    assert_eq!(seen.as_deref(), Some(""), "expired row swept");
}

fn race_limiter_counts(a: &dyn Store, b: &dyn Store) {
    // Read-modify-write of one shared counter from 8 threads on two instances: no increment
    // is lost, so each saw the rows as the previous one left them. Each call also touches a
    // key of its own thread, so calls lock several rows at once (in either order).
    let now = t0();
    const PER_THREAD: usize = 25;
    let barrier = Barrier::new(8);
    std::thread::scope(|scope| {
        for t in 0..8 {
            let s = if t % 2 == 0 { a } else { b };
            let barrier = &barrier;
            scope.spawn(move || {
                barrier.wait();
                for i in 0..PER_THREAD {
                    let mut keys = vec!["shared".to_owned(), format!("own {t}")];
                    if i % 2 == 1 {
                        keys.reverse();
                    }
                    s.limiter_update(&keys, now, &mut |rows| {
                        for row in rows.iter_mut() {
                            let n: usize = row.state.parse().unwrap_or(0);
                            row.state = (n + 1).to_string();
                            row.expires_at = now + Duration::hours(1);
                        }
                    })
                    .expect("limiter update");
                }
            });
        }
    });
    assert_eq!(
        limiter_state(a, "shared", now),
        (8 * PER_THREAD).to_string()
    );
    assert_eq!(limiter_state(b, "own 3", now), PER_THREAD.to_string());
}

/// Run `a` and `b` at once (released together by a barrier) and answer both results.
fn at_once<A: Send, B: Send>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    let barrier = Barrier::new(2);
    std::thread::scope(|scope| {
        let ha = scope.spawn(|| {
            barrier.wait();
            a()
        });
        let hb = scope.spawn(|| {
            barrier.wait();
            b()
        });
        (
            ha.join().expect("first racer panicked"),
            hb.join().expect("second racer panicked"),
        )
    })
}

fn race_two_rotations(a: &dyn Store, b: &dyn Store) {
    let now = t0();
    for round in 0..ROUNDS {
        // Immediate rotations: once one happened the key no longer works, so the other must
        // find nothing to rotate. Without a row lock both see the key working.
        let (_s, k) = new_key(&format!("round {round}"), now);
        a.create_key(k.clone(), "t").expect("create");
        let (ra, rb) = at_once(
            || a.rotate_key(rotation(&k.id, new_key("a", now).1, now, false), "a"),
            || b.rotate_key(rotation(&k.id, new_key("b", now).1, now, false), "b"),
        );
        let made = [ra.expect("rotate a"), rb.expect("rotate b")]
            .into_iter()
            .flatten()
            .count();
        assert_eq!(made, 1, "round {round}: exactly one replacement");
        let replacements = a
            .list_keys(now)
            .expect("list")
            .into_iter()
            .filter(|x| x.replaces.as_deref() == Some(k.id.as_str()))
            .count();
        assert_eq!(replacements, 1, "round {round}");
    }
}

fn race_first_use(a: &dyn Store, b: &dyn Store) {
    let now = t0();
    for round in 0..ROUNDS {
        let (o_s, o) = new_key("old", now);
        a.create_key(o.clone(), "t").expect("create");
        let (n_s, n) = new_key("new", now);
        a.rotate_key(rotation(&o.id, n, now + Duration::days(1), true), "t")
            .expect("rotate")
            .expect("rotated");
        let at = now + Duration::seconds(1);
        let (ua, ub) = at_once(
            || a.use_key(&n_s.sha256(), at),
            || b.use_key(&n_s.sha256(), at),
        );
        assert!(ua.expect("use a").is_some() && ub.expect("use b").is_some());
        assert!(!works(b, &o_s, at), "round {round}: retired");
        let retires = a
            .audit_log(100_000, None)
            .expect("audit")
            .into_iter()
            .filter(|e| e.action == "retire" && e.key_id.as_deref() == Some(o.id.as_str()))
            .count();
        assert_eq!(retires, 1, "round {round}: retired exactly once");
    }
}

fn race_delete_vs_use(a: &dyn Store, b: &dyn Store) {
    let now = t0();
    for round in 0..ROUNDS {
        let (k_s, k) = new_key("doomed", now);
        a.create_key(k.clone(), "t").expect("create");
        let deleted = AtomicBool::new(false);
        let (del, late_uses) = at_once(
            || {
                let r = a.delete_key(&k.id, now, "t");
                deleted.store(true, Ordering::SeqCst);
                r
            },
            || {
                let mut late = 0;
                for i in 0..5_000 {
                    // Each use a minute apart, so each one takes the recording path.
                    let at = now + LAST_USED_RESOLUTION * i;
                    let after_delete = deleted.load(Ordering::SeqCst);
                    let used = b.use_key(&k_s.sha256(), at).expect("use").is_some();
                    if after_delete {
                        assert!(
                            !used,
                            "round {round}: a use succeeded after the delete returned"
                        );
                        late += 1;
                        if late > 3 {
                            break;
                        }
                    }
                    // SQLite's busy handler is not fair: leave the writer lock a moment so the
                    // delete gets in while uses are still coming.
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
                late
            },
        );
        assert!(del.expect("delete").is_some(), "round {round}");
        assert!(
            late_uses > 0,
            "round {round}: some uses came after the delete"
        );
        assert!(!works(a, &k_s, now + Duration::days(1)));
    }
}

fn race_two_adds(a: &dyn Store, b: &dyn Store) {
    let now = t0();
    for round in 0..ROUNDS {
        let email = format!("race{round}@example.com");
        let (ra, rb) = at_once(
            || a.add_member(member(&email, Role::Admin), now),
            || b.add_member(member(&email.to_uppercase(), Role::Admin), now),
        );
        let ok = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
        assert_eq!(ok, 1, "round {round}: {ra:?} / {rb:?}");
        for r in [ra, rb] {
            if let Err(e) = r {
                assert!(
                    matches!(e, StoreError::DuplicateEmail),
                    "round {round}: {e:?}"
                );
            }
        }
        let n = a
            .list_members()
            .expect("list")
            .iter()
            .filter(|m| m.email.eq_ignore_ascii_case(&email))
            .count();
        assert_eq!(n, 1, "round {round}");
    }
}

/// Two instances of one fresh store, and what keeps it alive (a temp dir, a schema).
pub(crate) type Fresh = (Arc<dyn Store>, Arc<dyn Store>, Box<dyn std::any::Any>);

/// Run every case on a fresh store from `fresh`, and every race on two instances of one.
pub(crate) fn run_all(fresh: &dyn Fn() -> Fresh) {
    for (name, case) in CASES {
        eprintln!("conformance: {name}");
        let (s, _, _guard) = fresh();
        case(s.as_ref());
    }
    for (name, race) in RACES {
        eprintln!("conformance race: {name}");
        let (a, b, _guard) = fresh();
        race(a.as_ref(), b.as_ref());
    }
}

/// A fresh SQLite store: two instances on one file in a temp dir.
pub(crate) fn fresh_sqlite() -> Fresh {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("keys.db");
    let a = super::SqliteStore::open(&path).expect("open sqlite");
    let b = super::SqliteStore::open(&path).expect("open sqlite again");
    (Arc::new(a), Arc::new(b), Box::new(dir))
}

/// The test database: `OFFKEY_TEST_DATABASE_URL`, or a failure saying how to get one.
pub(crate) fn test_database_url() -> String {
    match std::env::var("OFFKEY_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "OFFKEY_TEST_DATABASE_URL is not set: the PostgreSQL tests need a database. Run the \
             tests with scripts/test.sh (it installs Debian's `postgresql` package when missing \
             and starts a throwaway server), or set OFFKEY_TEST_DATABASE_URL to a database in \
             which you may create schemas"
        ),
    }
}

/// A URL for a fresh, empty schema in the test database (`search_path` set through the
/// connection's `options`).
pub(crate) fn fresh_pg_url() -> String {
    let url = test_database_url();
    let schema = format!("t_{}", new_id("").to_lowercase());
    let mut admin = postgres::Client::connect(&url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("cannot connect to OFFKEY_TEST_DATABASE_URL: {e}"));
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .expect("create schema");
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}

/// A fresh PostgreSQL store: two instances (two pools, as two replicas) on one new schema.
pub(crate) fn fresh_pg() -> Fresh {
    let url = fresh_pg_url();
    let a = super::PgStore::open(&url).expect("open postgres");
    let b = super::PgStore::open(&url).expect("open postgres again");
    (Arc::new(a), Arc::new(b), Box::new(()))
}

#[test]
fn sqlite_conforms() {
    run_all(&fresh_sqlite);
}

#[test]
fn postgres_conforms() {
    run_all(&fresh_pg);
}

#[test]
fn postgres_migrations_are_safe_when_replicas_start_at_once() {
    let url = fresh_pg_url();
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || super::PgStore::open(&url).map(|_| ()))
        })
        .collect();
    for s in starts {
        s.join().expect("no panic").expect("every replica starts");
    }
    let store = super::PgStore::connect(&url).expect("connect");
    assert_eq!(
        store.migrate().expect("migrate"),
        (
            super::PgStore::schema_version(),
            super::PgStore::schema_version()
        ),
        "nothing left to apply"
    );
}
