//! The key service over HTTP (spec/api.md): sessions and roles, API keys, lookups, rotation,
//! exposures, the audit log, the integration API and the embedded Settings → API Keys page.
//! No SQL here: every change goes through [`crate::store::Store`].
//!
//! [`router`] builds the whole app from an [`AppState`] (tests drive it with
//! `tower::ServiceExt::oneshot`); [`serve`] runs it on a listener until a shutdown signal, letting
//! requests in flight finish.

pub mod auth;
pub mod error;
pub mod json;
pub mod middleware;
pub mod net;
pub mod password;
pub mod ratelimit;
pub mod routes;
pub mod wire;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, post};
use tower_http::limit::RequestBodyLimitLayer;

use crate::store::Store;
pub use error::ApiError;
use net::{NetSettings, ServeOptions};
use ratelimit::{MemoryLimiter, SignInLimiter};

/// How long a session lasts by default: 12 hours.
pub const SESSION_TTL: chrono::Duration = chrono::Duration::hours(12);

/// What every handler shares: the store, the sign-in limiter, the cap on password checks and
/// settings.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    store: Arc<dyn Store>,
    limiter: Arc<dyn SignInLimiter>,
    password_checks: Arc<tokio::sync::Semaphore>,
    password_threads: Option<Arc<rayon::ThreadPool>>,
    net: NetSettings,
    session_ttl: chrono::Duration,
    account_name: String,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("session_ttl", &self.inner.session_ttl)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State over a store, with the default session lifetime.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self::with_session_ttl(store, SESSION_TTL)
    }

    /// State with another session lifetime.
    pub fn with_session_ttl(store: Arc<dyn Store>, session_ttl: chrono::Duration) -> Self {
        AppState {
            inner: Arc::new(Inner {
                store,
                limiter: Arc::new(MemoryLimiter::default()),
                password_checks: Arc::new(tokio::sync::Semaphore::new(
                    net::DEFAULT_PASSWORD_CHECKS,
                )),
                password_threads: password_threads(net::DEFAULT_PASSWORD_CHECKS),
                net: NetSettings::default(),
                session_ttl,
                account_name: "Offset Commerce demo account".to_owned(),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The same state with these network settings (and a password-check cap to match).
    pub fn with_net(self, net: NetSettings) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        inner.password_checks =
            Arc::new(tokio::sync::Semaphore::new(net.max_password_checks.max(1)));
        inner.password_threads = password_threads(net.max_password_checks.max(1));
        inner.net = net;
        AppState {
            inner: Arc::new(inner),
        }
    }

    /// The same state with another sign-in limiter.
    pub fn with_limiter(self, limiter: Arc<dyn SignInLimiter>) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        inner.limiter = limiter;
        AppState {
            inner: Arc::new(inner),
        }
    }

    /// The sign-in limiter.
    pub fn limiter(&self) -> &Arc<dyn SignInLimiter> {
        &self.inner.limiter
    }

    /// Permits for password checks (argon2 takes 19 MiB each, so they are bounded).
    pub fn password_checks(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.inner.password_checks
    }

    /// Run a password check (argon2) on the password threads, one per permit of
    /// [`Self::password_checks`]: a few long-lived threads reuse their allocator arenas, where
    /// checks on ever-new blocking-pool threads left 19 MiB behind in each (a 200-sign-in burst
    /// peaked at 174 MB with 3 permits).
    pub async fn check_password<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        match &self.inner.password_threads {
            Some(pool) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                pool.spawn(move || {
                    let _ = tx.send(f());
                });
                rx.await.map_err(|e| ApiError::internal(&e))
            }
            None => tokio::task::spawn_blocking(f)
                .await
                .map_err(|e| ApiError::internal(&e)),
        }
    }

    /// The network settings.
    pub fn net(&self) -> &NetSettings {
        &self.inner.net
    }

    /// How long a new session lasts.
    pub fn session_ttl(&self) -> chrono::Duration {
        self.inner.session_ttl
    }

    /// The integration API's account name.
    pub fn account_name(&self) -> &str {
        &self.inner.account_name
    }

    /// Run a store operation on the blocking pool (SQLite calls block; `synchronous=FULL`
    /// commits wait for the disk).
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> crate::store::Result<T> + Send + 'static,
    {
        let store = Arc::clone(&self.inner.store);
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| ApiError::internal(&e))?
            .map_err(ApiError::from)
    }
}

/// `n` threads for password checks, or none (checks then go to the blocking pool) if the
/// system refuses threads.
fn password_threads(n: usize) -> Option<Arc<rayon::ThreadPool>> {
    match rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("offkey-password-{i}"))
        .build()
    {
        Ok(pool) => Some(Arc::new(pool)),
        Err(e) => {
            tracing::warn!(error = %e, "no password-check threads; using the blocking pool");
            None
        }
    }
}

/// The whole app: API, integration API, pages and every layer.
pub fn router(state: AppState) -> Router {
    use routes::{integration, keys, pages, session};
    // Bodies are limited to 64 KiB, except the two batch endpoints: 1000 hashes are about
    // 67 KB of JSON, 1000 exposures with their locations up to about 600 KB.
    let small = Router::new()
        .route("/healthz", get(integration::healthz))
        .route("/api/v1/account", get(integration::account))
        .route("/v1/session", post(session::login).delete(session::logout))
        .route("/v1/me", get(session::me))
        .route("/v1/keys", get(keys::list).post(keys::create))
        .route("/v1/keys/{id}", delete(keys::delete))
        .route("/v1/keys/{id}/rotate", post(keys::rotate))
        .route("/v1/audit", get(keys::audit))
        .route("/", get(pages::root))
        .route("/login", get(pages::login))
        .route("/settings/api-keys", get(pages::api_keys))
        .route("/assets/app.js", get(pages::app_js))
        .route("/assets/app.css", get(pages::app_css))
        .layer(RequestBodyLimitLayer::new(json::BODY_LIMIT));
    let lookup = Router::new()
        .route("/v1/keys/lookup", post(keys::lookup))
        .layer(RequestBodyLimitLayer::new(json::LOOKUP_BODY_LIMIT));
    let exposures = Router::new()
        .route("/v1/keys/exposures", post(keys::exposures))
        .layer(RequestBodyLimitLayer::new(json::EXPOSURES_BODY_LIMIT));
    small
        .merge(lookup)
        .merge(exposures)
        .with_state(state.clone())
        // Layers run outside-in from the last added: log → headers → JSON errors → host →
        // origin.
        .layer(axum::middleware::from_fn(middleware::same_origin))
        .layer(axum::middleware::from_fn_with_state(
            state,
            middleware::public_host,
        ))
        .layer(axum::middleware::from_fn(middleware::json_errors))
        .layer(axum::middleware::from_fn(middleware::headers))
        .layer(axum::middleware::from_fn(middleware::log))
}

/// Serve `state` on `listener` (plain HTTP, default timeouts) until `shutdown` completes;
/// requests in flight finish first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, ServeOptions::default(), shutdown).await
}

/// Serve `state` on `listener` with these options (TLS, timeouts) until `shutdown` completes;
/// requests in flight finish first.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    net::serve_connections(listener, router(state), options, shutdown).await
}

#[cfg(test)]
mod tests;
