//! Validation of the objects that carry configuration into pods: ConfigMaps and Secrets
//! (`ValidateConfigMap`, `ValidateSecret` and their updates in `pkg/apis/core/validation`).
//!
//! Both are bags of keys that become file names when mounted as a volume, so a key is a
//! *config key*: `[-._a-zA-Z0-9]+`, at most 253 characters, never `.`, `..` or a `..` prefix
//! (which would climb out of the volume directory). All values together stay under 1 MiB, the
//! size etcd is comfortable with. An object marked `immutable: true` keeps its data (and its
//! mark) for ever: the kubelet may then stop watching it. A Secret's `type` never changes, and
//! a few types require keys (`kubernetes.io/tls` needs `tls.crt` and `tls.key`).
//!
//! Read next: `crate::admission::config_data`, which turns `stringData` into `data` and checks
//! base64 before anything here runs.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::ByteString;

use super::super::Cause;
use super::names::{max_len_error, regex_error};

/// `core.MaxSecretSize`: the most bytes of values one ConfigMap or Secret may hold.
pub const MAX_SIZE: usize = 1024 * 1024;

const CONFIG_KEY_FMT: &str = "[-._a-zA-Z0-9]+";
const CONFIG_KEY_MSG: &str =
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";
const IMMUTABLE: &str = "field is immutable when `immutable` is set";

/// `validation.IsConfigMapKey`: the messages for a bad key, empty when it is fine.
pub fn config_key(key: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if key.len() > 253 {
        errs.push(max_len_error(253));
    }
    let shaped = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !shaped {
        errs.push(regex_error(
            CONFIG_KEY_MSG,
            CONFIG_KEY_FMT,
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    match key {
        "." => errs.push("must not be '.'".into()),
        ".." => errs.push("must not be '..'".into()),
        k if k.starts_with("..") => errs.push("must not start with '..'".into()),
        _ => {}
    }
    errs
}

/// One cause per bad key of `keys`, under `field[key]`.
fn check_keys<'a>(field: &str, keys: impl Iterator<Item = &'a String>, causes: &mut Vec<Cause>) {
    for key in keys {
        for msg in config_key(key) {
            causes.push(Cause::invalid(format!("{field}[{key}]"), key, &msg));
        }
    }
}

/// `ValidateConfigMap` minus metadata: keys, no key in both `data` and `binaryData`, size.
pub fn validate_config_map(cm: &ConfigMap) -> Vec<Cause> {
    let mut causes = Vec::new();
    let data = cm.data.clone().unwrap_or_default();
    let binary = cm.binary_data.clone().unwrap_or_default();
    check_keys("data", data.keys(), &mut causes);
    for key in data.keys().filter(|k| binary.contains_key(*k)) {
        causes.push(Cause::invalid(
            format!("data[{key}]"),
            key,
            "duplicate of key present in binaryData",
        ));
    }
    check_keys("binaryData", binary.keys(), &mut causes);
    for key in binary.keys().filter(|k| data.contains_key(*k)) {
        causes.push(Cause::invalid(
            format!("binaryData[{key}]"),
            key,
            "duplicate of key present in data",
        ));
    }
    let size: usize = data.values().map(String::len).sum::<usize>()
        + binary.values().map(|v| v.0.len()).sum::<usize>();
    if size > MAX_SIZE {
        // the empty path: the error is about the whole object
        causes.push(Cause::too_long("", MAX_SIZE));
    }
    causes
}

/// `ValidateConfigMapUpdate` minus metadata: an immutable ConfigMap keeps its data.
pub fn validate_config_map_update(new: &ConfigMap, old: &ConfigMap) -> Vec<Cause> {
    let mut causes = Vec::new();
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            causes.push(Cause::forbidden("immutable", IMMUTABLE));
        }
        if new.data != old.data {
            causes.push(Cause::forbidden("data", IMMUTABLE));
        }
        if new.binary_data != old.binary_data {
            causes.push(Cause::forbidden("binaryData", IMMUTABLE));
        }
    }
    causes.extend(validate_config_map(new));
    causes
}

/// The keys a Secret of `type` must hold (`kubernetes.io/tls`: `tls.crt` and `tls.key`).
fn required_keys(ty: &str, data: &BTreeMap<String, ByteString>) -> Vec<&'static str> {
    let missing = |keys: &[&'static str]| -> Vec<&'static str> {
        keys.iter()
            .copied()
            .filter(|k| !data.contains_key(*k))
            .collect()
    };
    match ty {
        "kubernetes.io/dockercfg" => missing(&[".dockercfg"]),
        "kubernetes.io/dockerconfigjson" => missing(&[".dockerconfigjson"]),
        "kubernetes.io/tls" => missing(&["tls.crt", "tls.key"]),
        "kubernetes.io/ssh-auth" if data.get("ssh-privatekey").is_none_or(|v| v.0.is_empty()) => {
            vec!["ssh-privatekey"]
        }
        "kubernetes.io/basic-auth"
            if !data.contains_key("username") && !data.contains_key("password") =>
        {
            vec!["username", "password"]
        }
        _ => Vec::new(),
    }
}

/// `ValidateSecret` minus metadata: keys, size, and the keys its type requires.
pub fn validate_secret(secret: &Secret) -> Vec<Cause> {
    let mut causes = Vec::new();
    let data = secret.data.clone().unwrap_or_default();
    check_keys("data", data.keys(), &mut causes);
    if data.values().map(|v| v.0.len()).sum::<usize>() > MAX_SIZE {
        causes.push(Cause::too_long("data", MAX_SIZE));
    }
    let ty = secret.type_.as_deref().unwrap_or("");
    if ty == "kubernetes.io/service-account-token" {
        let annotations = secret.metadata.annotations.clone().unwrap_or_default();
        let key = "kubernetes.io/service-account.name";
        if annotations.get(key).is_none_or(String::is_empty) {
            causes.push(Cause::required(format!("metadata.annotations[{key}]"), ""));
        }
    }
    for key in required_keys(ty, &data) {
        causes.push(Cause::required(format!("data[{key}]"), ""));
    }
    causes
}

/// `ValidateSecretUpdate` minus metadata: the type never changes; an immutable Secret keeps its
/// data (its `stringData` was already folded into `data`).
pub fn validate_secret_update(new: &Secret, old: &Secret) -> Vec<Cause> {
    let mut causes = Vec::new();
    let (new_type, old_type) = (
        new.type_.as_deref().unwrap_or(""),
        old.type_.as_deref().unwrap_or(""),
    );
    if new_type != old_type {
        causes.push(Cause::invalid("type", new_type, "field is immutable"));
    }
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            causes.push(Cause::forbidden("immutable", IMMUTABLE));
        }
        if new.data != old.data {
            causes.push(Cause::forbidden("data", IMMUTABLE));
        }
    }
    causes.extend(validate_secret(new));
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cm(v: serde_json::Value) -> ConfigMap {
        serde_json::from_value(v).unwrap()
    }

    fn secret(v: serde_json::Value) -> Secret {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn config_keys_follow_is_config_map_key() {
        assert!(config_key("app.properties").is_empty());
        assert!(config_key("KEY_NAME-1").is_empty());
        assert_eq!(
            config_key("a b"),
            vec!["a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"]
        );
        assert_eq!(config_key(".."), vec!["must not be '..'"]);
        assert_eq!(config_key("..x"), vec!["must not start with '..'"]);
        assert_eq!(
            config_key(&"a".repeat(254))[0],
            "must be no more than 253 characters"
        );
    }

    #[test]
    fn config_map_keys_and_duplicates_between_bags() {
        let causes = validate_config_map(&cm(json!({
            "metadata": {"name": "c"},
            "data": {"a b": "x", "k": "v"},
            "binaryData": {"k": "eA=="}
        })));
        let errors: Vec<String> = causes.iter().map(Cause::error).collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with("data[a b]: Invalid value: \"a b\": a valid config key"));
        assert_eq!(
            errors[1],
            "data[k]: Invalid value: \"k\": duplicate of key present in binaryData"
        );
        assert_eq!(
            errors[2],
            "binaryData[k]: Invalid value: \"k\": duplicate of key present in data"
        );
    }

    #[test]
    fn immutable_objects_keep_their_data_and_their_mark() {
        let old = cm(json!({"metadata": {"name": "c"}, "data": {"a": "1"}, "immutable": true}));
        let same = old.clone();
        assert!(validate_config_map_update(&same, &old).is_empty());
        let changed = cm(json!({"metadata": {"name": "c"}, "data": {"a": "2"}}));
        let errors: Vec<String> = validate_config_map_update(&changed, &old)
            .iter()
            .map(Cause::error)
            .collect();
        assert_eq!(
            errors,
            vec![
                "immutable: Forbidden: field is immutable when `immutable` is set",
                "data: Forbidden: field is immutable when `immutable` is set"
            ]
        );
        let old = secret(
            json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "MQ=="}, "immutable": true}),
        );
        let new = secret(
            json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "Mg=="}, "immutable": true}),
        );
        assert_eq!(
            validate_secret_update(&new, &old)[0].error(),
            "data: Forbidden: field is immutable when `immutable` is set"
        );
    }

    #[test]
    fn secret_types_are_immutable_and_require_their_keys() {
        let tls = secret(
            json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": ""}}),
        );
        let errors: Vec<String> = validate_secret(&tls).iter().map(Cause::error).collect();
        assert_eq!(errors, vec!["data[tls.key]: Required value"]);
        let old = secret(json!({"metadata": {"name": "s"}, "type": "Opaque"}));
        let new = secret(
            json!({"metadata": {"name": "s"}, "type": "kubernetes.io/basic-auth", "data": {"username": ""}}),
        );
        assert_eq!(
            validate_secret_update(&new, &old)[0].error(),
            "type: Invalid value: \"kubernetes.io/basic-auth\": field is immutable"
        );
    }
}
