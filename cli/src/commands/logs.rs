//! `minikctl logs POD|TYPE/NAME [-c C] [-f] [--tail N] [-p] [--timestamps] [--since D]`: a
//! container's output.
//!
//! The apiserver does not keep logs: `GET pods/NAME/log` is relayed to the kubelet of the
//! pod's node, which reads the container's log file (the current one, or with `previous` the
//! one of the container instance before the last restart) and, with `follow`, keeps the
//! response open until the container ends. So the client's job is to pick the container (one
//! pod, one container: kubectl refuses to guess among several) and copy the stream.
//! `deploy/NAME` and `rs/NAME` mean the first pod their selector matches.
//! Read next: `exec.rs`, the other command that goes through the kubelet.

use anyhow::Context;
use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Api, ListParams, LogParams};
use serde_json::Value;

use crate::printer::emit;

use super::Ctx;

/// The arguments of `minikctl logs`.
#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// `POD`, or `TYPE/NAME` (`pod/web`, `deploy/hello`).
    #[arg(value_name = "POD | TYPE/NAME")]
    pub target: String,
    /// The container to print the logs of; required when the pod has several.
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Keep printing as the container writes, until it ends.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines (-1: all).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub tail: i64,
    /// The logs of the previous instance of the container (before its last restart).
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Prefix each line with its RFC 3339 timestamp.
    #[arg(long)]
    pub timestamps: bool,
    /// Only lines newer than this duration (`5s`, `2m`, `3h`).
    #[arg(long)]
    pub since: Option<kube::core::Duration>,
}

/// Runs `minikctl logs`.
pub async fn run(ctx: &Ctx, args: LogsArgs) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let name = pod_name(ctx, &args.target).await?;
    let pod = pods.get(&name).await?;
    let container = pick_container(&pod, args.container.as_deref())?;
    let lp = LogParams {
        container: Some(container),
        follow: args.follow,
        tail_lines: (args.tail >= 0).then_some(args.tail),
        previous: args.previous,
        timestamps: args.timestamps,
        since_seconds: args.since.map(|d| {
            let d: std::time::Duration = d.into();
            d.as_secs().max(1) as i64
        }),
        ..LogParams::default()
    };
    let mut lines = pods.log_stream(&name, &lp).await?.lines();
    while let Some(line) = lines.try_next().await? {
        emit(&format!("{line}\n"))?;
    }
    Ok(())
}

/// The pod a target names: `web` and `pod/web` are the pod; `deploy/x`, `rs/x` (any
/// workload with `spec.selector.matchLabels`) the first of its pods by name.
async fn pod_name(ctx: &Ctx, target: &str) -> anyhow::Result<String> {
    let Some((kind, name)) = target.split_once('/') else {
        return Ok(target.to_string());
    };
    let resource = ctx.discovery().await?.resolve(kind)?;
    if resource.kind == "Pod" {
        return Ok(name.to_string());
    }
    let api: Api<kube::api::DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &ctx.namespace, &resource.api_resource());
    let obj = serde_json::to_value(api.get(name).await?)?;
    let selector = match_labels(&obj["spec"]["selector"]["matchLabels"])
        .with_context(|| format!("cannot get the logs of a {}", resource.kind))?;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let mut names: Vec<String> = pods
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    names.sort();
    match names.as_slice() {
        [] => anyhow::bail!("timed out waiting for the condition"),
        [one] => Ok(one.clone()),
        [first, ..] => {
            eprintln!("Found {} pods, using pod/{first}", names.len());
            Ok(first.clone())
        }
    }
}

/// `{"app": "web"}` → `app=web`.
fn match_labels(labels: &Value) -> Option<String> {
    let map = labels.as_object().filter(|m| !m.is_empty())?;
    let pairs: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    Some(pairs.join(","))
}

/// The container to read: the one named, or the pod's only one (kubectl's errors otherwise).
pub fn pick_container(pod: &Pod, asked: Option<&str>) -> anyhow::Result<String> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let containers: &[Container] = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let init: &[Container] = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let Some(asked) = asked else {
        return match containers {
            [only] => Ok(only.name.clone()),
            _ => {
                let mut msg = format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    names(containers)
                );
                if !init.is_empty() {
                    msg += &format!(" or one of the init containers: [{}]", names(init));
                }
                Err(anyhow::anyhow!(msg))
            }
        };
    };
    if containers.iter().chain(init).any(|c| c.name == asked) {
        return Ok(asked.to_string());
    }
    anyhow::bail!("container {asked} is not valid for pod {name}")
}

fn names(containers: &[Container]) -> String {
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    names.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(containers: &[&str]) -> Pod {
        let cs: Vec<Value> = containers.iter().map(|c| json!({"name": c})).collect();
        serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {"containers": cs}}))
            .unwrap()
    }

    #[test]
    fn one_container_needs_no_name() {
        assert_eq!(pick_container(&pod(&["a"]), None).unwrap(), "a");
    }

    #[test]
    fn several_containers_need_a_name() {
        let err = pick_container(&pod(&["a", "b"]), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a container name must be specified for pod web, choose one of: [a b]"
        );
        let err = pick_container(&pod(&["a"]), Some("x")).unwrap_err();
        assert_eq!(err.to_string(), "container x is not valid for pod web");
    }
}
