//! Taint eviction (upstream's NoExecuteTaintManager) against a real apiserver: a NoExecute
//! taint added by hand to a healthy node evicts the pods that do not tolerate it at once, those
//! tolerating it with `tolerationSeconds` that long after the taint's `timeAdded`, and never
//! those tolerating it for ever; removing the taint in time cancels a pending eviction.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

/// A node that reports Ready (the node lifecycle controller leaves it alone: see `config`).
async fn node(client: &kube::Client, name: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let n = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    nodes.create(&PostParams::default(), &n).await.unwrap();
    let now = jiff::Timestamp::now();
    let status = json!({"status": {"conditions": [
        {"type": "Ready", "status": "True", "lastHeartbeatTime": now.to_string()}
    ]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
}

/// A pod bound to `node` with these tolerations.
async fn pod(pods: &Api<Pod>, name: &str, node: &str, tolerations: Value) {
    let p = json!({
        "metadata": {"name": name},
        "spec": {"nodeName": node, "tolerations": tolerations,
                 "containers": [{"name": "c", "image": "busybox"}]},
    });
    pods.create(&PostParams::default(), &serde_json::from_value(p).unwrap())
        .await
        .unwrap();
}

/// Set the node's taints (`timeAdded` now, as `kubectl taint` does for NoExecute).
async fn set_taints(client: &kube::Client, node: &str, taints: &[(&str, &str)]) {
    let now = jiff::Timestamp::now().to_string();
    let taints: Vec<Value> = taints
        .iter()
        .map(|(key, value)| json!({"key": key, "value": value, "effect": "NoExecute", "timeAdded": now}))
        .collect();
    Api::<Node>::all(client.clone())
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": taints}})),
        )
        .await
        .unwrap();
}

fn tolerate(key: &str, seconds: Option<i64>) -> Value {
    let mut t = json!({"key": key, "operator": "Exists", "effect": "NoExecute"});
    if let Some(s) = seconds {
        t["tolerationSeconds"] = json!(s);
    }
    t
}

async fn is_live(pods: &Api<Pod>, name: &str) -> bool {
    pods.get_opt(name)
        .await
        .unwrap()
        .is_some_and(|p| p.metadata.deletion_timestamp.is_none())
}

/// Controllers whose node lifecycle never finds the test's nodes silent.
fn config() -> controller::manager::Config {
    controller::manager::Config {
        node_monitor_grace_period: Duration::from_secs(3600),
        ..fast_config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_added_no_execute_taint_evicts_as_the_pods_tolerations_say() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    node(&client, "n1").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pod(&pods, "plain", "n1", json!([])).await;
    pod(&pods, "forever", "n1", json!([tolerate("dedicated", None)])).await;
    pod(
        &pods,
        "three",
        "n1",
        json!([tolerate("dedicated", Some(3))]),
    )
    .await;
    let _ctrl = cluster.start_controllers(config());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        is_live(&pods, "plain").await,
        "evicted without a NoExecute taint"
    );

    set_taints(&client, "n1", &[("dedicated", "infra")]).await;
    let tainted = tokio::time::Instant::now();
    wait_for(10, "the pod without a toleration evicted", || async {
        (!is_live(&pods, "plain").await).then_some(())
    })
    .await;
    let plain = tainted.elapsed().as_secs_f64();
    wait_for(15, "the pod tolerating 3 s evicted", || async {
        (!is_live(&pods, "three").await).then_some(())
    })
    .await;
    // timeAdded has a resolution of a second: count from it, as the controller does.
    let node = Api::<Node>::all(client.clone()).get("n1").await.unwrap();
    let added = node.spec.unwrap().taints.unwrap()[0]
        .time_added
        .clone()
        .unwrap()
        .0;
    let three = jiff::Timestamp::now().duration_since(added).as_secs_f64();
    eprintln!("evicted {plain:.1} s after the taint (no toleration), {three:.1} s after its timeAdded (tolerationSeconds 3)");
    assert!(
        plain < 2.0,
        "an untolerated taint evicts at once, not after {plain:.1} s"
    );
    assert!(
        (3.0..6.0).contains(&three),
        "tolerationSeconds 3 evicted {three:.1} s after timeAdded"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    for name in ["plain", "three"] {
        let selector = format!("involvedObject.name={name},reason=TaintManagerEviction");
        let said = events
            .list(&kube::api::ListParams::default().fields(&selector))
            .await
            .unwrap()
            .items
            .len();
        assert_eq!(said, 1, "{name} evicted {said} times");
    }
    assert!(
        is_live(&pods, "forever").await,
        "a pod tolerating for ever was evicted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_taint_before_the_toleration_runs_out_cancels_the_eviction() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    node(&client, "n1").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pod(
        &pods,
        "three",
        "n1",
        json!([tolerate("maintenance", Some(3))]),
    )
    .await;
    let _ctrl = cluster.start_controllers(config());
    set_taints(&client, "n1", &[("maintenance", "")]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    set_taints(&client, "n1", &[]).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        is_live(&pods, "three").await,
        "evicted although the taint was removed in time"
    );
}
