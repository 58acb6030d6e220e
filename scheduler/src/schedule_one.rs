//! The scheduling loop: one pod at a time, from the queue to a node.
//!
//! Two reflectors (Nodes, Pods) keep the cache and the queue current. The loop pops a pod, runs
//! the filters over the nodes (stopping, like upstream `percentageOfNodesToScore`, once enough
//! feasible nodes are found in a large cluster, starting where the previous pod stopped), scores
//! the feasible ones, *assumes* the pod on the winner and hands the binding to a background
//! task, then moves on. A pod no node fits is explained (`explain.rs`) and parked until the
//! cluster changes. Upstream's counterpart is `pkg/scheduler/schedule_one.go`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::bind;
use crate::cache::{is_terminal, Cache, NodeInfo};
use crate::explain::{self, Recorder};
use crate::filter::{self, PodFacts, Reason};
use crate::queue::{self, QueuedPod, SchedulingQueue};
use crate::score;

/// What a scheduler instance is called and who it is.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Pods with this `spec.schedulerName` (or none) are ours.
    pub scheduler_name: String,
    /// This process's identity, as `reportingInstance` of its events.
    pub identity: String,
}

impl Default for SchedulerConfig {
    fn default() -> SchedulerConfig {
        SchedulerConfig {
            scheduler_name: "default-scheduler".into(),
            identity: client::leader::default_identity(),
        }
    }
}

/// Errors that stop the scheduler.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// A watch task ended, which it never should.
    #[error("the {resource} watch stopped")]
    WatchStopped { resource: &'static str },
}

/// Shared state of a running scheduler.
struct Scheduler {
    client: kube::Client,
    config: SchedulerConfig,
    cache: Mutex<Cache>,
    queue: SchedulingQueue,
    recorder: Recorder,
    slots: Arc<Semaphore>,
    event_slots: Semaphore,
}

/// How many feasible nodes to look for among `n` (upstream adaptive `percentageOfNodesToScore`:
/// all of them below 100 nodes, then 50% shrinking to 5%, never fewer than 100).
pub fn num_feasible_nodes_to_find(n: usize) -> usize {
    const MIN_FEASIBLE: usize = 100;
    if n < MIN_FEASIBLE {
        return n;
    }
    let percent = (50 - n as i64 / 125).max(5) as usize;
    (n * percent / 100).max(MIN_FEASIBLE)
}

/// The outcome of filtering and scoring for one pod.
pub enum Decision {
    /// Bind to this node.
    Node(String),
    /// No node fits; the explanation for the pod.
    Unschedulable(String),
}

/// Filter and score the cached nodes for `pod`. `next_start` rotates the starting node so that
/// sampling a large cluster visits every node in turn.
pub fn decide(pod: &Pod, cache: &Cache, next_start: &mut usize, rng: &mut SmallRng) -> Decision {
    let facts = PodFacts::of(pod);
    let nodes: Vec<&NodeInfo> = cache.nodes().collect();
    let n = nodes.len();
    let wanted = num_feasible_nodes_to_find(n);
    let mut feasible = Vec::new();
    let mut refused: Vec<Vec<Reason>> = Vec::new();
    let mut processed = 0;
    for i in 0..n {
        let node = nodes[(*next_start + i) % n];
        let name = node.node.metadata.name.as_deref().unwrap_or("");
        let usage = cache.usage(name);
        processed += 1;
        match filter::filter(&facts, node, usage) {
            Ok(()) => {
                feasible.push((node, usage));
                if feasible.len() >= wanted {
                    break;
                }
            }
            Err(reasons) => refused.push(reasons),
        }
    }
    if n > 0 {
        *next_start = (*next_start + processed) % n;
    }
    match score::select(pod, &feasible, rng) {
        Some(i) => Decision::Node(feasible[i].0.node.metadata.name.clone().unwrap_or_default()),
        None => Decision::Unschedulable(explain::fit_error_message(n, &refused)),
    }
}

impl Scheduler {
    /// Whether we should schedule this pod: unbound, ours, alive.
    fn responsible(&self, pod: &Pod) -> bool {
        let spec = pod.spec.as_ref();
        let name = spec.and_then(|s| s.scheduler_name.as_deref()).unwrap_or("");
        spec.and_then(|s| s.node_name.as_deref())
            .unwrap_or("")
            .is_empty()
            && (name.is_empty() || name == self.config.scheduler_name)
            && pod.metadata.deletion_timestamp.is_none()
            && !is_terminal(pod)
    }

    fn on_pod(&self, pod: &Pod) {
        let key = queue::key(pod);
        let bound = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        if bound {
            let freed = self.cache.lock().unwrap().apply_pod(pod);
            self.queue.remove(&key);
            if freed {
                self.queue.move_all_to_active();
            }
        } else if self.responsible(pod) {
            let assumed = self
                .cache
                .lock()
                .unwrap()
                .is_assumed(pod.metadata.uid.as_deref().unwrap_or(""));
            if !assumed {
                self.queue.add_or_update(Arc::new(pod.clone()));
            }
        } else {
            self.queue.remove(&key);
        }
    }

    fn on_pod_deleted(&self, pod: &Pod) {
        self.queue.remove(&queue::key(pod));
        if self.cache.lock().unwrap().delete_pod(pod) {
            self.queue.move_all_to_active();
        }
    }

    fn on_node(&self, node: Node) {
        if self.cache.lock().unwrap().apply_node(node) {
            self.queue.move_all_to_active();
        }
    }

    /// Follow the Pod watch into the cache and the queue.
    async fn watch_pods(
        self: Arc<Self>,
        stream: impl Stream<Item = Result<Event<Pod>, watcher::Error>>,
    ) {
        let mut stream = std::pin::pin!(stream);
        let mut relist: Option<(HashSet<String>, HashSet<String>)> = None;
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Apply(pod)) => self.on_pod(&pod),
                Ok(Event::Delete(pod)) => self.on_pod_deleted(&pod),
                Ok(Event::Init) => relist = Some(Default::default()),
                Ok(Event::InitApply(pod)) => {
                    if let Some((uids, keys)) = relist.as_mut() {
                        uids.insert(pod.metadata.uid.clone().unwrap_or_default());
                        keys.insert(queue::key(&pod));
                    }
                    self.on_pod(&pod);
                }
                Ok(Event::InitDone) => {
                    if let Some((uids, keys)) = relist.take() {
                        self.queue.retain(|k| keys.contains(k));
                        if self.cache.lock().unwrap().retain_pods(&uids) {
                            self.queue.move_all_to_active();
                        }
                    }
                }
                Err(e) => warn!(error = %e, "pod watch failed; retrying"),
            }
        }
    }

    /// Follow the Node watch into the cache.
    async fn watch_nodes(
        self: Arc<Self>,
        stream: impl Stream<Item = Result<Event<Node>, watcher::Error>>,
    ) {
        let mut stream = std::pin::pin!(stream);
        let mut relist: Option<HashSet<String>> = None;
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Apply(node)) => self.on_node(node),
                Ok(Event::Delete(node)) => self
                    .cache
                    .lock()
                    .unwrap()
                    .delete_node(node.metadata.name.as_deref().unwrap_or("")),
                Ok(Event::Init) => relist = Some(HashSet::new()),
                Ok(Event::InitApply(node)) => {
                    if let Some(names) = relist.as_mut() {
                        names.insert(node.metadata.name.clone().unwrap_or_default());
                    }
                    self.on_node(node);
                }
                Ok(Event::InitDone) => {
                    if let Some(names) = relist.take() {
                        self.cache.lock().unwrap().retain_nodes(&names);
                    }
                }
                Err(e) => warn!(error = %e, "node watch failed; retrying"),
            }
        }
    }

    /// Bind in the background; on failure forget the assumption and retry later.
    async fn bind_in_background(self: Arc<Self>, popped: QueuedPod, node: String) {
        let pod = popped.pod.clone();
        match bind::bind(&self.client, &pod, &node).await {
            Ok(()) => {
                debug!(node = %node, "bound");
                self.queue.remove(&popped.key);
                // The event is written on its own budget: it must not hold up the next binding.
                let msg = explain::scheduled_message(&pod, &node);
                let s = self.clone();
                tokio::spawn(
                    async move {
                        let _slot = s.event_slots.acquire().await;
                        if let Err(e) = s.recorder.record(&pod, "Normal", "Scheduled", &msg).await {
                            warn!(error = %e, "cannot record the Scheduled event");
                        }
                    }
                    .in_current_span(),
                );
            }
            Err(e) => {
                self.cache.lock().unwrap().forget(&pod);
                if e.is_final() {
                    debug!(error = %e, "binding refused; the pod is gone or bound");
                    self.queue.remove(&popped.key);
                } else {
                    warn!(error = %e, "binding failed; retrying after back-off");
                    self.queue.retry(&popped);
                }
            }
        }
    }

    /// Report an unschedulable pod: condition and event.
    async fn explain_in_background(self: Arc<Self>, pod: Arc<Pod>, message: String) {
        if let Err(e) = explain::mark_unschedulable(&self.client, &pod, &message).await {
            warn!(error = %e, "cannot set the PodScheduled condition");
        }
        if let Err(e) = self
            .recorder
            .record(&pod, "Warning", "FailedScheduling", &message)
            .await
        {
            warn!(error = %e, "cannot record the FailedScheduling event");
        }
    }
}

/// Run the scheduler until an error (or until the future is dropped, which stops every task
/// it started).
pub async fn run(client: kube::Client, config: SchedulerConfig) -> Result<(), ScheduleError> {
    let sched = Arc::new(Scheduler {
        recorder: Recorder {
            client: client.clone(),
            component: config.scheduler_name.clone(),
            instance: config.identity.clone(),
        },
        client: client.clone(),
        config,
        cache: Mutex::new(Cache::new()),
        queue: SchedulingQueue::new(),
        slots: Arc::new(Semaphore::new(bind::MAX_IN_FLIGHT)),
        event_slots: Semaphore::new(bind::MAX_IN_FLIGHT),
    });
    let (node_store, node_writer) = reflector::store::<Node>();
    let (pod_store, pod_writer) = reflector::store::<Pod>();
    let nodes = reflector::reflector(node_writer, watcher(Api::<Node>::all(client.clone())))
        .default_backoff();
    let pods = reflector::reflector(pod_writer, watcher(Api::<Pod>::all(client.clone())))
        .default_backoff();
    let mut watches = JoinSet::new();
    watches.spawn(sched.clone().watch_nodes(nodes));
    watches.spawn(sched.clone().watch_pods(pods));
    wait_for_sync(&node_store, &pod_store).await;
    info!(scheduler = %sched.config.scheduler_name, nodes = node_store.len(), pods = pod_store.len(), "caches synced; scheduling");

    let mut tasks = JoinSet::new();
    let mut next_start = 0usize;
    let mut rng = SmallRng::from_os_rng();
    loop {
        while tasks.try_join_next().is_some() {}
        if let Some(done) = watches.try_join_next() {
            let resource = if done.is_ok() {
                "node or pod"
            } else {
                "panicked"
            };
            return Err(ScheduleError::WatchStopped { resource });
        }
        let popped = sched.queue.pop().await;
        let span = info_span!("schedule", pod = %popped.key);
        let uid = popped.pod.metadata.uid.clone().unwrap_or_default();
        let decision = {
            let cache = sched.cache.lock().unwrap();
            if cache.is_placed(&uid) {
                None
            } else {
                Some(span.in_scope(|| decide(&popped.pod, &cache, &mut next_start, &mut rng)))
            }
        };
        let Some(decision) = decision else {
            sched.queue.remove(&popped.key);
            continue;
        };
        // Wait for a free slot first, so an assumption never waits long for its binding.
        let permit = sched
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        match decision {
            Decision::Node(node) => {
                sched.cache.lock().unwrap().assume(&popped.pod, &node);
                let s = sched.clone();
                tasks.spawn(
                    async move {
                        s.bind_in_background(popped, node).await;
                        drop(permit);
                    }
                    .instrument(span),
                );
            }
            Decision::Unschedulable(message) => {
                span.in_scope(|| info!(reason = %message, "unschedulable"));
                sched.queue.unschedulable(&popped);
                let s = sched.clone();
                tasks.spawn(
                    async move {
                        s.explain_in_background(popped.pod, message).await;
                        drop(permit);
                    }
                    .instrument(span),
                );
            }
        }
    }
}

fn watcher<K>(api: Api<K>) -> impl Stream<Item = Result<Event<K>, watcher::Error>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher::watcher(api, watcher::Config::default().any_semantic())
}

async fn wait_for_sync(nodes: &Store<Node>, pods: &Store<Pod>) {
    // Ready after the first complete list; errors are retried by the watch tasks meanwhile.
    let _ = nodes.wait_until_ready().await;
    let _ = pods.wait_until_ready().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_clusters_are_sampled_like_upstream() {
        assert_eq!(num_feasible_nodes_to_find(10), 10);
        assert_eq!(num_feasible_nodes_to_find(100), 100);
        assert_eq!(num_feasible_nodes_to_find(1000), 420);
        assert_eq!(num_feasible_nodes_to_find(5000), 500);
        assert_eq!(num_feasible_nodes_to_find(150), 100);
    }
}
