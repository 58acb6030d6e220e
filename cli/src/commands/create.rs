//! `minikctl create -f FILE|DIR|-`: POST every object of the manifests, as they are.
//!
//! Unlike `apply`, `create` is not idempotent: an object that exists is an error
//! (`AlreadyExists`), reported with the file it came from, and the others are still created.
//! `--save-config` records the last-applied annotation, so a later `apply` can three-way
//! merge. Read next: `apply.rs`.

use anyhow::Context;
use kube::api::PostParams;

use crate::apply::with_last_applied;
use crate::manifest;

use super::{place, send, Ctx, Failures};

/// `create`'s arguments.
#[derive(clap::Args, Debug)]
pub struct CreateArgs {
    /// Files, directories or `-` (stdin) holding the objects.
    #[arg(short = 'f', long = "filename", required = true)]
    pub filenames: Vec<String>,
    /// Read the directories given with -f recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Record the object in the last-applied annotation, for a later `apply`.
    #[arg(long = "save-config")]
    pub save_config: bool,
}

pub async fn run(ctx: &Ctx, args: CreateArgs) -> anyhow::Result<()> {
    let manifests = manifest::read_all(&args.filenames, args.recursive, "create")?;
    let (placed, failed) = place(ctx, manifests).await?;
    let mut failures = Failures::new(failed);
    for p in &placed {
        let object = if args.save_config {
            with_last_applied(&p.manifest.object)
        } else {
            p.manifest.object.clone()
        };
        let result = async {
            let body = serde_json::to_vec(&object)?;
            let req =
                kube::core::Request::new(p.collection()).create(&PostParams::default(), body)?;
            send(ctx, req).await?;
            anyhow::Ok(())
        }
        .await
        .with_context(|| format!("error when creating {:?}", p.manifest.source));
        failures.print(ctx, result.map(|()| format!("{} created\n", p.display())))?;
    }
    failures.finish()
}
