//! Client-side apply: the three-way merge behind `kubectl apply`.
//!
//! `apply` must turn the live object into what the file says without undoing what others
//! changed (the scheduler's `nodeName`, a controller's status, defaults the server filled in).
//! So it compares three versions: the *original* (what the last apply sent, kept in the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation), the *modified* (the file
//! now) and the *current* (the live object). Fields in modified that differ from current are
//! set; fields in original but no longer in modified are deleted (`null`); every other field
//! of current is left alone. For built-in kinds the result is a *strategic* merge patch: lists
//! such as `containers` merge item by item on their key (`schema.rs`), and a removed item is
//! sent as `{name: x, $patch: delete}`. An empty patch means `unchanged`.
//! Read next: `../commands/apply.rs`.

pub mod schema;

use serde_json::{Map, Value};

use schema::{list_strategy, ListStrategy};

/// The annotation holding what the last `apply` sent.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The three-way patch that takes `current` to `modified`, deleting what `original` had and
/// `modified` dropped. `strategic`: built-in kinds (keyed lists merge); else a JSON merge
/// patch (lists replaced). Empty when nothing changes.
pub fn three_way_patch(
    original: Option<&Value>,
    modified: &Value,
    current: &Value,
    strategic: bool,
) -> Map<String, Value> {
    let (Some(m), Some(c)) = (modified.as_object(), current.as_object()) else {
        return Map::new();
    };
    let walk = Walk {
        kind: m.get("kind").and_then(Value::as_str).unwrap_or_default(),
        strategic,
    };
    walk.map(original.and_then(Value::as_object), m, c, &mut Vec::new())
}

/// The annotation's value for `object`: the object without the annotation itself (an empty
/// `annotations` map left in its place), as Go's `json.Marshal` writes it (keys sorted, `<>&`
/// escaped), with a final newline: byte for byte what kubectl writes.
pub fn last_applied_value(object: &Value) -> String {
    let mut object = object.clone();
    if let Some(metadata) = object["metadata"].as_object_mut() {
        let annotations = metadata
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(a) = annotations.as_object_mut() {
            a.remove(LAST_APPLIED);
        }
    }
    let json = serde_json::to_string(&sorted(object)).unwrap_or_default();
    let mut escaped = json
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029");
    escaped.push('\n');
    escaped
}

/// `object` carrying its own last-applied annotation (what `apply` sends or creates).
pub fn with_last_applied(object: &Value) -> Value {
    let value = last_applied_value(object);
    let mut object = object.clone();
    let metadata = object.as_object_mut().map(|o| {
        o.entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()))
    });
    if let Some(Value::Object(metadata)) = metadata {
        let annotations = metadata
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(a) = annotations {
            a.insert(LAST_APPLIED.to_string(), Value::String(value));
        }
    }
    object
}

/// The last-applied configuration recorded on a live object, if any (and if it parses).
pub fn recorded_last_applied(current: &Value) -> Option<Value> {
    let text = current["metadata"]["annotations"][LAST_APPLIED].as_str()?;
    serde_json::from_str(text).ok()
}

/// Keys sorted at every level, whatever order `serde_json`'s maps keep.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// One walk over the three versions of an object.
struct Walk<'a> {
    kind: &'a str,
    strategic: bool,
}

impl Walk<'_> {
    /// The patch of one map; `path` is the field names from the root.
    fn map(
        &self,
        original: Option<&Map<String, Value>>,
        modified: &Map<String, Value>,
        current: &Map<String, Value>,
        path: &mut Vec<String>,
    ) -> Map<String, Value> {
        let mut patch = Map::new();
        for (key, m) in modified {
            let o = original.and_then(|o| o.get(key));
            path.push(key.clone());
            self.field(key, o, m, current.get(key), path, &mut patch);
            path.pop();
        }
        for key in original.into_iter().flat_map(|o| o.keys()) {
            if !modified.contains_key(key) && current.contains_key(key) {
                patch.insert(key.clone(), Value::Null);
            }
        }
        patch
    }

    /// Add to `patch` what field `key` needs.
    fn field(
        &self,
        key: &str,
        o: Option<&Value>,
        m: &Value,
        c: Option<&Value>,
        path: &mut Vec<String>,
        patch: &mut Map<String, Value>,
    ) {
        match (m, c) {
            (Value::Object(m), Some(Value::Object(c))) => {
                let d = self.map(o.and_then(Value::as_object), m, c, path);
                if !d.is_empty() {
                    patch.insert(key.to_string(), Value::Object(d));
                }
            }
            (Value::Array(m), Some(Value::Array(c))) if self.strategic => {
                let o = o
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                match list_strategy(self.kind, path) {
                    ListStrategy::MergeByKey(k) => self.keyed_list(key, k, o, m, c, path, patch),
                    ListStrategy::MergeSet => set_list(key, o, m, c, patch),
                    ListStrategy::Atomic if m != c => {
                        patch.insert(key.to_string(), Value::Array(m.clone()));
                    }
                    ListStrategy::Atomic => {}
                }
            }
            _ if Some(m) != c => {
                patch.insert(key.to_string(), m.clone());
            }
            _ => {}
        }
    }

    /// A list merged on `merge_key`: changed and new items, deleted ones as `$patch: delete`,
    /// and `$setElementOrder/<key>` to keep the file's order.
    #[allow(clippy::too_many_arguments)]
    fn keyed_list(
        &self,
        key: &str,
        merge_key: &str,
        o: &[Value],
        m: &[Value],
        c: &[Value],
        path: &mut Vec<String>,
        patch: &mut Map<String, Value>,
    ) {
        let find = |list: &'_ [Value], k: &Value| -> Option<Value> {
            list.iter().find(|i| i.get(merge_key) == Some(k)).cloned()
        };
        let mut items = Vec::new();
        for mi in m {
            let Some(k) = mi.get(merge_key) else {
                continue;
            };
            match (mi.as_object(), find(c, k)) {
                (Some(mo), Some(Value::Object(ci))) => {
                    let oi = find(o, k);
                    let mut d = self.map(oi.as_ref().and_then(Value::as_object), mo, &ci, path);
                    if !d.is_empty() {
                        d.insert(merge_key.to_string(), k.clone());
                        items.push(Value::Object(d));
                    }
                }
                _ => items.push(mi.clone()),
            }
        }
        for oi in o {
            let Some(k) = oi.get(merge_key) else { continue };
            if find(m, k).is_none() && find(c, k).is_some() {
                items.push(serde_json::json!({merge_key: k, "$patch": "delete"}));
            }
        }
        if items.is_empty() {
            return;
        }
        let order: Vec<Value> = m
            .iter()
            .filter_map(|mi| mi.get(merge_key))
            .map(|k| serde_json::json!({merge_key: k}))
            .collect();
        patch.insert(format!("$setElementOrder/{key}"), Value::Array(order));
        patch.insert(key.to_string(), Value::Array(items));
    }
}

/// A set of scalars: add what the file has and the object lacks, remove what the file dropped.
fn set_list(key: &str, o: &[Value], m: &[Value], c: &[Value], patch: &mut Map<String, Value>) {
    let added: Vec<Value> = m.iter().filter(|v| !c.contains(v)).cloned().collect();
    let removed: Vec<Value> = o
        .iter()
        .filter(|v| !m.contains(v) && c.contains(v))
        .cloned()
        .collect();
    if !added.is_empty() {
        patch.insert(key.to_string(), Value::Array(added));
    }
    if !removed.is_empty() {
        patch.insert(
            format!("$deleteFromPrimitiveList/{key}"),
            Value::Array(removed),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(containers: Value, labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "web", "labels": labels},
               "spec": {"containers": containers}})
    }

    #[test]
    fn unchanged_when_the_file_matches_the_live_object_plus_defaults() {
        let file = pod(
            json!([{"name": "a", "image": "busybox"}]),
            json!({"app": "web"}),
        );
        let mut live = file.clone();
        live["spec"]["containers"][0]["imagePullPolicy"] = json!("Always");
        live["spec"]["nodeName"] = json!("node-1");
        live["status"] = json!({"phase": "Pending"});
        assert!(three_way_patch(Some(&file), &file, &live, true).is_empty());
    }

    #[test]
    fn removed_fields_become_null_and_changed_ones_are_set() {
        let original = pod(
            json!([{"name": "a", "image": "busybox"}]),
            json!({"app": "web", "tier": "x"}),
        );
        let modified = pod(
            json!([{"name": "a", "image": "nginx"}]),
            json!({"app": "web"}),
        );
        let mut live = original.clone();
        live["metadata"]["labels"]["added-by-someone"] = json!("yes");
        let patch = three_way_patch(Some(&original), &modified, &live, true);
        assert_eq!(
            Value::Object(patch),
            json!({
                "metadata": {"labels": {"tier": null}},
                "spec": {
                    "$setElementOrder/containers": [{"name": "a"}],
                    "containers": [{"name": "a", "image": "nginx"}],
                },
            })
        );
    }

    #[test]
    fn keyed_list_items_are_added_and_deleted_by_key() {
        let original = pod(
            json!([{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]),
            json!({}),
        );
        let modified = pod(
            json!([{"name": "a", "image": "x"}, {"name": "c", "image": "z"}]),
            json!({}),
        );
        let patch = three_way_patch(Some(&original), &modified, &original, true);
        assert_eq!(
            patch["spec"]["containers"],
            json!([{"name": "c", "image": "z"}, {"name": "b", "$patch": "delete"}])
        );
        let merge = three_way_patch(Some(&original), &modified, &original, false);
        assert_eq!(merge["spec"]["containers"], modified["spec"]["containers"]);
    }

    #[test]
    fn the_annotation_is_gos_json_of_the_object_without_itself() {
        let object = json!({"kind": "Pod", "apiVersion": "v1",
                            "metadata": {"name": "a<b", "annotations": {LAST_APPLIED: "old"}}});
        assert_eq!(
            last_applied_value(&object),
            "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"annotations\":{},\"name\":\"a\\u003cb\"}}\n"
        );
        let applied = with_last_applied(&json!({"kind": "Pod", "metadata": {"name": "a"}}));
        let recorded = recorded_last_applied(&applied).unwrap();
        assert_eq!(
            recorded,
            json!({"kind": "Pod", "metadata": {"annotations": {}, "name": "a"}})
        );
    }
}
