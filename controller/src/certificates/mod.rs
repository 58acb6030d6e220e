//! CertificateSigningRequests: the controller manager's half of TLS bootstrapping
//! (kube-controller-manager's `csrapproving` and `csrsigning` controllers).
//!
//! A kubelet joining with a bootstrap token is user `system:bootstrap:<id>` in group
//! `system:bootstrappers`: it may do almost nothing but ask for its real credential. It posts
//! a CSR for signer `kubernetes.io/kube-apiserver-client-kubelet` with the subject
//! `CN=system:node:<name>, O=system:nodes`, and this reconciler does the rest in two steps:
//!
//! 1. `approver.rs` approves (condition `Approved`, reason `AutoApproved`) what a bootstrap
//!    token or a node may ask for: a node client certificate and nothing else. A bootstrap
//!    token is a shared secret handed to whoever sets up machines, so if it could ask for any
//!    subject, `O=system:masters` would make its holder cluster admin. Anything else waits
//!    for a human (`kubectl certificate approve`).
//! 2. `signer.rs` signs approved requests of the signers it knows with the cluster CA and
//!    writes the certificate into `status.certificate`; a request its signer must refuse gets
//!    the condition `Failed` instead.
//!
//! The kubelet watches its CSR until the certificate appears, and from then on authenticates
//! with it as `system:node:<name>`. The reconciler runs only when the manager is given the
//! CA (`--cluster-signing-cert-file`, `--cluster-signing-key-file`). Read next: `approver.rs`.

pub mod approver;
pub mod signer;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestCondition,
};
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::ResourceExt;
use tracing::{instrument, warn};

use client::pki::Pki;

/// The signers this controller signs for (`spec.signerName`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignerName {
    /// `kubernetes.io/kube-apiserver-client-kubelet`: a kubelet's client certificate,
    /// `CN=system:node:<name>, O=system:nodes`; the only one approved automatically.
    KubeletClient,
    /// `kubernetes.io/kube-apiserver-client`: any client certificate for the apiserver,
    /// signed only after a human approved it.
    ApiserverClient,
}

impl SignerName {
    /// The signer named `s`, if it is one of ours.
    pub fn parse(s: &str) -> Option<SignerName> {
        match s {
            "kubernetes.io/kube-apiserver-client-kubelet" => Some(SignerName::KubeletClient),
            "kubernetes.io/kube-apiserver-client" => Some(SignerName::ApiserverClient),
            _ => None,
        }
    }

    /// The `spec.signerName` string.
    pub fn as_str(self) -> &'static str {
        match self {
            SignerName::KubeletClient => "kubernetes.io/kube-apiserver-client-kubelet",
            SignerName::ApiserverClient => "kubernetes.io/kube-apiserver-client",
        }
    }
}

/// The condition types of a CSR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// The request may be signed.
    Approved,
    /// The request will never be signed.
    Denied,
    /// The signer would not or could not sign it.
    Failed,
}

impl Condition {
    /// The condition's `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Approved => "Approved",
            Condition::Denied => "Denied",
            Condition::Failed => "Failed",
        }
    }

    /// Whether `csr` carries this condition (with status True).
    pub fn is_on(self, csr: &CertificateSigningRequest) -> bool {
        csr.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|list| {
                list.iter()
                    .any(|c| c.type_ == self.as_str() && c.status == "True")
            })
    }

    /// A new condition of this type, status True, updated now.
    pub fn condition(self, reason: &str, message: &str) -> CertificateSigningRequestCondition {
        CertificateSigningRequestCondition {
            type_: self.as_str().into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_update_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::now(),
            )),
            last_transition_time: None,
        }
    }
}

/// Whether the CSR's certificate has been issued.
pub fn is_issued(csr: &CertificateSigningRequest) -> bool {
    csr.status
        .as_ref()
        .and_then(|s| s.certificate.as_ref())
        .is_some_and(|c| !c.0.is_empty())
}

/// What can fail while handling one CSR (logged; retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing the approval failed.
    #[error("approving certificatesigningrequest {csr}: {source}")]
    Approve {
        csr: String,
        #[source]
        source: kube::Error,
    },
    /// Writing the certificate or the Failed condition failed.
    #[error("writing the status of certificatesigningrequest {csr}: {source}")]
    WriteStatus {
        csr: String,
        #[source]
        source: kube::Error,
    },
    /// The CA could not sign.
    #[error("signing certificatesigningrequest {csr}: {source}")]
    Sign {
        csr: String,
        #[source]
        source: client::pki::PkiError,
    },
}

/// Shared by every sync.
pub struct Context {
    pub client: kube::Client,
    /// The cluster CA, which signs.
    pub ca: Arc<Pki>,
    /// The longest validity of an issued certificate (kube-controller-manager's
    /// `--cluster-signing-duration`, one year).
    pub max_duration: Duration,
}

/// The longest validity the signer issues, unless `spec.expirationSeconds` asks for less.
pub const DEFAULT_SIGNING_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Approve and sign CSRs with `ca` until the future is dropped.
pub async fn run(client: kube::Client, ca: Arc<Pki>) {
    let controller =
        crate::cache::controller(Api::<CertificateSigningRequest>::all(client.clone()));
    let ctx = Arc::new(Context {
        client,
        ca,
        max_duration: DEFAULT_SIGNING_DURATION,
    });
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// Requeue after a failure (a 409 after the object changed included) in a second.
pub fn error_policy(
    csr: Arc<CertificateSigningRequest>,
    err: &Error,
    _ctx: Arc<Context>,
) -> Action {
    warn!(csr = %csr.name_any(), error = %err, "certificate signing request not handled; retrying");
    Action::requeue(Duration::from_secs(1))
}

/// One pass: approve if the approver may, else sign if approved. Each step writes at most
/// once and the write wakes the next pass, so a CSR goes Pending → Approved → Issued in two.
#[instrument(skip_all, fields(csr = %csr.name_any()))]
pub async fn reconcile(
    csr: Arc<CertificateSigningRequest>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    if approver::approve(&csr, &ctx.client).await? {
        return Ok(Action::await_change());
    }
    signer::sign(&csr, &ctx).await?;
    Ok(Action::await_change())
}
