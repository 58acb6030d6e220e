//! The Deployment controller: roll a Deployment's pods from one template to the next.
//!
//! A Deployment never touches pods. It owns one ReplicaSet per template revision
//! (`history.rs`) and moves replicas between them (`rollout.rs`): `RollingUpdate` step by step
//! within maxSurge/maxUnavailable (`rolling.rs`), `Recreate` by emptying the old ones first. Its
//! status (`status.rs`) sums its ReplicaSets' statuses. Read `replicaset/` first; here,
//! [`reconcile`] is the recipe and each of its steps a function below it.

pub mod history;
pub mod rolling;
pub mod rollout;
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
use rollout::{counts, status_current, Rollout, Strategy};

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

/// A Deployment's ReplicaSets, as one sync sees them.
struct Revisions {
    /// The ReplicaSet running the current template, if there is one yet.
    new: Option<ReplicaSet>,
    /// The others, oldest revision first.
    olds: Vec<ReplicaSet>,
}

impl Revisions {
    /// The highest revision of the old ReplicaSets (0 if none).
    fn max_old_revision(&self) -> i64 {
        self.olds.iter().map(history::revision).max().unwrap_or(0)
    }

    fn all(&self) -> Vec<&ReplicaSet> {
        self.new.iter().chain(self.olds.iter()).collect()
    }
}

/// What [`ensure_new_replica_set`] found or did.
enum NewReplicaSet {
    /// The ReplicaSet of the current template; `moved` if this sync created or promoted it.
    Current { rs: Box<ReplicaSet>, moved: bool },
    /// Its name is taken by a ReplicaSet of another template (or our cache is behind):
    /// collisionCount was bumped if needed, and the sync runs again shortly.
    NameTaken,
}

/// One sync of one Deployment:
/// 1. claim its ReplicaSets (adopting matching orphans);
/// 2. make sure the ReplicaSet of the current template exists and is the newest revision;
/// 3. label the Deployment with that revision;
/// 4. scale one rollout step, on ReplicaSet statuses that have caught up with their spec;
/// 5. delete empty old ReplicaSets beyond revisionHistoryLimit;
/// 6. write the status, and come back when the progress deadline may pass.
#[instrument(skip_all, fields(deployment = %format!("{}/{}", d.namespace().unwrap_or_default(), d.name_any())))]
pub async fn reconcile(d: Arc<Deployment>, ctx: Arc<Context>) -> Result<Action, Error> {
    if d.metadata.deletion_timestamp.is_some() || d.spec.is_none() {
        return Ok(Action::await_change());
    }
    // Never act on a half-filled cache: an empty ReplicaSet cache after a (re)start would
    // read as "no ReplicaSets yet" and scale from nothing.
    if !crate::cache::has_synced(&ctx.replica_sets) {
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let rollout = Rollout::of(&d);
    let mut revisions = claim_replica_sets(&ctx, &d).await?;
    let mut moved = false;
    if !rollout.paused {
        let new = revisions.new.take();
        match ensure_new_replica_set(&ctx, &d, &rollout, new, &revisions).await? {
            NewReplicaSet::Current { rs, moved: made } => {
                revisions.new = Some(*rs);
                moved = made;
            }
            NewReplicaSet::NameTaken => return Ok(Action::requeue(Duration::from_millis(200))),
        }
    }
    annotate_revision(&ctx, &d, revisions.new.as_ref()).await?;
    // Scale, but only on ReplicaSet statuses that reflect their current spec.
    let all_current = revisions.all().into_iter().all(status_current);
    if let (true, Some(new)) = (all_current, revisions.new.as_mut()) {
        moved |= rollout::step(&ctx, &d, &rollout, new, &mut revisions.olds).await?;
    }
    clean_up_history(&ctx, &d, &revisions.olds).await?;
    let now = jiff::Timestamp::now();
    let status = status::compute(
        &d,
        revisions.new.as_ref(),
        &revisions.all(),
        rollout.max_unavailable,
        moved,
        now,
    );
    write_status(&ctx, &d, &status).await?;
    let wait = if !all_current {
        Some(1)
    } else {
        status::seconds_to_deadline(&d, &status, now)
    };
    Ok(Action::requeue(Duration::from_secs(
        wait.map(|s| s as u64).unwrap_or(300),
    )))
}

/// Step 1: the Deployment's ReplicaSets, adopting orphans that match its selector, split into
/// the one running the current template and the older ones.
async fn claim_replica_sets(ctx: &Context, d: &Deployment) -> Result<Revisions, Error> {
    let ns = d.namespace().unwrap_or_default();
    let uid = d.uid().unwrap_or_default();
    let selector = &d.spec.as_ref().expect("checked by reconcile").selector;
    let mut owned: Vec<ReplicaSet> = Vec::new();
    for rs in ctx
        .replica_sets
        .state()
        .iter()
        .filter(|rs| rs.namespace().as_deref() == Some(&ns))
    {
        match controller_of(&rs.metadata) {
            Some(r) if r.uid == uid => owned.push((**rs).clone()),
            None if !selector_is_empty(selector)
                && selector_matches(selector, rs.labels())
                && rs.metadata.deletion_timestamp.is_none() =>
            {
                adopt(ctx, d, rs).await?;
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
    let new = owned
        .iter()
        .position(|rs| history::same_template(rs, d))
        .map(|i| owned.remove(i));
    Ok(Revisions { new, olds: owned })
}

/// Make the Deployment the controller of an orphaned ReplicaSet; the resourceVersion makes a
/// racing adopter fail.
async fn adopt(ctx: &Context, d: &Deployment, rs: &ReplicaSet) -> Result<(), Error> {
    let api: Api<ReplicaSet> =
        Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    let mut refs = rs.metadata.owner_references.clone().unwrap_or_default();
    refs.push(crate::replicaset::owner_reference(d));
    let patch =
        json!({"metadata": {"ownerReferences": refs, "resourceVersion": rs.resource_version()}});
    api.patch(
        &rs.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
    .map_err(|source| Error::UpdateReplicaSet {
        rs: rs.name_any(),
        source,
    })?;
    Ok(())
}

/// Step 2: the ReplicaSet of the current template, created if missing; if a rollback brought
/// an old template back, its ReplicaSet becomes the newest revision.
async fn ensure_new_replica_set(
    ctx: &Context,
    d: &Deployment,
    rollout: &Rollout,
    new: Option<ReplicaSet>,
    revisions: &Revisions,
) -> Result<NewReplicaSet, Error> {
    let max_old_revision = revisions.max_old_revision();
    match new {
        None => create_new_replica_set(ctx, d, rollout, revisions).await,
        Some(rs) if history::revision(&rs) <= max_old_revision => {
            let rs = set_revision(ctx, &rs, max_old_revision + 1).await?;
            Ok(NewReplicaSet::Current {
                rs: Box::new(rs),
                moved: true,
            })
        }
        Some(rs) => Ok(NewReplicaSet::Current {
            rs: Box::new(rs),
            moved: false,
        }),
    }
}

/// Create `<deployment>-<pod-template-hash>` for the current template, as the next revision:
/// empty for Recreate, else as large as the surge room allows.
async fn create_new_replica_set(
    ctx: &Context,
    d: &Deployment,
    rollout: &Rollout,
    revisions: &Revisions,
) -> Result<NewReplicaSet, Error> {
    let spec = d.spec.as_ref().expect("checked by reconcile");
    let initial = match rollout.strategy {
        Strategy::Recreate => 0,
        Strategy::RollingUpdate => rolling::new_rs_replicas(
            rollout.replicas,
            rollout.max_surge,
            rolling::Counts {
                replicas: 0,
                available: 0,
            },
            revisions.olds.iter().map(|r| counts(r).replicas).sum(),
        ),
    };
    let collisions = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = history::template_hash(&spec.template, collisions);
    let revision = revisions.max_old_revision() + 1;
    let rs = history::new_replica_set(d, &hash, initial, revision, rollout.max_surge);
    let api: Api<ReplicaSet> =
        Api::namespaced(ctx.client.clone(), &d.namespace().unwrap_or_default());
    match api.create(&PostParams::default(), &rs).await {
        Ok(created) => {
            info!(replicaset = %created.name_any(), replicas = initial, "created new replicaset");
            if initial > 0 {
                let message = format!(
                    "Scaled up replica set {} from 0 to {initial}",
                    created.name_any()
                );
                ctx.recorder.normal(d, "ScalingReplicaSet", message).await;
            }
            Ok(NewReplicaSet::Current {
                rs: Box::new(created),
                moved: true,
            })
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            resolve_name_collision(ctx, d, &rs.name_any(), collisions).await?;
            Ok(NewReplicaSet::NameTaken)
        }
        Err(source) => Err(Error::CreateReplicaSet {
            rs: rs.name_any(),
            source,
        }),
    }
}

/// The new ReplicaSet's name exists. Same name, different template: a hash collision, so
/// collisionCount goes up and the next hash differs. Same template: our cache is just behind.
async fn resolve_name_collision(
    ctx: &Context,
    d: &Deployment,
    name: &str,
    collisions: Option<i32>,
) -> Result<(), Error> {
    let ns = d.namespace().unwrap_or_default();
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = rs_api
        .get(name)
        .await
        .map_err(|source| Error::UpdateReplicaSet {
            rs: name.to_string(),
            source,
        })?;
    if history::same_template(&existing, d) {
        return Ok(());
    }
    let patch = json!({"status": {"collisionCount": collisions.unwrap_or(0) + 1}});
    Api::<Deployment>::namespaced(ctx.client.clone(), &ns)
        .patch_status(&d.name_any(), &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(|source| Error::UpdateDeployment {
            deployment: d.name_any(),
            source,
        })?;
    Ok(())
}

/// Annotate a ReplicaSet with `revision` (a rollback's old ReplicaSet becoming the newest).
async fn set_revision(ctx: &Context, rs: &ReplicaSet, revision: i64) -> Result<ReplicaSet, Error> {
    let api: Api<ReplicaSet> =
        Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    let patch = json!({"metadata": {"annotations": {history::REVISION: revision.to_string()}}});
    api.patch(
        &rs.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
    .map_err(|source| Error::UpdateReplicaSet {
        rs: rs.name_any(),
        source,
    })
}

/// Step 3: the Deployment carries the revision of its new ReplicaSet.
async fn annotate_revision(
    ctx: &Context,
    d: &Deployment,
    new: Option<&ReplicaSet>,
) -> Result<(), Error> {
    let Some(rs) = new else { return Ok(()) };
    let rev = history::revision(rs).to_string();
    if d.annotations().get(history::REVISION) == Some(&rev) {
        return Ok(());
    }
    let api: Api<Deployment> =
        Api::namespaced(ctx.client.clone(), &d.namespace().unwrap_or_default());
    let patch = json!({"metadata": {"annotations": {history::REVISION: rev}}});
    api.patch(&d.name_any(), &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(|source| Error::UpdateDeployment {
            deployment: d.name_any(),
            source,
        })?;
    Ok(())
}

/// Step 5: old, empty ReplicaSets beyond revisionHistoryLimit (default 10) go away.
async fn clean_up_history(ctx: &Context, d: &Deployment, olds: &[ReplicaSet]) -> Result<(), Error> {
    let limit = d
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10);
    let api: Api<ReplicaSet> =
        Api::namespaced(ctx.client.clone(), &d.namespace().unwrap_or_default());
    let old_refs: Vec<&ReplicaSet> = olds.iter().collect();
    for rs in history::to_clean_up(&old_refs, limit) {
        match api.delete(&rs.name_any(), &DeleteParams::default()).await {
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
    Ok(())
}

/// Step 6: write the status if it changed.
async fn write_status(
    ctx: &Context,
    d: &Deployment,
    status: &k8s_openapi::api::apps::v1::DeploymentStatus,
) -> Result<(), Error> {
    if d.status.as_ref() == Some(status) {
        return Ok(());
    }
    let api: Api<Deployment> =
        Api::namespaced(ctx.client.clone(), &d.namespace().unwrap_or_default());
    api.patch_status(
        &d.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .map_err(|source| Error::UpdateDeployment {
        deployment: d.name_any(),
        source,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests;
