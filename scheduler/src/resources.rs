//! Resource quantities: what a pod asks for and what a node offers.
//!
//! A pod's *request* is what the scheduler reserves on a node: the sum of its containers'
//! `resources.requests`, or the largest init container's if that is bigger (init containers run
//! one at a time, before the others), plus `spec.overhead`. A node offers `status.allocatable`.
//! Quantities are strings like `500m`, `2`, `1.5Gi` or `1e3`, read exactly (no floats) by
//! `client::quantity`; read next: `filter.rs`.

use std::collections::BTreeMap;

use client::quantity::Quantity as Amount;
use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Requests (or capacity) in the units the scheduler compares: millicores, bytes, pod slots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in millicores (`500m` = 500, `2` = 2000).
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Number of pods.
    pub pods: i64,
}

impl Resources {
    /// Add `other` to these resources.
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.pods += other.pods;
    }

    /// Subtract `other` from these resources.
    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.pods -= other.pods;
    }
}

/// A host port a pod wants: `(protocol, hostIP, port)`; an empty hostIP means every address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub protocol: String,
    pub host_ip: String,
    pub port: i32,
}

impl HostPort {
    /// Two host ports conflict on the same protocol and port when their addresses overlap.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        let wildcard = |ip: &str| ip.is_empty() || ip == "0.0.0.0" || ip == "::";
        self.port == other.port
            && self.protocol == other.protocol
            && (self.host_ip == other.host_ip
                || wildcard(&self.host_ip)
                || wildcard(&other.host_ip))
    }
}

/// Millicores in a quantity, rounded up like `Quantity.MilliValue()`; 0 if malformed.
fn milli(q: &Quantity) -> i64 {
    Amount::try_from(q).map_or(0, |q| q.millis())
}

/// Whole units (bytes, pods) in a quantity, rounded up like `Quantity.Value()`; 0 if malformed.
fn units(q: &Quantity) -> i64 {
    Amount::try_from(q).map_or(0, |q| q.value())
}

/// Read `cpu`, `memory` and `pods` from a resource list.
pub fn from_list(list: &BTreeMap<String, Quantity>) -> Resources {
    Resources {
        milli_cpu: list.get("cpu").map(milli).unwrap_or(0),
        memory: list.get("memory").map(units).unwrap_or(0),
        pods: list.get("pods").map(units).unwrap_or(0),
    }
}

/// What the scheduler assumes when a container requests nothing, for scoring only
/// (upstream `DefaultMilliCPURequest` and `DefaultMemoryRequest`): otherwise empty pods would all
/// pile onto one node.
const DEFAULT_MILLI_CPU: i64 = 100;
const DEFAULT_MEMORY: i64 = 200 * 1024 * 1024;

/// A container's requests; a limit without a request counts as the request (API defaulting).
fn container_requests(c: &Container, non_zero: bool) -> Resources {
    let res = c.resources.as_ref();
    let get = |name: &str| {
        res.and_then(|r| r.requests.as_ref().and_then(|m| m.get(name)))
            .or_else(|| res.and_then(|r| r.limits.as_ref().and_then(|m| m.get(name))))
    };
    let mut r = Resources {
        milli_cpu: get("cpu").map(milli).unwrap_or(0),
        memory: get("memory").map(units).unwrap_or(0),
        pods: 0,
    };
    if non_zero {
        if get("cpu").is_none() {
            r.milli_cpu = DEFAULT_MILLI_CPU;
        }
        if get("memory").is_none() {
            r.memory = DEFAULT_MEMORY;
        }
    }
    r
}

/// The pod's effective request (one pod slot included). With `non_zero`, containers that request
/// nothing count with the scoring defaults.
pub fn pod_requests(pod: &Pod, non_zero: bool) -> Resources {
    let mut total = Resources {
        pods: 1,
        ..Default::default()
    };
    let Some(spec) = pod.spec.as_ref() else {
        return total;
    };
    for c in &spec.containers {
        total.add(&container_requests(c, non_zero));
    }
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c, non_zero);
        total.milli_cpu = total.milli_cpu.max(r.milli_cpu);
        total.memory = total.memory.max(r.memory);
    }
    if let Some(overhead) = &spec.overhead {
        let o = from_list(overhead);
        total.milli_cpu += o.milli_cpu;
        total.memory += o.memory;
    }
    total
}

/// The host ports the pod's containers bind.
pub fn host_ports(pod: &Pod) -> Vec<HostPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.unwrap_or(0) > 0)
        .map(|p| HostPort {
            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            host_ip: p.host_ip.clone().unwrap_or_default(),
            port: p.host_port.unwrap_or(0),
        })
        .collect()
}

/// The node's `status.allocatable` (or `status.capacity` when allocatable is not reported).
pub fn node_allocatable(node: &Node) -> Resources {
    let status = node.status.as_ref();
    status
        .and_then(|s| s.allocatable.as_ref().or(s.capacity.as_ref()))
        .map(from_list)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_round_up_like_the_apiserver() {
        let q = |s: &str| Quantity(s.to_string());
        assert_eq!(milli(&q("500m")), 500);
        assert_eq!(milli(&q("0.1")), 100);
        assert_eq!(milli(&q("1")), 1000);
        assert_eq!(milli(&q("1k")), 1_000_000);
        assert_eq!(milli(&q("0.1m")), 1, "rounded up");
        assert_eq!(units(&q("1Gi")), 1073741824);
        assert_eq!(units(&q("1.5Ki")), 1536);
        assert_eq!(units(&q("1e3")), 1000);
        assert_eq!(units(&q("128M")), 128_000_000);
        assert_eq!(units(&q("256Gi")), 256 * 1024 * 1024 * 1024);
        assert_eq!(units(&q("0.5")), 1, "rounded up");
        assert_eq!(units(&q("abc")), 0);
        assert_eq!(milli(&q("1Zi")), 0);
    }

    #[test]
    fn pod_requests_take_the_largest_init_container_and_overhead() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "1Mi"}}},
                    {"name": "b", "resources": {"limits": {"cpu": "200m"}}}
                ],
                "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "1"}}}],
                "overhead": {"cpu": "10m"}
            }
        }))
        .unwrap();
        let r = pod_requests(&pod, false);
        assert_eq!(
            r,
            Resources {
                milli_cpu: 1010,
                memory: 1024 * 1024,
                pods: 1
            }
        );
        let nz = pod_requests(&pod, true);
        assert_eq!(
            nz.memory,
            1024 * 1024 + DEFAULT_MEMORY,
            "b requests no memory: the default counts"
        );
    }
}
