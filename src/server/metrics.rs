//! `GET /metrics`: the service's counters in Prometheus text format (spec/api.md, "Operations"):
//! requests and their latencies by route and status, failed sign-ins, key uses and store
//! errors. Labels are route templates (`/v1/keys/{id}`), never paths, so no id, key or token
//! can reach a label. Reachable from loopback, or from `--metrics-from CIDR`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use ipnet::IpNet;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 9] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5];

#[derive(Debug, Default, Clone)]
struct Series {
    count: u64,
    sum: f64,
    /// Requests at or under each bound of [`BUCKETS`].
    buckets: [u64; BUCKETS.len()],
}

/// The counters.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, String, u16), Series>>,
    sign_in_failures: AtomicU64,
    key_uses: AtomicU64,
    store_errors: AtomicU64,
}

impl Metrics {
    /// One answered request: its method, route template and status, and how long it took.
    pub fn observe(&self, method: &'static str, route: &str, status: u16, seconds: f64) {
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let s = map.entry((method, route.to_owned(), status)).or_default();
        s.count += 1;
        s.sum += seconds;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                s.buckets[i] += 1;
            }
        }
    }

    /// A sign-in whose password check failed.
    pub fn sign_in_failed(&self) {
        self.sign_in_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// An integration request authenticated by a key.
    pub fn key_used(&self) {
        self.key_uses.fetch_add(1, Ordering::Relaxed);
    }

    /// A store operation that failed.
    pub fn store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Everything, in Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let map = self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        out.push_str(
            "# HELP offkey_http_requests_total Requests answered, by method, route and status.\n",
        );
        out.push_str("# TYPE offkey_http_requests_total counter\n");
        for ((method, route, status), s) in &map {
            let _ = writeln!(
                out,
                "offkey_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {}",
                escape(route),
                s.count
            );
        }
        out.push_str("# HELP offkey_http_request_duration_seconds Time to answer, by method, route and status.\n");
        out.push_str("# TYPE offkey_http_request_duration_seconds histogram\n");
        for ((method, route, status), s) in &map {
            let labels = format!(
                "method=\"{method}\",route=\"{}\",status=\"{status}\"",
                escape(route)
            );
            for (bound, n) in BUCKETS.iter().zip(s.buckets) {
                let _ = writeln!(
                    out,
                    "offkey_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "offkey_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "offkey_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "offkey_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        for (name, help, v) in [
            (
                "offkey_sign_in_failures_total",
                "Sign-ins refused for a wrong email or password.",
                &self.sign_in_failures,
            ),
            (
                "offkey_key_uses_total",
                "Integration requests authenticated by an API key.",
                &self.key_uses,
            ),
            (
                "offkey_store_errors_total",
                "Key store operations that failed.",
                &self.store_errors,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
        out
    }
}

/// `GET /metrics`
pub async fn scrape(
    axum::extract::State(state): axum::extract::State<super::AppState>,
    req: axum::extract::Request,
) -> Result<axum::response::Response, super::ApiError> {
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    if !allowed(peer, &state.net().metrics_from) {
        return Err(super::ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden",
            "the metrics are served to loopback and to --metrics-from ranges only",
        ));
    }
    Ok(axum::response::IntoResponse::into_response((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics().render(),
    )))
}

/// A label value with `\`, `"` and newlines escaped, as the text format wants.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Whether a peer may read the metrics: loopback always, others only inside `from`. `None` is
/// a request with no socket (the app driven in-process).
pub fn allowed(peer: Option<IpAddr>, from: &[IpNet]) -> bool {
    match peer {
        None => true,
        Some(ip) => {
            let ip = ip.to_canonical();
            ip.is_loopback() || from.iter().any(|n| n.contains(&ip))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_may_read_them() {
        let from: Vec<IpNet> = vec!["10.1.0.0/16".parse().expect("cidr")];
        let ip = |s: &str| Some(s.parse::<IpAddr>().expect("ip"));
        assert!(allowed(ip("127.0.0.1"), &[]));
        assert!(allowed(ip("127.0.0.9"), &[]));
        assert!(allowed(ip("::1"), &[]));
        assert!(allowed(ip("::ffff:127.0.0.1"), &[]), "mapped loopback");
        assert!(!allowed(ip("10.1.2.3"), &[]));
        assert!(allowed(ip("10.1.2.3"), &from));
        assert!(!allowed(ip("10.2.0.1"), &from));
        assert!(!allowed(ip("192.168.1.5"), &from));
    }

    #[test]
    fn text_format() {
        let m = Metrics::default();
        m.observe("GET", "/v1/keys/{id}", 200, 0.003);
        m.observe("GET", "/v1/keys/{id}", 200, 0.2);
        m.sign_in_failed();
        let t = m.render();
        assert!(
            t.contains(
                "offkey_http_requests_total{method=\"GET\",route=\"/v1/keys/{id}\",status=\"200\"} 2"
            ),
            "{t}"
        );
        assert!(t.contains("le=\"0.005\"} 1"), "{t}");
        assert!(t.contains("le=\"0.5\"} 2"), "{t}");
        assert!(t.contains("le=\"+Inf\"} 2"), "{t}");
        assert!(t.contains("offkey_sign_in_failures_total 1"), "{t}");
        assert!(t.contains("offkey_store_errors_total 0"), "{t}");
    }
}
