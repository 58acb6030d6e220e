//! The ReplicaSet controller: keep `spec.replicas` pods matching the selector alive.
//!
//! Each sync counts the active pods the ReplicaSet controls (adopting matching orphans,
//! releasing pods whose labels stopped matching), creates pods from `spec.template` or deletes
//! the least valuable ones (see `pod::deletion_order`), and writes `status`. Writes in flight are
//! tracked in `expectations.rs` so a slow watch never leads to extra pods. Read next:
//! `deployment/`, which drives ReplicaSets.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, instrument, warn};

use crate::cache;
use crate::conflict::{self, MaybeConflict};
use crate::events::Recorder;
use crate::expectations::Expectations;
use crate::pod::{self, controller_of, selector_matches};

/// Most pods created or deleted in one sync (upstream `burstReplicas`).
const BURST_REPLICAS: usize = 500;

/// What can fail while syncing a ReplicaSet.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Creating a pod from the template failed.
    #[error("creating a pod for replicaset {rs}: {source}")]
    CreatePod {
        rs: String,
        #[source]
        source: kube::Error,
    },
    /// Deleting a surplus pod failed.
    #[error("deleting pod {pod}: {source}")]
    DeletePod {
        pod: String,
        #[source]
        source: kube::Error,
    },
    /// Adopting or releasing a pod (ownerReferences patch) failed.
    #[error("updating the ownerReferences of pod {pod}: {source}")]
    ClaimPod {
        pod: String,
        #[source]
        source: kube::Error,
    },
    /// Writing `status` failed.
    #[error("updating the status of replicaset {rs}: {source}")]
    UpdateStatus {
        rs: String,
        #[source]
        source: kube::Error,
    },
}

/// Shared by every sync.
pub struct Context {
    pub client: kube::Client,
    /// All pods, from the watch.
    pub pods: Store<Pod>,
    pub expectations: Expectations,
    pub recorder: Recorder,
}

fn key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

/// Run the ReplicaSet controller until the future is dropped.
pub async fn run(client: kube::Client) {
    let (pods, writer) = reflector::store::<Pod>();
    let expectations = Expectations::default();
    let lost = expectations.clone();
    // The pod cache is updated before the controller is triggered, so a sync woken by a pod
    // event always sees that event. A pod deleted before we ever saw it ends its expectation.
    let pod_events = reflector::reflector(writer, cache::watch(Api::<Pod>::all(client.clone())))
        .inspect(move |ev| {
            if let Ok(watcher::Event::Delete(p)) = ev {
                if let Some(owner) = controller_of(&p.metadata) {
                    lost.creation_observed(
                        &key(&p.namespace().unwrap_or_default(), &owner.name),
                        &p.name_any(),
                    );
                }
            }
        })
        .touched_objects();
    let controller = cache::controller(Api::<ReplicaSet>::all(client.clone()));
    let sets = controller.store();
    let ctx = Arc::new(Context {
        client: client.clone(),
        pods,
        expectations,
        recorder: Recorder::new(client, "replicaset-controller"),
    });
    controller
        .watches_stream(pod_events, move |p: Pod| owners_to_sync(&p, &sets))
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// Which ReplicaSets care about a pod: its controller, or (for an orphan) every ReplicaSet in
/// its namespace whose selector matches it, which may adopt it.
fn owners_to_sync(p: &Pod, sets: &Store<ReplicaSet>) -> Vec<ObjectRef<ReplicaSet>> {
    let ns = p.namespace().unwrap_or_default();
    if let Some(owner) = controller_of(&p.metadata) {
        return if owner.kind == "ReplicaSet" {
            vec![ObjectRef::new(&owner.name).within(&ns)]
        } else {
            vec![]
        };
    }
    sets.state()
        .iter()
        .filter(|rs| rs.namespace().as_deref() == Some(&ns))
        .filter(|rs| {
            rs.spec.as_ref().is_some_and(|s| {
                !pod::selector_is_empty(&s.selector) && selector_matches(&s.selector, p.labels())
            })
        })
        .map(|rs| ObjectRef::from_obj(rs.as_ref()))
        .collect()
}

/// Requeue after a failure: at once after a conflict (a pod changed since our cache saw it;
/// the next sync sees the change), else with a short delay.
pub fn error_policy(rs: Arc<ReplicaSet>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!(replicaset = %rs.name_any(), error = %err, "sync failed; retrying");
    if err.is_conflict() {
        return Action::requeue(conflict::REQUEUE);
    }
    Action::requeue(Duration::from_secs(2))
}

impl MaybeConflict for Error {
    fn is_conflict(&self) -> bool {
        matches!(self, Error::ClaimPod { source, .. } if conflict::is_conflict(source))
    }
}

/// The ownerReference a controller puts on what it creates.
pub fn owner_reference<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into(),
        kind: K::kind(&()).into(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// One sync of one ReplicaSet:
/// 1. wait for a synced pod cache and for the writes of earlier syncs to show in it;
/// 2. claim the pods: adopt matching orphans, release owned pods that stopped matching;
/// 3. create or delete pods toward `spec.replicas`;
/// 4. write the status, and come back when a ready pod becomes available.
#[instrument(skip_all, fields(replicaset = %format!("{}/{}", rs.namespace().unwrap_or_default(), rs.name_any())))]
pub async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Context>) -> Result<Action, Error> {
    let Some(spec) = rs.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    // Never act on a half-filled cache: right after a (re)start an empty pod cache would read
    // as "no replicas" and we would create a whole second set.
    if !crate::cache::has_synced(&ctx.pods) {
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let ns = rs.namespace().unwrap_or_default();
    let all: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(&ns))
        .collect();
    let may_sync = expectations_met(&ctx, &rs, &all);
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let owned = claim_pods(&ctx, &rs, &all).await?;
    let mut active: Vec<Arc<Pod>> = owned.into_iter().filter(|p| pod::is_active(p)).collect();
    if may_sync && !deleting {
        let want = spec.replicas.unwrap_or(1).max(0) as usize;
        active = scale(&ctx, &rs, active, want).await?;
    }
    let now = jiff::Timestamp::now();
    // Only a sync that could act has observed the spec: a Deployment reads a current
    // observedGeneration as "the pods match spec.replicas" and fills the surge room by it.
    let status = status(&rs, &active, may_sync || deleting, now);
    tracing::debug!(active = active.len(), ready = ?status.ready_replicas, may_sync, "synced");
    write_status(&ctx, &rs, &status).await?;
    // Wake up when a ready pod becomes available, or when expectations may have been met.
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let next = active
        .iter()
        .filter_map(|p| pod::seconds_until_available(p, min_ready, now))
        .min();
    Ok(match (may_sync, next) {
        (false, _) => Action::requeue(Duration::from_secs(1)),
        (_, Some(s)) => Action::requeue(Duration::from_secs(s as u64 + 1)),
        _ => Action::requeue(Duration::from_secs(300)),
    })
}

/// Step 1: does the cache (`all`, the namespace's pods) show every pod this controller
/// created for `rs` and none it deleted? Until it does, the ReplicaSet is not scaled.
fn expectations_met(ctx: &Context, rs: &ReplicaSet, all: &[Arc<Pod>]) -> bool {
    ctx.expectations.satisfied(
        &key(&rs.namespace().unwrap_or_default(), &rs.name_any()),
        |n| all.iter().any(|p| p.name_any() == n),
        |u| {
            all.iter()
                .any(|p| p.uid().as_deref() == Some(u) && p.metadata.deletion_timestamp.is_none())
        },
    )
}

/// Step 2: the pods `rs` controls and whose labels match its selector. Matching orphans are
/// adopted (unless `rs` is being deleted), owned pods that stopped matching are released.
async fn claim_pods(
    ctx: &Context,
    rs: &ReplicaSet,
    all: &[Arc<Pod>],
) -> Result<Vec<Arc<Pod>>, Error> {
    let Some(spec) = rs.spec.as_ref() else {
        return Ok(vec![]);
    };
    let uid = rs.uid().unwrap_or_default();
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let mut owned: Vec<Arc<Pod>> = Vec::new();
    for p in all {
        let matches =
            !pod::selector_is_empty(&spec.selector) && selector_matches(&spec.selector, p.labels());
        match controller_of(&p.metadata) {
            Some(r) if r.uid == uid => {
                if matches {
                    owned.push(p.clone());
                } else if p.metadata.deletion_timestamp.is_none() {
                    release(&ctx.client, p, &uid).await?;
                }
            }
            None if matches && !deleting && p.metadata.deletion_timestamp.is_none() => {
                adopt(&ctx.client, p, rs).await?;
                owned.push(p.clone());
            }
            _ => {}
        }
    }
    Ok(owned)
}

/// Step 3: create the missing pods or delete the surplus; returns the active pods left. The
/// status must not count the pods just deleted: a Deployment reads it to decide how many more
/// old pods it may take down.
async fn scale(
    ctx: &Context,
    rs: &ReplicaSet,
    mut active: Vec<Arc<Pod>>,
    want: usize,
) -> Result<Vec<Arc<Pod>>, Error> {
    if active.len() < want {
        create_pods(rs, ctx, want - active.len()).await?;
    } else if active.len() > want {
        let gone = delete_pods(rs, ctx, active.clone(), active.len() - want).await?;
        active.retain(|p| !gone.contains(&p.uid().unwrap_or_default()));
    }
    Ok(active)
}

/// Step 4: the status from the active pods. `observed` says this sync acted on the current
/// spec, so `observedGeneration` moves up to `metadata.generation`.
pub fn status(
    rs: &ReplicaSet,
    active: &[Arc<Pod>],
    observed: bool,
    now: jiff::Timestamp,
) -> ReplicaSetStatus {
    let spec = rs.spec.clone().unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let template_labels = spec
        .template
        .and_then(|t| t.metadata)
        .and_then(|m| m.labels)
        .unwrap_or_default();
    let count = |f: &dyn Fn(&Pod) -> bool| active.iter().filter(|p| f(p)).count() as i32;
    ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(count(&|p| {
            template_labels
                .iter()
                .all(|(k, v)| p.labels().get(k) == Some(v))
        })),
        ready_replicas: Some(count(&pod::is_ready)),
        available_replicas: Some(count(&|p| pod::is_available(p, min_ready, now))),
        observed_generation: if observed {
            rs.metadata.generation
        } else {
            rs.status.as_ref().and_then(|s| s.observed_generation)
        },
        conditions: rs.status.as_ref().and_then(|s| s.conditions.clone()),
        terminating_replicas: None,
    }
}

/// Write the status if it changed.
async fn write_status(
    ctx: &Context,
    rs: &ReplicaSet,
    status: &ReplicaSetStatus,
) -> Result<(), Error> {
    if rs.status.as_ref() == Some(status) {
        return Ok(());
    }
    let ns = rs.namespace().unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    api.patch_status(
        &rs.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .map_err(|source| Error::UpdateStatus {
        rs: key(&ns, &rs.name_any()),
        source,
    })?;
    Ok(())
}

/// Build a pod from the ReplicaSet's template: `generateName: <rs>-`, owned by the RS.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let tm = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            namespace: rs.namespace(),
            labels: tm.labels,
            annotations: tm.annotations,
            finalizers: tm.finalizers,
            owner_references: Some(vec![owner_reference(rs)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// Create `n` pods in slow-start batches (1, 2, 4, ...): if the template is bad, the first
/// failure stops the sync instead of producing `n` errors.
async fn create_pods(rs: &ReplicaSet, ctx: &Context, n: usize) -> Result<(), Error> {
    let ns = rs.namespace().unwrap_or_default();
    let rs_key = key(&ns, &rs.name_any());
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut left = n.min(BURST_REPLICAS);
    let mut batch = 1;
    let mut created = 0;
    while left > 0 {
        let size = batch.min(left);
        let results = futures::future::join_all((0..size).map(|_| {
            let api = api.clone();
            let pod = pod_from_template(rs);
            async move { api.create(&PostParams::default(), &pod).await }
        }))
        .await;
        let mut failure = None;
        for r in results {
            match r {
                // The name is known only now; if the watch already delivered it, the next
                // expectation check sees it in the cache.
                Ok(p) => {
                    ctx.expectations.expect_creation(&rs_key, &p.name_any());
                    created += 1;
                }
                Err(e) => failure = Some(e),
            }
        }
        if let Some(source) = failure {
            ctx.recorder
                .warning(rs, "FailedCreate", format!("Error creating: {source}"))
                .await;
            return Err(Error::CreatePod { rs: rs_key, source });
        }
        left -= size;
        batch *= 2;
    }
    info!(created, "created pods");
    ctx.recorder
        .normal(
            rs,
            "SuccessfulCreate",
            format!("Created {created} pod(s) for replicaset {}", rs.name_any()),
        )
        .await;
    Ok(())
}

/// Delete the `n` least valuable of `active`.
/// Returns the uids of the deleted pods.
async fn delete_pods(
    rs: &ReplicaSet,
    ctx: &Context,
    mut active: Vec<Arc<Pod>>,
    n: usize,
) -> Result<Vec<String>, Error> {
    let ns = rs.namespace().unwrap_or_default();
    let rs_key = key(&ns, &rs.name_any());
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    active.sort_by(|a, b| pod::deletion_order(a, b));
    let victims: Vec<Arc<Pod>> = active.into_iter().take(n.min(BURST_REPLICAS)).collect();
    for p in &victims {
        ctx.expectations
            .expect_deletion(&rs_key, &p.uid().unwrap_or_default());
    }
    let results = futures::future::join_all(victims.iter().map(|p| {
        let api = api.clone();
        async move { (p, api.delete(&p.name_any(), &DeleteParams::default()).await) }
    }))
    .await;
    for (p, r) in results {
        match r {
            Ok(_) => {
                ctx.recorder
                    .normal(
                        rs,
                        "SuccessfulDelete",
                        format!("Deleted pod: {}", p.name_any()),
                    )
                    .await
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => {
                ctx.expectations
                    .deletion_observed(&rs_key, &p.uid().unwrap_or_default());
                return Err(Error::DeletePod {
                    pod: p.name_any(),
                    source,
                });
            }
        }
    }
    info!(deleted = victims.len(), "deleted pods");
    Ok(victims
        .iter()
        .map(|p| p.uid().unwrap_or_default())
        .collect())
}

/// Add `owner` as the pod's controller; the resourceVersion makes a racing adopter fail.
async fn adopt<K: Resource<DynamicType = ()>>(
    client: &kube::Client,
    p: &Pod,
    owner: &K,
) -> Result<(), Error> {
    let mut refs = p.metadata.owner_references.clone().unwrap_or_default();
    refs.push(owner_reference(owner));
    patch_owner_refs(client, p, refs).await
}

/// Remove the ownerReference with `uid` from the pod.
async fn release(client: &kube::Client, p: &Pod, uid: &str) -> Result<(), Error> {
    let refs: Vec<OwnerReference> = p
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.uid != uid)
        .collect();
    patch_owner_refs(client, p, refs).await
}

async fn patch_owner_refs(
    client: &kube::Client,
    p: &Pod,
    refs: Vec<OwnerReference>,
) -> Result<(), Error> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &p.namespace().unwrap_or_default());
    let patch =
        json!({ "metadata": { "ownerReferences": refs, "resourceVersion": p.resource_version() } });
    match api
        .patch(&p.name_any(), &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(source) => Err(Error::ClaimPod {
            pod: p.name_any(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests;
