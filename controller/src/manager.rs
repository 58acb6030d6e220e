//! The controller manager: one process running every reconciler, each on its own watches.
//!
//! With leader election (the default) several managers may run; only the one holding the
//! `kube-system/minik8s-controller` Lease runs the reconcilers (see `client::leader` and
//! `main.rs`, which releases the Lease on SIGTERM). The manager is the top layer: it uses the
//! reconcilers and `config.rs`, and nothing below imports it.

pub use crate::config::Config;

/// Run every controller until the future is dropped (or one of them ends). Each reconciler
/// gets only its own settings out of `config`.
pub async fn run(client: kube::Client, config: Config) {
    tokio::select! {
        _ = crate::replicaset::run(client.clone()) => {}
        _ = crate::deployment::run(client.clone()) => {}
        _ = crate::endpointslice::run(client.clone()) => {}
        _ = crate::garbage_collector::run(client.clone()) => {}
        _ = crate::namespace::run(client.clone()) => {}
        _ = crate::node_lifecycle::run(client.clone(), (&config).into()) => {}
        _ = crate::taint_eviction::run(client.clone(), config.pod_eviction_timeout) => {}
        _ = crate::node_ipam::run(client.clone(), config.cluster_cidr) => {}
        _ = crate::pod_gc::run(client.clone(), config.pod_gc_quarantine) => {}
        _ = certificates(client.clone(), config.cluster_signing) => {}
    }
}

/// The CSR approver and signer when the manager has the cluster CA; otherwise nothing, for
/// ever (kube-controller-manager likewise starts `csrsigning` only with a signing key pair).
async fn certificates(client: kube::Client, ca: Option<std::sync::Arc<client::pki::Pki>>) {
    match ca {
        Some(ca) => crate::certificates::run(client, ca).await,
        None => std::future::pending().await,
    }
}
