//! The controller manager: one process running every reconciler, each on its own watches.
//!
//! With leader election (the default) several managers may run; only the one holding the
//! `kube-system/minik8s-controller` Lease runs the reconcilers (see `client::leader` and
//! `main.rs`, which releases the Lease on SIGTERM).

use std::time::Duration;

/// Settings shared by the reconcilers (from the command line).
#[derive(Debug, Clone)]
pub struct Config {
    /// A node whose Lease is older than this is NotReady (Unknown).
    pub node_monitor_grace_period: Duration,
    /// How long pods stay on an unreachable node without a matching toleration.
    pub pod_eviction_timeout: Duration,
    /// The cluster's pod network, split into one /24 per node.
    pub cluster_cidr: String,
    /// How long a node must be missing before the pods bound to it are collected.
    pub pod_gc_quarantine: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            node_monitor_grace_period: Duration::from_secs(50),
            pod_eviction_timeout: Duration::from_secs(300),
            cluster_cidr: "10.244.0.0/16".into(),
            pod_gc_quarantine: Duration::from_secs(40),
        }
    }
}

/// Run every controller until the future is dropped (or one of them ends).
pub async fn run(client: kube::Client, config: Config) {
    tokio::select! {
        _ = crate::replicaset::run(client.clone()) => {}
        _ = crate::deployment::run(client.clone()) => {}
        _ = crate::garbage_collector::run(client.clone()) => {}
        _ = crate::namespace::run(client.clone()) => {}
        _ = crate::node_lifecycle::run(client.clone(), config.clone()) => {}
        _ = crate::node_ipam::run(client.clone(), config.clone()) => {}
        _ = crate::pod_gc::run(client.clone(), config.clone()) => {}
    }
}
