//! The signer (kube-controller-manager's `csrsigning`): an approved request becomes a
//! certificate signed by the cluster CA.
//!
//! Approval says the request *may* be signed; the signer still enforces what its signer name
//! promises, because a careless `kubectl certificate approve` must not be enough to mint an
//! admin. `kubernetes.io/kube-apiserver-client-kubelet` signs only node client certificates
//! ([`kubelet_client_rules`]); `kubernetes.io/kube-apiserver-client` signs any subject, for
//! client authentication only. A request that breaks its signer's rules gets the condition
//! `Failed` (reason `SignerValidationFailure`) and is never signed; requests of other signers
//! are left for them.
//!
//! The certificate carries the request's public key and subject, the usages asked for, and
//! lives `spec.expirationSeconds` (at least ten minutes) or the signer's one year, whichever is
//! shorter. It is written through the `status` subresource; the approval stays as it was.

use std::time::Duration;

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use kube::ResourceExt;
use tracing::info;

use client::pki::{parse_request, CertificateRequest, Usage};

use super::{is_issued, Condition, Context, Error, SignerName};

/// The group of every node's kubelet, the only organization of a kubelet's certificate.
pub const NODES_GROUP: &str = "system:nodes";

/// The reason of a `Failed` condition for a request its signer refuses.
pub const FAILED_REASON: &str = "SignerValidationFailure";

/// The shortest certificate the signer issues (`spec.expirationSeconds` below is raised).
const MIN_DURATION: Duration = Duration::from_secs(600);

/// What the signer does with one request.
#[derive(Debug, PartialEq)]
pub enum Plan {
    /// Nothing: not approved, decided otherwise, already issued, or another signer's.
    Skip,
    /// Mark it `Failed` with this message.
    Refuse(String),
    /// Sign it.
    Sign {
        request: CertificateRequest,
        usages: Vec<Usage>,
        validity: Duration,
    },
}

/// `ValidateKubeletClientCSR`: `O=system:nodes` alone, `CN=system:node:<name>`, no SANs, and
/// the usages a kubelet asks for (`digital signature`, `client auth`, and `key encipherment`
/// for RSA keys).
pub fn kubelet_client_rules(request: &CertificateRequest, usages: &[String]) -> Result<(), String> {
    if request.organizations != [NODES_GROUP] {
        return Err("subject organization is not system:nodes".into());
    }
    let refused = [
        (!request.dns_names.is_empty(), "DNS"),
        (!request.emails.is_empty(), "Email"),
        (!request.ip_addresses.is_empty(), "IP"),
        (!request.uris.is_empty(), "URI"),
    ];
    if let Some((_, kind)) = refused.iter().find(|(present, _)| *present) {
        return Err(format!("{kind} subjectAltNames are not allowed"));
    }
    if !request.common_name.starts_with("system:node:") {
        return Err("subject common name does not begin with system:node:".into());
    }
    let mut set: Vec<&str> = usages.iter().map(String::as_str).collect();
    set.sort_unstable();
    set.dedup();
    let rsa = ["client auth", "digital signature", "key encipherment"];
    let ecdsa = ["client auth", "digital signature"];
    if set != rsa && set != ecdsa {
        return Err("usages did not match [client auth digital signature key encipherment]".into());
    }
    Ok(())
}

/// `validAPIServerClientUsages`: `client auth`, optionally `digital signature` and
/// `key encipherment`, nothing else.
fn client_usages(usages: &[String]) -> Result<(), String> {
    for u in usages {
        if !matches!(
            u.as_str(),
            "digital signature" | "key encipherment" | "client auth"
        ) {
            return Err(format!("invalid usage for client certificate: {u}"));
        }
    }
    if !usages.iter().any(|u| u == "client auth") {
        return Err("missing required usage for client certificate: client auth".into());
    }
    Ok(())
}

/// What to do with `csr`, signing for at most `max_duration`.
pub fn plan(csr: &CertificateSigningRequest, max_duration: Duration) -> Plan {
    let decided_otherwise = Condition::Denied.is_on(csr) || Condition::Failed.is_on(csr);
    if !Condition::Approved.is_on(csr) || decided_otherwise || is_issued(csr) {
        return Plan::Skip;
    }
    let Some(signer) = SignerName::parse(&csr.spec.signer_name) else {
        return Plan::Skip;
    };
    let request = match parse_request(&csr.spec.request.0) {
        Ok(r) => r,
        Err(e) => return Plan::Refuse(e.to_string()),
    };
    let usages = csr.spec.usages.as_deref().unwrap_or_default();
    let rules = match signer {
        SignerName::KubeletClient => kubelet_client_rules(&request, usages),
        SignerName::ApiserverClient => client_usages(usages),
    };
    if let Err(message) = rules {
        return Plan::Refuse(message);
    }
    let validity = csr
        .spec
        .expiration_seconds
        .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)))
        .map_or(max_duration, |asked| {
            asked.clamp(MIN_DURATION, max_duration)
        });
    Plan::Sign {
        request,
        usages: usages.iter().filter_map(|u| Usage::from_api(u)).collect(),
        validity,
    }
}

/// Sign `csr` or mark it Failed, per [`plan`], through the `status` subresource.
pub async fn sign(csr: &CertificateSigningRequest, ctx: &Context) -> Result<(), Error> {
    let name = csr.name_any();
    let mut updated = csr.clone();
    let status = updated.status.get_or_insert_with(Default::default);
    match plan(csr, ctx.max_duration) {
        Plan::Skip => return Ok(()),
        Plan::Refuse(message) => {
            info!(%message, "refused by its signer");
            status
                .conditions
                .get_or_insert_with(Vec::new)
                .push(Condition::Failed.condition(FAILED_REASON, &message));
        }
        Plan::Sign {
            request,
            usages,
            validity,
        } => {
            let pem = ctx
                .ca
                .sign_request(&request, &usages, validity)
                .map_err(|source| Error::Sign {
                    csr: name.clone(),
                    source,
                })?;
            status.certificate = Some(ByteString(pem.into_bytes()));
            info!(subject = %request.common_name, validity_secs = validity.as_secs(), "issued");
        }
    }
    let api: Api<CertificateSigningRequest> = Api::all(ctx.client.clone());
    api.replace_status(&name, &PostParams::default(), &updated)
        .await
        .map_err(|source| Error::WriteStatus { csr: name, source })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const YEAR: Duration = super::super::DEFAULT_SIGNING_DURATION;

    fn approved(cn: &str, orgs: &[&str], signer: SignerName) -> CertificateSigningRequest {
        let (pem, _) = client::pki::new_request(cn, orgs).unwrap();
        let mut csr = CertificateSigningRequest::default();
        csr.spec.request = ByteString(pem.into_bytes());
        csr.spec.signer_name = signer.as_str().into();
        csr.spec.usages = Some(vec!["digital signature".into(), "client auth".into()]);
        csr.status = Some(Default::default());
        csr.status.as_mut().unwrap().conditions =
            Some(vec![Condition::Approved.condition("KubectlApprove", "ok")]);
        csr
    }

    #[test]
    fn an_approved_node_request_is_signed_for_what_it_asked_within_a_year() {
        let mut csr = approved(
            "system:node:n1",
            &["system:nodes"],
            SignerName::KubeletClient,
        );
        let Plan::Sign {
            usages, validity, ..
        } = plan(&csr, YEAR)
        else {
            panic!("not signed")
        };
        assert_eq!(usages, [Usage::DigitalSignature, Usage::ClientAuth]);
        assert_eq!(validity, YEAR);
        csr.spec.expiration_seconds = Some(3600);
        let Plan::Sign { validity, .. } = plan(&csr, YEAR) else {
            panic!("not signed")
        };
        assert_eq!(validity, Duration::from_secs(3600));
    }

    #[test]
    fn the_kubelet_signer_refuses_an_admin_even_when_approved() {
        let csr = approved("admin", &["system:masters"], SignerName::KubeletClient);
        assert_eq!(
            plan(&csr, YEAR),
            Plan::Refuse("subject organization is not system:nodes".into())
        );
        let csr = approved("admin", &["system:masters"], SignerName::ApiserverClient);
        assert!(matches!(plan(&csr, YEAR), Plan::Sign { .. }));
        let mut server = approved("web", &[], SignerName::ApiserverClient);
        server.spec.usages = Some(vec!["server auth".into()]);
        assert_eq!(
            plan(&server, YEAR),
            Plan::Refuse("invalid usage for client certificate: server auth".into())
        );
    }

    #[test]
    fn pending_issued_and_foreign_requests_are_skipped() {
        let mut pending = approved(
            "system:node:n1",
            &["system:nodes"],
            SignerName::KubeletClient,
        );
        pending.status = None;
        assert_eq!(plan(&pending, YEAR), Plan::Skip);
        let mut issued = approved(
            "system:node:n1",
            &["system:nodes"],
            SignerName::KubeletClient,
        );
        issued.status.as_mut().unwrap().certificate = Some(ByteString(b"x".to_vec()));
        assert_eq!(plan(&issued, YEAR), Plan::Skip);
        let mut foreign = approved(
            "system:node:n1",
            &["system:nodes"],
            SignerName::KubeletClient,
        );
        foreign.spec.signer_name = "example.com/other".into();
        assert_eq!(plan(&foreign, YEAR), Plan::Skip);
    }
}
