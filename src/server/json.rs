//! JSON request bodies: [`ApiJson`] and [`MaybeJson`] read at most 64 KiB and answer every
//! problem in the API's error shape (axum's own rejections are plain text). Parser messages are
//! scrubbed of quoted input, so a key sent in the wrong field is never echoed back.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The most a request body may carry (spec/api.md: 413 over 64 KiB) ...
pub const BODY_LIMIT: usize = 64 * 1024;
/// ... except a lookup, whose 1000 hashes alone are about 67 KB of JSON ...
pub const LOOKUP_BODY_LIMIT: usize = 256 * 1024;
/// ... and an exposure report (up to 1000 entries; the client splits long ones further).
pub const EXPOSURES_BODY_LIMIT: usize = 256 * 1024;
/// The largest body any route takes (GitHub's secret scanning alerts: 1 MiB).
pub const MAX_BODY_LIMIT: usize = 1024 * 1024;

/// A required JSON body.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// An optional JSON body: an empty body reads as `None`.
#[derive(Debug)]
pub struct MaybeJson<T>(pub Option<T>);

async fn read(req: Request) -> Result<(HeaderMap, Bytes), ApiError> {
    let (parts, body) = req.into_parts();
    // The route's RequestBodyLimitLayer sets the real limit; this is the backstop.
    let bytes = axum::body::to_bytes(body, MAX_BODY_LIMIT)
        .await
        .map_err(|e| {
            if is_timeout(&e) {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    "the request body did not arrive in time",
                )
            } else {
                ApiError::too_large()
            }
        })?;
    Ok((parts.headers, bytes))
}

/// Whether reading the body failed because the server's body timeout ran out.
fn is_timeout(e: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            let m = m.trim();
            m.eq_ignore_ascii_case("application/json")
                || (m.len() > 5 && m[..m.len() - 5].contains('/') && m.ends_with("+json"))
        })
}

/// Replace everything between quotes or backticks: serde names the offending input there.
fn scrub(message: &str) -> String {
    if message.starts_with("missing field") {
        return message.to_owned();
    }
    let mut out = String::with_capacity(message.len());
    let mut inside: Option<char> = None;
    for c in message.chars() {
        match inside {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                inside = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if c == '"' || c == '`' {
                    inside = Some(c);
                }
            }
        }
    }
    out
}

pub(crate) fn parse<T: DeserializeOwned>(headers: &HeaderMap, bytes: &[u8]) -> Result<T, ApiError> {
    if !is_json(headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Data => ApiError::bad_request(
                "invalid_body",
                format!("the JSON body does not fit: {}", scrub(&e.to_string())),
            ),
            Category::Syntax | Category::Eof | Category::Io => ApiError::bad_request(
                "malformed_json",
                format!("the body is not valid JSON: {}", scrub(&e.to_string())),
            ),
        }
    })
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let (headers, bytes) = read(req).await?;
        parse(&headers, &bytes).map(ApiJson)
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for MaybeJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let (headers, bytes) = read(req).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(MaybeJson(None));
        }
        parse(&headers, &bytes).map(|v| MaybeJson(Some(v)))
    }
}

#[cfg(test)]
mod tests {
    use super::scrub;

    #[test]
    fn scrub_hides_quoted_input() {
        let m = "invalid type: string \"oc_live_secret\", expected u64 at line 1 column 9";
        let s = scrub(m);
        assert!(!s.contains("oc_live_secret"), "{s}");
        assert_eq!(scrub("missing field `memo`"), "missing field `memo`");
        assert!(!scrub("unknown variant `oc_live_x`, expected one").contains("oc_live_x"));
    }
}
