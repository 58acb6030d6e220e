//! `minikctl logs POD|TYPE/NAME [-c C] [-f] [--tail N] [-p] [--timestamps] [--since D]`: a
//! container's output.
//!
//! The apiserver does not keep logs: `GET pods/NAME/log` is relayed to the kubelet of the
//! pod's node, which reads the container's log file (the current one, or with `previous` the
//! one of the container instance before the last restart) and, with `follow`, keeps the
//! response open until the container ends. So the client's job is to pick the container (the
//! one asked for; else the pod's `kubectl.kubernetes.io/default-container`; else the first,
//! saying which, as kubectl does since 1.21) and copy the stream.
//! `deploy/NAME` and `rs/NAME` mean one of the pods their selector matches, the one kubectl
//! would read (Running and Ready the longest).
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
    let name = pod_name(ctx, &args.target)
        .await
        .map_err(|e| not_found_in(e, &ctx.namespace))?;
    let pod = pods
        .get(&name)
        .await
        .map_err(|e| not_found_in(e.into(), &ctx.namespace))?;
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
/// workload with `spec.selector.matchLabels`) the first of its pods in [`logging_order`].
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
    let mut found = pods
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    // stable, as Go's sort.Sort is on the few pods of a workload: ties keep the list's order
    found.sort_by_key(logging_order);
    let first = match found.first() {
        None => anyhow::bail!("timed out waiting for the condition"),
        Some(p) => p.metadata.name.clone().unwrap_or_default(),
    };
    if found.len() > 1 {
        eprintln!("Found {} pods, using pod/{first}", found.len());
    }
    Ok(first)
}

/// Where kubectl's `podutils.ByLogging` puts a pod among a workload's, the first being the
/// one whose logs are read: bound before unbound; Running (or finished) before Unknown before
/// Pending; Ready before not, and Ready for longer first; more restarts first; older first.
fn logging_order(p: &Pod) -> impl Ord {
    let status = p.status.as_ref();
    let unbound = p
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_none_or(str::is_empty);
    let phase = match status.and_then(|s| s.phase.as_deref()) {
        Some("Unknown") => 1,
        Some("Pending") => 2,
        _ => 0,
    };
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready" && c.status == "True"));
    let ready_since = ready.map(|c| c.last_transition_time.as_ref().map(|t| t.0));
    let restarts = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().map(|c| c.restart_count).max())
        .unwrap_or(0);
    let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    (
        unbound,
        phase,
        ready.is_none(),
        ready_since.map(|t| (t.is_none(), t)),
        std::cmp::Reverse(restarts),
        (created.is_none(), created),
    )
}

/// A missing target as kubectl's logs reports it (its resource builder's error, rewritten):
/// `error: error from server (NotFound): pods "x" not found in namespace "default"`.
fn not_found_in(err: anyhow::Error, namespace: &str) -> anyhow::Error {
    match err.downcast_ref::<kube::Error>() {
        Some(kube::Error::Api(s)) if s.code == 404 => anyhow::anyhow!(
            "error from server (NotFound): {} in namespace {namespace:?}",
            s.message
        ),
        _ => err,
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

/// The annotation naming the container kubectl logs and exec pick when none is asked for.
const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";

/// The container to read, as kubectl's `logsForObject` picks it: the one named; else the one
/// the pod's `kubectl.kubernetes.io/default-container` annotation names; else the first,
/// saying so on stderr when there was a choice (`Defaulted container "a" out of: a, b`).
pub fn pick_container(pod: &Pod, asked: Option<&str>) -> anyhow::Result<String> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let containers: &[Container] = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let init: &[Container] = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let ephemeral: Vec<&str> = spec
        .and_then(|s| s.ephemeral_containers.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let exists =
        |c: &str| containers.iter().chain(init).any(|x| x.name == c) || ephemeral.contains(&c);
    let asked = asked.map(str::to_string).or_else(|| {
        let annotated = pod.metadata.annotations.as_ref()?.get(DEFAULT_CONTAINER)?;
        if exists(annotated) {
            return Some(annotated.clone());
        }
        if !annotated.is_empty() {
            eprintln!("Default container name {annotated:?} not found in pod {name}");
        }
        None
    });
    if let Some(asked) = asked {
        anyhow::ensure!(
            exists(&asked),
            "container {asked} is not valid for pod {name}"
        );
        return Ok(asked);
    }
    let first = containers
        .first()
        .with_context(|| format!("pod {name} has no containers"))?;
    if containers.len() > 1 || !init.is_empty() || !ephemeral.is_empty() {
        eprintln!(
            "Defaulted container {:?} out of: {}",
            first.name,
            all_names(containers, &ephemeral, init)
        );
    }
    Ok(first.name.clone())
}

/// kubectl's `AllContainerNames`: `a, b, debug (ephem), setup (init)`.
fn all_names(containers: &[Container], ephemeral: &[&str], init: &[Container]) -> String {
    let names: Vec<String> = containers
        .iter()
        .map(|c| c.name.clone())
        .chain(ephemeral.iter().map(|c| format!("{c} (ephem)")))
        .chain(init.iter().map(|c| format!("{} (init)", c.name)))
        .collect();
    names.join(", ")
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
    fn several_containers_default_to_the_first_or_the_annotated() {
        assert_eq!(pick_container(&pod(&["a", "b"]), None).unwrap(), "a");
        let mut annotated = pod(&["a", "b"]);
        annotated.metadata.annotations =
            Some([(DEFAULT_CONTAINER.to_string(), "b".to_string())].into());
        assert_eq!(pick_container(&annotated, None).unwrap(), "b");
        assert_eq!(pick_container(&annotated, Some("a")).unwrap(), "a");
        let err = pick_container(&pod(&["a"]), Some("x")).unwrap_err();
        assert_eq!(err.to_string(), "container x is not valid for pod web");
    }

    #[test]
    fn the_pod_read_is_the_one_kubectl_reads() {
        let pod = |name: &str, node: &str, phase: &str, ready_at: Option<&str>, created: &str| {
            let conditions: Vec<Value> = ready_at
                .map(|t| json!({"type": "Ready", "status": "True", "lastTransitionTime": t}))
                .into_iter()
                .collect();
            serde_json::from_value::<Pod>(json!({
                "metadata": {"name": name, "creationTimestamp": created},
                "spec": {"containers": [], "nodeName": node},
                "status": {"phase": phase, "conditions": conditions},
            }))
            .unwrap()
        };
        let t = |s: u32| format!("2026-01-01T00:00:{s:02}Z");
        let mut pods = [
            pod("a-pending", "", "Pending", None, &t(0)),
            pod("b-not-ready", "n1", "Running", None, &t(0)),
            pod("c-ready-later", "n1", "Running", Some(&t(9)), &t(1)),
            pod("d-ready-first", "n1", "Running", Some(&t(5)), &t(2)),
            pod("e-ready-later-too", "n1", "Running", Some(&t(9)), &t(1)),
        ];
        pods.sort_by_key(logging_order);
        let names: Vec<&str> = pods
            .iter()
            .map(|p| p.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "d-ready-first",
                "c-ready-later",
                "e-ready-later-too",
                "b-not-ready",
                "a-pending"
            ]
        );
    }

    #[test]
    fn a_missing_target_names_its_namespace() {
        let status = kube::core::Status::failure("pods \"x\" not found", "NotFound").with_code(404);
        let err = not_found_in(kube::Error::Api(Box::new(status)).into(), "default");
        assert_eq!(
            crate::error::render(&err, None),
            "error: error from server (NotFound): pods \"x\" not found in namespace \"default\""
        );
    }

    #[test]
    fn all_names_read_like_kubectls() {
        let p = pod(&["a", "b"]);
        let containers = &p.spec.as_ref().unwrap().containers;
        let init = &pod(&["setup"]).spec.unwrap().containers;
        assert_eq!(
            all_names(containers, &["debug"], init),
            "a, b, debug (ephem), setup (init)"
        );
    }
}
