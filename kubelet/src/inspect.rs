//! The kubelet's `/inspect` API: a pod seen from the node, down to the kernel. A pod is a
//! sandbox (pinned net, ipc and uts namespaces, a pod cgroup, a veth pair on the node's
//! bridge) and containers, each a process with namespaces of its own and the sandbox's, a
//! cgroup whose limit files hold the PodSpec's `resources.limits`, and a root filesystem that
//! is an overlay of the image's layers and a writable upper dir. `GET /inspect/{ns}/{pod}`
//! shows all of it for one of this node's pods (404 for any other), `GET /inspect/node` the
//! node's pods with their requests against its allocatable, and the runtime's images; the apiserver relays both as `nodes/{node}/proxy/inspect/...`, which is
//! what `minikctl inspect` reads. The kernel facts come from the runtime through
//! [`ContainerRuntime`] (`inspect_container`, `inspect_sandbox`, `list_images`); the veth's
//! over netlink, in the kubelet's own network namespace. Read `server.rs` for the routes, `runtime/src/container/inspect.rs` for the facts.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use client::quantity;
use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, ListParams};
use runtime::network::link;
use serde_json::{json, Value};

use crate::agent::inventory;
use crate::cri::ContainerRuntime;
use crate::pod_worker::{Context, Record};

/// Why a pod cannot be inspected.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// No such pod, or it is bound to another node: the kubelet shows its own pods only.
    #[error("pod {namespace}/{name} not found on node {node}")]
    NotOnThisNode {
        namespace: String,
        name: String,
        node: String,
    },
    /// Reading from the apiserver failed.
    #[error("reading {what}: {source}")]
    Lookup {
        /// What was read (`pod default/web`, `the pods of node n1`).
        what: String,
        #[source]
        source: kube::Error,
    },
    /// The blocking task reading the runtime died.
    #[error("reading the runtime failed")]
    Task,
}

impl InspectError {
    /// The HTTP status the kubelet answers with.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            Self::NotOnThisNode { .. } => StatusCode::NOT_FOUND,
            Self::Lookup { .. } => StatusCode::BAD_GATEWAY,
            Self::Task => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// `GET /inspect/{namespace}/{pod}`: the pod, its sandbox, its network and every container.
pub async fn pod(ctx: &Arc<Context>, namespace: &str, name: &str) -> Result<Value, InspectError> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let not_here = || InspectError::NotOnThisNode {
        namespace: namespace.into(),
        name: name.into(),
        node: ctx.node_name.clone(),
    };
    let pod = api
        .get_opt(name)
        .await
        .map_err(|source| InspectError::Lookup {
            what: format!("pod {namespace}/{name}"),
            source,
        })?
        .ok_or_else(not_here)?;
    let spec = pod.spec.clone().unwrap_or_default();
    if spec.node_name.as_deref() != Some(ctx.node_name.as_str()) {
        return Err(not_here());
    }
    let ctx = ctx.clone();
    tokio::task::spawn_blocking(move || inspect_pod(&ctx, &pod))
        .await
        .map_err(|_| InspectError::Task)
}

/// Everything the runtime and the kernel know of `pod` (blocking).
fn inspect_pod(ctx: &Context, pod: &Pod) -> Value {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let rt = ctx.runtime.as_ref();
    let latest = latest_attempts(inventory(rt).remove(&uid).unwrap_or_default());
    let init = spec.init_containers.iter().flatten().map(|c| (c, true));
    let main = spec.containers.iter().map(|c| (c, false));
    let containers: Vec<Value> = init
        .chain(main)
        .map(|(c, is_init)| container(rt, c, is_init, latest.get(&c.name)))
        .collect();
    json!({
        "namespace": pod.metadata.namespace,
        "name": pod.metadata.name,
        "uid": uid,
        "nodeName": ctx.node_name,
        "sandbox": rt.inspect_sandbox(&uid).ok(),
        "network": network(ctx, &uid),
        "containers": containers,
    })
}

/// The newest attempt of each container name.
fn latest_attempts(records: Vec<Record>) -> HashMap<String, Record> {
    let mut out: HashMap<String, Record> = HashMap::new();
    for r in records {
        if out.get(&r.container).is_none_or(|o| o.attempt < r.attempt) {
            out.insert(r.container.clone(), r);
        }
    }
    out
}

/// One container: its runtime record, state and kernel view, volumes by name.
fn container(rt: &dyn ContainerRuntime, c: &Container, init: bool, r: Option<&Record>) -> Value {
    let info = r.and_then(|r| rt.container_info(&r.id).ok());
    let kernel = r.and_then(|r| rt.inspect_container(&r.id).ok());
    let volumes: Vec<Value> = c
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| {
            let bind = kernel.as_ref().and_then(|k| {
                k.volumes
                    .iter()
                    .find(|b| b.destination == Path::new(&m.mount_path))
            });
            json!({
                "name": m.name,
                "mountPath": m.mount_path,
                "readOnly": m.read_only.unwrap_or(false),
                "hostPath": bind.map(|b| &b.source),
            })
        })
        .collect();
    json!({
        "name": c.name,
        "initContainer": init,
        "image": c.image,
        "id": r.map(|r| &r.id),
        "attempt": r.map(|r| r.attempt),
        "imageDigest": info.map(|i| i.image_digest),
        "state": r.and_then(|r| rt.container_state(&r.id).ok()),
        "kernel": kernel,
        "volumes": volumes,
    })
}

/// The pod's address and veth pair, when the node has a pod network and the pod is on it.
fn network(ctx: &Context, uid: &str) -> Value {
    let Some(net) = ctx.network.get() else {
        return Value::Null;
    };
    let ip = net
        .allocations()
        .into_iter()
        .find(|(_, owner)| owner == uid)
        .map(|(ip, _)| ip.to_string());
    let veth = runtime::network::veth_name(uid);
    // over netlink in the kubelet's own network namespace: /sys/class/net is the namespace
    // sysfs was mounted in, the host's for a kubelet that only setns(2)'d into a lab node's
    let name = veth.clone();
    let facts = link::on_thread(
        None,
        move |h| async move { link::link_facts(&h, &name).await },
    )
    .inspect_err(|e| tracing::debug!(veth = %veth, error = %e, "reading the veth"))
    .ok()
    .flatten();
    json!({
        "podIP": ip,
        "cidr": net.config.cidr,
        "gateway": net.cidr().gateway().to_string(),
        "bridge": net.config.bridge,
        "hostVeth": veth,
        "hostVethExists": facts.is_some(),
        "hostVethIndex": facts.as_ref().map(|f| f.index),
        // the index of its peer, `eth0` inside the pod's network namespace
        "peerIndex": facts.as_ref().map(|f| f.link_index),
        "hostVethMaster": facts.and_then(|f| f.master),
        "podInterface": link::POD_IFNAME,
        "mtu": net.config.mtu,
    })
}

/// `GET /inspect/node`: the pods bound to this node with their requests against the node's
/// allocatable (cpu in millicores, memory in bytes, as the scheduler counts them), and the
/// runtime's images, sandboxes and containers.
pub async fn node(ctx: &Arc<Context>) -> Result<Value, InspectError> {
    let lookup = |what: &str| {
        let what = format!("{what} of node {}", ctx.node_name);
        move |source| InspectError::Lookup { what, source }
    };
    let params = ListParams::default().fields(&format!("spec.nodeName={}", ctx.node_name));
    let pods = Api::<Pod>::all(ctx.client.clone())
        .list(&params)
        .await
        .map_err(lookup("the pods"))?;
    let node = Api::<Node>::all(ctx.client.clone())
        .get_opt(&ctx.node_name)
        .await
        .map_err(lookup("the Node"))?;
    let allocatable = node.and_then(|n| n.status?.allocatable).unwrap_or_default();
    let mut requested = Amounts::default();
    let pods: Vec<Value> = pods
        .items
        .iter()
        .map(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.clone());
            let r = pod_requests(p.spec.as_ref());
            if !matches!(phase.as_deref(), Some("Succeeded" | "Failed")) {
                requested.add(r);
            }
            json!({"namespace": p.metadata.namespace, "name": p.metadata.name,
                   "phase": phase, "cpuMillis": r.cpu_millis, "memoryBytes": r.memory_bytes})
        })
        .collect();
    let c = ctx.clone();
    let runtime = tokio::task::spawn_blocking(move || runtime_view(&c))
        .await
        .map_err(|_| InspectError::Task)?;
    Ok(json!({
        "nodeName": ctx.node_name,
        "allocatable": {
            "cpuMillis": amount(allocatable.get("cpu"), quantity::Quantity::millis),
            "memoryBytes": amount(allocatable.get("memory"), quantity::Quantity::value),
            "pods": amount(allocatable.get("pods"), quantity::Quantity::value),
        },
        "requested": {
            "cpuMillis": requested.cpu_millis,
            "memoryBytes": requested.memory_bytes,
            "pods": requested.pods,
        },
        "pods": pods,
        "runtime": runtime,
    }))
}

/// What the runtime holds (blocking).
fn runtime_view(ctx: &Context) -> Value {
    let rt = ctx.runtime.as_ref();
    json!({
        "images": rt.list_images(),
        "sandboxes": rt.list_sandboxes().len(),
        "containers": rt.list_containers().len(),
        "network": ctx.network.get().map(|n| &n.config),
    })
}

/// Requested resources: cpu in millicores, memory in bytes, a count of pods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Amounts {
    cpu_millis: i64,
    memory_bytes: i64,
    pods: i64,
}

impl Amounts {
    fn add(&mut self, o: Amounts) {
        self.cpu_millis += o.cpu_millis;
        self.memory_bytes += o.memory_bytes;
        self.pods += o.pods;
    }

    fn max(self, o: Amounts) -> Amounts {
        Amounts {
            cpu_millis: self.cpu_millis.max(o.cpu_millis),
            memory_bytes: self.memory_bytes.max(o.memory_bytes),
            pods: self.pods.max(o.pods),
        }
    }
}

/// A quantity in the unit `unit` picks; 0 when absent or unreadable.
fn amount(q: Option<&Quantity>, unit: fn(&quantity::Quantity) -> i64) -> i64 {
    q.and_then(|q| quantity::Quantity::try_from(q).ok())
        .map_or(0, |q| unit(&q))
}

/// A pod's requests as the scheduler counts them: its containers' sum or its largest init
/// container, whichever is more, plus the overhead; one pod.
fn pod_requests(spec: Option<&PodSpec>) -> Amounts {
    let Some(spec) = spec else {
        return Amounts::default();
    };
    let of = |r: Option<&std::collections::BTreeMap<String, Quantity>>| Amounts {
        cpu_millis: amount(r.and_then(|r| r.get("cpu")), quantity::Quantity::millis),
        memory_bytes: amount(r.and_then(|r| r.get("memory")), quantity::Quantity::value),
        pods: 0,
    };
    let requests = |c: &Container| of(c.resources.as_ref().and_then(|r| r.requests.as_ref()));
    let mut sum = Amounts::default();
    spec.containers.iter().for_each(|c| sum.add(requests(c)));
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(requests)
        .fold(Amounts::default(), Amounts::max);
    let mut total = sum.max(init);
    total.add(of(spec.overhead.as_ref()));
    total.pods = 1;
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(container: &str, attempt: u32) -> Record {
        Record {
            id: format!("{container}-{attempt}"),
            container: container.into(),
            attempt,
        }
    }

    #[test]
    fn pod_requests_take_the_largest_init_container_and_overhead() {
        let spec: PodSpec = serde_json::from_value(json!({
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "0.5"}}}],
            "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "1", "memory": "1Mi"}}}],
            "overhead": {"memory": "1Ki"}}))
        .unwrap();
        let got = pod_requests(Some(&spec));
        assert_eq!(got.cpu_millis, 1000);
        assert_eq!(got.memory_bytes, 64 * 1024 * 1024 + 1024);
        assert_eq!(got.pods, 1);
    }

    #[test]
    fn the_newest_attempt_of_each_container_wins() {
        let got = latest_attempts(vec![rec("a", 0), rec("a", 2), rec("b", 0), rec("a", 1)]);
        assert_eq!(got["a"].id, "a-2");
        assert_eq!(got["b"].id, "b-0");
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn a_fake_container_shows_its_runtime_record() {
        let rt = crate::cri::FakeRuntime::new();
        rt.add_running("uid1_web_0");
        let id = rt.find_container("uid1_web_0").unwrap();
        let c = Container {
            name: "web".into(),
            image: Some("busybox".into()),
            ..Default::default()
        };
        let r = Record {
            id: id.clone(),
            container: "web".into(),
            attempt: 0,
        };
        let v = container(&rt, &c, false, Some(&r));
        assert_eq!(v["id"], id.as_str());
        assert_eq!(v["state"]["status"], "running");
        assert_eq!(v["kernel"]["cgroup"]["path"], "minik8s-fake/uid1_web_0");
        let none = container(&rt, &c, false, None);
        assert!(none["kernel"].is_null() && none["id"].is_null(), "{none}");
    }
}
