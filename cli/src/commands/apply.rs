//! `minikctl apply -f FILE|DIR|-`: make the cluster look like the manifests, repeatably.
//!
//! Client-side apply (the default) reads each live object. Missing: it is created, carrying
//! the `kubectl.kubernetes.io/last-applied-configuration` annotation. Present: the three-way
//! patch of `../apply/mod.rs` (last applied, file, live) is sent as a strategic merge patch
//! for built-in kinds (a JSON merge patch otherwise), and the annotation moves on with it;
//! an empty patch prints `unchanged`. `--server-side` leaves the merge to the server instead
//! (server-side apply: the server tracks which *field manager* owns which field, here
//! `minikctl`, and refuses to take fields another manager owns unless `--force-conflicts`).
//! Read next: `delete.rs`.

use anyhow::Context;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::Value;

use crate::apply::{recorded_last_applied, three_way_patch, with_last_applied};
use crate::manifest;

use super::{place, send, Ctx, Failures, Placed};

/// `apply`'s arguments.
#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// Files, directories or `-` (stdin) holding the objects.
    #[arg(short = 'f', long = "filename", required = true)]
    pub filenames: Vec<String>,
    /// Read the directories given with -f recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Let the server merge (server-side apply) instead of a client-side three-way patch.
    #[arg(long = "server-side")]
    pub server_side: bool,
    /// With --server-side: take over fields other managers own.
    #[arg(long = "force-conflicts", requires = "server_side")]
    pub force_conflicts: bool,
    /// The field manager server-side apply records.
    #[arg(long = "field-manager", default_value = "minikctl")]
    pub field_manager: String,
}

/// What applying one object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Configured,
    Unchanged,
    ServerSideApplied,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
            Outcome::ServerSideApplied => "serverside-applied",
        }
    }
}

pub async fn run(ctx: &Ctx, args: ApplyArgs) -> anyhow::Result<()> {
    let manifests = manifest::read_all(&args.filenames, args.recursive, "apply")?;
    let (placed, failed) = place(ctx, manifests).await?;
    let mut failures = Failures::new(failed);
    for p in &placed {
        let result = if args.server_side {
            server_side(ctx, p, &args).await
        } else {
            client_side(ctx, p).await
        };
        let line = result.map(|outcome| format!("{} {}\n", p.display(), outcome.word()));
        failures.print(ctx, line)?;
    }
    failures.finish()
}

/// The three-way merge: create, patch, or nothing.
async fn client_side(ctx: &Ctx, p: &Placed<'_>) -> anyhow::Result<Outcome> {
    let modified = with_last_applied(&p.manifest.object);
    let Some(current) = live(ctx, p).await? else {
        let body = serde_json::to_vec(&modified)?;
        let req = kube::core::Request::new(p.collection()).create(&PostParams::default(), body)?;
        send(ctx, req)
            .await
            .with_context(|| format!("error when creating {:?}", p.manifest.source))?;
        return Ok(Outcome::Created);
    };
    let original = recorded_last_applied(&current);
    if original.is_none() {
        eprintln!(
            "Warning: resource {}/{} is missing the kubectl.kubernetes.io/last-applied-configuration annotation which is required by minikctl apply. minikctl apply should only be used on resources created declaratively by either minikctl create --save-config or minikctl apply. The missing annotation will be patched automatically.",
            p.resource.qualified_plural(),
            p.name()
        );
    }
    let strategic = is_built_in(&p.resource.group);
    let patch = three_way_patch(original.as_ref(), &modified, &current, strategic);
    if patch.is_empty() {
        return Ok(Outcome::Unchanged);
    }
    let patch = Value::Object(patch);
    let patch = if strategic {
        Patch::Strategic(patch)
    } else {
        Patch::Merge(patch)
    };
    let req = kube::core::Request::new(p.collection()).patch(
        p.name(),
        &PatchParams::default(),
        &patch,
    )?;
    send(ctx, req)
        .await
        .with_context(|| format!("error when patching {:?}", p.manifest.source))?;
    Ok(Outcome::Configured)
}

/// The live object, `None` if there is none.
async fn live(ctx: &Ctx, p: &Placed<'_>) -> anyhow::Result<Option<Value>> {
    let req = kube::core::Request::new(p.collection()).get(p.name(), &Default::default())?;
    match send(ctx, req).await {
        Ok(v) => Ok(Some(v)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(anyhow::Error::from(e).context(format!(
            "error when retrieving current configuration of {:?}",
            p.manifest.source
        ))),
    }
}

/// Server-side apply: one PATCH of type `application/apply-patch+yaml` with the whole object.
async fn server_side(ctx: &Ctx, p: &Placed<'_>, args: &ApplyArgs) -> anyhow::Result<Outcome> {
    let mut params = PatchParams::apply(&args.field_manager);
    if args.force_conflicts {
        params = params.force();
    }
    let patch = Patch::Apply(p.manifest.object.clone());
    let req = kube::core::Request::new(p.collection()).patch(p.name(), &params, &patch)?;
    send(ctx, req)
        .await
        .with_context(|| format!("error when applying {:?}", p.manifest.source))?;
    Ok(Outcome::ServerSideApplied)
}

/// Kinds compiled into the apiserver (the core group and the `*.k8s.io`-less built-in
/// groups) understand strategic merge patches; custom resources only JSON merge patches.
fn is_built_in(group: &str) -> bool {
    group.is_empty() || !group.contains('.') || group.ends_with(".k8s.io")
}
