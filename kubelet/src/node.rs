//! The Node: how the kubelet tells the cluster this machine exists. It registers a Node object
//! (capacity, nodeInfo, addresses, labels), keeps its conditions current through
//! `nodes/{n}/status`, and proves it is alive by renewing a Lease in `kube-node-lease`.

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeCondition, NodeStatus, NodeSystemInfo};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

/// The runtime we report in `nodeInfo.containerRuntimeVersion`.
pub const RUNTIME_VERSION: &str = "minik8s://0.1.0";
/// The version we report in `nodeInfo.kubeletVersion`.
pub const KUBELET_VERSION: &str = "v1.32.0-minik8s";
/// Namespace of node heartbeat Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// `leaseDurationSeconds` of the node Lease.
pub const LEASE_DURATION_SECONDS: i32 = 40;

/// Why talking to the apiserver about the Node failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{step}: {source}")]
    Api {
        step: &'static str,
        #[source]
        source: kube::Error,
    },
}

fn api_err(step: &'static str) -> impl FnOnce(kube::Error) -> NodeError {
    move |source| NodeError::Api { step, source }
}

/// What the kubelet knows about its own node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    pub node_ip: Option<String>,
    pub pod_cidr: Option<String>,
    /// Port of the kubelet API (`status.daemonEndpoints.kubeletEndpoint.Port`); 0 = none.
    pub kubelet_port: i32,
    /// Directory whose filesystem backs pods (for ephemeral-storage and DiskPressure).
    pub root_dir: std::path::PathBuf,
}

fn read_trim(path: &str) -> String {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `MemTotal`/`MemAvailable` etc. from /proc/meminfo, in bytes.
fn meminfo(key: &str) -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(&format!("{key}:")))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024
}

/// Memory the node can give: MemTotal, or the kubelet's cgroup limit when lower.
fn memory_capacity() -> u64 {
    let total = meminfo("MemTotal");
    let limit = read_trim("/sys/fs/cgroup/memory/memory.limit_in_bytes")
        .parse::<u64>()
        .unwrap_or(u64::MAX);
    total.min(limit)
}

/// (total, available) bytes of the filesystem holding `dir`.
fn disk(dir: &std::path::Path) -> (u64, u64) {
    match nix::sys::statvfs::statvfs(dir) {
        Ok(s) => (
            s.blocks() * s.fragment_size(),
            s.blocks_available() * s.fragment_size(),
        ),
        Err(_) => (0, 0),
    }
}

/// Kubernetes' name for this machine's architecture.
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    }
}

fn os_image() -> String {
    fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}

/// The machine's ID, where cAdvisor (the real kubelet's source) finds it; empty where the
/// machine has none (a minimal container image).
fn machine_id() -> String {
    ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .into_iter()
        .map(read_trim)
        .find(|id| !id.is_empty())
        .unwrap_or_default()
}

/// `nodeInfo`: every field filled that the machine can tell.
pub fn node_info() -> NodeSystemInfo {
    let machine_id = machine_id();
    let system_uuid = Some(read_trim("/sys/class/dmi/id/product_uuid"))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| machine_id.clone());
    NodeSystemInfo {
        machine_id,
        system_uuid,
        boot_id: read_trim("/proc/sys/kernel/random/boot_id"),
        kernel_version: read_trim("/proc/sys/kernel/osrelease"),
        os_image: os_image(),
        container_runtime_version: RUNTIME_VERSION.into(),
        kubelet_version: KUBELET_VERSION.into(),
        kube_proxy_version: KUBELET_VERSION.into(),
        operating_system: "linux".into(),
        architecture: arch().into(),
        ..Default::default()
    }
}

/// capacity (= allocatable: nothing is reserved): cpu, memory, pods, ephemeral-storage.
pub fn capacity(root_dir: &std::path::Path) -> BTreeMap<String, Quantity> {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let (disk_total, _) = disk(root_dir);
    BTreeMap::from([
        ("cpu".to_string(), Quantity(cpus.to_string())),
        (
            "memory".to_string(),
            Quantity(format!("{}Ki", memory_capacity() / 1024)),
        ),
        ("pods".to_string(), Quantity("110".into())),
        (
            "ephemeral-storage".to_string(),
            Quantity(format!("{}Ki", disk_total / 1024)),
        ),
    ])
}

fn condition(
    type_: &str,
    bad: bool,
    reason_ok: &str,
    msg_ok: &str,
    reason_bad: &str,
    msg_bad: &str,
) -> (String, String, String, String) {
    let (status, reason, msg) = if bad {
        ("True", reason_bad, msg_bad)
    } else {
        ("False", reason_ok, msg_ok)
    };
    (
        type_.to_string(),
        status.to_string(),
        reason.to_string(),
        msg.to_string(),
    )
}

/// The four conditions as (type, status, reason, message), from the machine's current figures.
pub fn current_conditions(root_dir: &std::path::Path) -> Vec<(String, String, String, String)> {
    let avail = meminfo("MemAvailable");
    let (total, free) = disk(root_dir);
    let pid_max = read_trim("/proc/sys/kernel/pid_max")
        .parse::<u64>()
        .unwrap_or(32768);
    let pids = fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .count() as u64
        })
        .unwrap_or(0);
    vec![
        condition(
            "MemoryPressure",
            avail < 100 << 20,
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
            "KubeletHasInsufficientMemory",
            "kubelet has insufficient memory available",
        ),
        condition(
            "DiskPressure",
            total > 0 && free * 10 < total,
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
            "KubeletHasDiskPressure",
            "kubelet has disk pressure",
        ),
        condition(
            "PIDPressure",
            pids * 10 > pid_max * 9,
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
            "KubeletHasInsufficientPID",
            "kubelet has insufficient PID available",
        ),
        (
            "Ready".into(),
            "True".into(),
            "KubeletReady".into(),
            "kubelet is posting ready status".into(),
        ),
    ]
}

fn now_time() -> Time {
    Time(jiff::Timestamp::now())
}

/// The Node object we register (metadata + spec; status goes through the subresource).
pub fn node_object(cfg: &NodeConfig) -> Node {
    let mut node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": cfg.name,
            "labels": {
                "kubernetes.io/hostname": cfg.name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch(),
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": arch(),
            },
        },
        "spec": {},
    }))
    .expect("valid node");
    if let Some(cidr) = &cfg.pod_cidr {
        let spec = node.spec.get_or_insert_with(Default::default);
        spec.pod_cidr = Some(cidr.clone());
        spec.pod_cidrs = Some(vec![cidr.clone()]);
    }
    node
}

/// Full node status; `previous` keeps lastTransitionTime of unchanged conditions.
pub fn node_status(cfg: &NodeConfig, previous: Option<&NodeStatus>) -> NodeStatus {
    let now = now_time();
    let conditions = current_conditions(&cfg.root_dir)
        .into_iter()
        .map(|(type_, status, reason, message)| {
            let prev = previous
                .and_then(|p| p.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == type_));
            let transition = match prev {
                Some(p) if p.status == status => p
                    .last_transition_time
                    .clone()
                    .unwrap_or_else(|| now.clone()),
                _ => now.clone(),
            };
            NodeCondition {
                type_,
                status,
                reason: Some(reason),
                message: Some(message),
                last_heartbeat_time: Some(now.clone()),
                last_transition_time: Some(transition),
            }
        })
        .collect();
    let mut addresses = Vec::new();
    if let Some(ip) = &cfg.node_ip {
        addresses.push(NodeAddress {
            type_: "InternalIP".into(),
            address: ip.clone(),
        });
    }
    addresses.push(NodeAddress {
        type_: "Hostname".into(),
        address: cfg.name.clone(),
    });
    let cap = capacity(&cfg.root_dir);
    let mut status: NodeStatus = serde_json::from_value(json!({
        "daemonEndpoints": {"kubeletEndpoint": {"Port": cfg.kubelet_port}},
    }))
    .expect("valid status");
    status.capacity = Some(cap.clone());
    status.allocatable = Some(cap);
    status.conditions = Some(conditions);
    status.addresses = Some(addresses);
    status.node_info = Some(node_info());
    status.phase = None;
    status
}

/// Create the Node, or refresh labels and podCIDR of an existing one; then post its status.
pub async fn register(api: &Api<Node>, cfg: &NodeConfig) -> Result<NodeStatus, NodeError> {
    let node = node_object(cfg);
    match api.create(&PostParams::default(), &node).await {
        Ok(_) => tracing::info!(node = %cfg.name, "registered node"),
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let patch = json!({"metadata": {"labels": node.metadata.labels}, "spec": node.spec});
            api.patch(&cfg.name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map_err(api_err("update node"))?;
            tracing::info!(node = %cfg.name, "node already registered; updated");
        }
        Err(e) => return Err(api_err("create node")(e)),
    }
    post_status(api, cfg, None).await
}

/// Patch `nodes/{n}/status` with freshly computed status.
pub async fn post_status(
    api: &Api<Node>,
    cfg: &NodeConfig,
    previous: Option<&NodeStatus>,
) -> Result<NodeStatus, NodeError> {
    let status = node_status(cfg, previous);
    api.patch_status(
        &cfg.name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await
    .map_err(api_err("update node status"))?;
    Ok(status)
}

/// Whether the conditions' statuses differ (the only thing worth an immediate update).
fn conditions_changed(a: &NodeStatus, b: &NodeStatus) -> bool {
    let key = |s: &NodeStatus| {
        s.conditions
            .iter()
            .flatten()
            .map(|c| (c.type_.clone(), c.status.clone()))
            .collect::<Vec<_>>()
    };
    key(a) != key(b)
}

/// Keep the node status current: post when a condition differs from what the API holds
/// (the kubelet's own change, or the node lifecycle controller having marked a live node
/// Unknown), and at least every minute.
pub async fn status_loop(
    api: Api<Node>,
    cfg: NodeConfig,
    mut last: NodeStatus,
    interval: Duration,
) {
    let mut since_post = Duration::ZERO;
    loop {
        tokio::time::sleep(interval).await;
        since_post += interval;
        // What the API holds now (like the real kubelet's GET before each status update);
        // if the GET fails, compare with what we posted last.
        if let Ok(Some(status)) = api
            .get_opt(&cfg.name)
            .await
            .map(|n| n.and_then(|n| n.status))
        {
            last = status;
        }
        let fresh = node_status(&cfg, Some(&last));
        if conditions_changed(&fresh, &last) || since_post >= Duration::from_secs(60) {
            match post_status(&api, &cfg, Some(&last)).await {
                Ok(s) => {
                    last = s;
                    since_post = Duration::ZERO;
                }
                Err(e) => tracing::warn!(node = %cfg.name, error = %e, "posting node status"),
            }
        }
    }
}

/// Create or renew the node's Lease (holder = node, 40 s, owned by the Node).
pub async fn renew_lease(
    api: &Api<Lease>,
    node_uid: Option<&str>,
    name: &str,
) -> Result<(), NodeError> {
    let renew = MicroTime(jiff::Timestamp::now());
    let patch = json!({"spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_DURATION_SECONDS, "renewTime": renew}});
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let mut lease: Lease = serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
                "spec": patch["spec"],
            }))
            .expect("valid lease");
            if let Some(uid) = node_uid {
                lease.metadata.owner_references = Some(vec![serde_json::from_value(
                    json!({"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}),
                )
                .expect("valid owner")]);
            }
            api.create(&PostParams::default(), &lease)
                .await
                .map_err(api_err("create lease"))?;
            Ok(())
        }
        Err(e) => Err(api_err("renew lease")(e)),
    }
}

/// Renew the Lease every `interval`, forever.
pub async fn lease_loop(client: kube::Client, name: String, interval: Duration) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let nodes: Api<Node> = Api::all(client);
    let mut uid = None;
    loop {
        if uid.is_none() {
            uid = nodes
                .get_opt(&name)
                .await
                .ok()
                .flatten()
                .and_then(|n| n.metadata.uid);
        }
        if let Err(e) = renew_lease(&leases, uid.as_deref(), &name).await {
            tracing::warn!(node = %name, error = %e, "renewing the lease");
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_info_has_every_field() {
        let i = node_info();
        for (k, v) in [
            ("kernel", &i.kernel_version),
            ("os", &i.os_image),
            ("boot", &i.boot_id),
            ("arch", &i.architecture),
        ] {
            assert!(!v.is_empty(), "{k} empty");
        }
        assert_eq!(i.container_runtime_version, RUNTIME_VERSION);
        assert_eq!(i.operating_system, "linux");
    }

    #[test]
    fn capacity_has_cpu_memory_pods() {
        let c = capacity(std::path::Path::new("/"));
        assert_eq!(c["pods"].0, "110");
        assert!(c["cpu"].0.parse::<u32>().unwrap() >= 1);
        assert!(c["memory"].0.ends_with("Ki"));
    }

    #[test]
    fn conditions_keep_transition_time() {
        let cfg = NodeConfig {
            name: "n".into(),
            node_ip: Some("10.0.0.1".into()),
            pod_cidr: None,
            kubelet_port: 10250,
            root_dir: "/".into(),
        };
        let a = node_status(&cfg, None);
        let b = node_status(&cfg, Some(&a));
        let t = |s: &NodeStatus| {
            s.conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == "Ready")
                .unwrap()
                .last_transition_time
                .clone()
        };
        assert_eq!(t(&a), t(&b));
        assert!(!conditions_changed(&a, &b));
        assert_eq!(a.addresses.as_ref().unwrap()[0].type_, "InternalIP");
    }
}
