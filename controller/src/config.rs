//! The controller manager's settings, as its command line sets them (`main.rs`).
//!
//! This module sits below every reconciler: `manager.rs` reads it to hand each reconciler what
//! it needs (node IPAM the cluster CIDR, pod GC its quarantine, node lifecycle its grace period,
//! taint eviction its timeout, the CSR signer the cluster CA), and no reconciler imports the manager. Read next: `manager.rs`.

use std::sync::Arc;
use std::time::Duration;

use client::pki::Pki;

/// Settings of the reconcilers that have any (from the command line).
#[derive(Debug, Clone)]
pub struct Config {
    /// A node whose Lease is older than this is NotReady (Unknown).
    pub node_monitor_grace_period: Duration,
    /// How long pods stay on an unreachable (or not-ready) node without a matching toleration
    /// (any other NoExecute taint evicts such pods at once; `taint_eviction.rs`).
    pub pod_eviction_timeout: Duration,
    /// The cluster's pod network, split into one /24 per node.
    pub cluster_cidr: String,
    /// How long a node must be missing before the pods bound to it are collected.
    pub pod_gc_quarantine: Duration,
    /// The CA that signs CertificateSigningRequests (`--cluster-signing-cert-file` and
    /// `--cluster-signing-key-file`); without it no CSR is approved or signed.
    pub cluster_signing: Option<Arc<Pki>>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            node_monitor_grace_period: Duration::from_secs(50),
            pod_eviction_timeout: Duration::from_secs(300),
            cluster_cidr: "10.244.0.0/16".into(),
            pod_gc_quarantine: Duration::from_secs(40),
            cluster_signing: None,
        }
    }
}
