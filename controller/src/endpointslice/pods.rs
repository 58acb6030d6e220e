//! Which pods back a Service, at which address and on which ports.
//!
//! A pod is an endpoint once it has an IP and while it is not finished (phase Succeeded or
//! Failed); a terminating pod (with a `deletionTimestamp`) stays in the EndpointSlice, marked
//! `terminating`, so that proxies can drain it, but leaves the Endpoints object. A Service port
//! reaches a pod on its `targetPort`: a number is used as it is; a name is looked up among the
//! container ports of the pod (with the Service port's protocol), and a pod that has no port of
//! that name does not serve that Service port (upstream `FindPort`). Read next: `slices.rs`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

/// The protocol a port has when it names none.
const TCP: &str = "TCP";

/// The label selector of a Service this controller keeps endpoints for: a Service without a
/// selector has its endpoints written by someone else (a human, or the apiserver for
/// `default/kubernetes`), and an ExternalName Service is a DNS alias with no endpoints at all.
pub fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.selector.as_ref().filter(|s| !s.is_empty())
}

/// Does the Service's selector (every `key=value`) select the pod?
pub fn selects(selector: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = pod.labels();
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// A headless Service: `clusterIP: None` (or none at all), so no virtual IP in front of it.
pub fn is_headless(svc: &Service) -> bool {
    let ip = svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref());
    matches!(ip, None | Some("") | Some("None"))
}

/// Whether the pod belongs in the Service's endpoints at all (upstream
/// `ShouldPodBeInEndpoints`): it has an IP, it has not finished, and it is not terminating
/// unless `include_terminating`.
pub fn is_endpoint(pod: &Pod, include_terminating: bool) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded") | Some("Failed")) {
        return false;
    }
    if ipv4_addresses(pod).is_empty() {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

/// The pod's IPv4 addresses (`status.podIPs`, else `status.podIP`), written canonically.
pub fn ipv4_addresses(pod: &Pod) -> Vec<String> {
    let Some(status) = pod.status.as_ref() else {
        return vec![];
    };
    let listed: Vec<&str> = match status.pod_ips.as_deref() {
        Some(ips) if !ips.is_empty() => ips.iter().map(|ip| ip.ip.as_str()).collect(),
        _ => status.pod_ip.as_deref().into_iter().collect(),
    };
    listed
        .into_iter()
        .filter_map(|ip| ip.parse::<Ipv4Addr>().ok())
        .map(|ip| ip.to_string())
        .collect()
}

/// The port number `port` reaches on `pod`, if the pod serves it (upstream `FindPort`): a
/// numeric `targetPort` (or none: the Service port itself), or the container port named by
/// it with the same protocol, in a container or a sidecar (an init container that keeps
/// running, `restartPolicy: Always`).
pub fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let name = match &port.target_port {
        None => return Some(port.port),
        Some(IntOrString::Int(n)) => return Some(*n),
        Some(IntOrString::String(name)) => name,
    };
    let protocol = port.protocol.as_deref().unwrap_or(TCP);
    let spec = pod.spec.as_ref()?;
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    spec.containers
        .iter()
        .chain(sidecars)
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| {
            p.name.as_deref() == Some(name.as_str())
                && p.protocol.as_deref().unwrap_or(TCP) == protocol
        })
        .map(|p| p.container_port)
}

/// The protocol of a Service port (TCP when unset).
pub fn protocol(port: &ServicePort) -> String {
    port.protocol.clone().unwrap_or_else(|| TCP.into())
}

/// The pod's DNS hostname within the Service, when the pod asks for one under it
/// (`spec.hostname` with `spec.subdomain` naming the Service).
pub fn hostname(pod: &Pod, svc: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == svc.metadata.name.as_deref()
        && pod.metadata.namespace == svc.metadata.namespace)
        .then(|| hostname.to_string())
}

/// The node the pod runs on, if it is bound.
pub fn node_name(pod: &Pod) -> Option<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty())
}

/// The `targetRef` of an endpoint: the pod it stands for.
pub fn target_ref(pod: &Pod) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: pod.metadata.namespace.clone(),
        name: pod.metadata.name.clone(),
        uid: pod.metadata.uid.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec, PodStatus};

    fn pod_with_ports(ports: &[(&str, i32, Option<&str>)]) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(
                        ports
                            .iter()
                            .map(|(name, n, proto)| ContainerPort {
                                name: Some(name.to_string()),
                                container_port: *n,
                                protocol: proto.map(String::from),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn svc_port(target: Option<IntOrString>, protocol: Option<&str>) -> ServicePort {
        ServicePort {
            port: 80,
            target_port: target,
            protocol: protocol.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn a_target_port_is_a_number_or_a_container_port_of_that_name_and_protocol() {
        let pod = pod_with_ports(&[("http", 8080, None), ("dns", 5353, Some("UDP"))]);
        assert_eq!(find_port(&pod, &svc_port(None, None)), Some(80));
        assert_eq!(
            find_port(&pod, &svc_port(Some(IntOrString::Int(9000)), None)),
            Some(9000)
        );
        let named = |n: &str| Some(IntOrString::String(n.into()));
        assert_eq!(find_port(&pod, &svc_port(named("http"), None)), Some(8080));
        assert_eq!(
            find_port(&pod, &svc_port(named("dns"), Some("UDP"))),
            Some(5353)
        );
        assert_eq!(
            find_port(&pod, &svc_port(named("dns"), Some("TCP"))),
            None,
            "the protocol must match too"
        );
        assert_eq!(find_port(&pod, &svc_port(named("grpc"), None)), None);
    }

    #[test]
    fn only_running_pods_with_an_ip_are_endpoints() {
        let mut pod = Pod {
            status: Some(PodStatus {
                phase: Some("Running".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(!is_endpoint(&pod, true), "no IP yet");
        pod.status.as_mut().unwrap().pod_ip = Some("10.244.0.7".into());
        assert!(is_endpoint(&pod, false));
        pod.metadata.deletion_timestamp = Some(crate::testing::objects::at(1));
        assert!(is_endpoint(&pod, true));
        assert!(!is_endpoint(&pod, false));
        pod.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert!(!is_endpoint(&pod, true));
    }
}
