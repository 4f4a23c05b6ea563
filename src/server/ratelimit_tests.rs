//! Unit tests of the sign-in limiter on the key store, with time passed in: on SQLite, and the
//! cross-instance race on both backends.

use super::*;
use crate::store::conformance::{Fresh, fresh_pg, fresh_sqlite};

/// A limiter on a fresh SQLite store, and what keeps the store alive.
struct L {
    limiter: StoreLimiter,
    _fresh: Fresh,
}

impl L {
    fn new() -> Self {
        let fresh = fresh_sqlite();
        L {
            limiter: StoreLimiter::new(Arc::clone(&fresh.0)),
            _fresh: fresh,
        }
    }

    fn reserve(&self, addr: &str, email: &str, now: DateTime<Utc>) -> Result<Ticket, Refusal> {
        self.limiter.reserve(addr, email, now).expect("store")
    }

    fn settle(&self, t: &Ticket, outcome: Outcome, now: DateTime<Utc>) {
        self.limiter.settle(t, outcome, now).expect("store");
    }
}

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("now")
}

fn after(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t + chrono::Duration::from_std(d).expect("small")
}

const A: &str = "192.0.2.1";
const B: &str = "192.0.2.2";
const ADMIN: &str = "admin@example.com";

fn fail(l: &L, addr: &str, email: &str, now: DateTime<Utc>) -> Result<(), Refusal> {
    let t = l.reserve(addr, email, now)?;
    l.settle(&t, Outcome::Failure, now);
    Ok(())
}

/// 40 attempts at once on one (address, email), half through each of two store instances (as
/// two replicas): exactly the limit is granted.
fn parallel_attempts_are_reserved_before_the_check(fresh: Fresh) {
    let a = StoreLimiter::new(Arc::clone(&fresh.0));
    let b = StoreLimiter::new(Arc::clone(&fresh.1));
    let now = t0();
    let barrier = std::sync::Barrier::new(40);
    let results: Vec<Result<Ticket, Refusal>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..40)
            .map(|i| {
                let l = if i % 2 == 0 { &a } else { &b };
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    l.reserve(A, ADMIN, now).expect("store")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let granted: Vec<&Ticket> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(granted.len(), PAIR_FAILURES_PER_MINUTE, "{results:?}");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(r.limit, Limit::PairPerMinute);
    }
    for t in granted {
        a.settle(t, Outcome::Failure, now).expect("store");
    }
    let refused = b
        .reserve(A, ADMIN, now)
        .expect("store")
        .expect_err("five failures");
    assert_eq!(refused.retry_after, Duration::from_secs(60));
}

#[test]
fn parallel_attempts_are_reserved_before_the_check_on_sqlite() {
    parallel_attempts_are_reserved_before_the_check(fresh_sqlite());
}

#[test]
fn parallel_attempts_on_two_postgres_replicas_are_reserved_before_the_check() {
    parallel_attempts_are_reserved_before_the_check(fresh_pg());
}

#[test]
fn an_attempt_in_flight_on_a_killed_replica_stops_counting_after_a_while() {
    let l = L::new();
    let t0 = t0();
    // Five reserved and never settled: the replica that held them is gone.
    for _ in 0..5 {
        l.reserve(A, ADMIN, t0).expect("allowed");
    }
    let r = l.reserve(A, ADMIN, t0).expect_err("in flight count");
    assert_eq!(r.retry_after, Duration::from_secs(1));
    let later = after(t0, IN_FLIGHT_TTL);
    l.reserve(A, ADMIN, later)
        .expect("in-flight places expired");
}

#[test]
fn expired_windows_leave_no_rows_behind() {
    let fresh = fresh_sqlite();
    let l = StoreLimiter::new(Arc::clone(&fresh.0));
    let t0 = t0();
    for i in 0..30 {
        let t = l
            .reserve(&format!("198.51.100.{i}"), &format!("u{i}@example.com"), t0)
            .expect("store")
            .expect("allowed");
        l.settle(&t, Outcome::Failure, t0).expect("store");
    }
    let rows = |at| {
        let mut n = 0;
        fresh.0.limiter_update(&[], at, &mut |_| {}).expect("sweep");
        for i in 0..30 {
            let keys = [format!("address 198.51.100.{i}")];
            fresh
                .0
                .limiter_update(&keys, at, &mut |r| n += usize::from(!r[0].state.is_empty()))
                .expect("read");
        }
        n
    };
    assert_eq!(rows(t0), 30);
    // Addresses count a minute; the pairs' failures an hour, and the refusal windows two.
    assert_eq!(rows(after(t0, MINUTE)), 0, "address rows expired");
}
#[test]
fn five_failures_block_that_address_and_email_for_a_minute_only() {
    let l = L::new();
    let t0 = t0();
    for _ in 0..5 {
        fail(&l, A, ADMIN, t0).expect("allowed");
    }
    let r = l
        .reserve(A, " Admin@Example.com ", t0)
        .expect_err("blocked");
    assert_eq!(r.limit, Limit::PairPerMinute);
    // Another email from the same address, and the same email from another address, still may.
    l.reserve(A, "other@example.com", t0).expect("other email");
    let t = l.reserve(B, ADMIN, t0).expect("other address");
    l.settle(&t, Outcome::Success, t0);
    let later = after(t0, MINUTE);
    l.reserve(A, ADMIN, later).expect("a minute later");
}

#[test]
fn an_address_spraying_emails_gets_twenty_checks_a_minute() {
    let l = L::new();
    let t0 = t0();
    for i in 0..ADDR_CHECKS_PER_MINUTE {
        fail(&l, A, &format!("user{i}@example.com"), t0).expect("allowed");
    }
    let r = l.reserve(A, "fresh@example.com", t0).expect_err("sprayed");
    assert_eq!(r.limit, Limit::AddressPerMinute);
    assert_eq!(r.retry_after, Duration::from_secs(60));
    // The admin elsewhere is not affected.
    l.reserve(B, ADMIN, t0).expect("other address");
    l.reserve(A, "fresh@example.com", after(t0, MINUTE))
        .expect("next minute");
}

#[test]
fn many_addresses_get_a_hundred_checks_an_hour_per_email() {
    let l = L::new();
    let t0 = t0();
    for i in 0..EMAIL_CHECKS_PER_HOUR {
        let addr = format!("198.51.100.{i}");
        fail(&l, &addr, ADMIN, t0).expect("allowed");
    }
    let r = l.reserve("203.0.113.9", ADMIN, t0).expect_err("budget");
    assert_eq!(r.limit, Limit::EmailPerHour);
    assert_eq!(r.retry_after, HOUR);
    l.reserve("203.0.113.9", ADMIN, after(t0, HOUR))
        .expect("an hour later");
}

#[test]
fn one_address_alone_never_locks_the_email_out_elsewhere() {
    let l = L::new();
    let t0 = t0();
    // The attacker at A fails as fast as allowed for a whole hour.
    let mut failures = 0;
    let mut now = t0;
    while now < after(t0, HOUR) {
        while fail(&l, A, ADMIN, now).is_ok() {
            failures += 1;
        }
        now = after(now, Duration::from_secs(61));
    }
    assert_eq!(failures, PAIR_FAILURES_PER_HOUR);
    let r = l.reserve(A, ADMIN, after(t0, Duration::from_secs(600)));
    assert_eq!(r.expect_err("share used").limit, Limit::PairPerHour);
    // The admin from B, at any moment of that hour, gets the password checked.
    for minute in 0..60 {
        let at = after(t0, Duration::from_secs(minute * 60));
        let t = l.reserve(B, ADMIN, at).expect("never refused");
        l.settle(&t, Outcome::Success, at);
    }
}

#[test]
fn a_right_password_forgives_that_address_its_failures() {
    let l = L::new();
    let t0 = t0();
    for _ in 0..4 {
        fail(&l, A, ADMIN, t0).expect("allowed");
    }
    let t = l.reserve(A, ADMIN, t0).expect("fifth");
    l.settle(&t, Outcome::Success, t0);
    for _ in 0..5 {
        fail(&l, A, ADMIN, t0).expect("counted afresh");
    }
}

#[test]
fn refusals_are_reported_once_per_window_for_the_audit() {
    let l = L::new();
    let t0 = t0();
    for _ in 0..5 {
        fail(&l, A, ADMIN, t0).expect("allowed");
    }
    let first = l.reserve(A, ADMIN, t0).expect_err("refused");
    assert!(first.first_in_window);
    for _ in 0..10 {
        assert!(
            !l.reserve(A, ADMIN, t0)
                .expect_err("refused")
                .first_in_window
        );
    }
    let later = after(t0, MINUTE + Duration::from_secs(1));
    for _ in 0..5 {
        fail(&l, A, ADMIN, later).expect("new minute");
    }
    let next = l.reserve(A, ADMIN, later).expect_err("refused again");
    assert!(next.first_in_window);
    assert_eq!(next.previous_window_refusals, 11);
}

#[test]
fn an_attempt_dropped_unsettled_frees_its_place() {
    let fresh = fresh_sqlite();
    let limiter: Arc<dyn SignInLimiter> = Arc::new(StoreLimiter::new(Arc::clone(&fresh.0)));
    let t0 = t0();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let reserve = || {
        rt.block_on(Attempt::reserve(&limiter, A, ADMIN, t0))
            .expect("store")
    };
    let held: Vec<Attempt> = (0..5).map(|_| reserve().expect("allowed")).collect();
    let r = reserve().expect_err("in flight count");
    assert_eq!(r.retry_after, Duration::from_secs(1));
    // Dropped outside the runtime: settled in place, so the next reserve sees it.
    drop(held);
    let again = reserve().expect("freed");
    rt.block_on(again.finish(Outcome::Failure, t0))
        .expect("settled");
}

#[test]
fn ipv6_clients_are_limited_per_64() {
    let a: IpAddr = "2001:db8:1:2:3:4:5:6".parse().expect("ip");
    let b: IpAddr = "2001:db8:1:2:ffff::1".parse().expect("ip");
    assert_eq!(address_key(a), address_key(b));
    let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
    assert_eq!(address_key(mapped), "192.0.2.1");
}
