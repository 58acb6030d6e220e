//! The lab's add-ons, as `kubeadm init phase addon` installs kube-proxy and CoreDNS: each
//! node runs a Service proxy (`minik8s-proxy`, which turns Services and EndpointSlices into
//! the node's NAT rules) and a DNS server (`minik8s-dns`, on the node's address, port 53),
//! and the cluster gets the `kube-system/kube-dns` Service at `10.96.0.10`, the address every
//! kubelet writes into its pods' resolv.conf (`--cluster-dns`).
//!
//! In kubeadm's cluster CoreDNS runs in pods that the Service selects. Here the DNS servers
//! are node processes, so the Service has *no selector* and its endpoints are written by
//! hand: one EndpointSlice listing every node's address, labelled as managed by `minikctl`.
//! The EndpointSlice controller leaves such slices alone, as upstream's does (it manages
//! only slices labelled with its own name). A pod's query to `10.96.0.10:53` is then DNATed
//! by its node's proxy to one of the nodes' DNS servers, like any Service's traffic. The same
//! addresses are written as the older core/v1 `Endpoints` object too, as a user writes both
//! for a selector-less Service, so that `kubectl get endpoints` shows them; it is labelled
//! `endpointslice.kubernetes.io/skip-mirror`, so that upstream's EndpointSliceMirroring
//! controller would not copy it into a second slice.
//!
//! Each proxy programs the node in the data path `up --proxy-mode` names ([`ProxyMode`],
//! kube-proxy's `mode`): an nftables table of its own (the default, as kube-proxy's newest
//! mode) or iptables chains.
//!
//! [`dns_answers`] is `up`'s readiness check: one UDP query, asked from inside a node's
//! namespace, answered with an address.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort as CoreEndpointPort, EndpointSubset, Endpoints, Service,
    ServicePort, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use nix::sched::{setns, CloneFlags};

use super::spec::Host;

/// The cluster DNS Service's address: kubeadm's, the tenth of the Service range.
pub const DNS_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
/// The cluster domain (the kubelet's and the DNS server's default).
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// The namespace and name of the cluster DNS Service, as kubeadm names it.
pub const DNS_NAMESPACE: &str = "kube-system";
pub const DNS_SERVICE: &str = "kube-dns";
/// The one EndpointSlice of the DNS Service.
pub const DNS_SLICE: &str = "kube-dns-nodes";
/// Who manages that slice (`endpointslice.kubernetes.io/managed-by`).
pub const MANAGER: &str = "minikctl";
/// The port the DNS servers listen on, on each node's address.
pub const DNS_PORT: u16 = 53;

/// How the nodes' Service proxies program the kernel (`minik8s-proxy --proxy-mode`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProxyMode {
    /// An nftables table of the proxy's own, through `nft` (kube-proxy's `nftables` mode).
    #[default]
    Nftables,
    /// Chains in the iptables `nat` table, through `iptables-restore` (`iptables` mode).
    Iptables,
}

impl ProxyMode {
    /// The value of the proxy's flag.
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyMode::Nftables => "nftables",
            ProxyMode::Iptables => "iptables",
        }
    }
}

/// The Service's ports: `dns` (UDP) and `dns-tcp`, both 53, as kubeadm's.
const DNS_PORTS: [(&str, &str); 2] = [("dns", "UDP"), ("dns-tcp", "TCP")];

/// `kube-system/kube-dns`: ClusterIP [`DNS_SERVICE_IP`], no selector.
pub fn dns_service() -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(DNS_SERVICE.into()),
            namespace: Some(DNS_NAMESPACE.into()),
            labels: Some(BTreeMap::from([("k8s-app".into(), "kube-dns".into())])),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some(DNS_SERVICE_IP.to_string()),
            ports: Some(
                DNS_PORTS
                    .iter()
                    .map(|(name, protocol)| ServicePort {
                        name: Some((*name).into()),
                        port: DNS_PORT.into(),
                        protocol: Some((*protocol).into()),
                        target_port: Some(IntOrString::Int(DNS_PORT.into())),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        status: None,
    }
}

/// The DNS Service's endpoints: every node's address, ready, with both ports.
pub fn dns_slice(nodes: &[Host]) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(DNS_SLICE.into()),
            namespace: Some(DNS_NAMESPACE.into()),
            labels: Some(BTreeMap::from([
                ("k8s-app".into(), "kube-dns".into()),
                ("kubernetes.io/service-name".into(), DNS_SERVICE.into()),
                (
                    "endpointslice.kubernetes.io/managed-by".into(),
                    MANAGER.into(),
                ),
            ])),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: nodes
            .iter()
            .map(|h| Endpoint {
                addresses: vec![h.ip.to_string()],
                conditions: Some(EndpointConditions {
                    ready: Some(true),
                    serving: Some(true),
                    terminating: Some(false),
                }),
                node_name: Some(h.name.clone()),
                ..Default::default()
            })
            .collect(),
        ports: Some(
            DNS_PORTS
                .iter()
                .map(|(name, protocol)| EndpointPort {
                    name: Some((*name).into()),
                    port: Some(DNS_PORT.into()),
                    protocol: Some((*protocol).into()),
                    app_protocol: None,
                })
                .collect(),
        ),
    }
}

/// The DNS Service's core/v1 Endpoints, named after it: one subset of every node's address
/// (ready) with both ports, the same as [`dns_slice`].
pub fn dns_endpoints(nodes: &[Host]) -> Endpoints {
    Endpoints {
        metadata: ObjectMeta {
            name: Some(DNS_SERVICE.into()),
            namespace: Some(DNS_NAMESPACE.into()),
            labels: Some(BTreeMap::from([
                ("k8s-app".into(), "kube-dns".into()),
                (
                    "endpointslice.kubernetes.io/skip-mirror".into(),
                    "true".into(),
                ),
            ])),
            ..Default::default()
        },
        subsets: Some(vec![EndpointSubset {
            addresses: Some(
                nodes
                    .iter()
                    .map(|h| EndpointAddress {
                        ip: h.ip.to_string(),
                        node_name: Some(h.name.clone()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ports: Some(
                DNS_PORTS
                    .iter()
                    .map(|(name, protocol)| CoreEndpointPort {
                        name: Some((*name).into()),
                        port: DNS_PORT.into(),
                        protocol: Some((*protocol).into()),
                        app_protocol: None,
                    })
                    .collect(),
            ),
            not_ready_addresses: None,
        }]),
    }
}

/// Create `kube-dns`, its slice and its Endpoints (an existing one is left as it is).
pub async fn create_dns_objects(client: &kube::Client, nodes: &[Host]) -> Result<(), kube::Error> {
    use kube::api::{Api, PostParams};
    let ignore_exists = |r: Result<(), kube::Error>| match r {
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        other => other,
    };
    let services: Api<Service> = Api::namespaced(client.clone(), DNS_NAMESPACE);
    let made = services
        .create(&PostParams::default(), &dns_service())
        .await;
    ignore_exists(made.map(drop))?;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), DNS_NAMESPACE);
    let made = slices
        .create(&PostParams::default(), &dns_slice(nodes))
        .await;
    ignore_exists(made.map(drop))?;
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), DNS_NAMESPACE);
    let made = endpoints
        .create(&PostParams::default(), &dns_endpoints(nodes))
        .await;
    ignore_exists(made.map(drop))
}

/// The name [`dns_answers`] asks for: the DNS Service's own, known once the server has read
/// the Services from the API.
pub fn probe_name() -> String {
    format!("{DNS_SERVICE}.{DNS_NAMESPACE}.svc.{CLUSTER_DOMAIN}")
}

/// Whether `server` answers an A query for `name` with at least one address, asked over UDP
/// from inside the namespace pinned at `netns` (a thread of its own joins it).
pub fn dns_answers(netns: &Path, server: SocketAddr, name: &str) -> bool {
    let Ok(ns) = File::open(netns) else {
        return false;
    };
    let query = a_query(0x6b38, name);
    std::thread::spawn(move || -> Option<bool> {
        setns(&ns, CloneFlags::CLONE_NEWNET).ok()?;
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
        socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .ok()?;
        socket.send_to(&query, server).ok()?;
        let mut buf = [0u8; 512];
        let (n, _) = socket.recv_from(&mut buf).ok()?;
        Some(has_answer(&buf[..n], 0x6b38))
    })
    .join()
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// A DNS query (RFC 1035 §4.1) for the A records of `name`, recursion desired.
fn a_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(name.len() + 18);
    q.extend_from_slice(&id.to_be_bytes());
    // flags: RD; one question, no answer, authority or additional records
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    // the root label, QTYPE A, QCLASS IN
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// Whether `reply` is the response to query `id`, with RCODE NOERROR and an answer.
fn has_answer(reply: &[u8], id: u16) -> bool {
    let Some(header) = reply.get(..12) else {
        return false;
    };
    let is_response = header[2] & 0x80 != 0;
    let rcode = header[3] & 0x0f;
    let answers = u16::from_be_bytes([header[6], header[7]]);
    header[..2] == id.to_be_bytes() && is_response && rcode == 0 && answers > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::spec::LabSpec;

    #[test]
    fn the_dns_service_has_no_selector_and_its_slice_lists_every_node() {
        let svc = dns_service();
        let spec = svc.spec.as_ref().unwrap();
        assert_eq!(spec.selector, None, "its endpoints are written by minikctl");
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.10"));
        let ports: Vec<_> = spec
            .ports
            .iter()
            .flatten()
            .map(|p| {
                (
                    p.name.as_deref().unwrap(),
                    p.protocol.as_deref().unwrap(),
                    p.port,
                )
            })
            .collect();
        assert_eq!(ports, [("dns", "UDP", 53), ("dns-tcp", "TCP", 53)]);

        let lab = LabSpec::new("lab", 2).unwrap();
        let slice = dns_slice(&lab.node_hosts());
        let labels = slice.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["kubernetes.io/service-name"], "kube-dns");
        assert_eq!(labels["endpointslice.kubernetes.io/managed-by"], "minikctl");
        let endpoints: Vec<_> = slice
            .endpoints
            .iter()
            .map(|e| {
                let ready = e.conditions.as_ref().and_then(|c| c.ready);
                (e.addresses[0].as_str(), e.node_name.as_deref(), ready)
            })
            .collect();
        assert_eq!(
            endpoints,
            [
                ("10.240.0.11", Some("lab-node-1"), Some(true)),
                ("10.240.0.12", Some("lab-node-2"), Some(true)),
            ]
        );
        assert_eq!(slice.ports.as_ref().map(Vec::len), Some(2));

        let endpoints = dns_endpoints(&lab.node_hosts());
        assert_eq!(endpoints.metadata.name.as_deref(), Some("kube-dns"));
        let labels = endpoints.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["endpointslice.kubernetes.io/skip-mirror"], "true");
        let subsets = endpoints.subsets.as_deref().unwrap();
        assert_eq!(subsets.len(), 1);
        let addresses: Vec<_> = subsets[0]
            .addresses
            .iter()
            .flatten()
            .map(|a| (a.ip.as_str(), a.node_name.as_deref()))
            .collect();
        assert_eq!(
            addresses,
            [
                ("10.240.0.11", Some("lab-node-1")),
                ("10.240.0.12", Some("lab-node-2")),
            ]
        );
        let ports: Vec<_> = subsets[0]
            .ports
            .iter()
            .flatten()
            .map(|p| {
                (
                    p.name.as_deref().unwrap(),
                    p.protocol.as_deref().unwrap(),
                    p.port,
                )
            })
            .collect();
        assert_eq!(ports, [("dns", "UDP", 53), ("dns-tcp", "TCP", 53)]);
    }

    #[test]
    fn the_proxy_mode_is_passed_as_it_is_given() {
        use clap::ValueEnum;
        for mode in ProxyMode::value_variants() {
            let given = mode.to_possible_value().unwrap();
            assert_eq!(given.get_name(), mode.as_str());
        }
        assert_eq!(ProxyMode::default().as_str(), "nftables");
    }

    #[test]
    fn a_query_is_rfc_1035_and_only_its_answer_counts() {
        let q = a_query(0x1234, "kube-dns.kube-system.svc.cluster.local.");
        assert_eq!(&q[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(&q[12..22], b"\x08kube-dns\x0b");
        assert_eq!(&q[q.len() - 5..], &[0, 0, 1, 0, 1]);
        // the reply echoes the header with QR set and one answer
        let mut reply = q.clone();
        reply[2] |= 0x80;
        reply[7] = 1;
        assert!(has_answer(&reply, 0x1234));
        assert!(!has_answer(&reply, 0x4321), "another query's reply");
        let mut nxdomain = reply.clone();
        nxdomain[3] |= 3;
        assert!(!has_answer(&nxdomain, 0x1234));
        assert!(!has_answer(&q, 0x1234), "a query is no answer");
        assert!(!has_answer(&reply[..5], 0x1234));
    }
}
