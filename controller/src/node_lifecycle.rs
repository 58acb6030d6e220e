//! Node lifecycle: notice nodes whose kubelet went silent, and take their pods out of service.
//!
//! Every kubelet renews a Lease (`kube-node-lease/<node>`) every few seconds. A node whose
//! Lease is older than `--node-monitor-grace-period` gets `Ready=Unknown`, the
//! `node.kubernetes.io/unreachable:NoExecute` taint, and each of its pods gets its `Ready`
//! condition set to False (upstream's `MarkPodsNotReady`), so that EndpointSlices list them as
//! not ready and Services stop sending them traffic before they are evicted. Evicting is the
//! taint's effect, `taint_eviction.rs`'s job: each pod goes once its matching toleration's
//! `tolerationSeconds` has passed. The apiserver gives every pod such a toleration (its
//! `--default-unreachable-toleration-seconds`, 300 s), so that flag is where a lab shortens
//! evictions. When the Lease is renewed again the taint is removed and the kubelet reports
//! Ready itself (its pods' too). Every node write names the resourceVersion it was computed
//! from; a 409 reads the node again and checks again at once (`conflict.rs`). Pods bound to a
//! node that no longer exists are `pod_gc.rs`'s.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, PodCondition, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::WatchStreamExt;
use kube::ResourceExt;
use serde_json::json;
use tracing::{info, instrument, warn};

use crate::cache;
use crate::config;
use crate::conflict::{self, MaybeConflict};
use crate::events::Recorder;

/// The taint a node gets when its kubelet stops renewing its Lease.
pub use crate::taint_eviction::UNREACHABLE_TAINT;
/// Namespace of the node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// What can fail while checking a node.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing the node's status or taints failed.
    #[error("updating node {node}: {source}")]
    UpdateNode {
        node: String,
        #[source]
        source: kube::Error,
    },
    /// Listing the node's pods failed.
    #[error("listing pods of node {node}: {source}")]
    ListPods {
        node: String,
        #[source]
        source: kube::Error,
    },
    /// Marking a pod not ready failed.
    #[error("marking pod {pod} not ready: {source}")]
    UpdatePod {
        pod: String,
        #[source]
        source: kube::Error,
    },
}

/// This controller's settings, out of the manager's.
#[derive(Debug, Clone)]
pub struct Config {
    /// A node whose Lease is older than this is NotReady (Unknown).
    pub node_monitor_grace_period: Duration,
}

impl From<&config::Config> for Config {
    fn from(c: &config::Config) -> Config {
        Config {
            node_monitor_grace_period: c.node_monitor_grace_period,
        }
    }
}

/// Shared by every sync.
pub struct Context {
    pub client: kube::Client,
    pub leases: Store<Lease>,
    pub config: Config,
    pub recorder: Recorder,
}

/// Run the node lifecycle controller until dropped.
pub async fn run(client: kube::Client, config: Config) {
    let (leases, writer) = reflector::store::<Lease>();
    let lease_events = reflector::reflector(
        writer,
        cache::watch(Api::<Lease>::namespaced(client.clone(), LEASE_NAMESPACE)),
    )
    .touched_objects();
    let ctx = Arc::new(Context {
        client: client.clone(),
        leases,
        config,
        recorder: Recorder::new(client.clone(), "node-controller"),
    });
    cache::controller(Api::<Node>::all(client))
        .watches_stream(lease_events, |l: Lease| {
            Some(ObjectRef::<Node>::new(&l.name_any()))
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// Requeue after a failure: at once after a conflict, else in a second.
pub fn error_policy(node: Arc<Node>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!(node = %node.name_any(), error = %err, "node sync failed; retrying");
    if err.is_conflict() {
        return Action::requeue(conflict::REQUEUE);
    }
    Action::requeue(Duration::from_secs(1))
}

impl MaybeConflict for Error {
    fn is_conflict(&self) -> bool {
        matches!(self, Error::UpdateNode { source, .. } if conflict::is_conflict(source))
    }
}

/// When the node was last heard of: the later of its Lease's renewTime and its Ready
/// condition's lastHeartbeatTime (a kubelet that just started posts its status before it
/// first renews the Lease), else its creation.
fn last_heard(node: &Node, leases: &Store<Lease>) -> jiff::Timestamp {
    let lease = leases.get(&ObjectRef::new(&node.name_any()).within(LEASE_NAMESPACE));
    let renewed = lease.and_then(|l| l.spec.as_ref()?.renew_time.as_ref().map(|t| t.0));
    let heartbeat = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0));
    renewed
        .max(heartbeat)
        .or_else(|| node.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or_else(jiff::Timestamp::now)
}

/// One check of one node. A write refused because our copy of the node is stale (409) reads
/// the node again and checks again at once.
#[instrument(skip_all, fields(node = %node.name_any()))]
pub async fn reconcile(node: Arc<Node>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<Node> = Api::all(ctx.client.clone());
    conflict::retry_on_conflict(&api, node, |n| check(n, ctx.clone())).await
}

/// Lift the taint of a node heard from recently; mark a silent one Unknown, taint it and mark
/// its pods not ready (checked again every few seconds while it stays silent).
async fn check(node: Arc<Node>, ctx: Arc<Context>) -> Result<Action, Error> {
    let now = jiff::Timestamp::now();
    let grace =
        jiff::SignedDuration::try_from(ctx.config.node_monitor_grace_period).unwrap_or_default();
    let silent_until = last_heard(&node, &ctx.leases) + grace;
    let api: Api<Node> = Api::all(ctx.client.clone());
    if now < silent_until {
        // Heard from recently: lift the taint; Ready is the kubelet's to report.
        if unreachable_taint(&node).is_some() {
            let rest = taints(&node)
                .into_iter()
                .filter(|t| t.key != UNREACHABLE_TAINT)
                .collect();
            patch_taints(&api, &node, rest).await?;
            info!("node lease renewed; unreachable taint removed");
        }
        let wait = silent_until.duration_since(now).as_millis().max(0) as u64 + 200;
        return Ok(Action::requeue(Duration::from_millis(wait)));
    }
    let node = mark_unknown(&api, node, &ctx, now).await?;
    taint_unreachable(&api, &node, now).await?;
    mark_pods_not_ready(&node.name_any(), &ctx, now).await?;
    Ok(Action::requeue(Duration::from_secs(5)))
}

fn taints(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
}

fn unreachable_taint(node: &Node) -> Option<Taint> {
    taints(node)
        .into_iter()
        .find(|t| t.key == UNREACHABLE_TAINT && t.effect == "NoExecute")
}

/// Replace the node's taints, guarded by the resourceVersion they were read at: a taint
/// someone added since is never dropped (the write is a 409 instead).
async fn patch_taints(api: &Api<Node>, node: &Node, taints: Vec<Taint>) -> Result<Node, Error> {
    let patch = json!({
        "metadata": {"resourceVersion": node.resource_version()},
        "spec": {"taints": taints},
    });
    api.patch(
        &node.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await
    .map_err(|source| Error::UpdateNode {
        node: node.name_any(),
        source,
    })
}

/// The kubelet stopped reporting: Ready (and every other condition) becomes Unknown. Guarded
/// by the resourceVersion we read, so a status the kubelet posted since is a 409, not
/// overwritten. Returns the node as written.
async fn mark_unknown(
    api: &Api<Node>,
    node: Arc<Node>,
    ctx: &Context,
    now: jiff::Timestamp,
) -> Result<Arc<Node>, Error> {
    let mut conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    if !conditions.iter().any(|c| c.type_ == "Ready") {
        conditions.push(NodeCondition {
            type_: "Ready".into(),
            ..Default::default()
        });
    }
    if conditions.iter().all(|c| c.status == "Unknown") {
        return Ok(node);
    }
    for c in conditions.iter_mut().filter(|c| c.status != "Unknown") {
        c.status = "Unknown".into();
        c.reason = Some("NodeStatusUnknown".into());
        c.message = Some("Kubelet stopped posting node status.".into());
        c.last_transition_time = Some(Time(now));
    }
    let name = node.name_any();
    let patch = json!({
        "metadata": {"resourceVersion": node.resource_version()},
        "status": {"conditions": conditions},
    });
    let written = api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(|source| Error::UpdateNode {
            node: name.clone(),
            source,
        })?;
    info!("node lease expired; Ready=Unknown");
    let message = format!("Node {name} status is now: NodeNotReady");
    ctx.recorder
        .normal(node.as_ref(), "NodeNotReady", message)
        .await;
    Ok(Arc::new(written))
}

/// Give the node the unreachable taint (added `now`) if it has none.
async fn taint_unreachable(
    api: &Api<Node>,
    node: &Node,
    now: jiff::Timestamp,
) -> Result<(), Error> {
    if unreachable_taint(node).is_some() {
        return Ok(());
    }
    let mut all = taints(node);
    all.push(Taint {
        key: UNREACHABLE_TAINT.into(),
        effect: "NoExecute".into(),
        time_added: Some(Time(now)),
        value: None,
    });
    patch_taints(api, node, all).await?;
    Ok(())
}

/// Upstream's `MarkPodsNotReady`: the `Ready` condition of every pod on the node that still
/// says otherwise becomes False (through the status subresource, guarded by the pod's
/// resourceVersion), with a `NodeNotReady` warning on the pod. The dead kubelet cannot do it,
/// and the EndpointSlice controller reads exactly this condition.
async fn mark_pods_not_ready(name: &str, ctx: &Context, now: jiff::Timestamp) -> Result<(), Error> {
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let on_node = pods
        .list(&ListParams::default().fields(&format!("spec.nodeName={name}")))
        .await
        .map_err(|source| Error::ListPods {
            node: name.to_string(),
            source,
        })?;
    for pod in &on_node.items {
        let Some(conditions) = not_ready_conditions(pod, now) else {
            continue;
        };
        let ns = pod.namespace().unwrap_or_default();
        let patch = json!({
            "metadata": {"resourceVersion": pod.resource_version()},
            "status": {"conditions": conditions},
        });
        match Api::<Pod>::namespaced(ctx.client.clone(), &ns)
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
        {
            Ok(_) => info!(pod = %pod.name_any(), namespace = %ns, "pod marked not ready"),
            Err(kube::Error::Api(e)) if e.code == 404 => continue,
            Err(source) => {
                return Err(Error::UpdatePod {
                    pod: format!("{ns}/{}", pod.name_any()),
                    source,
                })
            }
        }
        ctx.recorder
            .warning(pod, "NodeNotReady", "Node is not ready".to_string())
            .await;
    }
    Ok(())
}

/// The pod's conditions with `Ready` set to False (its transition time `now`), or None if it
/// has no Ready condition or it is already False (upstream's `UpdatePodCondition` no-op).
fn not_ready_conditions(pod: &Pod, now: jiff::Timestamp) -> Option<Vec<PodCondition>> {
    let mut conditions = pod.status.as_ref()?.conditions.clone()?;
    let ready = conditions.iter_mut().find(|c| c.type_ == "Ready")?;
    if ready.status == "False" {
        return None;
    }
    ready.status = "False".into();
    ready.last_transition_time = Some(Time(now));
    Some(conditions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher;

    fn node(created: i64, heartbeat: Option<i64>) -> Node {
        let at = |s| Time(jiff::Timestamp::from_second(s).unwrap());
        Node {
            metadata: kube::api::ObjectMeta {
                name: Some("n".into()),
                creation_timestamp: Some(at(created)),
                ..Default::default()
            },
            status: Some(k8s_openapi::api::core::v1::NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_heartbeat_time: heartbeat.map(at),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn leases(renewed: Option<i64>) -> Store<Lease> {
        let (store, mut writer) = reflector::store::<Lease>();
        if let Some(s) = renewed {
            let lease = Lease {
                metadata: kube::api::ObjectMeta {
                    name: Some("n".into()),
                    namespace: Some(LEASE_NAMESPACE.into()),
                    ..Default::default()
                },
                spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
                    renew_time: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                        jiff::Timestamp::from_second(s).unwrap(),
                    )),
                    ..Default::default()
                }),
            };
            writer.apply_watcher_event(&watcher::Event::Apply(lease));
        }
        store
    }

    #[test]
    fn a_node_is_heard_of_by_its_lease_or_its_status_heartbeat() {
        let heard = |n: &Node, l: &Store<Lease>| last_heard(n, l).as_second();
        assert_eq!(heard(&node(100, None), &leases(None)), 100);
        assert_eq!(heard(&node(100, None), &leases(Some(200))), 200);
        // a restarted kubelet posts its status before it renews the Lease
        assert_eq!(heard(&node(100, Some(300)), &leases(Some(200))), 300);
        assert_eq!(heard(&node(100, Some(150)), &leases(Some(200))), 200);
    }

    #[test]
    fn a_pod_is_marked_not_ready_once() {
        let now = jiff::Timestamp::from_second(500).unwrap();
        let with = |status: &str| Pod {
            status: Some(k8s_openapi::api::core::v1::PodStatus {
                conditions: Some(vec![
                    PodCondition {
                        type_: "PodScheduled".into(),
                        status: "True".into(),
                        ..Default::default()
                    },
                    PodCondition {
                        type_: "Ready".into(),
                        status: status.into(),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let marked = not_ready_conditions(&with("True"), now).expect("a Ready pod is marked");
        assert_eq!(marked.len(), 2, "the other conditions are kept");
        assert_eq!(marked[0].status, "True");
        assert_eq!(marked[1].status, "False");
        assert_eq!(marked[1].last_transition_time, Some(Time(now)));
        assert!(not_ready_conditions(&with("False"), now).is_none());
        assert!(not_ready_conditions(&Pod::default(), now).is_none());
    }
}
