//! The scheduler cache: what each node has and what is already placed on it.
//!
//! Watches (reflectors) of Nodes and Pods feed it. For every node it keeps the sum of the
//! requests of the pods bound to it, bound or merely *assumed*: when the scheduler picks a node
//! it assumes the pod is there at once, before the binding POST returns, so the next pod's
//! decision already sees the space taken. The assumption is confirmed when the watch shows the
//! pod with `spec.nodeName`, and forgotten if the binding fails. Read next: `queue.rs`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use crate::resources::{self, HostPort, Resources};

/// What is placed on one node.
#[derive(Debug, Default, Clone)]
pub struct NodeUsage {
    /// Sum of the requests of the pods on the node (`pods` counts them).
    pub requested: Resources,
    /// The same, with the scoring defaults for containers that request nothing.
    pub non_zero_requested: Resources,
    /// Host ports in use (one entry per pod port).
    pub host_ports: Vec<HostPort>,
    /// Pods per controller (ownerReferences controller uid), for spreading.
    pub owners: HashMap<String, u32>,
}

/// One node as the filters and scores see it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The Node object from the watch.
    pub node: Arc<Node>,
    /// `status.allocatable`, parsed.
    pub allocatable: Resources,
    /// The node's Ready condition, read once when the cache takes the node.
    pub readiness: Readiness,
}

impl NodeInfo {
    /// The node as the cache keeps it: allocatable parsed, readiness read.
    pub fn new(node: Node) -> NodeInfo {
        NodeInfo {
            allocatable: resources::node_allocatable(&node),
            readiness: Readiness::of(&node),
            node: Arc::new(node),
        }
    }
}

/// The status of a node's `Ready` condition. The node lifecycle controller taints a node that
/// is not Ready; the filters treat such a node as carrying that taint already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// `Ready` is True: the kubelet reports a healthy node.
    Ready,
    /// `Ready` is Unknown: the node stopped renewing its heartbeat (unreachable).
    Unknown,
    /// `Ready` is False, or the node has no `Ready` condition yet.
    NotReady,
}

impl Readiness {
    /// Read the `Ready` condition of `node`.
    pub fn of(node: &Node) -> Readiness {
        let status = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.as_str());
        match status {
            Some("True") => Readiness::Ready,
            Some("Unknown") => Readiness::Unknown,
            _ => Readiness::NotReady,
        }
    }

    /// Whether the node is Ready.
    pub fn is_ready(self) -> bool {
        self == Readiness::Ready
    }
}

/// What the cache remembers of a placed pod, to undo its accounting later.
#[derive(Debug, Clone)]
struct PlacedPod {
    node: String,
    requests: Resources,
    non_zero: Resources,
    host_ports: Vec<HostPort>,
    owner: Option<String>,
    /// Assumed by us; the watch has not shown it bound yet.
    assumed: bool,
}

/// Nodes and the pods placed on them, keyed by node name and pod uid.
#[derive(Debug, Default)]
pub struct Cache {
    nodes: BTreeMap<String, NodeInfo>,
    usage: HashMap<String, NodeUsage>,
    pods: HashMap<String, PlacedPod>,
}

/// The uid of the pod's controller (ownerReferences with `controller: true`).
pub fn controller_uid(pod: &Pod) -> Option<String> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.clone())
}

/// A pod that has finished no longer holds its requests.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

impl Cache {
    /// An empty cache.
    pub fn new() -> Cache {
        Cache::default()
    }

    /// Add or replace a node. Returns true if the change may make a pending pod fit
    /// (new node, or labels/taints/allocatable/schedulability/readiness changed).
    pub fn apply_node(&mut self, node: Node) -> bool {
        let name = node.metadata.name.clone().unwrap_or_default();
        let new = NodeInfo::new(node);
        let relevant = match self.nodes.get(&name) {
            None => true,
            Some(old) => {
                old.allocatable != new.allocatable
                    || old.node.metadata.labels != new.node.metadata.labels
                    || old.node.spec != new.node.spec
                    || old.readiness.is_ready() != new.readiness.is_ready()
            }
        };
        self.nodes.insert(name, new);
        relevant
    }

    /// Remove a node (its pods' accounting stays until the pods go).
    pub fn delete_node(&mut self, name: &str) {
        self.nodes.remove(name);
    }

    /// Keep only the nodes named in `names` (after a re-list).
    pub fn retain_nodes(&mut self, names: &HashSet<String>) {
        self.nodes.retain(|n, _| names.contains(n));
    }

    /// The nodes, in name order.
    pub fn nodes(&self) -> impl ExactSizeIterator<Item = &NodeInfo> {
        self.nodes.values()
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// What is placed on `node` (empty if nothing).
    pub fn usage(&self, node: &str) -> &NodeUsage {
        static EMPTY: std::sync::OnceLock<NodeUsage> = std::sync::OnceLock::new();
        self.usage
            .get(node)
            .unwrap_or_else(|| EMPTY.get_or_init(NodeUsage::default))
    }

    /// Whether the pod with this uid is assumed (its binding is in flight).
    pub fn is_assumed(&self, pod_uid: &str) -> bool {
        self.pods.get(pod_uid).is_some_and(|p| p.assumed)
    }

    /// Whether the pod with this uid is accounted on some node.
    pub fn is_placed(&self, pod_uid: &str) -> bool {
        self.pods.contains_key(pod_uid)
    }

    fn place(&mut self, uid: String, placed: PlacedPod) {
        self.unplace(&uid);
        let u = self.usage.entry(placed.node.clone()).or_default();
        u.requested.add(&placed.requests);
        u.non_zero_requested.add(&placed.non_zero);
        u.host_ports.extend(placed.host_ports.iter().cloned());
        if let Some(o) = &placed.owner {
            *u.owners.entry(o.clone()).or_default() += 1;
        }
        self.pods.insert(uid, placed);
    }

    /// Undo a pod's accounting. Returns true if it was placed.
    fn unplace(&mut self, uid: &str) -> bool {
        let Some(p) = self.pods.remove(uid) else {
            return false;
        };
        if let Some(u) = self.usage.get_mut(&p.node) {
            u.requested.sub(&p.requests);
            u.non_zero_requested.sub(&p.non_zero);
            for hp in &p.host_ports {
                if let Some(i) = u.host_ports.iter().position(|x| x == hp) {
                    u.host_ports.swap_remove(i);
                }
            }
            if let Some(o) = &p.owner {
                if let Some(n) = u.owners.get_mut(o) {
                    *n -= 1;
                    if *n == 0 {
                        u.owners.remove(o);
                    }
                }
            }
        }
        true
    }

    fn placed_pod(pod: &Pod, node: &str, assumed: bool) -> PlacedPod {
        PlacedPod {
            node: node.to_string(),
            requests: resources::pod_requests(pod, false),
            non_zero: resources::pod_requests(pod, true),
            host_ports: resources::host_ports(pod),
            owner: controller_uid(pod),
            assumed,
        }
    }

    /// Record a pod seen by the watch. A bound, running pod is (re)accounted on its node (this
    /// confirms an assumption); a finished one is released. Returns true if resources were freed.
    pub fn apply_pod(&mut self, pod: &Pod) -> bool {
        let uid = uid(pod);
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        if node.is_empty() {
            // Not bound (yet): an assumption stays until the binding answers.
            return false;
        }
        if is_terminal(pod) {
            return self.unplace(&uid);
        }
        self.place(uid, Self::placed_pod(pod, &node, false));
        false
    }

    /// A pod was deleted. Returns true if it held resources on a node.
    pub fn delete_pod(&mut self, pod: &Pod) -> bool {
        self.unplace(&uid(pod))
    }

    /// Keep only the pods with uids in `uids` and the assumed ones (after a re-list).
    /// Returns true if anything was released.
    pub fn retain_pods(&mut self, uids: &HashSet<String>) -> bool {
        let gone: Vec<String> = self
            .pods
            .iter()
            .filter(|(u, p)| !p.assumed && !uids.contains(*u))
            .map(|(u, _)| u.clone())
            .collect();
        for u in &gone {
            self.unplace(u);
        }
        !gone.is_empty()
    }

    /// Assume `pod` runs on `node` while its binding is in flight.
    pub fn assume(&mut self, pod: &Pod, node: &str) {
        self.place(uid(pod), Self::placed_pod(pod, node, true));
    }

    /// Drop an assumption whose binding failed (a confirmed pod is left alone).
    pub fn forget(&mut self, pod: &Pod) {
        if self.is_assumed(&uid(pod)) {
            self.unplace(&uid(pod));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(uid: &str, node: &str, cpu: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": uid, "namespace": "default", "uid": uid},
            "spec": {"nodeName": node, "containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}],
                     "resources": {"requests": {"cpu": cpu}}}]}
        }))
        .unwrap()
    }

    fn node(name: &str, ready: Option<&str>) -> Node {
        let conditions: Vec<_> = ready
            .into_iter()
            .map(|s| json!({"type": "Ready", "status": s}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "status": {"conditions": conditions, "allocatable": {"cpu": "2", "pods": "10"}}
        }))
        .unwrap()
    }

    #[test]
    fn readiness_is_read_from_the_ready_condition() {
        assert_eq!(Readiness::of(&node("n", Some("True"))), Readiness::Ready);
        assert_eq!(
            Readiness::of(&node("n", Some("Unknown"))),
            Readiness::Unknown
        );
        assert_eq!(
            Readiness::of(&node("n", Some("False"))),
            Readiness::NotReady
        );
        assert_eq!(Readiness::of(&node("n", None)), Readiness::NotReady);
    }

    #[test]
    fn a_node_update_matters_when_readiness_flips() {
        let mut cache = Cache::new();
        assert!(cache.apply_node(node("n1", Some("False"))), "a new node");
        assert!(!cache.apply_node(node("n1", Some("False"))), "no change");
        assert!(
            !cache.apply_node(node("n1", Some("Unknown"))),
            "still not Ready"
        );
        assert!(cache.apply_node(node("n1", Some("True"))), "now Ready");
        assert_eq!(cache.nodes().next().unwrap().readiness, Readiness::Ready);
    }

    #[test]
    fn assumed_pods_count_until_forgotten_and_bound_pods_until_deleted() {
        let mut cache = Cache::new();
        let mut unbound = pod("a", "", "1");
        cache.assume(&unbound, "n1");
        assert_eq!(cache.usage("n1").requested.milli_cpu, 1000);
        assert!(cache.is_assumed("a"));
        cache.apply_pod(&unbound); // still unbound: the assumption stays
        assert_eq!(cache.usage("n1").requested.pods, 1);
        unbound.spec.as_mut().unwrap().node_name = Some("n1".into());
        cache.apply_pod(&unbound); // the watch confirms
        assert!(!cache.is_assumed("a"));
        assert_eq!(
            cache.usage("n1").requested.milli_cpu,
            1000,
            "confirmation does not double count"
        );
        assert_eq!(cache.usage("n1").host_ports.len(), 1);

        let b = pod("b", "", "500m");
        cache.assume(&b, "n1");
        assert_eq!(cache.usage("n1").requested.milli_cpu, 1500);
        cache.forget(&b);
        assert_eq!(cache.usage("n1").requested.milli_cpu, 1000);

        assert!(cache.delete_pod(&unbound));
        assert_eq!(cache.usage("n1").requested, Resources::default());
        assert!(cache.usage("n1").host_ports.is_empty());
    }
}
