//! Unit tests of the request log's redaction.

use super::loggable_target;

const KEY: &str = "oc_live_0123456789ABCDEFGHIJKLMNOPQRSTUV1ggZdL";
const LEGACY: &str = "43daa2ac214ae4da6a592a611e7824e4";
const TOKEN: &str = "q0y3bC6n1iXq8m0Zf2Qp9uVw4Xr7Ts5Jk1Lm3No6Pq8";

#[test]
fn key_shaped_path_segments_are_not_logged() {
    let p = loggable_target(&format!("/api/v1/{KEY}/{LEGACY}"), None);
    assert_eq!(p, "/api/v1/…/…");
    assert_eq!(
        loggable_target("/v1/keys/key_abc", None),
        "/v1/keys/key_abc"
    );
    assert_eq!(
        loggable_target("/v1/keys/key_3fQx9a8B7c6D5e4F/rotate", Some("limit=10")),
        "/v1/keys/key_3fQx9a8B7c6D5e4F/rotate?limit=10"
    );
}

#[test]
fn secrets_anywhere_in_path_or_query_are_redacted() {
    let cases = [
        (format!("/x/prefix.{KEY}.suffix"), None),
        // Shorter than a whole-segment rule would catch, longer than a key-shaped segment.
        (format!("/x/k={LEGACY}"), None),
        (format!("/x/a={KEY}"), None),
        ("/v1/audit".to_owned(), Some(format!("key={KEY}&x=1"))),
        ("/v1/audit".to_owned(), Some(format!("token={TOKEN}"))),
        ("/v1/audit".to_owned(), Some(format!("k={LEGACY}"))),
        // Percent-encoded, so a per-segment match on the raw text would miss it.
        (
            "/v1/audit".to_owned(),
            Some(format!("k={}", KEY.replace('_', "%5F"))),
        ),
        (format!("/x/{}", LEGACY.replace('a', "%61")), None),
        (format!("/x/{KEY}x/y"), None),
    ];
    for (path, query) in cases {
        let logged = loggable_target(&path, query.as_deref());
        for secret in [KEY, LEGACY, TOKEN] {
            assert!(!logged.contains(secret), "{path} {query:?} -> {logged}");
            assert!(
                !logged.contains(&secret[..20]),
                "{path} {query:?} -> {logged}"
            );
        }
        assert!(logged.contains('…'), "{logged}");
    }
}

#[test]
fn control_characters_do_not_reach_the_log() {
    let logged = loggable_target("/x%0aforged%20line", None);
    assert_eq!(logged, "/x?forged line");
}
