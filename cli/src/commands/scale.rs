//! `minikctl scale`: set a Deployment's or ReplicaSet's replicas through its scale subresource.
//!
//! A workload that can be scaled serves a second view of itself, `.../deployments/web/scale`:
//! an `autoscaling/v1 Scale` holding only `spec.replicas` (and `status.selector`). Autoscalers
//! and `kubectl scale` write that view, never the whole object, so they need no knowledge of
//! the workload's kind and cannot clobber its template. `--current-replicas` makes the write
//! conditional: read the Scale, compare, and PUT it back with its `resourceVersion`, so a
//! concurrent change fails with a conflict instead of being overwritten.
//! Read next: `rollout/mod.rs`, which changes the template instead.

use anyhow::Context;
use serde_json::{json, Value};

use crate::discovery::Resource;
use crate::manifest;

use super::{get, place, send, Ctx, Failures, Reported};

/// The arguments of `minikctl scale`.
#[derive(clap::Args, Debug)]
pub struct ScaleArgs {
    /// `TYPE NAME...` or `TYPE/NAME...`.
    #[arg(value_name = "TYPE NAME | TYPE/NAME")]
    pub args: Vec<String>,
    /// Files naming the objects to scale.
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<String>,
    /// The new number of replicas.
    #[arg(long, allow_negative_numbers = true)]
    pub replicas: Option<i64>,
    /// Scale only if the current number of replicas is this (-1: no condition).
    #[arg(long = "current-replicas", default_value_t = -1, allow_negative_numbers = true)]
    pub current_replicas: i64,
    /// Scale only if the object's resourceVersion is this.
    #[arg(long = "resource-version")]
    pub resource_version: Option<String>,
}

/// One object named on the command line or in a file.
pub struct Named<'a> {
    pub resource: &'a Resource,
    /// `None` for cluster-scoped resources.
    pub namespace: Option<String>,
    pub name: String,
}

impl Named<'_> {
    /// The object's URL.
    pub fn url(&self) -> String {
        format!(
            "{}/{}",
            self.resource.url(self.namespace.as_deref()),
            self.name
        )
    }

    /// `deployment.apps/web`, as the `scaled` / `paused` lines name it.
    pub fn display(&self) -> String {
        format!("{}/{}", self.resource.qualified_kind(), self.name)
    }

    /// `deployments.apps "web"`, as kubectl's errors name it.
    pub fn quoted(&self) -> String {
        format!("{} {:?}", self.resource.qualified_plural(), self.name)
    }

    /// GET the object.
    pub async fn get(&self, ctx: &Ctx) -> Result<Value, kube::Error> {
        get::get_json(ctx, &self.url(), false).await
    }
}

/// The objects `TYPE NAME...`, `TYPE/NAME...` or `-f FILE` name, as kubectl's resource
/// builder finds them (a type without a name is kubectl's error).
pub async fn named<'a>(
    ctx: &'a Ctx,
    args: &[String],
    filenames: &[String],
    verb: &'static str,
) -> anyhow::Result<Vec<Named<'a>>> {
    if !filenames.is_empty() {
        let manifests = manifest::read_all(filenames, false, verb)?;
        let (placed, failed) = place(ctx, manifests).await?;
        if failed {
            return Err(Reported.into());
        }
        return Ok(placed
            .into_iter()
            .map(|p| Named {
                name: p.name().to_string(),
                resource: p.resource,
                namespace: p.namespace,
            })
            .collect());
    }
    if args.is_empty() {
        anyhow::bail!("You must provide one or more resources by argument or filename.");
    }
    let discovery = ctx.discovery().await?;
    let mut out = Vec::new();
    for target in get::targets(discovery, args)? {
        if target.names.is_empty() {
            anyhow::bail!("resource(s) were provided, but no name was specified");
        }
        for name in target.names {
            out.push(Named {
                resource: target.resource,
                namespace: target.resource.namespaced.then(|| ctx.namespace.clone()),
                name,
            });
        }
    }
    Ok(out)
}

/// Runs `minikctl scale`: each object is read first (kubectl's builder does), then scaled.
pub async fn run(ctx: &Ctx, args: ScaleArgs) -> anyhow::Result<()> {
    let replicas = match args.replicas {
        None => anyhow::bail!("required flag(s) \"replicas\" not set"),
        Some(n) if n < 0 => anyhow::bail!(
            "The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0"
        ),
        Some(n) => n,
    };
    let objects = named(ctx, &args.args, &args.filenames, "scale").await?;
    let mut failures = Failures::default();
    for object in &objects {
        if let Err(kube::Error::Api(s)) = object.get(ctx).await {
            if s.code == 404 {
                anyhow::bail!("no objects passed to scale {}", s.message);
            }
        }
        let result = scale_one(ctx, object, &args, replicas).await;
        let line = result.map(|()| format!("{} scaled\n", object.display()));
        failures.print(ctx, line)?;
    }
    failures.finish()
}

/// Write `replicas` through the scale subresource: a merge patch, or with a precondition a
/// read, a check and a PUT carrying the resourceVersion read.
async fn scale_one(
    ctx: &Ctx,
    object: &Named<'_>,
    args: &ScaleArgs,
    replicas: i64,
) -> anyhow::Result<()> {
    let url = format!("{}/scale", object.url());
    if args.current_replicas < 0 && args.resource_version.is_none() {
        let body = json!({"spec": {"replicas": replicas}});
        let req = http::Request::patch(&url)
            .header(http::header::CONTENT_TYPE, "application/merge-patch+json")
            .body(serde_json::to_vec(&body)?)?;
        send(ctx, req).await?;
        return Ok(());
    }
    let mut scale = get::get_json(ctx, &url, false).await?;
    check_preconditions(&scale, args)?;
    scale["spec"]["replicas"] = json!(replicas);
    let req = http::Request::put(&url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&scale)?)?;
    send(ctx, req)
        .await
        .with_context(|| format!("scaling {}", object.display()))?;
    Ok(())
}

/// kubectl's `PreconditionError`: `Expected replicas to be 2, was 3`.
fn check_preconditions(scale: &Value, args: &ScaleArgs) -> anyhow::Result<()> {
    let current = scale["spec"]["replicas"].as_i64().unwrap_or(0);
    if args.current_replicas >= 0 && current != args.current_replicas {
        anyhow::bail!(
            "Expected replicas to be {}, was {current}",
            args.current_replicas
        );
    }
    let rv = scale["metadata"]["resourceVersion"].as_str().unwrap_or("");
    match &args.resource_version {
        Some(want) if want != rv => {
            anyhow::bail!("Expected resource version to be {want}, was {rv}")
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(current: i64, rv: Option<&str>) -> ScaleArgs {
        ScaleArgs {
            args: Vec::new(),
            filenames: Vec::new(),
            replicas: Some(3),
            current_replicas: current,
            resource_version: rv.map(str::to_string),
        }
    }

    #[test]
    fn preconditions_read_like_kubectls() {
        let scale = json!({"metadata": {"resourceVersion": "7"}, "spec": {"replicas": 3}});
        assert!(check_preconditions(&scale, &args(3, Some("7"))).is_ok());
        assert!(check_preconditions(&scale, &args(-1, None)).is_ok());
        let err = check_preconditions(&scale, &args(2, None)).unwrap_err();
        assert_eq!(err.to_string(), "Expected replicas to be 2, was 3");
        let err = check_preconditions(&scale, &args(-1, Some("5"))).unwrap_err();
        assert_eq!(err.to_string(), "Expected resource version to be 5, was 7");
    }
}
