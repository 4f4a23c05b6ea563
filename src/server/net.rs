//! The service on a network: [`NetSettings`] (trusted proxies, the public URL, the cap on
//! concurrent password checks), the client address a request is limited under
//! ([`client_ip`]), the `Host` check against the public URL, and the connection loop
//! ([`serve_connections`]): plain HTTP or TLS (rustls, PEM files), with a header-read timeout
//! (which also closes idle keep-alive connections), a TLS handshake timeout and a body timeout.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use thiserror::Error;

/// Errors of the network settings.
#[derive(Debug, Error)]
pub enum NetError {
    /// `--public-url` is not an absolute http(s) URL of a host.
    #[error("--public-url {url:?}: {why} (expected an origin such as https://keys.example.com)")]
    PublicUrl {
        /// What was given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// A TLS file could not be read or used.
    #[error("TLS {what} {path}: {message}")]
    Tls {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

/// The origin the service is reached at (`--public-url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    origin: String,
    host: String,
    port: u16,
    https: bool,
}

impl PublicUrl {
    /// Parse an origin such as `https://keys.example.com` (a trailing `/` is fine; a path,
    /// query, fragment or user name is not).
    pub fn parse(s: &str) -> Result<PublicUrl, NetError> {
        let err = |why: &str| NetError::PublicUrl {
            url: s.to_owned(),
            why: why.to_owned(),
        };
        let url = reqwest::Url::parse(s.trim()).map_err(|e| err(&e.to_string()))?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(err("the scheme must be http or https")),
        };
        let host = url.host_str().ok_or_else(|| err("no host"))?.to_owned();
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(err("only an origin, without a path, query or fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(err("no user name or password in it"));
        }
        let port = url.port_or_known_default().ok_or_else(|| err("no port"))?;
        Ok(PublicUrl {
            origin: url.origin().ascii_serialization(),
            host,
            port,
            https,
        })
    }

    /// `scheme://host[:port]`, as a browser sends it in `Origin`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether it is `https` (the cookie is then `__Host-` and `Secure`).
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// Whether a `Host` header names this URL's host and port.
    pub fn host_matches(&self, host_header: &str) -> bool {
        let h = host_header.trim();
        let (host, port) = if let Some(rest) = h.strip_prefix('[') {
            // [v6]:port
            let Some((inner, after)) = rest.split_once(']') else {
                return false;
            };
            (format!("[{inner}]"), after.strip_prefix(':'))
        } else {
            match h.rsplit_once(':') {
                Some((host, port)) => (host.to_owned(), Some(port)),
                None => (h.to_owned(), None),
            }
        };
        let port_ok = match port {
            None => self.port == if self.https { 443 } else { 80 },
            Some(p) => p.parse::<u16>().is_ok_and(|p| p == self.port),
        };
        port_ok && host.eq_ignore_ascii_case(&self.host)
    }

    /// Whether an `Origin` header is this URL's origin.
    pub fn origin_matches(&self, origin: &str) -> bool {
        origin.trim().eq_ignore_ascii_case(&self.origin)
    }
}

/// How many password checks may run at once by default (argon2 takes 19 MiB each).
pub const DEFAULT_PASSWORD_CHECKS: usize = 3;

/// Network settings of the service.
#[derive(Debug, Clone)]
pub struct NetSettings {
    /// Peers whose `X-Forwarded-For` is believed (`--trusted-proxy`).
    pub trusted_proxies: Vec<IpNet>,
    /// Where the service is reached (`--public-url`).
    pub public_url: Option<PublicUrl>,
    /// Password checks allowed at once; beyond them sign-ins are answered 503.
    pub max_password_checks: usize,
    /// Besides loopback, who may read `GET /metrics` (`--metrics-from`).
    pub metrics_from: Vec<IpNet>,
}

impl Default for NetSettings {
    fn default() -> Self {
        NetSettings {
            trusted_proxies: Vec::new(),
            public_url: None,
            max_password_checks: DEFAULT_PASSWORD_CHECKS,
            metrics_from: Vec::new(),
        }
    }
}

impl NetSettings {
    /// The session cookie's name: `__Host-offkey_session` behind an https public URL (the
    /// browser then sends it only over https and only to this host), else `offkey_session`.
    pub fn cookie_name(&self) -> &'static str {
        if self.public_url.as_ref().is_some_and(PublicUrl::is_https) {
            "__Host-offkey_session"
        } else {
            "offkey_session"
        }
    }

    /// The cookie's attributes after `name=value`.
    pub fn cookie_attributes(&self) -> &'static str {
        if self.public_url.as_ref().is_some_and(PublicUrl::is_https) {
            "HttpOnly; Secure; SameSite=Strict; Path=/"
        } else {
            "HttpOnly; SameSite=Strict; Path=/"
        }
    }
}

/// The client's address: the peer's, or, when the peer is a trusted proxy, the last entry of
/// the last `X-Forwarded-For` header (the one that proxy added; earlier entries are whatever the
/// client claimed). `None` without a socket (tests driving the router directly).
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, net: &NetSettings) -> Option<IpAddr> {
    let peer = peer?;
    if !net.trusted_proxies.iter().any(|n| n.contains(&peer)) {
        return Some(peer);
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(str::trim)
        .and_then(|s| {
            s.parse::<IpAddr>()
                .ok()
                .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        });
    // A trusted proxy that sent no usable entry: its own address (stricter, never looser).
    Some(forwarded.unwrap_or(peer))
}

/// Whether the request's `Host` is the public URL's (always true without one).
pub fn host_allowed(headers: &HeaderMap, net: &NetSettings) -> bool {
    let Some(url) = &net.public_url else {
        return true;
    };
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| url.host_matches(h))
}

/// Load a rustls server configuration from PEM files (certificate chain, private key).
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, NetError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| NetError::Tls {
            what: "certificate",
            path: cert.display().to_string(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(NetError::Tls {
            what: "certificate",
            path: cert.display().to_string(),
            message: "no CERTIFICATE block in the file".into(),
        });
    }
    // The message of a key error is about the PEM structure, never the key's bytes.
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| NetError::Tls {
        what: "private key",
        path: key.display().to_string(),
        message: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, private))
        .map_err(|e| NetError::Tls {
            what: "certificate",
            path: cert.display().to_string(),
            message: e.to_string(),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// How connections are served.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// TLS, or plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Time allowed for a request's headers (and for the TLS handshake); an idle keep-alive
    /// connection is closed after it too.
    pub header_timeout: Duration,
    /// Time allowed for a request's body.
    pub body_timeout: Duration,
}

/// Default time for a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time for a request's body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            tls: None,
            header_timeout: HEADER_TIMEOUT,
            body_timeout: BODY_TIMEOUT,
        }
    }
}

/// Accept connections on `listener` and serve `app` on each until `shutdown`; then stop
/// accepting and let the connections finish their requests in flight.
pub async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        options.body_timeout,
    ));
    let acceptor = options.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service =
            hyper_util::service::TowerToHyperService::new(tower::ServiceExt::map_request(
                app.clone(),
                move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req
                },
            ));
        let builder = builder.clone();
        let header_timeout = options.header_timeout;
        match &acceptor {
            None => {
                let conn = builder.serve_connection(TokioIo::new(tcp), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let tls = match tokio::time::timeout(header_timeout, acceptor.accept(tcp)).await
                    {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            return;
                        }
                    };
                    let conn = builder.serve_connection(TokioIo::new(tls), service);
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
        }
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

#[cfg(test)]
#[path = "net_tests.rs"]
mod tests;
