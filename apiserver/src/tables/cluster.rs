//! Rows for nodes, namespaces, events and leases. A node's STATUS is its Ready condition
//! (`Ready`, `NotReady`, `Unknown` when absent) plus `SchedulingDisabled` when cordoned; ROLES
//! come from `node-role.kubernetes.io/<role>` labels. An event's LAST SEEN falls back from
//! `lastTimestamp` to `firstTimestamp` to `eventTime` (events.k8s.io events only set the last).

use serde_json::{json, Value};

use super::{age, col, int_at, name, since, str_at, time_at, wide, Col, AGE, NAME};

pub(super) const NODE_COLUMNS: &[Col] = &[
    NAME,
    col("Status", "string", "The status of the node"),
    col("Roles", "string", "The roles of the node"),
    AGE,
    col("Version", "string", "Kubelet Version reported by the node."),
    wide("Internal-IP", "string", "List of addresses reachable to the node. Queried from cloud provider, if available."),
    wide("External-IP", "string", "List of addresses reachable to the node. Queried from cloud provider, if available."),
    wide("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
    wide("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
    wide("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
];

pub(super) const NAMESPACE_COLUMNS: &[Col] = &[
    NAME,
    col("Status", "string", "The status of the namespace"),
    AGE,
];

pub(super) const EVENT_COLUMNS: &[Col] = &[
    col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
    col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
    col("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    col("Object", "string", "The object that this event is about."),
    wide("Subobject", "string", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]."),
    wide("Source", "string", "The component reporting this event. Should be a short machine understandable string."),
    col("Message", "string", "A human-readable description of the status of this operation."),
    wide("First Seen", "string", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
    wide("Count", "string", "The number of times this event has occurred."),
    super::Col { name: "Name", ty: "string", format: "name", description: super::NAME_DOC, priority: 1 },
];

pub(super) const LEASE_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Holder",
        "string",
        "holderIdentity contains the identity of the holder of a current lease.",
    ),
    AGE,
];

pub(super) fn node_cells(obj: &Value, now: jiff::Timestamp) -> Value {
    let conditions = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut status: Vec<&str> = Vec::new();
    if let Some(ready) = conditions.iter().rev().find(|c| c["type"] == "Ready") {
        status.push(if ready["status"] == "True" {
            "Ready"
        } else {
            "NotReady"
        });
    } else {
        status.push("Unknown");
    }
    if obj.pointer("/spec/unschedulable") == Some(&Value::Bool(true)) {
        status.push("SchedulingDisabled");
    }

    let mut roles: Vec<String> = Vec::new();
    for (k, v) in obj
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let role = match k.strip_prefix("node-role.kubernetes.io/") {
            Some(r) => r,
            None if k == "kubernetes.io/role" => v.as_str().unwrap_or_default(),
            None => "",
        };
        if !role.is_empty() && !roles.iter().any(|r| r == role) {
            roles.push(role.to_string());
        }
    }
    roles.sort();
    let roles = if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.join(",")
    };

    let address = |ty: &str| {
        let addresses = obj
            .pointer("/status/addresses")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        addresses
            .iter()
            .find(|a| a["type"] == ty)
            .and_then(|a| a["address"].as_str())
            .unwrap_or("<none>")
            .to_string()
    };
    let info = |field: &str| {
        let v = str_at(obj, &format!("/status/nodeInfo/{field}"));
        if v.is_empty() {
            "<unknown>".to_string()
        } else {
            v.to_string()
        }
    };
    json!([
        name(obj),
        status.join(","),
        roles,
        age(obj, now),
        str_at(obj, "/status/nodeInfo/kubeletVersion"),
        address("InternalIP"),
        address("ExternalIP"),
        info("osImage"),
        info("kernelVersion"),
        info("containerRuntimeVersion"),
    ])
}

pub(super) fn namespace_cells(obj: &Value, now: jiff::Timestamp) -> Value {
    json!([name(obj), str_at(obj, "/status/phase"), age(obj, now)])
}

pub(super) fn lease_cells(obj: &Value, now: jiff::Timestamp) -> Value {
    json!([
        name(obj),
        str_at(obj, "/spec/holderIdentity"),
        age(obj, now)
    ])
}

/// Event cells (core/v1 shape; events.k8s.io fields are used as fallbacks).
pub(super) fn event_cells(obj: &Value, now: jiff::Timestamp) -> Value {
    let first = match time_at(obj, "/firstTimestamp") {
        Some(t) => since(Some(t), now),
        None => since(time_at(obj, "/eventTime"), now),
    };
    let mut last = match time_at(obj, "/lastTimestamp") {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = int_at(obj, "/count", 0);
    if obj.get("series").is_some_and(|s| !s.is_null()) {
        last = since(time_at(obj, "/series/lastObservedTime"), now);
        count = int_at(obj, "/series/count", 0);
    } else if count == 0 {
        count = 1;
    }
    let involved = if obj.get("involvedObject").is_some() {
        "/involvedObject"
    } else {
        "/regarding"
    };
    let kind = str_at(obj, &format!("{involved}/kind")).to_lowercase();
    let target_name = str_at(obj, &format!("{involved}/name"));
    let target = if target_name.is_empty() {
        kind
    } else {
        format!("{kind}/{target_name}")
    };
    let first_non_empty = |a: &str, b: &str| {
        if a.is_empty() {
            str_at(obj, b).to_string()
        } else {
            a.to_string()
        }
    };
    let component = first_non_empty(
        &first_non_empty(str_at(obj, "/source/component"), "/reportingComponent"),
        "/reportingController",
    );
    let instance = first_non_empty(str_at(obj, "/source/host"), "/reportingInstance");
    let source = if instance.is_empty() {
        component
    } else {
        format!("{component}, {instance}")
    };
    let message = first_non_empty(str_at(obj, "/message"), "/note");
    json!([
        last,
        str_at(obj, "/type"),
        str_at(obj, "/reason"),
        target,
        str_at(obj, &format!("{involved}/fieldPath")),
        source,
        message.trim(),
        first,
        count,
        name(obj),
    ])
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ago, now};
    use super::super::{column_definitions, row, IncludeObject};
    use k8s_openapi::api::core::v1::{
        Event, EventSource, Namespace, NamespaceStatus, Node, NodeAddress, NodeCondition, NodeSpec,
        NodeStatus, NodeSystemInfo, ObjectReference,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use serde_json::{json, Value};

    fn cells(resource: &str, v: impl serde::Serialize) -> Value {
        row(
            resource,
            &serde_json::to_value(v).unwrap(),
            now(),
            IncludeObject::None,
        )["cells"]
            .clone()
    }

    fn node(ready: &str, unschedulable: bool) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                creation_timestamp: Some(Time(ago(5 * 86400))),
                labels: Some(
                    [
                        (
                            "node-role.kubernetes.io/control-plane".to_string(),
                            String::new(),
                        ),
                        ("kubernetes.io/role".to_string(), "worker".to_string()),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                unschedulable: Some(unschedulable),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    ..Default::default()
                }]),
                addresses: Some(vec![NodeAddress {
                    type_: "InternalIP".into(),
                    address: "192.168.1.10".into(),
                }]),
                node_info: Some(NodeSystemInfo {
                    kubelet_version: "v1.33.0-minik8s".into(),
                    os_image: "Debian GNU/Linux 12".into(),
                    kernel_version: "6.1.0".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn node_status_roles_and_wide() {
        assert_eq!(
            cells("nodes", node("True", true)),
            json!([
                "n1",
                "Ready,SchedulingDisabled",
                "control-plane,worker",
                "5d",
                "v1.33.0-minik8s",
                "192.168.1.10",
                "<none>",
                "Debian GNU/Linux 12",
                "6.1.0",
                "<unknown>"
            ])
        );
        assert_eq!(cells("nodes", node("Unknown", false))[1], "NotReady");
        let mut bare = node("True", false);
        bare.status = None;
        bare.metadata.labels = None;
        let c = cells("nodes", bare);
        assert_eq!((&c[1], &c[2]), (&json!("Unknown"), &json!("<none>")));
    }

    #[test]
    fn namespace_row() {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some("kube-system".into()),
                creation_timestamp: Some(Time(ago(42))),
                ..Default::default()
            },
            status: Some(NamespaceStatus {
                phase: Some("Active".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            cells("namespaces", ns),
            json!(["kube-system", "Active", "42s"])
        );
    }

    #[test]
    fn event_row_core_and_events_k8s_io_shapes() {
        let ev = Event {
            metadata: ObjectMeta {
                name: Some("web.17a".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                name: Some("web".into()),
                field_path: Some("spec.containers{web}".into()),
                ..Default::default()
            },
            reason: Some("Pulled".into()),
            type_: Some("Normal".into()),
            message: Some("Successfully pulled image \"nginx\" \n".into()),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some("n1".into()),
            }),
            first_timestamp: Some(Time(ago(600))),
            last_timestamp: Some(Time(ago(90))),
            count: Some(4),
            ..Default::default()
        };
        assert_eq!(
            cells("events", ev),
            json!([
                "90s",
                "Normal",
                "Pulled",
                "pod/web",
                "spec.containers{web}",
                "kubelet, n1",
                "Successfully pulled image \"nginx\"",
                "10m",
                4,
                "web.17a"
            ])
        );
        let new_style = json!({"metadata": {"name": "e"}, "regarding": {"kind": "Deployment", "name": "web"}, "reason": "ScalingReplicaSet",
            "type": "Normal", "note": "Scaled up", "reportingController": "deployment-controller", "eventTime": ago(30).to_string()});
        let c = row("events", &new_style, now(), IncludeObject::None)["cells"].clone();
        assert_eq!(
            c,
            json!([
                "30s",
                "Normal",
                "ScalingReplicaSet",
                "deployment/web",
                "",
                "deployment-controller",
                "Scaled up",
                "30s",
                1,
                "e"
            ])
        );
        let defs = column_definitions("events");
        let shown: Vec<_> = defs
            .iter()
            .filter(|c| c["priority"] == 0)
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(shown, ["Last Seen", "Type", "Reason", "Object", "Message"]);
    }

    #[test]
    fn lease_row() {
        let l = json!({"metadata": {"name": "n1", "creationTimestamp": ago(7200).to_string()}, "spec": {"holderIdentity": "n1"}});
        assert_eq!(
            row("leases", &l, now(), IncludeObject::None)["cells"],
            json!(["n1", "n1", "120m"])
        );
    }
}
