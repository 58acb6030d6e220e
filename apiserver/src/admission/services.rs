//! The Service strategy's defaults (`SetDefaults_Service` and the REST layer's IP-family
//! defaults), and those of the objects that list a Service's backends: Endpoints and
//! EndpointSlices (`SetDefaults_Endpoints`, `SetDefaults_EndpointPort`).
//!
//! A Service is a stable address in front of changing pods. Its `type` says how far it is
//! reachable: `ClusterIP` (a virtual IP inside the cluster), `NodePort` (also a port on every
//! node), `LoadBalancer` (also an external balancer), `ExternalName` (only a DNS alias, no IP).
//! A `clusterIP: None` Service is *headless*: no virtual IP, DNS answers with the endpoints.
//! The ClusterIP and node ports themselves are given by `crate::allocator` after validation;
//! on update, values a client left out are carried over from the stored Service (kube-apiserver's
//! `patchAllocatedValues`), so `kubectl apply` of a file without a clusterIP keeps it.
//!
//! Read next: `validation/services.rs`, then `crate::allocator`.

use k8s_openapi::api::core::v1::{
    ClientIPConfig, Endpoints, Service, ServiceSpec, SessionAffinityConfig,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The `type`s that get a ClusterIP (all but `ExternalName`).
pub fn needs_cluster_ip(spec: &ServiceSpec) -> bool {
    spec.type_.as_deref() != Some("ExternalName")
}

/// Whether a Service has `clusterIP: None` (headless: DNS answers with the endpoints).
pub fn is_headless(spec: &ServiceSpec) -> bool {
    spec.cluster_ip.as_deref() == Some("None")
}

/// The `type`s whose ports get a node port.
pub fn needs_node_ports(spec: &ServiceSpec) -> bool {
    match spec.type_.as_deref() {
        Some("NodePort") => true,
        Some("LoadBalancer") => spec.allocate_load_balancer_node_ports != Some(false),
        _ => false,
    }
}

/// `SetDefaults_Service`, plus the single-stack IP family the REST layer fills in.
pub fn default_service(svc: &mut Service) {
    let spec = svc.spec.get_or_insert_with(Default::default);
    if spec.session_affinity.as_deref().is_none_or(str::is_empty) {
        spec.session_affinity = Some("None".into());
    }
    match spec.session_affinity.as_deref() {
        Some("None") => spec.session_affinity_config = None,
        Some("ClientIP") => {
            let config = spec
                .session_affinity_config
                .get_or_insert_with(SessionAffinityConfig::default);
            let client_ip = config.client_ip.get_or_insert_with(ClientIPConfig::default);
            client_ip.timeout_seconds.get_or_insert(10800);
        }
        _ => {}
    }
    if spec.type_.as_deref().is_none_or(str::is_empty) {
        spec.type_ = Some("ClusterIP".into());
    }
    for port in spec.ports.iter_mut().flatten() {
        if port.protocol.as_deref().is_none_or(str::is_empty) {
            port.protocol = Some("TCP".into());
        }
        let unset = match &port.target_port {
            None => true,
            Some(IntOrString::Int(0)) => true,
            Some(IntOrString::String(s)) => s.is_empty(),
            Some(IntOrString::Int(_)) => false,
        };
        if unset {
            port.target_port = Some(IntOrString::Int(port.port));
        }
    }
    let ty = spec.type_.clone().unwrap_or_default();
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer")
        && spec
            .external_traffic_policy
            .as_deref()
            .is_none_or(str::is_empty)
    {
        spec.external_traffic_policy = Some("Cluster".into());
    }
    if matches!(ty.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer")
        && spec.internal_traffic_policy.is_none()
    {
        spec.internal_traffic_policy = Some("Cluster".into());
    }
    if ty == "LoadBalancer" && spec.allocate_load_balancer_node_ports.is_none() {
        spec.allocate_load_balancer_node_ports = Some(true);
    }
    // clusterIP and clusterIPs say the same thing; whichever the client set fills the other.
    let ip = spec.cluster_ip.clone().unwrap_or_default();
    let ips = spec.cluster_ips.get_or_insert_with(Vec::new);
    if ips.is_empty() && !ip.is_empty() {
        ips.push(ip);
    } else if ip.is_empty() && !ips.is_empty() {
        spec.cluster_ip = Some(ips[0].clone());
    }
    if spec.cluster_ips.as_ref().is_some_and(Vec::is_empty) {
        spec.cluster_ips = None;
    }
    if needs_cluster_ip(spec) {
        // A single-stack IPv4 cluster: every Service that has (or could have) an IP is IPv4.
        if spec.ip_family_policy.as_deref().is_none_or(str::is_empty) {
            spec.ip_family_policy = Some("SingleStack".into());
        }
        if spec.ip_families.as_ref().is_none_or(Vec::is_empty) {
            spec.ip_families = Some(vec!["IPv4".into()]);
        }
    }
}

/// On update, what the client left out of a Service that the stored one had allocated: the
/// ClusterIP while both need one, and each port's node port (matched by port and protocol)
/// while both need node ports. A PUT of a manifest without them changes nothing then.
pub fn keep_allocated_values(new: &mut Service, old: &Service) {
    let (Some(spec), Some(old_spec)) = (new.spec.as_mut(), old.spec.as_ref()) else {
        return;
    };
    if needs_cluster_ip(spec) && needs_cluster_ip(old_spec) {
        if spec.cluster_ip.as_deref().is_none_or(str::is_empty) {
            spec.cluster_ip = old_spec.cluster_ip.clone();
        }
        if spec.cluster_ips.as_ref().is_none_or(Vec::is_empty) {
            spec.cluster_ips = old_spec.cluster_ips.clone();
        }
        // kube-apiserver's normalizeClusterIPs: a changed clusterIP with unchanged clusterIPs
        // is a change of the primary address (which validation then refuses).
        if spec.cluster_ip != old_spec.cluster_ip && spec.cluster_ips == old_spec.cluster_ips {
            if let (Some(ip), Some(ips)) = (spec.cluster_ip.clone(), spec.cluster_ips.as_mut()) {
                if let Some(first) = ips.first_mut() {
                    *first = ip;
                }
            }
        }
    }
    // kube-apiserver's dropTypeDependentFields: a Service turned ClusterIP or ExternalName
    // loses the node ports it had, and one turned ExternalName its ClusterIP and IP family
    // (unless the client changed them, which validation then refuses).
    if !needs_cluster_ip(spec)
        && needs_cluster_ip(old_spec)
        && spec.cluster_ips == old_spec.cluster_ips
    {
        spec.cluster_ip = None;
        spec.cluster_ips = None;
        if spec.ip_families == old_spec.ip_families {
            spec.ip_families = None;
        }
        if spec.ip_family_policy == old_spec.ip_family_policy {
            spec.ip_family_policy = None;
        }
        if spec.internal_traffic_policy == old_spec.internal_traffic_policy {
            spec.internal_traffic_policy = None;
        }
    }
    let has_node_ports =
        |s: &ServiceSpec| matches!(s.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
    if !has_node_ports(spec) && has_node_ports(old_spec) {
        let old_ports = old_spec.ports.clone().unwrap_or_default();
        for port in spec.ports.iter_mut().flatten() {
            let kept = old_ports
                .iter()
                .any(|o| o.node_port.is_some() && o.node_port == port.node_port);
            if kept {
                port.node_port = None;
            }
        }
    }
    if needs_node_ports(spec) && needs_node_ports(old_spec) {
        let old_ports = old_spec.ports.clone().unwrap_or_default();
        for port in spec.ports.iter_mut().flatten() {
            if port.node_port.unwrap_or(0) != 0 {
                continue;
            }
            let same = old_ports
                .iter()
                .find(|o| o.port == port.port && o.protocol == port.protocol);
            if let Some(o) = same {
                port.node_port = o.node_port;
            }
        }
    }
}

/// [`keep_allocated_values`] on JSON objects (`new` is left as is if either does not decode).
pub fn keep_allocated_json(new: &mut serde_json::Value, old: &serde_json::Value) {
    let (Ok(mut n), Ok(o)) = (
        <Service as serde::Deserialize>::deserialize(&*new),
        <Service as serde::Deserialize>::deserialize(old),
    ) else {
        return;
    };
    keep_allocated_values(&mut n, &o);
    if let Ok(v) = serde_json::to_value(&n) {
        *new = v;
    }
}

/// `SetDefaults_Endpoints`: a port without a protocol is TCP.
pub fn default_endpoints(ep: &mut Endpoints) {
    for subset in ep.subsets.iter_mut().flatten() {
        for port in subset.ports.iter_mut().flatten() {
            if port.protocol.as_deref().is_none_or(str::is_empty) {
                port.protocol = Some("TCP".into());
            }
        }
    }
}

/// `SetDefaults_EndpointPort` (discovery/v1): a port's name defaults to "" and its protocol
/// to TCP.
pub fn default_endpoint_slice(slice: &mut EndpointSlice) {
    for port in slice.ports.iter_mut().flatten() {
        port.name.get_or_insert_with(String::new);
        if port.protocol.as_deref().is_none_or(str::is_empty) {
            port.protocol = Some("TCP".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": spec})).unwrap()
    }

    #[test]
    fn a_bare_service_gets_kube_apiservers_defaults() {
        let mut svc = service(json!({"ports": [{"port": 80}], "selector": {"app": "web"}}));
        default_service(&mut svc);
        let spec = serde_json::to_value(svc.spec.unwrap()).unwrap();
        assert_eq!(
            spec,
            json!({"type": "ClusterIP", "sessionAffinity": "None",
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                "selector": {"app": "web"}, "internalTrafficPolicy": "Cluster",
                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"})
        );
    }

    #[test]
    fn node_ports_get_an_external_policy_and_names_keep_their_target() {
        let mut svc = service(json!({"type": "NodePort", "clusterIP": "10.96.0.9",
            "ports": [{"port": 80, "targetPort": "http"}]}));
        default_service(&mut svc);
        let spec = svc.spec.unwrap();
        assert_eq!(spec.external_traffic_policy.as_deref(), Some("Cluster"));
        assert_eq!(spec.cluster_ips, Some(vec!["10.96.0.9".to_string()]));
        assert_eq!(
            spec.ports.unwrap()[0].target_port,
            Some(IntOrString::String("http".into()))
        );
    }

    #[test]
    fn external_names_get_no_ip_family_and_headless_keeps_none() {
        let mut svc = service(json!({"type": "ExternalName", "externalName": "example.com"}));
        default_service(&mut svc);
        assert_eq!(svc.spec.as_ref().unwrap().ip_families, None);
        let mut svc = service(json!({"clusterIP": "None", "ports": [{"port": 80}]}));
        default_service(&mut svc);
        assert_eq!(
            svc.spec.unwrap().cluster_ips,
            Some(vec!["None".to_string()])
        );
    }

    #[test]
    fn an_update_without_allocated_values_keeps_them() {
        let old = service(json!({"type": "NodePort", "clusterIP": "10.96.0.9",
            "clusterIPs": ["10.96.0.9"], "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}));
        let mut new = service(json!({"type": "NodePort",
            "ports": [{"port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "TCP"}]}));
        keep_allocated_values(&mut new, &old);
        let spec = new.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.9"));
        let ports = spec.ports.unwrap();
        assert_eq!(
            (ports[0].node_port, ports[1].node_port),
            (Some(30080), None)
        );
        let mut changed = service(json!({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.9"]}));
        keep_allocated_values(&mut changed, &old);
        assert_eq!(
            changed.spec.unwrap().cluster_ips,
            Some(vec!["10.96.0.10".to_string()])
        );
    }

    #[test]
    fn a_type_change_drops_what_the_new_type_has_no_use_for() {
        let mut old = service(json!({"type": "NodePort", "clusterIP": "10.96.0.9",
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}));
        default_service(&mut old);
        let mut new = old.clone();
        new.spec.as_mut().unwrap().type_ = Some("ExternalName".into());
        new.spec.as_mut().unwrap().external_name = Some("example.com".into());
        keep_allocated_values(&mut new, &old);
        let spec = new.spec.unwrap();
        assert_eq!(
            (spec.cluster_ip, spec.cluster_ips, spec.ip_families),
            (None, None, None)
        );
        assert_eq!(spec.ports.unwrap()[0].node_port, None);
    }
}
