//! [`LoginLimiter`]: failed sign-ins per email and per client address in a sliding minute;
//! the sixth failure within a minute (and every try after it) is answered 429.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per key within [`WINDOW`].
pub const MAX_FAILURES: usize = 5;
/// The sliding window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Above this many tracked keys, stale ones are swept.
const SWEEP_AT: usize = 10_000;

/// Counts failed sign-ins.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    fn keys(email: &str, addr: &str) -> [String; 2] {
        [
            format!("email:{}", email.trim().to_lowercase()),
            format!("addr:{addr}"),
        ]
    }

    /// Whether a sign-in for this email or from this address must wait.
    pub fn blocked(&self, email: &str, addr: &str, now: Instant) -> bool {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        Self::keys(email, addr).iter().any(|k| {
            map.get_mut(k).is_some_and(|q| {
                while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
                    q.pop_front();
                }
                q.len() >= MAX_FAILURES
            })
        })
    }

    /// Count a failed sign-in.
    pub fn failed(&self, email: &str, addr: &str, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > SWEEP_AT {
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        for k in Self::keys(email, addr) {
            let q = map.entry(k).or_default();
            q.push_back(now);
            while q.len() > MAX_FAILURES {
                q.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_block_for_a_minute() {
        let l = LoginLimiter::default();
        let t = Instant::now();
        for _ in 0..5 {
            assert!(!l.blocked("a@x", "1.2.3.4", t));
            l.failed("a@x", "1.2.3.4", t);
        }
        assert!(l.blocked("A@x", "9.9.9.9", t), "per email");
        assert!(l.blocked("b@x", "1.2.3.4", t), "per address");
        assert!(!l.blocked("b@x", "9.9.9.9", t));
        assert!(!l.blocked("a@x", "1.2.3.4", t + WINDOW));
    }
}
