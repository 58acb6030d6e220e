//! The core/v1 Endpoints object of a Service: the older, single-object form of its endpoints,
//! which `kubectl describe svc` and `kubectl get endpoints` show, kept as
//! kube-controller-manager's endpoints controller keeps it.
//!
//! An Endpoints object is named after its Service and lists *subsets*: a set of addresses that
//! all offer the same ports (every address × every port is an endpoint). Ready pods go into
//! `addresses`, the others into `notReadyAddresses` (with `publishNotReadyAddresses`, all are
//! ready); a terminating pod is left out (unless `publishNotReadyAddresses`). The subsets are
//! packed into one canonical layout (upstream `RepackSubsets`: the ports offered by the same
//! addresses form one subset; addresses in IP order), so equal contents compare equal and an
//! unchanged Service is never rewritten. Read next: `mod.rs`, which writes it.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::pods;
use super::slices::HEADLESS_LABEL;
use crate::pod::is_ready;

/// A port by value (name, number, protocol, appProtocol); `None` for the portless subset of a
/// headless Service without ports.
type PortKey = Option<(Option<String>, i32, String, Option<String>)>;

/// An address by identity: its IP, then the pod's uid.
type AddressKey = (String, Option<String>);

/// The subsets the Service should have, from the pods its selector matches.
pub fn desired_subsets(svc: &Service, selected: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let ports = spec.ports.unwrap_or_default();
    // Which addresses offer each port, and each address's readiness.
    let mut offered: BTreeMap<PortKey, Vec<AddressKey>> = BTreeMap::new();
    let mut addresses: BTreeMap<AddressKey, (EndpointAddress, bool)> = BTreeMap::new();
    for pod in selected
        .iter()
        .filter(|p| pods::is_endpoint(p, publish_not_ready))
    {
        let Some(ip) = pods::ipv4_addresses(pod).into_iter().next() else {
            continue;
        };
        let key: AddressKey = (ip.clone(), pod.uid());
        let address = EndpointAddress {
            ip,
            hostname: pods::hostname(pod, svc),
            node_name: pods::node_name(pod),
            target_ref: Some(pods::target_ref(pod)),
        };
        let mut ports_of_pod: Vec<PortKey> = ports
            .iter()
            .filter_map(|p| {
                let n = pods::find_port(pod, p)?;
                Some(Some((
                    p.name.clone().filter(|n| !n.is_empty()),
                    n,
                    pods::protocol(p),
                    p.app_protocol.clone(),
                )))
            })
            .collect();
        // A headless Service may have no ports: its addresses alone are the endpoints.
        if ports.is_empty() && pods::is_headless(svc) {
            ports_of_pod.push(None);
        }
        if ports_of_pod.is_empty() {
            continue;
        }
        addresses.insert(key.clone(), (address, publish_not_ready || is_ready(pod)));
        for port in ports_of_pod {
            offered.entry(port).or_default().push(key.clone());
        }
    }
    // The ports offered by the very same addresses make one subset.
    let mut by_addresses: BTreeMap<Vec<AddressKey>, Vec<PortKey>> = BTreeMap::new();
    for (port, mut keys) in offered {
        keys.sort();
        by_addresses.entry(keys).or_default().push(port);
    }
    by_addresses
        .into_iter()
        .map(|(keys, ports)| {
            let (ready, not_ready): (Vec<_>, Vec<_>) = keys
                .iter()
                .map(|k| addresses[k].clone())
                .partition(|(_, ready)| *ready);
            let list = |v: Vec<(EndpointAddress, bool)>| {
                (!v.is_empty()).then(|| v.into_iter().map(|(a, _)| a).collect())
            };
            let ports: Vec<EndpointPort> = ports
                .into_iter()
                .flatten()
                .map(|(name, port, protocol, app_protocol)| EndpointPort {
                    name,
                    port,
                    protocol: Some(protocol),
                    app_protocol,
                })
                .collect();
            EndpointSubset {
                addresses: list(ready),
                not_ready_addresses: list(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect()
}

/// The Endpoints' labels: the Service's, plus the headless label for a headless Service.
pub fn labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.labels().clone();
    if pods::is_headless(svc) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    labels
}

/// The subsets as compared: empty lists and absent ones alike, no pod resourceVersions.
fn comparable(subsets: Option<&[EndpointSubset]>) -> Vec<EndpointSubset> {
    let clean = |list: &Option<Vec<EndpointAddress>>| {
        list.clone().filter(|l| !l.is_empty()).map(|l| {
            l.into_iter()
                .map(|mut a| {
                    if let Some(r) = a.target_ref.as_mut() {
                        r.resource_version = None;
                    }
                    a
                })
                .collect()
        })
    };
    subsets
        .unwrap_or_default()
        .iter()
        .map(|s| EndpointSubset {
            addresses: clean(&s.addresses),
            not_ready_addresses: clean(&s.not_ready_addresses),
            ports: s.ports.clone().filter(|p| !p.is_empty()),
        })
        .collect()
}

/// Does `current` already hold `subsets` and the labels the Service gives it?
pub fn is_current(current: &Endpoints, svc: &Service, subsets: &[EndpointSubset]) -> bool {
    comparable(current.subsets.as_deref()) == comparable(Some(subsets))
        && current.metadata.labels.clone().unwrap_or_default() == labels(svc)
}

/// The Endpoints object to write: `current` (name, resourceVersion, annotations kept) or a
/// new one named after the Service, holding `subsets`.
pub fn build(
    current: Option<&Endpoints>,
    svc: &Service,
    subsets: Vec<EndpointSubset>,
) -> Endpoints {
    let metadata = match current {
        Some(c) => c.metadata.clone(),
        None => ObjectMeta {
            name: Some(svc.name_any()),
            namespace: svc.namespace(),
            ..Default::default()
        },
    };
    let mut endpoints = Endpoints {
        metadata,
        subsets: Some(subsets),
    };
    endpoints.metadata.labels = Some(labels(svc));
    endpoints
}
