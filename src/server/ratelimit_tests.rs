//! Unit tests of the sign-in limiter, with time passed in.

use super::*;

const A: &str = "192.0.2.1";
const B: &str = "192.0.2.2";
const ADMIN: &str = "admin@example.com";

fn fail(l: &MemoryLimiter, addr: &str, email: &str, now: Instant) -> Result<(), Refusal> {
    let t = l.reserve(addr, email, now)?;
    l.settle(&t, Outcome::Failure, now);
    Ok(())
}

#[test]
fn parallel_attempts_are_reserved_before_the_check() {
    let l = Arc::new(MemoryLimiter::default());
    let now = Instant::now();
    let barrier = Arc::new(std::sync::Barrier::new(40));
    let handles: Vec<_> = (0..40)
        .map(|_| {
            let l = Arc::clone(&l);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                l.reserve(A, ADMIN, now)
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    let granted: Vec<&Ticket> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(granted.len(), PAIR_FAILURES_PER_MINUTE, "{results:?}");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(r.limit, Limit::PairPerMinute);
    }
    for t in granted {
        l.settle(t, Outcome::Failure, now);
    }
    let refused = l.reserve(A, ADMIN, now).expect_err("five failures");
    assert_eq!(refused.retry_after, Duration::from_secs(60));
}

#[test]
fn five_failures_block_that_address_and_email_for_a_minute_only() {
    let l = MemoryLimiter::default();
    let t0 = Instant::now();
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
    let later = t0 + MINUTE;
    l.reserve(A, ADMIN, later).expect("a minute later");
}

#[test]
fn an_address_spraying_emails_gets_twenty_checks_a_minute() {
    let l = MemoryLimiter::default();
    let t0 = Instant::now();
    for i in 0..ADDR_CHECKS_PER_MINUTE {
        fail(&l, A, &format!("user{i}@example.com"), t0).expect("allowed");
    }
    let r = l.reserve(A, "fresh@example.com", t0).expect_err("sprayed");
    assert_eq!(r.limit, Limit::AddressPerMinute);
    assert_eq!(r.retry_after, Duration::from_secs(60));
    // The admin elsewhere is not affected.
    l.reserve(B, ADMIN, t0).expect("other address");
    l.reserve(A, "fresh@example.com", t0 + MINUTE)
        .expect("next minute");
}

#[test]
fn many_addresses_get_a_hundred_checks_an_hour_per_email() {
    let l = MemoryLimiter::default();
    let t0 = Instant::now();
    for i in 0..EMAIL_CHECKS_PER_HOUR {
        let addr = format!("198.51.100.{i}");
        fail(&l, &addr, ADMIN, t0).expect("allowed");
    }
    let r = l.reserve("203.0.113.9", ADMIN, t0).expect_err("budget");
    assert_eq!(r.limit, Limit::EmailPerHour);
    assert_eq!(r.retry_after, HOUR);
    l.reserve("203.0.113.9", ADMIN, t0 + HOUR)
        .expect("an hour later");
}

#[test]
fn one_address_alone_never_locks_the_email_out_elsewhere() {
    let l = MemoryLimiter::default();
    let t0 = Instant::now();
    // The attacker at A fails as fast as allowed for a whole hour.
    let mut failures = 0;
    let mut now = t0;
    while now < t0 + HOUR {
        while fail(&l, A, ADMIN, now).is_ok() {
            failures += 1;
        }
        now += Duration::from_secs(61);
    }
    assert_eq!(failures, PAIR_FAILURES_PER_HOUR);
    let r = l.reserve(A, ADMIN, t0 + Duration::from_secs(600));
    assert_eq!(r.expect_err("share used").limit, Limit::PairPerHour);
    // The admin from B, at any moment of that hour, gets the password checked.
    for minute in 0..60 {
        let at = t0 + Duration::from_secs(minute * 60);
        let t = l.reserve(B, ADMIN, at).expect("never refused");
        l.settle(&t, Outcome::Success, at);
    }
}

#[test]
fn a_right_password_forgives_that_address_its_failures() {
    let l = MemoryLimiter::default();
    let t0 = Instant::now();
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
    let l = MemoryLimiter::default();
    let t0 = Instant::now();
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
    let later = t0 + MINUTE + Duration::from_secs(1);
    for _ in 0..5 {
        fail(&l, A, ADMIN, later).expect("new minute");
    }
    let next = l.reserve(A, ADMIN, later).expect_err("refused again");
    assert!(next.first_in_window);
    assert_eq!(next.previous_window_refusals, 11);
}

#[test]
fn an_attempt_dropped_unsettled_frees_its_place() {
    let limiter: Arc<dyn SignInLimiter> = Arc::new(MemoryLimiter::default());
    let t0 = Instant::now();
    let held: Vec<Attempt> = (0..5)
        .map(|_| Attempt::reserve(&limiter, A, ADMIN, t0).expect("allowed"))
        .collect();
    let r = Attempt::reserve(&limiter, A, ADMIN, t0).expect_err("in flight count");
    assert_eq!(r.retry_after, Duration::from_secs(1));
    drop(held);
    Attempt::reserve(&limiter, A, ADMIN, t0)
        .expect("freed")
        .finish(Outcome::Failure, t0);
}

#[test]
fn ipv6_clients_are_limited_per_64() {
    let a: IpAddr = "2001:db8:1:2:3:4:5:6".parse().expect("ip");
    let b: IpAddr = "2001:db8:1:2:ffff::1".parse().expect("ip");
    assert_eq!(address_key(a), address_key(b));
    let mapped: IpAddr = "::ffff:192.0.2.1".parse().expect("ip");
    assert_eq!(address_key(mapped), "192.0.2.1");
}
