//! The ReplicaSet reconciler against a fake apiserver (`crate::testing`): each test fills the
//! pod cache, runs one sync and checks every write it makes, in order.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::controller::Action;
use serde_json::json;

use super::{error_policy, reconcile, status, Context};
use crate::conflict::{self, MaybeConflict};
use crate::events::Recorder;
use crate::testing::objects::{controller_ref, pod, replica_set};
use crate::testing::{self, FakeApi};

const PODS: &str = "/api/v1/namespaces/default/pods";

fn status_path(rs: &ReplicaSet) -> String {
    let name = rs.metadata.name.as_deref().unwrap_or_default();
    format!("/apis/apps/v1/namespaces/default/replicasets/{name}/status")
}

/// A context over a synced pod cache holding `pods`, and the fake apiserver behind it.
fn context(pods: Vec<Pod>) -> (Arc<Context>, FakeApi) {
    let (client, api) = testing::client();
    let ctx = Context {
        client: client.clone(),
        pods: testing::store(pods),
        expectations: Default::default(),
        recorder: Recorder::new(client, "test"),
    };
    (Arc::new(ctx), api)
}

/// Run one sync in a task, as the controller's runner does.
fn sync(
    rs: &ReplicaSet,
    ctx: &Arc<Context>,
) -> tokio::task::JoinHandle<Result<Action, super::Error>> {
    tokio::spawn(reconcile(Arc::new(rs.clone()), ctx.clone()))
}

#[tokio::test]
async fn creates_the_missing_pods_from_its_template_as_its_own() {
    let rs = replica_set("web", 3).build();
    let (ctx, mut api) = context(vec![]);
    let synced = sync(&rs, &ctx);
    for name in ["web-a", "web-b", "web-c"] {
        let create = api.expect(Method::POST, PODS).await;
        assert_eq!(create.body["metadata"]["generateName"], "web-");
        assert_eq!(create.body["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(
            create.body["metadata"]["ownerReferences"],
            json!([controller_ref(&rs)])
        );
        assert_eq!(create.body["spec"]["containers"][0]["image"], "nginx:1");
        create.created_as(name);
    }
    // The new pods are not in the cache yet, so the status counts none of them; but this sync
    // acted on the spec, so it has observed generation 1.
    let write = api.expect(Method::PATCH, &status_path(&rs)).await;
    assert_eq!(write.body["status"]["replicas"], 0);
    assert_eq!(write.body["status"]["observedGeneration"], 1);
    write.patched(&rs);
    let done = api.finish(synced).await.unwrap();
    assert_eq!(done, Action::requeue(Duration::from_secs(300)));
    assert_eq!(api.event_reasons(), ["SuccessfulCreate"]);
    assert_eq!(
        api.event_messages(),
        ["Created 3 pod(s) for replicaset web"]
    );
}

#[tokio::test]
async fn a_sync_before_the_cache_shows_its_new_pods_creates_no_more() {
    let rs = replica_set("web", 2).build();
    let (ctx, mut api) = context(vec![]);
    let first = sync(&rs, &ctx);
    for name in ["web-a", "web-b"] {
        api.expect(Method::POST, PODS).await.created_as(name);
    }
    let written = api
        .expect(Method::PATCH, &status_path(&rs))
        .await
        .patched(&rs);
    api.finish(first).await.unwrap();

    // The cache still shows no pods: the expectations hold the sync back, and the status it
    // computes is the one already written.
    let rs: ReplicaSet = serde_json::from_value(written).unwrap();
    let second = api.finish(sync(&rs, &ctx)).await.unwrap();
    assert_eq!(second, Action::requeue(Duration::from_secs(1)));
}

#[tokio::test]
async fn deletes_the_surplus_least_valuable_pods_first() {
    let rs = replica_set("web", 2).build();
    let owned = |name: &str, created: i64| pod(name).owned_by(&rs).created_at(created);
    let pods = vec![
        owned("old-ready", 1)
            .running_on("n")
            .ready_since(100)
            .build(),
        owned("older-ready", 0)
            .running_on("n")
            .ready_since(100)
            .build(),
        owned("not-ready", 3).running_on("n").build(),
        owned("unscheduled", 4).build(),
        owned("ready-lately", 5)
            .running_on("n")
            .ready_since(200)
            .build(),
    ];
    let (ctx, mut api) = context(pods);
    let synced = sync(&rs, &ctx);
    let mut deleted = BTreeSet::new();
    for _ in 0..3 {
        let delete = api.next().await;
        assert_eq!(delete.method, Method::DELETE);
        let name = delete
            .path
            .strip_prefix(&format!("{PODS}/"))
            .unwrap()
            .to_string();
        delete.ok(&pod(&name).build());
        deleted.insert(name);
    }
    assert_eq!(
        deleted,
        BTreeSet::from(["not-ready", "unscheduled", "ready-lately"].map(String::from)),
        "unscheduled, then not ready, then ready for the shortest time go first"
    );
    // The status counts only the pods left.
    let write = api.expect(Method::PATCH, &status_path(&rs)).await;
    assert_eq!(write.body["status"]["replicas"], 2);
    assert_eq!(write.body["status"]["readyReplicas"], 2);
    write.patched(&rs);
    api.finish(synced).await.unwrap();
    assert_eq!(api.event_reasons(), ["SuccessfulDelete"; 3]);
}

#[tokio::test]
async fn adopts_matching_orphans_and_releases_pods_that_stop_matching() {
    let rs = replica_set("web", 2).build();
    let pods = vec![
        pod("kept").owned_by(&rs).build(),
        pod("orphan").build(),
        pod("relabelled")
            .owned_by(&rs)
            .labels(&[("app", "other")])
            .build(),
        pod("stranger").labels(&[("app", "other")]).build(),
    ];
    let (ctx, mut api) = context(pods.clone());
    let synced = sync(&rs, &ctx);
    // The cache's order decides which comes first.
    for _ in 0..2 {
        let claim = api.next().await;
        assert_eq!(claim.method, Method::PATCH);
        let refs = claim.body["metadata"]["ownerReferences"].clone();
        assert_eq!(
            claim.body["metadata"]["resourceVersion"], "1",
            "a racing claim must fail"
        );
        match claim.path.strip_prefix(&format!("{PODS}/")).unwrap() {
            "orphan" => assert_eq!(refs, json!([controller_ref(&rs)])),
            "relabelled" => assert_eq!(refs, json!([])),
            other => panic!("claimed {other}"),
        }
        claim.patched(&pods[1]);
    }
    // Two pods now: no create, no delete.
    let write = api.expect(Method::PATCH, &status_path(&rs)).await;
    assert_eq!(write.body["status"]["replicas"], 2);
    write.patched(&rs);
    api.finish(synced).await.unwrap();
}

#[tokio::test]
async fn a_claim_refused_as_stale_is_retried_at_once() {
    let rs = replica_set("web", 1).build();
    let (ctx, mut api) = context(vec![pod("orphan").build()]);
    let synced = sync(&rs, &ctx);
    api.expect(Method::PATCH, &format!("{PODS}/orphan"))
        .await
        .fail(409, "Conflict");
    let err = api.finish(synced).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    let retry = error_policy(Arc::new(rs), &err, ctx);
    assert_eq!(retry, Action::requeue(conflict::REQUEUE));
}

#[test]
fn status_counts_ready_available_and_fully_labelled_pods() {
    let mut rs = replica_set("web", 4)
        .min_ready_seconds(10)
        .generation(2)
        .status(ReplicaSetStatus {
            observed_generation: Some(1),
            ..Default::default()
        })
        .build();
    let labels = rs.spec.as_mut().unwrap().template.as_mut().unwrap();
    let labels = labels.metadata.as_mut().unwrap().labels.as_mut().unwrap();
    labels.insert("tier".into(), "front".into());
    let active: Vec<Arc<Pod>> = [
        pod("available")
            .labels(&[("app", "web"), ("tier", "front")])
            .ready_since(50),
        pod("ready").ready_since(100),
        pod("starting"),
    ]
    .map(|p| Arc::new(p.build()))
    .into();
    let now = jiff::Timestamp::from_second(105).unwrap();

    let s = status(&rs, &active, true, now);
    assert_eq!(s.replicas, 3);
    assert_eq!(s.fully_labeled_replicas, Some(1));
    assert_eq!(s.ready_replicas, Some(2));
    assert_eq!(
        s.available_replicas,
        Some(1),
        "ready for 5 of 10 s is not available"
    );
    assert_eq!(s.observed_generation, Some(2));
    assert_eq!(
        status(&rs, &active, false, now).observed_generation,
        Some(1),
        "a sync held back by its expectations has not observed the spec"
    );
}

#[tokio::test]
async fn comes_back_when_a_ready_pod_becomes_available() {
    let rs = replica_set("web", 1).min_ready_seconds(3600).build();
    let now = jiff::Timestamp::now().as_second();
    let ready = pod("web-a").owned_by(&rs).ready_since(now).build();
    let (ctx, mut api) = context(vec![ready]);
    let synced = sync(&rs, &ctx);
    let write = api.expect(Method::PATCH, &status_path(&rs)).await;
    assert_eq!(write.body["status"]["availableReplicas"], 0);
    write.patched(&rs);
    let done = api.finish(synced).await.unwrap();
    // Available an hour after it became ready (a second later if the clock ticked meanwhile).
    let in_an_hour = [3600, 3601].map(|s| Action::requeue(Duration::from_secs(s)));
    assert!(in_an_hour.contains(&done), "{done:?}");
}
