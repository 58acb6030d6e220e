//! Node IPAM: give every node its own pod subnet, a /24 out of `--cluster-cidr`.
//!
//! The network plugin on each node hands pod IPs out of `spec.podCIDR`, so two nodes must never
//! share one. The allocator numbers the /24s of the cluster range, takes the lowest one no node
//! holds, and writes it once; a node keeps its subnet for life.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{self, Action};
use kube::runtime::reflector::Store;
use kube::ResourceExt;
use serde_json::json;
use tracing::{info, instrument, warn};

/// What can fail while assigning a pod CIDR.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--cluster-cidr` is not an IPv4 CIDR of /24 or larger.
    #[error(
        "invalid cluster CIDR {0:?}: want an IPv4 range like 10.244.0.0/16 (prefix at most /24)"
    )]
    BadCidr(String),
    /// Every /24 of the range is taken.
    #[error("no pod CIDR left in {0}")]
    Exhausted(String),
    /// Writing the node's spec failed.
    #[error("setting spec.podCIDR of node {node}: {source}")]
    Patch {
        node: String,
        #[source]
        source: kube::Error,
    },
}

/// Parse `a.b.c.d/len` into (network base, prefix length).
pub fn parse_cidr(s: &str) -> Result<(u32, u8), Error> {
    let bad = || Error::BadCidr(s.to_string());
    let (ip, len) = s.split_once('/').ok_or_else(bad)?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    if len > 24 {
        return Err(bad());
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Ok((u32::from(ip) & mask, len))
}

/// The `index`-th /24 of the range, if it fits.
pub fn subnet(base: u32, len: u8, index: u32) -> Option<String> {
    let count = 1u64 << (24 - len);
    ((index as u64) < count).then(|| format!("{}/24", Ipv4Addr::from(base + (index << 8))))
}

/// Shared by every sync.
pub struct Context {
    pub client: kube::Client,
    pub nodes: Store<Node>,
    pub cidr: String,
    /// Subnets handed out by this process (the cache may not show them yet).
    pub allocated: Mutex<HashSet<String>>,
}

/// Run the allocator over `cluster_cidr` (`--cluster-cidr`) until the future is dropped.
pub async fn run(client: kube::Client, cluster_cidr: String) {
    let controller = crate::cache::controller(Api::<Node>::all(client.clone()))
        // One node at a time: two concurrent syncs could pick the same subnet.
        .with_config(controller::Config::default().concurrency(1));
    let nodes = controller.store();
    let ctx = Arc::new(Context {
        client,
        nodes,
        cidr: cluster_cidr,
        allocated: Mutex::default(),
    });
    controller
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// Requeue after a failure, in a second: a node without a subnet cannot run pods.
pub fn error_policy(node: Arc<Node>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!(node = %node.name_any(), error = %err, "pod CIDR allocation failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

/// Give the node a subnet if it has none.
#[instrument(skip_all, fields(node = %node.name_any()))]
pub async fn reconcile(node: Arc<Node>, ctx: Arc<Context>) -> Result<Action, Error> {
    if node
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .is_some_and(|c| !c.is_empty())
    {
        return Ok(Action::await_change());
    }
    // Every subnet in use must be known before one is picked: wait for the full node list.
    if !crate::cache::has_synced(&ctx.nodes) {
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let (base, len) = parse_cidr(&ctx.cidr)?;
    let mut taken = ctx.allocated.lock().unwrap().clone();
    taken.extend(
        ctx.nodes
            .state()
            .iter()
            .filter_map(|n| n.spec.as_ref()?.pod_cidr.clone()),
    );
    let cidr = (0..)
        .map(|i| subnet(base, len, i))
        .take_while(Option::is_some)
        .flatten()
        .find(|c| !taken.contains(c))
        .ok_or_else(|| Error::Exhausted(ctx.cidr.clone()))?;
    let api: Api<Node> = Api::all(ctx.client.clone());
    let patch = json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
    api.patch(
        &node.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
    .map_err(|source| Error::Patch {
        node: node.name_any(),
        source,
    })?;
    ctx.allocated.lock().unwrap().insert(cidr.clone());
    info!(%cidr, "assigned pod CIDR");
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_16_splits_into_256_24s() {
        let (base, len) = parse_cidr("10.244.0.0/16").unwrap();
        assert_eq!(subnet(base, len, 0).unwrap(), "10.244.0.0/24");
        assert_eq!(subnet(base, len, 255).unwrap(), "10.244.255.0/24");
        assert_eq!(subnet(base, len, 256), None);
        assert!(parse_cidr("10.0.0.0/25").is_err());
        assert!(parse_cidr("nonsense").is_err());
    }
}
