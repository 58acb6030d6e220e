//! Strict field validation: which fields of a request body the schema does not know. With
//! `fieldValidation=Strict` (kubectl's default) the real apiserver answers 400
//! `strict decoding error: unknown field "spec.containers[0].imagee"`; with `Warn` it adds a
//! `Warning` header per field; with `Ignore` it drops them silently. The trick: decode into the
//! typed k8s-openapi struct, encode it back, and any input key missing from the round trip is unknown.
//! The mode itself is `FieldValidation`, parsed from the query; `handlers/write.rs` applies it.

use std::str::FromStr;

use serde_json::Value;

use super::typed_roundtrip;

/// The `fieldValidation` query parameter of create, update and patch: what the server does
/// with fields of the body that the schema does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Refuse the request with 400 and the `strict decoding error` text.
    Strict,
    /// Accept it and name each unknown field in a `Warning` header (the server default, as in
    /// kube-apiserver ≥ 1.27).
    #[default]
    Warn,
    /// Accept it and drop the unknown fields silently.
    Ignore,
}

/// A `fieldValidation` value that is none of the three (the server answers 400).
#[derive(Debug, thiserror::Error)]
#[error("fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got {0:?}")]
pub struct UnknownFieldValidation(pub String);

impl FieldValidation {
    /// The mode a query asks for: absent or empty means the default, `Warn`.
    pub fn from_query(value: Option<&str>) -> Result<FieldValidation, UnknownFieldValidation> {
        value
            .filter(|v| !v.is_empty())
            .map_or(Ok(FieldValidation::default()), str::parse)
    }
}

impl FromStr for FieldValidation {
    type Err = UnknownFieldValidation;

    fn from_str(s: &str) -> Result<FieldValidation, UnknownFieldValidation> {
        match s {
            "Strict" => Ok(FieldValidation::Strict),
            "Warn" => Ok(FieldValidation::Warn),
            "Ignore" => Ok(FieldValidation::Ignore),
            other => Err(UnknownFieldValidation(other.to_string())),
        }
    }
}

/// The dotted paths (with list indexes) of every field in `obj` that the typed schema of
/// `resource` does not know, sorted by key at each level (serde_json maps are ordered). Keys
/// whose value is `null` are ignored (kubectl sends `creationTimestamp: null`). An `events`
/// object with `apiVersion: events.k8s.io/v1` is checked against that schema. `Err` when `obj` does not even decode (a type
/// mismatch such as a string where an integer belongs): answer 400 BadRequest with that text.
/// Resources without a typed schema here report no unknown fields.
pub fn unknown_fields(resource: &str, obj: &Value) -> Result<Vec<String>, String> {
    let Some(roundtrip) =
        typed_roundtrip(resource, obj).map_err(|e| decode_error(resource, obj, &e))?
    else {
        return Ok(Vec::new());
    };
    Ok(unknown_in(obj, &roundtrip))
}

/// The fields of `input` missing from `known`, its typed round trip (see `unknown_fields`):
/// for callers that already have the round trip.
pub fn unknown_in(input: &Value, known: &Value) -> Vec<String> {
    let mut unknown = Vec::new();
    walk(input, known, &mut Vec::new(), &mut unknown);
    unknown
}

/// The 400 message for unknown fields, as the real apiserver words it.
pub fn strict_error_message(unknown: &[String]) -> String {
    let parts: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field {}", super::go_quote(f)))
        .collect();
    format!("strict decoding error: {}", parts.join(", "))
}

/// The `Warning` header text for one unknown field under `fieldValidation=Warn`.
pub fn warning_for(field: &str) -> String {
    format!("unknown field {}", super::go_quote(field))
}

fn decode_error(resource: &str, obj: &Value, err: &str) -> String {
    let (kind, group) = super::kind_of(resource).unwrap_or(("Object", ""));
    let version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| {
            if group.is_empty() {
                "v1".to_string()
            } else {
                format!("{group}/v1")
            }
        });
    format!(
        "{kind} in version {} cannot be handled as a {kind}: {err}",
        super::go_quote(version.rsplit('/').next().unwrap_or("v1"))
    )
}

/// One step of a field path: an object key or a list index.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// `spec.containers[0].imagee`. Only unknown fields are rendered: the walk itself allocates
/// nothing, since almost every request has none.
fn render(path: &[Step]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Step::Index(i) => {
                s.push('[');
                s.push_str(&i.to_string());
                s.push(']');
            }
        }
    }
    s
}

fn walk<'a>(input: &'a Value, known: &Value, path: &mut Vec<Step<'a>>, out: &mut Vec<String>) {
    match (input, known) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                if value.is_null() {
                    continue;
                }
                path.push(Step::Key(key));
                match b.get(key) {
                    None => out.push(render(path)),
                    Some(kv) => walk(value, kv, path, out),
                }
                path.pop();
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (av, bv)) in a.iter().zip(b.iter()).enumerate() {
                path.push(Step::Index(i));
                walk(av, bv, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typo_inside_a_container_is_reported_with_its_index() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"anything": "goes"}, "annotations": {"x/y": "z"}, "creationTimestamp": null},
            "spec": {"containers": [{"name": "c", "imagee": "nginx"}], "nodeSelector": {"disk": "ssd"}, "bogus": 1}
        });
        let unknown = unknown_fields("pods", &pod).unwrap();
        assert_eq!(
            unknown,
            vec![
                "spec.bogus".to_string(),
                "spec.containers[0].imagee".to_string()
            ]
        );
        assert_eq!(
            strict_error_message(&unknown),
            "strict decoding error: unknown field \"spec.bogus\", unknown field \"spec.containers[0].imagee\""
        );
    }

    #[test]
    fn clean_objects_have_no_unknown_fields() {
        let d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "d"}},
                     "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}},
                     "template": {"metadata": {"labels": {"app": "d"}},
                                  "spec": {"containers": [{"name": "c", "image": "i", "resources": {"limits": {"cpu": 1}}}]}}}
        });
        assert_eq!(
            unknown_fields("deployments", &d).unwrap(),
            Vec::<String>::new()
        );
        let ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, "note": "hi",
                        "regarding": {"kind": "Pod", "name": "p"}, "reportingController": "c", "eventTime": "2024-01-01T00:00:00.000000Z"});
        assert_eq!(unknown_fields("events", &ev).unwrap(), Vec::<String>::new());
        let top = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}, "extra": true});
        assert_eq!(
            unknown_fields("namespaces", &top).unwrap(),
            vec!["extra".to_string()]
        );
    }

    #[test]
    fn field_validation_modes_and_their_default() {
        assert_eq!(
            FieldValidation::from_query(None).unwrap(),
            FieldValidation::Warn
        );
        assert_eq!(
            FieldValidation::from_query(Some("")).unwrap(),
            FieldValidation::Warn
        );
        assert_eq!(
            FieldValidation::from_query(Some("Strict")).unwrap(),
            FieldValidation::Strict
        );
        assert_eq!(
            FieldValidation::from_query(Some("Ignore")).unwrap(),
            FieldValidation::Ignore
        );
        let err = FieldValidation::from_query(Some("strict")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got \"strict\""
        );
    }

    #[test]
    fn type_mismatch_is_a_decode_error() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [{"name": "c", "ports": [{"containerPort": "http"}]}]}});
        let err = unknown_fields("pods", &pod).unwrap_err();
        assert!(
            err.starts_with("Pod in version \"v1\" cannot be handled as a Pod: "),
            "{err}"
        );
    }
}
