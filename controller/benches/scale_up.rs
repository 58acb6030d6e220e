//! Reconcile latency of a 100-replica scale-up: the time from setting `spec.replicas = 100` on a
//! ReplicaSet to 100 pods existing, on a real etcd + apiserver with the controller in-process.
//!
//! `cargo bench -p minik8s-controller --bench scale_up`

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

async fn count(pods: &Api<Pod>) -> usize {
    pods.list(&ListParams::default().labels("app=bench"))
        .await
        .unwrap()
        .items
        .len()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let cluster = testkit::Cluster::start().await;
    let client = cluster.client();
    let ctrl = tokio::spawn(controller::manager::run(client.clone(), Default::default()));
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "bench"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "bench"}},
                 "template": {"metadata": {"labels": {"app": "bench"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
    }))
    .unwrap();
    rs_api.create(&PostParams::default(), &rs).await.unwrap();
    let mut figures = Vec::new();
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let start = Instant::now();
        rs_api
            .patch(
                "bench",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 100}})),
            )
            .await
            .unwrap();
        while count(&pods).await < 100 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let up = start.elapsed();
        let start = Instant::now();
        rs_api
            .patch(
                "bench",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 0}})),
            )
            .await
            .unwrap();
        while count(&pods).await > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let down = start.elapsed();
        println!(
            "round {round}: scale 0→100 pods exist after {:.0} ms; 100→0 after {:.0} ms",
            up.as_secs_f64() * 1e3,
            down.as_secs_f64() * 1e3
        );
        figures.push(up);
    }
    figures.sort();
    println!(
        "replicaset scale-up 0→100: median {:.0} ms (3 rounds)",
        figures[1].as_secs_f64() * 1e3
    );
    ctrl.abort();
}
