//! The ReplicaSet controller against a real apiserver: exact counts, scaling, replacement,
//! adoption and release, status, and no extra pods when the watch cache lags.

mod common;

use std::sync::Arc;

use common::*;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::json;

fn replicaset(name: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }))
    .unwrap()
}

async fn wait_count(client: &kube::Client, name: &str, n: usize) {
    wait_for(30, &format!("{n} pods of {name}"), || async {
        (live_pods(client, "default", &format!("app={name}"))
            .await
            .len()
            == n)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_exactly_n_scales_and_replaces_deleted_pods() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let _ctrl = cluster.start_controllers(fast_config());
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    rs_api
        .create(&PostParams::default(), &replicaset("web", 3))
        .await
        .unwrap();
    wait_count(&client, "web", 3).await;

    // Owned, named after the RS, and status follows.
    let rs = rs_api.get("web").await.unwrap();
    for p in live_pods(&client, "default", "app=web").await {
        assert!(p.name_any().starts_with("web-"));
        let owner = &p.owner_references()[0];
        assert_eq!(
            (
                owner.uid.as_str(),
                owner.controller,
                owner.block_owner_deletion
            ),
            (rs.uid().unwrap().as_str(), Some(true), Some(true))
        );
        mark_ready(&client, &p).await;
    }
    wait_for(30, "status readyReplicas 3", || async {
        let s = rs_api.get("web").await.unwrap().status.unwrap_or_default();
        (s.replicas == 3
            && s.ready_replicas == Some(3)
            && s.available_replicas == Some(3)
            && s.fully_labeled_replicas == Some(3)
            && s.observed_generation == rs.metadata.generation)
            .then_some(())
    })
    .await;

    // Scale up and down.
    rs_api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    wait_count(&client, "web", 5).await;
    rs_api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .unwrap();
    wait_count(&client, "web", 2).await;
    // The ready pods survive the scale-down (the 2 new ones were not ready).
    let left = live_pods(&client, "default", "app=web").await;
    assert!(
        left.iter().all(is_ready),
        "scale-down must delete not-ready pods first"
    );

    // A deleted pod is replaced.
    pods.delete(&left[0].name_any(), &DeleteParams::default())
        .await
        .unwrap();
    wait_for(30, "a replacement pod", || async {
        let now = live_pods(&client, "default", "app=web").await;
        (now.len() == 2 && now.iter().all(|p| p.name_any() != left[0].name_any())).then_some(())
    })
    .await;

    // A pod whose labels stop matching is released and replaced; a matching orphan is adopted.
    let victim = live_pods(&client, "default", "app=web").await.remove(0);
    pods.patch(
        &victim.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "other"}}})),
    )
    .await
    .unwrap();
    wait_for(30, "the relabelled pod to be released", || async {
        let p = pods.get(&victim.name_any()).await.unwrap();
        p.owner_references().is_empty().then_some(())
    })
    .await;
    wait_count(&client, "web", 2).await;
    pods.patch(
        &victim.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}})),
    )
    .await
    .unwrap();
    // Adopted back, and then one of the three goes.
    wait_count(&client, "web", 2).await;
    wait_for(30, "all pods owned", || async {
        let all = live_pods(&client, "default", "app=web").await;
        (all.len() == 2 && all.iter().all(|p| !p.owner_references().is_empty())).then_some(())
    })
    .await;

    // Events were recorded.
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert!(
        reasons.iter().any(|r| r == "SuccessfulCreate"),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r == "SuccessfulDelete"),
        "{reasons:?}"
    );
}

/// A watch cache that never catches up: without expectations, every sync would create more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expectations_prevent_extra_pods_when_the_cache_lags() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let rs = rs_api
        .create(&PostParams::default(), &replicaset("slow", 4))
        .await
        .unwrap();
    // A pod cache that saw an empty list and nothing since: as stale as a watch can get (but
    // initialised: the controller rightly waits for a cache that has not listed yet).
    let (pods, mut writer) = kube::runtime::reflector::store::<Pod>();
    writer.apply_watcher_event(&kube::runtime::watcher::Event::Init);
    writer.apply_watcher_event(&kube::runtime::watcher::Event::InitDone);
    let ctx = Arc::new(controller::replicaset::Context {
        client: client.clone(),
        pods,
        expectations: Default::default(),
        recorder: controller::events::Recorder::new(client.clone(), "test"),
    });
    let rs = Arc::new(rs);
    for _ in 0..5 {
        controller::replicaset::reconcile(rs.clone(), ctx.clone())
            .await
            .unwrap();
    }
    assert_eq!(
        live_pods(&client, "default", "app=slow").await.len(),
        4,
        "repeated syncs on a stale cache created extra pods"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncs_waiting_side_by_side_for_the_first_list_all_go_on() {
    // Right after a (re)start every ReplicaSet is synced at once, before the pod cache has
    // listed. kube-runtime's `Store::wait_until_ready` wakes only the last of concurrent
    // waiters; a sync that awaited it could hang forever, and its ReplicaSet never converge.
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let a = Arc::new(
        rs_api
            .create(&PostParams::default(), &replicaset("a", 1))
            .await
            .unwrap(),
    );
    let b = Arc::new(
        rs_api
            .create(&PostParams::default(), &replicaset("b", 1))
            .await
            .unwrap(),
    );
    let (pods, mut writer) = kube::runtime::reflector::store::<Pod>();
    let ctx = Arc::new(controller::replicaset::Context {
        client: client.clone(),
        pods,
        expectations: Default::default(),
        recorder: controller::events::Recorder::new(client.clone(), "test"),
    });
    // two tasks, as the controller's runner gives each sync its own waker
    let sa = tokio::spawn(controller::replicaset::reconcile(a, ctx.clone()));
    let sb = tokio::spawn(controller::replicaset::reconcile(b, ctx.clone()));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    writer.apply_watcher_event(&kube::runtime::watcher::Event::Init);
    writer.apply_watcher_event(&kube::runtime::watcher::Event::InitDone);
    for sync in [sa, sb] {
        tokio::time::timeout(std::time::Duration::from_secs(10), sync)
            .await
            .expect("a sync waiting for the pod cache never went on")
            .unwrap()
            .unwrap();
    }
    // and a sync on the listed (empty) cache now creates the pod
    controller::replicaset::reconcile(Arc::new(rs_api.get("a").await.unwrap()), ctx.clone())
        .await
        .unwrap();
    assert_eq!(live_pods(&client, "default", "app=a").await.len(), 1);
}
