//! Small builders and accessors for the objects tests create and read: a minimal Pod, a
//! Namespace, the status a kubelet would report, and the fields tests look at (phase,
//! conditions, nodeName, taints). Tests build objects as JSON, the way a manifest is written,
//! and read them typed, from `k8s-openapi`. Read next: `cluster.rs` (`create_pod`, `wait_pod`).

use k8s_openapi::api::core::v1::{ContainerStatus, Namespace, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::ResourceExt;
use serde_json::{json, Value};

/// A file of the repository's `manifests/` folder.
pub fn manifest(name: &str) -> String {
    format!("{}/../manifests/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A minimal valid pod in API form.
pub fn pod_json(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]}
    })
}

/// Create namespace `name`.
pub async fn namespace(client: &kube::Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    api.create(&Default::default(), &ns).await.unwrap();
}

/// Merge JSON `b` into `a`: objects key by key, anything else replaced.
pub fn merge(a: &mut Value, b: Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// Pods in `ns` matching `selector`, without those being deleted.
pub async fn live_pods(client: &kube::Client, ns: &str, selector: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = api
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap();
    list.items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

/// What a kubelet would report for a started, ready pod.
pub async fn mark_ready(client: &kube::Client, pod: &Pod) {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap());
    let now = jiff::Timestamp::now().to_string();
    let status = json!({"status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
    }});
    let _ = api
        .patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(status),
        )
        .await;
}

/// The pod's phase ("" before it has one).
pub fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// The node the pod is bound to ("" if none).
pub fn node_of(p: &Pod) -> &str {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

pub fn uid(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap_or_default()
}

/// The status of the pod's `i`th container.
pub fn container_status(p: &Pod, i: usize) -> Option<&ContainerStatus> {
    p.status.as_ref()?.container_statuses.as_ref()?.get(i)
}

/// The status ("True", "False", "Unknown") of the pod's condition of type `t`.
pub fn condition(p: &Pod, t: &str) -> Option<String> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| c.status.clone())
}

/// A pod counts as running when its phase says so and its container reports `running`.
pub fn running(p: &Pod) -> bool {
    phase(p) == "Running"
        && p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| {
                !cs.is_empty()
                    && cs
                        .iter()
                        .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
            })
}

/// The node's Ready condition status ("True", "False", "Unknown").
pub fn ready(n: &Node) -> Option<&str> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

pub fn has_taint(n: &Node, key: &str) -> bool {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| ts.iter().any(|t| t.key == key))
}
