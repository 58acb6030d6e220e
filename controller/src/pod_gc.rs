//! Pod garbage collection of orphaned pods (kube-controller-manager's `podgc`): pods bound to a
//! Node that does not exist. No kubelet is left to stop or report them, so they would stay
//! Running forever. But a node missing from our cache may only be too new for it, or be
//! registering again, so a missing node is quarantined first: its pods go only once it has
//! been missing for `--pod-gc-quarantine` (40 s, upstream's `quarantineTime`) and a live GET
//! confirms it is still gone. Each pod is then marked `Failed` with a `DisruptionTarget`
//! condition (reason `DeletionByPodGC`), which tells its owner why, and deleted with grace 0.
//! Read next: `node_lifecycle.rs`, which evicts pods from nodes that exist but went silent.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::ResourceExt;
use serde_json::json;
use tokio::time::Instant;
use tracing::{info, instrument, warn};

use crate::cache;

/// The reason of the `DisruptionTarget` condition a collected pod gets.
pub const REASON: &str = "DeletionByPodGC";

/// What can fail while collecting one pod (logged; the next pass retries).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the node live failed, so it is not known to be gone.
    #[error("reading node {node}: {source}")]
    GetNode {
        node: String,
        #[source]
        source: kube::Error,
    },
    /// Writing the pod's Failed phase and DisruptionTarget condition failed.
    #[error("marking pod {pod} failed: {source}")]
    MarkFailed {
        pod: String,
        #[source]
        source: kube::Error,
    },
    /// Deleting the pod failed.
    #[error("deleting pod {pod}: {source}")]
    Delete {
        pod: String,
        #[source]
        source: kube::Error,
    },
}

/// The collector's caches and the nodes it holds in quarantine.
struct PodGc {
    client: kube::Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    quarantine: Duration,
    /// Node name → when it was first seen missing while pods were bound to it.
    missing_since: HashMap<String, Instant>,
}

/// Run the orphaned-pod collector until dropped; a missing node's pods go after `quarantine`
/// (`--pod-gc-quarantine`).
pub async fn run(client: kube::Client, quarantine: Duration) {
    let (pods, pod_writer) = reflector::store::<Pod>();
    let (nodes, node_writer) = reflector::store::<Node>();
    let pod_watch = reflector::reflector(pod_writer, cache::watch(Api::all(client.clone())))
        .for_each(|_| futures::future::ready(()));
    let node_watch = reflector::reflector(node_writer, cache::watch(Api::all(client.clone())))
        .for_each(|_| futures::future::ready(()));
    let gc = PodGc {
        client,
        pods,
        nodes,
        quarantine,
        missing_since: HashMap::new(),
    };
    tokio::join!(pod_watch, node_watch, gc.run());
}

impl PodGc {
    /// A pass every quarter of the quarantine (at most every 5 s) once both caches have listed.
    async fn run(mut self) {
        let period =
            (self.quarantine / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            tokio::time::sleep(period).await;
            if cache::has_synced(&self.pods) && cache::has_synced(&self.nodes) {
                self.pass().await;
            }
        }
    }

    /// Quarantine the nodes newly missing; collect the pods of those missing for the whole
    /// quarantine and still gone when asked live.
    async fn pass(&mut self) {
        let pods = self.pods.state();
        let due = quarantine(
            &mut self.missing_since,
            pods.iter().filter_map(|p| node_name(p)),
            |n| self.nodes.get(&ObjectRef::new(n)).is_some(),
            Instant::now(),
            self.quarantine,
        );
        for node in due {
            match self.node_is_gone(&node).await {
                Ok(true) => {
                    for p in pods.iter().filter(|p| node_name(p) == Some(node.as_str())) {
                        if let Err(error) = collect(&self.client, p, &node).await {
                            warn!(%error, "pod garbage collection failed; retrying");
                        }
                    }
                }
                // Our cache is behind: the node exists. Should it still be missing from the
                // cache next pass, its quarantine starts over.
                Ok(false) => {
                    self.missing_since.remove(&node);
                }
                Err(error) => warn!(%error, "cannot confirm the node is gone; retrying"),
            }
        }
    }

    /// Ask the apiserver, not the cache.
    async fn node_is_gone(&self, node: &str) -> Result<bool, Error> {
        let api: Api<Node> = Api::all(self.client.clone());
        let found = api.get_opt(node).await.map_err(|source| Error::GetNode {
            node: node.to_string(),
            source,
        })?;
        Ok(found.is_none())
    }
}

/// The node a pod is bound to, if any.
fn node_name(p: &Pod) -> Option<&str> {
    p.spec
        .as_ref()?
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())
}

/// Record when each node that pods are `bound` to was first seen missing (`exists` is the
/// cache's word), forget nodes that are back or have no pods left, and return those missing
/// for at least `quarantine`.
fn quarantine<'a>(
    missing_since: &mut HashMap<String, Instant>,
    bound: impl IntoIterator<Item = &'a str>,
    exists: impl Fn(&str) -> bool,
    now: Instant,
    quarantine: Duration,
) -> Vec<String> {
    let missing: HashSet<&str> = bound.into_iter().filter(|n| !exists(n)).collect();
    missing_since.retain(|n, _| missing.contains(n.as_str()));
    for n in missing {
        missing_since.entry(n.to_string()).or_insert(now);
    }
    missing_since
        .iter()
        .filter(|(_, since)| now.duration_since(**since) >= quarantine)
        .map(|(n, _)| n.clone())
        .collect()
}

/// Mark the pod Failed with a DisruptionTarget condition (unless it has already finished),
/// then delete it with grace 0: no kubelet is left to stop its containers.
#[instrument(skip_all, fields(pod = %p.name_any(), %node))]
async fn collect(client: &kube::Client, p: &Pod, node: &str) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &p.namespace().unwrap_or_default());
    let name = p.name_any();
    let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
    if !matches!(phase, Some("Succeeded" | "Failed")) {
        let patch = Patch::Strategic(failed_status(jiff::Timestamp::now()));
        match api
            .patch_status(&name, &PatchParams::default(), &patch)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
            Err(source) => return Err(Error::MarkFailed { pod: name, source }),
        }
    }
    // The uid precondition spares a new pod that took the same name meanwhile.
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: p.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default().grace_period(0)
    };
    match api.delete(&name, &dp).await {
        Ok(_) => info!("deleted pod of a node that is gone"),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(source) => return Err(Error::Delete { pod: name, source }),
    }
    Ok(())
}

/// The status patch (strategic: conditions merge by type) of a pod whose node is gone.
fn failed_status(now: jiff::Timestamp) -> serde_json::Value {
    json!({"status": {
        "phase": "Failed",
        "conditions": [{
            "type": "DisruptionTarget",
            "status": "True",
            "reason": REASON,
            "message": "PodGC: node no longer exists",
            "lastTransitionTime": now.to_string(),
        }],
    }})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_is_due_after_the_whole_quarantine_and_forgotten_when_back() {
        let q = Duration::from_secs(40);
        let t0 = Instant::now();
        let mut since = HashMap::new();
        let none = |_: &str| false;
        let pass = |since: &mut HashMap<_, _>, exists: &dyn Fn(&str) -> bool, at: u64| {
            quarantine(
                since,
                ["gone", "gone"],
                exists,
                t0 + Duration::from_secs(at),
                q,
            )
        };
        assert!(pass(&mut since, &none, 0).is_empty(), "first seen missing");
        assert!(pass(&mut since, &none, 39).is_empty());
        assert_eq!(pass(&mut since, &none, 40), ["gone"]);
        // back in the cache: forgotten; missing again: the quarantine starts over
        assert!(pass(&mut since, &|_| true, 41).is_empty());
        assert!(since.is_empty());
        assert!(pass(&mut since, &none, 42).is_empty());
        assert!(pass(&mut since, &none, 81).is_empty());
        assert_eq!(pass(&mut since, &none, 82), ["gone"]);
    }

    #[test]
    fn a_node_without_pods_leaves_the_quarantine() {
        let mut since = HashMap::new();
        let now = Instant::now();
        quarantine(&mut since, ["n"], |_| false, now, Duration::ZERO);
        assert!(quarantine(&mut since, [], |_| false, now, Duration::ZERO).is_empty());
        assert!(since.is_empty());
    }
}
