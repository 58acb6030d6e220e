//! The approver (kube-controller-manager's `csrapproving`, `sarapprove.go`): which requests
//! the cluster grants without asking a human.
//!
//! Exactly two kinds, both for signer `kubernetes.io/kube-apiserver-client-kubelet` and both
//! a well-formed node client request (`CN=system:node:<name>`, `O=system:nodes`, no SANs,
//! client-auth usages; the signer's own rules in `signer.rs`):
//!
//! - **nodeclient**: the requestor is in `system:bootstrappers`, a kubelet joining with a
//!   bootstrap token. It may name any node, which is why the token must be kept secret; it
//!   may never name anything *but* a node, which is the point of checking the subject.
//! - **selfnodeclient**: the requestor is the node itself (`system:node:<name>` in
//!   `system:nodes`) renewing its own certificate, same CN.
//!
//! kube-controller-manager asks RBAC (a SubjectAccessReview on
//! `certificatesigningrequests/nodeclient` or `selfnodeclient`), which kubeadm grants to
//! exactly these groups; with no RBAC here, the groups are checked directly. Everything else
//! stays Pending for `kubectl certificate approve|deny`. Read next: `signer.rs`.

use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::api::{Api, PostParams};
use kube::ResourceExt;
use tracing::info;

use super::signer::{self, NODES_GROUP};
use super::{is_issued, Condition, Error, SignerName};

/// The group of users authenticated by a bootstrap token.
pub const BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers";
/// The reason of an automatic approval.
pub const REASON: &str = "AutoApproved";

/// A request the approver recognises as one it may grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recognized {
    /// A node renewing its own client certificate.
    SelfNodeClient,
    /// A bootstrapping kubelet asking for a node client certificate.
    NodeClient,
}

impl Recognized {
    /// The approval's message, kube-controller-manager's words.
    pub fn message(self) -> &'static str {
        match self {
            Recognized::SelfNodeClient => {
                "Auto approving self kubelet client certificate after SubjectAccessReview."
            }
            Recognized::NodeClient => {
                "Auto approving kubelet client certificate after SubjectAccessReview."
            }
        }
    }
}

/// Whether the approver grants `csr`, and as what. Decided requests (approved, denied or
/// issued) are left alone.
pub fn decide(csr: &CertificateSigningRequest) -> Option<Recognized> {
    if is_issued(csr) || Condition::Approved.is_on(csr) || Condition::Denied.is_on(csr) {
        return None;
    }
    if SignerName::parse(&csr.spec.signer_name) != Some(SignerName::KubeletClient) {
        return None;
    }
    let request = client::pki::parse_request(&csr.spec.request.0).ok()?;
    let usages = csr.spec.usages.as_deref().unwrap_or_default();
    signer::kubelet_client_rules(&request, usages).ok()?;
    let groups = csr.spec.groups.as_deref().unwrap_or_default();
    let in_group = |g: &str| groups.iter().any(|have| have == g);
    let username = csr.spec.username.as_deref().unwrap_or("");
    if username == request.common_name && in_group(NODES_GROUP) {
        Some(Recognized::SelfNodeClient)
    } else if in_group(BOOTSTRAPPERS_GROUP) {
        Some(Recognized::NodeClient)
    } else {
        None
    }
}

/// Approve `csr` through its `approval` subresource if [`decide`] grants it (the write is
/// guarded by the cached resourceVersion). Returns whether it wrote.
pub async fn approve(
    csr: &CertificateSigningRequest,
    client: &kube::Client,
) -> Result<bool, Error> {
    let Some(recognized) = decide(csr) else {
        return Ok(false);
    };
    let mut approved = csr.clone();
    approved
        .status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new)
        .push(Condition::Approved.condition(REASON, recognized.message()));
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    api.replace_subresource(
        "approval",
        &csr.name_any(),
        &PostParams::default(),
        &approved,
    )
    .await
    .map_err(|source| Error::Approve {
        csr: csr.name_any(),
        source,
    })?;
    info!(requestor = csr.spec.username.as_deref().unwrap_or(""), as_ = ?recognized, "approved");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn csr(cn: &str, orgs: &[&str], username: &str, groups: &[&str]) -> CertificateSigningRequest {
        let (pem, _) = client::pki::new_request(cn, orgs).unwrap();
        let mut csr = CertificateSigningRequest::default();
        csr.spec.request = ByteString(pem.into_bytes());
        csr.spec.signer_name = SignerName::KubeletClient.as_str().into();
        csr.spec.usages = Some(vec!["digital signature".into(), "client auth".into()]);
        csr.spec.username = Some(username.into());
        csr.spec.groups = Some(groups.iter().map(|g| g.to_string()).collect());
        csr
    }

    const BOOT: &str = "system:bootstrap:abcdef";

    #[test]
    fn a_bootstrapper_gets_a_node_certificate_and_a_node_renews_its_own() {
        let joining = csr(
            "system:node:n1",
            &[NODES_GROUP],
            BOOT,
            &[BOOTSTRAPPERS_GROUP],
        );
        assert_eq!(decide(&joining), Some(Recognized::NodeClient));
        let renewing = csr(
            "system:node:n1",
            &[NODES_GROUP],
            "system:node:n1",
            &[NODES_GROUP],
        );
        assert_eq!(decide(&renewing), Some(Recognized::SelfNodeClient));
        let other = csr(
            "system:node:n2",
            &[NODES_GROUP],
            "system:node:n1",
            &[NODES_GROUP],
        );
        assert_eq!(decide(&other), None, "a node may renew only its own");
    }

    #[test]
    fn anything_else_waits_for_a_human() {
        let admin = csr("admin", &["system:masters"], BOOT, &[BOOTSTRAPPERS_GROUP]);
        assert_eq!(decide(&admin), None);
        let no_group = csr("system:node:n1", &[], BOOT, &[BOOTSTRAPPERS_GROUP]);
        assert_eq!(decide(&no_group), None);
        let stranger = csr("system:node:n1", &[NODES_GROUP], "alice", &["dev"]);
        assert_eq!(decide(&stranger), None);
        let mut server = csr(
            "system:node:n1",
            &[NODES_GROUP],
            BOOT,
            &[BOOTSTRAPPERS_GROUP],
        );
        server.spec.usages = Some(vec!["digital signature".into(), "server auth".into()]);
        assert_eq!(decide(&server), None);
        let mut other_signer = csr(
            "system:node:n1",
            &[NODES_GROUP],
            BOOT,
            &[BOOTSTRAPPERS_GROUP],
        );
        other_signer.spec.signer_name = SignerName::ApiserverClient.as_str().into();
        assert_eq!(decide(&other_signer), None);
        let mut denied = csr(
            "system:node:n1",
            &[NODES_GROUP],
            BOOT,
            &[BOOTSTRAPPERS_GROUP],
        );
        denied.status = Some(Default::default());
        denied.status.as_mut().unwrap().conditions =
            Some(vec![Condition::Denied.condition("KubectlDeny", "no")]);
        assert_eq!(decide(&denied), None);
    }
}
