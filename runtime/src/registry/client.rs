//! The HTTP side of a pull: which scheme a registry is spoken to over, which certificates are
//! trusted, and how we log in. As in dockerd, a registry is HTTPS with a verified certificate
//! (the system's roots plus an optional CA bundle, `--registry-ca`) unless it is *insecure*:
//! loopback registries (`localhost`, 127.0.0.0/8, `::1`) and those listed with
//! `--insecure-registry`. An insecure registry is still tried over HTTPS first (a ping,
//! `GET /v2/`) and spoken to over plain HTTP only when that fails for another reason than its
//! certificate. A listed registry's certificate is not verified at all (dockerd's rule); a
//! loopback one's is, so a loopback registry with a private CA needs that CA or to be listed.
//!
//! Login follows the Registry API's 401 challenge (`WWW-Authenticate`): `Basic` (e.g.
//! htpasswd) gets the credentials; `Bearer realm=..,service=..,scope=..` gets a token from the
//! realm (anonymous, or with the credentials as Basic auth), sent as `Authorization: Bearer`.

use std::io::Read;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::{Credentials, PullOptions, RegistryError};

/// A connection to one registry, with the scheme settled by the ping and the current
/// `Authorization` header (a bearer token is scoped to the repository of the pull).
pub(super) struct Client {
    registry: String,
    /// `https://host[:port]` or, for an insecure registry without TLS, `http://host[:port]`.
    base: String,
    agent: ureq::Agent,
    credentials: Option<Credentials>,
    authorization: Option<String>,
}

impl Client {
    /// Settle the scheme for `registry` (`host[:port]`) by pinging `/v2/` over HTTPS.
    pub fn connect(registry: &str, opts: &PullOptions) -> Result<Self, RegistryError> {
        let listed = opts.insecure_registries.iter().any(|r| r == registry);
        let tls = tls_config(opts.ca_file.as_deref(), !listed)?;
        let mut c = Client {
            registry: registry.to_string(),
            base: format!("https://{registry}"),
            agent: ureq::AgentBuilder::new()
                .tls_config(tls)
                .timeout_connect(Duration::from_secs(30))
                .timeout_read(Duration::from_secs(120))
                .build(),
            credentials: opts.credentials.clone(),
            authorization: None,
        };
        let url = format!("{}/v2/", c.base);
        match c.agent.get(&url).call() {
            // any answer (200, or 401 with a challenge) means the registry speaks HTTPS
            Ok(_) | Err(ureq::Error::Status(..)) => Ok(c),
            Err(e) if certificate_problem(&e).is_none() && (listed || is_loopback(registry)) => {
                tracing::debug!(registry, error = %e, "no HTTPS, using plain HTTP");
                c.base = format!("http://{registry}");
                Ok(c)
            }
            Err(e) => Err(c.error(&url, e)),
        }
    }

    /// `GET <base><path>`, answering one 401 challenge.
    pub fn get(
        &mut self,
        path: &str,
        accept: Option<&str>,
    ) -> Result<ureq::Response, RegistryError> {
        let url = format!("{}{path}", self.base);
        let mut challenged = false;
        loop {
            let mut req = self.agent.get(&url);
            if let Some(a) = accept {
                req = req.set("Accept", a);
            }
            if let Some(h) = &self.authorization {
                req = req.set("Authorization", h);
            }
            match req.call() {
                Ok(r) => return Ok(r),
                Err(ureq::Error::Status(401, r)) if !challenged => {
                    challenged = true;
                    let challenge = r.header("WWW-Authenticate").unwrap_or("").to_string();
                    self.authorization = Some(self.answer(&url, &challenge)?);
                }
                Err(ureq::Error::Status(401, _)) => {
                    return Err(RegistryError::Unauthorized {
                        url,
                        reason: match &self.credentials {
                            Some(c) => format!("credentials of {:?} refused", c.username),
                            None => "anonymous access refused".into(),
                        },
                    })
                }
                Err(e) => return Err(self.error(&url, e)),
            }
        }
    }

    /// The `Authorization` header that answers `challenge`.
    fn answer(&self, url: &str, challenge: &str) -> Result<String, RegistryError> {
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        match (scheme.to_ascii_lowercase().as_str(), &self.credentials) {
            ("basic", Some(c)) => Ok(c.basic()),
            ("basic", None) => Err(RegistryError::Unauthorized {
                url: url.to_string(),
                reason: "the registry wants a username and password (--creds USER:PASSWORD)".into(),
            }),
            ("bearer", _) => Ok(format!("Bearer {}", self.fetch_token(params)?)),
            _ => Err(RegistryError::Unauthorized {
                url: url.to_string(),
                reason: format!("unsupported challenge {challenge:?}"),
            }),
        }
    }

    /// A token from the challenge's realm for its service and scope.
    fn fetch_token(&self, params: &str) -> Result<String, RegistryError> {
        let mut realm = String::new();
        let mut query = Vec::new();
        for part in params.split(',') {
            if let Some((k, v)) = part.trim().split_once('=') {
                let v = v.trim_matches('"').to_string();
                if k == "realm" {
                    realm = v;
                } else {
                    query.push((k.to_string(), v));
                }
            }
        }
        let token_error = |reason: String| RegistryError::Token {
            realm: realm.clone(),
            reason,
        };
        if realm.is_empty() {
            return Err(token_error(format!("no realm in Bearer {params:?}")));
        }
        let mut req = self.agent.get(&realm);
        for (k, v) in &query {
            req = req.query(k, v);
        }
        if let Some(c) = &self.credentials {
            req = req.set("Authorization", &c.basic());
        }
        let body: serde_json::Value = match req.call() {
            Ok(r) => r.into_json().map_err(|e| token_error(e.to_string()))?,
            Err(e) => return Err(token_error(describe(e))),
        };
        body["token"]
            .as_str()
            .or(body["access_token"].as_str())
            .map(String::from)
            .ok_or_else(|| token_error("no token in the answer".into()))
    }

    /// One line for a failed request; an untrusted certificate says what to do about it.
    fn error(&self, url: &str, e: ureq::Error) -> RegistryError {
        match certificate_problem(&e) {
            Some(reason) => RegistryError::Certificate {
                registry: self.registry.clone(),
                reason,
            },
            None => RegistryError::Http {
                url: url.to_string(),
                reason: describe(e),
            },
        }
    }
}

/// `localhost`, 127.0.0.0/8 or `::1`, with or without a port: may be plain HTTP.
pub(super) fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => registry.split(':').next().unwrap_or(""),
    };
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The client TLS configuration: the system's roots plus `ca_file` when `verify`, else a
/// verifier that checks the handshake's signatures but not who signed the certificate.
fn tls_config(
    ca_file: Option<&Path>,
    verify: bool,
) -> Result<Arc<rustls::ClientConfig>, RegistryError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = ca_file {
        let ca_error = |reason: String| RegistryError::CaFile {
            path: path.to_path_buf(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| ca_error(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca_error("no PEM certificate in it".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
        }
    }
    let config = if verify {
        let system = rustls_native_certs::load_native_certs();
        for e in &system.errors {
            tracing::debug!(error = %e, "loading the system's CA certificates");
        }
        roots.add_parsable_certificates(system.certs);
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// For `--insecure-registry`: any certificate, but the server must still prove it holds the
/// certificate's key (the signature checks stay).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Why the server's certificate was refused, if that is why `e` happened. rustls' error sits
/// inside the `io::Error` ureq wraps it in (whose `source()` skips it, hence `get_ref`).
fn certificate_problem(e: &ureq::Error) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cause {
        let tls = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        });
        if let Some(rustls::Error::InvalidCertificate(c)) = tls {
            return Some(match c {
                rustls::CertificateError::UnknownIssuer => "issued by an unknown CA".into(),
                c => c.to_string(),
            });
        }
        cause = err.source();
    }
    None
}

/// A failed request in one line, without the URL (the caller has it): the status and the
/// registry's own error (`{"errors":[{"code","message"}]}`), or the transport failure.
fn describe(e: ureq::Error) -> String {
    let line = match e {
        ureq::Error::Status(code, r) => {
            let status = format!("{code} {}", r.status_text());
            let mut body = String::new();
            let _ = r.into_reader().take(64 << 10).read_to_string(&mut body);
            let detail = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| {
                    let first = &v["errors"][0];
                    Some(format!(
                        "{}: {}",
                        first["code"].as_str()?,
                        first["message"].as_str().unwrap_or("")
                    ))
                });
            match detail {
                Some(d) => format!("{status} ({d})"),
                None => status,
            }
        }
        ureq::Error::Transport(t) => {
            let mut s = t.kind().to_string();
            if let Some(m) = t.message() {
                s = format!("{s}: {m}");
            }
            if let Some(src) = std::error::Error::source(&t) {
                s = format!("{s}: {src}");
            }
            s
        }
    };
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries() {
        for r in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.9.8.7",
            "[::1]:5000",
        ] {
            assert!(is_loopback(r), "{r}");
        }
        for r in [
            "registry-1.docker.io",
            "10.0.0.1:5000",
            "localhost.example.com",
            "[fe80::1]:5000",
        ] {
            assert!(!is_loopback(r), "{r}");
        }
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_an_error() {
        let dir = std::env::temp_dir().join(format!("minik8s-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = tls_config(Some(&empty), true).unwrap_err().to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
        let err = tls_config(Some(&dir.join("missing.pem")), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.pem"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
