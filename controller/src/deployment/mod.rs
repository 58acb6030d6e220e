//! The Deployment controller: roll a Deployment's pods from one template to the next.
//!
//! A Deployment never touches pods. It owns one ReplicaSet per template revision
//! (`history.rs`) and moves replicas between them: `RollingUpdate` step by step within
//! maxSurge/maxUnavailable (`rolling.rs`), `Recreate` by emptying the old ones first. Its status
//! (`status.rs`) sums its ReplicaSets' statuses. Read `replicaset.rs` first.

pub mod history;
pub mod rolling;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::WatchStreamExt;
use kube::ResourceExt;
use serde_json::json;
use tracing::{info, instrument, warn};

use crate::cache;
use crate::conflict::{self, MaybeConflict};
use crate::events::Recorder;
use crate::pod::{controller_of, selector_is_empty, selector_matches};
use rolling::Counts;

/// What can fail while syncing a Deployment.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Creating the new ReplicaSet failed.
    #[error("creating replicaset {rs}: {source}")]
    CreateReplicaSet {
        rs: String,
        #[source]
        source: kube::Error,
    },
    /// Scaling, annotating or adopting a ReplicaSet failed.
    #[error("updating replicaset {rs}: {source}")]
    UpdateReplicaSet {
        rs: String,
        #[source]
        source: kube::Error,
    },
    /// Deleting an old ReplicaSet beyond the history limit failed.
    #[error("deleting old replicaset {rs}: {source}")]
    DeleteReplicaSet {
        rs: String,
        #[source]
        source: kube::Error,
    },
    /// Writing the Deployment (revision annotation, status) failed.
    #[error("updating deployment {deployment}: {source}")]
    UpdateDeployment {
        deployment: String,
        #[source]
        source: kube::Error,
    },
}

/// Shared by every sync.
pub struct Context {
    pub client: kube::Client,
    /// All ReplicaSets, from the watch.
    pub replica_sets: Store<ReplicaSet>,
    pub recorder: Recorder,
}

/// Run the Deployment controller until the future is dropped.
pub async fn run(client: kube::Client) {
    let (replica_sets, writer) = reflector::store::<ReplicaSet>();
    let rs_events =
        reflector::reflector(writer, cache::watch(Api::<ReplicaSet>::all(client.clone())))
            .touched_objects();
    let controller = cache::controller(Api::<Deployment>::all(client.clone()));
    let deployments = controller.store();
    let ctx = Arc::new(Context {
        client: client.clone(),
        replica_sets,
        recorder: Recorder::new(client, "deployment-controller"),
    });
    controller
        .watches_stream(rs_events, move |rs: ReplicaSet| {
            deployments_to_sync(&rs, &deployments)
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// A ReplicaSet wakes its controlling Deployment, or, if orphaned, every Deployment that may adopt it.
fn deployments_to_sync(
    rs: &ReplicaSet,
    deployments: &Store<Deployment>,
) -> Vec<ObjectRef<Deployment>> {
    let ns = rs.namespace().unwrap_or_default();
    if let Some(owner) = controller_of(&rs.metadata) {
        return if owner.kind == "Deployment" {
            vec![ObjectRef::new(&owner.name).within(&ns)]
        } else {
            vec![]
        };
    }
    deployments
        .state()
        .iter()
        .filter(|d| d.namespace().as_deref() == Some(&ns))
        .filter(|d| {
            d.spec.as_ref().is_some_and(|s| {
                !selector_is_empty(&s.selector) && selector_matches(&s.selector, rs.labels())
            })
        })
        .map(|d| ObjectRef::from_obj(d.as_ref()))
        .collect()
}

/// Requeue after a failure: at once after a conflict (a ReplicaSet changed since our cache saw
/// it; the next sync sees the change), else in a second.
pub fn error_policy(d: Arc<Deployment>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!(deployment = %d.name_any(), error = %err, "sync failed; retrying");
    if err.is_conflict() {
        return Action::requeue(conflict::REQUEUE);
    }
    Action::requeue(Duration::from_secs(1))
}

impl MaybeConflict for Error {
    fn is_conflict(&self) -> bool {
        matches!(self, Error::UpdateReplicaSet { source, .. } if conflict::is_conflict(source))
    }
}

fn counts(rs: &ReplicaSet) -> Counts {
    let replicas = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let available = rs
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
        .min(replicas);
    Counts {
        replicas,
        available,
    }
}

/// Has the ReplicaSet controller acted on this ReplicaSet's latest spec?
fn status_current(rs: &ReplicaSet) -> bool {
    rs.status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .unwrap_or(0)
        >= rs.metadata.generation.unwrap_or(0)
}

/// One sync of one Deployment.
#[instrument(skip_all, fields(deployment = %format!("{}/{}", d.namespace().unwrap_or_default(), d.name_any())))]
pub async fn reconcile(d: Arc<Deployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    if d.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let Some(spec) = d.spec.clone() else {
        return Ok(Action::await_change());
    };
    // Never act on a half-filled cache: an empty ReplicaSet cache after a (re)start would
    // read as "no ReplicaSets yet" and scale from nothing.
    if !crate::cache::has_synced(&ctx.replica_sets) {
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let ns = d.namespace().unwrap_or_default();
    let uid = d.uid().unwrap_or_default();
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let want = spec.replicas.unwrap_or(1);
    let (surge, unavailable) = rolling::fenceposts(&d);
    let recreate = spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");

    // Our ReplicaSets, adopting orphans that match the selector.
    let mut owned: Vec<ReplicaSet> = Vec::new();
    for rs in ctx
        .replica_sets
        .state()
        .iter()
        .filter(|rs| rs.namespace().as_deref() == Some(&ns))
    {
        match controller_of(&rs.metadata) {
            Some(r) if r.uid == uid => owned.push((**rs).clone()),
            None if !selector_is_empty(&spec.selector)
                && selector_matches(&spec.selector, rs.labels())
                && rs.metadata.deletion_timestamp.is_none() =>
            {
                let mut refs = rs.metadata.owner_references.clone().unwrap_or_default();
                refs.push(crate::replicaset::owner_reference(d.as_ref()));
                let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": rs.resource_version()}});
                rs_api
                    .patch(
                        &rs.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(patch),
                    )
                    .await
                    .map_err(|source| Error::UpdateReplicaSet {
                        rs: rs.name_any(),
                        source,
                    })?;
                owned.push((**rs).clone());
            }
            _ => {}
        }
    }
    owned.sort_by_key(|rs| {
        (
            history::revision(rs),
            rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
        )
    });
    let new_idx = owned.iter().position(|rs| history::same_template(rs, &d));
    let mut new = new_idx.map(|i| owned.remove(i));
    let mut olds = owned;
    let max_old_revision = olds.iter().map(history::revision).max().unwrap_or(0);
    let paused = spec.paused == Some(true);
    let mut moved = false;

    if !paused {
        match &mut new {
            None => {
                let initial = if recreate {
                    0
                } else {
                    rolling::new_rs_replicas(
                        want,
                        surge,
                        Counts {
                            replicas: 0,
                            available: 0,
                        },
                        olds.iter().map(|r| counts(r).replicas).sum(),
                    )
                };
                let collisions = d.status.as_ref().and_then(|s| s.collision_count);
                let hash = history::template_hash(&spec.template, collisions);
                let rs = history::new_replica_set(&d, &hash, initial, max_old_revision + 1, surge);
                match rs_api.create(&PostParams::default(), &rs).await {
                    Ok(created) => {
                        info!(replicaset = %created.name_any(), replicas = initial, "created new replicaset");
                        if initial > 0 {
                            ctx.recorder
                                .normal(
                                    d.as_ref(),
                                    "ScalingReplicaSet",
                                    format!(
                                        "Scaled up replica set {} from 0 to {initial}",
                                        created.name_any()
                                    ),
                                )
                                .await;
                        }
                        new = Some(created);
                        moved = true;
                    }
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        // Same name, different template: a hash collision. Bump collisionCount so
                        // the next hash differs. (Same template: our cache is just behind.)
                        let existing = rs_api.get(&rs.name_any()).await.map_err(|source| {
                            Error::UpdateReplicaSet {
                                rs: rs.name_any(),
                                source,
                            }
                        })?;
                        if !history::same_template(&existing, &d) {
                            let dapi: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
                            let patch =
                                json!({"status": {"collisionCount": collisions.unwrap_or(0) + 1}});
                            dapi.patch_status(
                                &d.name_any(),
                                &PatchParams::default(),
                                &Patch::Merge(patch),
                            )
                            .await
                            .map_err(|source| {
                                Error::UpdateDeployment {
                                    deployment: d.name_any(),
                                    source,
                                }
                            })?;
                        }
                        return Ok(Action::requeue(Duration::from_millis(200)));
                    }
                    Err(source) => {
                        return Err(Error::CreateReplicaSet {
                            rs: rs.name_any(),
                            source,
                        })
                    }
                }
            }
            Some(rs) if history::revision(rs) <= max_old_revision => {
                // An old template came back (rollback): its ReplicaSet becomes the newest revision.
                let patch = json!({"metadata": {"annotations": {history::REVISION: (max_old_revision + 1).to_string()}}});
                *rs = rs_api
                    .patch(
                        &rs.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(patch),
                    )
                    .await
                    .map_err(|source| Error::UpdateReplicaSet {
                        rs: rs.name_any(),
                        source,
                    })?;
                moved = true;
            }
            Some(_) => {}
        }
    }

    // The Deployment carries its current revision.
    if let Some(rs) = &new {
        let rev = history::revision(rs).to_string();
        if d.annotations().get(history::REVISION) != Some(&rev) {
            let dapi: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
            let patch = json!({"metadata": {"annotations": {history::REVISION: rev}}});
            dapi.patch(&d.name_any(), &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map_err(|source| Error::UpdateDeployment {
                    deployment: d.name_any(),
                    source,
                })?;
        }
    }

    // Scale, but only on ReplicaSet statuses that reflect their current spec.
    let all_current = new.iter().chain(olds.iter()).all(status_current);
    if all_current {
        if let Some(rs) = new.as_mut() {
            if paused {
                if olds.iter().all(|o| counts(o).replicas == 0) && counts(rs).replicas != want {
                    scale(&ctx, &d, rs, want, surge).await?;
                    moved = true;
                }
            } else if recreate {
                moved |= recreate_step(&ctx, &d, rs, &mut olds, want, surge).await?;
            } else {
                moved |= rolling_step(&ctx, &d, rs, &mut olds, want, surge, unavailable).await?;
            }
        }
    }

    // Old, empty ReplicaSets beyond revisionHistoryLimit go away.
    let old_refs: Vec<&ReplicaSet> = olds.iter().collect();
    for rs in history::to_clean_up(&old_refs, spec.revision_history_limit.unwrap_or(10)) {
        match rs_api
            .delete(&rs.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {
                info!(replicaset = %rs.name_any(), "deleted old replicaset beyond the history limit")
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => {
                return Err(Error::DeleteReplicaSet {
                    rs: rs.name_any(),
                    source,
                })
            }
        }
    }

    let now = jiff::Timestamp::now();
    let all: Vec<&ReplicaSet> = new.iter().chain(olds.iter()).collect();
    let status = status::compute(&d, new.as_ref(), &all, unavailable, moved, now);
    if d.status.as_ref() != Some(&status) {
        let dapi: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
        dapi.patch_status(
            &d.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .map_err(|source| Error::UpdateDeployment {
            deployment: d.name_any(),
            source,
        })?;
    }
    let wait = if !all_current {
        Some(1)
    } else {
        status::seconds_to_deadline(&d, &status, now)
    };
    Ok(Action::requeue(Duration::from_secs(
        wait.map(|s| s as u64).unwrap_or(300),
    )))
}

/// One RollingUpdate step: grow the new ReplicaSet into the surge room, else shrink old ones
/// as far as availability allows. Returns whether anything was scaled.
async fn rolling_step(
    ctx: &Context,
    d: &Deployment,
    new: &mut ReplicaSet,
    olds: &mut [ReplicaSet],
    want: i32,
    surge: i32,
    unavailable: i32,
) -> Result<bool, Error> {
    let all: i32 = counts(new).replicas + olds.iter().map(|o| counts(o).replicas).sum::<i32>();
    let target = rolling::new_rs_replicas(want, surge, counts(new), all);
    if target != counts(new).replicas {
        scale(ctx, d, new, target, surge).await?;
        return Ok(true);
    }
    let old_counts: Vec<Counts> = olds.iter().map(counts).collect();
    let targets = rolling::old_rs_scale_down(want, unavailable, counts(new), &old_counts);
    let mut moved = false;
    for (rs, to) in olds.iter_mut().zip(targets) {
        if to != counts(rs).replicas {
            scale(ctx, d, rs, to, surge).await?;
            moved = true;
        }
    }
    Ok(moved)
}

/// One Recreate step: old ReplicaSets to zero, wait until their pods are gone, then the new one up.
async fn recreate_step(
    ctx: &Context,
    d: &Deployment,
    new: &mut ReplicaSet,
    olds: &mut [ReplicaSet],
    want: i32,
    surge: i32,
) -> Result<bool, Error> {
    let mut moved = false;
    for rs in olds.iter_mut().filter(|rs| counts(rs).replicas > 0) {
        scale(ctx, d, rs, 0, surge).await?;
        moved = true;
    }
    let old_pods: i32 = olds
        .iter()
        .map(|rs| rs.status.as_ref().map(|s| s.replicas).unwrap_or(0))
        .sum();
    if moved || old_pods > 0 {
        return Ok(moved);
    }
    if counts(new).replicas != want {
        scale(ctx, d, new, want, surge).await?;
        moved = true;
    }
    Ok(moved)
}

/// Set a ReplicaSet's `spec.replicas` (guarded by its resourceVersion) and record the event.
async fn scale(
    ctx: &Context,
    d: &Deployment,
    rs: &mut ReplicaSet,
    to: i32,
    surge: i32,
) -> Result<(), Error> {
    let from = counts(rs).replicas;
    let api: Api<ReplicaSet> =
        Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let patch = json!({
        "metadata": {
            "resourceVersion": rs.resource_version(),
            "annotations": {history::DESIRED_REPLICAS: want.to_string(), history::MAX_REPLICAS: (want + surge).to_string()},
        },
        "spec": {"replicas": to},
    });
    *rs = api
        .patch(
            &rs.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
        .map_err(|source| Error::UpdateReplicaSet {
            rs: rs.name_any(),
            source,
        })?;
    let direction = if to > from { "up" } else { "down" };
    info!(replicaset = %rs.name_any(), from, to, "scaled replicaset");
    ctx.recorder
        .normal(
            d,
            "ScalingReplicaSet",
            format!(
                "Scaled {direction} replica set {} from {from} to {to}",
                rs.name_any()
            ),
        )
        .await;
    Ok(())
}
