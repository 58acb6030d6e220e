//! One rollout step: move replicas between a Deployment's ReplicaSets toward its spec.
//!
//! `RollingUpdate` grows the new ReplicaSet into the surge room, else shrinks old ones as far
//! as availability allows (the arithmetic is `rolling.rs`); `Recreate` empties the old ones and
//! waits for their pods to be gone before it scales the new one up; a paused Deployment only
//! follows a change of `spec.replicas` once no old ReplicaSet has pods. Every scale is a patch
//! guarded by the ReplicaSet's resourceVersion, plus a `ScalingReplicaSet` event. Read next:
//! `status.rs`.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, Patch, PatchParams};
use kube::ResourceExt;
use serde_json::json;
use tracing::info;

use super::rolling::{self, Counts};
use super::{history, Context, Error};

/// How a Deployment replaces its pods (`spec.strategy.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Step by step within maxSurge and maxUnavailable (the default).
    RollingUpdate,
    /// All old pods gone before any new one starts.
    Recreate,
}

/// What the Deployment's spec asks of one sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rollout {
    /// `spec.replicas` (default 1).
    pub replicas: i32,
    /// maxSurge, resolved against `replicas` (`rolling::fenceposts`).
    pub max_surge: i32,
    /// maxUnavailable, resolved against `replicas`.
    pub max_unavailable: i32,
    pub strategy: Strategy,
    /// `spec.paused`: no new ReplicaSet and no rollout step.
    pub paused: bool,
}

impl Rollout {
    /// Read from the Deployment's spec.
    pub fn of(d: &Deployment) -> Rollout {
        let spec = d.spec.as_ref();
        let (max_surge, max_unavailable) = rolling::fenceposts(d);
        let strategy = match spec
            .and_then(|s| s.strategy.as_ref())
            .and_then(|s| s.type_.as_deref())
        {
            Some("Recreate") => Strategy::Recreate,
            _ => Strategy::RollingUpdate,
        };
        Rollout {
            replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
            max_surge,
            max_unavailable,
            strategy,
            paused: spec.and_then(|s| s.paused) == Some(true),
        }
    }
}

/// A ReplicaSet as the rollout math sees it: `spec.replicas`, and availability capped by it.
pub fn counts(rs: &ReplicaSet) -> Counts {
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
pub fn status_current(rs: &ReplicaSet) -> bool {
    rs.status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .unwrap_or(0)
        >= rs.metadata.generation.unwrap_or(0)
}

/// One step toward the spec for the new ReplicaSet and the old ones. Returns whether
/// anything was scaled.
pub async fn step(
    ctx: &Context,
    d: &Deployment,
    rollout: &Rollout,
    new: &mut ReplicaSet,
    olds: &mut [ReplicaSet],
) -> Result<bool, Error> {
    if rollout.paused {
        return paused_step(ctx, d, rollout, new, olds).await;
    }
    match rollout.strategy {
        Strategy::Recreate => recreate_step(ctx, d, rollout, new, olds).await,
        Strategy::RollingUpdate => rolling_step(ctx, d, rollout, new, olds).await,
    }
}

/// A paused Deployment follows a new `spec.replicas` only when no old ReplicaSet has pods
/// (scaling mid-rollout would need the proportional split upstream does).
async fn paused_step(
    ctx: &Context,
    d: &Deployment,
    rollout: &Rollout,
    new: &mut ReplicaSet,
    olds: &[ReplicaSet],
) -> Result<bool, Error> {
    if olds.iter().all(|o| counts(o).replicas == 0) && counts(new).replicas != rollout.replicas {
        scale(ctx, d, rollout, new, rollout.replicas).await?;
        return Ok(true);
    }
    Ok(false)
}

/// One RollingUpdate step: grow the new ReplicaSet into the surge room, else shrink old ones
/// as far as availability allows.
async fn rolling_step(
    ctx: &Context,
    d: &Deployment,
    rollout: &Rollout,
    new: &mut ReplicaSet,
    olds: &mut [ReplicaSet],
) -> Result<bool, Error> {
    let all: i32 = counts(new).replicas + olds.iter().map(|o| counts(o).replicas).sum::<i32>();
    let target = rolling::new_rs_replicas(rollout.replicas, rollout.max_surge, counts(new), all);
    if target != counts(new).replicas {
        scale(ctx, d, rollout, new, target).await?;
        return Ok(true);
    }
    let old_counts: Vec<Counts> = olds.iter().map(counts).collect();
    let targets = rolling::old_rs_scale_down(
        rollout.replicas,
        rollout.max_unavailable,
        counts(new),
        &old_counts,
    );
    let mut moved = false;
    for (rs, to) in olds.iter_mut().zip(targets) {
        if to != counts(rs).replicas {
            scale(ctx, d, rollout, rs, to).await?;
            moved = true;
        }
    }
    Ok(moved)
}

/// One Recreate step: old ReplicaSets to zero, wait until their pods are gone, then the new one up.
async fn recreate_step(
    ctx: &Context,
    d: &Deployment,
    rollout: &Rollout,
    new: &mut ReplicaSet,
    olds: &mut [ReplicaSet],
) -> Result<bool, Error> {
    let mut moved = false;
    for rs in olds.iter_mut().filter(|rs| counts(rs).replicas > 0) {
        scale(ctx, d, rollout, rs, 0).await?;
        moved = true;
    }
    let old_pods: i32 = olds
        .iter()
        .map(|rs| rs.status.as_ref().map(|s| s.replicas).unwrap_or(0))
        .sum();
    if moved || old_pods > 0 {
        return Ok(moved);
    }
    if counts(new).replicas != rollout.replicas {
        scale(ctx, d, rollout, new, rollout.replicas).await?;
        moved = true;
    }
    Ok(moved)
}

/// Set a ReplicaSet's `spec.replicas` (guarded by its resourceVersion) and record the event.
async fn scale(
    ctx: &Context,
    d: &Deployment,
    rollout: &Rollout,
    rs: &mut ReplicaSet,
    to: i32,
) -> Result<(), Error> {
    let from = counts(rs).replicas;
    let api: Api<ReplicaSet> =
        Api::namespaced(ctx.client.clone(), &rs.namespace().unwrap_or_default());
    let want = rollout.replicas;
    let patch = json!({
        "metadata": {
            "resourceVersion": rs.resource_version(),
            "annotations": {
                history::DESIRED_REPLICAS: want.to_string(),
                history::MAX_REPLICAS: (want + rollout.max_surge).to_string(),
            },
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
