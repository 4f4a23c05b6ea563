//! Layers around every route: the request log (method, path and query with anything key- or
//! token-shaped redacted, status, latency; never headers or body), the `Host` check against
//! `--public-url`, the security headers, `Cache-Control: no-store` on API answers, the `Origin`
//! check on state changes, and the rewrite of bare error answers (from routing or the body
//! limit) into the API's JSON error shape.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, code_for_status};
use super::{AppState, net};

/// The Content-Security-Policy of every answer.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Runs of these characters at least [`SECRET_RUN`] long are what keys (46 characters, or 32 hex
/// for legacy keys) and session tokens (43 base64url characters) look like.
fn secret_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// The shortest run of [`secret_char`]s taken for a secret: a legacy key's 32 hex characters.
/// Ids (`key_` and 16 characters) and ordinary words stay readable.
const SECRET_RUN: usize = 32;

/// A path and query fit for the log: percent-decoded (so an encoded key is seen too), every
/// key- or token-shaped run anywhere in it (not only whole segments) shown as `…`, and control
/// characters as `?`.
fn loggable_target(path: &str, query: Option<&str>) -> String {
    let mut raw = path.to_owned();
    if let Some(q) = query {
        raw.push('?');
        raw.push_str(q);
    }
    // `+` in a query is a space to a form decoder; it is not a secret character either way.
    let decoded = percent_encoding::percent_decode_str(&raw).decode_utf8_lossy();
    let mut out = String::with_capacity(decoded.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= SECRET_RUN {
            out.push('…');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in decoded.chars() {
        if secret_char(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(if c.is_control() { '?' } else { c });
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Log each request: method, path, status, latency.
pub async fn log(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = loggable_target(req.uri().path(), req.uri().query());
    let res = next.run(req).await;
    tracing::info!(
        method = %method,
        path = %path,
        status = res.status().as_u16(),
        latency_us = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    res
}

/// Count every answer by method, route template and status (`GET /metrics`).
pub async fn metrics(
    axum::extract::State(state): axum::extract::State<super::AppState>,
    req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let method = match *req.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        _ => "OTHER",
    };
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let res = next.run(req).await;
    state.metrics().observe(
        method,
        &route,
        res.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    res
}

/// Security headers on every answer; `no-store` on everything but the static assets.
pub async fn headers(req: Request, next: Next) -> Response {
    let cacheable = req.uri().path().starts_with("/assets/");
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let cache = if cacheable { "no-cache" } else { "no-store" };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    res
}

/// Refuse a state change whose `Origin` is present and is not this server (by its `Host`).
pub async fn same_origin(req: Request, next: Next) -> Response {
    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            let origin = origin.to_str().unwrap_or("");
            let ours = !host.is_empty()
                && origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"))
                    .is_some_and(|o| o.eq_ignore_ascii_case(host));
            if !ours {
                return ApiError::csrf("cross-origin request refused").into_response();
            }
        }
    }
    next.run(req).await
}

/// With `--public-url`, refuse (421) a request whose `Host` is not that URL's: a page on another
/// name resolving to this server (DNS rebinding) gets nothing. `/healthz` stays open to load
/// balancers that probe by address.
pub async fn public_host(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.uri().path() != "/healthz" && !net::host_allowed(req.headers(), state.net()) {
        return ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "misdirected_request",
            "this server answers only at its public URL (the Host header names another)",
        )
        .into_response();
    }
    next.run(req).await
}

/// Turn an error answer without a JSON body into the API's error shape.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return res;
    }
    let code = code_for_status(status);
    let message = match code {
        "not_found" => "no such page or endpoint".to_owned(),
        "method_not_allowed" => "this method is not allowed here".to_owned(),
        "body_too_large" => "the request body is over 64 KiB".to_owned(),
        _ => status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_owned(),
    };
    let mut out = ApiError::new(status, code, message).into_response();
    // Keep headers like Allow that tell the caller what to do instead.
    for (name, value) in res.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
#[path = "middleware_tests.rs"]
mod tests;
