//! What a certificate says, read from its DER: who it names (the user and groups a client
//! certificate authenticates as), which names it is valid for (SANs), and the hash of its
//! public key that a joining node pins the CA by.
//!
//! Kubernetes maps a client certificate's subject to a user the same way everywhere: the
//! common name (CN) is the user name, each organization (O) a group. So
//! `CN=system:node:n1, O=system:nodes` is the kubelet of node `n1`.
//!
//! Read next: `mod.rs` (how the certificates are made); the apiserver's `auth/x509.rs` calls
//! [`identity_of`] on the certificate a client presented.

use std::net::IpAddr;

use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

/// The user a client certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The subject's CN.
    pub user: String,
    /// The subject's O values, in order.
    pub groups: Vec<String>,
}

/// The user (CN) and groups (O) of a DER certificate. `Err` says why it cannot be read.
pub fn identity_of(der: &[u8]) -> Result<Identity, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    let subject = cert.subject();
    let user = subject
        .iter_common_name()
        .next()
        .ok_or("the subject has no common name (CN)")?
        .as_str()
        .map_err(|e| format!("the common name is not a string: {e}"))?
        .to_string();
    let groups = subject
        .iter_organization()
        .map(|o| o.as_str().map(str::to_string))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("an organization (O) is not a string: {e}"))?;
    Ok(Identity { user, groups })
}

/// `sha256:<hex>` of the SubjectPublicKeyInfo of the (first) certificate in `pem`, as kubeadm
/// computes `--discovery-token-ca-cert-hash`.
pub fn ca_cert_hash_of(pem: &str) -> Result<String, String> {
    with_pem_cert(pem, |cert| {
        let digest = Sha256::digest(cert.tbs_certificate.subject_pki.raw);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        Ok(format!("sha256:{hex}"))
    })
}

/// The DNS names and IP addresses the (first) certificate in `pem` is valid for.
pub fn sans_of(pem: &str) -> Result<(Vec<String>, Vec<IpAddr>), String> {
    with_pem_cert(pem, |cert| {
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        let Some(san) = cert.subject_alternative_name().map_err(|e| e.to_string())? else {
            return Ok((dns, ips));
        };
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns.push(d.to_string()),
                GeneralName::IPAddress(b) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                        ips.push(IpAddr::from(v4));
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                        ips.push(IpAddr::from(v6));
                    }
                }
                _ => {}
            }
        }
        Ok((dns, ips))
    })
}

/// Whether the certificate in `cert_pem` carries a valid signature by the one in `ca_pem`
/// (`Err` says why not). Only the signature is checked, not dates or usages.
pub fn verify_signed_by(cert_pem: &str, ca_pem: &str) -> Result<(), String> {
    with_pem_cert(ca_pem, |ca| {
        with_pem_cert(cert_pem, |cert| {
            cert.verify_signature(Some(ca.public_key()))
                .map_err(|e| e.to_string())
        })
    })
}

/// Whether `pem` starts with a PEM `CERTIFICATE` block that parses as X.509 (kube-apiserver's
/// check of an issued certificate in a CSR's `status.certificate`).
pub fn is_certificate_pem(pem: &str) -> bool {
    with_pem_cert(pem, |_| Ok(())).is_ok()
}

/// Whether the (first) certificate in `pem` is within its validity dates now (`Err` if it
/// cannot be read): a kubelet reuses its `kubelet.conf` only while this holds.
pub fn is_valid_now(pem: &str) -> Result<bool, String> {
    with_pem_cert(pem, |cert| Ok(cert.validity().is_valid()))
}

/// A DER certificate as PEM (kube-rs hands out the CA of a kubeconfig as DER).
pub fn certificate_pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// Parse the first certificate of a PEM text and hand it to `f`.
fn with_pem_cert<T>(
    pem: &str,
    f: impl FnOnce(&X509Certificate<'_>) -> Result<T, String>,
) -> Result<T, String> {
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| format!("not PEM: {e}"))?;
    if pem.label != "CERTIFICATE" {
        return Err(format!("a PEM {:?} block, not a CERTIFICATE", pem.label));
    }
    let cert = pem.parse_x509().map_err(|e| e.to_string())?;
    f(&cert)
}
