//! ClusterIP and NodePort allocation: every Service that needs a virtual IP gets one nobody else
//! has, and every NodePort Service port a node port nobody else has, even with several
//! apiservers writing at once.
//!
//! kube-apiserver keeps each range as one bitmap in etcd (`/registry/ranges/serviceips`,
//! `/registry/ranges/servicenodeports`), changed by compare-and-swap, plus a repair loop that
//! frees bits whose Service is gone. We keep **one etcd key per allocated value**,
//! `/registry/ranges/serviceips/<ip>` and `/registry/ranges/servicenodeports/<port>` (the value
//! names the Service), created *in the same transaction as the Service* with
//! `If(mod_revision == 0)` (`storage::Claims`). So:
//! - two apiservers that pick the same value cannot both win: etcd runs one transaction, the
//!   other finds the key present and fails as a whole (no Service half-written);
//! - a Service and its values are written, changed and deleted together (`delete_releasing`),
//!   so nothing leaks when an apiserver dies mid-request and no repair loop is needed;
//! - concurrent Services contend only when they want the same value, not on one hot bitmap key.
//!
//! A free value is found from a keys-only listing of the range's directory, which can be stale
//! by the time the transaction runs; losing then is harmless: an automatically picked value is
//! picked again, one asked for explicitly is refused with kube-apiserver's 422
//! (`provided IP is already allocated`, `provided port is already allocated`).
//!
//! Read next: `ranges.rs` (the ranges and the picking), then `handlers/write.rs`, which calls
//! [`plan`] on create and update, and `handlers/delete.rs`, which releases [`held_keys`].

pub mod ranges;

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use serde_json::{json, Value};

use crate::admission::services::{is_headless, needs_cluster_ip, needs_node_ports};
use crate::admission::validation::services::go_string_slice;
use crate::admission::{BadValue, Cause};
use crate::storage::{Claims, Storage, StorageError};
pub use ranges::{IpRange, PortRange, RangeError};

/// The etcd directory (under the prefix) of allocated ClusterIPs.
const IPS_DIR: &str = "ranges/serviceips";
/// The etcd directory of allocated node ports.
const PORTS_DIR: &str = "ranges/servicenodeports";

/// The ranges Services take from (`--service-cluster-ip-range`, `--service-node-port-range`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceRanges {
    pub cluster_ip: IpRange,
    pub node_port: PortRange,
}

impl Default for ServiceRanges {
    fn default() -> Self {
        ServiceRanges {
            cluster_ip: "10.96.0.0/12".parse().expect("a valid CIDR"),
            node_port: PortRange {
                low: 30000,
                high: 32767,
            },
        }
    }
}

/// Why a Service's values could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum AllocatorError {
    /// A value asked for is outside its range (answered 422 with these causes).
    #[error("invalid allocation request")]
    Invalid(Vec<Cause>),
    /// No free value is left (kube-apiserver answers 500 `range is full`).
    #[error("failed to allocate a {what}: range is full")]
    Full { what: &'static str },
    /// Listing the taken values failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What one write of a Service claims and releases, and which claims the client asked for.
#[derive(Debug, Default)]
pub struct Plan {
    /// For the storage transaction.
    pub claims: Claims,
    /// Claimed keys asked for explicitly, with the 422 cause if another Service holds one.
    explicit: Vec<(String, Cause)>,
}

impl Plan {
    /// The 422 cause when claim `key` lost; `None` for a value picked automatically, which
    /// the caller picks again (another writer took it since the listing).
    pub fn refusal(&self, key: &str) -> Option<Cause> {
        self.explicit
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, c)| c.clone())
    }
}

/// One held value of a Service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Held {
    Ip(IpAddr),
    NodePort(u16),
}

impl Held {
    fn key(&self, storage: &Storage) -> String {
        match self {
            Held::Ip(ip) => storage.key(IPS_DIR, None, &ip.to_string()),
            Held::NodePort(p) => storage.key(PORTS_DIR, None, &p.to_string()),
        }
    }
}

/// The values a Service (JSON, defaulted) holds: its ClusterIP unless headless or an
/// ExternalName, and its ports' node ports when its type has them.
fn held(svc: &Service) -> BTreeSet<Held> {
    let mut out = BTreeSet::new();
    let Some(spec) = svc.spec.as_ref() else {
        return out;
    };
    if needs_cluster_ip(spec) && !is_headless(spec) {
        for ip in spec.cluster_ips.iter().flatten() {
            if let Ok(ip) = ip.parse() {
                out.insert(Held::Ip(ip));
            }
        }
    }
    if matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer")) {
        for port in spec.ports.iter().flatten() {
            if let Some(p) = port.node_port.and_then(|p| u16::try_from(p).ok()) {
                if p != 0 {
                    out.insert(Held::NodePort(p));
                }
            }
        }
    }
    out
}

/// The claim keys a stored object holds, released when it is deleted (none but a Service's).
pub fn held_keys(storage: &Storage, plural: &str, obj: &Value) -> Vec<String> {
    if plural != "services" {
        return Vec::new();
    }
    match decode(obj) {
        Some(svc) => held(&svc).iter().map(|h| h.key(storage)).collect(),
        None => Vec::new(),
    }
}

fn decode(v: &Value) -> Option<Service> {
    serde::Deserialize::deserialize(v).ok()
}

/// Give `svc` (JSON, defaulted and validated; `old` the stored version on update) the values
/// it lacks and compute its claims: the new values it holds are claimed, the ones `old` held
/// and it no longer does are released. Values asked for must lie in their range.
pub async fn plan(
    storage: &Storage,
    ranges: &ServiceRanges,
    old: Option<&Value>,
    svc: &mut Value,
) -> Result<Plan, AllocatorError> {
    let Some(typed) = decode(svc) else {
        return Ok(Plan::default());
    };
    let old_held = old.and_then(decode).map(|o| held(&o)).unwrap_or_default();
    let spec = typed.spec.clone().unwrap_or_default();
    let mut auto = BTreeSet::new();

    // The ClusterIP: asked for, or picked.
    let wants_ip = needs_cluster_ip(&spec) && !is_headless(&spec);
    if wants_ip && spec.cluster_ip.as_deref().is_none_or(str::is_empty) {
        let used = taken_ips(storage, &ranges.cluster_ip).await?;
        let ip = ranges
            .cluster_ip
            .pick(&used, rand::random())
            .ok_or(AllocatorError::Full { what: "serviceIP" })?;
        svc["spec"]["clusterIP"] = json!(ip.to_string());
        svc["spec"]["clusterIPs"] = json!([ip.to_string()]);
        auto.insert(Held::Ip(ip));
    }

    // Node ports: asked for, or picked for each port that has none.
    if needs_node_ports(&spec) {
        let mut used: Option<BTreeSet<u16>> = None;
        let ports = svc["spec"]["ports"].as_array_mut();
        for port in ports.into_iter().flatten() {
            if port.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0 {
                continue;
            }
            if used.is_none() {
                let mut taken = taken_ports(storage).await?;
                taken.extend(old_held.iter().filter_map(|h| match h {
                    Held::NodePort(p) => Some(*p),
                    Held::Ip(_) => None,
                }));
                used = Some(taken);
            }
            let taken = used.as_mut().expect("listed above");
            // Ports this Service asks for explicitly are taken too.
            for p in spec.ports.iter().flatten().filter_map(|p| p.node_port) {
                if let Ok(p) = u16::try_from(p) {
                    taken.insert(p);
                }
            }
            let p = ranges
                .node_port
                .pick(taken, rand::random())
                .ok_or(AllocatorError::Full { what: "nodePort" })?;
            taken.insert(p);
            port["nodePort"] = json!(p);
            auto.insert(Held::NodePort(p));
        }
    }

    let now = decode(svc).map(|s| held(&s)).unwrap_or_default();
    let mut out = Plan::default();
    let mut invalid = Vec::new();
    let owner = serde_json::to_vec(&json!({
        "kind": "Service",
        "namespace": svc.pointer("/metadata/namespace"),
        "name": svc.pointer("/metadata/name"),
        "uid": svc.pointer("/metadata/uid"),
    }))
    .unwrap_or_default();
    for h in now.difference(&old_held) {
        let key = h.key(storage);
        if !auto.contains(h) {
            match explicit_cause(h, &spec, ranges) {
                Ok(taken) => out.explicit.push((key.clone(), taken)),
                Err(out_of_range) => invalid.push(out_of_range),
            }
        }
        out.claims.take.push((key, owner.clone()));
    }
    if !invalid.is_empty() {
        return Err(AllocatorError::Invalid(invalid));
    }
    out.claims.release = old_held.difference(&now).map(|h| h.key(storage)).collect();
    Ok(out)
}

/// For a value asked for explicitly: `Ok` with the cause if it turns out taken, or `Err`
/// with the cause that it is out of range (kube-apiserver's wording for both).
fn explicit_cause(
    h: &Held,
    spec: &k8s_openapi::api::core::v1::ServiceSpec,
    ranges: &ServiceRanges,
) -> Result<Cause, Cause> {
    match h {
        Held::Ip(ip) => {
            let ips = spec.cluster_ips.clone().unwrap_or_default();
            let cause = |why: &str| {
                Cause::invalid(
                    "spec.clusterIPs",
                    BadValue::Raw(go_string_slice(&ips)),
                    &format!("failed to allocate IP {ip}: {why}"),
                )
            };
            if ranges.cluster_ip.offset_of(*ip).is_none() {
                return Err(cause(&format!(
                    "the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                    ranges.cluster_ip
                )));
            }
            Ok(cause("provided IP is already allocated"))
        }
        Held::NodePort(p) => {
            let index = spec
                .ports
                .iter()
                .flatten()
                .position(|sp| sp.node_port == Some(i32::from(*p)))
                .unwrap_or(0);
            let field = format!("spec.ports[{index}].nodePort");
            if !ranges.node_port.contains(i64::from(*p)) {
                return Err(Cause::invalid(
                    field,
                    i64::from(*p),
                    &format!(
                        "provided port is not in the valid range. The range of valid ports is {}",
                        ranges.node_port
                    ),
                ));
            }
            Ok(Cause::invalid(
                field,
                i64::from(*p),
                "provided port is already allocated",
            ))
        }
    }
}

/// The node ports held, whatever the range (a port held from an earlier range stays taken).
async fn taken_ports(storage: &Storage) -> Result<BTreeSet<u16>, StorageError> {
    let prefix = storage.collection_prefix(PORTS_DIR, None);
    Ok(storage
        .list_keys(&prefix)
        .await?
        .iter()
        .filter_map(|k| k.strip_prefix(&prefix)?.parse().ok())
        .collect())
}

/// The taken offsets of the ClusterIP range.
async fn taken_ips(storage: &Storage, range: &IpRange) -> Result<BTreeSet<u64>, StorageError> {
    let prefix = storage.collection_prefix(IPS_DIR, None);
    Ok(storage
        .list_keys(&prefix)
        .await?
        .iter()
        .filter_map(|k| k.strip_prefix(&prefix)?.parse().ok())
        .filter_map(|ip| range.offset_of(ip))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(spec: Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": "s"}, "spec": spec})).unwrap()
    }

    #[test]
    fn what_a_service_holds_depends_on_its_type() {
        let cluster_ip = service(json!({"type": "ClusterIP", "clusterIPs": ["10.96.0.5"]}));
        assert_eq!(
            held(&cluster_ip).into_iter().collect::<Vec<_>>(),
            [Held::Ip("10.96.0.5".parse().unwrap())]
        );
        let headless =
            service(json!({"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]}));
        assert!(held(&headless).is_empty());
        let node_port = service(json!({"type": "NodePort", "clusterIPs": ["10.96.0.5"],
            "ports": [{"port": 80, "nodePort": 30080}, {"port": 81, "protocol": "UDP", "nodePort": 30080}]}));
        assert_eq!(
            held(&node_port).len(),
            2,
            "one IP, one port shared by two protocols"
        );
        let external = service(json!({"type": "ExternalName", "externalName": "x.example"}));
        assert!(held(&external).is_empty());
    }

    #[test]
    fn explicit_values_out_of_range_use_kube_apiservers_words() {
        let ranges = ServiceRanges::default();
        let spec =
            service(json!({"clusterIPs": ["10.0.0.5"], "ports": [{"port": 80, "nodePort": 80}]}))
                .spec
                .unwrap();
        let ip = explicit_cause(&Held::Ip("10.0.0.5".parse().unwrap()), &spec, &ranges);
        assert_eq!(
            ip.unwrap_err().error(),
            "spec.clusterIPs: Invalid value: []string{\"10.0.0.5\"}: failed to allocate IP 10.0.0.5: the provided IP (10.0.0.5) is not in the valid range. The range of valid IPs is 10.96.0.0/12"
        );
        let port = explicit_cause(&Held::NodePort(80), &spec, &ranges);
        assert_eq!(
            port.unwrap_err().error(),
            "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767"
        );
    }
}
