//! The Deployment reconciler against a fake apiserver (`crate::testing`): each test fills the
//! ReplicaSet cache, runs one sync and checks every write it makes, in order.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetStatus};
use kube::runtime::controller::Action;
use kube::ResourceExt;
use serde_json::{json, Value};

use super::{history, reconcile, rolling, Context};
use crate::events::Recorder;
use crate::testing::objects::{controller_ref, deployment, DeploymentBuilder};
use crate::testing::{self, FakeApi};

const REPLICA_SETS: &str = "/apis/apps/v1/namespaces/default/replicasets";
const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/default/deployments/web";
const DEPLOYMENT_STATUS: &str = "/apis/apps/v1/namespaces/default/deployments/web/status";

/// `d`'s current template's hash.
fn hash(d: &Deployment) -> String {
    history::template_hash(&d.spec.as_ref().unwrap().template, None)
}

/// The ReplicaSet the controller made for `d`'s template as revision `revision`, scaled to
/// `replicas`, with `available` of them available and its status caught up.
fn replica_set_of(d: &Deployment, revision: i64, replicas: i32, available: i32) -> ReplicaSet {
    let (surge, _) = rolling::fenceposts(d);
    let mut rs = history::new_replica_set(d, &hash(d), replicas, revision, surge);
    rs.metadata.uid = Some(format!("uid-{}", rs.name_any()));
    rs.metadata.resource_version = Some("1".into());
    rs.metadata.generation = Some(1);
    rs.status = Some(ReplicaSetStatus {
        replicas,
        ready_replicas: Some(available),
        available_replicas: Some(available),
        observed_generation: Some(1),
        ..Default::default()
    });
    rs
}

/// A Deployment at revision `revision` (its annotation, as an earlier sync left it).
fn at_revision(d: DeploymentBuilder, revision: i64) -> Deployment {
    d.annotation(history::REVISION, &revision.to_string())
        .build()
}

/// A context over a synced ReplicaSet cache holding `sets`, and the fake apiserver behind it.
fn context(sets: Vec<ReplicaSet>) -> (Arc<Context>, FakeApi) {
    let (client, api) = testing::client();
    let ctx = Context {
        client: client.clone(),
        replica_sets: testing::store(sets),
        recorder: Recorder::new(client, "test"),
    };
    (Arc::new(ctx), api)
}

fn sync(
    d: &Deployment,
    ctx: &Arc<Context>,
) -> tokio::task::JoinHandle<Result<Action, super::Error>> {
    tokio::spawn(reconcile(Arc::new(d.clone()), ctx.clone()))
}

/// The condition of `type_` in a status patch: (status, reason).
fn condition(patch: &Value, type_: &str) -> (String, String) {
    let conditions = patch["status"]["conditions"]
        .as_array()
        .expect("conditions");
    let c = conditions
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition"));
    (
        c["status"].as_str().unwrap().into(),
        c["reason"].as_str().unwrap().into(),
    )
}

fn pair(status: &str, reason: &str) -> (String, String) {
    (status.into(), reason.into())
}

fn replica_set_path(rs: &ReplicaSet) -> String {
    format!("{REPLICA_SETS}/{}", rs.name_any())
}

#[tokio::test]
async fn creates_its_replica_set_named_by_the_pod_template_hash() {
    let d = deployment("web", 3).build();
    let (ctx, mut api) = context(vec![]);
    let synced = sync(&d, &ctx);

    let create = api.expect(Method::POST, REPLICA_SETS).await;
    let h = hash(&d);
    let meta = &create.body["metadata"];
    assert_eq!(meta["name"], format!("web-{h}"));
    assert_eq!(meta["ownerReferences"], json!([controller_ref(&d)]));
    assert_eq!(meta["annotations"][history::REVISION], "1");
    let spec = &create.body["spec"];
    assert_eq!(
        spec["selector"]["matchLabels"][history::HASH_LABEL],
        h.as_str()
    );
    assert_eq!(
        spec["template"]["metadata"]["labels"][history::HASH_LABEL],
        h.as_str()
    );
    assert_eq!(spec["replicas"], 3, "nothing to replace: all at once");
    create.created_as(&format!("web-{h}"));
    let annotate = api.expect(Method::PATCH, DEPLOYMENT).await;
    assert_eq!(
        annotate.body["metadata"]["annotations"][history::REVISION],
        "1"
    );
    annotate.patched(&d);
    let write = api.expect(Method::PATCH, DEPLOYMENT_STATUS).await;
    assert_eq!(write.body["status"]["observedGeneration"], 1);
    assert_eq!(write.body["status"]["updatedReplicas"], 0, "no pods yet");
    assert_eq!(
        condition(&write.body, "Available"),
        pair("False", "MinimumReplicasUnavailable")
    );
    assert_eq!(
        condition(&write.body, "Progressing"),
        pair("True", "ReplicaSetUpdated")
    );
    write.patched(&d);
    let done = api.finish(synced).await.unwrap();
    assert_eq!(done, Action::requeue(Duration::from_secs(300)));
    assert_eq!(
        api.event_messages(),
        [format!("Scaled up replica set web-{h} from 0 to 3")]
    );
}

#[tokio::test]
async fn a_new_template_rolls_out_within_max_surge_and_max_unavailable() {
    let old_d = at_revision(deployment("web", 10).rolling(3, 2), 1);
    let old = replica_set_of(&old_d, 1, 10, 10);
    let d = at_revision(deployment("web", 10).rolling(3, 2).image("nginx:2"), 1);
    let (ctx, mut api) = context(vec![old.clone()]);
    let synced = sync(&d, &ctx);

    // The new ReplicaSet takes the surge room: 10 + 3 pods at most.
    let create = api.expect(Method::POST, REPLICA_SETS).await;
    assert_eq!(create.body["spec"]["replicas"], 3);
    assert_eq!(
        create.body["metadata"]["annotations"][history::REVISION],
        "2"
    );
    create.created_as(&format!("web-{}", hash(&d)));
    api.expect(Method::PATCH, DEPLOYMENT).await.patched(&d);
    // The old one gives up what availability allows: 10 - 2 must stay available, and none of
    // the 3 new pods is yet.
    let scale = api.expect(Method::PATCH, &replica_set_path(&old)).await;
    assert_eq!(scale.body["spec"]["replicas"], 8);
    assert_eq!(scale.body["metadata"]["resourceVersion"], "1");
    let annotations = &scale.body["metadata"]["annotations"];
    assert_eq!(annotations[history::DESIRED_REPLICAS], "10");
    assert_eq!(annotations[history::MAX_REPLICAS], "13");
    scale.patched(&old);
    api.expect(Method::PATCH, DEPLOYMENT_STATUS)
        .await
        .patched(&d);
    api.finish(synced).await.unwrap();
    assert_eq!(
        api.event_messages()[1],
        format!("Scaled down replica set {} from 10 to 8", old.name_any())
    );
}

#[tokio::test]
async fn scales_its_replica_set_when_replicas_change() {
    let d = at_revision(deployment("web", 5), 1);
    let current = replica_set_of(&deployment("web", 3).build(), 1, 3, 3);
    let (ctx, mut api) = context(vec![current.clone()]);
    let synced = sync(&d, &ctx);
    let scale = api.expect(Method::PATCH, &replica_set_path(&current)).await;
    assert_eq!(scale.body["spec"]["replicas"], 5);
    scale.patched(&current);
    api.expect(Method::PATCH, DEPLOYMENT_STATUS)
        .await
        .patched(&d);
    api.finish(synced).await.unwrap();
    assert_eq!(api.event_reasons(), ["ScalingReplicaSet"]);
}

#[tokio::test]
async fn waits_for_replica_set_statuses_to_catch_up_before_scaling() {
    let d = at_revision(deployment("web", 5), 1);
    let mut current = replica_set_of(&deployment("web", 3).build(), 1, 3, 3);
    current.metadata.generation = Some(2);
    let (ctx, mut api) = context(vec![current]);
    let synced = sync(&d, &ctx);
    api.expect(Method::PATCH, DEPLOYMENT_STATUS)
        .await
        .patched(&d);
    let done = api.finish(synced).await.unwrap();
    assert_eq!(done, Action::requeue(Duration::from_secs(1)));
}

#[tokio::test]
async fn recreate_empties_the_old_replica_sets_before_the_new_one_grows() {
    let old_d = at_revision(deployment("db", 3).recreate(), 1);
    let old = replica_set_of(&old_d, 1, 3, 3);
    let d = at_revision(deployment("db", 3).recreate().image("nginx:2"), 1);
    let (ctx, mut api) = context(vec![old.clone()]);
    let synced = sync(&d, &ctx);
    let create = api.expect(Method::POST, REPLICA_SETS).await;
    assert_eq!(
        create.body["spec"]["replicas"], 0,
        "no new pod beside old ones"
    );
    let new = create.created_as(&format!("db-{}", hash(&d)));
    let db = "/apis/apps/v1/namespaces/default/deployments/db";
    api.expect(Method::PATCH, db).await.patched(&d);
    let empty = api.expect(Method::PATCH, &replica_set_path(&old)).await;
    assert_eq!(empty.body["spec"]["replicas"], 0);
    let emptied = empty.patched(&old);
    api.expect(Method::PATCH, &format!("{db}/status"))
        .await
        .patched(&d);
    api.finish(synced).await.unwrap();

    // Next sync: the old pods are gone, so the new ReplicaSet grows.
    let mut old: ReplicaSet = serde_json::from_value(emptied).unwrap();
    old.status = Some(ReplicaSetStatus {
        observed_generation: Some(1),
        ..Default::default()
    });
    let mut new: ReplicaSet = serde_json::from_value(new).unwrap();
    new.metadata.resource_version = Some("1".into());
    let d = at_revision(deployment("db", 3).recreate().image("nginx:2"), 2);
    let (ctx, mut api) = context(vec![old, new.clone()]);
    let synced = sync(&d, &ctx);
    let grow = api.expect(Method::PATCH, &replica_set_path(&new)).await;
    assert_eq!(grow.body["spec"]["replicas"], 3);
    grow.patched(&new);
    api.expect(Method::PATCH, &format!("{db}/status"))
        .await
        .patched(&d);
    api.finish(synced).await.unwrap();
}

#[tokio::test]
async fn a_rolled_back_template_makes_its_old_replica_set_the_newest_revision() {
    let d = at_revision(deployment("web", 3), 2);
    let first = replica_set_of(&d, 1, 0, 0);
    let second = replica_set_of(&deployment("web", 3).image("nginx:2").build(), 2, 3, 3);
    let (ctx, mut api) = context(vec![first.clone(), second]);
    let synced = sync(&d, &ctx);
    let promote = api.expect(Method::PATCH, &replica_set_path(&first)).await;
    assert_eq!(
        promote.body["metadata"]["annotations"][history::REVISION],
        "3"
    );
    let promoted = promote.patched(&first);
    let annotate = api.expect(Method::PATCH, DEPLOYMENT).await;
    assert_eq!(
        annotate.body["metadata"]["annotations"][history::REVISION],
        "3"
    );
    annotate.patched(&d);
    // And the reused ReplicaSet grows into the surge room (25% of 3, rounded up: 1).
    let grow = api.expect(Method::PATCH, &replica_set_path(&first)).await;
    assert_eq!(grow.body["spec"]["replicas"], 1);
    grow.patched(&promoted);
    api.expect(Method::PATCH, DEPLOYMENT_STATUS)
        .await
        .patched(&d);
    api.finish(synced).await.unwrap();
}

#[tokio::test]
async fn deletes_empty_old_replica_sets_beyond_the_revision_history_limit() {
    let d = at_revision(deployment("web", 3).history_limit(1), 3);
    let first = replica_set_of(&deployment("web", 3).image("nginx:0").build(), 1, 0, 0);
    let second = replica_set_of(&deployment("web", 3).image("nginx:2").build(), 2, 0, 0);
    let current = replica_set_of(&d, 3, 3, 3);
    let (ctx, mut api) = context(vec![second, current, first.clone()]);
    let synced = sync(&d, &ctx);
    api.expect(Method::DELETE, &replica_set_path(&first))
        .await
        .ok(&first);
    api.expect(Method::PATCH, DEPLOYMENT_STATUS)
        .await
        .patched(&d);
    api.finish(synced).await.unwrap();
}

#[tokio::test]
async fn a_complete_rollout_reports_its_counts_and_conditions() {
    let d = at_revision(deployment("web", 3), 1);
    let current = replica_set_of(&d, 1, 3, 3);
    let (ctx, mut api) = context(vec![current.clone()]);
    let synced = sync(&d, &ctx);
    let write = api.expect(Method::PATCH, DEPLOYMENT_STATUS).await;
    let status = &write.body["status"];
    for field in [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
    ] {
        assert_eq!(status[field], 3, "{field}");
    }
    assert_eq!(status["unavailableReplicas"], 0);
    assert_eq!(
        condition(&write.body, "Available"),
        pair("True", "MinimumReplicasAvailable")
    );
    assert_eq!(
        condition(&write.body, "Progressing"),
        pair("True", "NewReplicaSetAvailable")
    );
    let written = write.patched(&d);
    let done = api.finish(synced).await.unwrap();
    assert_eq!(done, Action::requeue(Duration::from_secs(300)));

    // Nothing changed since: nothing to write.
    let d: Deployment = serde_json::from_value(written).unwrap();
    api.finish(sync(&d, &ctx)).await.unwrap();
}

#[tokio::test]
async fn a_paused_deployment_makes_no_new_replica_set() {
    let old = replica_set_of(&deployment("web", 2).build(), 1, 2, 2);
    let d = at_revision(deployment("web", 2).image("nginx:2").paused(), 1);
    let (ctx, mut api) = context(vec![old]);
    let synced = sync(&d, &ctx);
    let write = api.expect(Method::PATCH, DEPLOYMENT_STATUS).await;
    assert_eq!(write.body["status"]["updatedReplicas"], 0);
    assert_eq!(
        condition(&write.body, "Progressing"),
        pair("Unknown", "DeploymentPaused")
    );
    write.patched(&d);
    api.finish(synced).await.unwrap();
}

#[tokio::test]
async fn a_rollout_that_stops_moving_exceeds_its_progress_deadline() {
    let mut d = at_revision(deployment("web", 2).progress_deadline(2), 1);
    let current = replica_set_of(&d, 1, 2, 0);
    let long_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60);
    let progressing = json!({"conditions": [{
        "type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
        "lastUpdateTime": long_ago, "lastTransitionTime": long_ago,
    }]});
    let mut status: k8s_openapi::api::apps::v1::DeploymentStatus =
        serde_json::from_value(progressing).unwrap();
    status.replicas = Some(2);
    status.updated_replicas = Some(2);
    status.ready_replicas = Some(0);
    status.available_replicas = Some(0);
    d.status = Some(status);
    let (ctx, mut api) = context(vec![current]);
    let synced = sync(&d, &ctx);
    let write = api.expect(Method::PATCH, DEPLOYMENT_STATUS).await;
    assert_eq!(
        condition(&write.body, "Progressing"),
        pair("False", "ProgressDeadlineExceeded")
    );
    write.patched(&d);
    api.finish(synced).await.unwrap();
}
