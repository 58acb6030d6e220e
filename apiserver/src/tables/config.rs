//! Rows for ConfigMaps and Secrets, as `kubectl get cm,secrets` prints them: DATA counts the
//! keys (a ConfigMap's `data` and `binaryData` together; a Secret's `data`, where `stringData`
//! has already been folded), never the values, so a table shows no secret. A Secret's TYPE
//! says what its keys mean (`Opaque`, `kubernetes.io/tls`, `bootstrap.kubernetes.io/token`).

use serde_json::{json, Value};

use super::{age, col, name, str_at, Col, AGE, NAME};

pub(super) const CONFIGMAP_COLUMNS: &[Col] = &[
    NAME,
    col("Data", "string", "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process."),
    AGE,
];

pub(super) const SECRET_COLUMNS: &[Col] = &[
    NAME,
    col("Type", "string", "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types"),
    col("Data", "string", "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4"),
    AGE,
];

/// How many keys the map at `pointer` has.
fn keys_at(obj: &Value, pointer: &str) -> usize {
    obj.pointer(pointer)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len())
}

/// `printConfigMap`: NAME, DATA (`len(data) + len(binaryData)`, an integer), AGE.
pub(super) fn configmap_cells(obj: &Value, now: jiff::Timestamp) -> Value {
    let count = keys_at(obj, "/data") + keys_at(obj, "/binaryData");
    json!([name(obj), count, age(obj, now)])
}

/// `printSecret`: NAME, TYPE, DATA (`len(data)`), AGE.
pub(super) fn secret_cells(obj: &Value, now: jiff::Timestamp) -> Value {
    json!([
        name(obj),
        str_at(obj, "/type"),
        keys_at(obj, "/data"),
        age(obj, now)
    ])
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ago, now};
    use super::super::{column_definitions, row, IncludeObject};
    use serde_json::json;

    #[test]
    fn config_maps_and_secrets_count_keys() {
        let created = ago(30).to_string();
        let cm = json!({"metadata": {"name": "c", "creationTimestamp": created},
            "data": {"a": "1", "b": "2"}, "binaryData": {"c": "eA=="}});
        assert_eq!(
            row("configmaps", &cm, now(), IncludeObject::None)["cells"],
            json!(["c", 3, "30s"])
        );
        let s = json!({"metadata": {"name": "s", "creationTimestamp": created},
            "type": "Opaque", "data": {"k": "dg=="}});
        assert_eq!(
            row("secrets", &s, now(), IncludeObject::None)["cells"],
            json!(["s", "Opaque", 1, "30s"])
        );
        let names = |r: &str| -> Vec<String> {
            column_definitions(r)
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(names("configmaps"), ["Name", "Data", "Age"]);
        assert_eq!(names("secrets"), ["Name", "Type", "Data", "Age"]);
    }
}
