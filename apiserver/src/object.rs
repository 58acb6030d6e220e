//! Small accessors for the parts of an object every handler touches: `metadata` and the
//! type header (`apiVersion`/`kind`).
//!
//! The apiserver stores and moves objects as JSON (`serde_json::Value`) so one code path serves
//! every kind; typed k8s-openapi structs are used where a kind's own rules apply (admission,
//! tables). Every object has `metadata` (ObjectMeta): name, namespace, uid, resourceVersion,
//! generation, labels, finalizers, deletionTimestamp...

use std::collections::BTreeMap;

use rand::Rng;
use serde_json::{Map, Value};

/// `metadata` as a mutable map, created if missing.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = Value::Object(Map::new());
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

/// A string field of `metadata` ("" if absent).
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.name`.
pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name")
}

/// `metadata.namespace`.
pub fn namespace(obj: &Value) -> &str {
    meta_str(obj, "namespace")
}

/// `metadata.labels` as a map.
pub fn labels(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// `metadata.finalizers`.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `metadata.deletionTimestamp` is set.
pub fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// The current time as a Kubernetes `Time` (RFC 3339, seconds precision).
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `now() + seconds`.
pub fn now_plus(seconds: i64) -> String {
    let t = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .unwrap_or_else(|_| jiff::Timestamp::now());
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A name from `generateName`: the prefix plus five random characters from the same alphabet
/// kube-apiserver uses (no vowels, so no accidental words).
pub fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    // Like the real apiserver, trim the prefix so the result stays a valid name.
    let max_prefix = 63 - 5;
    let prefix = if prefix.len() > max_prefix {
        &prefix[..max_prefix]
    } else {
        prefix
    };
    format!("{prefix}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn generated_names_keep_the_prefix() {
        let n = generate_name("web-");
        assert!(n.starts_with("web-"));
        assert_eq!(n.len(), 9);
        assert_ne!(generate_name("web-"), generate_name("web-"));
    }

    #[test]
    fn metadata_accessors() {
        let mut o = json!({"metadata": {"name": "a", "labels": {"app": "x"}, "finalizers": ["f"]}});
        assert_eq!(name(&o), "a");
        assert_eq!(labels(&o)["app"], "x");
        assert_eq!(finalizers(&o), vec!["f"]);
        assert!(!is_deleting(&o));
        meta_mut(&mut o).insert("deletionTimestamp".into(), json!(now()));
        assert!(is_deleting(&o));
        let mut empty = json!({});
        meta_mut(&mut empty).insert("name".into(), json!("b"));
        assert_eq!(name(&empty), "b");
    }
}
