//! Shared by the integration tests: what `testkit` gives every crate (a real etcd and
//! apiserver, polling), simulated nodes (Node objects with a Ready condition and allocatable,
//! no kubelet), pods, and a scheduler in-process.
// Each test binary includes this module and uses a part of it (and of what it re-exports).
#![allow(dead_code, unused_imports)]

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
pub use testkit::objects::merge;
pub use testkit::poll;

/// An etcd plus an apiserver, and a client built the way the scheduler builds its own.
pub struct Cluster {
    pub client: kube::Client,
    pub kit: testkit::Cluster,
}

impl Cluster {
    pub async fn start() -> Cluster {
        let kit = testkit::Cluster::start().await;
        let client = client::connect::ClusterFlags::for_server(kit.url())
            .client()
            .await
            .unwrap();
        Cluster { client, kit }
    }

    /// Create a Node, then set its status: Ready (or not) and allocatable.
    pub async fn node(&self, name: &str, ready: bool, allocatable: Value, extra: Value) -> Node {
        let api: Api<Node> = Api::all(self.client.clone());
        let mut body = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
        merge(&mut body, extra);
        let node: Node = serde_json::from_value(body).unwrap();
        api.create(&PostParams::default(), &node).await.unwrap();
        let status = json!({"status": {
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "reason": "KubeletReady"}],
            "capacity": allocatable, "allocatable": allocatable,
        }});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
            .await
            .unwrap()
    }

    /// Create a pod in `default` with one container and `spec` merged in.
    pub async fn pod(&self, name: &str, spec: Value) -> Pod {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), "default");
        let mut body = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]}});
        merge(&mut body["spec"], spec);
        api.create(
            &PostParams::default(),
            &serde_json::from_value(body).unwrap(),
        )
        .await
        .unwrap()
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// The node a pod is bound to ("" if none).
    pub async fn node_of(&self, name: &str) -> String {
        let pod = self.pods().get(name).await.unwrap();
        pod.spec.and_then(|s| s.node_name).unwrap_or_default()
    }

    /// Wait (up to 60 s) until the pod is bound; returns the node.
    pub async fn wait_bound(&self, name: &str) -> String {
        let node = poll(60, || async {
            let n = self.node_of(name).await;
            (!n.is_empty()).then_some(n)
        })
        .await;
        node.unwrap_or_else(|| panic!("pod {name} was not bound within 60 s"))
    }

    /// Events in `default` about pod `name` with `reason`.
    pub async fn events(&self, name: &str, reason: &str) -> Vec<Event> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), "default");
        let list = api.list(&ListParams::default()).await.unwrap();
        list.items
            .into_iter()
            .filter(|e| {
                e.involved_object.name.as_deref() == Some(name)
                    && e.reason.as_deref() == Some(reason)
            })
            .collect()
    }

    /// Start a scheduler (no leader election); it stops when the guard drops.
    pub fn scheduler(&self, identity: &str) -> TaskGuard {
        let config = scheduler::SchedulerConfig {
            scheduler_name: "default-scheduler".into(),
            identity: identity.into(),
        };
        TaskGuard::spawn(scheduler::run(self.client.clone(), config))
    }
}

/// Aborts a spawned task when dropped; by default the scheduler's.
pub type TaskGuard<T = Result<(), scheduler::schedule_one::ScheduleError>> = testkit::Task<T>;

/// The PodScheduled condition of a pod: (status, reason, message).
pub fn pod_scheduled(pod: &Pod) -> Option<(String, String, String)> {
    let c = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled")?;
    Some((
        c.status.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    ))
}
