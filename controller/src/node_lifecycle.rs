//! Node lifecycle: notice nodes whose kubelet went silent, and move their pods away.
//!
//! Every kubelet renews a Lease (`kube-node-lease/<node>`) every few seconds. A node whose
//! Lease is older than `--node-monitor-grace-period` gets `Ready=Unknown` and the
//! `node.kubernetes.io/unreachable:NoExecute` taint. A NoExecute taint evicts each pod on the
//! node once its matching toleration's `tolerationSeconds` has passed (no toleration: the
//! `--pod-eviction-timeout` default; a toleration without seconds: never). The apiserver
//! gives every pod such a toleration (its `--default-unreachable-toleration-seconds`, 300 s),
//! so that flag is where a lab shortens evictions. When the Lease is
//! renewed again the taint is removed and the kubelet reports Ready itself. Pods bound to a
//! node that no longer exists are deleted with grace 0: nobody is left to stop them.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::ResourceExt;
use serde_json::json;
use tracing::{info, instrument, warn};

use crate::events::Recorder;
use crate::manager::Config;

/// The taint a node gets when its kubelet stops renewing its Lease.
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";
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
    /// Evicting (deleting) a pod failed.
    #[error("evicting pod {pod}: {source}")]
    Evict {
        pod: String,
        #[source]
        source: kube::Error,
    },
}

/// Shared by every sync.
pub struct Context {
    pub client: kube::Client,
    pub leases: Store<Lease>,
    pub config: Config,
    pub recorder: Recorder,
}

/// Run the node lifecycle controller (and the orphaned-pod collector) until dropped.
pub async fn run(client: kube::Client, config: Config) {
    let (leases, writer) = reflector::store::<Lease>();
    let lease_events = reflector::reflector(
        writer,
        watcher(
            Api::<Lease>::namespaced(client.clone(), LEASE_NAMESPACE),
            watcher::Config::default(),
        ),
    )
    .touched_objects();
    let controller = Controller::new(Api::<Node>::all(client.clone()), watcher::Config::default());
    let nodes = controller.store();
    let ctx = Arc::new(Context {
        client: client.clone(),
        leases,
        config,
        recorder: Recorder::new(client.clone(), "node-controller"),
    });
    let lifecycle = controller
        .watches_stream(lease_events, |l: Lease| {
            Some(ObjectRef::<Node>::new(&l.name_any()))
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()));
    tokio::join!(lifecycle, collect_orphaned_pods(client, nodes));
}

/// Requeue after a failure.
pub fn error_policy(node: Arc<Node>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!(node = %node.name_any(), error = %err, "node sync failed; retrying");
    Action::requeue(Duration::from_secs(1))
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

/// When a pod on a node tainted at `tainted_at` must go; None if it tolerates the taint forever.
pub fn eviction_time(
    pod: &Pod,
    tainted_at: jiff::Timestamp,
    default: Duration,
) -> Option<jiff::Timestamp> {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let matching = tolerations.iter().find(|t| {
        let key_ok = match t.operator.as_deref() {
            Some("Exists") => t
                .key
                .as_deref()
                .is_none_or(|k| k.is_empty() || k == UNREACHABLE_TAINT),
            _ => t.key.as_deref() == Some(UNREACHABLE_TAINT),
        };
        key_ok
            && t.effect
                .as_deref()
                .is_none_or(|e| e.is_empty() || e == "NoExecute")
    });
    let secs = match matching {
        Some(t) => t.toleration_seconds?.max(0),
        None => default.as_secs() as i64,
    };
    Some(tainted_at + jiff::SignedDuration::from_secs(secs))
}

/// One check of one node.
#[instrument(skip_all, fields(node = %node.name_any()))]
pub async fn reconcile(node: Arc<Node>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = node.name_any();
    let now = jiff::Timestamp::now();
    let grace = ctx.config.node_monitor_grace_period;
    let silent_until =
        last_heard(&node, &ctx.leases) + jiff::SignedDuration::try_from(grace).unwrap_or_default();
    let api: Api<Node> = Api::all(ctx.client.clone());
    let fail = |source| Error::UpdateNode {
        node: name.clone(),
        source,
    };
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let taint = taints
        .iter()
        .find(|t| t.key == UNREACHABLE_TAINT && t.effect == "NoExecute")
        .cloned();

    if now < silent_until {
        // Heard from recently: lift the taint; Ready is the kubelet's to report.
        if taint.is_some() {
            let rest: Vec<&Taint> = taints
                .iter()
                .filter(|t| t.key != UNREACHABLE_TAINT)
                .collect();
            api.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"taints": rest}})),
            )
            .await
            .map_err(fail)?;
            info!("node lease renewed; unreachable taint removed");
        }
        let wait = silent_until.duration_since(now).as_millis().max(0) as u64 + 200;
        return Ok(Action::requeue(Duration::from_millis(wait)));
    }

    // Silent too long: Ready (and every other condition) becomes Unknown.
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
    if conditions.iter().any(|c| c.status != "Unknown") {
        for c in conditions.iter_mut().filter(|c| c.status != "Unknown") {
            c.status = "Unknown".into();
            c.reason = Some("NodeStatusUnknown".into());
            c.message = Some("Kubelet stopped posting node status.".into());
            c.last_transition_time = Some(Time(now));
        }
        // Guarded by the resourceVersion we read: if the kubelet has posted a fresh status
        // since, this is a 409 and the next sync sees it.
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"resourceVersion": node.resource_version()},
                "status": {"conditions": conditions},
            })),
        )
        .await
        .map_err(fail)?;
        info!("node lease expired; Ready=Unknown");
        ctx.recorder
            .normal(
                node.as_ref(),
                "NodeNotReady",
                format!("Node {name} status is now: NodeNotReady"),
            )
            .await;
    }
    let tainted_at = match &taint {
        Some(t) => t.time_added.as_ref().map(|t| t.0).unwrap_or(now),
        None => {
            let mut all = taints.clone();
            all.push(Taint {
                key: UNREACHABLE_TAINT.into(),
                effect: "NoExecute".into(),
                time_added: Some(Time(now)),
                value: None,
            });
            api.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"taints": all}})),
            )
            .await
            .map_err(fail)?;
            now
        }
    };

    // Evict the pods whose toleration ran out; come back for the next one.
    let pods: Api<Pod> = Api::all(ctx.client.clone());
    let on_node = pods
        .list(&ListParams::default().fields(&format!("spec.nodeName={name}")))
        .await
        .map_err(|source| Error::ListPods {
            node: name.clone(),
            source,
        })?;
    let mut next: Option<jiff::Timestamp> = None;
    for p in on_node
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let Some(at) = eviction_time(p, tainted_at, ctx.config.pod_eviction_timeout) else {
            continue;
        };
        if at > now {
            next = Some(next.map_or(at, |n| n.min(at)));
            continue;
        }
        let ns = p.namespace().unwrap_or_default();
        ctx.recorder
            .normal(
                p,
                "TaintManagerEviction",
                format!("Marking for deletion Pod {ns}/{}", p.name_any()),
            )
            .await;
        match Api::<Pod>::namespaced(ctx.client.clone(), &ns)
            .delete(&p.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => info!(pod = %p.name_any(), "evicted pod from unreachable node"),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => {
                return Err(Error::Evict {
                    pod: p.name_any(),
                    source,
                })
            }
        }
    }
    let wait = next
        .map(|n| n.duration_since(now).as_millis().max(0) as u64 + 100)
        .unwrap_or(10_000);
    Ok(Action::requeue(Duration::from_millis(wait.min(10_000))))
}

/// Every few seconds: pods bound to a node that no longer exists are deleted at once (grace 0).
async fn collect_orphaned_pods(client: kube::Client, nodes: Store<Node>) {
    let pods: Api<Pod> = Api::all(client.clone());
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        if nodes.wait_until_ready().await.is_err() {
            continue;
        }
        let Ok(list) = pods.list(&ListParams::default()).await else {
            continue;
        };
        for p in list.items {
            let node = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            if node.is_empty() || nodes.get(&ObjectRef::new(&node)).is_some() {
                continue;
            }
            // Confirm with the apiserver: the node may be newer than our cache.
            if Api::<Node>::all(client.clone())
                .get_opt(&node)
                .await
                .ok()
                .flatten()
                .is_some()
            {
                continue;
            }
            let api: Api<Pod> = Api::namespaced(client.clone(), &p.namespace().unwrap_or_default());
            if api
                .delete(&p.name_any(), &DeleteParams::default().grace_period(0))
                .await
                .is_ok()
            {
                info!(pod = %p.name_any(), node, "deleted pod of a node that is gone");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, Toleration};

    fn pod(t: Option<Toleration>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                tolerations: t.map(|t| vec![t]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

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
    fn eviction_follows_the_matching_toleration() {
        let at = jiff::Timestamp::from_second(1000).unwrap();
        let default = Duration::from_secs(300);
        assert_eq!(
            eviction_time(&pod(None), at, default).unwrap().as_second(),
            1300
        );
        let t = Toleration {
            key: Some(UNREACHABLE_TAINT.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: Some(5),
            value: None,
        };
        assert_eq!(
            eviction_time(&pod(Some(t.clone())), at, default)
                .unwrap()
                .as_second(),
            1005
        );
        let forever = Toleration {
            toleration_seconds: None,
            ..t.clone()
        };
        assert_eq!(eviction_time(&pod(Some(forever)), at, default), None);
        let other = Toleration {
            key: Some("node.kubernetes.io/not-ready".into()),
            ..t
        };
        assert_eq!(
            eviction_time(&pod(Some(other)), at, default)
                .unwrap()
                .as_second(),
            1300
        );
    }
}
