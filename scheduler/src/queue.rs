//! The scheduling queue: pods waiting for a node, one decision at a time.
//!
//! Like kube-scheduler's `PriorityQueue` it has three parts: *active* pods ready to be tried,
//! *backoff* pods that failed and wait `1s·2^(attempts-1)` (at most 10 s) before their next
//! try, and *unschedulable* pods that no node fits. Unschedulable pods wait for the cluster to
//! change (a node added or updated, a pod deleted): then they all move back to active. A change
//! that happens while a pod is being tried sends it to backoff rather than unschedulable, so it
//! cannot miss the event that would have let it fit. Read next: `filter.rs`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::Notify;
use tokio::time::Instant;

/// First back-off after a failed attempt (upstream `podInitialBackoffSeconds`).
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Longest back-off (upstream `podMaxBackoffSeconds`).
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Where a queued pod is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// In the active queue, to be tried next.
    Active,
    /// Waiting out its back-off until the instant.
    Backoff(Instant),
    /// No node fits; waits for a cluster change.
    Unschedulable,
    /// Being tried (popped, not done yet).
    InFlight,
}

#[derive(Debug)]
struct Entry {
    pod: Arc<Pod>,
    attempts: u32,
    state: State,
    /// When the last attempt failed (back-off counts from here).
    failed_at: Option<Instant>,
}

#[derive(Debug, Default)]
struct Inner {
    active: VecDeque<String>,
    entries: HashMap<String, Entry>,
    /// Bumped on every cluster change that may help unschedulable pods.
    move_cycle: u64,
}

/// A pod handed out by [`SchedulingQueue::pop`].
#[derive(Debug, Clone)]
pub struct QueuedPod {
    /// `namespace/name`.
    pub key: String,
    /// The latest version of the pod the queue had.
    pub pod: Arc<Pod>,
    /// Failed attempts so far.
    pub attempts: u32,
    /// The move cycle when the pod was popped.
    pub cycle: u64,
}

/// The queue of pods to schedule, shared by the watch handlers and the scheduling loop.
#[derive(Debug, Default)]
pub struct SchedulingQueue {
    inner: Mutex<Inner>,
    notify: Notify,
}

/// `namespace/name` of a pod.
pub fn key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// The back-off after `attempts` failures.
pub fn backoff(attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(16);
    (INITIAL_BACKOFF * 2u32.pow(exp)).min(MAX_BACKOFF)
}

impl SchedulingQueue {
    /// An empty queue.
    pub fn new() -> SchedulingQueue {
        SchedulingQueue::default()
    }

    /// Add a pending pod, or refresh the copy of one already queued.
    pub fn add_or_update(&self, pod: Arc<Pod>) {
        let key = key(&pod);
        let mut inner = self.inner.lock().unwrap();
        match inner.entries.get_mut(&key) {
            Some(e) => {
                if e.pod.metadata.uid != pod.metadata.uid {
                    // Deleted and re-created under the same name: a fresh pod.
                    e.attempts = 0;
                }
                e.pod = pod;
            }
            None => {
                inner.entries.insert(
                    key.clone(),
                    Entry {
                        pod,
                        attempts: 0,
                        state: State::Active,
                        failed_at: None,
                    },
                );
                inner.active.push_back(key);
                drop(inner);
                self.notify.notify_one();
            }
        }
    }

    /// Forget a pod (bound, deleted, or no longer ours).
    pub fn remove(&self, key: &str) {
        let mut inner = self.inner.lock().unwrap();
        if inner.entries.remove(key).is_some() {
            inner.active.retain(|k| k != key);
        }
    }

    /// Whether the pod is queued (in any part, or in flight).
    pub fn contains(&self, key: &str) -> bool {
        self.inner.lock().unwrap().entries.contains_key(key)
    }

    /// Number of pods queued, in flight included.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap().entries.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keep only the pods whose keys satisfy `keep` (after a re-list).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        let mut inner = self.inner.lock().unwrap();
        inner.entries.retain(|k, _| keep(k));
        let Inner {
            active, entries, ..
        } = &mut *inner;
        active.retain(|k| entries.contains_key(k));
    }

    /// The next pod to try; waits while nothing is active.
    pub async fn pop(&self) -> QueuedPod {
        loop {
            let notified = self.notify.notified();
            let wake_at = {
                let mut inner = self.inner.lock().unwrap();
                let now = Instant::now();
                let Inner {
                    active,
                    entries,
                    move_cycle,
                } = &mut *inner;
                let mut next: Option<Instant> = None;
                for (k, e) in entries.iter_mut() {
                    if let State::Backoff(until) = e.state {
                        if until <= now {
                            e.state = State::Active;
                            active.push_back(k.clone());
                        } else {
                            next = Some(next.map_or(until, |n| n.min(until)));
                        }
                    }
                }
                while let Some(k) = active.pop_front() {
                    if let Some(e) = entries.get_mut(&k) {
                        if e.state == State::Active {
                            e.state = State::InFlight;
                            return QueuedPod {
                                key: k,
                                pod: e.pod.clone(),
                                attempts: e.attempts,
                                cycle: *move_cycle,
                            };
                        }
                    }
                }
                next
            };
            match wake_at {
                Some(at) => {
                    tokio::select! {
                        _ = notified => {}
                        _ = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// The attempt failed because no node fits.
    pub fn unschedulable(&self, popped: &QueuedPod) {
        let mut inner = self.inner.lock().unwrap();
        let moved_meanwhile = inner.move_cycle > popped.cycle;
        let Some(e) = inner.entries.get_mut(&popped.key) else {
            return;
        };
        e.attempts += 1;
        let now = Instant::now();
        e.failed_at = Some(now);
        e.state = if moved_meanwhile {
            State::Backoff(now + backoff(e.attempts))
        } else {
            State::Unschedulable
        };
        drop(inner);
        self.notify.notify_one();
    }

    /// The attempt failed for another reason (e.g. the binding failed): retry after back-off.
    pub fn retry(&self, popped: &QueuedPod) {
        let mut inner = self.inner.lock().unwrap();
        let Some(e) = inner.entries.get_mut(&popped.key) else {
            return;
        };
        e.attempts += 1;
        let now = Instant::now();
        e.failed_at = Some(now);
        e.state = State::Backoff(now + backoff(e.attempts));
        drop(inner);
        self.notify.notify_one();
    }

    /// The cluster changed in a way that may let unschedulable pods fit: retry them (after what
    /// remains of their back-off).
    pub fn move_all_to_active(&self) {
        let mut inner = self.inner.lock().unwrap();
        inner.move_cycle += 1;
        let now = Instant::now();
        let Inner {
            active, entries, ..
        } = &mut *inner;
        let mut woke = false;
        for (k, e) in entries.iter_mut() {
            if e.state != State::Unschedulable {
                continue;
            }
            let until = e.failed_at.map(|t| t + backoff(e.attempts)).unwrap_or(now);
            if until <= now {
                e.state = State::Active;
                active.push_back(k.clone());
            } else {
                e.state = State::Backoff(until);
            }
            woke = true;
        }
        drop(inner);
        if woke {
            self.notify.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> Arc<Pod> {
        Arc::new(serde_json::from_value(serde_json::json!({"metadata": {"name": name, "namespace": "default", "uid": name}})).unwrap())
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(5), MAX_BACKOFF);
        assert_eq!(backoff(100), MAX_BACKOFF);
    }

    #[tokio::test(start_paused = true)]
    async fn unschedulable_pods_wait_for_a_cluster_change_then_their_backoff() {
        let q = SchedulingQueue::new();
        q.add_or_update(pod("a"));
        q.add_or_update(pod("a")); // an update does not queue twice
        let p = q.pop().await;
        assert_eq!(p.key, "default/a");
        q.unschedulable(&p);
        // Nothing active: pop waits (paused clock: a timeout fires only if nothing can come).
        assert!(tokio::time::timeout(Duration::from_secs(60), q.pop())
            .await
            .is_err());
        q.move_all_to_active();
        let again = q.pop().await;
        assert_eq!(again.attempts, 1);
        assert!(again.cycle > p.cycle);
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_during_the_attempt_sends_the_pod_to_backoff_not_unschedulable() {
        let q = SchedulingQueue::new();
        q.add_or_update(pod("a"));
        let p = q.pop().await;
        q.move_all_to_active(); // e.g. a node was added while we were filtering
        q.unschedulable(&p);
        let start = Instant::now();
        let again = tokio::time::timeout(Duration::from_secs(60), q.pop())
            .await
            .expect("retried after back-off");
        assert_eq!(again.key, "default/a");
        assert!(Instant::now() - start >= INITIAL_BACKOFF);
        q.remove("default/a");
        assert!(q.is_empty());
    }
}
