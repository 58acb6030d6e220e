//! `minikctl cordon / uncordon / drain`: take a node out of service, and empty it.
//!
//! *Cordoning* sets the Node's `spec.unschedulable`: the scheduler places no new pod there,
//! but the pods already running stay. *Draining* cordons and then asks each pod to leave
//! through the `pods/eviction` subresource: an eviction is a delete that disruption budgets may
//! refuse (429, retried), with the pod's grace period, after which its controller makes a
//! replacement elsewhere. Pods nobody would replace are refused unless the user says so, as
//! kubectl refuses them: a bare pod (no controller: `--force`), a pod with an emptyDir whose
//! data would be lost (`--delete-emptydir-data`), a DaemonSet's pod that would come straight
//! back (`--ignore-daemonsets` leaves it). Drain returns once every evicted pod is gone.
//! Read next: the kubelet's `pod_worker/teardown.rs`, which stops an evicted pod's containers.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::printer::emit;

use super::{get, send, Ctx, Reported};

/// The arguments of `minikctl cordon` and `uncordon`.
#[derive(clap::Args, Debug)]
pub struct NodeArgs {
    /// The nodes.
    #[arg(required = true, value_name = "NODE")]
    pub nodes: Vec<String>,
}

/// The arguments of `minikctl drain`.
#[derive(clap::Args, Debug)]
pub struct DrainArgs {
    /// The nodes.
    #[arg(required = true, value_name = "NODE")]
    pub nodes: Vec<String>,
    /// Continue even if there are pods that do not declare a controller.
    #[arg(long)]
    pub force: bool,
    /// Ignore DaemonSet-managed pods.
    #[arg(long = "ignore-daemonsets")]
    pub ignore_daemonsets: bool,
    /// Continue even if there are pods using emptyDir (local data lost with the pod).
    #[arg(long = "delete-emptydir-data")]
    pub delete_emptydir_data: bool,
    /// Seconds each pod has to stop; negative: the pod's own terminationGracePeriodSeconds.
    #[arg(long = "grace-period", default_value_t = -1, allow_negative_numbers = true)]
    pub grace_period: i64,
    /// How long to wait for the pods to go (`90s`, `2m`); 0 waits forever.
    #[arg(long, default_value = "0s")]
    pub timeout: kube::core::Duration,
    /// Label selector: only the node's pods that match it.
    #[arg(long = "pod-selector")]
    pub pod_selector: Option<String>,
}

/// `minikctl cordon NODE`.
pub async fn cordon(ctx: &Ctx, args: NodeArgs) -> anyhow::Result<()> {
    for node in &args.nodes {
        set_unschedulable(ctx, node, true).await?;
    }
    Ok(())
}

/// `minikctl uncordon NODE`.
pub async fn uncordon(ctx: &Ctx, args: NodeArgs) -> anyhow::Result<()> {
    for node in &args.nodes {
        set_unschedulable(ctx, node, false).await?;
    }
    Ok(())
}

/// Patch `spec.unschedulable` unless it already says so; print `node/n1 cordoned` or
/// `node/n1 already cordoned` (unset rather than false, as kubectl's patch leaves it).
async fn set_unschedulable(ctx: &Ctx, node: &str, desired: bool) -> anyhow::Result<()> {
    let url = format!("/api/v1/nodes/{node}");
    let current = get::get_json(ctx, &url, false).await?;
    let verb = if desired { "cordoned" } else { "uncordoned" };
    if current["spec"]["unschedulable"].as_bool().unwrap_or(false) == desired {
        return Ok(emit(&format!("node/{node} already {verb}\n"))?);
    }
    let value = if desired { json!(true) } else { Value::Null };
    merge_patch(ctx, &url, &json!({"spec": {"unschedulable": value}})).await?;
    Ok(emit(&format!("node/{node} {verb}\n"))?)
}

/// PATCH `url` with a JSON merge patch.
pub async fn merge_patch(ctx: &Ctx, url: &str, patch: &Value) -> Result<Value, kube::Error> {
    let req = http::Request::patch(url)
        .header(http::header::CONTENT_TYPE, "application/merge-patch+json")
        .body(serde_json::to_vec(patch).unwrap_or_default())
        .map_err(kube::Error::HttpError)?;
    send(ctx, req).await
}

/// `minikctl drain NODE`: cordon every node, then empty them one by one; a node that cannot
/// be drained is reported as kubectl reports it and the others are still tried.
pub async fn drain(ctx: &Ctx, args: DrainArgs) -> anyhow::Result<()> {
    for node in &args.nodes {
        set_unschedulable(ctx, node, true).await?;
    }
    let mut pending = Vec::new();
    let mut errors = Vec::new();
    for node in &args.nodes {
        match drain_node(ctx, &args, node).await? {
            Ok(()) => emit(&format!("node/{node} drained\n"))?,
            Err(errs) => {
                eprintln!(
                    "error: unable to drain node {node:?} due to error: {}, continuing command...",
                    aggregate(&errs)
                );
                pending.push(node.clone());
                errors.extend(errs);
            }
        }
    }
    if pending.is_empty() {
        return Ok(());
    }
    eprintln!("There are pending nodes to be drained:");
    for node in pending {
        eprintln!(" {node}");
    }
    for e in errors {
        eprintln!("{e}");
    }
    Err(Reported.into())
}

/// Go's `utilerrors.NewAggregate(errs).Error()`: one error bare, several in brackets.
fn aggregate(errs: &[String]) -> String {
    match errs {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// What drain does with one pod, as kubectl's filters decide it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// Evict it.
    Evict,
    /// Evict it, with a warning (`deleting Pods that declare no controller`).
    EvictWarning(&'static str),
    /// Leave it, with a warning (`ignoring DaemonSet-managed Pods`).
    SkipWarning(&'static str),
    /// Leave a mirror pod alone, silently.
    Skip,
    /// Refuse to drain the node because of it.
    Refuse(String),
}

const DAEMONSET_FATAL: &str = "DaemonSet-managed Pods (use --ignore-daemonsets to ignore)";
const DAEMONSET_WARNING: &str = "ignoring DaemonSet-managed Pods";
const LOCAL_STORAGE_FATAL: &str =
    "Pods with local storage (use --delete-emptydir-data to override)";
const UNMANAGED_FATAL: &str = "Pods that declare no controller (use --force to override)";
const UNMANAGED_WARNING: &str = "deleting Pods that declare no controller";

/// kubectl's filters in its order: DaemonSet, mirror pod, local storage, unreplicated. The
/// first that does not evict decides; when all evict, the last one's verdict stands (so the
/// earlier filters' warnings are never seen, in kubectl either). A finished pod may always go.
fn verdict(pod: &Value, args: &DrainArgs, daemonset_exists: bool) -> Verdict {
    let finished = matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    );
    let controller = pod["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|refs| refs.iter().find(|r| r["controller"] == true));
    if let Some(ds) = controller.filter(|c| c["kind"] == "DaemonSet" && !finished) {
        match (daemonset_exists, args.ignore_daemonsets) {
            (true, true) => return Verdict::SkipWarning(DAEMONSET_WARNING),
            (true, false) => return Verdict::Refuse(DAEMONSET_FATAL.into()),
            (false, _) if !args.force => {
                let name = ds["name"].as_str().unwrap_or_default();
                return Verdict::Refuse(format!("daemonsets.apps {name:?} not found"));
            }
            (false, _) => {}
        }
    }
    if pod["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string() {
        return Verdict::Skip;
    }
    let empty_dir = pod["spec"]["volumes"]
        .as_array()
        .is_some_and(|v| v.iter().any(|v| v.get("emptyDir").is_some()));
    if empty_dir && !finished && !args.delete_emptydir_data {
        return Verdict::Refuse(LOCAL_STORAGE_FATAL.into());
    }
    match (finished || controller.is_some(), args.force) {
        (true, _) => Verdict::Evict,
        (false, true) => Verdict::EvictWarning(UNMANAGED_WARNING),
        (false, false) => Verdict::Refuse(UNMANAGED_FATAL.into()),
    }
}

/// The node's pods, judged; the refusals and the warnings grouped by message as kubectl's
/// `PodDeleteList` groups them (`cannot delete <message>: ns/a, ns/b`).
struct Judged {
    evict: Vec<Value>,
    warnings: BTreeMap<String, Vec<String>>,
    refusals: BTreeMap<String, Vec<String>>,
}

async fn judge(ctx: &Ctx, args: &DrainArgs, node: &str) -> anyhow::Result<Judged> {
    let mut url = format!("/api/v1/pods?fieldSelector=spec.nodeName%3D{node}");
    if let Some(sel) = &args.pod_selector {
        url.push_str(&format!("&labelSelector={}", urlencode(sel)));
    }
    let list = get::get_json(ctx, &url, false).await?;
    let mut judged = Judged {
        evict: Vec::new(),
        warnings: BTreeMap::new(),
        refusals: BTreeMap::new(),
    };
    for pod in list["items"].as_array().cloned().unwrap_or_default() {
        let exists = daemonset_exists(ctx, &pod).await;
        let id = format!(
            "{}/{}",
            pod["metadata"]["namespace"].as_str().unwrap_or_default(),
            pod["metadata"]["name"].as_str().unwrap_or_default()
        );
        match verdict(&pod, args, exists) {
            Verdict::Evict => judged.evict.push(pod),
            Verdict::EvictWarning(w) => {
                judged.warnings.entry(w.into()).or_default().push(id);
                judged.evict.push(pod);
            }
            Verdict::SkipWarning(w) => judged.warnings.entry(w.into()).or_default().push(id),
            Verdict::Skip => {}
            Verdict::Refuse(why) => judged.refusals.entry(why).or_default().push(id),
        }
    }
    Ok(judged)
}

/// Does the DaemonSet controlling `pod` (if one does) still exist?
async fn daemonset_exists(ctx: &Ctx, pod: &Value) -> bool {
    let Some(owner) = pod["metadata"]["ownerReferences"]
        .as_array()
        .and_then(|refs| {
            refs.iter()
                .find(|r| r["controller"] == true && r["kind"] == "DaemonSet")
        })
    else {
        return true;
    };
    let url = format!(
        "/apis/apps/v1/namespaces/{}/daemonsets/{}",
        pod["metadata"]["namespace"].as_str().unwrap_or_default(),
        owner["name"].as_str().unwrap_or_default()
    );
    !matches!(get::get_json(ctx, &url, false).await, Err(kube::Error::Api(s)) if s.code == 404)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Empty one node: judge its pods, refuse or warn, evict, wait. The outer error is a failure
/// to talk to the server; the inner one the messages kubectl prints for a node not drained.
async fn drain_node(
    ctx: &Ctx,
    args: &DrainArgs,
    node: &str,
) -> anyhow::Result<Result<(), Vec<String>>> {
    let judged = judge(ctx, args, node).await?;
    if !judged.refusals.is_empty() {
        let errs = judged
            .refusals
            .iter()
            .map(|(why, pods)| format!("cannot delete {why}: {}", pods.join(", ")))
            .collect();
        return Ok(Err(errs));
    }
    if !judged.warnings.is_empty() {
        let warnings: Vec<String> = judged
            .warnings
            .iter()
            .map(|(w, pods)| format!("{w}: {}", pods.join(", ")))
            .collect();
        eprintln!("Warning: {}", warnings.join("; "));
    }
    let timeout = Duration::from(args.timeout);
    let deadline = (!timeout.is_zero()).then(|| tokio::time::Instant::now() + timeout);
    let mut evicted = Vec::new();
    for pod in &judged.evict {
        match evict(ctx, args, pod, deadline).await? {
            Ok(true) => evicted.push(pod),
            Ok(false) => {}
            Err(e) => return Ok(Err(vec![e])),
        }
    }
    wait_gone(ctx, node, &evicted, deadline).await
}

/// POST the pod's eviction; `Ok(false)` if it is already gone. A disruption budget's 429 is
/// retried after 5 s, as kubectl does.
async fn evict(
    ctx: &Ctx,
    args: &DrainArgs,
    pod: &Value,
    deadline: Option<tokio::time::Instant>,
) -> anyhow::Result<Result<bool, String>> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let mut eviction = json!({
        "apiVersion": "policy/v1", "kind": "Eviction",
        "metadata": {"name": name, "namespace": ns},
    });
    if args.grace_period >= 0 {
        eviction["deleteOptions"] = json!({"gracePeriodSeconds": args.grace_period});
    }
    let url = format!("/api/v1/namespaces/{ns}/pods/{name}/eviction");
    loop {
        emit(&format!("evicting pod {ns}/{name}\n"))?;
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            return Ok(Err(format!(
                "error when evicting pods/{name:?} -n {ns:?}: global timeout reached: {}",
                args.timeout
            )));
        }
        let req = http::Request::post(&url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&eviction)?)?;
        match send(ctx, req).await {
            Ok(_) => return Ok(Ok(true)),
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Ok(false)),
            Err(kube::Error::Api(s)) if s.code == 429 => {
                eprintln!(
                    "error when evicting pods/{name:?} -n {ns:?} (will retry after 5s): {}",
                    s.message
                );
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Err(kube::Error::Api(s)) => {
                return Ok(Err(format!(
                    "error when evicting pods/{name:?} -n {ns:?}: {}",
                    s.message
                )))
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Poll until every evicted pod is gone (404, or another pod of the same name), printing
/// `pod/web-1 evicted` for each; past the deadline, kubectl's pending-pods report.
async fn wait_gone(
    ctx: &Ctx,
    node: &str,
    pods: &[&Value],
    deadline: Option<tokio::time::Instant>,
) -> anyhow::Result<Result<(), Vec<String>>> {
    let mut pending: Vec<&Value> = pods.to_vec();
    loop {
        let mut still = Vec::new();
        for pod in pending {
            let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
            let name = pod["metadata"]["name"].as_str().unwrap_or_default();
            let url = format!("/api/v1/namespaces/{ns}/pods/{name}");
            match get::get_json(ctx, &url, false).await {
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    emit(&format!("pod/{name} evicted\n"))?
                }
                Ok(p) if p["metadata"]["uid"] != pod["metadata"]["uid"] => {
                    emit(&format!("pod/{name} evicted\n"))?
                }
                Ok(_) => still.push(pod),
                Err(e) => return Err(e.into()),
            }
        }
        pending = still;
        if pending.is_empty() {
            return Ok(Ok(()));
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            return Ok(Err(timed_out(node, &pending)));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// kubectl's report of pods that outlived `--timeout`: printed, and the errors returned.
fn timed_out(node: &str, pending: &[&Value]) -> Vec<String> {
    let errs: Vec<String> = pending
        .iter()
        .map(|p| {
            format!(
                "error when waiting for pod {:?} in namespace {:?} to terminate: context deadline exceeded",
                p["metadata"]["name"].as_str().unwrap_or_default(),
                p["metadata"]["namespace"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    eprintln!(
        "There are pending pods in node {node:?} when an error occurred: {}",
        aggregate(&errs)
    );
    for p in pending {
        eprintln!("pod/{}", p["metadata"]["name"].as_str().unwrap_or_default());
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(force: bool, emptydir: bool, daemonsets: bool) -> DrainArgs {
        DrainArgs {
            nodes: vec!["n1".into()],
            force,
            ignore_daemonsets: daemonsets,
            delete_emptydir_data: emptydir,
            grace_period: -1,
            timeout: "0s".parse().unwrap(),
            pod_selector: None,
        }
    }

    fn pod(owner: Option<&str>, empty_dir: bool) -> Value {
        let refs: Vec<Value> = owner
            .map(|k| json!({"kind": k, "name": "o", "controller": true}))
            .into_iter()
            .collect();
        let volumes: Vec<Value> = empty_dir
            .then(|| json!({"name": "s", "emptyDir": {}}))
            .into_iter()
            .collect();
        json!({"metadata": {"ownerReferences": refs}, "spec": {"volumes": volumes}})
    }

    #[test]
    fn bare_pods_need_force() {
        let bare = pod(None, false);
        assert_eq!(
            verdict(&bare, &args(false, false, false), true),
            Verdict::Refuse(UNMANAGED_FATAL.into())
        );
        assert_eq!(
            verdict(&bare, &args(true, false, false), true),
            Verdict::EvictWarning(UNMANAGED_WARNING)
        );
        assert_eq!(
            verdict(
                &pod(Some("ReplicaSet"), false),
                &args(false, false, false),
                true
            ),
            Verdict::Evict
        );
    }

    #[test]
    fn empty_dirs_and_daemonsets_are_refused_unless_allowed() {
        let scratch = pod(Some("ReplicaSet"), true);
        assert_eq!(
            verdict(&scratch, &args(false, false, false), true),
            Verdict::Refuse(LOCAL_STORAGE_FATAL.into())
        );
        // A later filter's verdict replaces the warning, as in kubectl.
        assert_eq!(
            verdict(&scratch, &args(false, true, false), true),
            Verdict::Evict
        );
        let ds = pod(Some("DaemonSet"), false);
        assert_eq!(
            verdict(&ds, &args(false, false, false), true),
            Verdict::Refuse(DAEMONSET_FATAL.into())
        );
        assert_eq!(
            verdict(&ds, &args(false, false, true), true),
            Verdict::SkipWarning(DAEMONSET_WARNING)
        );
    }

    #[test]
    fn errors_aggregate_like_go() {
        assert_eq!(aggregate(&["a".into()]), "a");
        assert_eq!(aggregate(&["a".into(), "b".into()]), "[a, b]");
    }
}
