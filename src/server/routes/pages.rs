//! The web page: static files embedded in the binary (written in `src/server/web/`).

use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};

const LOGIN_HTML: &str = include_str!("../web/login.html");
const API_KEYS_HTML: &str = include_str!("../web/api-keys.html");
const APP_JS: &str = include_str!("../web/app.js");
const APP_CSS: &str = include_str!("../web/app.css");

fn file(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// `GET /` → the key list.
pub async fn root() -> Redirect {
    Redirect::to("/settings/api-keys")
}

/// `GET /login`
pub async fn login() -> Response {
    file("text/html; charset=utf-8", LOGIN_HTML)
}

/// `GET /settings/api-keys`
pub async fn api_keys() -> Response {
    file("text/html; charset=utf-8", API_KEYS_HTML)
}

/// `GET /assets/app.js`
pub async fn app_js() -> Response {
    file("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /assets/app.css`
pub async fn app_css() -> Response {
    file("text/css; charset=utf-8", APP_CSS)
}
