//! Field selectors, parsed as `fields.ParseSelector` does: comma-separated `field=value`,
//! `field==value` or `field!=value` terms (values escape `\`, `,`, `=` with a backslash). Unlike
//! labels, only a handful of fields per resource can be selected: each resource's registry
//! declares its "selectable fields" (pods: `spec.nodeName`, `status.phase`, ...), and anything
//! else is refused with `field label not supported`. An absent field compares as "".

use std::fmt;

use serde_json::Value;

use super::SelectorError;

/// One `field=value` (or `!=`) term.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Term {
    field: String,
    value: String,
    negated: bool,
}

/// A parsed field selector: all terms must hold. Empty selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector {
    terms: Vec<Term>,
}

impl FieldSelector {
    /// Parse the `fieldSelector` query parameter for `resource` (plural, e.g. `pods`),
    /// refusing fields the resource does not support.
    pub fn parse(s: &str, resource: &str) -> Result<Self, SelectorError> {
        let mut parts = split_terms(s);
        parts.sort();
        let mut terms = Vec::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let Some((field, op, raw)) = split_term(&part) else {
                return Err(SelectorError::ParseFieldSelector(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let value = unescape(raw).map_err(SelectorError::ParseFieldSelector)?;
            if !supported_fields(resource).contains(&field) {
                return Err(SelectorError::FieldLabelNotSupported {
                    field: field.to_string(),
                });
            }
            terms.push(Term {
                field: field.to_string(),
                value,
                negated: op == "!=",
            });
        }
        Ok(FieldSelector { terms })
    }

    /// Whether `obj` (a `resource` object as JSON) satisfies every term.
    pub fn matches(&self, resource: &str, obj: &Value) -> bool {
        self.terms
            .iter()
            .all(|t| (field_value(resource, &t.field, obj) == t.value) != t.negated)
    }

    /// Whether the selector selects everything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The value a `field=value` term requires (e.g. `spec.nodeName` → `n1`), for indexes.
    pub fn required_value(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && !t.negated)
            .map(|t| t.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    /// The canonical string, values escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .terms
            .iter()
            .map(|t| {
                format!(
                    "{}{}{}",
                    t.field,
                    if t.negated { "!=" } else { "=" },
                    escape(&t.value)
                )
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// The fields each resource can be selected by (its registry's `GetAttrs` /
/// field label conversion). Cluster-scoped kinds have no `metadata.namespace`.
fn supported_fields(resource: &str) -> &'static [&'static str] {
    match resource {
        "pods" => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "nodes" => &["metadata.name", "spec.unschedulable"],
        "namespaces" => &["metadata.name", "status.phase"],
        "events" => &[
            "metadata.name",
            "metadata.namespace",
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "replicasets" => &["metadata.name", "metadata.namespace", "status.replicas"],
        "secrets" => &["metadata.name", "metadata.namespace", "type"],
        "certificatesigningrequests" => &["metadata.name", "spec.signerName"],
        _ => &["metadata.name", "metadata.namespace"],
    }
}

/// The string value of a selectable field; absent fields are "" (bools "false", counts "0").
fn field_value(resource: &str, field: &str, obj: &Value) -> String {
    let s = |path: &str| {
        obj.pointer(path)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    match (resource, field) {
        (_, "metadata.name") => s("/metadata/name"),
        (_, "metadata.namespace") => s("/metadata/namespace"),
        ("pods", "spec.hostNetwork") => obj
            .pointer("/spec/hostNetwork")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .to_string(),
        ("pods", "status.podIP") => {
            let first = obj.pointer("/status/podIPs/0/ip").and_then(Value::as_str);
            first
                .map(str::to_string)
                .unwrap_or_else(|| s("/status/podIP"))
        }
        ("nodes", "spec.unschedulable") => obj
            .pointer("/spec/unschedulable")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .to_string(),
        ("replicasets", "status.replicas") => obj
            .pointer("/status/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .to_string(),
        ("events", f) => event_field(f, obj),
        (_, f) => s(&format!("/{}", f.replace('.', "/"))),
    }
}

/// Event fields, from the core/v1 shape (`involvedObject`, `source.component`) or the
/// events.k8s.io/v1 shape (`regarding`, `reportingController`).
fn event_field(field: &str, obj: &Value) -> String {
    let s = |path: &str| {
        obj.pointer(path)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let value = match field {
        "reportingComponent" => s("/reportingComponent").or_else(|| s("/reportingController")),
        "source" => s("/source/component")
            .or_else(|| s("/reportingComponent"))
            .or_else(|| s("/reportingController")),
        f => match f.strip_prefix("involvedObject.") {
            Some(sub) => {
                s(&format!("/involvedObject/{sub}")).or_else(|| s(&format!("/regarding/{sub}")))
            }
            None => s(&format!("/{}", f.replace('.', "/"))),
        },
    };
    value.unwrap_or_default()
}

/// Split on commas not escaped by a backslash.
fn split_terms(s: &str) -> Vec<String> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut current = String::new();
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(std::mem::take(&mut current));
            continue;
        }
        current.push(c);
    }
    terms.push(current);
    terms
}

/// `field<op>value` at the first operator (`!=`, `==`, `=`, tried in that order).
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        for op in ["!=", "==", "="] {
            if term[i..].starts_with(op) {
                return Some((&term[..i], op, &term[i + op.len()..]));
            }
        }
    }
    None
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(format!(
                    "invalid field selector: invalid escape sequence: \\{c}"
                ));
            }
            out.push(c);
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' || c == '=' {
            // Go prints the rune with %v: its code point.
            return Err(format!(
                "invalid field selector: unescaped character in value: {}",
                c as u32
            ));
        } else {
            out.push(c);
        }
    }
    if in_slash {
        return Err("invalid field selector: invalid escape sequence: \\".into());
    }
    Ok(out)
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace('=', "\\=")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Event, ObjectReference, Pod, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(name: &str, node: Option<&str>, phase: &str) -> Value {
        serde_json::to_value(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(Into::into),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        })
        .unwrap()
    }

    #[test]
    fn node_name_selects_bound_pods_and_empty_selects_unbound() {
        let sel = FieldSelector::parse("spec.nodeName=n1", "pods").unwrap();
        assert!(sel.matches("pods", &pod("a", Some("n1"), "Running")));
        assert!(!sel.matches("pods", &pod("a", Some("n2"), "Running")));
        assert_eq!(sel.required_value("spec.nodeName"), Some("n1"));
        let unbound = FieldSelector::parse("spec.nodeName=", "pods").unwrap();
        assert!(unbound.matches("pods", &pod("a", None, "Pending")));
        assert!(!unbound.matches("pods", &pod("a", Some("n1"), "Pending")));
    }

    #[test]
    fn and_of_terms_with_not_equal() {
        let sel = FieldSelector::parse(
            "status.phase!=Succeeded,status.phase!=Failed,metadata.namespace==default",
            "pods",
        )
        .unwrap();
        assert!(sel.matches("pods", &pod("a", None, "Running")));
        assert!(!sel.matches("pods", &pod("a", None, "Failed")));
        assert_eq!(sel.required_value("status.phase"), None);
        assert_eq!(
            sel.to_string(),
            "metadata.namespace=default,status.phase!=Failed,status.phase!=Succeeded"
        );
    }

    #[test]
    fn unsupported_fields_and_bad_syntax() {
        let err = FieldSelector::parse("spec.foo=bar", "pods").unwrap_err();
        assert_eq!(err.to_string(), "field label not supported: spec.foo");
        assert!(FieldSelector::parse("metadata.namespace=x", "nodes").is_err());
        assert!(FieldSelector::parse("spec.unschedulable=true", "nodes").is_ok());
        let err = FieldSelector::parse("spec.nodeName", "pods").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid selector: 'spec.nodeName'; can't understand 'spec.nodeName'"
        );
        let err = FieldSelector::parse("metadata.name=a\\x", "pods").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid field selector: invalid escape sequence: \\x"
        );
    }

    #[test]
    fn escaped_values() {
        let sel = FieldSelector::parse("metadata.name=a\\,b\\=c", "leases").unwrap();
        let lease =
            serde_json::json!({"metadata": {"name": "a,b=c", "namespace": "kube-node-lease"}});
        assert!(sel.matches("leases", &lease));
        assert_eq!(sel.to_string(), "metadata.name=a\\,b\\=c");
        assert!(FieldSelector::parse("", "pods").unwrap().is_empty());
    }

    #[test]
    fn event_involved_object_fields() {
        let ev = serde_json::to_value(Event {
            metadata: ObjectMeta {
                name: Some("web.1".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                name: Some("web".into()),
                uid: Some("u1".into()),
                ..Default::default()
            },
            reason: Some("Scheduled".into()),
            type_: Some("Normal".into()),
            reporting_component: Some("default-scheduler".into()),
            ..Default::default()
        })
        .unwrap();
        let sel = FieldSelector::parse(
            "involvedObject.kind=Pod,involvedObject.name=web,involvedObject.uid=u1,type=Normal",
            "events",
        )
        .unwrap();
        assert!(sel.matches("events", &ev));
        assert!(
            FieldSelector::parse("source=default-scheduler,reason=Scheduled", "events")
                .unwrap()
                .matches("events", &ev)
        );
        assert!(
            !FieldSelector::parse("involvedObject.namespace=other", "events")
                .unwrap()
                .matches("events", &ev)
        );
    }

    #[test]
    fn node_and_replicaset_fields() {
        let node = serde_json::json!({"metadata": {"name": "n1"}, "spec": {}});
        assert!(FieldSelector::parse("spec.unschedulable=false", "nodes")
            .unwrap()
            .matches("nodes", &node));
        let rs = serde_json::json!({"metadata": {"name": "r"}, "status": {"replicas": 3}});
        assert!(FieldSelector::parse("status.replicas=3", "replicasets")
            .unwrap()
            .matches("replicasets", &rs));
    }
}
