//! Layers around every route: the request log (method, path, status, latency; never headers,
//! query or body), the security headers, `Cache-Control: no-store` on API answers, the `Origin`
//! check on state changes, and the rewrite of bare error answers (from routing or the body
//! limit) into the API's JSON error shape.

use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, code_for_status};

/// The Content-Security-Policy of every answer.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// A path fit for the log: any segment shaped like a key is shown redacted.
fn loggable_path(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            let b = seg.as_bytes();
            if crate::key::is_current(b) || crate::key::is_legacy_shape(b) || seg.len() > 40 {
                "…".to_owned()
            } else {
                seg.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Log each request: method, path, status, latency.
pub async fn log(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = loggable_path(req.uri().path());
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
mod tests {
    #[test]
    fn key_shaped_path_segments_are_not_logged() {
        let p = super::loggable_path(
            "/api/v1/oc_live_0123456789ABCDEFGHIJKLMNOPQRSTUV1ggZdL/43daa2ac214ae4da6a592a611e7824e4",
        );
        assert_eq!(p, "/api/v1/…/…");
        assert_eq!(super::loggable_path("/v1/keys/key_abc"), "/v1/keys/key_abc");
    }
}
