//! Taint eviction (upstream's NoExecuteTaintManager): a pod may stay on a node with a
//! `NoExecute` taint only as long as it tolerates the taint.
//!
//! For every node with NoExecute taints, each pod bound to it is evicted (deleted):
//! - at once if some NoExecute taint has no matching toleration;
//! - else `tolerationSeconds` after the taint's `timeAdded` (the earliest of its taints'
//!   deadlines, each taint's first matching toleration counting, as upstream);
//! - never if every matching toleration has no `tolerationSeconds`.
//!
//! The node lifecycle's own taints (`node.kubernetes.io/unreachable` and `not-ready`, see
//! `node_lifecycle.rs`) are one case of this, with one minik8s difference kept from before: a
//! pod that does not tolerate them gets `--pod-eviction-timeout` rather than none (the
//! apiserver's DefaultTolerationSeconds gives every pod a toleration for both anyway).
//!
//! The sync is level-triggered: each pass reads the node's taints and its pods' tolerations
//! as they are now and requeues for the next deadline, so removing a taint (or deleting the
//! pod) before its deadline cancels the eviction. A taint written without `timeAdded` counts
//! from when this controller first saw it (kubectl sets it on NoExecute taints).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use kube::api::{Api, DeleteParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::WatchStreamExt;
use kube::ResourceExt;
use tracing::{info, instrument, warn};

use crate::cache;
use crate::events::Recorder;

/// The taint the node lifecycle controller puts on a node whose Lease expired.
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";
/// The taint of a node whose kubelet reports Ready=False.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";

/// What can fail while evicting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
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
    /// Every pod, by the watch (filtered by `spec.nodeName` in memory).
    pub pods: Store<Pod>,
    /// Eviction delay for a pod that does not tolerate the node lifecycle's own taints.
    pub pod_eviction_timeout: Duration,
    pub recorder: Recorder,
    /// When a NoExecute taint without `timeAdded` was first seen, by (node, key, value).
    first_seen: Mutex<HashMap<(String, String, String), jiff::Timestamp>>,
    /// Pods deleted lately, by uid: the cache may still show one without its
    /// `deletionTimestamp` (a sync woken by another pod's event), and it is evicted once.
    evicted: Mutex<HashMap<String, jiff::Timestamp>>,
}

/// How long an eviction is remembered: far longer than the watch takes to show it.
const EVICTED_MEMORY: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);

impl Context {
    /// A context over the pods in `pods`.
    pub fn new(client: kube::Client, pods: Store<Pod>, pod_eviction_timeout: Duration) -> Self {
        Context {
            recorder: Recorder::new(client.clone(), "taint-eviction-controller"),
            client,
            pods,
            pod_eviction_timeout,
            first_seen: Mutex::default(),
            evicted: Mutex::default(),
        }
    }
}

/// Run the taint eviction controller until dropped: syncs a node when it or one of its pods
/// changes.
pub async fn run(client: kube::Client, pod_eviction_timeout: Duration) {
    let (pods, writer) = reflector::store::<Pod>();
    let pod_events = reflector::reflector(writer, cache::watch(Api::<Pod>::all(client.clone())))
        .touched_objects();
    let ctx = Arc::new(Context::new(client.clone(), pods, pod_eviction_timeout));
    cache::controller(Api::<Node>::all(client))
        .watches_stream(pod_events, |p: Pod| {
            let node = p.spec.as_ref()?.node_name.as_deref()?;
            Some(ObjectRef::<Node>::new(node))
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// Requeue a second after a failure.
pub fn error_policy(node: Arc<Node>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!(node = %node.name_any(), error = %err, "taint eviction failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

/// Evict the node's pods whose tolerations of its NoExecute taints ran out; come back at the
/// next deadline.
#[instrument(skip_all, fields(node = %node.name_any()))]
pub async fn reconcile(node: Arc<Node>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !cache::has_synced(&ctx.pods) {
        return Ok(Action::requeue(Duration::from_millis(200)));
    }
    let now = jiff::Timestamp::now();
    let name = node.name_any();
    let taints = ctx.no_execute_taints(&node, now);
    if taints.is_empty() {
        return Ok(Action::await_change());
    }
    let mut next: Option<jiff::Timestamp> = None;
    for pod in ctx.pods.state().iter().filter(|p| {
        p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str())
            && p.metadata.deletion_timestamp.is_none()
    }) {
        let Some(at) = eviction_time(pod, &taints, ctx.pod_eviction_timeout) else {
            continue;
        };
        if at > now {
            next = Some(next.map_or(at, |n| n.min(at)));
            continue;
        }
        if ctx.first_eviction(pod, now) {
            evict(pod, &ctx).await?;
        }
    }
    Ok(match next {
        Some(at) => {
            let wait = at.duration_since(now).as_millis().max(0) as u64 + 100;
            Action::requeue(Duration::from_millis(wait))
        }
        None => Action::await_change(),
    })
}

impl Context {
    /// Whether `pod` was not evicted lately; remembers that it is now.
    fn first_eviction(&self, pod: &Pod, now: jiff::Timestamp) -> bool {
        let Some(uid) = pod.uid() else {
            return true;
        };
        let mut evicted = self.evicted.lock().unwrap_or_else(|e| e.into_inner());
        evicted.retain(|_, at| now.duration_since(*at) < EVICTED_MEMORY);
        evicted.insert(uid, now).is_none()
    }

    /// The node's NoExecute taints with when each was added (`timeAdded`, else when first
    /// seen here).
    fn no_execute_taints(
        &self,
        node: &Node,
        now: jiff::Timestamp,
    ) -> Vec<(Taint, jiff::Timestamp)> {
        let name = node.name_any();
        let all = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let mut seen = self.first_seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|(n, key, value), _| {
            n != &name
                || all.iter().any(|t| {
                    &t.key == key && t.value.as_deref().unwrap_or("") == value && is_no_execute(t)
                })
        });
        all.into_iter()
            .filter(is_no_execute)
            .map(|t| {
                let added = match &t.time_added {
                    Some(at) => at.0,
                    None => *seen
                        .entry((
                            name.clone(),
                            t.key.clone(),
                            t.value.clone().unwrap_or_default(),
                        ))
                        .or_insert(now),
                };
                (t, added)
            })
            .collect()
    }
}

fn is_no_execute(t: &Taint) -> bool {
    t.effect == "NoExecute"
}

/// Upstream's `Toleration.ToleratesTaint`: the effect and key match (an empty one matches
/// any), and `Exists` matches any value, `Equal` (the default) only the same value.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = t.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// When a pod on a node with these NoExecute `taints` (each with when it was added) must go;
/// None if it tolerates them all for ever. Each taint's first matching toleration counts: an
/// untolerated taint evicts at once (the node lifecycle's taints: after `lifecycle_default`),
/// a toleration with `tolerationSeconds` that long after the taint was added, one without
/// seconds never (unless another taint's deadline comes first).
pub fn eviction_time(
    pod: &Pod,
    taints: &[(Taint, jiff::Timestamp)],
    lifecycle_default: Duration,
) -> Option<jiff::Timestamp> {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    taints
        .iter()
        .filter_map(|(taint, added)| {
            let secs = match tolerations.iter().find(|t| tolerates(t, taint)) {
                Some(t) => t.toleration_seconds?.max(0),
                None if is_lifecycle_taint(taint) => lifecycle_default.as_secs() as i64,
                None => 0,
            };
            Some(*added + jiff::SignedDuration::from_secs(secs))
        })
        .min()
}

fn is_lifecycle_taint(t: &Taint) -> bool {
    t.key == UNREACHABLE_TAINT || t.key == NOT_READY_TAINT
}

/// Delete a pod whose toleration of a NoExecute taint ran out (or that has none).
async fn evict(p: &Pod, ctx: &Context) -> Result<(), Error> {
    let ns = p.namespace().unwrap_or_default();
    let message = format!("Marking for deletion Pod {ns}/{}", p.name_any());
    ctx.recorder
        .normal(p, "TaintManagerEviction", message)
        .await;
    match Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .delete(&p.name_any(), &DeleteParams::default())
        .await
    {
        Ok(_) => info!(pod = %p.name_any(), "evicted pod from a NoExecute-tainted node"),
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(source) => {
            if let Some(uid) = p.uid() {
                let mut evicted = ctx.evicted.lock().unwrap_or_else(|e| e.into_inner());
                evicted.remove(&uid);
            }
            return Err(Error::Evict {
                pod: p.name_any(),
                source,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    fn pod(ts: Vec<Toleration>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                tolerations: Some(ts),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn taint(key: &str, value: Option<&str>, added: i64) -> (Taint, jiff::Timestamp) {
        let t = Taint {
            key: key.into(),
            value: value.map(Into::into),
            effect: "NoExecute".into(),
            time_added: None,
        };
        (t, jiff::Timestamp::from_second(added).unwrap())
    }

    fn toleration(key: &str, op: &str, value: Option<&str>, secs: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some(op.into()),
            value: value.map(Into::into),
            effect: Some("NoExecute".into()),
            toleration_seconds: secs,
        }
    }

    const DEFAULT: Duration = Duration::from_secs(300);

    fn at(p: &Pod, taints: &[(Taint, jiff::Timestamp)]) -> Option<i64> {
        eviction_time(p, taints, DEFAULT).map(|t| t.as_second())
    }

    #[test]
    fn an_untolerated_taint_evicts_at_once_a_lifecycle_one_after_the_timeout() {
        let none = pod(vec![]);
        assert_eq!(
            at(&none, &[taint("dedicated", Some("infra"), 1000)]),
            Some(1000)
        );
        assert_eq!(
            at(&none, &[taint(UNREACHABLE_TAINT, None, 1000)]),
            Some(1300)
        );
        let wrong_value = pod(vec![toleration("dedicated", "Equal", Some("db"), None)]);
        assert_eq!(
            at(&wrong_value, &[taint("dedicated", Some("infra"), 1000)]),
            Some(1000)
        );
    }

    #[test]
    fn a_tolerated_taint_evicts_after_the_seconds_or_never() {
        let t = taint("dedicated", Some("infra"), 1000);
        let forever = pod(vec![toleration("dedicated", "Equal", Some("infra"), None)]);
        assert_eq!(at(&forever, std::slice::from_ref(&t)), None);
        let three = pod(vec![toleration("dedicated", "Exists", None, Some(3))]);
        assert_eq!(at(&three, std::slice::from_ref(&t)), Some(1003));
        // any key, any value
        let all = pod(vec![Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        }]);
        assert_eq!(
            at(&all, &[t.clone(), taint(UNREACHABLE_TAINT, None, 5)]),
            None
        );
        // the earliest deadline of several taints; an untolerated one wins at once
        let two = [t.clone(), taint(UNREACHABLE_TAINT, None, 2000)];
        let both = pod(vec![
            toleration("dedicated", "Exists", None, None),
            toleration(UNREACHABLE_TAINT, "Exists", None, Some(5)),
        ]);
        assert_eq!(at(&both, &two), Some(2005));
        assert_eq!(at(&three, &[t, taint("gpu", None, 1001)]), Some(1001));
    }

    #[test]
    fn toleration_matching_is_upstreams() {
        let (t, _) = taint("k", Some("v"), 0);
        let tol =
            |key: Option<&str>, op: Option<&str>, value: Option<&str>, effect: Option<&str>| {
                Toleration {
                    key: key.map(Into::into),
                    operator: op.map(Into::into),
                    value: value.map(Into::into),
                    effect: effect.map(Into::into),
                    toleration_seconds: None,
                }
            };
        assert!(tolerates(&tol(Some("k"), None, Some("v"), None), &t));
        assert!(!tolerates(&tol(Some("k"), None, Some("w"), None), &t));
        assert!(tolerates(
            &tol(Some("k"), Some("Exists"), None, Some("NoExecute")),
            &t
        ));
        assert!(!tolerates(
            &tol(Some("k"), Some("Exists"), None, Some("NoSchedule")),
            &t
        ));
        assert!(!tolerates(&tol(Some("j"), Some("Exists"), None, None), &t));
        assert!(tolerates(&tol(None, Some("Exists"), None, None), &t));
    }
}
