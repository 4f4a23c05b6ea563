//! Load generator for the key service (bench/load.sh runs it): N concurrent clients for a fixed
//! time, each mixing integration calls, lookups, lists, creates, rotations and deletes on a
//! running `offkey serve`. Prints per-route counts and p50/p99/max latency, counts every 5xx,
//! and afterwards checks that no answered write was lost: every answered `201` is listed and
//! works, every answered `204` (and every key rotated away) is refused.
//!
//! ```sh
//! OFFKEY_LOAD_TOKEN=<admin session token> cargo run --release --example load -- \
//!     http://127.0.0.1:8787 50 60
//! ```

use std::collections::{BTreeMap, HashSet};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{Value, json};

#[derive(Clone)]
struct Held {
    id: String,
    key: String,
}

#[derive(Default)]
struct Totals {
    /// Latencies per route, in microseconds.
    latencies: BTreeMap<&'static str, Vec<u64>>,
    /// Non-2xx answers per route and status.
    errors: BTreeMap<(&'static str, u16), u64>,
    /// Requests with no answer at all.
    failed: u64,
    alive: Vec<Held>,
    gone: Vec<Held>,
}

struct Client {
    http: reqwest::blocking::Client,
    url: String,
    token: String,
}

impl Client {
    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(bearer);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        let body = res.json().unwrap_or(Value::Null);
        Ok((status, body))
    }

    fn create(&self, memo: &str) -> Result<(u16, Value), String> {
        self.call(
            reqwest::Method::POST,
            "/v1/keys",
            &self.token,
            Some(json!({ "memo": memo })),
        )
    }
}

fn held(body: &Value) -> Option<Held> {
    Some(Held {
        id: body["id"].as_str()?.to_owned(),
        key: body["key"].as_str()?.to_owned(),
    })
}

fn sha256_hex(key: &str) -> String {
    offkey::key::sha256_hex(key.as_bytes())
}

/// One client's loop until `end`.
fn run_client(client: &Client, n: usize, end: Instant, totals: &Mutex<Totals>) {
    let mut rng = rand::thread_rng();
    let mut mine: Vec<Held> = Vec::new();
    let mut gone: Vec<Held> = Vec::new();
    let mut lat: BTreeMap<&'static str, Vec<u64>> = BTreeMap::new();
    let mut errors: BTreeMap<(&'static str, u16), u64> = BTreeMap::new();
    let mut failed = 0;
    // Every client owns at least one key, for its integration calls.
    if let Ok((201, body)) = client.create(&format!("load client {n}")) {
        mine.extend(held(&body));
    }
    let mut i = 0u64;
    while Instant::now() < end {
        i += 1;
        let roll = rng.gen_range(0..100);
        let started = Instant::now();
        let (route, answer) = if mine.is_empty() || roll < 10 {
            ("POST /v1/keys", client.create(&format!("load {n} {i}")))
        } else if roll < 55 {
            let k = &mine[rng.gen_range(0..mine.len())];
            (
                "GET /api/v1/account",
                client.call(reqwest::Method::GET, "/api/v1/account", &k.key, None),
            )
        } else if roll < 70 {
            let mut hashes: Vec<String> =
                mine.iter().take(20).map(|h| sha256_hex(&h.key)).collect();
            hashes.extend(gone.iter().rev().take(5).map(|h| sha256_hex(&h.key)));
            (
                "POST /v1/keys/lookup",
                client.call(
                    reqwest::Method::POST,
                    "/v1/keys/lookup",
                    &client.token,
                    Some(json!({ "sha256": hashes })),
                ),
            )
        } else if roll < 85 {
            (
                "GET /v1/keys",
                client.call(reqwest::Method::GET, "/v1/keys", &client.token, None),
            )
        } else if roll < 92 && mine.len() > 1 {
            let victim = mine.swap_remove(rng.gen_range(0..mine.len()));
            let a = client.call(
                reqwest::Method::DELETE,
                &format!("/v1/keys/{}", victim.id),
                &client.token,
                None,
            );
            match &a {
                Ok((204, _)) => gone.push(victim),
                _ => mine.push(victim),
            }
            ("DELETE /v1/keys/{id}", a)
        } else {
            let old = mine.swap_remove(rng.gen_range(0..mine.len()));
            let a = client.call(
                reqwest::Method::POST,
                &format!("/v1/keys/{}/rotate", old.id),
                &client.token,
                Some(json!({ "grace_seconds": 0 })),
            );
            match &a {
                Ok((201, body)) => {
                    mine.extend(held(body));
                    gone.push(old);
                }
                _ => mine.push(old),
            }
            ("POST /v1/keys/{id}/rotate", a)
        };
        let took = started.elapsed().as_micros() as u64;
        match answer {
            Ok((status, body)) => {
                if route == "POST /v1/keys" && status == 201 {
                    mine.extend(held(&body));
                }
                if !(200..300).contains(&status) {
                    *errors.entry((route, status)).or_default() += 1;
                }
                lat.entry(route).or_default().push(took);
            }
            Err(_) => failed += 1,
        }
    }
    let mut t = totals.lock().expect("totals");
    for (route, mut v) in lat {
        t.latencies.entry(route).or_default().append(&mut v);
    }
    for (k, v) in errors {
        *t.errors.entry(k).or_default() += v;
    }
    t.failed += failed;
    t.alive.extend(mine);
    t.gone.extend(gone);
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:8787".into());
    let clients: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(50);
    let seconds: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(60);
    let Ok(token) = std::env::var("OFFKEY_LOAD_TOKEN") else {
        eprintln!("set OFFKEY_LOAD_TOKEN to an admin session token");
        return ExitCode::from(2);
    };
    let totals = Arc::new(Mutex::new(Totals::default()));
    let end = Instant::now() + Duration::from_secs(seconds);
    let threads: Vec<_> = (0..clients)
        .map(|n| {
            let client = Client {
                http: reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .expect("http client"),
                url: url.clone(),
                token: token.clone(),
            };
            let totals = Arc::clone(&totals);
            std::thread::spawn(move || run_client(&client, n, end, &totals))
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let mut t = totals.lock().expect("totals");

    println!("| route | requests | p50 ms | p99 ms | max ms | non-2xx |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut all = 0;
    let errors = t.errors.clone();
    for (route, v) in t.latencies.iter_mut() {
        v.sort_unstable();
        all += v.len();
        let non2xx: u64 = errors
            .iter()
            .filter(|((r, _), _)| r == route)
            .map(|(_, n)| n)
            .sum();
        println!(
            "| {route} | {} | {:.2} | {:.2} | {:.2} | {non2xx} |",
            v.len(),
            percentile(v, 0.5),
            percentile(v, 0.99),
            percentile(v, 1.0),
        );
    }
    println!(
        "\n{clients} clients, {seconds} s: {all} requests ({:.0}/s), {} without an answer",
        all as f64 / seconds as f64,
        t.failed
    );
    let five_xx: u64 = t
        .errors
        .iter()
        .filter(|((_, s), _)| *s >= 500)
        .map(|(_, n)| n)
        .sum();
    for ((route, status), n) in &t.errors {
        println!("non-2xx: {route} {status} x{n}");
    }

    // Lost writes: every answered create is listed and works; every answered delete is refused.
    let checker = Client {
        http: reqwest::blocking::Client::new(),
        url: url.clone(),
        token: token.clone(),
    };
    let listed: HashSet<String> = match checker.call(reqwest::Method::GET, "/v1/keys", &token, None)
    {
        Ok((200, body)) => body["keys"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|k| k["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        other => {
            eprintln!("cannot list keys after the run: {other:?}");
            return ExitCode::FAILURE;
        }
    };
    let mut lost = 0;
    for h in &t.alive {
        let works = matches!(
            checker.call(reqwest::Method::GET, "/api/v1/account", &h.key, None),
            Ok((200, _))
        );
        if !listed.contains(&h.id) || !works {
            lost += 1;
        }
    }
    let mut resurrected = 0;
    for h in &t.gone {
        let refused = matches!(
            checker.call(reqwest::Method::GET, "/api/v1/account", &h.key, None),
            Ok((401, _))
        );
        if listed.contains(&h.id) || !refused {
            resurrected += 1;
        }
    }
    println!(
        "writes checked: {} live keys ({lost} lost), {} deleted or rotated away ({resurrected} back)",
        t.alive.len(),
        t.gone.len()
    );
    println!("5xx: {five_xx}");
    if five_xx > 0 || lost > 0 || resurrected > 0 || t.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
