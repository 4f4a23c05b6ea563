//! The key service over HTTP (spec/api.md): sessions and roles, API keys, lookups, rotation,
//! exposures, the audit log, the integration API and the embedded Settings → API Keys page.
//! No SQL here: every change goes through [`crate::store::Store`].
//!
//! [`router`] builds the whole app from an [`AppState`] (tests drive it with
//! `tower::ServiceExt::oneshot`); [`serve`] runs it on a listener until a shutdown signal, letting
//! requests in flight finish.

pub mod auth;
pub mod clock;
pub mod error;
pub mod json;
pub mod metrics;
pub mod middleware;
pub mod net;
pub mod password;
pub mod ratelimit;
pub mod routes;
pub mod wire;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::response::Response;
use tower_http::limit::RequestBodyLimitLayer;

use crate::store::Store;
use clock::{Clock, SystemClock};
pub use error::ApiError;
use net::{NetSettings, ServeOptions};
use ratelimit::{SignInLimiter, StoreLimiter};

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
    clock: Arc<dyn Clock>,
    metrics: Arc<metrics::Metrics>,
    limiter: Arc<dyn SignInLimiter>,
    password_checks: Arc<tokio::sync::Semaphore>,
    password_threads: Option<Arc<rayon::ThreadPool>>,
    net: NetSettings,
    session_ttl: chrono::Duration,
    account_name: String,
    github: Option<Arc<routes::github::GithubAlerts>>,
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
        Self::with_clock(store, session_ttl, Arc::new(SystemClock))
    }

    /// State with another clock (tests move a [`clock::ManualClock`] instead of sleeping).
    pub fn with_clock(
        store: Arc<dyn Store>,
        session_ttl: chrono::Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        AppState {
            inner: Arc::new(Inner {
                limiter: Arc::new(StoreLimiter::new(Arc::clone(&store))),
                store,
                clock,
                metrics: Arc::default(),
                password_checks: Arc::new(tokio::sync::Semaphore::new(
                    net::DEFAULT_PASSWORD_CHECKS,
                )),
                password_threads: password_threads(net::DEFAULT_PASSWORD_CHECKS),
                net: NetSettings::default(),
                session_ttl,
                account_name: "Offset Commerce demo account".to_owned(),
                github: None,
            }),
        }
    }

    /// Enable `POST /v1/secret-scanning/github` (before the state is shared).
    pub fn with_github(mut self, github: routes::github::GithubAlerts) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("AppState is configured before it is cloned")
            .github = Some(Arc::new(github));
        self
    }

    /// The GitHub secret scanning settings, when enabled.
    pub fn github(&self) -> Option<&Arc<routes::github::GithubAlerts>> {
        self.inner.github.as_ref()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The service's counters (`GET /metrics`).
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.inner.metrics
    }

    /// The service's time now.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.clock.now()
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
        let answer = tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| ApiError::internal(&e))?;
        if answer.is_err() {
            self.metrics().store_error();
        }
        answer.map_err(ApiError::from)
    }
}

/// Who may call a route (spec/api.md, "Who may do what").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health, sign-in, the pages and their assets.
    Anonymous,
    /// Any signed-in team member (a session token or the session cookie).
    Member,
    /// A signed-in admin.
    Admin,
    /// An integration, by API key (`/api/v1/` only).
    Integration,
    /// Anyone whose request carries a valid signature (GitHub's secret scanning alerts).
    Signed,
    /// The operator: from loopback or `--metrics-from` ranges, whoever they sign in as.
    Operator,
}

/// One route of the app: what it is and who may call it. [`router`] is built from
/// [`routes`] alone, so the authorization test, which walks the same table, covers every
/// route there is.
pub struct Route {
    /// The method.
    pub method: axum::http::Method,
    /// The path, with `{id}` for a key id.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// The largest body it takes.
    pub body_limit: usize,
    handler: axum::routing::MethodRouter<AppState>,
}

fn route<H, T>(
    method: axum::http::Method,
    path: &'static str,
    access: Access,
    body_limit: usize,
    handler: H,
) -> Route
where
    H: axum::handler::Handler<T, AppState>,
    T: 'static,
{
    let filter =
        axum::routing::MethodFilter::try_from(method.clone()).expect("routes use standard methods");
    Route {
        method,
        path,
        access,
        body_limit,
        handler: axum::routing::on(filter, handler),
    }
}

/// Every route of the app.
pub fn routes() -> Vec<Route> {
    use Access::{Admin, Anonymous, Integration, Member, Operator, Signed};
    use axum::http::Method;
    use json::{BODY_LIMIT, EXPOSURES_BODY_LIMIT, LOOKUP_BODY_LIMIT};
    use routes::{integration, keys, pages, session};
    vec![
        route(
            Method::GET,
            "/healthz",
            Anonymous,
            BODY_LIMIT,
            integration::healthz,
        ),
        route(
            Method::GET,
            "/api/v1/account",
            Integration,
            BODY_LIMIT,
            integration::account,
        ),
        route(
            Method::POST,
            "/v1/session",
            Anonymous,
            BODY_LIMIT,
            session::login,
        ),
        route(
            Method::DELETE,
            "/v1/session",
            Member,
            BODY_LIMIT,
            session::logout,
        ),
        route(
            Method::DELETE,
            "/v1/sessions",
            Member,
            BODY_LIMIT,
            session::logout_everywhere,
        ),
        route(Method::GET, "/v1/me", Member, BODY_LIMIT, session::me),
        route(Method::GET, "/v1/keys", Admin, BODY_LIMIT, keys::list),
        route(Method::POST, "/v1/keys", Admin, BODY_LIMIT, keys::create),
        route(
            Method::DELETE,
            "/v1/keys/{id}",
            Admin,
            BODY_LIMIT,
            keys::delete,
        ),
        route(
            Method::POST,
            "/v1/keys/{id}/rotate",
            Admin,
            BODY_LIMIT,
            keys::rotate,
        ),
        route(
            Method::POST,
            "/v1/keys/lookup",
            Admin,
            LOOKUP_BODY_LIMIT,
            keys::lookup,
        ),
        route(
            Method::POST,
            "/v1/keys/exposures",
            Admin,
            EXPOSURES_BODY_LIMIT,
            keys::exposures,
        ),
        route(Method::GET, "/v1/audit", Admin, BODY_LIMIT, keys::audit),
        route(
            Method::GET,
            "/metrics",
            Operator,
            BODY_LIMIT,
            metrics::scrape,
        ),
        route(
            Method::POST,
            "/v1/secret-scanning/github",
            Signed,
            routes::github::BODY_LIMIT,
            routes::github::alert,
        ),
        route(Method::GET, "/", Anonymous, BODY_LIMIT, pages::root),
        route(Method::GET, "/login", Anonymous, BODY_LIMIT, pages::login),
        route(
            Method::GET,
            "/settings/api-keys",
            Anonymous,
            BODY_LIMIT,
            pages::api_keys,
        ),
        route(
            Method::GET,
            "/assets/app.js",
            Anonymous,
            BODY_LIMIT,
            pages::app_js,
        ),
        route(
            Method::GET,
            "/assets/app.css",
            Anonymous,
            BODY_LIMIT,
            pages::app_css,
        ),
    ]
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

/// A 413 that names the route's own limit (64 KiB, 256 KiB or 1 MiB).
fn too_large_names(res: Response, limit: usize) -> Response {
    if res.status() != axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        return res;
    }
    let size = if limit % (1024 * 1024) == 0 {
        format!("{} MiB", limit / (1024 * 1024))
    } else {
        format!("{} KiB", limit / 1024)
    };
    axum::response::IntoResponse::into_response(ApiError::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the request body is over {size}, the limit of this endpoint"),
    ))
}

/// The whole app: API, integration API, pages and every layer.
pub fn router(state: AppState) -> Router {
    let mut app = Router::new();
    for r in routes() {
        // Routes of one path merge; each keeps its own body limit, and its 413 names it.
        let limit = r.body_limit;
        app = app.route(
            r.path,
            r.handler.layer(RequestBodyLimitLayer::new(limit)).layer(
                axum::middleware::map_response(move |res: Response| async move {
                    too_large_names(res, limit)
                }),
            ),
        );
    }
    app.with_state(state.clone())
        // Layers run outside-in from the last added: log → headers → JSON errors → host →
        // origin.
        .layer(axum::middleware::from_fn(middleware::same_origin))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::public_host,
        ))
        .layer(axum::middleware::from_fn(middleware::json_errors))
        .layer(axum::middleware::from_fn(middleware::headers))
        .layer(axum::middleware::from_fn_with_state(
            state,
            middleware::metrics,
        ))
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
