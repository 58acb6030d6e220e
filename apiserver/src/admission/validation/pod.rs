//! Pod validation (`ValidatePodSpec`, `ValidatePodUpdate`): at least one container, unique
//! DNS-label names across containers and initContainers, an image each, valid ports, env names,
//! resource quantities with requests ≤ limits, volumes that mounts can find, and enumerations
//! (restartPolicy, dnsPolicy, imagePullPolicy). A pod's spec is then nearly frozen: an update
//! may only change images, shorten activeDeadlineSeconds and add tolerations.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodTemplateSpec, Toleration};
use serde_json::Value;

use super::super::{go_quote, BadValue, Cause};
use super::{meta, names, resources};

const RESTART_POLICIES: [&str; 3] = ["Always", "OnFailure", "Never"];
const DNS_POLICIES: [&str; 4] = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const PULL_POLICIES: [&str; 3] = ["Always", "IfNotPresent", "Never"];
const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];
const TERMINATION_MESSAGE_POLICIES: [&str; 2] = ["File", "FallbackToLogsOnError"];

/// The Forbidden detail of a pod update that touches a frozen field.
pub const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// `ValidatePodCreate` minus metadata: the spec under `spec`.
pub fn validate_pod(pod: &Pod) -> Vec<Cause> {
    match &pod.spec {
        Some(spec) => validate_pod_spec(spec, "spec"),
        None => validate_pod_spec(&PodSpec::default(), "spec"),
    }
}

/// `ValidatePodTemplateSpec`: template labels and annotations (on the template's own path, as
/// the real apiserver reports them), then the spec.
pub fn validate_pod_template(template: &PodTemplateSpec, path: &str) -> Vec<Cause> {
    let meta = template.metadata.clone().unwrap_or_default();
    let mut causes = meta::validate_labels(meta.labels.as_ref(), &format!("{path}.labels"));
    causes.extend(meta::validate_annotations(
        meta.annotations.as_ref(),
        &format!("{path}.annotations"),
    ));
    causes.extend(validate_pod_spec(
        &template.spec.clone().unwrap_or_default(),
        &format!("{path}.spec"),
    ));
    causes
}

/// `ValidatePodSpec`, in the real order: volumes, containers, initContainers, policies, the rest.
pub fn validate_pod_spec(spec: &PodSpec, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    let volumes = validate_volumes(spec, &format!("{path}.volumes"), &mut causes);

    let containers_path = format!("{path}.containers");
    if spec.containers.is_empty() {
        causes.push(Cause::required(containers_path.as_str(), ""));
    }
    let mut names_seen = BTreeSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        let p = format!("{containers_path}[{i}]");
        validate_container(c, &volumes, &p, &mut causes);
        if !names_seen.insert(c.name.clone()) {
            causes.push(Cause::duplicate(format!("{p}.name"), c.name.as_str()));
        }
    }
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let p = format!("{path}.initContainers[{i}]");
        validate_container(c, &volumes, &p, &mut causes);
        if !names_seen.insert(c.name.clone()) {
            causes.push(Cause::duplicate(format!("{p}.name"), c.name.as_str()));
        }
    }

    enumerated(
        spec.restart_policy.as_deref(),
        &RESTART_POLICIES,
        &format!("{path}.restartPolicy"),
        &mut causes,
    );
    enumerated(
        spec.dns_policy.as_deref(),
        &DNS_POLICIES,
        &format!("{path}.dnsPolicy"),
        &mut causes,
    );
    causes.extend(meta::validate_labels(
        spec.node_selector.as_ref(),
        &format!("{path}.nodeSelector"),
    ));
    if let Some(sa) = spec
        .service_account_name
        .as_deref()
        .filter(|s| !s.is_empty())
    {
        for msg in names::dns1123_subdomain(sa) {
            causes.push(Cause::invalid(
                format!("{path}.serviceAccountName"),
                sa,
                &msg,
            ));
        }
    }
    if let Some(node) = spec.node_name.as_deref().filter(|s| !s.is_empty()) {
        for msg in names::dns1123_subdomain(node) {
            causes.push(Cause::invalid(format!("{path}.nodeName"), node, &msg));
        }
    }
    if let Some(ads) = spec.active_deadline_seconds {
        if !(1..=i64::from(i32::MAX)).contains(&ads) {
            causes.push(Cause::invalid(
                format!("{path}.activeDeadlineSeconds"),
                ads,
                &names::inclusive_range_error(1, i32::MAX.into()),
            ));
        }
    }
    for (field, value) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        if let Some(v) = value.as_deref().filter(|s| !s.is_empty()) {
            for msg in names::dns1123_label(v) {
                causes.push(Cause::invalid(format!("{path}.{field}"), v, &msg));
            }
        }
    }
    for (i, t) in spec.tolerations.iter().flatten().enumerate() {
        validate_toleration(t, &format!("{path}.tolerations[{i}]"), &mut causes);
    }
    if let Some(pp) = spec.preemption_policy.as_deref() {
        if pp != "PreemptLowerPriority" && pp != "Never" {
            causes.push(Cause::not_supported(
                format!("{path}.preemptionPolicy"),
                pp,
                &["Never", "PreemptLowerPriority"],
            ));
        }
    }
    causes
}

/// An enumerated string field: empty → Required, unknown → NotSupported.
fn enumerated(value: Option<&str>, allowed: &[&str], path: &str, causes: &mut Vec<Cause>) {
    match value.unwrap_or("") {
        "" => causes.push(Cause::required(path, "")),
        v if allowed.contains(&v) => {}
        v => causes.push(Cause::not_supported(path, v, allowed)),
    }
}

/// `ValidateVolumes`: DNS-label names, unique, exactly one source. Returns the volume names.
fn validate_volumes(spec: &PodSpec, path: &str, causes: &mut Vec<Cause>) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let p = format!("{path}[{i}]");
        if v.name.is_empty() {
            causes.push(Cause::required(format!("{p}.name"), ""));
        } else {
            for msg in names::dns1123_label(&v.name) {
                causes.push(Cause::invalid(format!("{p}.name"), v.name.as_str(), &msg));
            }
        }
        if !seen.insert(v.name.clone()) {
            causes.push(Cause::duplicate(format!("{p}.name"), v.name.as_str()));
        }
        let as_json = serde_json::to_value(v).unwrap_or(Value::Null);
        let sources: Vec<String> = as_json
            .as_object()
            .map(|o| o.keys().filter(|k| *k != "name").cloned().collect())
            .unwrap_or_default();
        match sources.len() {
            0 => causes.push(Cause::required(p.as_str(), "must specify a volume type")),
            1 => {}
            _ => causes.push(Cause::forbidden(
                format!("{p}.{}", sources[1]),
                "may not specify more than 1 volume type",
            )),
        }
        if let Some(h) = v.host_path.as_ref().filter(|h| h.path.is_empty()) {
            let _ = h;
            causes.push(Cause::required(format!("{p}.hostPath.path"), ""));
        }
    }
    seen
}

/// `validateContainerCommon` and friends.
fn validate_container(c: &Container, volumes: &BTreeSet<String>, p: &str, causes: &mut Vec<Cause>) {
    if c.name.is_empty() {
        causes.push(Cause::required(format!("{p}.name"), ""));
    } else {
        for msg in names::dns1123_label(&c.name) {
            causes.push(Cause::invalid(format!("{p}.name"), c.name.as_str(), &msg));
        }
    }
    if c.image.as_deref().unwrap_or("").is_empty() {
        causes.push(Cause::required(format!("{p}.image"), ""));
    }
    enumerated(
        c.termination_message_policy.as_deref(),
        &TERMINATION_MESSAGE_POLICIES,
        &format!("{p}.terminationMessagePolicy"),
        causes,
    );

    let mut port_names = BTreeSet::new();
    for (i, port) in c.ports.iter().flatten().enumerate() {
        let pp = format!("{p}.ports[{i}]");
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            let msgs = names::port_name(name);
            if !msgs.is_empty() {
                for msg in msgs {
                    causes.push(Cause::invalid(format!("{pp}.name"), name, &msg));
                }
            } else if !port_names.insert(name.to_string()) {
                causes.push(Cause::duplicate(format!("{pp}.name"), name));
            }
        }
        if port.container_port == 0 {
            causes.push(Cause::required(format!("{pp}.containerPort"), ""));
        } else {
            for msg in names::port_num(port.container_port.into()) {
                causes.push(Cause::invalid(
                    format!("{pp}.containerPort"),
                    port.container_port,
                    &msg,
                ));
            }
        }
        if let Some(hp) = port.host_port.filter(|hp| *hp != 0) {
            for msg in names::port_num(hp.into()) {
                causes.push(Cause::invalid(format!("{pp}.hostPort"), hp, &msg));
            }
        }
        match port.protocol.as_deref().unwrap_or("") {
            "" => causes.push(Cause::required(format!("{pp}.protocol"), "")),
            proto if PROTOCOLS.contains(&proto) => {}
            proto => causes.push(Cause::not_supported(
                format!("{pp}.protocol"),
                proto,
                &PROTOCOLS,
            )),
        }
    }

    for (i, env) in c.env.iter().flatten().enumerate() {
        let ep = format!("{p}.env[{i}].name");
        if env.name.is_empty() {
            causes.push(Cause::required(ep, ""));
        } else {
            for msg in names::env_var_name(&env.name) {
                causes.push(Cause::invalid(ep.as_str(), env.name.as_str(), &msg));
            }
        }
    }

    let mut mount_points = BTreeSet::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let mp = format!("{p}.volumeMounts[{i}]");
        if m.name.is_empty() {
            causes.push(Cause::required(format!("{mp}.name"), ""));
        }
        if !volumes.contains(&m.name) {
            causes.push(Cause::not_found(format!("{mp}.name"), m.name.as_str()));
        }
        if m.mount_path.is_empty() {
            causes.push(Cause::required(format!("{mp}.mountPath"), ""));
        }
        if !mount_points.insert(m.mount_path.clone()) {
            causes.push(Cause::invalid(
                format!("{mp}.mountPath"),
                m.mount_path.as_str(),
                "must be unique",
            ));
        }
    }

    enumerated(
        c.image_pull_policy.as_deref(),
        &PULL_POLICIES,
        &format!("{p}.imagePullPolicy"),
        causes,
    );
    if let Some(res) = c.resources.as_ref() {
        resources::validate_resources(res, &format!("{p}.resources"), causes);
    }
}

/// `ValidateTolerations` (key, operator, effect, tolerationSeconds).
fn validate_toleration(t: &Toleration, p: &str, causes: &mut Vec<Cause>) {
    let key = t.key.as_deref().unwrap_or("");
    let operator = t.operator.as_deref().unwrap_or("");
    let value = t.value.as_deref().unwrap_or("");
    let effect = t.effect.as_deref().unwrap_or("");
    if !key.is_empty() {
        for msg in names::qualified_name(key) {
            causes.push(Cause::invalid(format!("{p}.key"), key, &msg));
        }
    }
    if key.is_empty() && operator != "Exists" {
        causes.push(Cause::invalid(
            format!("{p}.operator"),
            operator,
            "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
        ));
    }
    if t.toleration_seconds.is_some() && effect != "NoExecute" {
        causes.push(Cause::invalid(
            format!("{p}.effect"),
            effect,
            "effect must be 'NoExecute' when `tolerationSeconds` is set",
        ));
    }
    match operator {
        "" | "Equal" => {
            for msg in names::label_value(value) {
                causes.push(Cause::invalid(format!("{p}.operator"), value, &msg));
            }
        }
        "Exists" if !value.is_empty() => {
            let seconds = t
                .toleration_seconds
                .map(|s| format!("&{s}"))
                .unwrap_or_else(|| "(*int64)(nil)".into());
            let shown = format!(
                "core.Toleration{{Key:{}, Operator:\"Exists\", Value:{}, Effect:{}, TolerationSeconds:{seconds}}}",
                go_quote(key),
                go_quote(value),
                go_quote(effect)
            );
            causes.push(Cause::invalid(
                format!("{p}.operator"),
                BadValue::Raw(shown),
                "value must be empty when `operator` is 'Exists'",
            ))
        }
        "Exists" => {}
        other => causes.push(Cause::not_supported(
            format!("{p}.operator"),
            other,
            &["Equal", "Exists"],
        )),
    }
    if !effect.is_empty() && !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        causes.push(Cause::not_supported(
            format!("{p}.effect"),
            effect,
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
        ));
    }
}

/// `ValidatePodUpdate` minus metadata: the new spec must be valid, and equal to the old one once
/// the mutable fields (images, activeDeadlineSeconds, added tolerations) are copied over.
pub fn validate_pod_update(new: &Pod, old: &Pod) -> Vec<Cause> {
    let new_spec = new.spec.clone().unwrap_or_default();
    let old_spec = old.spec.clone().unwrap_or_default();
    let mut causes = validate_pod_spec(&new_spec, "spec");
    if new_spec.containers.len() != old_spec.containers.len() {
        causes.push(Cause::forbidden(
            "spec.containers",
            "pod updates may not add or remove containers",
        ));
        return causes;
    }
    let new_init = new_spec.init_containers.clone().unwrap_or_default();
    let old_init = old_spec.init_containers.clone().unwrap_or_default();
    if new_init.len() != old_init.len() {
        causes.push(Cause::forbidden(
            "spec.initContainers",
            "pod updates may not add or remove containers",
        ));
        return causes;
    }
    match (
        old_spec.active_deadline_seconds,
        new_spec.active_deadline_seconds,
    ) {
        (Some(_), None) => causes.push(Cause::invalid(
            "spec.activeDeadlineSeconds",
            BadValue::Null,
            "must not update from a positive integer to nil value",
        )),
        (Some(o), Some(n)) if n > o => causes.push(Cause::invalid(
            "spec.activeDeadlineSeconds",
            n,
            "must be less than or equal to previous value",
        )),
        _ => {}
    }
    let old_tolerations = old_spec.tolerations.clone().unwrap_or_default();
    let new_tolerations = new_spec.tolerations.clone().unwrap_or_default();
    for (i, t) in old_tolerations.iter().enumerate() {
        if !new_tolerations.contains(t) {
            causes.push(Cause::forbidden(
                format!("spec.tolerations[{i}]"),
                "existing toleration can not be modified except its tolerationSeconds",
            ));
        }
    }
    // Munge: copy what may change from new into old, then any remaining difference is forbidden.
    let mut munged = new_spec.clone();
    for (m, o) in munged.containers.iter_mut().zip(old_spec.containers.iter()) {
        m.image = o.image.clone();
    }
    for (m, o) in munged
        .init_containers
        .iter_mut()
        .flatten()
        .zip(old_init.iter())
    {
        m.image = o.image.clone();
    }
    munged.active_deadline_seconds = old_spec.active_deadline_seconds;
    munged.tolerations = old_spec.tolerations.clone();
    if old_spec
        .termination_grace_period_seconds
        .is_some_and(|s| s < 0)
        && new_spec.termination_grace_period_seconds == Some(1)
    {
        munged.termination_grace_period_seconds = old_spec.termination_grace_period_seconds;
    }
    let a = serde_json::to_value(&old_spec).unwrap_or(Value::Null);
    let b = serde_json::to_value(&munged).unwrap_or(Value::Null);
    if a != b {
        causes.push(Cause::forbidden(
            "spec",
            &format!("{POD_UPDATE_FORBIDDEN}\n{}", spec_diff(&a, &b)),
        ));
    }
    causes
}

/// A short `cmp.Diff`-like listing of the top-level spec fields that differ.
fn spec_diff(old: &Value, new: &Value) -> String {
    let empty = serde_json::Map::new();
    let (o, n) = (
        old.as_object().unwrap_or(&empty),
        new.as_object().unwrap_or(&empty),
    );
    let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    let mut out = String::from("  core.PodSpec{\n");
    for k in keys {
        if o.get(k) != n.get(k) {
            let show = |v: Option<&Value>| v.map(|v| v.to_string()).unwrap_or_else(|| "nil".into());
            out.push_str(&format!(
                "- \t{k}: {},\n+ \t{k}: {},\n",
                show(o.get(k)),
                show(n.get(k))
            ));
        }
    }
    out.push_str("  }\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: Value) -> Pod {
        let mut v = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": spec});
        super::super::super::defaults::apply_defaults("pods", &mut v);
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn duplicate_container_names_across_lists() {
        let p = pod(
            json!({"containers": [{"name": "a", "image": "x"}, {"name": "a", "image": "y"}],
                           "initContainers": [{"name": "a", "image": "z"}]}),
        );
        let c = validate_pod(&p);
        let dups: Vec<&str> = c
            .iter()
            .filter(|c| c.reason.as_str() == "FieldValueDuplicate")
            .map(|c| c.field.as_str())
            .collect();
        assert_eq!(
            dups,
            vec!["spec.containers[1].name", "spec.initContainers[0].name"]
        );
        assert_eq!(c[0].message, "Duplicate value: \"a\"");
    }

    #[test]
    fn required_and_enumerations() {
        let p = pod(json!({"containers": [], "restartPolicy": "Sometimes"}));
        let c = validate_pod(&p);
        assert_eq!(c[0].error(), "spec.containers: Required value");
        assert_eq!(c[1].error(), "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"");
        let p = pod(
            json!({"containers": [{"name": "Bad_Name", "ports": [{"containerPort": 70000}], "env": [{"name": "A=B"}]}]}),
        );
        let fields: Vec<String> = validate_pod(&p).iter().map(|c| c.field.clone()).collect();
        assert_eq!(
            fields,
            vec![
                "spec.containers[0].name",
                "spec.containers[0].image",
                "spec.containers[0].ports[0].containerPort",
                "spec.containers[0].env[0].name"
            ]
        );
    }

    #[test]
    fn resources_volumes_and_mounts() {
        let p = pod(json!({"containers": [{"name": "c", "image": "i",
            "resources": {"requests": {"cpu": "2", "memory": "1Gx"}, "limits": {"cpu": "1"}},
            "volumeMounts": [{"name": "data", "mountPath": "/d"}, {"name": "missing", "mountPath": "/d"}]}],
            "volumes": [{"name": "data"}, {"name": "data", "hostPath": {"path": "/x"}}]}));
        let errors: Vec<String> = validate_pod(&p).iter().map(|c| c.error()).collect();
        assert!(
            errors.contains(&"spec.volumes[1].name: Duplicate value: \"data\"".to_string()),
            "{errors:?}"
        );
        assert!(errors.contains(&"spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1".to_string()), "{errors:?}");
        assert!(errors.iter().any(|e| e.starts_with("spec.containers[0].resources.requests[memory]: Invalid value: \"1Gx\": quantities must match")), "{errors:?}");
        assert!(
            errors.contains(
                &"spec.containers[0].volumeMounts[1].name: Not found: \"missing\"".to_string()
            ),
            "{errors:?}"
        );
        assert!(errors.contains(&"spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/d\": must be unique".to_string()), "{errors:?}");
    }

    #[test]
    fn updates_may_change_images_but_not_node_name() {
        let old = pod(json!({"containers": [{"name": "c", "image": "nginx:1"}]}));
        let mut new = old.clone();
        new.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
        assert!(validate_pod_update(&new, &old).is_empty());
        new.spec.as_mut().unwrap().node_name = Some("n1".into());
        let c = validate_pod_update(&new, &old);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].field, "spec");
        assert!(c[0]
            .message
            .starts_with(&format!("Forbidden: {POD_UPDATE_FORBIDDEN}\n")));
        assert!(c[0].message.contains("nodeName"));
        let mut grown = old.clone();
        grown
            .spec
            .as_mut()
            .unwrap()
            .containers
            .push(old.spec.as_ref().unwrap().containers[0].clone());
        grown.spec.as_mut().unwrap().containers[1].name = "d".into();
        assert_eq!(
            validate_pod_update(&grown, &old)[0].message,
            "Forbidden: pod updates may not add or remove containers"
        );
    }
}
