//! TLS bootstrapping's controller half (issue 13) on a real etcd and apiserver that
//! authenticates static tokens standing for a bootstrap token's user
//! (`system:bootstrap:abcdef` in `system:bootstrappers`) and the controller manager's admin
//! credential: a bootstrapper's node CSR is approved (`AutoApproved`) and signed by the
//! cluster CA, the certificate naming the node as the CSR did; a bootstrapper asking for
//! `CN=admin, O=system:masters` stays Pending, and once a human approves it the kubelet
//! signer refuses it (`Failed`), while the `kube-apiserver-client` signer signs a human-approved
//! request.

mod common;

use std::sync::Arc;
use std::time::Duration;

use apiserver::auth::{Authentication, Authenticator, TokenAuth};
use client::pki::{identity_of, new_request, verify_signed_by, Pki, Sans};
use common::{wait_for, Cluster, Task};
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use serde_json::json;
use testkit::ServerConfig;

const ADMIN_TOKEN: &str = "admin-token";
const BOOTSTRAP_TOKEN: &str = "abcdef.0123456789abcdef";
const TOKENS: &str = "admin-token,kubernetes-admin,1,\"system:masters\"\n\
                      abcdef.0123456789abcdef,system:bootstrap:abcdef,,\"system:bootstrappers\"\n";
const KUBELET_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
const CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client";

/// A cluster authenticating [`TOKENS`], the CSR reconciler running as the admin with a fresh
/// CA, and an API for the bootstrapper and one for the admin.
struct Bootstrap {
    _cluster: Cluster,
    _controller: Task,
    _dir: tempfile::TempDir,
    pki: Arc<Pki>,
    boot: Api<CertificateSigningRequest>,
    admin: Api<CertificateSigningRequest>,
}

impl Bootstrap {
    async fn start() -> Bootstrap {
        let tokens = TokenAuth::parse(TOKENS).unwrap();
        let cluster = Cluster::with_config(ServerConfig {
            authentication: Authentication::new(vec![Authenticator::Token(tokens)]),
            ..Default::default()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let pki = Arc::new(Pki::create(dir.path(), &Sans::default()).unwrap());
        let admin_client = client_with_token(&cluster, ADMIN_TOKEN);
        let controller = Task::spawn(controller::certificates::run(
            admin_client.clone(),
            pki.clone(),
        ));
        Bootstrap {
            boot: Api::all(client_with_token(&cluster, BOOTSTRAP_TOKEN)),
            admin: Api::all(admin_client),
            _cluster: cluster,
            _controller: controller,
            _dir: dir,
            pki,
        }
    }

    /// Post a CSR for `cn` in `orgs` to `signer` as the bootstrapper.
    async fn request(&self, name: &str, cn: &str, orgs: &[&str], signer: &str) {
        let (pem, _key) = new_request(cn, orgs).unwrap();
        let csr = CertificateSigningRequest {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: CertificateSigningRequestSpec {
                request: ByteString(pem.into_bytes()),
                signer_name: signer.into(),
                usages: Some(vec!["digital signature".into(), "client auth".into()]),
                expiration_seconds: Some(3600),
                ..Default::default()
            },
            status: None,
        };
        self.boot
            .create(&PostParams::default(), &csr)
            .await
            .unwrap();
    }

    /// The issued certificate of `name`, once there (PEM).
    async fn issued(&self, name: &str) -> String {
        wait_for(30, &format!("{name}'s certificate"), || async {
            let csr = self.boot.get(name).await.ok()?;
            let cert = csr.status?.certificate?;
            Some(String::from_utf8(cert.0).unwrap())
        })
        .await
    }

    /// Approve `name` as `kubectl certificate approve` does: an Approved condition through
    /// the approval subresource.
    async fn approve_by_hand(&self, name: &str) {
        let mut csr = serde_json::to_value(self.admin.get(name).await.unwrap()).unwrap();
        csr["status"]["conditions"] = json!([{"type": "Approved", "status": "True",
            "reason": "KubectlApprove", "message": "This CSR was approved by kubectl certificate approve."}]);
        let csr: CertificateSigningRequest = serde_json::from_value(csr).unwrap();
        self.admin
            .replace_subresource("approval", name, &PostParams::default(), &csr)
            .await
            .unwrap();
    }
}

/// A kube-rs client presenting `token`.
fn client_with_token(c: &Cluster, token: &str) -> kube::Client {
    let mut config = kube::Config::new(c.url().parse().unwrap());
    config.auth_info = serde_json::from_value(json!({ "token": token })).unwrap();
    kube::Client::try_from(config).unwrap()
}

/// The condition of `type_` on `csr`, as (reason, message).
fn condition(csr: &CertificateSigningRequest, type_: &str) -> Option<(String, String)> {
    let c = csr
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)?;
    Some((
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrappers_node_request_is_approved_and_signed_by_the_cluster_ca() {
    let b = Bootstrap::start().await;
    b.request(
        "node-csr-n1",
        "system:node:n1",
        &["system:nodes"],
        KUBELET_SIGNER,
    )
    .await;
    let cert = b.issued("node-csr-n1").await;
    verify_signed_by(&cert, b.pki.ca_cert_pem()).expect("the certificate chains to the CA");
    let (_, block) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).unwrap();
    let id = identity_of(&block.contents).unwrap();
    assert_eq!(id.user, "system:node:n1");
    assert_eq!(id.groups, ["system:nodes"]);
    let parsed = block.parse_x509().unwrap();
    let lifetime =
        parsed.validity().not_after.timestamp() - parsed.validity().not_before.timestamp();
    assert_eq!(
        lifetime,
        3600 + 300,
        "expirationSeconds, backdated 5 minutes"
    );
    assert!(
        parsed
            .extended_key_usage()
            .unwrap()
            .unwrap()
            .value
            .client_auth
    );

    let csr = b.admin.get("node-csr-n1").await.unwrap();
    assert_eq!(
        csr.spec.username.as_deref(),
        Some("system:bootstrap:abcdef")
    );
    assert_eq!(
        condition(&csr, "Approved"),
        Some((
            "AutoApproved".into(),
            "Auto approving kubelet client certificate after SubjectAccessReview.".into()
        ))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_subject_waits_for_a_human_and_only_the_client_signer_issues_it() {
    let b = Bootstrap::start().await;
    b.request(
        "as-node-signer",
        "admin",
        &["system:masters"],
        KUBELET_SIGNER,
    )
    .await;
    b.request("as-client", "admin", &["system:masters"], CLIENT_SIGNER)
        .await;
    // A node request posted after them is handled: so they were seen and left alone.
    b.request(
        "node-csr-n2",
        "system:node:n2",
        &["system:nodes"],
        KUBELET_SIGNER,
    )
    .await;
    b.issued("node-csr-n2").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for name in ["as-node-signer", "as-client"] {
        let csr = b.admin.get(name).await.unwrap();
        assert_eq!(condition(&csr, "Approved"), None, "{name} approved");
        assert!(csr.status.and_then(|s| s.certificate).is_none());
    }

    // Approved by hand: the kubelet signer still refuses an admin...
    b.approve_by_hand("as-node-signer").await;
    let (reason, message) = wait_for(30, "as-node-signer Failed", || async {
        condition(&b.admin.get("as-node-signer").await.ok()?, "Failed")
    })
    .await;
    assert_eq!(reason, "SignerValidationFailure");
    assert_eq!(message, "subject organization is not system:nodes");
    let refused = b.admin.get("as-node-signer").await.unwrap();
    assert!(refused.status.and_then(|s| s.certificate).is_none());

    // ... and the apiserver-client signer signs what a human approved.
    b.approve_by_hand("as-client").await;
    let cert = b.issued("as-client").await;
    verify_signed_by(&cert, b.pki.ca_cert_pem()).unwrap();
    let (_, block) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).unwrap();
    let id = identity_of(&block.contents).unwrap();
    assert_eq!(
        (id.user.as_str(), id.groups),
        ("admin", vec!["system:masters".to_string()])
    );
}
