//! Deployment and ReplicaSet rows. READY for a deployment is `readyReplicas/replicas`; the
//! `-o wide` columns list the pod template's containers and images and the selector in its
//! canonical string form (`app=web,tier in (be,fe)`).

use serde_json::{json, Value};

use super::{age, col, int_at, name, wide, Col, AGE, NAME};

const CONTAINERS_DOC: &str = "Names of each container in the template.";
const IMAGES_DOC: &str = "Images referenced by each container in the template.";

pub(super) const DEPLOYMENT_COLUMNS: &[Col] = &[
    NAME,
    col("Ready", "string", "Number of the pod with ready state"),
    col("Up-to-date", "integer", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
    col("Available", "integer", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
    AGE,
    wide("Containers", "string", CONTAINERS_DOC),
    wide("Images", "string", IMAGES_DOC),
    wide("Selector", "string", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
];

pub(super) const REPLICASET_COLUMNS: &[Col] = &[
    NAME,
    col(
        "Desired",
        "integer",
        "Replicas is the number of desired pods.",
    ),
    col(
        "Current",
        "integer",
        "Replicas is the most recently observed number of non-terminating pods.",
    ),
    col(
        "Ready",
        "integer",
        "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.",
    ),
    AGE,
    wide("Containers", "string", CONTAINERS_DOC),
    wide("Images", "string", IMAGES_DOC),
    wide(
        "Selector",
        "string",
        "Selector is a label query over pods that should match the replica count.",
    ),
];

pub(super) fn deployment_cells(obj: &Value, now: jiff::Timestamp) -> Value {
    let desired = int_at(obj, "/spec/replicas", 1);
    let (containers, images) = template_containers(obj);
    json!([
        name(obj),
        format!("{}/{desired}", int_at(obj, "/status/readyReplicas", 0)),
        int_at(obj, "/status/updatedReplicas", 0),
        int_at(obj, "/status/availableReplicas", 0),
        age(obj, now),
        containers,
        images,
        selector_string(obj.pointer("/spec/selector")),
    ])
}

pub(super) fn replicaset_cells(obj: &Value, now: jiff::Timestamp) -> Value {
    let (containers, images) = template_containers(obj);
    json!([
        name(obj),
        int_at(obj, "/spec/replicas", 1),
        int_at(obj, "/status/replicas", 0),
        int_at(obj, "/status/readyReplicas", 0),
        age(obj, now),
        containers,
        images,
        selector_string(obj.pointer("/spec/selector")),
    ])
}

/// Container names and images of the pod template, comma-joined.
fn template_containers(obj: &Value) -> (String, String) {
    let containers = obj
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let join = |field: &str| {
        containers
            .iter()
            .map(|c| c[field].as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(",")
    };
    (join("name"), join("image"))
}

/// A `metav1.LabelSelector` as `labels.Selector.String()`: requirements sorted by key,
/// "" for an empty selector (which selects everything).
fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel.filter(|s| !s.is_null()) else {
        return String::new();
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    for (k, v) in sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or_default())));
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e["key"].as_str().unwrap_or_default();
        let mut values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        values.dedup();
        let values = values.join(",");
        let text = match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({values})"),
            "NotIn" => format!("{key} notin ({values})"),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return "<invalid>".into(),
        };
        reqs.push((key.to_string(), text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    reqs.into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ago, now};
    use super::super::{column_definitions, row, IncludeObject};
    use k8s_openapi::api::apps::v1::{
        Deployment, DeploymentSpec, DeploymentStatus, ReplicaSet, ReplicaSetSpec, ReplicaSetStatus,
    };
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        LabelSelector, LabelSelectorRequirement, ObjectMeta, Time,
    };
    use serde_json::json;

    fn template() -> PodTemplateSpec {
        let c = |n: &str, i: &str| Container {
            name: n.into(),
            image: Some(i.into()),
            ..Default::default()
        };
        PodTemplateSpec {
            spec: Some(PodSpec {
                containers: vec![c("web", "nginx:1.27"), c("log", "fluent-bit")],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn selector() -> LabelSelector {
        LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["db".into()]),
            }]),
        }
    }

    fn meta() -> ObjectMeta {
        ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            creation_timestamp: Some(Time(ago(3 * 3600 + 300))),
            ..Default::default()
        }
    }

    #[test]
    fn deployment_row() {
        let d = Deployment {
            metadata: meta(),
            spec: Some(DeploymentSpec {
                replicas: Some(3),
                selector: selector(),
                template: template(),
                ..Default::default()
            }),
            status: Some(DeploymentStatus {
                ready_replicas: Some(2),
                updated_replicas: Some(3),
                available_replicas: Some(2),
                ..Default::default()
            }),
        };
        let r = row(
            "deployments",
            &serde_json::to_value(d).unwrap(),
            now(),
            IncludeObject::None,
        );
        assert_eq!(
            r["cells"],
            json!([
                "web",
                "2/3",
                3,
                2,
                "3h5m",
                "web,log",
                "nginx:1.27,fluent-bit",
                "app=web,tier notin (db)"
            ])
        );
        let names: Vec<_> = column_definitions("deployments")
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
    }

    #[test]
    fn replicaset_row_without_status() {
        let rs = ReplicaSet {
            metadata: meta(),
            spec: Some(ReplicaSetSpec {
                replicas: Some(2),
                selector: selector(),
                template: Some(template()),
                ..Default::default()
            }),
            status: Some(ReplicaSetStatus {
                replicas: 1,
                ..Default::default()
            }),
        };
        let r = row(
            "replicasets",
            &serde_json::to_value(rs).unwrap(),
            now(),
            IncludeObject::None,
        );
        assert_eq!(
            r["cells"],
            json!([
                "web",
                2,
                1,
                0,
                "3h5m",
                "web,log",
                "nginx:1.27,fluent-bit",
                "app=web,tier notin (db)"
            ])
        );
        let defs = column_definitions("replicasets");
        assert_eq!(defs.iter().filter(|c| c["priority"] == 1).count(), 3);
    }
}
