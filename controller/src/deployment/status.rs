//! Deployment status: the counts and conditions `kubectl rollout status` reads.
//!
//! `Available` says whether at least `replicas - maxUnavailable` pods are available.
//! `Progressing` says whether the rollout moves: `ReplicaSetUpdated` while it does,
//! `NewReplicaSetAvailable` once every pod runs the new template and is available, and
//! `ProgressDeadlineExceeded` (status False) if nothing moved for `progressDeadlineSeconds`.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

fn counts(rs: &ReplicaSet) -> (i32, i32, i32) {
    let s = rs.status.clone().unwrap_or_default();
    (
        s.replicas,
        s.ready_replicas.unwrap_or(0),
        s.available_replicas.unwrap_or(0),
    )
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: jiff::Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Put `c` into `conds`, keeping lastTransitionTime if the status did not change and
/// lastUpdateTime too if nothing changed at all.
fn set_condition(conds: &mut Vec<DeploymentCondition>, mut c: DeploymentCondition) {
    if let Some(old) = conds.iter().find(|o| o.type_ == c.type_) {
        if old.status == c.status {
            c.last_transition_time = old.last_transition_time.clone();
            if old.reason == c.reason && old.message == c.message {
                c.last_update_time = old.last_update_time.clone();
            }
        }
    }
    conds.retain(|o| o.type_ != c.type_);
    conds.push(c);
    conds.sort_by(|a, b| a.type_.cmp(&b.type_));
}

/// Compute the status from the ReplicaSets. `moved` says this sync scaled something (progress).
pub fn compute(
    d: &Deployment,
    new: Option<&ReplicaSet>,
    all: &[&ReplicaSet],
    max_unavailable: i32,
    moved: bool,
    now: jiff::Timestamp,
) -> DeploymentStatus {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let old = d.status.clone().unwrap_or_default();
    let mut status = summed(d, new, all, want, old.collision_count);
    let mut conds = old.conditions.clone().unwrap_or_default();
    set_condition(&mut conds, available(&status, want - max_unavailable, now));
    let changed = moved
        || old.replicas != status.replicas
        || old.updated_replicas != status.updated_replicas
        || old.available_replicas != status.available_replicas
        || old.ready_replicas != status.ready_replicas;
    set_progressing(&mut conds, d, new, &status, changed, now);
    status.conditions = Some(conds);
    status
}

/// The counts: sums over every ReplicaSet; `updatedReplicas` are the new ReplicaSet's.
fn summed(
    d: &Deployment,
    new: Option<&ReplicaSet>,
    all: &[&ReplicaSet],
    want: i32,
    collision_count: Option<i32>,
) -> DeploymentStatus {
    let (mut replicas, mut ready, mut available) = (0, 0, 0);
    for rs in all {
        let (r, re, a) = counts(rs);
        replicas += r;
        ready += re;
        available += a;
    }
    DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(replicas),
        updated_replicas: Some(new.map(|rs| counts(rs).0).unwrap_or(0)),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((want - available).max(0)),
        collision_count,
        conditions: None,
        terminating_replicas: None,
    }
}

/// `Available`: at least `min_available` (replicas - maxUnavailable) pods are available.
fn available(
    status: &DeploymentStatus,
    min_available: i32,
    now: jiff::Timestamp,
) -> DeploymentCondition {
    if status.available_replicas.unwrap_or(0) >= min_available {
        condition(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
            now,
        )
    } else {
        condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            now,
        )
    }
}

/// `Progressing`: Unknown while paused; `NewReplicaSetAvailable` once every pod runs the new
/// template and is available; else `ReplicaSetUpdated` while the rollout moves (`changed`),
/// turning into `ProgressDeadlineExceeded` when it has not moved for the deadline.
fn set_progressing(
    conds: &mut Vec<DeploymentCondition>,
    d: &Deployment,
    new: Option<&ReplicaSet>,
    status: &DeploymentStatus,
    changed: bool,
    now: jiff::Timestamp,
) {
    let spec = d.spec.clone().unwrap_or_default();
    let want = spec.replicas.unwrap_or(1);
    let rs_name = new.map(|rs| rs.name_any()).unwrap_or_default();
    let complete = new.is_some_and(|rs| counts(rs).2 >= want)
        && status.updated_replicas == Some(want)
        && status.replicas == Some(want)
        && status.available_replicas.unwrap_or(0) >= want;
    if spec.paused == Some(true) {
        let c = condition(
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".into(),
            now,
        );
        set_condition(conds, c);
        return;
    }
    if complete {
        let message = format!("ReplicaSet \"{rs_name}\" has successfully progressed.");
        let c = condition(
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            message,
            now,
        );
        set_condition(conds, c);
        return;
    }
    let reason = conds
        .iter()
        .find(|c| c.type_ == "Progressing")
        .and_then(|c| c.reason.clone())
        .unwrap_or_default();
    let stalled = reason == "ReplicaSetUpdated" || reason == "ProgressDeadlineExceeded";
    if changed || !stalled {
        // Progress (or a rollout starting): refresh lastUpdateTime.
        let message = format!("ReplicaSet \"{rs_name}\" is progressing.");
        set_condition(
            conds,
            condition("Progressing", "True", "ReplicaSetUpdated", message, now),
        );
        if let Some(x) = conds.iter_mut().find(|x| x.type_ == "Progressing") {
            x.last_update_time = Some(Time(now));
        }
    } else if let (Some(deadline), "ReplicaSetUpdated") =
        (spec.progress_deadline_seconds, reason.as_str())
    {
        let last = conds
            .iter()
            .find(|c| c.type_ == "Progressing")
            .and_then(|c| c.last_update_time.as_ref())
            .map(|t| t.0.as_second())
            .unwrap_or(now.as_second());
        if last + deadline as i64 <= now.as_second() {
            let message = format!("ReplicaSet \"{rs_name}\" has timed out progressing.");
            let c = condition(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                message,
                now,
            );
            set_condition(conds, c);
        }
    }
}

/// Seconds until the progress deadline passes, for requeueing (None if not progressing).
pub fn seconds_to_deadline(
    d: &Deployment,
    status: &DeploymentStatus,
    now: jiff::Timestamp,
) -> Option<i64> {
    let deadline = d.spec.as_ref()?.progress_deadline_seconds? as i64;
    let c = status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Progressing")?;
    if c.reason.as_deref() != Some("ReplicaSetUpdated") {
        return None;
    }
    let last = c.last_update_time.as_ref()?.0.as_second();
    Some((last + deadline - now.as_second()).max(1))
}
