//! Node lifecycle and IPAM against a real apiserver: nodes are Node objects with Leases the test
//! renews or stops renewing (no kubelet).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::json;

async fn node(client: &kube::Client, name: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let n = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    nodes.create(&PostParams::default(), &n).await.unwrap();
    let now = jiff::Timestamp::now();
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": now.to_string(), "lastTransitionTime": now.to_string()}
        ]}})))
        .await
        .unwrap();
}

/// A stand-in kubelet heartbeat: renews the node's Lease every 500 ms while `alive`.
fn heartbeat(client: kube::Client, name: &str, alive: Arc<AtomicBool>) -> Task {
    let name = name.to_string();
    Task(tokio::spawn(async move {
        let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
        loop {
            if alive.load(Ordering::SeqCst) {
                let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                    jiff::Timestamp::now(),
                );
                let lease = Lease {
                    metadata: kube::api::ObjectMeta {
                        name: Some(name.clone()),
                        ..Default::default()
                    },
                    spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
                        holder_identity: Some(name.clone()),
                        lease_duration_seconds: Some(3),
                        renew_time: Some(now),
                        ..Default::default()
                    }),
                };
                let _ = leases
                    .patch(
                        &name,
                        &PatchParams::apply("test-kubelet").force(),
                        &Patch::Apply(&lease),
                    )
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }))
}

fn bound_pod(name: &str, node: &str, toleration_seconds: Option<i64>) -> Pod {
    let mut t = json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"});
    if let Some(s) = toleration_seconds {
        t["tolerationSeconds"] = json!(s);
    }
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"nodeName": node, "tolerations": [t], "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap()
}

fn tainted(n: &Node) -> bool {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| {
            ts.iter()
                .any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute")
        })
}

fn ready_status(n: &Node) -> Option<String> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_node_is_tainted_its_pods_evicted_and_a_renewed_lease_lifts_the_taint() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let ns: Api<Namespace> = Api::all(client.clone());
    if ns.get_opt("kube-node-lease").await.unwrap().is_none() {
        namespace(&client, "kube-node-lease").await;
    }
    let alive = Arc::new(AtomicBool::new(true));
    node(&client, "n1").await;
    node(&client, "n2").await;
    let _hb = heartbeat(client.clone(), "n1", alive.clone());
    let _hb2 = heartbeat(client.clone(), "n2", Arc::new(AtomicBool::new(true)));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &bound_pod("short", "n1", Some(1)))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &bound_pod("forever", "n1", None))
        .await
        .unwrap();
    let _ctrl = cluster.start_controllers(fast_config());
    let nodes: Api<Node> = Api::all(client.clone());

    // IPAM: distinct /24s.
    let cidrs = wait_for(30, "pod CIDRs", || async {
        let a = nodes.get("n1").await.unwrap().spec?.pod_cidr?;
        let b = nodes.get("n2").await.unwrap().spec?.pod_cidr?;
        Some((a, b))
    })
    .await;
    assert_ne!(cidrs.0, cidrs.1);
    assert!(
        cidrs.0.starts_with("10.244.") && cidrs.0.ends_with(".0/24"),
        "{cidrs:?}"
    );

    // The kubelet goes silent.
    alive.store(false, Ordering::SeqCst);
    wait_for(30, "n1 Ready=Unknown and tainted", || async {
        let n = nodes.get("n1").await.unwrap();
        (tainted(&n) && ready_status(&n).as_deref() == Some("Unknown")).then_some(())
    })
    .await;
    wait_for(30, "the pod with a 1 s toleration evicted", || async {
        pods.get_opt("short")
            .await
            .unwrap()
            .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
            .then_some(())
    })
    .await;
    assert!(
        pods.get("forever")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none(),
        "a pod tolerating forever stays"
    );
    let n2 = nodes.get("n2").await.unwrap();
    assert!(!tainted(&n2), "a node with a fresh lease is not tainted");

    // It comes back: the taint goes.
    alive.store(true, Ordering::SeqCst);
    wait_for(30, "the taint removed", || async {
        (!tainted(&nodes.get("n1").await.unwrap())).then_some(())
    })
    .await;

    // The node is deleted: its pods go at once.
    nodes.delete("n1", &DeleteParams::default()).await.unwrap();
    wait_for(30, "pods of a deleted node removed", || async {
        let left: Vec<String> = pods
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|p| p.name_any())
            .collect();
        left.is_empty().then_some(())
    })
    .await;
}
