//! Events: what the kubelet did to a pod (Pulling, Created, Started, Killing, BackOff,
//! Unhealthy, FailedMount), posted as core/v1 Events that `kubectl describe` shows. Fire and
//! forget: an event that cannot be posted is logged and dropped.

use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, PostParams};
use serde_json::json;

/// One event about a pod (optionally one of its containers).
#[derive(Debug, Clone)]
pub struct PodEvent {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
    pub container: Option<String>,
}

impl PodEvent {
    pub fn normal(
        reason: &'static str,
        container: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            warning: false,
            reason,
            message: message.into(),
            container: container.map(str::to_string),
        }
    }
    pub fn warning(
        reason: &'static str,
        container: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            warning: true,
            reason,
            message: message.into(),
            container: container.map(str::to_string),
        }
    }
}

/// Posts events as `kubelet` on this node.
#[derive(Clone)]
pub struct Recorder {
    pub client: kube::Client,
    pub node: String,
}

impl Recorder {
    /// Post `events` about `pod` in the background.
    pub fn post(&self, pod: &Pod, events: Vec<PodEvent>) {
        if events.is_empty() {
            return;
        }
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let node = self.node.clone();
        tokio::spawn(async move {
            for e in events {
                let now = Time(jiff::Timestamp::now());
                let mut involved = json!({"apiVersion": "v1", "kind": "Pod", "namespace": ns, "name": name, "uid": uid});
                if let Some(c) = &e.container {
                    involved["fieldPath"] = json!(format!("spec.containers{{{c}}}"));
                }
                let ev = json!({
                    "metadata": {"name": format!("{name}.{}", runtime::random_hex(8)), "namespace": ns},
                    "involvedObject": involved,
                    "reason": e.reason,
                    "message": e.message,
                    "type": if e.warning { "Warning" } else { "Normal" },
                    "source": {"component": "kubelet", "host": node},
                    "reportingComponent": "kubelet",
                    "reportingInstance": node,
                    "firstTimestamp": now,
                    "lastTimestamp": now,
                    "count": 1,
                });
                let ev: Event = match serde_json::from_value(ev) {
                    Ok(ev) => ev,
                    Err(err) => {
                        tracing::warn!(error = %err, "building event");
                        continue;
                    }
                };
                if let Err(err) = api.create(&PostParams::default(), &ev).await {
                    tracing::debug!(namespace = %ns, pod = %name, reason = e.reason, error = %err, "posting event");
                }
            }
        });
    }
}
