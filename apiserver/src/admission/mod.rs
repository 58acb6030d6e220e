//! Admission: what the apiserver does to an object between decoding and storing it. First
//! `strict` finds fields the schema does not know (fieldValidation=Strict → 400), then `defaults`
//! fills the fields a client may omit, then `validation` refuses bad objects with a 422 `Invalid`
//! Status whose `details.causes` name each bad field. This file holds the shared `Cause` type and
//! the exact Status message; read `defaults.rs`, then `validation.rs`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

pub mod certificates;
pub mod config_data;
pub mod defaults;
pub mod services;
pub mod strict;
pub mod validation;

/// Why a field is invalid: `metav1.CauseType`, serialized as the same strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CauseType {
    /// A referenced value does not exist (a volumeMount naming no volume).
    FieldValueNotFound,
    /// A required field is empty.
    FieldValueRequired,
    /// A value that must be unique is repeated.
    FieldValueDuplicate,
    /// A malformed value (regex, range).
    FieldValueInvalid,
    /// A value outside an enumeration.
    FieldValueNotSupported,
    /// A well-formed value not allowed here (immutable field, policy).
    FieldValueForbidden,
    /// A value too long.
    FieldValueTooLong,
    /// A list with too many items.
    FieldValueTooMany,
    /// A value of the wrong JSON type.
    FieldValueTypeInvalid,
}

impl CauseType {
    /// The `reason` string of a Status cause.
    pub fn as_str(self) -> &'static str {
        match self {
            CauseType::FieldValueNotFound => "FieldValueNotFound",
            CauseType::FieldValueRequired => "FieldValueRequired",
            CauseType::FieldValueDuplicate => "FieldValueDuplicate",
            CauseType::FieldValueInvalid => "FieldValueInvalid",
            CauseType::FieldValueNotSupported => "FieldValueNotSupported",
            CauseType::FieldValueForbidden => "FieldValueForbidden",
            CauseType::FieldValueTooLong => "FieldValueTooLong",
            CauseType::FieldValueTooMany => "FieldValueTooMany",
            CauseType::FieldValueTypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// The human prefix of the message (`field.ErrorType.String()`).
    pub fn label(self) -> &'static str {
        match self {
            CauseType::FieldValueNotFound => "Not found",
            CauseType::FieldValueRequired => "Required value",
            CauseType::FieldValueDuplicate => "Duplicate value",
            CauseType::FieldValueInvalid | CauseType::FieldValueTypeInvalid => "Invalid value",
            CauseType::FieldValueNotSupported => "Unsupported value",
            CauseType::FieldValueForbidden => "Forbidden",
            CauseType::FieldValueTooLong => "Too long",
            CauseType::FieldValueTooMany => "Too many",
        }
    }
}

impl std::fmt::Display for CauseType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The offending value of a field error, printed the way Go's `field.Error` prints it.
#[derive(Debug, Clone, PartialEq)]
pub enum BadValue {
    /// Printed quoted (`%q`).
    Str(String),
    /// Printed bare.
    Int(i64),
    /// Printed bare.
    Bool(bool),
    /// A `map[string]string`, printed as Go `%#v` (`map[string]string{"app":"x"}`).
    StrMap(Option<BTreeMap<String, String>>),
    /// A nil pointer, printed `null`.
    Null,
    /// Already rendered (a Go `String()` method's output).
    Raw(String),
}

impl BadValue {
    /// The Go rendering of this value.
    pub fn render(&self) -> String {
        match self {
            BadValue::Str(s) => go_quote(s),
            BadValue::Int(i) => i.to_string(),
            BadValue::Bool(b) => b.to_string(),
            BadValue::StrMap(None) => "map[string]string(nil)".to_string(),
            BadValue::StrMap(Some(m)) => {
                let body: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v)))
                    .collect();
                format!("map[string]string{{{}}}", body.join(", "))
            }
            BadValue::Null => "null".to_string(),
            BadValue::Raw(s) => s.clone(),
        }
    }
}

impl From<&str> for BadValue {
    fn from(s: &str) -> Self {
        BadValue::Str(s.to_string())
    }
}
impl From<String> for BadValue {
    fn from(s: String) -> Self {
        BadValue::Str(s)
    }
}
impl From<&String> for BadValue {
    fn from(s: &String) -> Self {
        BadValue::Str(s.clone())
    }
}
impl From<i64> for BadValue {
    fn from(i: i64) -> Self {
        BadValue::Int(i)
    }
}
impl From<i32> for BadValue {
    fn from(i: i32) -> Self {
        BadValue::Int(i.into())
    }
}

/// One field error: becomes one entry of a Status's `details.causes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// The machine-readable reason.
    pub reason: CauseType,
    /// The JSON path of the field (`spec.containers[1].name`).
    pub field: String,
    /// The message without the field (`Duplicate value: "a"`), as `field.Error.ErrorBody()`.
    pub message: String,
}

impl Cause {
    fn with_value(
        reason: CauseType,
        field: impl Into<String>,
        value: &BadValue,
        detail: &str,
    ) -> Self {
        let mut message = format!("{}: {}", reason.label(), value.render());
        if !detail.is_empty() {
            message.push_str(": ");
            message.push_str(detail);
        }
        Cause {
            reason,
            field: field.into(),
            message,
        }
    }

    fn without_value(reason: CauseType, field: impl Into<String>, detail: &str) -> Self {
        let mut message = reason.label().to_string();
        if !detail.is_empty() {
            message.push_str(": ");
            message.push_str(detail);
        }
        Cause {
            reason,
            field: field.into(),
            message,
        }
    }

    /// `field.Required`: `Required value[: detail]`.
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        Self::without_value(CauseType::FieldValueRequired, field, detail)
    }

    /// `field.Forbidden`: `Forbidden: detail`.
    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Self::without_value(CauseType::FieldValueForbidden, field, detail)
    }

    /// `field.TooLong`: `Too long: must have at most N bytes`.
    pub fn too_long(field: impl Into<String>, max_bytes: usize) -> Self {
        Self::without_value(
            CauseType::FieldValueTooLong,
            field,
            &format!("must have at most {max_bytes} bytes"),
        )
    }

    /// `field.Invalid`: `Invalid value: <value>: detail`.
    pub fn invalid(field: impl Into<String>, value: impl Into<BadValue>, detail: &str) -> Self {
        Self::with_value(CauseType::FieldValueInvalid, field, &value.into(), detail)
    }

    /// `field.Duplicate`: `Duplicate value: <value>`.
    pub fn duplicate(field: impl Into<String>, value: impl Into<BadValue>) -> Self {
        Self::with_value(CauseType::FieldValueDuplicate, field, &value.into(), "")
    }

    /// `field.NotFound`: `Not found: <value>`.
    pub fn not_found(field: impl Into<String>, value: impl Into<BadValue>) -> Self {
        Self::with_value(CauseType::FieldValueNotFound, field, &value.into(), "")
    }

    /// `field.NotSupported`: `Unsupported value: <value>: supported values: "A", "B"`.
    pub fn not_supported(
        field: impl Into<String>,
        value: impl Into<BadValue>,
        supported: &[&str],
    ) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::with_value(
            CauseType::FieldValueNotSupported,
            field,
            &value.into(),
            &detail,
        )
    }

    /// `field.TypeInvalid`: `Invalid value: <value>: detail`.
    pub fn type_invalid(
        field: impl Into<String>,
        value: impl Into<BadValue>,
        detail: &str,
    ) -> Self {
        Self::with_value(
            CauseType::FieldValueTypeInvalid,
            field,
            &value.into(),
            detail,
        )
    }

    /// The whole error line: `field: message`.
    pub fn error(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }

    /// The Status cause: `{"reason","message","field"}`.
    pub fn to_status_cause(&self) -> Value {
        json!({ "reason": self.reason.as_str(), "message": self.message, "field": self.field })
    }
}

/// The message of a 422 Invalid Status (`errors.NewInvalid`): `Pod "Foo" is invalid: <errors>`,
/// several errors in brackets, identical lines once; `Deployment.apps` when the group is not core.
pub fn invalid_message(kind: &str, group: &str, name: &str, causes: &[Cause]) -> String {
    let qualified = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    let mut lines: Vec<String> = Vec::new();
    for cause in causes {
        let line = cause.error();
        if !lines.contains(&line) {
            lines.push(line);
        }
    }
    match lines.len() {
        0 => format!("{qualified} {} is invalid", go_quote(name)),
        1 => format!("{qualified} {} is invalid: {}", go_quote(name), lines[0]),
        _ => format!(
            "{qualified} {} is invalid: [{}]",
            go_quote(name),
            lines.join(", ")
        ),
    }
}

/// Quotes a string like Go's `strconv.Quote` (`%q`).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The kind and group behind a resource's plural name; `None` for resources admission does not know.
pub fn kind_of(resource: &str) -> Option<(&'static str, &'static str)> {
    Some(match resource {
        "pods" => ("Pod", ""),
        "nodes" => ("Node", ""),
        "namespaces" => ("Namespace", ""),
        "events" => ("Event", ""),
        "configmaps" => ("ConfigMap", ""),
        "secrets" => ("Secret", ""),
        "deployments" => ("Deployment", "apps"),
        "replicasets" => ("ReplicaSet", "apps"),
        "leases" => ("Lease", "coordination.k8s.io"),
        "services" => ("Service", ""),
        "endpoints" => ("Endpoints", ""),
        "endpointslices" => ("EndpointSlice", "discovery.k8s.io"),
        "certificatesigningrequests" => ("CertificateSigningRequest", "certificates.k8s.io"),
        _ => return None,
    })
}

/// True for resources that live in a namespace.
pub fn is_namespaced(resource: &str) -> bool {
    !matches!(
        resource,
        "nodes" | "namespaces" | "certificatesigningrequests"
    )
}

/// True when an `events` object is in the `events.k8s.io/v1` shape rather than core/v1.
pub(crate) fn is_events_v1(obj: &Value) -> bool {
    obj.get("apiVersion").and_then(Value::as_str) == Some("events.k8s.io/v1")
}

/// Decodes `obj` into the k8s-openapi type of `resource` and encodes it back: what the Go
/// apiserver's decoder keeps of an object. `Ok(None)` for resources without a typed schema here.
pub(crate) fn typed_roundtrip(resource: &str, obj: &Value) -> Result<Option<Value>, String> {
    use k8s_openapi::api::{apps, certificates, coordination, core, discovery, events};
    fn rt<T: serde::de::DeserializeOwned + serde::Serialize>(
        obj: &Value,
    ) -> Result<Option<Value>, String> {
        let typed: T =
            serde::Deserialize::deserialize(obj).map_err(|e: serde_json::Error| e.to_string())?;
        serde_json::to_value(&typed)
            .map(Some)
            .map_err(|e| e.to_string())
    }
    match resource {
        "pods" => rt::<core::v1::Pod>(obj),
        "nodes" => rt::<core::v1::Node>(obj),
        "namespaces" => rt::<core::v1::Namespace>(obj),
        "events" if is_events_v1(obj) => rt::<events::v1::Event>(obj),
        "events" => rt::<core::v1::Event>(obj),
        "configmaps" => rt::<core::v1::ConfigMap>(obj),
        "secrets" => rt::<core::v1::Secret>(obj),
        "deployments" => rt::<apps::v1::Deployment>(obj),
        "replicasets" => rt::<apps::v1::ReplicaSet>(obj),
        "leases" => rt::<coordination::v1::Lease>(obj),
        "services" => rt::<core::v1::Service>(obj),
        "endpoints" => rt::<core::v1::Endpoints>(obj),
        "endpointslices" => rt::<discovery::v1::EndpointSlice>(obj),
        "certificatesigningrequests" => rt::<certificates::v1::CertificateSigningRequest>(obj),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

    #[test]
    fn single_cause_message_matches_the_real_apiserver() {
        let cause = Cause::invalid("metadata.name", "Foo", SUBDOMAIN_MSG);
        assert_eq!(
            invalid_message("Pod", "", "Foo", std::slice::from_ref(&cause)),
            format!(
                "Pod \"Foo\" is invalid: metadata.name: Invalid value: \"Foo\": {SUBDOMAIN_MSG}"
            )
        );
        assert_eq!(
            cause.to_status_cause(),
            json!({"reason": "FieldValueInvalid", "field": "metadata.name", "message": format!("Invalid value: \"Foo\": {SUBDOMAIN_MSG}")})
        );
    }

    #[test]
    fn several_causes_are_bracketed_and_deduplicated() {
        let a = Cause::required("spec.selector", "");
        let b = Cause::not_supported("spec.template.spec.restartPolicy", "Never", &["Always"]);
        let msg = invalid_message("Deployment", "apps", "x", &[a.clone(), b, a]);
        assert_eq!(
            msg,
            "Deployment.apps \"x\" is invalid: [spec.selector: Required value, spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"]"
        );
    }

    #[test]
    fn bodies_follow_field_error_formatting() {
        assert_eq!(Cause::duplicate("f", "a").message, "Duplicate value: \"a\"");
        assert_eq!(Cause::forbidden("f", "x").message, "Forbidden: x");
        assert_eq!(
            Cause::invalid("f", -1i64, "must be greater than or equal to 0").message,
            "Invalid value: -1: must be greater than or equal to 0"
        );
        assert_eq!(
            Cause::too_long("f", 262144).message,
            "Too long: must have at most 262144 bytes"
        );
        let labels = BTreeMap::from([
            ("app".to_string(), "x".to_string()),
            ("b".to_string(), "y".to_string()),
        ]);
        assert_eq!(
            BadValue::StrMap(Some(labels)).render(),
            "map[string]string{\"app\":\"x\", \"b\":\"y\"}"
        );
        assert_eq!(go_quote("a\"b\n"), "\"a\\\"b\\n\"");
    }
}
