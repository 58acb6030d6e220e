//! Resource quantities: what a pod asks for and what a node offers.
//!
//! A pod's *request* is what the scheduler reserves on a node: the sum of its containers'
//! `resources.requests`, or the largest init container's if that is bigger (init containers run
//! one at a time, before the others), plus `spec.overhead`. A node offers `status.allocatable`.
//! Quantities are strings like `500m`, `2`, `1.5Gi` or `1e3`; read next: `filter.rs`.

use std::collections::BTreeMap;

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

/// Parse a Kubernetes quantity into a number of base units (cores, bytes); `None` if malformed.
pub fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || ((*c == '+' || *c == '-') && *i == 0)))
        .map(|(i, _)| i)
        .unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let number: f64 = number.parse().ok()?;
    let multiplier = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        s if s.starts_with(['e', 'E']) => 10f64.powi(s[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    Some(number * multiplier)
}

/// Millicores in a quantity, rounded up like `Quantity.MilliValue()`.
fn milli(q: &Quantity) -> i64 {
    parse_quantity(&q.0)
        .map(|v| (v * 1000.0 - 1e-6).ceil() as i64)
        .unwrap_or(0)
}

/// Whole units in a quantity, rounded up like `Quantity.Value()`.
fn units(q: &Quantity) -> i64 {
    parse_quantity(&q.0)
        .map(|v| (v - 1e-9).ceil() as i64)
        .unwrap_or(0)
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
    fn quantities_parse_like_the_apiserver() {
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("1Gi"), Some(1073741824.0));
        assert_eq!(parse_quantity("1.5Ki"), Some(1536.0));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("128M"), Some(128e6));
        assert_eq!(parse_quantity("abc"), None);
        assert_eq!(parse_quantity("1Zi"), None);
        assert_eq!(milli(&Quantity("0.1".into())), 100);
        assert_eq!(milli(&Quantity("1".into())), 1000);
        assert_eq!(units(&Quantity("256Gi".into())), 256 * 1024 * 1024 * 1024);
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
