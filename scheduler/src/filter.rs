//! Filters: can this pod run on this node at all?
//!
//! Each filter is one of kube-scheduler's default filter plugins, run in the same order
//! (NodeUnschedulable, TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit); the first
//! that refuses a node gives the reasons, worded exactly like upstream, that `explain.rs` counts
//! into "0/3 nodes are available: ...". A node whose Ready condition is not True is treated as
//! carrying the `node.kubernetes.io/not-ready` (or `unreachable`) NoSchedule taint, as the node
//! lifecycle controller would add it (the cache reads that condition once per node update, into
//! `NodeInfo::readiness`). Read next: `score.rs`.

use std::fmt;

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, Taint, Toleration,
};

use crate::cache::{NodeInfo, NodeUsage, Readiness};
use crate::resources::{HostPort, Resources};

/// Why a node was refused; `Display` is kube-scheduler's wording.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// `spec.unschedulable` (cordoned) and the pod does not tolerate it.
    NodeUnschedulable,
    /// A NoSchedule/NoExecute taint the pod does not tolerate.
    UntoleratedTaint { key: String, value: String },
    /// nodeSelector or required node affinity does not match.
    NodeAffinity,
    /// A requested host port is taken.
    NodePorts,
    /// Not enough of a resource left (`cpu`, `memory`).
    Insufficient(&'static str),
    /// The node's allocatable pod count is reached.
    TooManyPods,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NodeUnschedulable => write!(f, "node(s) were unschedulable"),
            Reason::UntoleratedTaint { key, value } => {
                write!(f, "node(s) had untolerated taint {{{key}: {value}}}")
            }
            Reason::NodeAffinity => write!(f, "node(s) didn't match Pod's node affinity/selector"),
            Reason::NodePorts => write!(
                f,
                "node(s) didn't have free ports for the requested pod ports"
            ),
            Reason::Insufficient(r) => write!(f, "Insufficient {r}"),
            Reason::TooManyPods => write!(f, "Too many pods"),
        }
    }
}

/// What the filters need to know about the pod, computed once per scheduling attempt.
#[derive(Debug, Clone)]
pub struct PodFacts<'a> {
    pub pod: &'a Pod,
    pub requests: Resources,
    pub host_ports: Vec<HostPort>,
}

impl<'a> PodFacts<'a> {
    /// Compute the facts of `pod`.
    pub fn of(pod: &'a Pod) -> PodFacts<'a> {
        PodFacts {
            pod,
            requests: crate::resources::pod_requests(pod, false),
            host_ports: crate::resources::host_ports(pod),
        }
    }

    fn tolerations(&self) -> &[Toleration] {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or(&[])
    }
}

/// Run every filter; `Err` holds the reasons of the first filter that refused.
pub fn filter(pod: &PodFacts, node: &NodeInfo, usage: &NodeUsage) -> Result<(), Vec<Reason>> {
    node_unschedulable(pod, &node.node)?;
    taint_toleration(pod, &node.node, node.readiness)?;
    node_affinity(pod.pod, &node.node)?;
    node_ports(pod, usage)?;
    resources_fit(pod, &node.allocatable, usage)
}

/// Whether `toleration` tolerates `taint` (upstream `Toleration.ToleratesTaint`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    let operator = toleration.operator.as_deref().unwrap_or("Equal");
    if key.is_empty() {
        // An empty key with Exists tolerates everything.
        return operator == "Exists";
    }
    if key != taint.key {
        return false;
    }
    match operator {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

fn unschedulable_taint() -> Taint {
    Taint {
        key: "node.kubernetes.io/unschedulable".into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    }
}

/// NodeUnschedulable: a cordoned node takes only pods tolerating `node.kubernetes.io/unschedulable`.
fn node_unschedulable(pod: &PodFacts, node: &Node) -> Result<(), Vec<Reason>> {
    let cordoned = node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    if cordoned
        && !pod
            .tolerations()
            .iter()
            .any(|t| tolerates(t, &unschedulable_taint()))
    {
        return Err(vec![Reason::NodeUnschedulable]);
    }
    Ok(())
}

/// TaintToleration: every NoSchedule/NoExecute taint must be tolerated. A node that is not
/// Ready counts as tainted `node.kubernetes.io/not-ready` (or `unreachable` when Unknown) with
/// effect NoSchedule, also when it already has that key as NoExecute (the node lifecycle
/// controller's eviction taint): every pod tolerates the NoExecute one for a while
/// (DefaultTolerationSeconds), and that must not let new pods land on a dead node.
fn taint_toleration(pod: &PodFacts, node: &Node, readiness: Readiness) -> Result<(), Vec<Reason>> {
    let mut taints: Vec<Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let implicit = match readiness {
        Readiness::Ready => None,
        Readiness::Unknown => Some("node.kubernetes.io/unreachable"),
        Readiness::NotReady => Some("node.kubernetes.io/not-ready"),
    };
    if let Some(key) = implicit {
        if !taints
            .iter()
            .any(|t| t.key == key && t.effect == "NoSchedule")
        {
            taints.push(Taint {
                key: key.into(),
                effect: "NoSchedule".into(),
                ..Default::default()
            });
        }
    }
    for taint in taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
    {
        if !pod.tolerations().iter().any(|t| tolerates(t, taint)) {
            return Err(vec![Reason::UntoleratedTaint {
                key: taint.key.clone(),
                value: taint.value.clone().unwrap_or_default(),
            }]);
        }
    }
    Ok(())
}

/// Whether one node selector requirement holds for the node's labels.
fn requirement_matches(req: &NodeSelectorRequirement, node: &Node) -> bool {
    let label = node.metadata.labels.as_ref().and_then(|l| l.get(&req.key));
    let values = req.values.as_deref().unwrap_or(&[]);
    let as_int = |s: &str| s.parse::<i64>().ok();
    match req.operator.as_str() {
        "In" => label.is_some_and(|v| values.contains(v)),
        "NotIn" => !label.is_some_and(|v| values.contains(v)),
        "Exists" => label.is_some(),
        "DoesNotExist" => label.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), Some(want)) = (
                label.and_then(|v| as_int(v)),
                values.first().and_then(|v| as_int(v)),
            ) else {
                return false;
            };
            if req.operator == "Gt" {
                have > want
            } else {
                have < want
            }
        }
        _ => false,
    }
}

/// Whether a node selector term matches: its expressions and fields are ANDed; an empty term
/// matches nothing (upstream semantics).
pub fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let name = node.metadata.name.as_deref().unwrap_or("");
    exprs.iter().all(|r| requirement_matches(r, node))
        && fields.iter().all(|f| {
            let values = f.values.as_deref().unwrap_or(&[]);
            match (f.key.as_str(), f.operator.as_str()) {
                ("metadata.name", "In") => values.iter().any(|v| v == name),
                ("metadata.name", "NotIn") => !values.iter().any(|v| v == name),
                _ => false,
            }
        })
}

/// NodeAffinity: `spec.nodeSelector` labels all present, and one of the required
/// nodeSelectorTerms matching (terms are ORed).
fn node_affinity(pod: &Pod, node: &Node) -> Result<(), Vec<Reason>> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(());
    };
    let labels = node.metadata.labels.as_ref();
    if let Some(selector) = &spec.node_selector {
        if !selector
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        {
            return Err(vec![Reason::NodeAffinity]);
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    if let Some(required) = required {
        if !required
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, node))
        {
            return Err(vec![Reason::NodeAffinity]);
        }
    }
    Ok(())
}

/// NodePorts: no requested host port may already be used on the node.
fn node_ports(pod: &PodFacts, usage: &NodeUsage) -> Result<(), Vec<Reason>> {
    if pod
        .host_ports
        .iter()
        .any(|want| usage.host_ports.iter().any(|used| used.conflicts(want)))
    {
        return Err(vec![Reason::NodePorts]);
    }
    Ok(())
}

/// NodeResourcesFit: pod count, then cpu and memory requests against allocatable minus what is
/// already requested there. Reports every resource that is short.
fn resources_fit(
    pod: &PodFacts,
    allocatable: &Resources,
    usage: &NodeUsage,
) -> Result<(), Vec<Reason>> {
    let used = &usage.requested;
    let want = &pod.requests;
    let mut reasons = Vec::new();
    if used.pods + 1 > allocatable.pods {
        reasons.push(Reason::TooManyPods);
    }
    if want.milli_cpu > 0 && want.milli_cpu > allocatable.milli_cpu - used.milli_cpu {
        reasons.push(Reason::Insufficient("cpu"));
    }
    if want.memory > 0 && want.memory > allocatable.memory - used.memory {
        reasons.push(Reason::Insufficient("memory"));
    }
    if reasons.is_empty() {
        Ok(())
    } else {
        Err(reasons)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn node(extra: Value) -> NodeInfo {
        let mut n = json!({
            "metadata": {"name": "n1", "labels": {"zone": "a", "cores": "8"}},
            "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "3"}}
        });
        merge(&mut n, extra);
        NodeInfo::new(serde_json::from_value(n).unwrap())
    }

    fn pod(spec: Value) -> Pod {
        let mut p = json!({"metadata": {"name": "p", "namespace": "default", "uid": "u"}, "spec": {"containers": [{"name": "c"}]}});
        merge(&mut p["spec"], spec);
        serde_json::from_value(p).unwrap()
    }

    fn merge(a: &mut Value, b: Value) {
        match (a, b) {
            (Value::Object(a), Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    fn check(pod: &Pod, node: &NodeInfo, usage: &NodeUsage) -> Result<(), Vec<String>> {
        filter(&PodFacts::of(pod), node, usage)
            .map_err(|r| r.iter().map(|r| r.to_string()).collect())
    }

    fn one(reason: &str) -> Result<(), Vec<String>> {
        Err(vec![reason.to_string()])
    }

    #[test]
    fn ready_and_schedulable_nodes_only() {
        let p = pod(json!({}));
        let u = NodeUsage::default();
        assert_eq!(check(&p, &node(json!({})), &u), Ok(()));
        let not_ready =
            node(json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}));
        assert_eq!(
            check(&p, &not_ready, &u),
            one("node(s) had untolerated taint {node.kubernetes.io/not-ready: }")
        );
        let unknown =
            node(json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}));
        assert_eq!(
            check(&p, &unknown, &u),
            one("node(s) had untolerated taint {node.kubernetes.io/unreachable: }")
        );
        // the eviction taint is tolerated for 300 s by every pod; the node still takes none
        let evicting = node(json!({
            "spec": {"taints": [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]},
        }));
        let default_tolerations = pod(json!({"tolerations": [
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        ]}));
        assert_eq!(
            check(&default_tolerations, &evicting, &u),
            one("node(s) had untolerated taint {node.kubernetes.io/unreachable: }")
        );
        let cordoned = node(json!({"spec": {"unschedulable": true}}));
        assert_eq!(check(&p, &cordoned, &u), one("node(s) were unschedulable"));
        let tolerant = pod(
            json!({"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}),
        );
        assert_eq!(check(&tolerant, &cordoned, &u), Ok(()));
    }

    #[test]
    fn taints_need_tolerations() {
        let u = NodeUsage::default();
        let tainted = node(
            json!({"spec": {"taints": [{"key": "gpu", "value": "yes", "effect": "NoSchedule"}]}}),
        );
        assert_eq!(
            check(&pod(json!({})), &tainted, &u),
            one("node(s) had untolerated taint {gpu: yes}")
        );
        let equal =
            pod(json!({"tolerations": [{"key": "gpu", "operator": "Equal", "value": "yes"}]}));
        assert_eq!(check(&equal, &tainted, &u), Ok(()));
        let wrong_value = pod(json!({"tolerations": [{"key": "gpu", "value": "no"}]}));
        assert!(check(&wrong_value, &tainted, &u).is_err());
        let exists = pod(
            json!({"tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]}),
        );
        assert_eq!(check(&exists, &tainted, &u), Ok(()));
        let wrong_effect = pod(
            json!({"tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoExecute"}]}),
        );
        assert!(check(&wrong_effect, &tainted, &u).is_err());
        let everything = pod(json!({"tolerations": [{"operator": "Exists"}]}));
        assert_eq!(check(&everything, &tainted, &u), Ok(()));
        let prefer =
            node(json!({"spec": {"taints": [{"key": "soft", "effect": "PreferNoSchedule"}]}}));
        assert_eq!(
            check(&pod(json!({})), &prefer, &u),
            Ok(()),
            "PreferNoSchedule does not filter"
        );
        let execute = node(json!({"spec": {"taints": [{"key": "evict", "effect": "NoExecute"}]}}));
        assert_eq!(
            check(&pod(json!({})), &execute, &u),
            one("node(s) had untolerated taint {evict: }")
        );
    }

    #[test]
    fn resources_must_fit_what_is_left() {
        let n = node(json!({}));
        let big = pod(
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "1500m", "memory": "1Gi"}}}]}),
        );
        let mut used = NodeUsage::default();
        assert_eq!(check(&big, &n, &used), Ok(()));
        used.requested = Resources {
            milli_cpu: 1000,
            memory: 3 * 1024 * 1024 * 1024 + 1,
            pods: 1,
        };
        assert_eq!(
            check(&big, &n, &used),
            Err(vec![
                "Insufficient cpu".into(),
                "Insufficient memory".into()
            ])
        );
        used.requested = Resources {
            milli_cpu: 500,
            memory: 0,
            pods: 1,
        };
        assert_eq!(check(&big, &n, &used), Ok(()), "exactly full is a fit");
        used.requested.pods = 3;
        assert_eq!(check(&pod(json!({})), &n, &used), one("Too many pods"));
    }

    #[test]
    fn node_selector_and_required_affinity() {
        let n = node(json!({}));
        let u = NodeUsage::default();
        assert_eq!(
            check(&pod(json!({"nodeSelector": {"zone": "a"}})), &n, &u),
            Ok(())
        );
        let affinity_reason = one("node(s) didn't match Pod's node affinity/selector");
        assert_eq!(
            check(&pod(json!({"nodeSelector": {"zone": "b"}})), &n, &u),
            affinity_reason
        );
        let with = |exprs: Value| {
            pod(
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchExpressions": exprs}]}}}}),
            )
        };
        let fits = |exprs: Value| check(&with(exprs), &n, &u).is_ok();
        assert!(fits(
            json!([{"key": "zone", "operator": "In", "values": ["a", "b"]}])
        ));
        assert!(!fits(
            json!([{"key": "zone", "operator": "In", "values": ["b"]}])
        ));
        assert!(fits(
            json!([{"key": "zone", "operator": "NotIn", "values": ["b"]}])
        ));
        assert!(!fits(
            json!([{"key": "zone", "operator": "NotIn", "values": ["a"]}])
        ));
        assert!(fits(
            json!([{"key": "missing", "operator": "NotIn", "values": ["a"]}])
        ));
        assert!(fits(json!([{"key": "zone", "operator": "Exists"}])));
        assert!(!fits(json!([{"key": "missing", "operator": "Exists"}])));
        assert!(fits(
            json!([{"key": "missing", "operator": "DoesNotExist"}])
        ));
        assert!(!fits(json!([{"key": "zone", "operator": "DoesNotExist"}])));
        assert!(fits(
            json!([{"key": "cores", "operator": "Gt", "values": ["4"]}])
        ));
        assert!(!fits(
            json!([{"key": "cores", "operator": "Gt", "values": ["8"]}])
        ));
        assert!(fits(
            json!([{"key": "cores", "operator": "Lt", "values": ["9"]}])
        ));
        assert!(
            !fits(json!([{"key": "zone", "operator": "Lt", "values": ["9"]}])),
            "non-integer label"
        );
        // Expressions within a term are ANDed.
        assert!(!fits(
            json!([{"key": "zone", "operator": "Exists"}, {"key": "missing", "operator": "Exists"}])
        ));
        // Terms are ORed.
        let ored = pod(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["x"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}
            ]}}}}),
        );
        assert_eq!(check(&ored, &n, &u), Ok(()));
        let empty_term = pod(
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{}]}}}}),
        );
        assert_eq!(
            check(&empty_term, &n, &u),
            affinity_reason,
            "an empty term matches nothing"
        );
    }

    #[test]
    fn host_ports_must_be_free() {
        let n = node(json!({}));
        let p = pod(
            json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}),
        );
        let mut u = NodeUsage::default();
        assert_eq!(check(&p, &n, &u), Ok(()));
        u.host_ports.push(HostPort {
            protocol: "UDP".into(),
            host_ip: String::new(),
            port: 8080,
        });
        assert_eq!(check(&p, &n, &u), Ok(()), "another protocol");
        u.host_ports.push(HostPort {
            protocol: "TCP".into(),
            host_ip: "10.0.0.1".into(),
            port: 8080,
        });
        assert_eq!(
            check(&p, &n, &u),
            one("node(s) didn't have free ports for the requested pod ports")
        );
        let specific = pod(
            json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.2"}]}]}),
        );
        assert_eq!(
            check(&specific, &n, &u),
            Ok(()),
            "different addresses do not conflict"
        );
    }
}
