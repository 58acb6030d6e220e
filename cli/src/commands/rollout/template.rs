//! Pod templates of a Deployment's revisions, compared.
//!
//! Each ReplicaSet a Deployment owns carries the pod template of one revision, plus a
//! `pod-template-hash` label the controller added so that the ReplicaSets' pods never overlap.
//! Two templates are therefore *the same revision* when they are equal once that label is
//! removed (kubectl's `equalIgnoreHash`, on Go's semantic equality, where an empty list or
//! map equals a missing one); `undo` restores a template without the label, and `describe
//! deployment` finds the new ReplicaSet by the same comparison. Printing a template is
//! `describe`'s (`describe::pod_template`, kubectl's `DescribePodTemplate`).
//! Read next: `history.rs`, which uses both.

use serde_json::{Map, Value};

/// The label the Deployment controller adds to each ReplicaSet's template and selector.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// `template` without the `pod-template-hash` label (kubectl removes it before rolling back).
pub fn without_hash(template: &Value) -> Value {
    let mut t = template.clone();
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH);
    }
    t
}

/// kubectl's `equalIgnoreHash`: equal once the hash label is removed, an empty list, map or
/// a null counting as absent.
pub fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    normalized(&without_hash(a)) == normalized(&without_hash(b))
}

/// `value` with nulls, empty objects and empty arrays removed, recursively.
fn normalized(value: &Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Object(map) => {
            let out: Map<String, Value> = map
                .iter()
                .filter_map(|(k, v)| normalized(v).map(|v| (k.clone(), v)))
                .collect();
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) => Some(Value::Array(
            items
                .iter()
                .map(|v| normalized(v).unwrap_or(Value::Null))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template(image: &str, hash: Option<&str>) -> Value {
        let mut labels = json!({"app": "web"});
        if let Some(h) = hash {
            labels[POD_TEMPLATE_HASH] = json!(h);
        }
        json!({
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "main", "image": image, "env": []}]},
        })
    }

    #[test]
    fn templates_compare_without_the_hash_label_and_empty_fields() {
        let deployment = template("busybox", None);
        let rs = template("busybox", Some("abc123"));
        assert!(equal_ignore_hash(&deployment, &rs));
        let mut with_nulls = template("busybox", None);
        with_nulls["metadata"]["annotations"] = json!({});
        with_nulls["spec"]["volumes"] = Value::Null;
        assert!(equal_ignore_hash(&with_nulls, &rs));
        assert!(!equal_ignore_hash(&template("busybox:1.36", None), &rs));
        assert_eq!(without_hash(&rs), deployment);
    }
}
