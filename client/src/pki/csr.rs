//! Certificate signing requests: how a machine that holds only a private key obtains a
//! certificate from the cluster CA without the key ever leaving it.
//!
//! A **CSR** (PKCS#10, PEM block `CERTIFICATE REQUEST`) carries the subject the requester wants
//! (`CN=system:node:n1, O=system:nodes`), its public key, and a signature made with the
//! matching private key. The signature proves the requester holds that key; it proves nothing
//! about whether the requester deserves the name. That judgement is Kubernetes': the CSR is
//! posted as a `certificates.k8s.io/v1` CertificateSigningRequest, someone (a human with
//! `kubectl certificate approve`, or the controller manager's approver) approves it, and the
//! signer turns it into a certificate with [`Pki::sign_request`].
//!
//! This file is the one CSR parser of the workspace: the apiserver validates `spec.request`
//! with [`parse_request`], the controller's approver reads the subject with it, and the
//! signer signs what it returns. [`new_request`] makes one, as a joining kubelet does.
//!
//! Read next: `mod.rs` (the CA that signs), the controller's `certificates/` (who may get what).

use std::net::IpAddr;
use std::time::Duration;

use rcgen::{
    CertificateParams, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose, SanType,
    SubjectPublicKeyInfo,
};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use super::{distinguished_name, set_validity_for, Pki, PkiError};

/// The PEM label of a PKCS#10 request.
pub const CSR_PEM_LABEL: &str = "CERTIFICATE REQUEST";

/// Why a CSR cannot be read; the messages are Go's (`ParseCSR`, `CheckSignature`), which
/// kube-apiserver puts in its 422.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CsrError {
    /// No PEM block, or one with another label.
    #[error("PEM block type must be CERTIFICATE REQUEST")]
    NotACsrPem,
    /// The PEM block's content is not a PKCS#10 structure.
    #[error("x509: malformed certificate request: {0}")]
    Malformed(String),
    /// The request is not signed by the key it carries.
    #[error("x509: signature verification failure: {0}")]
    Signature(String),
    /// A subject attribute is not a string.
    #[error("x509: subject attribute is not a string: {0}")]
    Subject(String),
}

/// What a verified CSR asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRequest {
    /// The subject's CN (the user name a client certificate authenticates as).
    pub common_name: String,
    /// The subject's O values (the groups), in order.
    pub organizations: Vec<String>,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// IP subject alternative names.
    pub ip_addresses: Vec<IpAddr>,
    /// Email subject alternative names.
    pub emails: Vec<String>,
    /// URI subject alternative names.
    pub uris: Vec<String>,
    /// The DER SubjectPublicKeyInfo the certificate will carry.
    spki_der: Vec<u8>,
}

impl CertificateRequest {
    /// Whether the request names any subject alternative name.
    pub fn has_sans(&self) -> bool {
        !(self.dns_names.is_empty()
            && self.ip_addresses.is_empty()
            && self.emails.is_empty()
            && self.uris.is_empty())
    }
}

/// A key usage a CSR's `spec.usages` may name (the `certificates.k8s.io/v1` strings). Only
/// those a client or serving certificate needs are known here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Usage {
    /// `digital signature`: the key signs (TLS handshakes with ECDSA keys).
    DigitalSignature,
    /// `key encipherment`: the key encrypts session keys (TLS with RSA keys).
    KeyEncipherment,
    /// `client auth`: the certificate authenticates a TLS client.
    ClientAuth,
    /// `server auth`: the certificate authenticates a TLS server.
    ServerAuth,
}

impl Usage {
    /// The API string (`client auth`), or `None` for one this signer does not know.
    pub fn from_api(s: &str) -> Option<Usage> {
        Some(match s {
            "digital signature" => Usage::DigitalSignature,
            "key encipherment" => Usage::KeyEncipherment,
            "client auth" => Usage::ClientAuth,
            "server auth" => Usage::ServerAuth,
            _ => return None,
        })
    }

    /// The API string.
    pub fn as_api(self) -> &'static str {
        match self {
            Usage::DigitalSignature => "digital signature",
            Usage::KeyEncipherment => "key encipherment",
            Usage::ClientAuth => "client auth",
            Usage::ServerAuth => "server auth",
        }
    }
}

/// Parse the first PEM `CERTIFICATE REQUEST` block of `pem` and verify its signature.
pub fn parse_request(pem: &[u8]) -> Result<CertificateRequest, CsrError> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).map_err(|_| CsrError::NotACsrPem)?;
    if block.label != CSR_PEM_LABEL {
        return Err(CsrError::NotACsrPem);
    }
    let (_, csr) = X509CertificationRequest::from_der(&block.contents)
        .map_err(|e| CsrError::Malformed(e.to_string()))?;
    csr.verify_signature()
        .map_err(|e| CsrError::Signature(e.to_string()))?;
    let info = &csr.certification_request_info;
    let as_string = |a: &x509_parser::x509::AttributeTypeAndValue<'_>| {
        a.as_str()
            .map(str::to_string)
            .map_err(|e| CsrError::Subject(e.to_string()))
    };
    let common_name = match info.subject.iter_common_name().next() {
        Some(cn) => as_string(cn)?,
        None => String::new(),
    };
    let organizations = info
        .subject
        .iter_organization()
        .map(as_string)
        .collect::<Result<_, _>>()?;
    let mut request = CertificateRequest {
        common_name,
        organizations,
        dns_names: Vec::new(),
        ip_addresses: Vec::new(),
        emails: Vec::new(),
        uris: Vec::new(),
        spki_der: info.subject_pki.raw.to_vec(),
    };
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                add_san(&mut request, name);
            }
        }
    }
    Ok(request)
}

fn add_san(request: &mut CertificateRequest, name: &GeneralName<'_>) {
    match name {
        GeneralName::DNSName(d) => request.dns_names.push(d.to_string()),
        GeneralName::RFC822Name(e) => request.emails.push(e.to_string()),
        GeneralName::URI(u) => request.uris.push(u.to_string()),
        GeneralName::IPAddress(b) => {
            if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                request.ip_addresses.push(IpAddr::from(v4));
            } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                request.ip_addresses.push(IpAddr::from(v6));
            }
        }
        _ => {}
    }
}

/// A new ECDSA P-256 key and a CSR for user `cn` in `groups` (at most two), as a joining
/// kubelet makes one: `(CSR PEM, private key PEM)`. The key stays with the caller.
pub fn new_request(cn: &str, groups: &[&str]) -> Result<(String, String), PkiError> {
    let generate = |source| PkiError::Generate {
        what: format!("a certificate request for {cn}"),
        source,
    };
    let key = KeyPair::generate().map_err(generate)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(cn, groups)?;
    let csr = params.serialize_request(&key).map_err(generate)?;
    Ok((csr.pem().map_err(generate)?, key.serialize_pem()))
}

impl Pki {
    /// Sign a verified request with the CA: a certificate for its public key and subject (CN
    /// and at most two O values) and SANs, with `usages`, valid from a few minutes ago for
    /// `validity`. Returns the certificate PEM. Whether the request deserves it is the
    /// caller's decision (approval, the signer's rules).
    pub fn sign_request(
        &self,
        request: &CertificateRequest,
        usages: &[Usage],
        validity: Duration,
    ) -> Result<String, PkiError> {
        let what = format!("a certificate for {}", request.common_name);
        let generate = |source| PkiError::Generate {
            what: what.clone(),
            source,
        };
        let groups: Vec<&str> = request.organizations.iter().map(String::as_str).collect();
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(&request.common_name, &groups)?;
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        for usage in usages {
            match usage {
                Usage::DigitalSignature => {
                    params.key_usages.push(KeyUsagePurpose::DigitalSignature)
                }
                Usage::KeyEncipherment => params.key_usages.push(KeyUsagePurpose::KeyEncipherment),
                Usage::ClientAuth => params
                    .extended_key_usages
                    .push(ExtendedKeyUsagePurpose::ClientAuth),
                Usage::ServerAuth => params
                    .extended_key_usages
                    .push(ExtendedKeyUsagePurpose::ServerAuth),
            }
        }
        params.subject_alt_names = sans(request).map_err(generate)?;
        set_validity_for(&mut params, validity);
        let public_key = SubjectPublicKeyInfo::from_der(&request.spki_der).map_err(generate)?;
        let cert = params
            .signed_by(&public_key, &self.issuer)
            .map_err(generate)?;
        Ok(cert.pem())
    }
}

/// The request's SANs in rcgen's form.
fn sans(request: &CertificateRequest) -> Result<Vec<SanType>, rcgen::Error> {
    let mut out = Vec::new();
    for d in &request.dns_names {
        out.push(SanType::DnsName(d.clone().try_into()?));
    }
    for e in &request.emails {
        out.push(SanType::Rfc822Name(e.clone().try_into()?));
    }
    for u in &request.uris {
        out.push(SanType::URI(u.clone().try_into()?));
    }
    out.extend(request.ip_addresses.iter().copied().map(SanType::IpAddress));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{identity_of, verify_signed_by, Sans};

    #[test]
    fn a_request_round_trips_into_a_certificate_signed_by_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::create(dir.path(), &Sans::default()).unwrap();
        let (csr, _key) = new_request("system:node:n1", &["system:nodes"]).unwrap();
        assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        let request = parse_request(csr.as_bytes()).unwrap();
        assert_eq!(request.common_name, "system:node:n1");
        assert_eq!(request.organizations, vec!["system:nodes"]);
        assert!(!request.has_sans());
        let usages = [Usage::DigitalSignature, Usage::ClientAuth];
        let cert = pki
            .sign_request(&request, &usages, Duration::from_secs(3600))
            .unwrap();
        verify_signed_by(&cert, pki.ca_cert_pem()).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).unwrap();
        let id = identity_of(&pem.contents).unwrap();
        assert_eq!(id.user, "system:node:n1");
        assert_eq!(id.groups, vec!["system:nodes"]);
        let parsed = pem.parse_x509().unwrap();
        let lifetime =
            parsed.validity().not_after.timestamp() - parsed.validity().not_before.timestamp();
        assert_eq!(
            lifetime,
            3600 + 5 * 60,
            "backdated 5 minutes, then the hour asked"
        );
        let eku = parsed.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
    }

    #[test]
    fn bad_requests_are_refused_with_gos_messages() {
        assert_eq!(parse_request(b"nonsense"), Err(CsrError::NotACsrPem));
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::create(dir.path(), &Sans::default()).unwrap();
        assert_eq!(
            parse_request(pki.ca_cert_pem().as_bytes()),
            Err(CsrError::NotACsrPem)
        );
        assert_eq!(
            CsrError::NotACsrPem.to_string(),
            "PEM block type must be CERTIFICATE REQUEST"
        );
        // One flipped bit in the signed content: the signature no longer verifies.
        let (csr, _) = new_request("alice", &[]).unwrap();
        let (_, block) = x509_parser::pem::parse_x509_pem(csr.as_bytes()).unwrap();
        let mut der = block.contents.clone();
        let at = der.len() / 3;
        der[at] ^= 1;
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der);
        let tampered = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{b64}\n-----END CERTIFICATE REQUEST-----\n"
        );
        assert!(parse_request(tampered.as_bytes()).is_err());
    }

    #[test]
    fn usages_have_their_api_names() {
        for u in [
            Usage::DigitalSignature,
            Usage::KeyEncipherment,
            Usage::ClientAuth,
            Usage::ServerAuth,
        ] {
            assert_eq!(Usage::from_api(u.as_api()), Some(u));
        }
        assert_eq!(Usage::from_api("code signing"), None);
    }
}
