//! The apiserver's TLS settings: the serving certificate it proves its name with
//! (`--tls-cert-file`, `--tls-private-key-file`) and, with `--client-ca-file`, the request for
//! a client certificate that `auth/x509.rs` turns into a user.
//!
//! The handshake asks for a client certificate without requiring one, so that kubectl with a
//! bearer token and health probes without any credential still connect; a certificate that
//! is sent but does not chain to the client CA ends the handshake with an alert, as a wrong
//! password would. ALPN offers HTTP/2 and HTTP/1.1, as axum-server's own configs do.
//!
//! Read next: `auth/x509.rs`; `main.rs` hands the result to axum-server's `RustlsAcceptor`,
//! which records each connection's client certificate in the requests' extensions.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::auth::{ClientCaError, ClientCertAuth};

/// Errors setting up TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate chain could not be read or holds no PEM certificate.
    #[error("cannot read a PEM certificate chain from {path}: {reason}")]
    Certificate { path: PathBuf, reason: String },
    /// The private key could not be read.
    #[error("cannot read a PEM private key from {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    /// The client CA could not verify client certificates.
    #[error(transparent)]
    ClientCa(#[from] ClientCaError),
    /// rustls refused the combination (a key that does not match the certificate, say).
    #[error("TLS settings for {cert}")]
    Config {
        cert: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

/// The server's TLS configuration: serve `cert`/`key`; with `client_ca`, request client
/// certificates and verify them against it.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&ClientCertAuth>,
) -> Result<RustlsConfig, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Certificate {
            path: cert.to_owned(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Certificate {
            path: cert.to_owned(),
            reason: "no certificate in it".into(),
        });
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_owned(),
        reason: e.to_string(),
    })?;
    let config_error = |source| TlsError::Config {
        cert: cert.to_owned(),
        source,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(config_error)?;
    let builder = match client_ca {
        Some(ca) => builder.with_client_cert_verifier(ca.verifier(provider)?),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key_der)
        .map_err(config_error)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(RustlsConfig::from_config(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_or_mismatched_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let err = server_config(&cert, &key, None).unwrap_err();
        assert!(matches!(err, TlsError::Certificate { .. }), "{err:?}");
        let a = rcgen::generate_simple_self_signed(vec!["a".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b".into()]).unwrap();
        std::fs::write(&cert, a.cert.pem()).unwrap();
        std::fs::write(&key, "garbage").unwrap();
        let err = server_config(&cert, &key, None).unwrap_err();
        assert!(matches!(err, TlsError::Key { .. }), "{err:?}");
        std::fs::write(&key, b.signing_key.serialize_pem()).unwrap();
        let err = server_config(&cert, &key, None).unwrap_err();
        assert!(matches!(err, TlsError::Config { .. }), "{err:?}");
        std::fs::write(&key, a.signing_key.serialize_pem()).unwrap();
        let ca = ClientCertAuth::from_pem(b.cert.pem().as_bytes(), Path::new("ca.crt")).unwrap();
        let config = server_config(&cert, &key, Some(&ca)).unwrap();
        assert!(config.get_inner().alpn_protocols.contains(&b"h2".to_vec()));
    }
}
