//! Strategic merge patch: Kubernetes' own patch format, a JSON merge patch that knows which
//! lists are sets of keyed items (containers by `name`, conditions by `type`) so a patch can
//! touch one item without resending the list. Directives steer it: `null` deletes a field,
//! `$patch: replace|delete` in a map or list item, `$setElementOrder/<list>` fixes the order,
//! `$deleteFromPrimitiveList/<list>` removes scalars, `$retainKeys` clears the keys not listed.
//! This is what `kubectl apply` (client-side) and `kubectl edit` send; see `schema.rs` for keys.

use serde_json::{Map, Value};

use super::schema::{Field, ListStrategy, Schema};
use super::PatchError;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// Apply a strategic merge `patch` to `original` (both objects); the kind is read from
/// `original.kind` (or the patch's) to pick the schema.
pub fn strategic_merge(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let (Value::Object(orig), Value::Object(p)) = (original, patch) else {
        return Err(PatchError::NotAnObject);
    };
    let kind = orig
        .get("kind")
        .or_else(|| p.get("kind"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    merge_map(orig.clone(), p.clone(), Schema::for_kind(kind)).map(Value::Object)
}

fn invalid(reason: String) -> PatchError {
    PatchError::InvalidStrategicPatch { reason }
}

fn bad_format(reason: &str) -> PatchError {
    PatchError::BadStrategicPatchFormat {
        reason: reason.to_string(),
    }
}

/// Merge the `patch` map into the `original` map of type `schema`.
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: Schema,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.remove(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => merge_map(Map::new(), patch, schema),
            Some("delete") => Ok(Map::new()),
            _ => Err(invalid(format!(
                "unknown patch type: {directive} in map: {}",
                Value::Object(patch)
            ))),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    apply_set_element_order(&mut original, &mut patch, schema)?;

    for (key, patch_value) in patch {
        let (key, delete_list) = if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            (
                extract_key(
                    &key,
                    DELETE_FROM_PRIMITIVE_LIST,
                    "invalid patch format of primitive list",
                )?,
                true,
            )
        } else {
            (key, false)
        };
        // The server ignores nulls for absent fields (IgnoreUnmatchedNulls).
        if patch_value.is_null() {
            original.remove(&key);
            continue;
        }
        let field = schema.field(&key);
        let Some(current) = original.remove(&key) else {
            if !delete_list {
                if let Some(value) = fresh(patch_value, field)? {
                    original.insert(key, value);
                }
            }
            continue;
        };
        let merged = match (current, patch_value) {
            (Value::Object(o), Value::Object(p)) => Value::Object(merge_map(o, p, field.schema)?),
            (Value::Array(o), Value::Array(p)) => {
                Value::Array(merge_list(o, p, field, delete_list)?)
            }
            (current, _) if delete_list => current,
            (_, p) => match fresh(p, field)? {
                Some(value) => value,
                None => continue,
            },
        };
        original.insert(key, merged);
    }
    Ok(original)
}

/// A patch value with no stored value of its type to merge into (upstream `removeDirectives`):
/// `None` if it is a map carrying `$patch`, which goes with its key whatever the directive
/// says (`$patch: delete` of something absent leaves no trace); else the value without such
/// maps and list items, its other directives and nulls resolved.
fn fresh(value: Value, field: Field) -> Result<Option<Value>, PatchError> {
    match strip_patch_directives(value) {
        Some(value) => clean(value, field).map(Some),
        None => Ok(None),
    }
}

/// `value` without the maps carrying `$patch` (and the keys or list items holding them);
/// `None` if `value` itself is one.
fn strip_patch_directives(value: Value) -> Option<Value> {
    match value {
        Value::Object(map) if map.contains_key(DIRECTIVE) => None,
        Value::Object(map) => Some(Value::Object(
            map.into_iter()
                .filter_map(|(k, v)| strip_patch_directives(v).map(|v| (k, v)))
                .collect(),
        )),
        Value::Array(items) => Some(Value::Array(
            items
                .into_iter()
                .filter_map(strip_patch_directives)
                .collect(),
        )),
        scalar => Some(scalar),
    }
}

/// A patch value with no stored counterpart, with its directives and nulls resolved (as if
/// merged into nothing).
fn clean(value: Value, field: Field) -> Result<Value, PatchError> {
    Ok(match value {
        Value::Object(p) => Value::Object(merge_map(Map::new(), p, field.schema)?),
        Value::Array(p) => Value::Array(merge_list(Vec::new(), p, field, false)?),
        scalar => scalar,
    })
}

/// Merge a patch list into a stored list according to the field's strategy.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    field: Field,
    delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    if delete_list {
        return Ok(original
            .into_iter()
            .filter(|v| !patch.iter().any(|d| same(v, d)))
            .collect());
    }
    let key = match field.list {
        ListStrategy::Atomic => {
            let item = Field {
                list: ListStrategy::Atomic,
                schema: field.schema,
            };
            return patch.into_iter().map(|v| clean(v, item)).collect();
        }
        ListStrategy::MergeSet => None,
        ListStrategy::MergeByKey(key) => Some(key),
    };
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let maps = element_kind_is_map(&original, &patch)?;
    let Some(key) = key.filter(|_| maps) else {
        if maps {
            return Err(invalid(
                "cannot merge lists without merge key for type map".into(),
            ));
        }
        // A set of scalars: union, deduplicated.
        let mut merged: Vec<Value> = Vec::new();
        for v in original.iter().chain(patch.iter()) {
            if !merged.iter().any(|m| same(m, v)) {
                merged.push(v.clone());
            }
        }
        let (in_patch, server_only) = partition(merged, &patch, None)?;
        return Ok(normalize_element_order(
            in_patch,
            server_only,
            &patch,
            &original,
            None,
        ));
    };

    let (original, patch, replace) = apply_list_directives(original, patch, key)?;
    if replace {
        let item = Field {
            list: ListStrategy::Atomic,
            schema: field.schema,
        };
        return patch.into_iter().map(|v| clean(v, item)).collect();
    }
    let mut merged = original.clone();
    for item in &patch {
        let Value::Object(p) = item else {
            unreachable!("element kinds were checked")
        };
        let Some(wanted) = p.get(key) else {
            return Err(no_merge_key(item, key));
        };
        match merged
            .iter()
            .position(|o| o.get(key).is_some_and(|v| same(v, wanted)))
        {
            Some(i) => {
                let Value::Object(o) = std::mem::take(&mut merged[i]) else {
                    unreachable!()
                };
                merged[i] = Value::Object(merge_map(o, p.clone(), field.schema)?);
            }
            None => merged.push(Value::Object(merge_map(
                Map::new(),
                p.clone(),
                field.schema,
            )?)),
        }
    }
    let (in_patch, server_only) = partition(merged, &patch, Some(key))?;
    Ok(normalize_element_order(
        in_patch,
        server_only,
        &patch,
        &original,
        Some(key),
    ))
}

/// Whether the list items are maps (true) or scalars (false); lists of lists and mixed lists
/// are refused.
fn element_kind_is_map(original: &[Value], patch: &[Value]) -> Result<bool, PatchError> {
    let mut kind = None;
    for v in original.iter().chain(patch) {
        if v.is_array() {
            return Err(invalid("lists of lists are not supported".into()));
        }
        let is_map = v.is_object();
        if kind.is_some_and(|k| k != is_map) {
            return Err(invalid("list element types are not identical".into()));
        }
        kind = Some(is_map);
    }
    Ok(kind.unwrap_or(false))
}

/// Handle the `$patch` items of a keyed list: `delete` removes the stored item with that key,
/// `replace` makes the rest of the patch list the whole list. Returns the stored list, the
/// patch items without directives, and whether to replace.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>, bool), PatchError> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        match item.get(DIRECTIVE) {
            None => plain.push(item),
            Some(d) if d == "delete" => {
                let Some(wanted) = item.get(key) else {
                    return Err(no_merge_key(&item, key));
                };
                original.retain(|o| !o.get(key).is_some_and(|v| same(v, wanted)));
            }
            Some(d) if d == "replace" => replace = true,
            Some(d) if d == "merge" => {
                return Err(invalid(
                    "merging lists cannot yet be specified in the patch".into(),
                ))
            }
            Some(d) => return Err(invalid(format!("unknown patch type: {d} in map: {item}"))),
        }
    }
    Ok((original, plain, replace))
}

fn no_merge_key(item: &Value, key: &str) -> PatchError {
    invalid(format!(
        "map: {item} does not contain declared merge key: {key}"
    ))
}

/// `$retainKeys`: drop stored keys that are not listed; every key the patch sets must be listed.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(bad_format("invalid patch format of retainKeys"));
    };
    let listed = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    for (k, v) in patch.iter() {
        let directive =
            k.starts_with(DELETE_FROM_PRIMITIVE_LIST) || k.starts_with(SET_ELEMENT_ORDER);
        if !v.is_null() && !directive && !listed(k) {
            return Err(bad_format("invalid patch format of retainKeys"));
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// `$setElementOrder/<list>`: merge the patch list (if any) into the stored list, then order
/// the result: listed items in the given order, server-only items kept near their neighbours.
fn apply_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: Schema,
) -> Result<(), PatchError> {
    let directives: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    const BAD: &str = "invalid patch format of setElementOrder list";
    for directive in directives {
        let Some(Value::Array(order)) = patch.remove(&directive) else {
            return Err(bad_format(BAD));
        };
        let name = extract_key(&directive, SET_ELEMENT_ORDER, BAD)?;
        let as_list = |v: Option<Value>| match v {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(_) => Err(bad_format(BAD)),
        };
        let stored = as_list(original.remove(&name))?;
        let patch_list = as_list(patch.remove(&name))?;
        let field = schema.field(&name);
        let key = match field.list {
            ListStrategy::MergeByKey(k) => Some(k),
            _ => None,
        };
        if let Some(p) = &patch_list {
            validate_order(p, &order, key)?;
        }
        let stored_order = stored.clone().unwrap_or_default();
        let merged = match (stored, patch_list) {
            (Some(o), None) => o,
            (None, Some(p)) => merge_list(Vec::new(), p, field, false)?,
            (Some(o), Some(p)) => merge_list(o, p, field, false)?,
            (None, None) => continue,
        };
        let (in_order, server_only) = partition(merged, &order, key)?;
        original.insert(
            name,
            Value::Array(normalize_element_order(
                in_order,
                server_only,
                &order,
                &stored_order,
                key,
            )),
        );
    }
    Ok(())
}

/// Check that the patch list's items appear in the `$setElementOrder` list in the same order.
fn validate_order(patch: &[Value], order: &[Value], key: Option<&str>) -> Result<(), PatchError> {
    let items: Vec<&Value> = patch
        .iter()
        .filter(|v| key.is_none() || v.get(DIRECTIVE).is_none())
        .collect();
    let (mut p, mut o) = (0, 0);
    while p < items.len() && o < order.len() {
        if match_value(items[p], key)?.is_some_and(|v| {
            match_value(&order[o], key)
                .ok()
                .flatten()
                .is_some_and(|w| same(v, w))
        }) {
            p += 1;
        }
        o += 1;
    }
    if p < items.len() && !order.is_empty() {
        return Err(invalid(format!(
            "the order in patch list {} doesn't match $setElementOrder list {}",
            Value::Array(patch.to_vec()),
            Value::Array(order.to_vec())
        )));
    }
    Ok(())
}

/// The value an item is matched by: its merge key for maps, itself for scalars.
fn match_value<'a>(item: &'a Value, key: Option<&str>) -> Result<Option<&'a Value>, PatchError> {
    match key {
        None => Ok(Some(item)),
        Some(k) => match item.get(k) {
            Some(v) => Ok(Some(v)),
            None if item.is_object() => Err(no_merge_key(item, k)),
            None => Ok(None),
        },
    }
}

fn index(list: &[Value], item: &Value, key: Option<&str>) -> Option<usize> {
    let wanted = match_value(item, key).ok().flatten()?;
    list.iter().position(|v| {
        match_value(v, key)
            .ok()
            .flatten()
            .is_some_and(|w| same(w, wanted))
    })
}

/// Split `items` into those present in `by` and the rest (server-only).
fn partition(
    items: Vec<Value>,
    by: &[Value],
    key: Option<&str>,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let (mut inside, mut outside) = (Vec::new(), Vec::new());
    for item in items {
        match_value(&item, key)?;
        if index(by, &item, key).is_some() {
            inside.push(item);
        } else {
            outside.push(item);
        }
    }
    Ok((inside, outside))
}

/// Sort the patch items by `patch_order` and the server-only items by `server_order`, then
/// interleave them: a server-only item goes before a patch item only if it came first in the
/// stored list.
fn normalize_element_order(
    mut in_patch: Vec<Value>,
    mut server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    in_patch.sort_by_key(|v| index(patch_order, v, key).unwrap_or(usize::MAX));
    server_only.sort_by_key(|v| index(server_order, v, key).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(in_patch.len() + server_only.len());
    let (mut left, mut right) = (
        server_only.into_iter().peekable(),
        in_patch.into_iter().peekable(),
    );
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                matches!((index(server_order, l, key), index(server_order, r, key)), (Some(li), Some(ri)) if li < ri)
            }
        };
        out.extend(if take_left { left.next() } else { right.next() });
    }
    out
}

/// `"$setElementOrder/containers"` → `"containers"`.
fn extract_key(directive: &str, prefix: &str, error: &str) -> Result<String, PatchError> {
    match directive.split_once('/') {
        Some((p, rest)) if p == prefix => Ok(rest.to_string()),
        _ => Err(bad_format(error)),
    }
}

/// JSON equality where `80` and `80.0` are the same number (Go decodes both to float64).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "fe"},
                         "finalizers": ["a", "b"]},
            "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "web", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent",
                 "env": [{"name": "A", "value": "1"}], "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                {"name": "sidecar", "image": "busybox"}
            ]}}}
        })
    }

    fn containers(v: &Value) -> &Vec<Value> {
        v["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
    }

    #[test]
    fn kubectl_apply_patch_changes_image_adds_env_removes_label() {
        // What kubectl 1.32 client-side apply sends (a 3-way patch).
        let patch = json!({
            "metadata": {"labels": {"tier": null},
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
                "containers": [{
                    "$setElementOrder/env": [{"name": "A"}, {"name": "B"}],
                    "env": [{"name": "B", "value": "2"}],
                    "image": "nginx:1.26",
                    "name": "web"
                }]
            }}}
        });
        let out = strategic_merge(&deployment(), &patch).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(
            out["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
            "{}"
        );
        let c = containers(&out);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0]["name"], "web");
        assert_eq!(c[0]["image"], "nginx:1.26");
        assert_eq!(
            c[0]["imagePullPolicy"], "IfNotPresent",
            "server-set fields survive"
        );
        assert_eq!(
            c[0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
        );
        assert_eq!(
            c[0]["ports"],
            json!([{"containerPort": 80, "protocol": "TCP"}])
        );
        assert_eq!(c[1], json!({"name": "sidecar", "image": "busybox"}));
        assert!(
            !out.to_string().contains('$'),
            "no directive leaks into the object"
        );
    }

    #[test]
    fn kubectl_apply_patch_removing_an_env_var() {
        let mut orig = deployment();
        orig["spec"]["template"]["spec"]["containers"][0]["env"] =
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]);
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
            "containers": [{"$setElementOrder/env": [{"name": "A"}], "env": [{"$patch": "delete", "name": "B"}], "name": "web"}]
        }}}});
        let out = strategic_merge(&orig, &patch).unwrap();
        assert_eq!(
            containers(&out)[0]["env"],
            json!([{"name": "A", "value": "1"}])
        );
        assert_eq!(containers(&out)[0]["image"], "nginx:1.25");
    }

    #[test]
    fn set_element_order_reorders_and_keeps_server_only_items() {
        let mut orig = deployment();
        orig["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "injected", "image": "x"}));
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}]
        }}}});
        let out = strategic_merge(&orig, &patch).unwrap();
        let names: Vec<_> = containers(&out)
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["sidecar", "web", "injected"]);
    }

    #[test]
    fn delete_directive_removes_list_item_and_replace_replaces_list() {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}}}});
        let out = strategic_merge(&deployment(), &patch).unwrap();
        assert_eq!(containers(&out).len(), 1);
        assert_eq!(containers(&out)[0]["name"], "web");

        let patch = json!({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}, {"name": "only", "image": "i"}]}}}});
        let out = strategic_merge(&deployment(), &patch).unwrap();
        assert_eq!(
            *containers(&out),
            vec![json!({"name": "only", "image": "i"})]
        );
    }

    #[test]
    fn map_directives_replace_and_delete() {
        let patch = json!({"metadata": {"labels": {"$patch": "replace", "new": "1"}}});
        let out = strategic_merge(&deployment(), &patch).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"new": "1"}));
        let patch = json!({"spec": {"template": {"metadata": {"$patch": "delete"}}}});
        let out = strategic_merge(&deployment(), &patch).unwrap();
        assert_eq!(out["spec"]["template"]["metadata"], json!({}));
        let patch = json!({"metadata": {"labels": {"$patch": "bogus"}}});
        assert!(matches!(
            strategic_merge(&deployment(), &patch),
            Err(PatchError::InvalidStrategicPatch { .. })
        ));
    }

    #[test]
    fn directives_without_a_stored_value_drop_their_key() {
        // Upstream `removeDirectives`: a map carrying `$patch` (whatever its value) that has
        // no stored map to act on is dropped with its key, not merged into nothing.
        let orig = deployment();
        let patch = json!({"spec": {"nope": {"$patch": "delete"}},
                           "metadata": {"labels": {"gone": {"$patch": "delete"}}}});
        assert_eq!(strategic_merge(&orig, &patch).unwrap(), orig);
        let patch = json!({"spec": {"nope": {"$patch": "bogus"}}});
        assert_eq!(strategic_merge(&orig, &patch).unwrap(), orig);
        // A stored scalar faced with such a map goes too.
        let patch = json!({"metadata": {"labels": {"tier": {"$patch": "delete"}}}});
        let out = strategic_merge(&orig, &patch).unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
        // Inside a new value, maps and list items carrying `$patch` are dropped.
        let patch = json!({"spec": {"template": {"spec": {
            "nodeSelector": {"disk": "ssd", "zone": {"$patch": "delete"}},
            "volumes": [{"name": "v", "emptyDir": {}}, {"name": "w", "$patch": "delete"}]
        }}}});
        let out = strategic_merge(&orig, &patch).unwrap();
        let spec = &out["spec"]["template"]["spec"];
        assert_eq!(spec["nodeSelector"], json!({"disk": "ssd"}));
        assert_eq!(spec["volumes"], json!([{"name": "v", "emptyDir": {}}]));
    }

    #[test]
    fn finalizers_are_a_set_and_delete_from_primitive_list_removes() {
        let patch = json!({"metadata": {"finalizers": ["c", "a"]}});
        let out = strategic_merge(&deployment(), &patch).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["c", "a", "b"]));
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "$setElementOrder/finalizers": ["b"]}});
        let out = strategic_merge(&deployment(), &patch).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
    }

    #[test]
    fn atomic_lists_are_replaced() {
        let mut orig = deployment();
        orig["spec"]["template"]["spec"]["tolerations"] =
            json!([{"key": "a", "operator": "Exists"}]);
        let patch = json!({"spec": {"template": {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}}});
        let out = strategic_merge(&orig, &patch).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["tolerations"],
            json!([{"key": "b", "operator": "Exists"}])
        );
    }

    #[test]
    fn pod_status_conditions_merge_by_type() {
        let pod = json!({"kind": "Pod", "metadata": {"name": "p"}, "status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "False"}]}});
        let patch = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
        let out = strategic_merge(&pod, &patch).unwrap();
        assert_eq!(out["status"]["phase"], "Running");
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}])
        );
    }

    #[test]
    fn retain_keys_clears_unlisted_fields() {
        let mut orig = deployment();
        orig["spec"]["strategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}});
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
        let out = strategic_merge(&orig, &patch).unwrap();
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}});
        assert!(matches!(
            strategic_merge(&orig, &patch),
            Err(PatchError::BadStrategicPatchFormat { .. })
        ));
    }

    #[test]
    fn new_fields_drop_nulls_and_missing_merge_key_is_an_error() {
        let patch = json!({"spec": {"paused": null, "minReadySeconds": 5, "template": {"spec": {"containers": [{"image": "x"}]}}}});
        assert!(matches!(
            strategic_merge(&deployment(), &patch),
            Err(PatchError::InvalidStrategicPatch { .. })
        ));
        let patch = json!({"spec": {"paused": null, "selector": {"matchLabels": {"app": "web", "gone": null}}}});
        let out = strategic_merge(&deployment(), &patch).unwrap();
        assert_eq!(
            out["spec"]["selector"],
            json!({"matchLabels": {"app": "web"}})
        );
        assert!(out["spec"].get("paused").is_none());
    }
}
