//! `POST /v1/secret-scanning/github`: GitHub's secret scanning partner alerts (spec/api.md).
//!
//! GitHub signs each batch with one of the keys it publishes; the handler checks that signature
//! over the raw body before it reads anything else, then labels each token (a key that is or was
//! issued here is a true positive) and applies the `--on-public-leak` action to the active ones.
//! Every token is handled by its sha256 only: the token itself is never logged, stored or sent.
//!
//! Reports are idempotent: a key that is already deleted is not deleted again, a key already
//! being replaced is not rotated again, and a known (key, URL) exposure is neither recorded,
//! audited nor notified twice, so GitHub may retry a batch as often as it likes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, SystemTime};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;
use serde::{Deserialize, Serialize};

use crate::key::{KeyKind, Secret, generate, redacted, scrub, sha256_hex};
use crate::server::AppState;
use crate::server::error::ApiError;
use crate::store::{
    AuditEntry, ExposureReport, KeyRecord, LookupStatus, NewKey, PUBLIC_LEAK_SOURCE, Rotation,
    Store, new_id,
};

/// The largest body GitHub may send (spec/api.md: 413 above).
pub const BODY_LIMIT: usize = 1024 * 1024;
/// Most tokens in one alert.
pub const MAX_TOKENS: usize = 1000;
/// The actor of every store change an alert makes.
pub const ACTOR: &str = "github secret scanning";
/// Header naming the key GitHub signed with.
pub const KEY_ID_HEADER: &str = "github-public-key-identifier";
/// Header carrying the base64 DER signature.
pub const SIGNATURE_HEADER: &str = "github-public-key-signature";
/// Longest URL kept as an exposure's location (longer ones are cut, never refused: an alert
/// must not be lost to a long URL).
const MAX_LOCATION: usize = 500;
/// How long a notification may take before it is given up.
const NOTIFY_TIMEOUT: StdDuration = StdDuration::from_secs(10);

/// What to do with an active key that GitHub found in public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeakAction {
    /// Delete it at once (the default: the key is public).
    Revoke,
    /// Issue a replacement; the reported key stops working after this long.
    Rotate(Duration),
    /// Record the exposure only.
    Notify,
}

/// A GitHub keys file that cannot be used. Names the file, never a key.
#[derive(Debug, thiserror::Error)]
pub enum GithubKeysError {
    /// Unreadable.
    #[error("cannot read the GitHub keys file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not `{"public_keys": [{"key_identifier", "key", "is_current"}]}`.
    #[error(
        "the GitHub keys file {path} is not in GitHub's shape {{\"public_keys\": [{{\"key_identifier\", \"key\", \"is_current\"}}]}}: {source}"
    )]
    Shape {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        source: serde_json::Error,
    },
    /// A listed key is not a PEM P-256 public key.
    #[error(
        "the GitHub keys file {path}: key {id:?} is not a PEM (SPKI) P-256 public key: {reason}"
    )]
    Key {
        /// The file.
        path: PathBuf,
        /// Its `key_identifier`.
        id: String,
        /// The decoder's complaint.
        reason: String,
    },
    /// No keys at all: every alert would be refused.
    #[error("the GitHub keys file {path} lists no public keys")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The HTTP client for `--notify-url` could not be built.
    #[error("cannot set up the notification client: {0}")]
    Client(String),
}

#[derive(Deserialize)]
struct RawKeyFile {
    public_keys: Vec<RawKey>,
}

#[derive(Deserialize)]
struct RawKey {
    key_identifier: String,
    key: String,
    // GitHub marks the key it signs with now; older listed keys still verify, so it is only
    // checked for shape.
    #[serde(rename = "is_current")]
    _is_current: bool,
}

type Keys = Arc<HashMap<String, VerifyingKey>>;

fn load_keys(path: &Path) -> Result<Keys, GithubKeysError> {
    let bytes = std::fs::read(path).map_err(|source| GithubKeysError::Read {
        path: path.to_owned(),
        source,
    })?;
    let raw: RawKeyFile =
        serde_json::from_slice(&bytes).map_err(|source| GithubKeysError::Shape {
            path: path.to_owned(),
            source,
        })?;
    if raw.public_keys.is_empty() {
        return Err(GithubKeysError::Empty {
            path: path.to_owned(),
        });
    }
    let mut keys = HashMap::with_capacity(raw.public_keys.len());
    for k in raw.public_keys {
        let key =
            VerifyingKey::from_public_key_pem(k.key.trim()).map_err(|e| GithubKeysError::Key {
                path: path.to_owned(),
                id: k.key_identifier.clone(),
                reason: e.to_string(),
            })?;
        keys.insert(k.key_identifier, key);
    }
    Ok(Arc::new(keys))
}

/// What tells a changed file apart: modification time, length and (on Unix) the inode, so an
/// atomic rename counts as a change even within one timestamp tick.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let m = std::fs::metadata(path)?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Ok(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode,
    })
}

/// The keys file, re-read when its stamp changes (one `stat` per alert).
struct KeyFile {
    path: PathBuf,
    loaded: Mutex<(Option<Stamp>, Keys)>,
}

impl KeyFile {
    fn open(path: PathBuf) -> Result<Self, GithubKeysError> {
        let st = stamp(&path).ok();
        let keys = load_keys(&path)?;
        Ok(KeyFile {
            path,
            loaded: Mutex::new((st, keys)),
        })
    }

    /// The keys now. A file that became unreadable or malformed keeps the last good keys (and
    /// says so in the log) rather than refusing every alert; it is re-read once it changes.
    fn current(&self) -> Keys {
        let mut loaded = self
            .loaded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = stamp(&self.path).ok();
        if now.is_some() && now != loaded.0 {
            match load_keys(&self.path) {
                Ok(keys) => {
                    tracing::info!(keys = keys.len(), "GitHub keys file re-read");
                    loaded.1 = keys;
                }
                Err(e) => tracing::warn!(error = %e, "keeping the previous GitHub keys"),
            }
            loaded.0 = now;
        } else if now.is_none() {
            tracing::warn!(path = %self.path.display(), "GitHub keys file is gone; keeping the previous keys");
        }
        Arc::clone(&loaded.1)
    }
}

/// The settings and state of the GitHub endpoint.
pub struct GithubAlerts {
    keys: KeyFile,
    on_leak: LeakAction,
    notify_url: Option<reqwest::Url>,
    http: reqwest::Client,
    // One alert at a time, so that two deliveries of one token cannot both rotate its key.
    serial: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for GithubAlerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubAlerts")
            .field("keys_file", &self.keys.path)
            .field("on_leak", &self.on_leak)
            .field("notify", &self.notify_url.is_some())
            .finish_non_exhaustive()
    }
}

impl GithubAlerts {
    /// Load the keys file now (a bad file fails here, at startup, naming the file).
    pub fn new(
        keys_file: PathBuf,
        on_leak: LeakAction,
        notify_url: Option<reqwest::Url>,
    ) -> Result<Self, GithubKeysError> {
        let http = reqwest::Client::builder()
            .timeout(NOTIFY_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| GithubKeysError::Client(e.without_url().to_string()))?;
        Ok(GithubAlerts {
            keys: KeyFile::open(keys_file)?,
            on_leak,
            notify_url,
            http,
            serial: tokio::sync::Mutex::new(()),
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Refusal {
    NoHeaders,
    UnknownKey,
    BadSignature,
}

impl Refusal {
    fn detail(self) -> &'static str {
        match self {
            Refusal::NoHeaders => "missing signature headers",
            Refusal::UnknownKey => "unknown key identifier",
            Refusal::BadSignature => "bad signature",
        }
    }

    fn error(self) -> ApiError {
        let message = match self {
            Refusal::NoHeaders => {
                "send the Github-Public-Key-Identifier and Github-Public-Key-Signature headers"
            }
            Refusal::UnknownKey => {
                "the Github-Public-Key-Identifier is not one of this server's GitHub keys"
            }
            Refusal::BadSignature => {
                "the Github-Public-Key-Signature does not verify over the body with that key"
            }
        };
        ApiError::new(StatusCode::UNAUTHORIZED, "invalid_signature", message)
    }
}

fn verify(keys: &Keys, headers: &HeaderMap, body: &[u8]) -> Result<(), Refusal> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(id), Some(sig)) = (header(KEY_ID_HEADER), header(SIGNATURE_HEADER)) else {
        return Err(Refusal::NoHeaders);
    };
    let key = keys.get(id.trim()).ok_or(Refusal::UnknownKey)?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(sig.trim())
        .map_err(|_| Refusal::BadSignature)?;
    let sig = Signature::from_der(&der).map_err(|_| Refusal::BadSignature)?;
    key.verify(body, &sig).map_err(|_| Refusal::BadSignature)
}

/// One token GitHub found.
#[derive(Debug, Deserialize)]
struct Alert {
    token: String,
    #[serde(rename = "type")]
    token_type: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    source: String,
}

/// One label, in request order.
#[derive(Debug, Serialize)]
struct Label {
    token_hash: String,
    token_type: String,
    label: &'static str,
}

/// A place fit to store: the reported key and anything key-shaped redacted, no control
/// characters, at most [`MAX_LOCATION`] characters.
fn location(url: &str, source: &str, key: &Secret) -> String {
    let url = url.trim();
    let text = if url.is_empty() {
        format!("github {}", source.trim())
    } else {
        url.replace(key.expose(), &key.redacted())
    };
    scrub(&text)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_LOCATION)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// What happened to one reported key, for the audit log and the notification.
struct Outcome {
    key: KeyRecord,
    places: Vec<String>,
    done: String,
}

fn handle_key(
    s: &dyn Store,
    on_leak: LeakAction,
    status: LookupStatus,
    key: KeyRecord,
    reports: Vec<ExposureReport>,
    now: DateTime<Utc>,
) -> crate::store::Result<Option<Outcome>> {
    let places: Vec<String> = reports.iter().map(|r| r.location.clone()).collect();
    let new_places = s.record_exposures(&reports, now, ACTOR)?;
    let done = if status != LookupStatus::Active {
        None
    } else {
        match on_leak {
            LeakAction::Revoke => s
                .delete_key(&key.id, now, ACTOR)?
                .map(|_| "has been deleted".to_owned()),
            // A key already being replaced (by an earlier alert or by an admin) keeps its
            // deadline: a second replacement would only add a second unusable key.
            LeakAction::Rotate(grace) if key.expires_at.is_none() => {
                // The replacement's secret goes nowhere: whoever used the leaked key cannot
                // be reached from here. It is listed so an admin can rotate it to a usable key.
                let secret = generate();
                let rotation = Rotation {
                    old_id: key.id.clone(),
                    new: NewKey {
                        id: new_id("key_"),
                        sha256: secret.sha256(),
                        last4: secret.last4().to_owned(),
                        memo: String::new(),
                        kind: KeyKind::Current,
                        created_at: now,
                        created_by: None,
                    },
                    old_expires_at: now + grace,
                    until_first_use: false,
                };
                s.rotate_key(rotation, ACTOR)?.map(|new| {
                    format!(
                        "is being replaced: it stops working at {}; its replacement {} (…{}) is listed in Settings → API Keys",
                        crate::server::wire::rfc3339(now + grace),
                        new.id,
                        new.last4
                    )
                })
            }
            LeakAction::Rotate(_) | LeakAction::Notify => None,
        }
    };
    if new_places == 0 && done.is_none() {
        return Ok(None);
    }
    let done = done.unwrap_or_else(|| match (status, on_leak) {
        (LookupStatus::Active, LeakAction::Rotate(_)) => key.expires_at.map_or_else(
            || "is still active".to_owned(),
            |e| {
                format!(
                    "is already being replaced: it stops working at {}",
                    crate::server::wire::rfc3339(e)
                )
            },
        ),
        (LookupStatus::Active, _) => {
            "was recorded only (--on-public-leak notify): delete or rotate it now".to_owned()
        }
        _ => "was already revoked".to_owned(),
    });
    let detail = format!(
        "{} found public on GitHub at {}; it {done}",
        redacted(key.kind, &key.last4),
        places.join(", ")
    );
    s.audit(
        AuditEntry {
            actor: Some(ACTOR.to_owned()),
            action: "public_leak".to_owned(),
            key_id: Some(key.id.clone()),
            detail: Some(detail),
        },
        now,
    )?;
    Ok((status == LookupStatus::Active).then_some(Outcome { key, places, done }))
}

/// `POST /v1/secret-scanning/github`
pub async fn alert(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Some(github) = state.github().cloned() else {
        return Err(ApiError::not_found(
            "endpoint: GitHub secret scanning is off (start offkey serve with --github-keys FILE)",
        ));
    };
    // The signature first: nothing of an unsigned body is read.
    let checked = {
        let github = Arc::clone(&github);
        let body = body.clone();
        tokio::task::spawn_blocking(move || verify(&github.keys.current(), &headers, &body))
            .await
            .map_err(|e| ApiError::internal(&e))?
    };
    if let Err(refusal) = checked {
        tracing::warn!(reason = refusal.detail(), "GitHub alert refused");
        state
            .blocking(move |s| {
                s.audit(
                    AuditEntry {
                        actor: Some(ACTOR.to_owned()),
                        action: "public_leak_refused".to_owned(),
                        key_id: None,
                        detail: Some(refusal.detail().to_owned()),
                    },
                    Utc::now(),
                )
            })
            .await?;
        return Err(refusal.error());
    }
    let alerts: Vec<Alert> = crate::server::json::parse(&headers_json(), &body)?;
    if alerts.is_empty() || alerts.len() > MAX_TOKENS {
        return Err(ApiError::bad_request(
            "invalid_batch",
            format!("send 1 to {MAX_TOKENS} tokens"),
        ));
    }

    // Group the reports by key hash: a batch may name one token at several URLs.
    let now = Utc::now();
    let mut hashes: Vec<String> = Vec::new();
    let mut reports: HashMap<String, Vec<ExposureReport>> = HashMap::new();
    let mut labels = Vec::with_capacity(alerts.len());
    for a in &alerts {
        let secret = Secret::parse(&a.token).ok();
        let hash = secret.as_ref().map(Secret::sha256);
        if let (Some(h), Some(secret)) = (&hash, &secret) {
            let place = location(&a.url, &a.source, secret);
            let entry = reports.entry(h.clone()).or_insert_with(|| {
                hashes.push(h.clone());
                Vec::new()
            });
            if !entry.iter().any(|r| r.location == place) {
                entry.push(ExposureReport {
                    sha256: h.clone(),
                    source: PUBLIC_LEAK_SOURCE.to_owned(),
                    location: place,
                    seen_at: now,
                });
            }
        }
        labels.push((sha256_hex(a.token.as_bytes()), scrub(&a.token_type), hash));
    }
    drop(alerts);

    let on_leak = github.on_leak;
    let _serial = github.serial.lock().await;
    let (known, outcomes) = state
        .blocking(move |s| {
            let hits = if hashes.is_empty() {
                Vec::new()
            } else {
                s.lookup(&hashes, now, ACTOR)?
            };
            let mut known = HashMap::new();
            let mut outcomes = Vec::new();
            for (h, hit) in hashes.into_iter().zip(hits) {
                let Some(key) = hit.key else { continue };
                known.insert(h.clone(), ());
                let mine = reports.remove(&h).unwrap_or_default();
                if let Some(o) = handle_key(s, on_leak, hit.status, key, mine, now)? {
                    outcomes.push(o);
                }
            }
            Ok((known, outcomes))
        })
        .await?;
    drop(_serial);

    let answer: Vec<Label> = labels
        .into_iter()
        .map(|(token_hash, token_type, hash)| Label {
            token_hash,
            token_type,
            label: if hash.is_some_and(|h| known.contains_key(&h)) {
                "true_positive"
            } else {
                "false_positive"
            },
        })
        .collect();
    let positives = answer.iter().filter(|l| l.label == "true_positive").count();
    tracing::info!(
        tokens = answer.len(),
        true_positives = positives,
        acted = outcomes.len(),
        "GitHub secret scanning alert"
    );
    if let Some(url) = github.notify_url.clone() {
        for o in outcomes {
            notify(github.http.clone(), url.clone(), &o);
        }
    }
    Ok(Json(
        serde_json::to_value(answer).map_err(|e| ApiError::internal(&e))?,
    ))
}

/// The body is parsed as JSON whatever its Content-Type: it is already proven to be GitHub's.
fn headers_json() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    h
}

/// Post `{"text"}` to the notify URL in the background; a failure is logged, never answered.
fn notify(http: reqwest::Client, url: reqwest::Url, o: &Outcome) {
    let text = format!(
        "offkey: the API key \"{}\" ({}, {}) was found public on GitHub at {} and {}.",
        o.key.memo,
        redacted(o.key.kind, &o.key.last4),
        o.key.id,
        o.places.join(", "),
        o.done
    );
    let key_id = o.key.id.clone();
    tokio::spawn(async move {
        let sent = http
            .post(url)
            .json(&serde_json::json!({ "text": text }))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        match sent {
            Ok(_) => tracing::debug!(key_id = %key_id, "leak notification sent"),
            // without_url: a webhook URL is itself a credential.
            Err(e) => {
                tracing::warn!(key_id = %key_id, error = %e.without_url(), "leak notification failed")
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::location;

    #[test]
    fn locations_are_scrubbed_and_bounded() {
        let key = crate::key::generate();
        let url = format!("https://github.com/o/r/blob/main/a.env?k={}", key.expose());
        let place = location(&url, "content", &key);
        assert!(!place.contains(key.expose()), "{place}");
        assert!(place.contains(&key.last4().to_owned()), "{place}");
        // Glued to other characters, where no key-shape scrubber would see it.
        let legacy = crate::key::Secret::parse("43daa2ac214ae4da6a592a611e7824e4").expect("legacy");
        let url = format!("https://gist.github.com/x/{}abc", legacy.expose());
        let place = location(&url, "gist_content", &legacy);
        assert_eq!(place, "https://gist.github.com/x/…24e4abc");
        assert_eq!(location("", "gist", &key), "github gist");
        assert_eq!(
            location(&"x".repeat(2000), "content", &key).chars().count(),
            500
        );
        assert_eq!(location("a\nb", "content", &key), "a b");
    }
}
