//! Validation of Services and of the lists of their backends (`ValidateService`,
//! `ValidateServiceUpdate`, `ValidateEndpoints`, `ValidateEndpointSlice` in
//! `pkg/apis/{core,discovery}/validation`).
//!
//! A Service's ports are what clients dial: each a number in 1-65535 with a protocol (TCP,
//! UDP, SCTP); with several, each needs a distinct name, since EndpointSlices and DNS SRV
//! records refer to ports by name. `clusterIP: None` (headless) makes sense only for a
//! ClusterIP Service: a NodePort needs a virtual IP to forward to. Once set, the ClusterIP
//! never changes (proxies and DNS caches hold it). Whether an address or node port is *free*
//! is not checked here but by `crate::allocator`, in the transaction that stores the Service.
//!
//! Endpoints and EndpointSlices list addresses; an address is never unspecified, loopback or
//! link-local (`ValidateEndpointIP`): those would make a proxy send traffic to itself.

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Endpoints, Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::super::services::{is_headless, needs_cluster_ip};
use super::super::{BadValue, Cause};
use super::meta::validate_labels;
use super::names;

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const IP_MSG: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

/// `ValidateService` minus metadata.
pub fn validate_service(svc: &Service) -> Vec<Cause> {
    let mut causes = Vec::new();
    let spec = svc.spec.clone().unwrap_or_default();
    let ty = spec.type_.as_deref().unwrap_or("");
    let ports = spec.ports.clone().unwrap_or_default();
    if ports.is_empty() && !is_headless(&spec) && ty != "ExternalName" {
        causes.push(Cause::required("spec.ports", ""));
    }
    let mut names_seen = BTreeSet::new();
    let mut pairs = BTreeSet::new();
    let mut node_ports = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        causes.extend(validate_service_port(
            port,
            ports.len() > 1,
            &mut names_seen,
            &path,
        ));
        let protocol = port.protocol.clone().unwrap_or_default();
        if !pairs.insert((port.port, protocol.clone())) {
            causes.push(Cause::duplicate(
                path.clone(),
                BadValue::Raw(go_service_port(port.port, &protocol)),
            ));
        }
        let node_port = port.node_port.unwrap_or(0);
        if node_port != 0 {
            if ty == "ClusterIP" {
                causes.push(Cause::forbidden(
                    format!("{path}.nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            } else if !node_ports.insert((node_port, protocol)) {
                causes.push(Cause::duplicate(format!("{path}.nodePort"), node_port));
            }
        }
    }
    causes.extend(validate_labels(spec.selector.as_ref(), "spec.selector"));
    // The type is checked after the ports, where kube-apiserver reports it.
    if ty.is_empty() {
        causes.push(Cause::required("spec.type", ""));
    } else if !TYPES.contains(&ty) {
        causes.push(Cause::not_supported("spec.type", ty, TYPES));
    }
    causes.extend(validate_cluster_ips(&spec.cluster_ip, &spec.cluster_ips));
    match ty {
        "ExternalName" => {
            if spec.cluster_ips.as_ref().is_some_and(|ips| !ips.is_empty()) {
                causes.push(Cause::forbidden(
                    "spec.clusterIPs",
                    "may not be set for ExternalName services",
                ));
            }
            let name = spec.external_name.as_deref().unwrap_or("");
            if name.is_empty() {
                causes.push(Cause::required("spec.externalName", ""));
            } else {
                for msg in names::dns1123_subdomain(name.trim_end_matches('.')) {
                    causes.push(Cause::invalid("spec.externalName", name, &msg));
                }
            }
        }
        "NodePort" | "LoadBalancer" if is_headless(&spec) => causes.push(Cause::invalid(
            "spec.clusterIPs[0]",
            "None",
            &format!("may not be set to 'None' for {ty} services"),
        )),
        _ => {}
    }
    if needs_cluster_ip(&spec) {
        for (i, family) in spec.ip_families.iter().flatten().enumerate() {
            let path = format!("spec.ipFamilies[{i}]");
            match family.as_str() {
                "IPv4" => {}
                "IPv6" => causes.push(Cause::invalid(
                    path,
                    "IPv6",
                    "not configured on this cluster",
                )),
                other => causes.push(Cause::not_supported(path, other, &["IPv4", "IPv6"])),
            }
        }
        if let Some(policy) = spec.ip_family_policy.as_deref() {
            let supported = ["PreferDualStack", "RequireDualStack", "SingleStack"];
            if !supported.contains(&policy) {
                causes.push(Cause::not_supported(
                    "spec.ipFamilyPolicy",
                    policy,
                    &supported,
                ));
            }
        }
    }
    let enum_field = |causes: &mut Vec<Cause>, path: &str, v: &Option<String>, ok: &[&str]| {
        if let Some(v) = v.as_deref().filter(|v| !ok.contains(v)) {
            causes.push(Cause::not_supported(path, v, ok));
        }
    };
    enum_field(
        &mut causes,
        "spec.sessionAffinity",
        &spec.session_affinity,
        &["ClientIP", "None"],
    );
    enum_field(
        &mut causes,
        "spec.externalTrafficPolicy",
        &spec.external_traffic_policy,
        &["Cluster", "Local"],
    );
    enum_field(
        &mut causes,
        "spec.internalTrafficPolicy",
        &spec.internal_traffic_policy,
        &["Cluster", "Local"],
    );
    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        causes.extend(endpoint_ip(ip, &format!("spec.externalIPs[{i}]")));
    }
    causes
}

/// `validateServicePort`: a name (required when there are several, unique, a DNS label), the
/// port number, the protocol, and the target port (a number or an IANA port name).
fn validate_service_port(
    port: &ServicePort,
    require_name: bool,
    names_seen: &mut BTreeSet<String>,
    path: &str,
) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = port.name.as_deref().unwrap_or("");
    if require_name && name.is_empty() {
        causes.push(Cause::required(format!("{path}.name"), ""));
    } else if !name.is_empty() {
        for msg in names::dns1123_label(name) {
            causes.push(Cause::invalid(format!("{path}.name"), name, &msg));
        }
        if !names_seen.insert(name.to_string()) {
            causes.push(Cause::duplicate(format!("{path}.name"), name));
        }
    }
    for msg in names::port_num(port.port.into()) {
        causes.push(Cause::invalid(format!("{path}.port"), port.port, &msg));
    }
    causes.extend(protocol(
        port.protocol.as_deref(),
        &format!("{path}.protocol"),
    ));
    match &port.target_port {
        Some(IntOrString::Int(n)) => {
            for msg in names::port_num((*n).into()) {
                causes.push(Cause::invalid(format!("{path}.targetPort"), *n, &msg));
            }
        }
        Some(IntOrString::String(s)) => {
            for msg in names::port_name(s) {
                causes.push(Cause::invalid(format!("{path}.targetPort"), s, &msg));
            }
        }
        None => {}
    }
    causes
}

/// A protocol: required, one of SCTP, TCP, UDP.
fn protocol(p: Option<&str>, path: &str) -> Vec<Cause> {
    match p.unwrap_or("") {
        "" => vec![Cause::required(path, "")],
        p if !PROTOCOLS.contains(&p) => vec![Cause::not_supported(path, p, PROTOCOLS)],
        _ => vec![],
    }
}

/// Go's `%#v` of the `core.ServicePort{Protocol, Port}` key a duplicate is reported with.
fn go_service_port(port: i32, protocol: &str) -> String {
    format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
        super::super::go_quote(protocol)
    )
}

/// Go's `%#v` of a `[]string`.
pub fn go_string_slice(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| super::super::go_quote(s)).collect();
    format!("[]string{{{}}}", items.join(", "))
}

/// `validateClusterIPs`: `None` only alone, every other entry an IP; `clusterIP` is the first.
fn validate_cluster_ips(ip: &Option<String>, ips: &Option<Vec<String>>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let ips = ips.clone().unwrap_or_default();
    let ip = ip.clone().unwrap_or_default();
    if !ip.is_empty() && ips.first() != Some(&ip) {
        causes.push(Cause::invalid(
            "spec.clusterIPs",
            BadValue::Raw(go_string_slice(&ips)),
            "first value must match `clusterIP`",
        ));
    }
    for (i, one) in ips.iter().enumerate() {
        if one == "None" {
            if i == 0 && ips.len() > 1 {
                causes.push(Cause::invalid(
                    "spec.clusterIPs",
                    BadValue::Raw(go_string_slice(&ips)),
                    "'None' must be the first and only value",
                ));
            }
            if i == 0 {
                continue;
            }
        }
        if one.parse::<IpAddr>().is_err() {
            causes.push(Cause::invalid(format!("spec.clusterIPs[{i}]"), one, IP_MSG));
        }
    }
    causes
}

/// `ValidateServiceUpdate` minus what `validate_service` checks again: the ClusterIP may not
/// change once set (unless the Service becomes or stops being an ExternalName one).
pub fn validate_service_update(new: &Service, old: &Service) -> Vec<Cause> {
    let mut causes = validate_service(new);
    let (spec, old_spec) = (
        new.spec.clone().unwrap_or_default(),
        old.spec.clone().unwrap_or_default(),
    );
    if !needs_cluster_ip(&spec) || !needs_cluster_ip(&old_spec) {
        return causes;
    }
    let (ips, old_ips) = (
        spec.cluster_ips.unwrap_or_default(),
        old_spec.cluster_ips.unwrap_or_default(),
    );
    if ips.is_empty() && !old_ips.is_empty() {
        causes.push(Cause::invalid(
            "spec.clusterIPs[0]",
            BadValue::Raw(go_string_slice(&ips)),
            "primary clusterIP can not be unset",
        ));
    }
    for (i, (a, b)) in old_ips.iter().zip(ips.iter()).enumerate() {
        if a != b {
            causes.push(Cause::invalid(
                format!("spec.clusterIPs[{i}]"),
                BadValue::Raw(go_string_slice(&ips)),
                "may not change once set",
            ));
        }
    }
    causes
}

/// `ValidateEndpointIP`: addresses a proxy could not sensibly forward to.
fn endpoint_ip(ip: &str, path: &str) -> Vec<Cause> {
    let Ok(addr) = ip.parse::<IpAddr>() else {
        return vec![Cause::invalid(path, ip, "must be a valid IP address")];
    };
    let mut causes = Vec::new();
    if addr.is_unspecified() {
        causes.push(Cause::invalid(
            path,
            ip,
            &format!("may not be unspecified ({ip})"),
        ));
    }
    if addr.is_loopback() {
        causes.push(Cause::invalid(
            path,
            ip,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    let (link_local, link_local_multicast) = match addr {
        IpAddr::V4(a) => (a.is_link_local(), a.octets()[..3] == [224, 0, 0]),
        IpAddr::V6(a) => (
            (a.segments()[0] & 0xffc0) == 0xfe80,
            (a.segments()[0] & 0xff0f) == 0xff02,
        ),
    };
    if link_local {
        causes.push(Cause::invalid(
            path,
            ip,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    if link_local_multicast {
        causes.push(Cause::invalid(
            path,
            ip,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
    causes
}

/// `ValidateEndpoints` minus metadata: every subset has addresses, each a usable IP; ports
/// are named when there are several.
pub fn validate_endpoints(ep: &Endpoints) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (i, subset) in ep.subsets.iter().flatten().enumerate() {
        let path = format!("subsets[{i}]");
        let ready = subset.addresses.clone().unwrap_or_default();
        let not_ready = subset.not_ready_addresses.clone().unwrap_or_default();
        if ready.is_empty() && not_ready.is_empty() {
            causes.push(Cause::required(
                path.clone(),
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (field, list) in [("addresses", &ready), ("notReadyAddresses", &not_ready)] {
            for (j, address) in list.iter().enumerate() {
                let p = format!("{path}.{field}[{j}]");
                causes.extend(endpoint_ip(&address.ip, &format!("{p}.ip")));
                if let Some(h) = address.hostname.as_deref().filter(|h| !h.is_empty()) {
                    for msg in names::dns1123_label(h) {
                        causes.push(Cause::invalid(format!("{p}.hostname"), h, &msg));
                    }
                }
                if let Some(n) = address.node_name.as_deref().filter(|n| !n.is_empty()) {
                    for msg in names::dns1123_subdomain(n) {
                        causes.push(Cause::invalid(format!("{p}.nodeName"), n, &msg));
                    }
                }
            }
        }
        let ports = subset.ports.clone().unwrap_or_default();
        let mut seen = BTreeSet::new();
        for (j, port) in ports.iter().enumerate() {
            let p = format!("{path}.ports[{j}]");
            let name = port.name.as_deref().unwrap_or("");
            if ports.len() > 1 && name.is_empty() {
                causes.push(Cause::required(format!("{p}.name"), ""));
            } else if !name.is_empty() {
                for msg in names::dns1123_label(name) {
                    causes.push(Cause::invalid(format!("{p}.name"), name, &msg));
                }
                if !seen.insert(name.to_string()) {
                    causes.push(Cause::duplicate(format!("{p}.name"), name));
                }
            }
            for msg in names::port_num(port.port.into()) {
                causes.push(Cause::invalid(format!("{p}.port"), port.port, &msg));
            }
            causes.extend(protocol(port.protocol.as_deref(), &format!("{p}.protocol")));
        }
    }
    causes
}

/// `ValidateEndpointSlice` minus metadata: the address type, each endpoint's addresses of
/// that type, and the ports (unique names, numbers, protocols).
pub fn validate_endpoint_slice(slice: &EndpointSlice) -> Vec<Cause> {
    let mut causes = Vec::new();
    let address_type = slice.address_type.as_str();
    let types = ["FQDN", "IPv4", "IPv6"];
    if address_type.is_empty() {
        causes.push(Cause::required("addressType", ""));
    } else if !types.contains(&address_type) {
        causes.push(Cause::not_supported("addressType", address_type, &types));
    }
    for (i, endpoint) in slice.endpoints.iter().enumerate() {
        let path = format!("endpoints[{i}]");
        if endpoint.addresses.is_empty() {
            causes.push(Cause::required(
                format!("{path}.addresses"),
                "must contain at least 1 address",
            ));
        }
        for (j, address) in endpoint.addresses.iter().enumerate() {
            let p = format!("{path}.addresses[{j}]");
            let parsed = address.parse::<IpAddr>();
            match address_type {
                "IPv4" if !matches!(parsed, Ok(IpAddr::V4(_))) => {
                    causes.push(Cause::invalid(p, address, "must be a valid IPv4 address"))
                }
                "IPv6" if !matches!(parsed, Ok(IpAddr::V6(_))) => {
                    causes.push(Cause::invalid(p, address, "must be a valid IPv6 address"))
                }
                "IPv4" | "IPv6" => causes.extend(endpoint_ip(address, &p)),
                "FQDN" => {
                    for msg in names::dns1123_subdomain(address) {
                        causes.push(Cause::invalid(p.clone(), address, &msg));
                    }
                }
                _ => {}
            }
        }
        if let Some(n) = endpoint.node_name.as_deref().filter(|n| !n.is_empty()) {
            for msg in names::dns1123_subdomain(n) {
                causes.push(Cause::invalid(format!("{path}.nodeName"), n, &msg));
            }
        }
        if let Some(h) = endpoint.hostname.as_deref().filter(|h| !h.is_empty()) {
            for msg in names::dns1123_label(h) {
                causes.push(Cause::invalid(format!("{path}.hostname"), h, &msg));
            }
        }
    }
    let mut seen = BTreeSet::new();
    for (i, port) in slice.ports.iter().flatten().enumerate() {
        let path = format!("ports[{i}]");
        let name = port.name.as_deref().unwrap_or("");
        if !name.is_empty() {
            for msg in names::dns1123_label(name) {
                causes.push(Cause::invalid(format!("{path}.name"), name, &msg));
            }
        }
        if !seen.insert(name.to_string()) {
            causes.push(Cause::duplicate(format!("{path}.name"), name));
        }
        if let Some(n) = port.port {
            for msg in names::port_num(n.into()) {
                causes.push(Cause::invalid(format!("{path}.port"), n, &msg));
            }
        }
        causes.extend(protocol(
            port.protocol.as_deref(),
            &format!("{path}.protocol"),
        ));
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::super::super::services::default_service;
    use super::*;
    use serde_json::json;

    fn service(spec: serde_json::Value) -> Service {
        let mut svc: Service =
            serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": spec})).unwrap();
        default_service(&mut svc);
        svc
    }

    fn errors(causes: &[Cause]) -> Vec<String> {
        causes.iter().map(Cause::error).collect()
    }

    #[test]
    fn ports_need_numbers_names_and_known_protocols() {
        let svc = service(json!({"ports": [
            {"port": 0}, {"port": 80, "name": "a", "protocol": "ICMP"}]}));
        assert_eq!(
            errors(&validate_service(&svc)),
            [
                "spec.ports[0].name: Required value",
                "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.ports[1].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            ]
        );
        let svc = service(json!({"ports": [{"port": 80, "name": "a"}, {"port": 81, "name": "a"}]}));
        assert_eq!(
            errors(&validate_service(&svc)),
            ["spec.ports[1].name: Duplicate value: \"a\""]
        );
        assert_eq!(
            errors(&validate_service(&service(json!({})))),
            ["spec.ports: Required value"]
        );
    }

    #[test]
    fn headless_is_only_for_cluster_ip_services_and_types_are_an_enum() {
        assert!(validate_service(&service(json!({"clusterIP": "None"}))).is_empty());
        let svc =
            service(json!({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]}));
        assert_eq!(
            errors(&validate_service(&svc)),
            ["spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services"]
        );
        let svc = service(json!({"type": "Magic", "ports": [{"port": 80}]}));
        assert_eq!(
            errors(&validate_service(&svc)),
            ["spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""]
        );
        let svc = service(json!({"clusterIP": "10.96.0.300", "ports": [{"port": 80}]}));
        assert_eq!(
            errors(&validate_service(&svc)),
            [format!(
                "spec.clusterIPs[0]: Invalid value: \"10.96.0.300\": {IP_MSG}"
            )]
        );
    }

    #[test]
    fn the_cluster_ip_may_not_change() {
        let old = service(json!({"clusterIP": "10.96.0.5", "ports": [{"port": 80}]}));
        let new = service(json!({"clusterIP": "10.96.0.6", "ports": [{"port": 80}]}));
        assert_eq!(
            errors(&validate_service_update(&new, &old)),
            ["spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.6\"}: may not change once set"]
        );
    }

    #[test]
    fn endpoints_and_slices_list_usable_addresses() {
        let ep: Endpoints = serde_json::from_value(json!({"subsets": [
            {"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": 80, "protocol": "TCP"}]},
            {"ports": [{"port": 80, "protocol": "TCP"}]}]}))
        .unwrap();
        assert_eq!(
            errors(&validate_endpoints(&ep)),
            [
                "subsets[0].addresses[0].ip: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
                "subsets[1]: Required value: must specify `addresses` or `notReadyAddresses`",
            ]
        );
        let slice: EndpointSlice = serde_json::from_value(json!({"addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1", "fe80::1"]}],
            "ports": [{"name": "", "port": 80, "protocol": "TCP"}]}))
        .unwrap();
        assert_eq!(
            errors(&validate_endpoint_slice(&slice)),
            ["endpoints[0].addresses[1]: Invalid value: \"fe80::1\": must be a valid IPv4 address"]
        );
        let slice: EndpointSlice =
            serde_json::from_value(json!({"addressType": "IP", "endpoints": []})).unwrap();
        assert_eq!(
            errors(&validate_endpoint_slice(&slice)),
            ["addressType: Unsupported value: \"IP\": supported values: \"FQDN\", \"IPv4\", \"IPv6\""]
        );
    }
}
