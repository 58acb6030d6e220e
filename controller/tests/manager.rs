//! The controller manager as a whole: a restart in the middle of a rollout converges without
//! extra pods, and of two leader-elected managers only one ever acts.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use client::leader::LeaderConfig;
use common::*;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": 0}},
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}},
        },
    }))
    .unwrap()
}

/// Track the most pods that ever existed at once in `default`.
fn max_pods_observer(client: kube::Client) -> (Task, Arc<Mutex<usize>>) {
    let max = Arc::new(Mutex::new(0));
    let m = max.clone();
    let task = Task(tokio::spawn(async move {
        let (reader, writer) = kube::runtime::reflector::store::<Pod>();
        let mut stream = kube::runtime::reflector(
            writer,
            watcher(
                Api::<Pod>::namespaced(client, "default"),
                watcher::Config::default(),
            ),
        )
        .boxed();
        while stream.next().await.is_some() {
            let n = reader
                .state()
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .count();
            let mut m = m.lock().unwrap();
            *m = (*m).max(n);
        }
    }));
    (task, max)
}

async fn mark_all_ready(client: &kube::Client) {
    for p in live_pods(client, "default", "")
        .await
        .into_iter()
        .filter(|p| !is_ready(p))
    {
        mark_ready(client, &p).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_restarted_mid_rollout_converges_without_extra_pods() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let (_obs, max) = max_pods_observer(client.clone());
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let ctrl = cluster.start_controllers(fast_config());
    api.create(&PostParams::default(), &deployment("web", 6))
        .await
        .unwrap();
    wait_for(60, "6 ready pods", || async {
        mark_all_ready(&client).await;
        let s = api.get("web").await.unwrap().status.unwrap_or_default();
        (s.available_replicas == Some(6)).then_some(())
    })
    .await;

    // Start a rollout, let it take one step (surge 2, pods not ready), then kill the manager.
    api.patch("web", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}})))
        .await
        .unwrap();
    wait_for(30, "the rollout to surge", || async {
        (live_pods(&client, "default", "app=web").await.len() == 8).then_some(())
    })
    .await;
    drop(ctrl);
    // While no controller runs, the surge pods become ready.
    mark_all_ready(&client).await;
    let _ctrl = cluster.start_controllers(fast_config());
    wait_for(90, "the rollout to finish after the restart", || async {
        mark_all_ready(&client).await;
        let d = api.get("web").await.unwrap();
        let s = d.status.clone().unwrap_or_default();
        let pods = live_pods(&client, "default", "app=web").await;
        (s.observed_generation == d.metadata.generation
            && s.updated_replicas == Some(6)
            && s.replicas == Some(6)
            && s.available_replicas == Some(6)
            && pods.len() == 6)
            .then_some(())
    })
    .await;
    assert!(
        *max.lock().unwrap() <= 8,
        "more than replicas + maxSurge pods: {}",
        max.lock().unwrap()
    );
    assert_eq!(
        rs_api.list(&Default::default()).await.unwrap().items.len(),
        2,
        "the restart made no extra ReplicaSet"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_leader_elected_managers_never_act_together() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let acting = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let start = |identity: &str| {
        let mut lc = LeaderConfig::new("minik8s-controller", identity);
        lc.lease_duration = Duration::from_secs(2);
        lc.renew_deadline = Duration::from_millis(1500);
        lc.retry_period = Duration::from_millis(300);
        let (client, acting, most) = (cluster.client(), acting.clone(), most.clone());
        Task(tokio::spawn(async move {
            let _ = client::leader::run_as_leader(client.clone(), lc, || async move {
                // Count the managers acting at once.
                struct Acting(Arc<AtomicUsize>);
                impl Drop for Acting {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, Ordering::SeqCst);
                    }
                }
                let now = acting.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                let _guard = Acting(acting);
                controller::manager::run(client, fast_config()).await;
                Ok(())
            })
            .await;
        }))
    };
    let a = start("a");
    let b = start("b");
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
    }))
    .unwrap();
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    rs_api.create(&PostParams::default(), &rs).await.unwrap();
    wait_for(30, "3 pods", || async {
        (live_pods(&client, "default", "app=web").await.len() == 3).then_some(())
    })
    .await;
    assert_eq!(acting.load(Ordering::SeqCst), 1);

    // The leader dies; the other takes over after the lease expires and acts.
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), "kube-system");
    let holder = leases
        .get("minik8s-controller")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .unwrap();
    let survivor = if holder == "a" {
        drop(a);
        b
    } else {
        drop(b);
        a
    };
    rs_api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    wait_for(60, "the new leader to scale up", || async {
        (live_pods(&client, "default", "app=web").await.len() == 5).then_some(())
    })
    .await;
    assert_eq!(
        most.load(Ordering::SeqCst),
        1,
        "two managers acted at the same time"
    );
    assert_ne!(
        leases
            .get("minik8s-controller")
            .await
            .unwrap()
            .spec
            .unwrap()
            .holder_identity
            .unwrap(),
        holder
    );
    drop(survivor);
}
