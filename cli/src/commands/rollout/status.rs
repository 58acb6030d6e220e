//! `minikctl rollout status`: follow a Deployment until its rollout is done.
//!
//! The Deployment controller reports a rollout in the Deployment's `status`: how many replicas
//! run the new template (`updatedReplicas`), how many exist at all (`replicas`, old ones
//! included) and how many of them are available. Those counts mean something only once the
//! controller has seen the latest spec: `metadata.generation` is bumped by every spec change and
//! the controller copies it to `status.observedGeneration` when it has acted on it. A rollout is
//! done when every desired replica is updated, no old one is left and every updated one is
//! available; it has failed when the controller gave up (`Progressing` condition with reason
//! `ProgressDeadlineExceeded`). kubectl lists the Deployment, then watches it, printing one
//! line per event until one of those holds or `--timeout` passes.
//! Read next: `history.rs`; the controller's side is `controller/src/deployment/`.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::api::{ListParams, WatchEvent, WatchParams};
use serde_json::Value;

use crate::printer::emit;

use super::super::scale::Named;
use super::super::{Ctx, Failures};
use super::{group_kind, history::REVISION, is_deployment, objects, Objects};

/// The arguments of `minikctl rollout status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub objects: Objects,
    /// Watch the status of the rollout until it's done (`--watch=false`: print it once).
    #[arg(short = 'w', long, default_value_t = true, num_args = 0..=1,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub watch: bool,
    /// How long to wait (`90s`, `2m`); 0 waits forever.
    #[arg(long, default_value = "0s")]
    pub timeout: kube::core::Duration,
    /// Pin to a specific revision; 0 is the latest.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub revision: i64,
}

/// Where a Deployment's rollout stands, as kubectl's `DeploymentStatusViewer` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The controller has not acted on the latest spec yet (generation > observedGeneration).
    SpecNotObserved,
    /// Fewer replicas than desired run the new template.
    Updating { updated: i64, desired: i64 },
    /// Replicas of old templates still exist.
    OldPending { old: i64 },
    /// Some updated replicas are not available yet.
    Unavailable { available: i64, updated: i64 },
    /// Every replica is updated and available.
    RolledOut,
}

impl Progress {
    /// The line kubectl prints for this state.
    pub fn message(&self, name: &str) -> String {
        let waiting = format!("Waiting for deployment {name:?} rollout to finish");
        match self {
            Progress::SpecNotObserved => {
                "Waiting for deployment spec update to be observed...\n".into()
            }
            Progress::Updating { updated, desired } => {
                format!("{waiting}: {updated} out of {desired} new replicas have been updated...\n")
            }
            Progress::OldPending { old } => {
                format!("{waiting}: {old} old replicas are pending termination...\n")
            }
            Progress::Unavailable { available, updated } => {
                format!("{waiting}: {available} of {updated} updated replicas are available...\n")
            }
            Progress::RolledOut => format!("deployment {name:?} successfully rolled out\n"),
        }
    }
}

/// The rollout's progress from the Deployment, or kubectl's error: a revision other than the
/// one asked for, or a rollout past its progress deadline.
pub fn progress(deployment: &Value, revision: i64) -> anyhow::Result<Progress> {
    let name = deployment["metadata"]["name"].as_str().unwrap_or_default();
    if revision > 0 {
        let current = match deployment["metadata"]["annotations"][REVISION].as_str() {
            None => 0,
            Some(v) => v.parse::<i64>().map_err(|_| {
                anyhow::anyhow!("cannot get the revision of deployment {name:?}: strconv.ParseInt: parsing {v:?}: invalid syntax")
            })?,
        };
        if current != revision {
            anyhow::bail!(
                "desired revision ({revision}) is different from the running revision ({current})"
            );
        }
    }
    let int = |v: &Value| v.as_i64().unwrap_or(0);
    let status = &deployment["status"];
    if int(&deployment["metadata"]["generation"]) > int(&status["observedGeneration"]) {
        return Ok(Progress::SpecNotObserved);
    }
    let timed_out = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Progressing")
        .is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded");
    if timed_out {
        anyhow::bail!("deployment {name:?} exceeded its progress deadline");
    }
    let (updated, replicas) = (int(&status["updatedReplicas"]), int(&status["replicas"]));
    let available = int(&status["availableReplicas"]);
    if let Some(desired) = deployment["spec"]["replicas"].as_i64() {
        if updated < desired {
            return Ok(Progress::Updating { updated, desired });
        }
    }
    if replicas > updated {
        return Ok(Progress::OldPending {
            old: replicas - updated,
        });
    }
    if available < updated {
        return Ok(Progress::Unavailable { available, updated });
    }
    Ok(Progress::RolledOut)
}

/// Runs `minikctl rollout status`: each object followed in turn, failures reported one by one.
pub async fn run(ctx: &Ctx, args: StatusArgs) -> anyhow::Result<()> {
    if args.revision < 0 {
        anyhow::bail!("revision must be a positive integer: {}", args.revision);
    }
    let objects = objects(ctx, &args.objects).await?;
    if objects.is_empty() {
        eprintln!("No resources found in {} namespace.", ctx.namespace);
    }
    let mut failures = Failures::default();
    for object in &objects {
        failures.check(ctx, status_one(ctx, object, &args).await);
    }
    failures.finish()
}

async fn status_one(ctx: &Ctx, object: &Named<'_>, args: &StatusArgs) -> anyhow::Result<()> {
    object.get(ctx).await?;
    if !is_deployment(object) {
        anyhow::bail!(
            "no status viewer has been implemented for {}",
            group_kind(object.resource)
        );
    }
    let timeout = Duration::from(args.timeout);
    if timeout.is_zero() {
        return follow(ctx, object, args).await;
    }
    match tokio::time::timeout(timeout, follow(ctx, object, args)).await {
        Ok(result) => result,
        Err(_) => anyhow::bail!("timed out waiting for the condition"),
    }
}

/// Where the follow loop is.
enum Step {
    /// List the Deployment (at the start, or when the watch's resourceVersion expired).
    List,
    /// Watch it from this resourceVersion.
    Watch(String),
    /// The rollout is done, or `--watch=false` printed it once.
    Done,
}

/// List, then watch, the one Deployment (`metadata.name` field selector, as kubectl does),
/// printing the rollout's state for each version seen.
async fn follow(ctx: &Ctx, object: &Named<'_>, args: &StatusArgs) -> anyhow::Result<()> {
    let url = object.resource.url(object.namespace.as_deref());
    let fields = format!("metadata.name={}", object.name);
    let mut step = Step::List;
    loop {
        step = match step {
            Step::Done => return Ok(()),
            Step::List => {
                let req =
                    kube::core::Request::new(&url).list(&ListParams::default().fields(&fields))?;
                let list: Value = ctx.client.request(req).await?;
                let mut step = Step::Watch(
                    list["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or("0")
                        .to_string(),
                );
                for item in list["items"].as_array().into_iter().flatten() {
                    if show(item, args)? {
                        step = Step::Done;
                    }
                }
                step
            }
            Step::Watch(rv) => {
                let wp = WatchParams::default().fields(&fields);
                let req = kube::core::Request::new(&url).watch(&wp, &rv)?;
                watch_until(ctx, req, rv, args).await?
            }
        }
    }
}

/// Follow one watch: the next step once it ends (the server closes watches now and then).
async fn watch_until(
    ctx: &Ctx,
    req: http::Request<Vec<u8>>,
    mut rv: String,
    args: &StatusArgs,
) -> anyhow::Result<Step> {
    let mut events = ctx.client.request_events::<Value>(req).await?.boxed();
    while let Some(event) = events.try_next().await? {
        let object = match event {
            WatchEvent::Added(o) | WatchEvent::Modified(o) => o,
            WatchEvent::Deleted(_) => anyhow::bail!("object has been deleted"),
            WatchEvent::Bookmark(b) => {
                rv = b.metadata.resource_version;
                continue;
            }
            WatchEvent::Error(s) if s.code == 410 => return Ok(Step::List),
            WatchEvent::Error(s) => return Err(kube::Error::Api(s).into()),
        };
        if let Some(v) = object["metadata"]["resourceVersion"].as_str() {
            rv = v.to_string();
        }
        if show(&object, args)? {
            return Ok(Step::Done);
        }
    }
    Ok(Step::Watch(rv))
}

/// Print the rollout's state; whether to stop (done, or not watching).
fn show(deployment: &Value, args: &StatusArgs) -> anyhow::Result<bool> {
    let name = deployment["metadata"]["name"].as_str().unwrap_or_default();
    let progress = progress(deployment, args.revision)?;
    emit(&progress.message(name))?;
    Ok(progress == Progress::RolledOut || !args.watch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(generation: i64, observed: i64, status: Value) -> Value {
        let mut status = status;
        status["observedGeneration"] = json!(observed);
        json!({
            "metadata": {"name": "web", "generation": generation,
                         "annotations": {REVISION: "2"}},
            "spec": {"replicas": 3},
            "status": status,
        })
    }

    fn message(d: &Value) -> String {
        progress(d, 0).unwrap().message("web")
    }

    #[test]
    fn each_stage_reads_like_kubectl() {
        let d = deployment(2, 1, json!({}));
        assert_eq!(
            message(&d),
            "Waiting for deployment spec update to be observed...\n"
        );
        let d = deployment(2, 2, json!({"replicas": 4, "updatedReplicas": 1}));
        assert_eq!(
            message(&d),
            "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...\n"
        );
        let d = deployment(2, 2, json!({"replicas": 4, "updatedReplicas": 3}));
        assert_eq!(
            message(&d),
            "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...\n"
        );
        let d = deployment(
            2,
            2,
            json!({"replicas": 3, "updatedReplicas": 3, "availableReplicas": 2}),
        );
        assert_eq!(
            message(&d),
            "Waiting for deployment \"web\" rollout to finish: 2 of 3 updated replicas are available...\n"
        );
        let d = deployment(
            2,
            2,
            json!({"replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
        );
        assert_eq!(progress(&d, 0).unwrap(), Progress::RolledOut);
        assert_eq!(message(&d), "deployment \"web\" successfully rolled out\n");
    }

    #[test]
    fn a_missed_deadline_and_another_revision_are_errors() {
        let d = deployment(
            1,
            1,
            json!({"conditions": [{"type": "Progressing", "status": "False",
                                    "reason": "ProgressDeadlineExceeded"}]}),
        );
        let err = progress(&d, 0).unwrap_err().to_string();
        assert_eq!(err, "deployment \"web\" exceeded its progress deadline");
        let d = deployment(1, 1, json!({}));
        assert!(progress(&d, 2).is_ok());
        let err = progress(&d, 3).unwrap_err().to_string();
        assert_eq!(
            err,
            "desired revision (3) is different from the running revision (2)"
        );
    }
}
