//! PATCH: how a client changes part of a stored object without resending it. The request's
//! Content-Type picks one of four formats: a JSON patch (RFC 6902, a list of operations), a
//! JSON merge patch (RFC 7386, a partial object where `null` deletes), a strategic merge patch
//! (a merge patch that merges keyed lists, see `strategic.rs`), or server-side apply (a partial
//! object the server merges in; simplified here, with no managedFields). Read `strategic.rs`
//! and `schema.rs` next.

mod schema;
mod strategic;

use serde_json::{Map, Value};

use schema::{Field, ListStrategy, Schema};

/// The four PATCH formats, by Content-Type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`: RFC 6902 operations.
    Json,
    /// `application/merge-patch+json`: RFC 7386 merge patch.
    Merge,
    /// `application/strategic-merge-patch+json`: Kubernetes strategic merge patch.
    StrategicMerge,
    /// `application/apply-patch+yaml`: server-side apply.
    Apply,
}

impl PatchType {
    /// The patch type of a Content-Type header value (parameters such as `;charset` ignored).
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        let media = ct
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match media.as_str() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::StrategicMerge),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }

    /// The media type, as written in the Content-Type header.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// Why a patch could not be applied. [`PatchError::status_code`] says whether kube-apiserver
/// answers 400 BadRequest (malformed patch) or 422 Invalid (well-formed but inapplicable).
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The body is not a JSON patch: not a list of `{op, path, ...}` operations.
    #[error("invalid json patch: {0}")]
    DecodeJsonPatch(#[source] serde_json::Error),
    /// A JSON patch `test` operation did not match the stored value.
    #[error("testing value {path} failed: test failed")]
    TestFailed {
        /// The JSON pointer of the failed test.
        path: String,
    },
    /// A JSON patch operation could not be applied (e.g. a path that does not exist).
    #[error("{0}")]
    ApplyJsonPatch(#[source] json_patch::PatchError),
    /// A strategic merge patch whose directives are malformed (`$retainKeys`,
    /// `$setElementOrder`, `$deleteFromPrimitiveList` of the wrong shape).
    #[error("{reason}")]
    BadStrategicPatchFormat {
        /// The upstream error text, e.g. `invalid patch format of retainKeys`.
        reason: String,
    },
    /// A strategic merge patch that cannot be merged (missing merge key, unknown `$patch`...).
    #[error("{reason}")]
    InvalidStrategicPatch {
        /// What went wrong.
        reason: String,
    },
    /// The patch (merge, strategic, apply) or its result is not a JSON object.
    #[error("the patch or its result is not a json object")]
    NotAnObject,
}

impl PatchError {
    /// The HTTP status kube-apiserver answers with: 400 for malformed patches, 422 otherwise.
    pub fn status_code(&self) -> u16 {
        if self.is_bad_request() {
            400
        } else {
            422
        }
    }

    /// Whether this is a 400 BadRequest (the patch itself is malformed).
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            PatchError::DecodeJsonPatch(_)
                | PatchError::BadStrategicPatchFormat { .. }
                | PatchError::NotAnObject
        )
    }
}

/// Apply `patch` of type `patch_type` to `original`, returning the patched object. The caller
/// creates absent objects for server-side apply and checks name/kind/resourceVersion.
pub fn apply_patch(
    original: &Value,
    patch_type: PatchType,
    patch: &Value,
) -> Result<Value, PatchError> {
    let out = match patch_type {
        PatchType::Json => json_patch_apply(original, patch)?,
        PatchType::Merge => {
            if !patch.is_object() {
                return Err(PatchError::NotAnObject);
            }
            let mut doc = original.clone();
            json_patch::merge(&mut doc, patch);
            doc
        }
        PatchType::StrategicMerge => strategic::strategic_merge(original, patch)?,
        PatchType::Apply => server_side_apply(original, patch)?,
    };
    if !out.is_object() {
        return Err(PatchError::NotAnObject);
    }
    Ok(out)
}

fn json_patch_apply(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(PatchError::DecodeJsonPatch)?;
    let mut doc = original.clone();
    json_patch::patch(&mut doc, &ops).map_err(|e| match e.kind {
        json_patch::PatchErrorKind::TestFailed => PatchError::TestFailed {
            path: e.path.to_string(),
        },
        _ => PatchError::ApplyJsonPatch(e),
    })?;
    Ok(doc)
}

/// Server-side apply without field management: deep-merge the applied configuration into the
/// live object. Keyed lists (containers by `name`, ...) merge item by item, sets of scalars
/// union, other lists and scalars are replaced, `null` removes a field.
fn server_side_apply(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let (Value::Object(orig), Value::Object(p)) = (original, patch) else {
        return Err(PatchError::NotAnObject);
    };
    let kind = p
        .get("kind")
        .or_else(|| orig.get("kind"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    Ok(Value::Object(apply_map(
        orig.clone(),
        p,
        Schema::for_kind(kind),
    )))
}

fn apply_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    schema: Schema,
) -> Map<String, Value> {
    for (key, value) in patch {
        if value.is_null() {
            original.remove(key);
            continue;
        }
        let field = schema.field(key);
        let merged = match original.remove(key) {
            Some(current) => apply_value(current, value, field),
            None => apply_value(Value::Null, value, field),
        };
        original.insert(key.clone(), merged);
    }
    original
}

fn apply_value(current: Value, applied: &Value, field: Field) -> Value {
    match (current, applied) {
        (Value::Object(o), Value::Object(p)) => Value::Object(apply_map(o, p, field.schema)),
        (_, Value::Object(p)) => Value::Object(apply_map(Map::new(), p, field.schema)),
        (Value::Array(mut items), Value::Array(applied)) => match field.list {
            ListStrategy::Atomic => Value::Array(applied.clone()),
            ListStrategy::MergeSet => {
                for v in applied {
                    if !items.contains(v) {
                        items.push(v.clone());
                    }
                }
                Value::Array(items)
            }
            ListStrategy::MergeByKey(key) => {
                for v in applied {
                    let wanted = v.get(key);
                    match items.iter().position(|o| {
                        wanted.is_some() && o.get(key) == wanted && same_protocol(key, o, v)
                    }) {
                        Some(i) => items[i] = apply_value(std::mem::take(&mut items[i]), v, field),
                        None => items.push(apply_value(Value::Null, v, field)),
                    }
                }
                Value::Array(items)
            }
        },
        (_, applied) => applied.clone(),
    }
}

/// Server-side apply keys a Service's ports by port *and* protocol (`+listMapKey=port`,
/// `+listMapKey=protocol`), where a strategic merge patch keys them by port alone: 53/UDP and
/// 53/TCP of a DNS Service are two items. Other lists keyed by `port` have no protocol, and a
/// missing protocol is TCP, its default.
fn same_protocol(key: &str, a: &Value, b: &Value) -> bool {
    let protocol = |v: &Value| {
        v.get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("TCP")
            .to_string()
    };
    key != "port" || protocol(a) == protocol(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;

    fn deployment() -> Value {
        let d = Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(1),
                template: PodTemplateSpec {
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "web".into(),
                            image: Some("nginx:1.25".into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut v = serde_json::to_value(d).unwrap();
        v["apiVersion"] = json!("apps/v1");
        v["kind"] = json!("Deployment");
        v
    }

    #[test]
    fn content_types_ignore_parameters() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchType::Merge)
        );
        assert_eq!(
            PatchType::from_content_type("application/strategic-merge-patch+json"),
            Some(PatchType::StrategicMerge)
        );
        assert_eq!(
            PatchType::from_content_type("application/json-patch+json"),
            Some(PatchType::Json)
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            Some(PatchType::Apply)
        );
        assert_eq!(PatchType::from_content_type("application/json"), None);
    }

    #[test]
    fn json_patch_replaces_and_tests() {
        let ops = json!([{"op": "test", "path": "/spec/replicas", "value": 1}, {"op": "replace", "path": "/spec/replicas", "value": 3}]);
        let out = apply_patch(&deployment(), PatchType::Json, &ops).unwrap();
        assert_eq!(out["spec"]["replicas"], 3);
        let ops = json!([{"op": "test", "path": "/spec/replicas", "value": 7}]);
        let err = apply_patch(&deployment(), PatchType::Json, &ops).unwrap_err();
        assert!(
            matches!(err, PatchError::TestFailed { ref path } if path == "/spec/replicas"),
            "{err}"
        );
        assert_eq!(err.status_code(), 422);
        let err = apply_patch(&deployment(), PatchType::Json, &json!({"op": "add"})).unwrap_err();
        assert_eq!(err.status_code(), 400);
        let err = apply_patch(
            &deployment(),
            PatchType::Json,
            &json!([{"op": "remove", "path": "/nope/x"}]),
        )
        .unwrap_err();
        assert!(matches!(err, PatchError::ApplyJsonPatch(_)));
    }

    #[test]
    fn merge_patch_replaces_lists_and_deletes_nulls() {
        let patch =
            json!({"metadata": {"labels": {"app": null, "x": "y"}}, "spec": {"replicas": 3}});
        let out = apply_patch(&deployment(), PatchType::Merge, &patch).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"x": "y"}));
        assert_eq!(out["spec"]["replicas"], 3);
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "other"}]}}}});
        let out = apply_patch(&deployment(), PatchType::Merge, &patch).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "other"}])
        );
        assert!(matches!(
            apply_patch(&deployment(), PatchType::Merge, &json!([1])),
            Err(PatchError::NotAnObject)
        ));
    }

    #[test]
    fn strategic_merge_is_dispatched() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.26"}]}}}});
        let out = apply_patch(&deployment(), PatchType::StrategicMerge, &patch).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1.26"
        );
    }

    #[test]
    fn apply_merges_containers_by_name_and_adds_new_ones() {
        let applied = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"team": "a"}},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "web", "image": "nginx:1.27"}, {"name": "log", "image": "fluent"}]}}}});
        let out = apply_patch(&deployment(), PatchType::Apply, &applied).unwrap();
        assert_eq!(
            out["metadata"]["labels"],
            json!({"app": "web", "team": "a"})
        );
        assert_eq!(out["spec"]["replicas"], 2);
        let c = &out["spec"]["template"]["spec"]["containers"];
        assert_eq!(c[0]["name"], "web");
        assert_eq!(c[0]["image"], "nginx:1.27");
        assert_eq!(c[1], json!({"name": "log", "image": "fluent"}));
    }

    #[test]
    fn apply_keys_service_ports_by_port_and_protocol() {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "dns"},
            "spec": {"ports": [{"port": 53, "protocol": "UDP", "name": "dns"}]}});
        let applied = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "dns"},
            "spec": {"ports": [{"port": 53, "protocol": "UDP", "name": "dns"},
                               {"port": 53, "name": "dns-tcp"}]}});
        let out = apply_patch(&svc, PatchType::Apply, &applied).unwrap();
        assert_eq!(
            out["spec"]["ports"],
            json!([{"port": 53, "protocol": "UDP", "name": "dns"}, {"port": 53, "name": "dns-tcp"}])
        );
    }

    #[test]
    fn apply_replaces_atomic_lists_for_status() {
        let pod = json!({"kind": "Pod", "metadata": {"name": "p"}, "status": {"conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "a"}, {"name": "b"}]}});
        let applied = json!({"status": {"conditions": [{"type": "Initialized", "status": "True"}], "containerStatuses": [{"name": "a", "ready": true}]}});
        let out = apply_patch(&pod, PatchType::Apply, &applied).unwrap();
        assert_eq!(out["status"]["conditions"].as_array().unwrap().len(), 2);
        assert_eq!(
            out["status"]["containerStatuses"],
            json!([{"name": "a", "ready": true}])
        );
    }
}
