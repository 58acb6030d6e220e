//! Validation of the cluster plumbing objects: nodes (taints, podCIDRs and providerID that only
//! go from unset to set), namespaces (names are DNS labels, done in `meta`), leases (positive
//! duration), and events (the event must live in the namespace of the object it is about).

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use serde_json::Value;

use super::super::Cause;
use super::names;

/// `ValidateNode` minus metadata: taints and podCIDRs.
pub fn validate_node(node: &Node) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = node.spec.clone().unwrap_or_default();
    for (i, t) in spec.taints.iter().flatten().enumerate() {
        let p = format!("spec.taints[{i}]");
        if t.key.is_empty() {
            causes.push(Cause::required(format!("{p}.key"), ""));
        }
        for msg in names::qualified_name(&t.key) {
            if !t.key.is_empty() {
                causes.push(Cause::invalid(format!("{p}.key"), t.key.as_str(), &msg));
            }
        }
        for msg in names::label_value(t.value.as_deref().unwrap_or("")) {
            causes.push(Cause::invalid(
                format!("{p}.value"),
                t.value.as_deref().unwrap_or(""),
                &msg,
            ));
        }
        match t.effect.as_str() {
            "" => causes.push(Cause::required(format!("{p}.effect"), "")),
            "NoSchedule" | "PreferNoSchedule" | "NoExecute" => {}
            other => causes.push(Cause::not_supported(
                format!("{p}.effect"),
                other,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            )),
        }
    }
    for (i, cidr) in spec.pod_cidrs.iter().flatten().enumerate() {
        if !is_cidr(cidr) {
            causes.push(Cause::invalid(
                format!("spec.podCIDRs[{i}]"),
                cidr.as_str(),
                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            ));
        }
    }
    causes
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => bits <= 32,
        Ok(std::net::IpAddr::V6(_)) => bits <= 128,
        Err(_) => false,
    }
}

/// `ValidateNodeUpdate`: podCIDRs and providerID may only be set once.
pub fn validate_node_update(new: &Node, old: &Node) -> Vec<Cause> {
    const CIDR_MSG: &str = "node updates may not change podCIDR except from \"\" to valid";
    let mut causes = validate_node(new);
    let (n, o) = (
        new.spec.clone().unwrap_or_default(),
        old.spec.clone().unwrap_or_default(),
    );
    let old_cidrs = o.pod_cidrs.clone().unwrap_or_default();
    let new_cidrs = n.pod_cidrs.clone().unwrap_or_default();
    if !old_cidrs.is_empty() {
        if old_cidrs.len() != new_cidrs.len() {
            causes.push(Cause::forbidden("spec.podCIDRs", CIDR_MSG));
        } else {
            for (i, (a, b)) in old_cidrs.iter().zip(new_cidrs.iter()).enumerate() {
                if a != b {
                    causes.push(Cause::forbidden(format!("spec.podCIDRs[{i}]"), CIDR_MSG));
                }
            }
        }
    }
    let old_provider = o.provider_id.unwrap_or_default();
    if !old_provider.is_empty() && Some(&old_provider) != n.provider_id.as_ref() {
        causes.push(Cause::forbidden(
            "spec.providerID",
            "node updates may not change providerID except from \"\" to valid",
        ));
    }
    causes
}

/// `ValidateLeaseSpec`.
pub fn validate_lease(lease: &Lease) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = lease.spec.clone().unwrap_or_default();
    if let Some(d) = spec.lease_duration_seconds.filter(|d| *d <= 0) {
        causes.push(Cause::invalid(
            "spec.leaseDurationSeconds",
            d,
            "must be greater than 0",
        ));
    }
    if let Some(t) = spec.lease_transitions.filter(|t| *t < 0) {
        causes.push(Cause::invalid(
            "spec.leaseTransitions",
            t,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(s) = spec
        .strategy
        .as_deref()
        .filter(|s| !s.is_empty() && *s != "OldestEmulationVersion")
    {
        causes.push(Cause::not_supported(
            "spec.strategy",
            s,
            &["OldestEmulationVersion"],
        ));
    }
    if spec
        .preferred_holder
        .as_deref()
        .is_some_and(|p| !p.is_empty())
        && spec.strategy.as_deref().unwrap_or("").is_empty()
    {
        causes.push(Cause::forbidden(
            "spec.preferredHolder",
            "may only be specified if `strategy` is defined",
        ));
    }
    causes
}

fn text<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// `ValidateEventCreate`, for the core/v1 shape (`legacyValidateEvent` only, as the real
/// apiserver does for v1) or the events.k8s.io/v1 shape (the stricter rules).
pub fn validate_event(ev: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let v1 = super::super::is_events_v1(ev);
    let (regarding, controller_field, controller) = if v1 {
        (
            "regarding",
            "reportingController",
            text(ev, "/reportingController"),
        )
    } else {
        (
            "involvedObject",
            "reportingComponent",
            text(ev, "/reportingComponent"),
        )
    };
    let namespace = text(ev, "/metadata/namespace");
    let involved_ns = text(ev, &format!("/{regarding}/namespace"));
    let mismatch = |causes: &mut Vec<Cause>| {
        causes.push(Cause::invalid(
            "involvedObject.namespace",
            involved_ns,
            "does not match event.namespace",
        ))
    };
    let event_time = ev
        .get("eventTime")
        .is_some_and(|t| !t.is_null() && t.as_str() != Some(""));
    if !event_time {
        if involved_ns.is_empty() {
            if !namespace.is_empty() && namespace != "default" {
                mismatch(&mut causes);
            }
        } else if namespace != involved_ns {
            mismatch(&mut causes);
        }
    } else {
        if involved_ns.is_empty() && namespace != "default" && namespace != "kube-system" {
            mismatch(&mut causes);
        }
        if controller.is_empty() {
            causes.push(Cause::required(controller_field, ""));
        }
        for msg in names::qualified_name(controller) {
            if !controller.is_empty() {
                causes.push(Cause::invalid(controller_field, controller, &msg));
            }
        }
        let instance = text(ev, "/reportingInstance");
        if instance.is_empty() {
            causes.push(Cause::required("reportingInstance", ""));
        } else if instance.len() > 128 {
            causes.push(Cause::invalid(
                "reportingInstance",
                "",
                "can have at most 128 characters",
            ));
        }
        if text(ev, "/action").is_empty() {
            causes.push(Cause::required("action", ""));
        }
    }
    for msg in names::dns1123_subdomain(namespace) {
        if !namespace.is_empty() {
            causes.push(Cause::invalid("namespace", namespace, &msg));
        }
    }
    if v1 {
        if !event_time {
            causes.push(Cause::required("eventTime", ""));
        }
        let ty = text(ev, "/type");
        if ty != "Normal" && ty != "Warning" {
            causes.push(Cause::invalid(
                "type",
                "",
                &format!("has invalid value: {ty}"),
            ));
        }
        if text(ev, "/reason").is_empty() {
            causes.push(Cause::required("reason", ""));
        }
        if text(ev, "/note").len() > 1024 {
            causes.push(Cause::invalid(
                "note",
                "",
                "can have at most 1024 characters",
            ));
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_namespace_must_match_involved_object() {
        let ok = json!({"metadata": {"name": "e", "namespace": "default"}, "involvedObject": {"kind": "Pod", "namespace": "default", "name": "p"}});
        assert!(validate_event(&ok).is_empty());
        let bad = json!({"metadata": {"name": "e", "namespace": "other"}, "involvedObject": {"kind": "Pod", "namespace": "default", "name": "p"}});
        assert_eq!(
            validate_event(&bad)[0].error(),
            "involvedObject.namespace: Invalid value: \"default\": does not match event.namespace"
        );
        let node_event = json!({"metadata": {"name": "e", "namespace": "default"}, "involvedObject": {"kind": "Node", "name": "n1"}});
        assert!(validate_event(&node_event).is_empty());
    }

    #[test]
    fn events_v1_needs_reporting_fields() {
        let ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e", "namespace": "default"},
            "eventTime": "2024-01-01T00:00:00.000000Z", "regarding": {"kind": "Pod", "namespace": "default", "name": "p"},
            "reportingController": "example.com/ctl", "reportingInstance": "ctl-1", "action": "Reconcile", "reason": "Done", "type": "Normal"});
        assert!(validate_event(&ev).is_empty(), "{:?}", validate_event(&ev));
        let mut bad = ev.clone();
        bad["type"] = json!("Info");
        bad.as_object_mut().unwrap().remove("action");
        let errors: Vec<String> = validate_event(&bad).iter().map(|c| c.error()).collect();
        assert_eq!(
            errors,
            vec![
                "action: Required value".to_string(),
                "type: Invalid value: \"\": has invalid value: Info".to_string()
            ]
        );
    }

    #[test]
    fn nodes_and_leases() {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}, "spec": {"podCIDRs": ["10.0.0.0/24"], "providerID": "p1",
            "taints": [{"key": "k", "effect": "Sometimes"}]}})).unwrap();
        assert_eq!(validate_node(&node)[0].message, "Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"");
        let mut moved: Node = node.clone();
        moved.spec.as_mut().unwrap().pod_cidrs = Some(vec!["10.0.1.0/24".into()]);
        moved.spec.as_mut().unwrap().taints = None;
        let errors: Vec<String> = validate_node_update(&moved, &node)
            .iter()
            .map(|c| c.field.clone())
            .collect();
        assert_eq!(errors, vec!["spec.podCIDRs[0]".to_string()]);
        let lease: Lease = serde_json::from_value(
            json!({"metadata": {"name": "n1"}, "spec": {"leaseDurationSeconds": 0}}),
        )
        .unwrap();
        assert_eq!(
            validate_lease(&lease)[0].error(),
            "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"
        );
    }
}
