//! The database URL: `postgres://user[:password]@host[:port]/dbname[?options]`, with libpq's
//! TLS options read here (the driver knows only `disable`, `prefer` and `require`):
//!
//! - `sslmode=disable` (or no `sslmode`): plain TCP, for a database on loopback or a private
//!   network.
//! - `sslmode=require`, `verify-ca`, `verify-full`: TLS through rustls, and the server's
//!   certificate is always verified, chain and host name, against `sslrootcert=FILE` (PEM) when
//!   given, else the Mozilla roots (webpki-roots). Stricter than libpq's `require`, which
//!   encrypts without checking who answers: a TLS connection open to anyone in the middle
//!   would carry every key hash and password hash in the clear to them.
//! - `sslmode=prefer` / `allow` are refused: they fall back to plain TCP silently.
//!
//! Errors never quote the URL (it can hold a password).

use std::path::PathBuf;
use std::sync::Arc;

use postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::StoreError;

/// How to reach the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// Plain TCP.
    Off,
    /// TLS, certificate and host name verified.
    Verify,
}

/// A parsed database URL.
#[derive(Clone)]
pub struct DbUrl {
    /// The driver's configuration (TLS mode set from `sslmode`).
    pub config: postgres::Config,
    /// The same for the async client of the integration API's key check.
    pub async_config: tokio_postgres::Config,
    /// TLS or not.
    pub tls: Tls,
    /// `sslrootcert`: PEM file of the CA to trust instead of the Mozilla roots.
    pub root_cert: Option<PathBuf>,
}

impl std::fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("DbUrl")
            .field("target", &self.target())
            .field("tls", &self.tls)
            .finish()
    }
}

fn bad(msg: impl Into<String>) -> StoreError {
    StoreError::BadUrl(msg.into())
}

impl DbUrl {
    /// Parse a `postgres://` or `postgresql://` URL.
    pub fn parse(url: &str) -> Result<DbUrl, StoreError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(bad(
                "expected postgres://user@host:port/dbname (the URL does not start with postgres://)",
            ));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        let mut mode = None;
        let mut root_cert = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_encoding::percent_decode_str(v)
                .decode_utf8()
                .map_err(|_| bad(format!("the value of {k} is not UTF-8")))?
                .into_owned();
            match k {
                "sslmode" => mode = Some(value),
                "sslrootcert" => root_cert = Some(PathBuf::from(value)),
                _ => kept.push(pair),
            }
        }
        let tls = match mode.as_deref() {
            None | Some("disable") => Tls::Off,
            Some("require" | "verify-ca" | "verify-full") => Tls::Verify,
            Some("prefer" | "allow") => {
                return Err(bad(
                    "sslmode=prefer and allow may fall back to plain TCP; use disable, require or verify-full",
                ));
            }
            Some(other) => {
                return Err(bad(format!(
                    "unknown sslmode {other:?}; use disable, require, verify-ca or verify-full"
                )));
            }
        };
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config: postgres::Config = rest
            .parse()
            .map_err(|e: postgres::Error| bad(e.to_string()))?;
        if config.get_hosts().is_empty() {
            return Err(bad("no host in the URL"));
        }
        if config.get_dbname().is_none() {
            return Err(bad(
                "no database name in the URL (postgres://user@host/dbname)",
            ));
        }
        config.ssl_mode(match tls {
            Tls::Off => SslMode::Disable,
            Tls::Verify => SslMode::Require,
        });
        let mut async_config: tokio_postgres::Config = rest
            .parse()
            .map_err(|e: postgres::Error| bad(e.to_string()))?;
        async_config.ssl_mode(match tls {
            Tls::Off => SslMode::Disable,
            Tls::Verify => SslMode::Require,
        });
        if tls == Tls::Off && root_cert.is_some() {
            return Err(bad("sslrootcert needs sslmode=require or verify-full"));
        }
        Ok(DbUrl {
            config,
            async_config,
            tls,
            root_cert,
        })
    }

    /// The database as `host:port/dbname`: what errors and logs may say.
    pub fn target(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "?".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let db = self.config.get_dbname().unwrap_or("?");
        format!("{host}:{port}/{db}")
    }

    /// The rustls connector (used only when TLS is on; the driver skips it for `disable`).
    pub fn tls(&self) -> Result<MakeRustlsConnect, StoreError> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.root_cert {
            Some(path) => {
                use rustls_pki_types::pem::PemObject;
                let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                    .map_err(|e| bad(format!("sslrootcert {}: {e}", path.display())))?;
                for cert in certs {
                    let cert =
                        cert.map_err(|e| bad(format!("sslrootcert {}: {e}", path.display())))?;
                    roots
                        .add(cert)
                        .map_err(|e| bad(format!("sslrootcert {}: {e}", path.display())))?;
                }
                if roots.is_empty() {
                    return Err(bad(format!(
                        "sslrootcert {}: no certificate in the file",
                        path.display()
                    )));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Backend(format!("TLS setup: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_modes_and_errors_never_quote_the_password() {
        let u = DbUrl::parse("postgres://u:s3cret@db.example:6543/keys").expect("plain");
        assert_eq!(u.tls, Tls::Off);
        assert_eq!(u.target(), "db.example:6543/keys");
        assert!(!format!("{u:?}").contains("s3cret"));
        let u = DbUrl::parse("postgresql://u@h/k?sslmode=verify-full&application_name=x")
            .expect("verify-full");
        assert_eq!(u.tls, Tls::Verify);
        assert_eq!(u.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(u.config.get_application_name(), Some("x"));
        assert_eq!(
            DbUrl::parse("postgres://u@h/k?sslmode=require")
                .expect("require")
                .tls,
            Tls::Verify
        );
        for bad_url in [
            "mysql://u:s3cret@h/k",
            "postgres://u:s3cret@h/k?sslmode=prefer",
            "postgres://u:s3cret@h/k?sslmode=bogus",
            "postgres://u:s3cret@h/k?nonsense=1",
            "postgres://u:s3cret@h",
            "postgres://u:s3cret@h/k?sslrootcert=/x.pem",
        ] {
            let err = DbUrl::parse(bad_url).expect_err(bad_url).to_string();
            assert!(!err.contains("s3cret"), "{bad_url}: {err}");
            assert!(err.starts_with("bad database URL"), "{bad_url}: {err}");
        }
        let err = DbUrl::parse("postgres://u@h/k?sslmode=require&sslrootcert=/nonexistent.pem")
            .expect("parses")
            .tls()
            .err()
            .expect("no such file")
            .to_string();
        assert!(err.contains("/nonexistent.pem"), "{err}");
    }
}
