//! Cascading deletion in all three propagation modes, and namespace deletion, with the real
//! kubectl and a real apiserver.

mod common;

use common::*;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::ResourceExt;
use serde_json::json;

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
        },
    }))
    .unwrap()
}

async fn replica_sets(client: &kube::Client, ns: &str, app: &str) -> Vec<ReplicaSet> {
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    api.list(&kube::api::ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
}

async fn deploy(client: &kube::Client, ns: &str, name: &str) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    api.create(&PostParams::default(), &deployment(name))
        .await
        .unwrap();
    wait_for(30, "the deployment's pods", || async {
        (live_pods(client, ns, &format!("app={name}")).await.len() == 2
            && replica_sets(client, ns, name).await.len() == 1)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascading_delete_background_foreground_and_orphan() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let _ctrl = cluster.start_controllers(fast_config());
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    for name in ["bg", "fg", "orph"] {
        deploy(&client, "default", name).await;
    }

    // Background: the Deployment goes at once; its ReplicaSet and pods follow.
    let (ok, out) = cluster
        .kubectl_text(&["delete", "deployment", "bg", "--cascade=background"])
        .await;
    assert!(ok, "{out}");
    wait_for(30, "background cascade", || async {
        (replica_sets(&client, "default", "bg").await.is_empty()
            && live_pods(&client, "default", "app=bg").await.is_empty())
        .then_some(())
    })
    .await;

    // Foreground: the Deployment stays (with a finalizer) until its dependents are gone.
    let (ok, out) = cluster
        .kubectl_text(&[
            "delete",
            "deployment",
            "fg",
            "--cascade=foreground",
            "--wait=false",
        ])
        .await;
    assert!(ok, "{out}");
    wait_for(30, "foreground cascade", || async {
        let gone = deployments.get_opt("fg").await.unwrap().is_none();
        if !gone {
            // While the owner exists, it waits for dependents.
            return None;
        }
        assert!(
            replica_sets(&client, "default", "fg").await.is_empty(),
            "owner removed before its ReplicaSet"
        );
        assert!(
            live_pods(&client, "default", "app=fg").await.is_empty(),
            "owner removed before its pods"
        );
        Some(())
    })
    .await;

    // Orphan: the Deployment goes, its ReplicaSet stays without the ownerReference, pods stay.
    let (ok, out) = cluster
        .kubectl_text(&["delete", "deployment", "orph", "--cascade=orphan"])
        .await;
    assert!(ok, "{out}");
    wait_for(30, "orphaning", || async {
        let sets = replica_sets(&client, "default", "orph").await;
        (deployments.get_opt("orph").await.unwrap().is_none()
            && sets.len() == 1
            && sets[0].owner_references().is_empty())
        .then_some(())
    })
    .await;
    assert_eq!(
        live_pods(&client, "default", "app=orph").await.len(),
        2,
        "orphaned ReplicaSet keeps its pods"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_empties_and_removes_it() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let _ctrl = cluster.start_controllers(fast_config());
    namespace(&client, "team").await;
    deploy(&client, "team", "app").await;
    let (ok, out) = cluster
        .kubectl_text(&["-n", "team", "create", "configmap", "x"])
        .await;
    let _ = (ok, out); // configmaps may not be served; the namespace must go either way
    let (ok, out) = cluster
        .kubectl_text(&["delete", "namespace", "team", "--timeout=60s"])
        .await;
    assert!(ok, "{out}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    wait_for(60, "the namespace to be removed", || async {
        namespaces
            .get_opt("team")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(live_pods(&client, "team", "").await.is_empty());
    assert!(replica_sets(&client, "team", "app").await.is_empty());
}
