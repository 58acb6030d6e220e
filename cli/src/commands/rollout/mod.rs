//! `minikctl rollout`: watch, inspect and steer a Deployment's rollout.
//!
//! A Deployment never runs pods itself: each distinct pod template it has had is a ReplicaSet
//! annotated `deployment.kubernetes.io/revision: N`, and a *rollout* moves replicas from the
//! old ReplicaSets to the new one. Everything `rollout` does is therefore a read or a small
//! change of the Deployment: `status` follows its `status` until every replica is updated and
//! available, `history` lists the ReplicaSets by revision, `undo` copies an old ReplicaSet's
//! template back into the Deployment (the controller then finds that ReplicaSet again),
//! `restart` changes a template annotation (`kubectl.kubernetes.io/restartedAt`) so that a new
//! ReplicaSet replaces every pod, and `pause`/`resume` set `spec.paused`, which stops the
//! controller from rolling out template changes.
//! Read next: `status.rs`, then `history.rs`; the controller's side is
//! `controller/src/deployment/`.

mod history;
mod status;
pub(crate) mod template;

use kube::api::ListParams;
use serde_json::{json, Value};

use crate::discovery::Resource;

use super::node_maintenance::merge_patch;
use super::scale::{named, Named};
use super::{send, Ctx, Failures};

/// The template annotation whose change restarts every pod.
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// The arguments of `minikctl rollout`.
#[derive(clap::Args, Debug)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub command: RolloutCommand,
}

/// `rollout`'s subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum RolloutCommand {
    /// Show the status of the rollout, waiting until it is done.
    Status(status::StatusArgs),
    /// View previous rollout revisions and templates.
    History(history::HistoryArgs),
    /// Roll back to a previous rollout.
    Undo(history::UndoArgs),
    /// Restart every pod, through a new rollout.
    Restart(Objects),
    /// Mark the deployment as paused: template changes are not rolled out.
    Pause(Objects),
    /// Resume a paused deployment.
    Resume(Objects),
}

/// The objects a rollout subcommand acts on.
#[derive(clap::Args, Debug)]
pub struct Objects {
    /// `TYPE NAME...` or `TYPE/NAME...`.
    #[arg(value_name = "TYPE NAME | TYPE/NAME")]
    pub args: Vec<String>,
    /// Files naming the objects.
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<String>,
    /// Label selector: the objects of the type named that match it (`app=web`).
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
}

/// Runs `minikctl rollout`.
pub async fn run(ctx: &Ctx, args: RolloutArgs) -> anyhow::Result<()> {
    match args.command {
        RolloutCommand::Status(a) => status::run(ctx, a).await,
        RolloutCommand::History(a) => history::run(ctx, a).await,
        RolloutCommand::Undo(a) => history::undo(ctx, a).await,
        RolloutCommand::Restart(a) => change_each(ctx, a, Change::Restart).await,
        RolloutCommand::Pause(a) => change_each(ctx, a, Change::Pause).await,
        RolloutCommand::Resume(a) => change_each(ctx, a, Change::Resume).await,
    }
}

/// Is this object a Deployment (the only kind with a rollout here)?
fn is_deployment(object: &Named<'_>) -> bool {
    object.resource.group == "apps" && object.resource.kind == "Deployment"
}

/// Go's `schema.GroupKind` as kubectl's errors print it: `Pod`, `ReplicaSet.apps`.
fn group_kind(resource: &Resource) -> String {
    if resource.group.is_empty() {
        resource.kind.clone()
    } else {
        format!("{}.{}", resource.kind, resource.group)
    }
}

/// The objects a rollout subcommand acts on. A type alone means every object of that type in
/// the namespace (kubectl's builder allows an empty selector here; `scale` does not), `-l`
/// those of them its selector matches.
async fn objects<'a>(ctx: &'a Ctx, objects: &Objects) -> anyhow::Result<Vec<Named<'a>>> {
    if objects.args.is_empty() && objects.filenames.is_empty() {
        anyhow::bail!("required resource not specified");
    }
    let listed = match objects.args.as_slice() {
        [kind] if !kind.contains('/') && objects.filenames.is_empty() => kind,
        args if objects.selector.is_some() && args.iter().any(|a| a.contains('/')) => {
            anyhow::bail!(
                "selectors and the all flag cannot be used when passing resource/name arguments"
            )
        }
        _ if objects.selector.is_some() => {
            anyhow::bail!("name cannot be provided when a selector is specified")
        }
        _ => return named(ctx, &objects.args, &objects.filenames, "rollout").await,
    };
    let resource = ctx.discovery().await?.resolve(listed)?;
    let namespace = resource.namespaced.then(|| ctx.namespace.clone());
    let mut lp = ListParams::default();
    if let Some(l) = &objects.selector {
        lp = lp.labels(l);
    }
    let req = kube::core::Request::new(resource.url(namespace.as_deref())).list(&lp)?;
    let list = send(ctx, req).await?;
    let names = list["items"].as_array().into_iter().flatten();
    Ok(names
        .filter_map(|o| o["metadata"]["name"].as_str())
        .map(|name| Named {
            resource,
            namespace: namespace.clone(),
            name: name.to_string(),
        })
        .collect())
}

/// The small changes `restart`, `pause` and `resume` make to a Deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Restart,
    Pause,
    Resume,
}

impl Change {
    /// kubectl's word in `pods "x" pausing is not supported`.
    fn gerund(self) -> &'static str {
        match self {
            Change::Restart => "restarting",
            Change::Pause => "pausing",
            Change::Resume => "resuming",
        }
    }

    /// The line printed after the change: `deployment.apps/web paused`.
    fn done(self) -> &'static str {
        match self {
            Change::Restart => "restarted",
            Change::Pause => "paused",
            Change::Resume => "resumed",
        }
    }

    /// The merge patch for `deployment`, or why there is none (kubectl's words).
    fn patch(self, deployment: &Value, now: &str) -> Result<Value, &'static str> {
        let paused = deployment["spec"]["paused"].as_bool().unwrap_or(false);
        match self {
            Change::Pause if paused => Err("is already paused"),
            Change::Pause => Ok(json!({"spec": {"paused": true}})),
            Change::Resume if !paused => Err("is not paused"),
            Change::Resume => Ok(json!({"spec": {"paused": null}})),
            Change::Restart if paused => {
                Err("can't restart paused deployment (run rollout resume first)")
            }
            Change::Restart => Ok(json!({"spec": {"template": {"metadata": {
                "annotations": {RESTARTED_AT: now}}}}})),
        }
    }
}

/// Apply `change` to each named object, reporting failures one by one as kubectl does.
async fn change_each(ctx: &Ctx, objects: Objects, change: Change) -> anyhow::Result<()> {
    let objects = self::objects(ctx, &objects).await?;
    if objects.is_empty() {
        eprintln!("No resources found in {} namespace.", ctx.namespace);
    }
    let mut failures = Failures::default();
    for object in &objects {
        failures.print(ctx, change_one(ctx, object, change).await)?;
    }
    failures.finish()
}

/// Change one object; the line to print.
async fn change_one(ctx: &Ctx, object: &Named<'_>, change: Change) -> anyhow::Result<String> {
    let current = object.get(ctx).await?;
    if !is_deployment(object) {
        anyhow::bail!("{} {} is not supported", object.quoted(), change.gerund());
    }
    let now = rfc3339_now();
    let patch = match change.patch(&current, &now) {
        Ok(p) => p,
        Err(why) => anyhow::bail!("{} {why}", object.quoted()),
    };
    let annotations = &current["spec"]["template"]["metadata"]["annotations"];
    if change == Change::Restart && annotations[RESTARTED_AT] == now.as_str() {
        anyhow::bail!(
            "failed to create patch for {}: if restart has already been triggered within the past second, please wait before attempting to trigger another",
            object.name
        );
    }
    merge_patch(ctx, &object.url(), &patch).await?;
    Ok(format!("{} {}\n", object.display(), change.done()))
}

/// Now as Go's `time.Now().Format(time.RFC3339)` writes it: local time, `Z` for UTC.
fn rfc3339_now() -> String {
    let now = jiff::Zoned::now();
    if now.offset().seconds() == 0 {
        now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        now.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_refuse_what_kubectl_refuses() {
        let running = json!({"spec": {}});
        let paused = json!({"spec": {"paused": true}});
        assert_eq!(Change::Resume.patch(&running, "t"), Err("is not paused"));
        assert_eq!(Change::Pause.patch(&paused, "t"), Err("is already paused"));
        assert!(Change::Restart.patch(&paused, "t").is_err());
        assert_eq!(
            Change::Restart.patch(&running, "t").unwrap()["spec"]["template"]["metadata"]
                ["annotations"][RESTARTED_AT],
            "t"
        );
        assert_eq!(
            Change::Resume.patch(&paused, "t").unwrap(),
            json!({"spec": {"paused": null}})
        );
    }

    #[test]
    fn timestamps_are_rfc3339_to_the_second() {
        let t = rfc3339_now();
        assert!(t.len() == 20 || t.len() == 25, "{t}");
        assert_eq!(&t[10..11], "T");
    }
}
