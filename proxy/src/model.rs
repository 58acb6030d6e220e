//! What the node's data path must do, computed from the API objects and nothing else: every
//! port of every Service with a ClusterIP becomes one [`ServicePort`] (kube-proxy's
//! `ServicePortName`), with the ready endpoints its EndpointSlices list for that port. A
//! connection to `clusterIP:port` (or to the node's address on `nodePort`) must reach one of
//! those `podIP:targetPort`s; with none, it must be refused.
//!
//! An EndpointSlice belongs to its Service through the label `kubernetes.io/service-name`
//! (not through its name, which is generated); a slice's port matches a Service port by name
//! and protocol, and its number is the resolved `targetPort`. An endpoint counts when its
//! `conditions.ready` is true or unset (the API says unset means ready). Headless
//! (`clusterIP: None`) and ExternalName Services have no virtual address: DNS answers for
//! them, the proxy ignores them.
//!
//! Pure and unit-tested; read next: `rules.rs` (the list as iptables rules) or `nftables.rs`
//! (the same as an nftables table).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use sha2::{Digest, Sha256};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Service port's identity, `<namespace>/<name>:<port name>` (kube-proxy's
/// `ServicePortName`; the `:<port name>` is left out when the port has no name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePortName {
    /// metadata.namespace of the Service.
    pub namespace: String,
    /// metadata.name of the Service.
    pub name: String,
    /// spec.ports[].name, empty for a single unnamed port.
    pub port: String,
}

impl fmt::Display for ServicePortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)?;
        if !self.port.is_empty() {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

/// A transport protocol a Service port speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP, the default.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// From the API's spelling (`TCP`, `UDP`, `SCTP`; unset means TCP).
    pub fn from_api(protocol: Option<&str>) -> Option<Protocol> {
        match protocol.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The API's spelling, as kube-proxy hashes it into chain names.
    pub fn api_name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }

    /// iptables' spelling (`-p tcp -m tcp`), which is nftables' too (`meta l4proto tcp`).
    pub fn iptables_name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// The first 16 characters of the RFC 4648 base32 encoding of SHA-256(`s`): kube-proxy's
/// hash for the names of a service port's (and an endpoint's) chains, deterministic across
/// restarts and nodes. Both renderers name their objects with it.
pub fn hash16(s: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let digest = Sha256::digest(s.as_bytes());
    // 16 characters of 5 bits are the first 80 bits, 10 bytes.
    let bits = digest[..10]
        .iter()
        .fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
    (0..16)
        .map(|i| ALPHABET[((bits >> (75 - 5 * i)) & 0x1f) as usize] as char)
        .collect()
}

/// One port of one Service as the data path sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// Which Service port this is.
    pub name: ServicePortName,
    /// spec.ports[].protocol.
    pub protocol: Protocol,
    /// spec.clusterIP, the virtual address.
    pub cluster_ip: Ipv4Addr,
    /// spec.ports[].port.
    pub port: u16,
    /// spec.ports[].nodePort, for NodePort Services.
    pub node_port: Option<u16>,
    /// The ready endpoints, `podIP:targetPort`, sorted and without duplicates.
    pub endpoints: Vec<SocketAddrV4>,
}

/// Every Service port with a ClusterIP, with its ready endpoints, sorted by name and protocol.
/// Objects the proxy cannot program (an unparsable ClusterIP, a port out of range, an unknown
/// protocol) are left out with a warning: one bad Service never stops the others.
pub fn service_ports<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> Vec<ServicePort> {
    let endpoints = ready_endpoints(slices);
    let mut ports = Vec::new();
    for service in services {
        let namespace = service.metadata.namespace.clone().unwrap_or_default();
        let name = service.metadata.name.clone().unwrap_or_default();
        let Some(spec) = &service.spec else { continue };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let cluster_ip = match spec.cluster_ip.as_deref() {
            None | Some("") | Some("None") => continue,
            Some(ip) => match ip.parse::<Ipv4Addr>() {
                Ok(ip) => ip,
                Err(_) => {
                    tracing::warn!(%namespace, service = %name, cluster_ip = ip, "not an IPv4 ClusterIP; skipped");
                    continue;
                }
            },
        };
        for port in spec.ports.iter().flatten() {
            let port_name = ServicePortName {
                namespace: namespace.clone(),
                name: name.clone(),
                port: port.name.clone().unwrap_or_default(),
            };
            let (Some(protocol), Some(number)) = (
                Protocol::from_api(port.protocol.as_deref()),
                u16::try_from(port.port).ok().filter(|p| *p > 0),
            ) else {
                tracing::warn!(service_port = %port_name, "unsupported protocol or port; skipped");
                continue;
            };
            let node_port = port
                .node_port
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0);
            let key = (
                namespace.clone(),
                name.clone(),
                port_name.port.clone(),
                protocol,
            );
            let endpoints = endpoints
                .get(&key)
                .map(|set| set.iter().copied().collect())
                .unwrap_or_default();
            ports.push(ServicePort {
                name: port_name,
                protocol,
                cluster_ip,
                port: number,
                node_port,
                endpoints,
            });
        }
    }
    ports.sort_by(|a, b| (&a.name, a.protocol).cmp(&(&b.name, b.protocol)));
    ports
}

/// (namespace, service, port name, protocol) → ready `podIP:port`s, from all slices.
type EndpointsByPort = BTreeMap<(String, String, String, Protocol), BTreeSet<SocketAddrV4>>;

fn ready_endpoints<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> EndpointsByPort {
    let mut by_port = EndpointsByPort::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        else {
            continue;
        };
        let namespace = slice.metadata.namespace.clone().unwrap_or_default();
        let ready: Vec<Ipv4Addr> = slice
            .endpoints
            .iter()
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
            // Only the first address is used: the API says consumers must treat the others
            // as interchangeable, and every controller writes exactly one.
            .filter_map(|e| e.addresses.first()?.parse().ok())
            .collect();
        for port in slice.ports.iter().flatten() {
            let (Some(protocol), Some(number)) = (
                Protocol::from_api(port.protocol.as_deref()),
                port.port
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p > 0),
            ) else {
                continue;
            };
            let key = (
                namespace.clone(),
                service.clone(),
                port.name.clone().unwrap_or_default(),
                protocol,
            );
            let set = by_port.entry(key).or_default();
            set.extend(ready.iter().map(|ip| SocketAddrV4::new(*ip, number)));
        }
    }
    by_port
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(value: serde_json::Value) -> Service {
        serde_json::from_value(value).unwrap()
    }

    fn slice(value: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(value).unwrap()
    }

    fn web() -> Service {
        service(json!({
            "metadata": {"namespace": "default", "name": "web"},
            "spec": {"clusterIP": "10.96.0.50", "type": "NodePort", "ports": [
                {"name": "http", "port": 80, "nodePort": 30080},
                {"name": "dns", "port": 53, "protocol": "UDP"}
            ]}
        }))
    }

    fn web_slice(name: &str, ready: &[(&str, Option<bool>)]) -> EndpointSlice {
        let endpoints: Vec<_> = ready
            .iter()
            .map(|(ip, r)| match r {
                Some(r) => json!({"addresses": [ip], "conditions": {"ready": r}}),
                None => json!({"addresses": [ip]}),
            })
            .collect();
        slice(json!({
            "metadata": {"namespace": "default", "name": name,
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                      {"name": "dns", "port": 5353, "protocol": "UDP"}]
        }))
    }

    #[test]
    fn ports_get_the_ready_endpoints_of_all_their_slices() {
        let slices = [
            web_slice(
                "web-a",
                &[("10.244.1.3", Some(true)), ("10.244.1.9", Some(false))],
            ),
            web_slice("web-b", &[("10.244.1.2", None), ("10.244.1.3", Some(true))]),
        ];
        let ports = service_ports([&web()], &slices);
        assert_eq!(ports.len(), 2);
        let dns = &ports[0];
        assert_eq!(dns.name.to_string(), "default/web:dns");
        assert_eq!(dns.protocol, Protocol::Udp);
        assert_eq!(dns.node_port, None);
        let http = &ports[1];
        assert_eq!(http.name.to_string(), "default/web:http");
        assert_eq!(
            (http.cluster_ip, http.port, http.node_port),
            ("10.96.0.50".parse().unwrap(), 80, Some(30080))
        );
        assert_eq!(
            http.endpoints,
            vec![
                "10.244.1.2:8080".parse().unwrap(),
                "10.244.1.3:8080".parse().unwrap()
            ]
        );
        assert_eq!(dns.endpoints[0], "10.244.1.2:5353".parse().unwrap());
    }

    #[test]
    fn headless_external_name_and_other_services_slices_are_left_out() {
        let headless = service(json!({
            "metadata": {"namespace": "default", "name": "db"},
            "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}
        }));
        let external = service(json!({
            "metadata": {"namespace": "default", "name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "example.com"}
        }));
        let other_ns = slice(json!({
            "metadata": {"namespace": "other", "name": "web-x",
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.9.9"]}],
            "ports": [{"name": "http", "port": 8080}]
        }));
        let ports = service_ports([&headless, &external, &web()], [&other_ns]);
        assert_eq!(ports.len(), 2);
        assert!(ports.iter().all(|p| p.endpoints.is_empty()));
    }

    #[test]
    fn out_of_range_ports_are_skipped_rather_than_written() {
        // An API that validates never sends these; a rule with port 0 would fail the whole
        // transaction, so the model refuses them, as it refuses an unknown protocol.
        let svc = service(json!({
            "metadata": {"namespace": "default", "name": "odd"},
            "spec": {"clusterIP": "10.96.0.8", "ports": [
                {"name": "zero", "port": 0},
                {"name": "big", "port": 70000},
                {"name": "sctp", "port": 9, "protocol": "QUIC"},
                {"name": "ok", "port": 80, "nodePort": 0}
            ]}
        }));
        let ports = service_ports([&svc], []);
        assert_eq!(ports.len(), 1);
        assert_eq!((ports[0].port, ports[0].node_port), (80, None));
    }

    #[test]
    fn an_unnamed_port_is_named_after_the_service_alone() {
        let svc = service(json!({
            "metadata": {"namespace": "default", "name": "one"},
            "spec": {"clusterIP": "10.96.0.7", "ports": [{"port": 80}]}
        }));
        let s = slice(json!({
            "metadata": {"namespace": "default", "name": "one-x",
                         "labels": {"kubernetes.io/service-name": "one"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.244.0.5"]}],
            "ports": [{"port": 9000}]
        }));
        let ports = service_ports([&svc], [&s]);
        assert_eq!(ports[0].name.to_string(), "default/one");
        assert_eq!(ports[0].endpoints, vec!["10.244.0.5:9000".parse().unwrap()]);
    }
}
