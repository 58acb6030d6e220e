//! How the apiserver dials a kubelet (for `pods/{p}/log` and `exec`): TLS to the kubelet's
//! HTTPS port, presenting `--kubelet-client-certificate`/`--kubelet-client-key` as its client
//! certificate when given (the kubelet's `--client-ca-file` checks it), then the
//! `--kubelet-token-file` bearer token inside when given. Like kube-apiserver, the
//! kubelet's serving certificate is verified only when `--kubelet-certificate-authority` is
//! given; otherwise the channel is encrypted but the kubelet unauthenticated (kubelets make
//! self-signed certificates), while the kubelet always authenticates the apiserver.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The apiserver's client certificate for kubelets (PEM chain and key), as read from
/// `--kubelet-client-certificate` and `--kubelet-client-key`.
#[derive(Clone, Debug)]
pub struct ClientCert {
    /// The certificate chain, leaf first.
    pub cert_pem: Vec<u8>,
    /// Its private key.
    pub key_pem: Vec<u8>,
}

/// The TLS client settings for kubelets: verified against `ca_pem` when given; presenting
/// `client_cert` when given.
pub fn tls_config(
    ca_pem: Option<&[u8]>,
    client_cert: Option<&ClientCert>,
) -> std::io::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?;
    let config = match ca_pem {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                roots
                    .add(cert.map_err(std::io::Error::other)?)
                    .map_err(std::io::Error::other)?;
            }
            if roots.is_empty() {
                return Err(std::io::Error::other(
                    "--kubelet-certificate-authority holds no certificate",
                ));
            }
            builder.with_root_certificates(roots)
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider))),
    };
    let config = match client_cert {
        Some(c) => {
            let chain = CertificateDer::pem_slice_iter(&c.cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(std::io::Error::other)?;
            if chain.is_empty() {
                return Err(std::io::Error::other(
                    "--kubelet-client-certificate holds no certificate",
                ));
            }
            let key = PrivateKeyDer::from_pem_slice(&c.key_pem)
                .map_err(|e| std::io::Error::other(format!("--kubelet-client-key: {e}")))?;
            config
                .with_client_auth_cert(chain, key)
                .map_err(|e| std::io::Error::other(format!("--kubelet-client-certificate: {e}")))?
        }
        None => config.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Open a TLS connection to the kubelet at `host:port`.
pub async fn connect(
    addr: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| std::io::Error::other(format!("kubelet address {host:?}: {e}")))?;
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

/// Accepts any certificate but still checks the handshake signatures (so the peer holds the
/// key of the certificate it showed): encryption without authentication of the kubelet.
#[derive(Debug)]
struct AnyServerCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
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
        dss: &DigitallySignedStruct,
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
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_certificate_is_read_or_refused_with_the_flag_named() {
        let a = rcgen::generate_simple_self_signed(vec!["a".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b".into()]).unwrap();
        let good = ClientCert {
            cert_pem: a.cert.pem().into_bytes(),
            key_pem: a.signing_key.serialize_pem().into_bytes(),
        };
        let config = tls_config(None, Some(&good)).unwrap();
        assert!(config.client_auth_cert_resolver.has_certs());
        assert!(!tls_config(None, None)
            .unwrap()
            .client_auth_cert_resolver
            .has_certs());
        let empty = ClientCert {
            cert_pem: Vec::new(),
            ..good.clone()
        };
        let err = tls_config(None, Some(&empty)).unwrap_err();
        assert!(
            err.to_string().contains("--kubelet-client-certificate"),
            "{err}"
        );
        let bad_key = ClientCert {
            key_pem: b"garbage".to_vec(),
            ..good.clone()
        };
        let err = tls_config(None, Some(&bad_key)).unwrap_err();
        assert!(err.to_string().contains("--kubelet-client-key"), "{err}");
        let mismatched = ClientCert {
            key_pem: b.signing_key.serialize_pem().into_bytes(),
            ..good
        };
        assert!(tls_config(None, Some(&mismatched)).is_err());
    }
}
