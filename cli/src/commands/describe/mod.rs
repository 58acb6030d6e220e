//! `minikctl describe (-f FILE | TYPE [NAME...] | TYPE/NAME... | TYPE -l SELECTOR)`: one
//! readable page per object, ending with its Events, as `kubectl describe` prints it.
//!
//! `get` shows what the server stores; `describe` shows what a person needs to understand an
//! object, gathered from several places: the object, the objects around it (a Deployment's
//! ReplicaSets, a Node's pods and Lease) and the Events whose `involvedObject` is this object
//! (matched by name, namespace, kind and uid, so a deleted namesake's events stay out). Each
//! kind with a describer of its own has a file: `pod.rs` (with `containers.rs`),
//! `workload.rs` (Deployment, ReplicaSet), `node.rs`, and `generic.rs` (Namespace, and every
//! other kind through kubectl's generic describer). `text.rs` holds the page writer and what
//! they share; [`pod_template`] lends kubectl's `DescribePodTemplate` to `rollout history`.
//! Several objects are separated by two empty lines, errors come last, one line each;
//! `describe pods we` describes the pods whose names start with `we` when none is named `we`
//! exactly. Read next: `text.rs`, then `pod.rs`.

mod containers;
mod generic;
mod node;
mod pod;
mod text;
mod workload;

use crate::discovery::Resource;
use crate::error;
use crate::manifest;
use crate::printer::style::{emit_keyed, eprint_error};

use super::{get, place, Ctx, Reported};

/// The arguments of `minikctl describe`.
#[derive(clap::Args, Debug)]
pub struct DescribeArgs {
    /// `TYPE [NAME_PREFIX]`, `TYPE NAME...`, or `TYPE/NAME...`.
    #[arg(value_name = "TYPE [NAME]")]
    pub args: Vec<String>,
    /// Files, directories or `-` naming the objects to describe.
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<String>,
    /// Read the directories given with -f recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Describe the objects matching this label selector.
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// Show the Events about each object at the end of its page.
    #[arg(long = "show-events", default_value_t = true, action = clap::ArgAction::Set,
        num_args = 0..=1, default_missing_value = "true")]
    pub show_events: bool,
}

/// One object to describe.
struct Info<'a> {
    resource: &'a Resource,
    /// `None` for cluster-scoped kinds.
    namespace: Option<String>,
    name: String,
}

/// Runs `minikctl describe`.
pub async fn run(ctx: &Ctx, args: DescribeArgs) -> anyhow::Result<()> {
    if args.args.is_empty() && args.filenames.is_empty() {
        anyhow::bail!("You must specify the type of resource to describe. Use \"minikctl api-resources\" for a complete list of supported resources.");
    }
    let mut errors: Vec<String> = Vec::new();
    let infos = infos(ctx, &args, &mut errors).await?;
    if infos.is_empty()
        && errors.len() == 1
        && is_type_and_name(&args)
        && by_prefix(ctx, &args).await?
    {
        return Ok(());
    }
    let mut first = true;
    for info in &infos {
        match describe_one(ctx, info, args.show_events).await {
            Ok(page) => {
                let sep = if first { "" } else { "\n\n" };
                emit_keyed(&format!("{sep}{page}"))?;
                first = false;
            }
            Err(e) => push_unique(&mut errors, error::render(&e, Some(&ctx.server))),
        }
    }
    if infos.is_empty() && errors.is_empty() {
        eprintln!("{}", get::no_resources_message(ctx, true));
    }
    if errors.is_empty() {
        return Ok(());
    }
    for e in &errors {
        eprint_error(e);
    }
    Err(Reported.into())
}

/// `describe TYPE NAME`: the form where kubectl falls back to a name prefix.
fn is_type_and_name(args: &DescribeArgs) -> bool {
    args.args.len() == 2 && !args.args[0].contains('/') && args.filenames.is_empty()
}

fn push_unique(errors: &mut Vec<String>, e: String) {
    if !errors.contains(&e) {
        errors.push(e);
    }
}

/// The objects the arguments name: from files, by name, or every one of a type (with -l).
/// A name that is not there is an error line in `errors`; other failures end the command.
async fn infos<'a>(
    ctx: &'a Ctx,
    args: &DescribeArgs,
    errors: &mut Vec<String>,
) -> anyhow::Result<Vec<Info<'a>>> {
    let mut out = Vec::new();
    if !args.filenames.is_empty() {
        let manifests = manifest::read_all(&args.filenames, args.recursive, "describe")?;
        let (placed, failed) = place(ctx, manifests).await?;
        if failed {
            return Err(Reported.into());
        }
        for p in placed {
            out.push(Info {
                resource: p.resource,
                name: p.name().to_string(),
                namespace: p.namespace,
            });
        }
    }
    if args.args.is_empty() {
        return Ok(out);
    }
    let targets = get::targets(ctx.discovery().await?, &args.args)?;
    let named = targets.iter().any(|t| !t.names.is_empty());
    if named && args.selector.is_some() {
        anyhow::bail!("name cannot be provided when a selector is specified");
    }
    if named && ctx.all_namespaces {
        anyhow::bail!("a resource cannot be retrieved by name across all namespaces");
    }
    for t in targets {
        let ns = |ns: Option<&str>| {
            t.resource
                .namespaced
                .then(|| ns.unwrap_or_default().to_string())
        };
        if t.names.is_empty() {
            for (item_ns, name) in list(ctx, t.resource, args.selector.as_deref()).await? {
                out.push(Info {
                    resource: t.resource,
                    namespace: ns(Some(&item_ns)),
                    name,
                });
            }
            continue;
        }
        for name in t.names {
            let namespace = ns(Some(&ctx.namespace));
            match exists(ctx, t.resource, namespace.as_deref(), &name).await {
                Ok(()) => out.push(Info {
                    resource: t.resource,
                    namespace,
                    name,
                }),
                Err(e) => push_unique(errors, error::render(&e, Some(&ctx.server))),
            }
        }
    }
    Ok(out)
}

/// The namespace and name of every object of `resource` in the namespace (every namespace
/// with -A), matching `selector`.
async fn list(
    ctx: &Ctx,
    resource: &Resource,
    selector: Option<&str>,
) -> anyhow::Result<Vec<(String, String)>> {
    let ns = if resource.namespaced {
        ctx.list_namespace()
    } else {
        None
    };
    let mut lp = kube::api::ListParams::default();
    if let Some(l) = selector {
        lp = lp.labels(l);
    }
    let req = kube::core::Request::new(resource.url(ns)).list(&lp)?;
    let list = get::get_json(ctx, &req.uri().to_string(), false).await?;
    let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| (s(&o["metadata"]["namespace"]), s(&o["metadata"]["name"])))
        .collect())
}

/// Is the object there? (kubectl's builder reads each named object before describing it.)
async fn exists(ctx: &Ctx, r: &Resource, ns: Option<&str>, name: &str) -> anyhow::Result<()> {
    get::get_json(ctx, &format!("{}/{name}", r.url(ns)), false).await?;
    Ok(())
}

/// `describe TYPE PREFIX` when no object is named PREFIX: describe those whose names start
/// with it, each page followed by an empty line. False when there are none (the NotFound
/// stands).
async fn by_prefix(ctx: &Ctx, args: &DescribeArgs) -> anyhow::Result<bool> {
    let resource = ctx.discovery().await?.resolve(&args.args[0])?;
    let prefix = args.args[1].as_str();
    let mut found = false;
    for (ns, name) in list(ctx, resource, None).await? {
        if !name.starts_with(prefix) {
            continue;
        }
        found = true;
        let info = Info {
            resource,
            namespace: resource.namespaced.then_some(ns),
            name,
        };
        let page = describe_one(ctx, &info, args.show_events).await?;
        emit_keyed(&format!("{page}\n"))?;
    }
    Ok(found)
}

/// kubectl's `DescribePodTemplate`: `Pod Template:` and the template's labels, containers
/// and volumes, as `rollout history --revision=N` and `rollout undo --dry-run=client` print
/// it. Written straight into a buffer, so its tabs stay tabs; the describe pages of a
/// Deployment and a ReplicaSet print the same lines, aligned with the rest of the page.
pub fn pod_template(t: &k8s_openapi::api::core::v1::PodTemplateSpec) -> String {
    let mut w = text::Page::default();
    workload::pod_template(&mut w, t);
    w.unaligned()
}

/// The page of one object, from the describer of its kind.
async fn describe_one(ctx: &Ctx, info: &Info<'_>, events: bool) -> anyhow::Result<String> {
    let ns = info.namespace.as_deref().unwrap_or_default();
    let name = info.name.as_str();
    match (info.resource.group.as_str(), info.resource.kind.as_str()) {
        ("", "Pod") => pod::pod(ctx, ns, name, events).await,
        ("", "Node") => node::node(ctx, name, events).await,
        ("", "Namespace") => generic::namespace(ctx, name).await,
        ("apps", "Deployment") => workload::deployment(ctx, ns, name, events).await,
        ("apps", "ReplicaSet") => workload::replica_set(ctx, ns, name, events).await,
        _ => {
            let ns = info.namespace.as_deref();
            generic::generic(ctx, info.resource, ns, name, events).await
        }
    }
}
