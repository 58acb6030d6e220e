//! Validation of CertificateSigningRequests (`pkg/apis/certificates/validation`).
//!
//! The apiserver checks what it can know without judging the request: `spec.request` is a PEM
//! `CERTIFICATE REQUEST` whose signature verifies (so the requester holds the key), a signer
//! is named (`example.com/signer-name`), the usages are ones Kubernetes knows, and a requested
//! lifetime is at least ten minutes. Whether the requester *deserves* the subject it asks for
//! is the approver's business, and whether the signer can sign it the signer's. The
//! conditions, through whichever door they come, stay coherent: Approved and Denied are
//! `True`, once each, never together, and never withdrawn; an issued certificate never
//! changes.
//!
//! Read next: `crate::admission::certificates` (which door may change what), and
//! `client::pki::parse_request`, the one CSR parser.

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use serde_json::Value;

use super::super::certificates::{self as strategy, ConditionType};
use super::super::{BadValue, Cause};

/// Every key usage `certificates.k8s.io/v1` knows.
const KNOWN_USAGES: &[&str] = &[
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
];

/// The shortest lifetime a request may ask for (`spec.expirationSeconds`).
const MIN_EXPIRATION_SECONDS: i32 = 600;

/// `ValidateCertificateSigningRequestCreate`: the spec of a new request.
pub fn validate_csr(csr: &CertificateSigningRequest) -> Vec<Cause> {
    let spec = &csr.spec;
    let mut causes = Vec::new();
    if let Err(e) = client::pki::parse_request(&spec.request.0) {
        causes.push(Cause::invalid(
            "spec.request",
            BadValue::Raw(go_bytes(&spec.request.0)),
            &e.to_string(),
        ));
    }
    if spec.signer_name.is_empty() {
        causes.push(Cause::required("spec.signerName", ""));
    } else if !is_qualified_signer_name(&spec.signer_name) {
        causes.push(Cause::invalid(
            "spec.signerName",
            spec.signer_name.as_str(),
            "must be a fully qualified domain and path of the form 'example.com/signer-name'",
        ));
    }
    let usages = spec.usages.as_deref().unwrap_or_default();
    if usages.is_empty() {
        causes.push(Cause::required("spec.usages", ""));
    }
    for (i, usage) in usages.iter().enumerate() {
        if !KNOWN_USAGES.contains(&usage.as_str()) {
            causes.push(Cause::not_supported(
                format!("spec.usages[{i}]"),
                usage.as_str(),
                KNOWN_USAGES,
            ));
        }
    }
    if let Some(seconds) = spec.expiration_seconds {
        if seconds < MIN_EXPIRATION_SECONDS {
            causes.push(Cause::invalid(
                "spec.expirationSeconds",
                i64::from(seconds),
                "may not specify a duration less than 600 seconds (10 minutes)",
            ));
        }
    }
    causes
}

/// A `status` or `approval` write (`ValidateCertificateSigningRequest{Status,Approval}Update`):
/// coherent conditions, no decision added by `status` or withdrawn by either, the issued
/// certificate a PEM `CERTIFICATE` that never changes once set.
pub fn validate_status_update(subresource: &str, new: &Value, old: &Value) -> Vec<Cause> {
    let mut causes = validate_conditions(new);
    for ty in [ConditionType::Approved, ConditionType::Denied] {
        let (before, after) = (strategy::count(old, ty), strategy::count(new, ty));
        if after < before {
            causes.push(Cause::forbidden(
                "status.conditions",
                &format!(
                    "updates may not remove a condition of type {:?}",
                    ty.as_str()
                ),
            ));
        } else if after > before && subresource == "status" {
            causes.push(Cause::forbidden(
                "status.conditions",
                &format!("updates may not add a condition of type {:?}", ty.as_str()),
            ));
        }
    }
    let cert = |o: &Value| {
        o.pointer("/status/certificate")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (before, after) = (cert(old), cert(new));
    if !before.is_empty() && before != after {
        causes.push(Cause::forbidden(
            "status.certificate",
            "updates may not modify existing certificate content",
        ));
    } else if !after.is_empty() && before.is_empty() {
        causes.extend(validate_certificate(&after));
    }
    causes
}

/// `validateConditions`: a type; Approved, Denied and Failed only `True` and once each;
/// others `True`, `False` or `Unknown`; never Approved and Denied together.
fn validate_conditions(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let mut seen: Vec<ConditionType> = Vec::new();
    for (i, c) in strategy::conditions(obj).iter().enumerate() {
        let ty = c["type"].as_str().unwrap_or("");
        let status = c["status"].as_str().unwrap_or("");
        let field = format!("status.conditions[{i}]");
        if ty.is_empty() {
            causes.push(Cause::required(format!("{field}.type"), ""));
            continue;
        }
        match ConditionType::parse(ty) {
            Some(known) => {
                if status != "True" {
                    causes.push(Cause::not_supported(
                        format!("{field}.status"),
                        status,
                        &["True"],
                    ));
                }
                if seen.contains(&known) {
                    causes.push(Cause::duplicate(format!("{field}.type"), ty));
                }
                seen.push(known);
            }
            None if !matches!(status, "True" | "False" | "Unknown") => {
                causes.push(Cause::not_supported(
                    format!("{field}.status"),
                    status,
                    &["False", "True", "Unknown"],
                ));
            }
            None => {}
        }
    }
    if seen.contains(&ConditionType::Approved) && seen.contains(&ConditionType::Denied) {
        causes.push(Cause::forbidden(
            "status.conditions",
            "Approved and Denied conditions are mutually exclusive",
        ));
    }
    causes
}

/// `status.certificate` (base64 in JSON) must hold at least one PEM `CERTIFICATE` block
/// that parses.
fn validate_certificate(b64: &str) -> Vec<Cause> {
    use base64::Engine;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_default();
    let ok = std::str::from_utf8(&pem).is_ok_and(client::pki::is_certificate_pem);
    if ok {
        Vec::new()
    } else {
        vec![Cause::invalid(
            "status.certificate",
            BadValue::Raw("<certificate data>".into()),
            "must contain at least one CERTIFICATE PEM block",
        )]
    }
}

/// `ValidateSignerName`'s shape: a domain, a slash, a path.
fn is_qualified_signer_name(name: &str) -> bool {
    match name.split_once('/') {
        Some((domain, path)) => domain.contains('.') && !path.is_empty(),
        None => false,
    }
}

/// A byte slice as Go's `%#v` prints it (`[]byte{0x6e, 0x6f}`), as field errors show it.
fn go_bytes(bytes: &[u8]) -> String {
    let items: Vec<String> = bytes.iter().map(|b| format!("0x{b:x}")).collect();
    format!("[]byte{{{}}}", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn csr(request: &[u8]) -> CertificateSigningRequest {
        let mut csr = CertificateSigningRequest::default();
        csr.spec.request = k8s_openapi::ByteString(request.to_vec());
        csr.spec.signer_name = "kubernetes.io/kube-apiserver-client-kubelet".into();
        csr.spec.usages = Some(vec!["digital signature".into(), "client auth".into()]);
        csr
    }

    #[test]
    fn a_signed_request_for_a_named_signer_passes() {
        let (pem, _) = client::pki::new_request("system:node:n1", &["system:nodes"]).unwrap();
        assert_eq!(validate_csr(&csr(pem.as_bytes())), vec![]);
    }

    #[test]
    fn bad_requests_name_their_fields() {
        let mut bad = csr(b"no");
        bad.spec.signer_name = "example".into();
        bad.spec.usages = Some(vec!["flying".into()]);
        bad.spec.expiration_seconds = Some(60);
        let fields: Vec<String> = validate_csr(&bad).into_iter().map(|c| c.field).collect();
        assert_eq!(
            fields,
            [
                "spec.request",
                "spec.signerName",
                "spec.usages[0]",
                "spec.expirationSeconds"
            ]
        );
        let request = &validate_csr(&csr(b"no"))[0];
        assert_eq!(
            request.message,
            "Invalid value: []byte{0x6e, 0x6f}: PEM block type must be CERTIFICATE REQUEST"
        );
    }

    #[test]
    fn decisions_are_exclusive_and_never_withdrawn() {
        let approved = json!({"status": {"conditions": [{"type": "Approved", "status": "True"}]}});
        let both = json!({"status": {"conditions": [
            {"type": "Approved", "status": "True"}, {"type": "Denied", "status": "True"}]}});
        let none = json!({});
        assert_eq!(validate_status_update("approval", &approved, &none), vec![]);
        let causes = validate_status_update("approval", &both, &approved);
        assert_eq!(
            causes[0].message,
            "Forbidden: Approved and Denied conditions are mutually exclusive"
        );
        assert!(!validate_status_update("approval", &none, &approved).is_empty());
        assert!(!validate_status_update("status", &approved, &none).is_empty());
        let mut changed = approved.clone();
        changed["status"]["certificate"] = json!("bm90IGEgY2VydA==");
        assert_eq!(
            validate_status_update("status", &changed, &approved)[0].field,
            "status.certificate"
        );
    }
}
