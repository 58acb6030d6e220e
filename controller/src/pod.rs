//! What controllers need to know about a pod: is it active, ready, available, and which pods
//! to delete first when scaling down (upstream `controller.ActivePods` ordering).
//!
//! A pod is *available* once it has been Ready for `minReadySeconds`; Deployments and
//! ReplicaSets count availability, not mere readiness, in their status.

use std::cmp::Ordering;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use std::collections::BTreeMap;

/// Not being deleted and not finished: a pod that counts toward `replicas`.
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("");
    pod.metadata.deletion_timestamp.is_none() && phase != "Succeeded" && phase != "Failed"
}

/// When the pod's Ready condition became True, if it is True now.
pub fn ready_since(pod: &Pod) -> Option<jiff::Timestamp> {
    let conds = pod.status.as_ref()?.conditions.as_ref()?;
    let ready = conds.iter().find(|c| c.type_ == "Ready")?;
    if ready.status != "True" {
        return None;
    }
    Some(
        ready
            .last_transition_time
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
    )
}

/// The Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` at `now`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(t) => t.as_second() + min_ready_seconds as i64 <= now.as_second(),
    }
}

/// Seconds until a ready pod becomes available (for requeueing), if it is not yet.
pub fn seconds_until_available(
    pod: &Pod,
    min_ready_seconds: i32,
    now: jiff::Timestamp,
) -> Option<i64> {
    let t = ready_since(pod)?;
    let left = t.as_second() + min_ready_seconds as i64 - now.as_second();
    (left > 0).then_some(left)
}

/// The ownerReference with `controller: true`, if any.
pub fn controller_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// Does `selector` (matchLabels + matchExpressions) select `labels`? An empty selector selects
/// everything, as in Kubernetes; callers refuse empty selectors where upstream does.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    if let Some(ml) = &selector.match_labels {
        if !ml.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            return false;
        }
    }
    for e in selector.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default();
        let value = labels.get(&e.key);
        let ok = match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Is the selector empty (selects everything)?
pub fn selector_is_empty(selector: &LabelSelector) -> bool {
    selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(|m| m.is_empty())
}

fn phase_rank(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Running") => 2,
        _ => 1,
    }
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0)
}

/// Scale-down order: the pod to delete first compares `Less`. Unscheduled before scheduled,
/// Pending before Running, not ready before ready, ready for less time before longer, more
/// restarts first, newer before older.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    let scheduled = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    let created = |p: &Pod| {
        p.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
    };
    scheduled(a)
        .cmp(&scheduled(b))
        .then(phase_rank(a).cmp(&phase_rank(b)))
        .then(is_ready(a).cmp(&is_ready(b)))
        // Ready more recently (a later timestamp) goes first.
        .then_with(|| match (ready_since(a), ready_since(b)) {
            (Some(x), Some(y)) => y.cmp(&x),
            _ => Ordering::Equal,
        })
        .then(restarts(b).cmp(&restarts(a)))
        .then(created(b).cmp(&created(a)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, Time};

    fn pod(node: Option<&str>, phase: &str, ready_at: Option<i64>, created: i64) -> Pod {
        let mut p = Pod::default();
        p.metadata.creation_timestamp = Some(Time(jiff::Timestamp::from_second(created).unwrap()));
        p.spec = Some(PodSpec {
            node_name: node.map(Into::into),
            ..Default::default()
        });
        p.status = Some(PodStatus {
            phase: Some(phase.into()),
            conditions: ready_at.map(|t| {
                vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(jiff::Timestamp::from_second(t).unwrap())),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        });
        p
    }

    #[test]
    fn deletion_prefers_unscheduled_then_pending_then_not_ready_then_newer() {
        let mut pods = [
            pod(Some("n"), "Running", Some(100), 1),
            pod(Some("n"), "Running", None, 2),
            pod(None, "Pending", None, 3),
            pod(Some("n"), "Pending", None, 4),
            pod(Some("n"), "Running", Some(100), 5),
        ];
        pods.sort_by(deletion_order);
        let order: Vec<i64> = pods
            .iter()
            .map(|p| {
                p.metadata
                    .creation_timestamp
                    .as_ref()
                    .unwrap()
                    .0
                    .as_second()
            })
            .collect();
        assert_eq!(order, vec![3, 4, 2, 5, 1]);
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let p = pod(None, "Running", Some(100), 1);
        let at = |s| jiff::Timestamp::from_second(s).unwrap();
        assert!(is_available(&p, 0, at(100)));
        assert!(!is_available(&p, 10, at(105)));
        assert!(is_available(&p, 10, at(110)));
        assert_eq!(seconds_until_available(&p, 10, at(105)), Some(5));
        assert!(!is_available(&pod(None, "Running", None, 1), 0, at(100)));
    }

    #[test]
    fn selectors_match_labels_and_expressions() {
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        let mut s = LabelSelector {
            match_labels: Some(labels.clone()),
            ..Default::default()
        };
        assert!(selector_matches(&s, &labels));
        s.match_expressions = Some(vec![LabelSelectorRequirement {
            key: "tier".into(),
            operator: "Exists".into(),
            values: None,
        }]);
        assert!(!selector_matches(&s, &labels));
        s.match_expressions.as_mut().unwrap()[0].operator = "DoesNotExist".into();
        assert!(selector_matches(&s, &labels));
    }
}
