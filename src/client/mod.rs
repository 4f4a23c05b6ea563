//! The one HTTP client of the key service (spec/api.md), blocking (reqwest): sign-in, keys,
//! lookups in batches of at most 1000, rotation, exposures and the audit log. The scanner's
//! `--verify`, the rotation assistant and the CLI's `keys` commands all use it.
//!
//! Keys only cross it as [`crate::key::Secret`] (redacted `Debug`), session tokens as
//! [`SessionToken`] (redacted `Debug`), and errors ([`ClientError`]) never contain either.

mod error;
mod types;

use std::time::Duration;

use reqwest::Method;
use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::ClientError;
pub use types::{
    Account, AccountName, ApiKey, AuditEvent, CreatedKey, Creator, ExposureReport, ExposureSeen,
    Exposures, Login, LookupResult, LookupStatus, Member, RotateRequest, RotatedKey,
};

use crate::key::Secret;

/// Most hashes or exposures in one request (the API's limit).
pub const BATCH: usize = 1000;
/// Most JSON bytes of exposures in one request: well under the API's 256 KiB body limit, since
/// 1000 entries with long locations would not fit.
pub const EXPOSURES_BATCH_BYTES: usize = 192 * 1024;

/// `exposures` cut into runs that each fit one request.
fn exposure_batches(exposures: &[ExposureReport]) -> Vec<&[ExposureReport]> {
    // An entry's JSON: the four values plus about 80 bytes of names, quotes and time.
    let size = |e: &ExposureReport| e.sha256.len() + e.source.len() + e.location.len() + 80;
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, e) in exposures.iter().enumerate() {
        let n = size(e);
        if i > start && (i - start == BATCH || bytes + n > EXPOSURES_BATCH_BYTES) {
            out.push(&exposures[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += n;
    }
    if start < exposures.len() {
        out.push(&exposures[start..]);
    }
    out
}

/// Attempts for a request that is safe to repeat.
const RETRIES: u32 = 4;

/// A session token; `Debug` shows only that there is one.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct SessionToken(String);

impl SessionToken {
    /// Wrap a token (from the login config or `OFFKEY_TOKEN`).
    pub fn new(token: impl Into<String>) -> Self {
        SessionToken(token.into())
    }

    /// The token itself, for the Authorization header or the config file.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken(…)")
    }
}

/// A client of one key service.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<SessionToken>,
    http: Http,
}

type Result<T> = std::result::Result<T, ClientError>;

#[derive(serde::Deserialize)]
struct ErrorBody {
    error: ErrorInner,
}

#[derive(serde::Deserialize)]
struct ErrorInner {
    code: String,
    message: String,
}

impl Client {
    /// A client of the service at `base_url` (e.g. `http://127.0.0.1:8787`), not signed in.
    pub fn new(base_url: &str) -> Result<Self> {
        let base = base_url.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) || base.len() < 10 {
            return Err(ClientError::BadUrl(base));
        }
        let http = Http::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("offkey/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Transport {
                url: base.clone(),
                message: e.without_url().to_string(),
            })?;
        Ok(Client {
            base,
            token: None,
            http,
        })
    }

    /// The same client, signed in with `token`.
    pub fn with_token(mut self, token: SessionToken) -> Self {
        self.token = Some(token);
        self
    }

    /// The service's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    fn authed(&self, method: Method, path: &str) -> Result<RequestBuilder> {
        let token = self.token.as_ref().ok_or(ClientError::NoToken)?;
        Ok(self.request(method, path).bearer_auth(token.expose()))
    }

    fn send(&self, what: &str, req: RequestBuilder) -> Result<Response> {
        let res = req.send().map_err(|e| ClientError::Transport {
            url: self.base.clone(),
            message: e.without_url().to_string(),
        })?;
        let status = res.status();
        if status.is_success() {
            return Ok(res);
        }
        let bytes = res.bytes().unwrap_or_default();
        Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => ClientError::Api {
                what: what.to_owned(),
                status: status.as_u16(),
                code: body.error.code,
                message: body.error.message,
            },
            Err(_) => ClientError::Api {
                what: what.to_owned(),
                status: status.as_u16(),
                code: "http".to_owned(),
                message: status
                    .canonical_reason()
                    .unwrap_or("request failed")
                    .to_owned(),
            },
        })
    }

    fn json<T: DeserializeOwned>(&self, what: &str, res: Response) -> Result<T> {
        let status = res.status().as_u16();
        let bytes = res.bytes().map_err(|e| ClientError::Transport {
            url: self.base.clone(),
            message: e.without_url().to_string(),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            what: what.to_owned(),
            status,
            // serde names the field and position; the parse of a key is ParseKeyError (no key).
            message: e.to_string().chars().take(200).collect(),
        })
    }

    fn call<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let what = format!("{method} {path}");
        let mut req = self.authed(method, path)?;
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = self.send(&what, req)?;
        self.json(&what, res)
    }

    /// [`Client::call`] for requests that are safe to repeat (reads, lookups, exposures):
    /// retried with exponential backoff on 429, 5xx and transport errors, honouring
    /// `Retry-After` up to 10 s.
    fn call_retry<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let mut delay = Duration::from_millis(200);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.call(method.clone(), path, body) {
                Err(e) if attempt < RETRIES && e.retryable() => {
                    std::thread::sleep(
                        e.retry_after()
                            .unwrap_or(delay)
                            .min(Duration::from_secs(10)),
                    );
                    delay *= 2;
                }
                other => return other,
            }
        }
    }

    /// `POST /v1/session`: sign in. Keep the answer's token with [`Client::with_token`].
    pub fn login(&self, email: &str, password: &str) -> Result<Login> {
        let what = "POST /v1/session";
        let req = self
            .request(Method::POST, "/v1/session")
            .json(&serde_json::json!({"email": email, "password": password}));
        let res = self.send(what, req)?;
        self.json(what, res)
    }

    /// `DELETE /v1/session`: end this client's session at once.
    pub fn logout(&self) -> Result<()> {
        let what = "DELETE /v1/session";
        self.send(what, self.authed(Method::DELETE, "/v1/session")?)?;
        Ok(())
    }

    /// `GET /v1/me`
    pub fn me(&self) -> Result<Member> {
        self.call::<(), _>(Method::GET, "/v1/me", None)
    }

    /// `GET /v1/keys`: working keys, newest first.
    pub fn list_keys(&self) -> Result<Vec<ApiKey>> {
        #[derive(serde::Deserialize)]
        struct Keys {
            keys: Vec<ApiKey>,
        }
        let k: Keys = self.call::<(), _>(Method::GET, "/v1/keys", None)?;
        Ok(k.keys)
    }

    /// `POST /v1/keys`: a new key, returned whole this once.
    pub fn create_key(&self, memo: &str) -> Result<CreatedKey> {
        self.call(
            Method::POST,
            "/v1/keys",
            Some(&serde_json::json!({ "memo": memo })),
        )
    }

    /// `DELETE /v1/keys/{id}`: the key stops working now.
    pub fn delete_key(&self, id: &str) -> Result<()> {
        let path = format!("/v1/keys/{}", path_segment(id));
        let what = format!("DELETE {path}");
        self.send(&what, self.authed(Method::DELETE, &path)?)?;
        Ok(())
    }

    /// `POST /v1/keys/lookup` for any number of hashes (sent in batches of [`BATCH`]); answers in
    /// the order asked. Does not count as a use of the keys.
    pub fn lookup(&self, sha256: &[String]) -> Result<Vec<LookupResult>> {
        #[derive(serde::Deserialize)]
        struct Results {
            results: Vec<LookupResult>,
        }
        let mut out = Vec::with_capacity(sha256.len());
        for chunk in sha256.chunks(BATCH) {
            let r: Results = self.call_retry(
                Method::POST,
                "/v1/keys/lookup",
                Some(&serde_json::json!({ "sha256": chunk })),
            )?;
            out.extend(r.results);
        }
        Ok(out)
    }

    /// [`Client::lookup`] for whole keys: only their hashes are sent.
    pub fn lookup_keys(&self, keys: &[Secret]) -> Result<Vec<LookupResult>> {
        let hashes: Vec<String> = keys.iter().map(Secret::sha256).collect();
        self.lookup(&hashes)
    }

    /// `POST /v1/keys/{id}/rotate`: a new key now; the old one per `request`.
    pub fn rotate(&self, id: &str, request: &RotateRequest) -> Result<RotatedKey> {
        let path = format!("/v1/keys/{}/rotate", path_segment(id));
        self.call(Method::POST, &path, Some(request))
    }

    /// `POST /v1/keys/exposures` (in batches of at most [`BATCH`] entries and
    /// [`EXPOSURES_BATCH_BYTES`] of JSON): answers how many were new.
    pub fn record_exposures(&self, exposures: &[ExposureReport]) -> Result<usize> {
        #[derive(serde::Deserialize)]
        struct Recorded {
            recorded: usize,
        }
        let mut total = 0;
        for chunk in exposure_batches(exposures) {
            let r: Recorded = self.call_retry(
                Method::POST,
                "/v1/keys/exposures",
                Some(&serde_json::json!({ "exposures": chunk })),
            )?;
            total += r.recorded;
        }
        Ok(total)
    }

    /// `GET /v1/audit?limit=N`: the latest events, newest first.
    pub fn audit(&self, limit: usize) -> Result<Vec<AuditEvent>> {
        #[derive(serde::Deserialize)]
        struct Events {
            events: Vec<AuditEvent>,
        }
        let e: Events =
            self.call::<(), _>(Method::GET, &format!("/v1/audit?limit={limit}"), None)?;
        Ok(e.events)
    }

    /// `GET /api/v1/account` with an API key (the integration API; records the key's use).
    pub fn account(&self, key: &Secret) -> Result<Account> {
        let what = "GET /api/v1/account";
        let req = self
            .request(Method::GET, "/api/v1/account")
            .bearer_auth(key.expose());
        let res = self.send(what, req)?;
        self.json(what, res)
    }

    /// `GET /healthz`
    pub fn health(&self) -> Result<()> {
        self.send("GET /healthz", self.request(Method::GET, "/healthz"))?;
        Ok(())
    }
}

/// Keep an id to one path segment.
fn path_segment(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod batch_tests {
    use super::*;

    #[test]
    fn exposure_batches_respect_count_and_size() {
        let e = |len: usize| ExposureReport {
            sha256: "0".repeat(64),
            source: "offkey scan".into(),
            location: "w".repeat(len),
            seen_at: chrono::Utc::now(),
        };
        let small: Vec<_> = (0..2500).map(|_| e(10)).collect();
        let b = exposure_batches(&small);
        assert_eq!(
            b.iter().map(|c| c.len()).collect::<Vec<_>>(),
            [1000, 1000, 500]
        );
        let big: Vec<_> = (0..1000).map(|_| e(500)).collect();
        let b = exposure_batches(&big);
        assert!(b.len() > 1);
        assert_eq!(b.iter().map(|c| c.len()).sum::<usize>(), 1000);
        for c in b {
            let json = serde_json::to_vec(&serde_json::json!({ "exposures": c })).expect("json");
            assert!(json.len() < 256 * 1024, "{}", json.len());
        }
        assert!(exposure_batches(&[]).is_empty());
    }
}
