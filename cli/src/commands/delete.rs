//! `minikctl delete`: remove objects named by file, by type and name, by selector, or all.
//!
//! A DELETE in Kubernetes is a request, not an act: the object gets a `deletionTimestamp` and
//! goes only when nothing holds it. A pod waits out its *grace period* (`--grace-period`) while
//! its kubelet stops the containers; an object with finalizers waits for them. *Cascade*
//! decides what happens to the objects it owns (`ownerReferences`): `background` (the
//! default) deletes the owner at once and lets the garbage collector remove the dependents,
//! `foreground` keeps the owner until the dependents are gone, `orphan` leaves them alone.
//! `--wait` (on by default, as in kubectl) returns only once each object is really gone.
//! Read next: `../apply/mod.rs`.

use std::time::Duration;

use anyhow::Context;
use kube::api::{DeleteParams, ListParams, PropagationPolicy};
use serde_json::Value;

use crate::discovery::Resource;
use crate::manifest;
use crate::printer::emit;

use super::{get, place, send, Ctx, Failures};

/// `--cascade`: what becomes of the objects the deleted one owns.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cascade {
    /// Delete the owner now; the garbage collector deletes its dependents afterwards.
    #[default]
    Background,
    /// Delete the dependents first; the owner goes last.
    Foreground,
    /// Leave the dependents, without their owner reference.
    Orphan,
}

impl Cascade {
    fn policy(self) -> PropagationPolicy {
        match self {
            Cascade::Background => PropagationPolicy::Background,
            Cascade::Foreground => PropagationPolicy::Foreground,
            Cascade::Orphan => PropagationPolicy::Orphan,
        }
    }
}

/// `delete`'s arguments.
#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// `TYPE NAME...`, `TYPE/NAME...`, or `TYPE` with -l or --all.
    #[arg(value_name = "TYPE [NAME]")]
    pub args: Vec<String>,
    /// Files, directories or `-` naming the objects to delete.
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<String>,
    /// Read the directories given with -f recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Delete the objects matching this label selector.
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// Delete every object of the type (in the namespace).
    #[arg(long)]
    pub all: bool,
    /// Seconds the object has to stop gracefully; -1 uses the object's own default.
    #[arg(long = "grace-period", default_value_t = -1, allow_negative_numbers = true)]
    pub grace_period: i64,
    /// Delete at once, without waiting for the object to stop (grace period 0).
    #[arg(long)]
    pub force: bool,
    /// Signal the object to stop at once (grace period 1).
    #[arg(long, conflicts_with = "grace_period")]
    pub now: bool,
    /// What happens to the objects this one owns.
    #[arg(long, value_enum, default_value_t = Cascade::Background)]
    pub cascade: Cascade,
    /// Wait until the objects are gone before returning.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub wait: bool,
    /// Treat "not found" as success.
    #[arg(long = "ignore-not-found")]
    pub ignore_not_found: bool,
}

/// One object to delete.
struct ToDelete<'a> {
    resource: &'a Resource,
    namespace: Option<String>,
    name: String,
    /// The manifest file it was named in, for kubectl's `error when deleting "f.yaml"`.
    source: Option<String>,
}

pub async fn run(ctx: &Ctx, args: DeleteArgs) -> anyhow::Result<()> {
    let (objects, failed) = to_delete(ctx, &args).await?;
    let mut failures = Failures::new(failed);
    let params = params(&args);
    let mut gone = Vec::new();
    for v in &objects {
        let result = delete_one(ctx, v, &params, args.ignore_not_found).await;
        if let Some(uid) = failures.check(ctx, result).flatten() {
            let kind = v.resource.qualified_kind();
            emit(&format!("{kind} \"{}\" deleted\n", v.name))?;
            gone.push((v, uid));
        }
    }
    if args.wait {
        for (v, uid) in gone {
            wait_gone(ctx, v, &uid).await?;
        }
    }
    failures.finish()
}

fn params(args: &DeleteArgs) -> DeleteParams {
    let mut params = DeleteParams {
        propagation_policy: Some(args.cascade.policy()),
        ..Default::default()
    };
    if let Some(secs) = grace_period(args) {
        params = params.grace_period(secs);
    }
    params
}

/// kubectl's reading of the grace flags: `--now` is 1; 0 (or `--force` alone) means
/// immediately only with `--force`, else 1; -1 leaves the object's own default.
fn grace_period(args: &DeleteArgs) -> Option<u32> {
    match (args.grace_period, args.force, args.now) {
        (_, _, true) => Some(1),
        (-1, true, _) => Some(0),
        (0, false, _) => Some(1),
        (g, _, _) => u32::try_from(g).ok(),
    }
}

/// What the arguments name; "not found" in a file is reported and flags a failure.
async fn to_delete<'a>(
    ctx: &'a Ctx,
    args: &DeleteArgs,
) -> anyhow::Result<(Vec<ToDelete<'a>>, bool)> {
    if !args.filenames.is_empty() {
        let manifests = manifest::read_all(&args.filenames, args.recursive, "delete")?;
        let (placed, failed) = place(ctx, manifests).await?;
        let objects = placed
            .into_iter()
            .map(|p| ToDelete {
                name: p.name().to_string(),
                resource: p.resource,
                namespace: p.namespace,
                source: Some(p.manifest.source),
            })
            .collect();
        return Ok((objects, failed));
    }
    if args.args.is_empty() {
        anyhow::bail!("You must provide one or more resources by argument or filename.");
    }
    let discovery = ctx.discovery().await?;
    let targets = get::targets(discovery, &args.args)?;
    let mut objects = Vec::new();
    for target in targets {
        let names = if target.names.is_empty() {
            if args.selector.is_none() && !args.all {
                anyhow::bail!("resource(s) were provided, but no name was specified");
            }
            listed(ctx, target.resource, args.selector.as_deref()).await?
        } else {
            let ns = ctx.namespace.clone();
            target
                .names
                .into_iter()
                .map(|n| (Some(ns.clone()), n))
                .collect()
        };
        if names.is_empty() {
            eprintln!(
                "{}",
                get::no_resources_message(ctx, target.resource.namespaced)
            );
        }
        for (namespace, name) in names {
            objects.push(ToDelete {
                resource: target.resource,
                namespace: namespace.filter(|_| target.resource.namespaced),
                name,
                source: None,
            });
        }
    }
    Ok((objects, false))
}

/// (namespace, name) of every object of `resource` matching `selector` (`-A`: everywhere).
async fn listed(
    ctx: &Ctx,
    resource: &Resource,
    selector: Option<&str>,
) -> anyhow::Result<Vec<(Option<String>, String)>> {
    let mut lp = ListParams::default();
    if let Some(s) = selector {
        lp = lp.labels(s);
    }
    let req = kube::core::Request::new(resource.url(ctx.list_namespace())).list(&lp)?;
    let list = send(ctx, req).await?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    Ok(items
        .iter()
        .map(|i| {
            let ns = i["metadata"]["namespace"].as_str().map(str::to_string);
            (
                ns,
                i["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect())
}

/// DELETE one object; its UID (to tell it from a successor of the same name when waiting),
/// or `None` when it was not there and `--ignore-not-found` says that is fine.
async fn delete_one(
    ctx: &Ctx,
    v: &ToDelete<'_>,
    params: &DeleteParams,
    ignore_not_found: bool,
) -> anyhow::Result<Option<String>> {
    let url = v.resource.url(v.namespace.as_deref());
    let req = kube::core::Request::new(url).delete(&v.name, params)?;
    match send(ctx, req).await {
        Ok(answer) => Ok(Some(uid(&answer))),
        Err(kube::Error::Api(s)) if s.code == 404 && ignore_not_found => Ok(None),
        Err(e) => {
            let err = anyhow::Error::from(e);
            Err(match &v.source {
                Some(f) => err.context(format!("error when deleting {f:?}")),
                None => err,
            })
        }
    }
}

fn uid(object: &Value) -> String {
    object["metadata"]["uid"]
        .as_str()
        .or_else(|| object["details"]["uid"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Poll until the object is gone (404) or replaced by another of the same name.
async fn wait_gone(ctx: &Ctx, v: &ToDelete<'_>, deleted_uid: &str) -> anyhow::Result<()> {
    let url = v.resource.url(v.namespace.as_deref());
    loop {
        let req = kube::core::Request::new(url.clone()).get(&v.name, &Default::default())?;
        match send(ctx, req).await {
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => {
                return Err(e).context(format!(
                    "waiting for {} {:?} to go",
                    v.resource.plural, v.name
                ))
            }
            Ok(o) if uid(&o) != deleted_uid => return Ok(()),
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
