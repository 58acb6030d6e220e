//! Client-certificate authentication (`--client-ca-file`), as kube-apiserver does it.
//!
//! During the TLS handshake the server asks the client for a certificate, but does not
//! require one. A client that sends one proves it holds the matching private key (it signs the
//! handshake with it), and rustls checks that the certificate chains to a CA of the bundle,
//! is within its validity dates and is meant for client authentication; a certificate that
//! fails is refused there, before any HTTP. One that passes names its holder: the subject's
//! CN is the user, each O a group (`CN=kubernetes-admin, O=system:masters`), read by
//! `client::pki::identity_of`, the same reading the PKI's tests use. A client without a
//! certificate goes on to the bearer tokens.
//!
//! **Invariant**: [`ClientCertAuth::authenticate`] trusts the peer certificate axum-server
//! records for the connection (`TlsInfo`) because the handshake that recorded it used
//! [`ClientCertAuth::verifier`] built from the same bundle (`crate::tls` builds both from one
//! `ClientCertAuth`); plain-HTTP connections carry no `TlsInfo`.
//!
//! Read next: `mod.rs` (how the authenticators combine), `crate::tls` (the server's TLS
//! settings), `client/src/pki/` (how the cluster's certificates are made).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::Extensions;
use axum_server::tls::TlsInfo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use super::User;

/// Errors loading the client CA bundle.
#[derive(Debug, thiserror::Error)]
pub enum ClientCaError {
    /// The file could not be read.
    #[error("cannot read client CA file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file holds no PEM certificate, or one rustls cannot use as a trust anchor.
    #[error("client CA file {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    /// The verifier could not be built from the bundle.
    #[error("client CA file {path}: cannot verify client certificates with it")]
    Verifier {
        path: PathBuf,
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
}

/// The CAs whose client certificates authenticate their holders.
#[derive(Debug, Clone)]
pub struct ClientCertAuth {
    roots: Arc<RootCertStore>,
    path: PathBuf,
}

impl ClientCertAuth {
    /// Load a PEM bundle of CA certificates (`--client-ca-file`).
    pub fn load(path: &Path) -> Result<ClientCertAuth, ClientCaError> {
        let pem = std::fs::read(path).map_err(|source| ClientCaError::Read {
            path: path.to_owned(),
            source,
        })?;
        ClientCertAuth::from_pem(&pem, path)
    }

    /// Parse a PEM bundle; `path` names it in errors.
    pub fn from_pem(pem: &[u8], path: &Path) -> Result<ClientCertAuth, ClientCaError> {
        let invalid = |reason: String| ClientCaError::Invalid {
            path: path.to_owned(),
            reason,
        };
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| invalid(format!("not PEM certificates: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| invalid(format!("not a usable CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(invalid("no certificate in it".into()));
        }
        Ok(ClientCertAuth {
            roots: Arc::new(roots),
            path: path.to_owned(),
        })
    }

    /// The handshake's check: a certificate is requested, not required; one that is sent must
    /// chain to these CAs.
    pub fn verifier(
        &self,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Arc<dyn ClientCertVerifier>, ClientCaError> {
        WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider)
            .allow_unauthenticated()
            .build()
            .map_err(|source| ClientCaError::Verifier {
                path: self.path.clone(),
                source,
            })
    }

    /// The user named by the connection's verified client certificate, if it sent one.
    pub fn authenticate(&self, extensions: &Extensions) -> Option<User> {
        let tls = extensions.get::<Arc<TlsInfo>>()?;
        let leaf = tls.peer_certificates.first()?;
        match client::pki::identity_of(leaf) {
            Ok(id) => Some(User {
                name: id.user,
                uid: String::new(),
                groups: id.groups,
            }),
            Err(error) => {
                // rustls accepted it, so this is a certificate we cannot read a name from
                tracing::info!(%error, "client certificate names no user");
                None
            }
        }
    }
}

/// Whether the connection presented a client certificate (verified in the handshake).
pub(super) fn presented(extensions: &Extensions) -> bool {
    extensions
        .get::<Arc<TlsInfo>>()
        .is_some_and(|tls| !tls.peer_certificates.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_without_certificates_are_refused_with_the_path() {
        let err = ClientCertAuth::from_pem(b"", Path::new("/x/ca.crt")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "client CA file /x/ca.crt: no certificate in it"
        );
        let err = ClientCertAuth::load(Path::new("/nonexistent/ca.crt")).unwrap_err();
        assert!(matches!(err, ClientCaError::Read { .. }), "{err:?}");
    }

    #[test]
    fn a_connection_without_a_certificate_names_nobody() {
        let ca = rcgen::generate_simple_self_signed(vec!["ca".into()]).unwrap();
        let auth = ClientCertAuth::from_pem(ca.cert.pem().as_bytes(), Path::new("ca.crt")).unwrap();
        assert!(auth.authenticate(&Extensions::new()).is_none());
        let mut ext = Extensions::new();
        ext.insert(Arc::new(TlsInfo::default()));
        assert!(auth.authenticate(&ext).is_none());
    }
}
