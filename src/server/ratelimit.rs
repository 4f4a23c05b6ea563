//! Sign-in limits (spec/api.md, "Sign-in limits"), behind the small [`SignInLimiter`] interface.
//! [`StoreLimiter`] keeps the counts in the key store ([`Store::limiter_update`]), so every
//! `offkey serve` replica on one database counts on the same rows: three replicas allow the
//! limit once, not three times. The rules are here, once for every backend; the store only keeps
//! each counted key's state (opaque JSON) and locks it while a decision is made.
//!
//! An attempt is *reserved* before its password is checked and *settled* after, in one store
//! transaction each (the rows locked), so parallel requests, on any replicas, cannot overtake the
//! limits: an attempt in flight counts as a failure until it is known to have succeeded (or for
//! [`IN_FLIGHT_TTL`] at most, so a replica killed mid-check locks nobody out). The limits:
//!
//! - per (client address, email): at most [`PAIR_FAILURES_PER_MINUTE`] failed checks a minute and
//!   [`PAIR_FAILURES_PER_HOUR`] an hour;
//! - per client address: at most [`ADDR_CHECKS_PER_MINUTE`] password checks a minute, whatever the
//!   emails (spraying);
//! - per email: at most [`EMAIL_CHECKS_PER_HOUR`] password checks an hour, from any addresses.
//!
//! One address can never use up an email's hourly budget on its own (its hourly share,
//! [`PAIR_FAILURES_PER_HOUR`], is below [`EMAIL_CHECKS_PER_HOUR`]), so failures from one address
//! never refuse the right password from another. Time is passed in (`now`, the service's clock,
//! wall time so that replicas agree), never read here.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::server::error::ApiError;
use crate::store::{LimiterRow, Store, StoreError};

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
/// How long a reserved attempt counts as in flight at most: far longer than a password check
/// takes, short enough that a replica killed mid-check does not hold its places for long.
pub const IN_FLIGHT_TTL: Duration = Duration::from_secs(30);

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

    fn window(self) -> i64 {
        match self {
            Limit::PairPerMinute | Limit::AddressPerMinute => millis(MINUTE),
            Limit::PairPerHour | Limit::EmailPerHour => millis(HOUR),
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
    id: u64,
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

/// The sign-in limiter's interface. Both methods block (they are store transactions): call them
/// from the blocking pool, as [`Attempt`] does.
pub trait SignInLimiter: Send + Sync + fmt::Debug {
    /// Reserve a password check for `email` from `addr`, or say which limit refuses it.
    fn reserve(
        &self,
        addr: &str,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<Ticket, Refusal>, StoreError>;
    /// Record what became of a reserved attempt.
    fn settle(
        &self,
        ticket: &Ticket,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
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

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).expect("the windows are minutes and hours")
}

/// A refusal window of one limit and key: when it started and how many it refused.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
struct Window {
    start: Option<i64>,
    refused: u64,
}

/// The state of one (address, email) pair: failure times, attempts in flight (ticket, since),
/// and the refusal windows of its two limits. Times are Unix milliseconds.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
struct PairState {
    failures: Vec<i64>,
    in_flight: Vec<(u64, i64)>,
    minute: Window,
    hour: Window,
}

/// The state of an address or an email: when its password checks happened, and its refusal
/// window.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
struct ChecksState {
    checks: Vec<i64>,
    window: Window,
}

fn load<T: Default + for<'de> Deserialize<'de>>(row: &LimiterRow) -> T {
    if row.state.is_empty() {
        return T::default();
    }
    serde_json::from_str(&row.state).unwrap_or_else(|e| {
        // Only this module writes these rows; one that does not parse is started afresh
        // rather than refusing that key's sign-ins for ever.
        tracing::warn!(key = %row.key, error = %e, "sign-in limiter state unreadable, reset");
        T::default()
    })
}

/// Write `state` into `row`, or empty it when nothing in it is needed after now (`until`).
fn save<T: Serialize>(row: &mut LimiterRow, state: &T, until: Option<i64>, now: i64) {
    match until.filter(|t| *t > now) {
        Some(t) => {
            row.state = serde_json::to_string(state).expect("plain numbers serialize");
            row.expires_at = DateTime::from_timestamp_millis(t).unwrap_or(DateTime::<Utc>::MAX_UTC);
        }
        None => row.state.clear(),
    }
}

fn expire(times: &mut Vec<i64>, window: i64, now: i64) {
    times.retain(|t| now - *t < window);
}

/// How long until sorted `times` holding at least `allowed` entries of a `window` have room for
/// one more.
fn wait_for(times: &[i64], allowed: usize, window: i64, now: i64) -> Duration {
    times
        .get(times.len().saturating_sub(allowed))
        .map_or(Duration::from_secs(1), |t| {
            Duration::from_millis(u64::try_from(window - (now - *t)).unwrap_or(0))
        })
}

fn whole_seconds(d: Duration) -> Duration {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    Duration::from_secs(secs.max(1))
}

fn window_end(w: &Window, limit: Limit) -> Option<i64> {
    // A window's count is reported on the next window's row, so it is kept for two windows.
    w.start.map(|s| s + 2 * limit.window())
}

fn refuse(w: &mut Window, limit: Limit, wait: Duration, now: i64) -> Refusal {
    let mut previous = 0;
    let first = match w.start {
        Some(s) if now - s < limit.window() => false,
        Some(s) => {
            // The last window is over; its count goes on the next row only if it directly
            // preceded this one.
            if now - s < limit.window() * 2 {
                previous = w.refused;
            }
            true
        }
        None => true,
    };
    if first {
        w.start = Some(now);
        w.refused = 0;
    }
    w.refused += 1;
    Refusal {
        limit,
        retry_after: whole_seconds(wait),
        first_in_window: first,
        previous_window_refusals: previous,
    }
}

impl PairState {
    fn tidy(&mut self, now: i64) {
        expire(&mut self.failures, millis(HOUR), now);
        self.in_flight
            .retain(|(_, at)| now - *at < millis(IN_FLIGHT_TTL));
    }

    fn until(&self) -> Option<i64> {
        [
            self.failures.iter().max().map(|t| t + millis(HOUR)),
            self.in_flight
                .iter()
                .map(|(_, at)| at + millis(IN_FLIGHT_TTL))
                .max(),
            window_end(&self.minute, Limit::PairPerMinute),
            window_end(&self.hour, Limit::PairPerHour),
        ]
        .into_iter()
        .flatten()
        .max()
    }

    fn check(&mut self, now: i64) -> Result<(), Refusal> {
        let in_flight = self.in_flight.len();
        let in_minute: Vec<i64> = self
            .failures
            .iter()
            .copied()
            .filter(|t| now - *t < millis(MINUTE))
            .collect();
        if in_minute.len() + in_flight >= PAIR_FAILURES_PER_MINUTE {
            let wait = if in_minute.len() >= PAIR_FAILURES_PER_MINUTE {
                wait_for(&in_minute, PAIR_FAILURES_PER_MINUTE, millis(MINUTE), now)
            } else {
                // Attempts in flight: their outcome is known within a second or so.
                Duration::from_secs(1)
            };
            return Err(refuse(&mut self.minute, Limit::PairPerMinute, wait, now));
        }
        if self.failures.len() + in_flight >= PAIR_FAILURES_PER_HOUR {
            let wait = if self.failures.len() >= PAIR_FAILURES_PER_HOUR {
                wait_for(&self.failures, PAIR_FAILURES_PER_HOUR, millis(HOUR), now)
            } else {
                Duration::from_secs(1)
            };
            return Err(refuse(&mut self.hour, Limit::PairPerHour, wait, now));
        }
        Ok(())
    }
}

impl ChecksState {
    fn until(&self, limit: Limit) -> Option<i64> {
        [
            self.checks.iter().max().map(|t| t + limit.window()),
            window_end(&self.window, limit),
        ]
        .into_iter()
        .flatten()
        .max()
    }

    fn check(&mut self, limit: Limit, allowed: usize, now: i64) -> Result<(), Refusal> {
        expire(&mut self.checks, limit.window(), now);
        if self.checks.len() >= allowed {
            let wait = wait_for(&self.checks, allowed, limit.window(), now);
            return Err(refuse(&mut self.window, limit, wait, now));
        }
        Ok(())
    }
}

fn pair_key(addr: &str, email: &str) -> String {
    // An address key never holds a space, so this cannot collide.
    format!("pair {addr} {email}")
}

/// The limiter on the key store, shared by every instance on one database.
#[derive(Clone)]
pub struct StoreLimiter {
    store: Arc<dyn Store>,
}

impl fmt::Debug for StoreLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreLimiter").finish_non_exhaustive()
    }
}

impl StoreLimiter {
    /// A limiter keeping its counts in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        StoreLimiter { store }
    }
}

impl SignInLimiter for StoreLimiter {
    fn reserve(
        &self,
        addr: &str,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<Ticket, Refusal>, StoreError> {
        use rand::Rng;
        let email = email_key(email);
        let keys = [
            pair_key(addr, &email),
            format!("address {addr}"),
            format!("email {email}"),
        ];
        let id: u64 = rand::rngs::OsRng.r#gen();
        let at = now.timestamp_millis();
        let mut answer = Ok(());
        self.store.limiter_update(&keys, now, &mut |rows| {
            let [pair_row, addr_row, email_row] = rows else {
                unreachable!("the store answers one row per key");
            };
            let mut pair: PairState = load(pair_row);
            let mut addr_s: ChecksState = load(addr_row);
            let mut email_s: ChecksState = load(email_row);
            pair.tidy(at);
            answer = pair
                .check(at)
                .and_then(|()| addr_s.check(Limit::AddressPerMinute, ADDR_CHECKS_PER_MINUTE, at))
                .and_then(|()| email_s.check(Limit::EmailPerHour, EMAIL_CHECKS_PER_HOUR, at));
            if answer.is_ok() {
                pair.in_flight.push((id, at));
                addr_s.checks.push(at);
                email_s.checks.push(at);
            }
            save(pair_row, &pair, pair.until(), at);
            save(addr_row, &addr_s, addr_s.until(Limit::AddressPerMinute), at);
            save(email_row, &email_s, email_s.until(Limit::EmailPerHour), at);
        })?;
        Ok(answer.map(|()| Ticket {
            addr: addr.to_owned(),
            email,
            id,
        }))
    }

    fn settle(
        &self,
        ticket: &Ticket,
        outcome: Outcome,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let at = now.timestamp_millis();
        let keys = [pair_key(&ticket.addr, &ticket.email)];
        self.store.limiter_update(&keys, now, &mut |rows| {
            let [row] = rows else {
                unreachable!("the store answers one row per key");
            };
            let mut pair: PairState = load(row);
            pair.in_flight.retain(|(id, _)| *id != ticket.id);
            match outcome {
                Outcome::Failure => {
                    pair.failures.push(at);
                    // Replicas' clocks may disagree by a little; the limits read them in order.
                    pair.failures.sort_unstable();
                }
                // The right password from this address: its earlier failures are forgiven.
                Outcome::Success => pair.failures.clear(),
                Outcome::NotChecked => {}
            }
            pair.tidy(at);
            save(row, &pair, pair.until(), at);
        })
    }
}

/// A reserved attempt that settles itself as [`Outcome::NotChecked`] if dropped unsettled (the
/// client went away mid-check, or an error answered early), so an attempt in flight is not left
/// counted until [`IN_FLIGHT_TTL`].
#[derive(Debug)]
pub struct Attempt {
    limiter: Arc<dyn SignInLimiter>,
    ticket: Option<Ticket>,
    at: DateTime<Utc>,
}

fn joined<T>(r: Result<T, tokio::task::JoinError>) -> Result<T, ApiError> {
    r.map_err(|e| ApiError::internal(&e))
}

/// Settle off the async workers: on the blocking pool when there is a runtime, in place when
/// not. A failure is logged: the attempt then counts until [`IN_FLIGHT_TTL`].
fn settle_detached(
    limiter: Arc<dyn SignInLimiter>,
    ticket: Ticket,
    outcome: Outcome,
    at: DateTime<Utc>,
) {
    let run = move || {
        if let Err(e) = limiter.settle(&ticket, outcome, at) {
            tracing::warn!(error = %e, "sign-in attempt not settled");
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => drop(rt.spawn_blocking(run)),
        Err(_) => run(),
    }
}

impl Attempt {
    /// Reserve an attempt on `limiter` (on the blocking pool: a store transaction).
    pub async fn reserve(
        limiter: &Arc<dyn SignInLimiter>,
        addr: &str,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<Attempt, Refusal>, ApiError> {
        let l = Arc::clone(limiter);
        let (addr, email) = (addr.to_owned(), email.to_owned());
        let reserved =
            joined(tokio::task::spawn_blocking(move || l.reserve(&addr, &email, now)).await)??;
        Ok(reserved.map(|ticket| Attempt {
            limiter: Arc::clone(limiter),
            ticket: Some(ticket),
            at: now,
        }))
    }

    /// Settle it, waiting until the store has it (so the next attempt sees it).
    pub async fn finish(mut self, outcome: Outcome, now: DateTime<Utc>) -> Result<(), ApiError> {
        let Some(ticket) = self.ticket.take() else {
            return Ok(());
        };
        let l = Arc::clone(&self.limiter);
        joined(tokio::task::spawn_blocking(move || l.settle(&ticket, outcome, now)).await)??;
        Ok(())
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            settle_detached(Arc::clone(&self.limiter), t, Outcome::NotChecked, self.at);
        }
    }
}

#[cfg(test)]
#[path = "ratelimit_tests.rs"]
mod tests;
