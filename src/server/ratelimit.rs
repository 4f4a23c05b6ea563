//! Sign-in limits (spec/api.md, "Sign-in limits"), behind the small [`SignInLimiter`] interface so
//! that a later backend can keep the counters in the shared store; [`MemoryLimiter`] keeps them in
//! this process.
//!
//! An attempt is *reserved* before its password is checked and *settled* after, in one critical
//! section each, so parallel requests cannot overtake the limits: an attempt in flight counts as a
//! failure until it is known to have succeeded. The limits:
//!
//! - per (client address, email): at most [`PAIR_FAILURES_PER_MINUTE`] failed checks a minute and
//!   [`PAIR_FAILURES_PER_HOUR`] an hour;
//! - per client address: at most [`ADDR_CHECKS_PER_MINUTE`] password checks a minute, whatever the
//!   emails (spraying);
//! - per email: at most [`EMAIL_CHECKS_PER_HOUR`] password checks an hour, from any addresses.
//!
//! One address can never use up an email's hourly budget on its own (its hourly share,
//! [`PAIR_FAILURES_PER_HOUR`], is below [`EMAIL_CHECKS_PER_HOUR`]), so failures from one address
//! never refuse the right password from another. Time is passed in (`now`), never read here.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Failed checks allowed per (address, email) within a minute.
pub const PAIR_FAILURES_PER_MINUTE: usize = 5;
/// Failed checks allowed per (address, email) within an hour: one address's share of an email.
pub const PAIR_FAILURES_PER_HOUR: usize = 20;
/// Password checks allowed per address within a minute.
pub const ADDR_CHECKS_PER_MINUTE: usize = 20;
/// Password checks allowed per email within an hour.
pub const EMAIL_CHECKS_PER_HOUR: usize = 100;
/// A minute.
pub const MINUTE: Duration = Duration::from_secs(60);
/// An hour.
pub const HOUR: Duration = Duration::from_secs(3600);
/// Above this many tracked keys in a table, stale ones are swept.
const SWEEP_AT: usize = 10_000;

/// Which limit refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Failures per (address, email) in a minute.
    PairPerMinute,
    /// Failures per (address, email) in an hour.
    PairPerHour,
    /// Checks per address in a minute.
    AddressPerMinute,
    /// Checks per email in an hour.
    EmailPerHour,
}

impl Limit {
    /// A stable name for the audit log.
    pub fn name(self) -> &'static str {
        match self {
            Limit::PairPerMinute => "address_and_email_per_minute",
            Limit::PairPerHour => "address_and_email_per_hour",
            Limit::AddressPerMinute => "address_per_minute",
            Limit::EmailPerHour => "email_per_hour",
        }
    }

    fn window(self) -> Duration {
        match self {
            Limit::PairPerMinute | Limit::AddressPerMinute => MINUTE,
            Limit::PairPerHour | Limit::EmailPerHour => HOUR,
        }
    }
}

/// A refused attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The limit reached.
    pub limit: Limit,
    /// When to try again (whole seconds, at least 1).
    pub retry_after: Duration,
    /// Whether this is the first refusal by this limit for this key in the current window: the
    /// caller audits only those (refusals are audited aggregated, one row per limit, key and
    /// window).
    pub first_in_window: bool,
    /// How many refusals by this limit for this key the previous window saw (for that row).
    pub previous_window_refusals: u64,
}

/// A reserved attempt: settle it with [`SignInLimiter::settle`] once the password is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    addr: String,
    email: String,
}

/// What became of a reserved attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The password was right.
    Success,
    /// The password (or the email) was wrong.
    Failure,
    /// The password was not checked after all (overloaded, store error, client gone).
    NotChecked,
}

/// The sign-in limiter's interface.
pub trait SignInLimiter: Send + Sync + fmt::Debug {
    /// Reserve a password check for `email` from `addr`, or say which limit refuses it.
    fn reserve(&self, addr: &str, email: &str, now: Instant) -> Result<Ticket, Refusal>;
    /// Record what became of a reserved attempt.
    fn settle(&self, ticket: &Ticket, outcome: Outcome, now: Instant);
}

/// The key a client address is limited under: the address itself, or for IPv6 its /64 (one
/// host usually holds a whole /64).
pub fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The key an email is limited under: trimmed, lowercased, at most 254 characters.
pub fn email_key(email: &str) -> String {
    email.trim().to_lowercase().chars().take(254).collect()
}

#[derive(Debug, Default)]
struct Pair {
    failures: VecDeque<Instant>,
    in_flight: usize,
}

#[derive(Debug, Default)]
struct RefusalWindow {
    started: Option<Instant>,
    count: u64,
}

#[derive(Debug, Default)]
struct Tables {
    pairs: HashMap<(String, String), Pair>,
    addr_checks: HashMap<String, VecDeque<Instant>>,
    email_checks: HashMap<String, VecDeque<Instant>>,
    refusals: HashMap<(Limit, String), RefusalWindow>,
}

fn expire(q: &mut VecDeque<Instant>, window: Duration, now: Instant) {
    while q
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= window)
    {
        q.pop_front();
    }
}

/// How long until a queue holding at least `allowed` entries of a `window` has room for one more.
fn wait_for(q: &VecDeque<Instant>, allowed: usize, window: Duration, now: Instant) -> Duration {
    q.get(q.len().saturating_sub(allowed))
        .map_or(Duration::from_secs(1), |t| {
            window.saturating_sub(now.saturating_duration_since(*t))
        })
}

fn whole_seconds(d: Duration) -> Duration {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

impl Tables {
    fn sweep(&mut self, now: Instant) {
        if self.pairs.len() > SWEEP_AT {
            self.pairs.retain(|_, p| {
                expire(&mut p.failures, HOUR, now);
                p.in_flight > 0 || !p.failures.is_empty()
            });
        }
        if self.addr_checks.len() > SWEEP_AT {
            self.addr_checks.retain(|_, q| {
                expire(q, MINUTE, now);
                !q.is_empty()
            });
        }
        if self.email_checks.len() > SWEEP_AT {
            self.email_checks.retain(|_, q| {
                expire(q, HOUR, now);
                !q.is_empty()
            });
        }
        if self.refusals.len() > SWEEP_AT {
            self.refusals.retain(|(limit, _), w| {
                w.started
                    .is_some_and(|s| now.saturating_duration_since(s) < limit.window() * 2)
            });
        }
    }

    fn refuse(&mut self, limit: Limit, key: &str, wait: Duration, now: Instant) -> Refusal {
        let w = self.refusals.entry((limit, key.to_owned())).or_default();
        let mut previous = 0;
        let first = match w.started {
            Some(s) if now.saturating_duration_since(s) < limit.window() => false,
            Some(s) => {
                // The last window is over; its count goes on the next row only if it directly
                // preceded this one.
                if now.saturating_duration_since(s) < limit.window() * 2 {
                    previous = w.count;
                }
                true
            }
            None => true,
        };
        if first {
            w.started = Some(now);
            w.count = 0;
        }
        w.count += 1;
        Refusal {
            limit,
            retry_after: whole_seconds(wait),
            first_in_window: first,
            previous_window_refusals: previous,
        }
    }

    fn check(&mut self, addr: &str, email: &str, now: Instant) -> Result<(), Refusal> {
        let pair_key = (addr.to_owned(), email.to_owned());
        if let Some(p) = self.pairs.get_mut(&pair_key) {
            expire(&mut p.failures, HOUR, now);
            let in_minute: VecDeque<Instant> = p
                .failures
                .iter()
                .copied()
                .filter(|t| now.saturating_duration_since(*t) < MINUTE)
                .collect();
            if in_minute.len() + p.in_flight >= PAIR_FAILURES_PER_MINUTE {
                let wait = if in_minute.len() >= PAIR_FAILURES_PER_MINUTE {
                    wait_for(&in_minute, PAIR_FAILURES_PER_MINUTE, MINUTE, now)
                } else {
                    // Attempts in flight: their outcome is known within a second or so.
                    Duration::from_secs(1)
                };
                let key = format!("{addr} {email}");
                return Err(self.refuse(Limit::PairPerMinute, &key, wait, now));
            }
            if p.failures.len() + p.in_flight >= PAIR_FAILURES_PER_HOUR {
                let wait = if p.failures.len() >= PAIR_FAILURES_PER_HOUR {
                    wait_for(&p.failures, PAIR_FAILURES_PER_HOUR, HOUR, now)
                } else {
                    Duration::from_secs(1)
                };
                let key = format!("{addr} {email}");
                return Err(self.refuse(Limit::PairPerHour, &key, wait, now));
            }
        }
        if let Some(q) = self.addr_checks.get_mut(addr) {
            expire(q, MINUTE, now);
            if q.len() >= ADDR_CHECKS_PER_MINUTE {
                let wait = wait_for(q, ADDR_CHECKS_PER_MINUTE, MINUTE, now);
                return Err(self.refuse(Limit::AddressPerMinute, addr, wait, now));
            }
        }
        if let Some(q) = self.email_checks.get_mut(email) {
            expire(q, HOUR, now);
            if q.len() >= EMAIL_CHECKS_PER_HOUR {
                let wait = wait_for(q, EMAIL_CHECKS_PER_HOUR, HOUR, now);
                return Err(self.refuse(Limit::EmailPerHour, email, wait, now));
            }
        }
        Ok(())
    }
}

/// The in-process limiter.
#[derive(Debug, Default)]
pub struct MemoryLimiter {
    tables: Mutex<Tables>,
}

impl MemoryLimiter {
    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        // A panic while holding the lock leaves the counters consistent enough to go on with.
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SignInLimiter for MemoryLimiter {
    fn reserve(&self, addr: &str, email: &str, now: Instant) -> Result<Ticket, Refusal> {
        let email = email_key(email);
        let mut t = self.tables();
        t.sweep(now);
        t.check(addr, &email, now)?;
        t.pairs
            .entry((addr.to_owned(), email.clone()))
            .or_default()
            .in_flight += 1;
        t.addr_checks
            .entry(addr.to_owned())
            .or_default()
            .push_back(now);
        t.email_checks
            .entry(email.clone())
            .or_default()
            .push_back(now);
        Ok(Ticket {
            addr: addr.to_owned(),
            email,
        })
    }

    fn settle(&self, ticket: &Ticket, outcome: Outcome, now: Instant) {
        let mut t = self.tables();
        let key = (ticket.addr.clone(), ticket.email.clone());
        let Some(p) = t.pairs.get_mut(&key) else {
            return;
        };
        p.in_flight = p.in_flight.saturating_sub(1);
        match outcome {
            Outcome::Failure => p.failures.push_back(now),
            // The right password from this address: its earlier failures are forgiven.
            Outcome::Success => p.failures.clear(),
            Outcome::NotChecked => {}
        }
    }
}

/// A reserved attempt that settles itself as [`Outcome::NotChecked`] if dropped unsettled (the
/// client went away mid-check, or an error answered early), so an attempt in flight can never
/// be left counted forever.
#[derive(Debug)]
pub struct Attempt {
    limiter: Arc<dyn SignInLimiter>,
    ticket: Option<Ticket>,
    at: Instant,
}

impl Attempt {
    /// Reserve an attempt on `limiter`.
    pub fn reserve(
        limiter: &Arc<dyn SignInLimiter>,
        addr: &str,
        email: &str,
        now: Instant,
    ) -> Result<Attempt, Refusal> {
        let ticket = limiter.reserve(addr, email, now)?;
        Ok(Attempt {
            limiter: Arc::clone(limiter),
            ticket: Some(ticket),
            at: now,
        })
    }

    /// Settle it.
    pub fn finish(mut self, outcome: Outcome, now: Instant) {
        if let Some(t) = self.ticket.take() {
            self.limiter.settle(&t, outcome, now);
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            self.limiter.settle(&t, Outcome::NotChecked, self.at);
        }
    }
}

#[cfg(test)]
#[path = "ratelimit_tests.rs"]
mod tests;
