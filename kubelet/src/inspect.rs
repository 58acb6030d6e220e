//! The kubelet's `/inspect` API: a pod seen from the node, down to the kernel. A pod is a
//! sandbox (pinned net, ipc and uts namespaces, a pod cgroup, a veth pair on the node's
//! bridge) and containers, each a process with namespaces of its own and the sandbox's, a
//! cgroup whose limit files hold the PodSpec's `resources.limits`, and a root filesystem that
//! is an overlay of the image's layers and a writable upper dir. `GET /inspect/{ns}/{pod}`
//! shows all of it for one of this node's pods (404 for any other), `GET /inspect/node` the
//! runtime's images; the apiserver relays both as `nodes/{node}/proxy/inspect/...`, which is
//! what `minikctl inspect` reads. The kernel facts come from the runtime through
//! [`ContainerRuntime`] (`inspect_container`, `inspect_sandbox`, `list_images`); the veth's
//! from sysfs. Read `server.rs` for the routes, `runtime/src/container/inspect.rs` for the facts.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::Api;
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
    /// Reading the pod from the apiserver failed.
    #[error("looking up pod {namespace}/{name}: {source}")]
    Lookup {
        namespace: String,
        name: String,
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
            namespace: namespace.into(),
            name: name.into(),
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
    let sys = Path::new("/sys/class/net").join(&veth);
    let read = |f: &str| {
        std::fs::read_to_string(sys.join(f))
            .ok()
            .map(|s| s.trim().to_string())
    };
    let master = std::fs::read_link(sys.join("master"))
        .ok()
        .and_then(|p| Some(p.file_name()?.to_string_lossy().into_owned()));
    json!({
        "podIP": ip,
        "cidr": net.config.cidr,
        "gateway": net.cidr().gateway().to_string(),
        "bridge": net.config.bridge,
        "hostVeth": veth,
        "hostVethExists": sys.exists(),
        "hostVethIndex": read("ifindex").and_then(|s| s.parse::<u32>().ok()),
        // the index of its peer, `eth0` inside the pod's network namespace
        "peerIndex": read("iflink").and_then(|s| s.parse::<u32>().ok()),
        "hostVethMaster": master,
        "podInterface": runtime::network::link::POD_IFNAME,
        "mtu": net.config.mtu,
    })
}

/// `GET /inspect/node`: the runtime's images, sandboxes and containers (blocking).
pub fn node(ctx: &Context) -> Value {
    let rt = ctx.runtime.as_ref();
    json!({
        "nodeName": ctx.node_name,
        "images": rt.list_images(),
        "sandboxes": rt.list_sandboxes().len(),
        "containers": rt.list_containers().len(),
        "network": ctx.network.get().map(|n| &n.config),
    })
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
