//! Scores: among the nodes that fit, which is best?
//!
//! Each score plugin rates a node 0..=100 and the weighted sum decides, as in kube-scheduler:
//! NodeResourcesFit *LeastAllocated* (prefer emptier nodes) and *BalancedAllocation* (keep cpu
//! and memory use even), NodeAffinity's *preferred* terms (weight 2), spreading the pods of one
//! controller over nodes (weight 2) and avoiding PreferNoSchedule taints (weight 3). Requests
//! count with the non-zero defaults (100m, 200Mi). Ties are broken at random so equal nodes
//! share the load. Read next: `bind.rs`.

use k8s_openapi::api::core::v1::Pod;
use rand::Rng;

use crate::cache::{controller_uid, NodeInfo, NodeUsage};
use crate::filter::{term_matches, tolerates};
use crate::resources::{pod_requests, Resources};

/// Highest score a plugin gives (upstream `MaxNodeScore`).
pub const MAX_NODE_SCORE: i64 = 100;

/// The raw, per-node inputs of the scores that are normalized across nodes.
#[derive(Debug, Clone, Copy, Default)]
struct Raw {
    resources: i64,
    affinity: i64,
    same_owner: i64,
    intolerable: i64,
}

/// LeastAllocated: the free fraction of cpu and memory after placing the pod, averaged.
pub fn least_allocated(requested: &Resources, allocatable: &Resources) -> i64 {
    let free = |req: i64, alloc: i64| {
        if alloc <= 0 || req > alloc {
            0
        } else {
            (alloc - req) * MAX_NODE_SCORE / alloc
        }
    };
    (free(requested.milli_cpu, allocatable.milli_cpu) + free(requested.memory, allocatable.memory))
        / 2
}

/// BalancedAllocation: 100 when cpu and memory are used in the same proportion.
pub fn balanced_allocation(requested: &Resources, allocatable: &Resources) -> i64 {
    let fraction = |req: i64, alloc: i64| {
        if alloc <= 0 {
            1.0
        } else {
            (req as f64 / alloc as f64).min(1.0)
        }
    };
    let std = (fraction(requested.milli_cpu, allocatable.milli_cpu)
        - fraction(requested.memory, allocatable.memory))
    .abs()
        / 2.0;
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

/// Sum of the weights of the pod's preferred node affinity terms the node matches.
fn preferred_affinity(pod: &Pod, node: &NodeInfo) -> i64 {
    let preferred = pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        });
    preferred
        .into_iter()
        .flatten()
        .filter(|t| t.weight != 0 && term_matches(&t.preference, &node.node))
        .map(|t| t.weight as i64)
        .sum()
}

/// Number of PreferNoSchedule taints the pod does not tolerate.
fn intolerable_taints(pod: &Pod, node: &NodeInfo) -> i64 {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[]);
    let taints = node
        .node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[]);
    taints
        .iter()
        .filter(|t| {
            t.effect == "PreferNoSchedule" && !tolerations.iter().any(|tol| tolerates(tol, t))
        })
        .count() as i64
}

/// Score every candidate and return the index of the best one (ties broken at random).
/// `candidates` are the nodes that passed the filters, each with what is placed on it.
pub fn select(
    pod: &Pod,
    candidates: &[(&NodeInfo, &NodeUsage)],
    rng: &mut impl Rng,
) -> Option<usize> {
    if candidates.len() <= 1 {
        return if candidates.is_empty() { None } else { Some(0) };
    }
    let want = pod_requests(pod, true);
    let owner = controller_uid(pod);
    let raws: Vec<Raw> = candidates
        .iter()
        .map(|(node, usage)| {
            let mut requested = usage.non_zero_requested;
            requested.add(&want);
            Raw {
                resources: least_allocated(&requested, &node.allocatable)
                    + balanced_allocation(&requested, &node.allocatable),
                affinity: preferred_affinity(pod, node),
                same_owner: owner
                    .as_ref()
                    .and_then(|o| usage.owners.get(o))
                    .copied()
                    .unwrap_or(0) as i64,
                intolerable: intolerable_taints(pod, node),
            }
        })
        .collect();
    let max_affinity = raws.iter().map(|r| r.affinity).max().unwrap_or(0);
    let max_owner = raws.iter().map(|r| r.same_owner).max().unwrap_or(0);
    let max_intolerable = raws.iter().map(|r| r.intolerable).max().unwrap_or(0);
    let normalize = |v: i64, max: i64| if max > 0 { v * MAX_NODE_SCORE / max } else { 0 };
    let mut best: Option<(i64, usize)> = None;
    let mut ties = 0u32;
    for (i, r) in raws.iter().enumerate() {
        let total = r.resources
            + 2 * normalize(r.affinity, max_affinity)
            + 2 * (MAX_NODE_SCORE - normalize(r.same_owner, max_owner))
            + 3 * (MAX_NODE_SCORE - normalize(r.intolerable, max_intolerable));
        match best {
            Some((score, _)) if total < score => {}
            Some((score, _)) if total == score => {
                // Reservoir sampling: each of the tied nodes is picked with equal probability.
                ties += 1;
                if rng.random_range(0..ties) == 0 {
                    best = Some((total, i));
                }
            }
            _ => {
                best = Some((total, i));
                ties = 1;
            }
        }
    }
    best.map(|(_, i)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Node;
    use serde_json::json;

    fn node(name: &str, labels: serde_json::Value) -> NodeInfo {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}
        }))
        .unwrap();
        NodeInfo::new(node)
    }

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs-uid", "controller": true}]},
            "spec": spec}))
        .unwrap()
    }

    #[test]
    fn least_allocated_and_balanced() {
        let alloc = Resources {
            milli_cpu: 1000,
            memory: 1000,
            pods: 10,
        };
        assert_eq!(
            least_allocated(
                &Resources {
                    milli_cpu: 0,
                    memory: 0,
                    pods: 0
                },
                &alloc
            ),
            100
        );
        assert_eq!(
            least_allocated(
                &Resources {
                    milli_cpu: 500,
                    memory: 1000,
                    pods: 0
                },
                &alloc
            ),
            25
        );
        assert_eq!(
            balanced_allocation(
                &Resources {
                    milli_cpu: 500,
                    memory: 500,
                    pods: 0
                },
                &alloc
            ),
            100
        );
        assert_eq!(
            balanced_allocation(
                &Resources {
                    milli_cpu: 1000,
                    memory: 0,
                    pods: 0
                },
                &alloc
            ),
            50
        );
    }

    #[test]
    fn emptier_nodes_spread_owners_and_preferred_affinity_win() {
        let mut rng = rand::rng();
        let (a, b) = (node("a", json!({"disk": "ssd"})), node("b", json!({})));
        let empty = NodeUsage::default();
        let busy = NodeUsage {
            non_zero_requested: Resources {
                milli_cpu: 3000,
                memory: 6 << 30,
                pods: 3,
            },
            ..Default::default()
        };
        let plain = pod(json!({"containers": [{"name": "c"}]}));
        assert_eq!(
            select(&plain, &[(&a, &busy), (&b, &empty)], &mut rng),
            Some(1),
            "the emptier node"
        );

        let mut sibling = NodeUsage::default();
        sibling.owners.insert("rs-uid".into(), 1);
        assert_eq!(
            select(&plain, &[(&a, &sibling), (&b, &empty)], &mut rng),
            Some(1),
            "spread the ReplicaSet"
        );

        let prefers_ssd = pod(
            json!({"containers": [{"name": "c"}], "affinity": {"nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10, "preference":
                {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}}}),
        );
        assert_eq!(
            select(&prefers_ssd, &[(&b, &empty), (&a, &empty)], &mut rng),
            Some(1),
            "preferred affinity"
        );

        // Ties: both equal nodes get picked over many draws.
        let mut seen = [false, false];
        for _ in 0..200 {
            seen[select(&plain, &[(&a, &empty), (&b, &empty)], &mut rng).unwrap()] = true;
        }
        assert_eq!(seen, [true, true]);
    }
}
