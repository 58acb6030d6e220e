//! The EndpointSlices a Service should have, and the writes that get them there.
//!
//! Each endpoint is a pod (its IPv4 address, `nodeName`, `targetRef`) with three conditions:
//! `serving` (the pod's Ready condition), `terminating` (it has a `deletionTimestamp`) and
//! `ready` (serving and not terminating, or always with `publishNotReadyAddresses`). A slice
//! carries one list of ports for all its endpoints, so pods that resolve the Service's ports
//! differently (a named `targetPort` some pods lack) go into different slices, one per list of
//! ports, as upstream groups them. A Service selecting nothing keeps one empty placeholder slice
//! (`endpoints: []`, `ports: []`), so that "no endpoints" is visible rather than missing.
//!
//! [`plan`] compares the desired groups with the slices the cache shows and returns only the
//! writes that change something: a slice whose ports match is updated if its endpoints or
//! labels differ, a slice left over is reused for a new group of ports before another is
//! created, and the rest are deleted. Read next: `endpoints.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::pods;
use crate::pod::is_ready;
use crate::replicaset::owner_reference;

/// The label naming the Service a slice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming the controller that writes a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's name in [`MANAGED_BY_LABEL`], as kube-controller-manager's.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// The label on the slices (and Endpoints) of a headless Service.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";
/// The only address type written here: pods have IPv4 addresses.
pub const IPV4: &str = "IPv4";

/// The endpoints of one slice: those that share one list of ports.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub ports: Vec<EndpointPort>,
    pub endpoints: Vec<Endpoint>,
}

/// A list of ports compared by value, with upstream's defaults filled in (no name is "",
/// no protocol is TCP).
type PortsKey = Vec<(String, i32, String, Option<String>)>;

fn ports_key(ports: &[EndpointPort]) -> PortsKey {
    let mut key: PortsKey = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                p.app_protocol.clone(),
            )
        })
        .collect();
    key.sort();
    key
}

/// The endpoint standing for `pod` (upstream `podToEndpoint`).
pub fn endpoint(pod: &Pod, svc: &Service) -> Endpoint {
    let publish_not_ready = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let serving = is_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    // A terminating pod is never "ready", so that consumers that only read `ready` stop
    // sending it new connections; `serving` still says whether it could answer them.
    let ready = publish_not_ready || (serving && !terminating);
    Endpoint {
        addresses: pods::ipv4_addresses(pod),
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: pods::hostname(pod, svc),
        node_name: pods::node_name(pod),
        target_ref: Some(pods::target_ref(pod)),
        ..Default::default()
    }
}

/// The Service's ports as `pod` serves them, in the Service's order; a port whose named
/// `targetPort` the pod lacks is left out (upstream `getEndpointPorts`).
pub fn ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let spec_ports = svc.spec.as_ref().and_then(|s| s.ports.as_deref());
    spec_ports
        .unwrap_or_default()
        .iter()
        .filter_map(|p| {
            Some(EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(pods::find_port(pod, p)?),
                protocol: Some(pods::protocol(p)),
                app_protocol: p.app_protocol.clone(),
            })
        })
        .collect()
}

/// The groups of endpoints the Service should have, from the pods its selector matches: one
/// per distinct list of ports, endpoints in address order; one empty group when no pod is an
/// endpoint.
pub fn desired(svc: &Service, selected: &[Arc<Pod>]) -> Vec<Group> {
    let mut groups: BTreeMap<PortsKey, Group> = BTreeMap::new();
    for pod in selected
        .iter()
        .filter(|p| pods::is_endpoint(p, /* include_terminating */ true))
    {
        let ports = ports(svc, pod);
        let group = groups.entry(ports_key(&ports)).or_insert_with(|| Group {
            ports,
            endpoints: vec![],
        });
        group.endpoints.push(endpoint(pod, svc));
    }
    if groups.is_empty() {
        return vec![Group {
            ports: vec![],
            endpoints: vec![],
        }];
    }
    groups
        .into_values()
        .map(|mut g| {
            g.endpoints.sort_by_key(|e| {
                let pod = e.target_ref.as_ref().and_then(|r| r.name.clone());
                (e.addresses.clone(), pod)
            });
            g
        })
        .collect()
}

/// A slice's labels: the Service's own (but for the reserved three), the Service's name, this
/// controller's name, and the headless label when the Service has no cluster IP.
pub fn labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = svc
        .labels()
        .iter()
        .filter(|(k, _)| {
            ![SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL].contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if pods::is_headless(svc) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    }
    labels.insert(SERVICE_NAME_LABEL.into(), svc.name_any());
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    labels
}

/// Is the slice one of this controller's for a Service named `name`?
pub fn managed_for(slice: &EndpointSlice, name: &str) -> bool {
    let labels = slice.labels();
    labels.get(SERVICE_NAME_LABEL).map(String::as_str) == Some(name)
        && labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(CONTROLLER_NAME)
}

/// Is the slice controlled by this very Service (not an earlier one of the same name)?
pub fn owned_by(slice: &EndpointSlice, svc: &Service) -> bool {
    let uid = svc.uid().unwrap_or_default();
    slice
        .owner_references()
        .iter()
        .any(|r| r.uid == uid && r.kind == "Service" && r.controller == Some(true))
}

/// A new slice for `group`: `generateName: <svc>-`, controlled by the Service.
pub fn new_slice(svc: &Service, group: &Group) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", svc.name_any())),
            namespace: svc.namespace(),
            labels: Some(labels(svc)),
            owner_references: Some(vec![owner_reference(svc)]),
            ..Default::default()
        },
        address_type: IPV4.into(),
        endpoints: group.endpoints.clone(),
        ports: Some(group.ports.clone()),
    }
}

/// `slice` rewritten to hold `group` (its name and resourceVersion kept: the update fails
/// with a conflict if the slice changed since the cache saw it).
fn rewritten(slice: &EndpointSlice, svc: &Service, group: &Group) -> EndpointSlice {
    let mut new = slice.clone();
    new.metadata.labels = Some(labels(svc));
    new.endpoints = group.endpoints.clone();
    new.ports = Some(group.ports.clone());
    new
}

/// The endpoint as compared: the pod's resourceVersion in `targetRef` does not matter.
fn comparable(e: &Endpoint) -> Endpoint {
    let mut e = e.clone();
    if let Some(r) = e.target_ref.as_mut() {
        r.resource_version = None;
    }
    e
}

/// Does the slice already hold exactly `group`, with the labels it should have?
fn is_current(slice: &EndpointSlice, svc: &Service, group: &Group) -> bool {
    slice.metadata.labels.as_ref() == Some(&labels(svc))
        && ports_key(slice.ports.as_deref().unwrap_or_default()) == ports_key(&group.ports)
        && slice.endpoints.len() == group.endpoints.len()
        && slice
            .endpoints
            .iter()
            .zip(&group.endpoints)
            .all(|(a, b)| comparable(a) == comparable(b))
}

/// The writes that turn the Service's `existing` slices into `desired`.
#[derive(Debug, Default)]
pub struct Plan {
    /// New slices (named by the apiserver from `generateName`).
    pub create: Vec<EndpointSlice>,
    /// Slices rewritten in place.
    pub update: Vec<EndpointSlice>,
    /// Slices no longer needed, or left by an earlier Service of the same name.
    pub delete: Vec<Arc<EndpointSlice>>,
}

impl Plan {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// Compare `existing` (this controller's slices for the Service's name) with `desired`.
pub fn plan(svc: &Service, existing: &[Arc<EndpointSlice>], desired: &[Group]) -> Plan {
    let mut plan = Plan::default();
    let mut spare: Vec<Arc<EndpointSlice>> = Vec::new();
    for slice in existing {
        if owned_by(slice, svc) && slice.address_type == IPV4 {
            spare.push(slice.clone());
        } else {
            plan.delete.push(slice.clone());
        }
    }
    spare.sort_by_key(|s| s.name_any());
    // First the slices whose ports already match, then reuse what is left.
    let mut unplaced = Vec::new();
    for group in desired {
        let key = ports_key(&group.ports);
        match spare
            .iter()
            .position(|s| ports_key(s.ports.as_deref().unwrap_or_default()) == key)
        {
            Some(i) => {
                let slice = spare.remove(i);
                if !is_current(&slice, svc, group) {
                    plan.update.push(rewritten(&slice, svc, group));
                }
            }
            None => unplaced.push(group),
        }
    }
    for group in unplaced {
        if spare.is_empty() {
            plan.create.push(new_slice(svc, group));
        } else {
            let slice = spare.remove(0);
            plan.update.push(rewritten(&slice, svc, group));
        }
    }
    plan.delete.extend(spare);
    plan
}
