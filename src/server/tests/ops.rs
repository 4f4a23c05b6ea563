//! `GET /metrics`: counts by route template and status, sign-in failures, key uses and store
//! errors; never an id, key or token.

use super::*;

#[tokio::test]
async fn metrics_count_by_route_template_and_never_show_a_secret() {
    let f = fixture();
    let (key, id) = create(&f, "metrics").await;
    assert_eq!(account(&f, &key).await.status, StatusCode::OK);
    assert_eq!(account(&f, &key).await.status, StatusCode::OK);
    let a = call(
        &f.app,
        Method::DELETE,
        &format!("/v1/keys/{id}"),
        Auth::Bearer(&f.admin),
        None,
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert_eq!(account(&f, &key).await.status, StatusCode::UNAUTHORIZED);
    let a = call(
        &f.app,
        Method::POST,
        "/v1/session",
        Auth::None,
        Some(json!({"email": "admin@example.com", "password": "wrong password here"})),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);

    let m = call(&f.app, Method::GET, "/metrics", Auth::None, None).await;
    assert_eq!(m.status, StatusCode::OK, "{}", m.text);
    assert!(
        m.headers[header::CONTENT_TYPE]
            .to_str()
            .is_ok_and(|v| v.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        m.headers
    );
    let t = &m.text;
    for line in [
        r#"offkey_http_requests_total{method="POST",route="/v1/keys",status="201"} 1"#,
        r#"offkey_http_requests_total{method="GET",route="/api/v1/account",status="200"} 2"#,
        r#"offkey_http_requests_total{method="GET",route="/api/v1/account",status="401"} 1"#,
        r#"offkey_http_requests_total{method="DELETE",route="/v1/keys/{id}",status="204"} 1"#,
        r#"offkey_http_requests_total{method="POST",route="/v1/session",status="401"} 1"#,
        "offkey_key_uses_total 2",
        "offkey_sign_in_failures_total 1",
        "offkey_store_errors_total 0",
    ] {
        assert!(t.lines().any(|l| l == line), "no line {line:?} in:\n{t}");
    }
    assert!(
        t.contains("offkey_http_request_duration_seconds_bucket{"),
        "{t}"
    );
    for secret in [&key, &id, &f.admin] {
        assert!(
            !t.contains(secret.as_str()),
            "a secret or id in the metrics"
        );
    }
}

super::also_on_postgres! {
    metrics_count_by_route_template_and_never_show_a_secret,
}
