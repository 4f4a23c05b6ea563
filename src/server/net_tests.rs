//! Unit tests of the network settings: public URL, Host and Origin matching, client address.

use super::*;
use axum::http::HeaderValue;

#[test]
fn public_url_is_an_origin() {
    let u = PublicUrl::parse("https://Keys.Example.com/").expect("origin");
    assert_eq!(u.origin(), "https://keys.example.com");
    assert!(u.is_https());
    assert!(u.host_matches("keys.example.com"));
    assert!(u.host_matches("KEYS.example.com:443"));
    assert!(!u.host_matches("keys.example.com:8443"));
    assert!(!u.host_matches("keys.example.com.evil.example"));
    assert!(!u.host_matches("evil.example"));
    assert!(u.origin_matches("https://keys.example.com"));
    assert!(!u.origin_matches("http://keys.example.com"));
    assert!(!u.origin_matches("https://keys.example.com:8443"));
    let p = PublicUrl::parse("http://127.0.0.1:8787").expect("origin");
    assert!(!p.is_https());
    assert!(p.host_matches("127.0.0.1:8787"));
    assert!(!p.host_matches("127.0.0.1"));
    let v6 = PublicUrl::parse("http://[::1]:8787").expect("origin");
    assert!(v6.host_matches("[::1]:8787"));
    for bad in [
        "keys.example.com",
        "ftp://keys.example.com",
        "https://keys.example.com/offkey",
        "https://keys.example.com/?a=b",
        "https://user@keys.example.com",
    ] {
        let e = PublicUrl::parse(bad).expect_err(bad).to_string();
        assert!(e.contains("--public-url"), "{e}");
    }
}

#[test]
fn cookie_is_host_prefixed_and_secure_only_behind_https() {
    let mut net = NetSettings::default();
    assert_eq!(net.cookie_name(), "offkey_session");
    assert!(!net.cookie_attributes().contains("Secure"));
    net.public_url = Some(PublicUrl::parse("http://keys.internal:8787").expect("url"));
    assert_eq!(net.cookie_name(), "offkey_session");
    net.public_url = Some(PublicUrl::parse("https://keys.example.com").expect("url"));
    assert_eq!(net.cookie_name(), "__Host-offkey_session");
    assert!(net.cookie_attributes().contains("Secure"));
    assert!(net.cookie_attributes().contains("Path=/"));
}

fn xff(values: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        h.append("x-forwarded-for", HeaderValue::from_str(v).expect("header"));
    }
    h
}

#[test]
fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
    let proxy: IpAddr = "10.0.0.5".parse().expect("ip");
    let stranger: IpAddr = "203.0.113.7".parse().expect("ip");
    let mut net = NetSettings::default();
    let h = xff(&["198.51.100.1, 192.0.2.9"]);
    // No trusted proxy: the peer, whatever the header says.
    assert_eq!(client_ip(Some(proxy), &h, &net), Some(proxy));
    net.trusted_proxies = vec!["10.0.0.0/8".parse().expect("cidr")];
    assert_eq!(client_ip(Some(stranger), &h, &net), Some(stranger));
    // From the proxy: the last entry (the one it added), not the client's claims before it.
    assert_eq!(
        client_ip(Some(proxy), &h, &net),
        Some("192.0.2.9".parse().expect("ip"))
    );
    let two = xff(&["198.51.100.1", "192.0.2.10"]);
    assert_eq!(
        client_ip(Some(proxy), &two, &net),
        Some("192.0.2.10".parse().expect("ip"))
    );
    assert_eq!(client_ip(Some(proxy), &xff(&["junk"]), &net), Some(proxy));
    assert_eq!(client_ip(Some(proxy), &HeaderMap::new(), &net), Some(proxy));
    assert_eq!(client_ip(None, &h, &net), None);
}

#[test]
fn host_check_only_with_a_public_url() {
    let mut h = HeaderMap::new();
    h.insert(header::HOST, HeaderValue::from_static("attacker.example"));
    let mut net = NetSettings::default();
    assert!(host_allowed(&h, &net));
    net.public_url = Some(PublicUrl::parse("https://keys.example.com").expect("url"));
    assert!(!host_allowed(&h, &net));
    assert!(!host_allowed(&HeaderMap::new(), &net));
    h.insert(header::HOST, HeaderValue::from_static("keys.example.com"));
    assert!(host_allowed(&h, &net));
}
