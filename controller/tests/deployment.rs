//! The Deployment controller against a real apiserver and the real kubectl: a rolling update
//! that never breaks its surge/unavailability bounds, `kubectl rollout status`, `undo`,
//! `restart`, and the Recreate strategy.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::ResourceExt;
use serde_json::json;

fn deployment(name: &str, replicas: i32, image: &str, strategy: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "strategy": strategy,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    }))
    .unwrap()
}

/// Plays the kubelet: every pod that is not Ready becomes Ready shortly after it appears.
fn readiness_helper(client: kube::Client) -> Task {
    Task(tokio::spawn(async move {
        loop {
            for p in live_pods(&client, "default", "")
                .await
                .into_iter()
                .filter(|p| !is_ready(p))
            {
                mark_ready(&client, &p).await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }))
}

fn image_of(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap()
}

async fn wait_complete(client: &kube::Client, name: &str, replicas: i32, image: &str) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    wait_for(90, &format!("{name} rolled out to {image}"), || async {
        let d = api.get(name).await.unwrap();
        let s = d.status.clone().unwrap_or_default();
        let pods = live_pods(client, "default", &format!("app={name}")).await;
        let on_image = pods
            .iter()
            .filter(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some(image))
            .count();
        (s.observed_generation == d.metadata.generation
            && s.updated_replicas == Some(replicas)
            && s.replicas == Some(replicas)
            && s.available_replicas == Some(replicas)
            && pods.len() == replicas as usize
            && on_image == replicas as usize)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_respects_surge_and_unavailability_and_kubectl_rollout_works() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let _ctrl = cluster.start_controllers(fast_config());
    let _kubelet = readiness_helper(client.clone());
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let rolling =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}});
    api.create(
        &PostParams::default(),
        &deployment("web", 10, "nginx:1", rolling),
    )
    .await
    .unwrap();
    wait_complete(&client, "web", 10, "nginx:1").await;
    let (ok, out) = cluster
        .kubectl_text(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    assert!(ok && out.contains("successfully rolled out"), "{out}");
    let first_rs: Vec<String> = Api::<ReplicaSet>::namespaced(client.clone(), "default")
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|r| r.name_any())
        .collect();
    assert_eq!(first_rs.len(), 1);
    let d = api.get("web").await.unwrap();
    assert_eq!(
        d.annotations()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("1")
    );
    let hash = first_rs[0].strip_prefix("web-").unwrap().to_string();

    // Watch every pod event from here on; track the worst total and the worst readiness.
    let seen: Arc<Mutex<(usize, usize)>> = Arc::new(Mutex::new((0, usize::MAX)));
    let seen2 = seen.clone();
    let (reader, writer) = kube::runtime::reflector::store::<Pod>();
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let _observer = Task(tokio::spawn(async move {
        let mut ready_tx = Some(ready_tx);
        let mut stream =
            kube::runtime::reflector(writer, watcher(pods_api, watcher::Config::default())).boxed();
        while let Some(ev) = stream.next().await {
            if matches!(ev, Ok(watcher::Event::InitDone)) {
                if let Some(t) = ready_tx.take() {
                    let _ = t.send(());
                }
            }
            if ready_tx.is_some() {
                continue;
            }
            let pods: Vec<_> = reader
                .state()
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            let ready = pods.iter().filter(|p| is_ready(p)).count();
            let mut s = seen2.lock().unwrap();
            s.0 = s.0.max(pods.len());
            s.1 = s.1.min(ready);
        }
    }));
    ready_rx.await.unwrap();

    // Roll to a new image.
    api.patch("web", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}})))
        .await
        .unwrap();
    let (ok, out) = cluster
        .kubectl_text(&["rollout", "status", "deployment/web", "--timeout=90s"])
        .await;
    assert!(ok && out.contains("successfully rolled out"), "{out}");
    wait_complete(&client, "web", 10, "nginx:2").await;
    let (max_total, min_ready) = *seen.lock().unwrap();
    assert!(
        max_total <= 13,
        "more than replicas + maxSurge pods existed: {max_total}"
    );
    assert!(
        min_ready >= 8,
        "fewer than replicas - maxUnavailable pods were ready: {min_ready}"
    );
    assert!(
        max_total > 10,
        "the rollout never surged (the observer missed it?)"
    );

    let d = api.get("web").await.unwrap();
    assert_eq!(
        d.annotations()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("2")
    );
    let conds: BTreeMap<String, (String, String)> = d
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .map(|c| (c.type_, (c.status, c.reason.unwrap_or_default())))
        .collect();
    assert_eq!(
        conds["Available"],
        ("True".to_string(), "MinimumReplicasAvailable".to_string())
    );
    assert_eq!(
        conds["Progressing"],
        ("True".to_string(), "NewReplicaSetAvailable".to_string())
    );
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let notes: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("ScalingReplicaSet"))
        .filter_map(|e| e.message)
        .collect();
    assert!(
        notes
            .iter()
            .any(|m| m.starts_with(&format!("Scaled down replica set web-{hash} from 10 to"))),
        "{notes:?}"
    );

    // kubectl rollout undo copies the old template back: the old ReplicaSet comes back as revision 3.
    let (ok, out) = cluster
        .kubectl_text(&["rollout", "undo", "deployment/web"])
        .await;
    assert!(ok, "{out}");
    wait_complete(&client, "web", 10, "nginx:1").await;
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let old = rs_api.get(&first_rs[0]).await.unwrap();
    assert_eq!(
        old.spec.unwrap().replicas,
        Some(10),
        "the original ReplicaSet was reused"
    );
    assert_eq!(
        old.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
        "3"
    );
    assert_eq!(
        rs_api.list(&Default::default()).await.unwrap().items.len(),
        2
    );
    let d = api.get("web").await.unwrap();
    assert_eq!(image_of(&d), "nginx:1");
    let (ok, out) = cluster
        .kubectl_text(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    assert!(ok, "{out}");

    // kubectl rollout restart changes a template annotation: a third ReplicaSet.
    let (ok, out) = cluster
        .kubectl_text(&["rollout", "restart", "deployment/web"])
        .await;
    assert!(ok, "{out}");
    wait_for(90, "a restarted rollout", || async {
        let sets = rs_api.list(&Default::default()).await.unwrap().items;
        let d = api.get("web").await.unwrap();
        let s = d.status.clone().unwrap_or_default();
        (sets.len() == 3
            && s.updated_replicas == Some(10)
            && s.replicas == Some(10)
            && s.available_replicas == Some(10)
            && s.observed_generation == d.metadata.generation)
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_empties_old_pods_first_and_history_is_limited() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let _ctrl = cluster.start_controllers(fast_config());
    let _kubelet = readiness_helper(client.clone());
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let mut d = deployment("db", 3, "postgres:1", json!({"type": "Recreate"}));
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    api.create(&PostParams::default(), &d).await.unwrap();
    wait_complete(&client, "db", 3, "postgres:1").await;
    for v in 2..=3 {
        let image = format!("postgres:{v}");
        api.patch("db", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}})))
            .await
            .unwrap();
        // Never old and new pods at once.
        wait_for(60, "recreate", || async {
            let pods = live_pods(&client, "default", "app=db").await;
            let images: std::collections::HashSet<_> = pods
                .iter()
                .map(|p| p.spec.as_ref().unwrap().containers[0].image.clone())
                .collect();
            assert!(images.len() <= 1, "old and new pods together: {images:?}");
            (pods.len() == 3 && images.contains(&Some(image.clone()))).then_some(())
        })
        .await;
        wait_complete(&client, "db", 3, &image).await;
    }
    // revisionHistoryLimit 1: the current ReplicaSet and one old one.
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    wait_for(30, "old replicasets cleaned up", || async {
        (rs_api.list(&Default::default()).await.unwrap().items.len() == 2).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_a_rollout_and_a_stuck_rollout_exceeds_its_deadline() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let _ctrl = cluster.start_controllers(fast_config());
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let rolling = json!({"type": "RollingUpdate"});
    let mut d = deployment("web", 2, "nginx:1", rolling);
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(2);
    api.create(&PostParams::default(), &d).await.unwrap();
    {
        let _kubelet = readiness_helper(client.clone());
        wait_complete(&client, "web", 2, "nginx:1").await;
    }

    // Paused: a template change makes no new ReplicaSet.
    let (ok, out) = cluster
        .kubectl_text(&["rollout", "pause", "deployment/web"])
        .await;
    assert!(ok, "{out}");
    let (ok, out) = cluster
        .kubectl_text(&["set", "image", "deployment/web", "c=nginx:2"])
        .await;
    assert!(ok, "{out}");
    wait_for(30, "the paused change observed", || async {
        let d = api.get("web").await.unwrap();
        let s = d.status.clone().unwrap_or_default();
        let paused =
            s.conditions.unwrap_or_default().iter().any(|c| {
                c.type_ == "Progressing" && c.reason.as_deref() == Some("DeploymentPaused")
            });
        (s.observed_generation == d.metadata.generation && paused).then_some(())
    })
    .await;
    assert_eq!(
        rs_api.list(&Default::default()).await.unwrap().items.len(),
        1,
        "a paused deployment rolled out"
    );

    // Resumed with no pod ever becoming ready: the rollout stalls past its 2 s deadline.
    let (ok, out) = cluster
        .kubectl_text(&["rollout", "resume", "deployment/web"])
        .await;
    assert!(ok, "{out}");
    wait_for(30, "ProgressDeadlineExceeded", || async {
        let s = api.get("web").await.unwrap().status.unwrap_or_default();
        s.conditions
            .unwrap_or_default()
            .iter()
            .any(|c| {
                c.type_ == "Progressing"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
            })
            .then_some(())
    })
    .await;
    assert_eq!(
        rs_api.list(&Default::default()).await.unwrap().items.len(),
        2
    );
    let (ok, out) = cluster
        .kubectl_text(&["rollout", "status", "deployment/web", "--timeout=30s"])
        .await;
    assert!(
        !ok && out.contains("exceeded its progress deadline"),
        "{out}"
    );
}
