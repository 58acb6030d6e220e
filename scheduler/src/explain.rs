//! Explaining decisions: why a pod is still Pending, and where it went.
//!
//! When no node fits, the scheduler counts the filters' reasons over all nodes into one message,
//! `0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node
//! affinity/selector.` (each "count reason" sorted as a string, like upstream `FitError`). The
//! pod gets condition `PodScheduled=False` reason `Unschedulable` with that message, and a
//! `FailedScheduling` Warning event: what `kubectl describe pod` shows. A placed pod gets a
//! `Scheduled` Normal event "Successfully assigned ns/name to node".

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::filter::Reason;

/// Errors while reporting a decision.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// Patching `pods/{name}/status` with the PodScheduled condition failed.
    #[error("patching the PodScheduled condition of {pod}")]
    PatchStatus {
        pod: String,
        #[source]
        source: kube::Error,
    },
    /// Creating the Event failed.
    #[error("recording event {reason} for {pod}")]
    CreateEvent {
        pod: String,
        reason: String,
        #[source]
        source: kube::Error,
    },
}

/// The message for a pod no node fits: `0/N nodes are available: <count reason>, ... .`
pub fn fit_error_message(num_nodes: usize, reasons_per_node: &[Vec<Reason>]) -> String {
    if num_nodes == 0 {
        return "no nodes available to schedule pods".into();
    }
    let mut histogram: HashMap<String, usize> = HashMap::new();
    for reasons in reasons_per_node {
        for r in reasons {
            *histogram.entry(r.to_string()).or_default() += 1;
        }
    }
    let mut parts: Vec<String> = histogram
        .into_iter()
        .map(|(r, n)| format!("{n} {r}"))
        .collect();
    parts.sort();
    format!("0/{num_nodes} nodes are available: {}.", parts.join(", "))
}

/// Set `PodScheduled=False, reason Unschedulable` on the pod, unless it already says so.
pub async fn mark_unschedulable(
    client: &kube::Client,
    pod: &Pod,
    message: &str,
) -> Result<(), ExplainError> {
    let current = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
    if current.is_some_and(|c| c.status == "False" && c.message.as_deref() == Some(message)) {
        return Ok(());
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let patch = json!({"status": {"conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
        "lastProbeTime": null, "lastTransitionTime": jiff::Timestamp::now().to_string(),
    }]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .map(|_| ())
        .map_err(|source| ExplainError::PatchStatus {
            pod: format!("{ns}/{name}"),
            source,
        })
}

/// Who records events: the scheduler's name and this process's identity.
#[derive(Clone)]
pub struct Recorder {
    pub client: kube::Client,
    /// `source.component` and `reportingComponent` (the scheduler name).
    pub component: String,
    /// `reportingInstance` (the leader election identity).
    pub instance: String,
}

impl Recorder {
    /// Record a core/v1 Event about `pod` in its namespace.
    pub async fn record(
        &self,
        pod: &Pod,
        type_: &str,
        reason: &str,
        message: &str,
    ) -> Result<(), ExplainError> {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let now = jiff::Timestamp::now();
        let event = Event {
            metadata: ObjectMeta {
                // Like client-go: object name plus a unique hex suffix.
                name: Some(format!(
                    "{name}.{:x}",
                    now.as_nanosecond() as u64 ^ rand::random::<u16>() as u64
                )),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                namespace: Some(ns.clone()),
                name: Some(name.clone()),
                uid: pod.metadata.uid.clone(),
                resource_version: pod.metadata.resource_version.clone(),
                ..Default::default()
            },
            reason: Some(reason.into()),
            message: Some(message.into()),
            type_: Some(type_.into()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: None,
            }),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: Some(MicroTime(now)),
            count: Some(1),
            action: Some(
                if reason == "Scheduled" {
                    "Binding"
                } else {
                    "Scheduling"
                }
                .into(),
            ),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        api.create(&PostParams::default(), &event)
            .await
            .map(|_| ())
            .map_err(|source| ExplainError::CreateEvent {
                pod: format!("{ns}/{name}"),
                reason: reason.into(),
                source,
            })
    }
}

/// The `Scheduled` event message.
pub fn scheduled_message(pod: &Pod, node: &str) -> String {
    format!(
        "Successfully assigned {}/{} to {node}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_counted_per_node_and_sorted_like_upstream() {
        let affinity = Reason::NodeAffinity;
        let msg = fit_error_message(
            3,
            &[
                vec![Reason::Insufficient("cpu")],
                vec![affinity.clone()],
                vec![affinity],
            ],
        );
        assert_eq!(msg, "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector.");
        let msg = fit_error_message(
            2,
            &[
                vec![Reason::TooManyPods, Reason::Insufficient("memory")],
                vec![Reason::NodeUnschedulable],
            ],
        );
        assert_eq!(msg, "0/2 nodes are available: 1 Insufficient memory, 1 Too many pods, 1 node(s) were unschedulable.");
        assert_eq!(
            fit_error_message(0, &[]),
            "no nodes available to schedule pods"
        );
    }
}
