//! The pod worker: one task per pod (by UID), level-triggered. Each pass compares the pod spec
//! with what the runtime has (sandbox, init containers in order, then containers), starts what
//! is missing, restarts what exited as the restartPolicy says (with CrashLoopBackOff: base
//! delay doubling to 5 min), runs probes, and posts `pods/{p}/status` when it changed. A pod
//! with a deletionTimestamp is stopped (SIGTERM, grace, SIGKILL), removed from the runtime and
//! then deleted from the API with gracePeriodSeconds=0 and a UID precondition.
//!
//! The worker's memory is a [`Lifecycle`] (how far the pod has come on this node) plus what
//! the runtime cannot say (back-off timers, probe counters, why a container waits); the
//! containers themselves are always read back from the runtime. Files: `context.rs` (what
//! workers share, the API seam), `pass.rs` (one pass, step by step), `containers.rs` (start,
//! restart, probe one container), `teardown.rs` (stop and remove the pod), `tests.rs` (the
//! worker against the fake runtime and a recording API). Read `pass.rs` next.

mod containers;
mod context;
mod pass;
mod teardown;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use tokio::sync::watch;
use tracing::Instrument;

pub use context::{start_slots, Context, KubeApi, PodApi};

use crate::cri::{SandboxStatus, State, Status};
use crate::events::PodEvent;
use crate::probes::ContainerProbes;
use crate::restart::Backoff;

/// A runtime container of this pod.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    pub container: String,
    pub attempt: u32,
}

/// Volume name → its directory on the node.
type Volumes = BTreeMap<String, PathBuf>;

/// What the pod has on the node once its sandbox exists.
#[derive(Debug, Clone)]
struct PodSandbox {
    volumes: Volumes,
    sandbox: SandboxStatus,
    /// The pod's address on the pod network (None: not attached yet, or no pod network).
    pod_ip: Option<Ipv4Addr>,
}

/// How far the pod has come on this node. Each state keeps what the states before it made;
/// passes move it forward, teardown back to `New`.
#[derive(Debug, Clone)]
enum Lifecycle {
    /// Nothing set up yet: the pod's volumes are not ready (their setup failed so far).
    New,
    /// The volumes are set up; the sandbox is not there yet (its creation failed, or the pod
    /// had ended before this kubelet saw it).
    VolumesReady { volumes: Volumes },
    /// The sandbox exists: containers run once it is on the pod network (or at once when
    /// the node has no pod network).
    SandboxReady(PodSandbox),
    /// Reported Running once: its start latency is recorded and passes take no start slot.
    Running(PodSandbox),
}

impl Lifecycle {
    fn volumes(&self) -> Option<&Volumes> {
        match self {
            Self::New => None,
            Self::VolumesReady { volumes } => Some(volumes),
            Self::SandboxReady(p) | Self::Running(p) => Some(&p.volumes),
        }
    }

    fn sandbox(&self) -> Option<&PodSandbox> {
        match self {
            Self::SandboxReady(p) | Self::Running(p) => Some(p),
            Self::New | Self::VolumesReady { .. } => None,
        }
    }

    fn sandbox_mut(&mut self) -> Option<&mut PodSandbox> {
        match self {
            Self::SandboxReady(p) | Self::Running(p) => Some(p),
            Self::New | Self::VolumesReady { .. } => None,
        }
    }

    fn pod_ip(&self) -> Option<Ipv4Addr> {
        self.sandbox().and_then(|p| p.pod_ip)
    }

    fn is_running(&self) -> bool {
        matches!(self, Self::Running(_))
    }
}

/// Why a container is not running, when the worker decided it (not the runtime).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Waiting {
    /// CrashLoopBackOff, ErrImagePull, CreateContainerError, ...
    reason: &'static str,
    message: String,
}

/// Per-pod state the worker keeps between passes.
pub struct PodWorker {
    ctx: Arc<Context>,
    uid: String,
    lifecycle: Lifecycle,
    /// The pod's containers in the runtime, every attempt still kept.
    records: Vec<Record>,
    /// CrashLoopBackOff per container name.
    backoff: HashMap<String, Backoff>,
    /// Probe counters per runtime container id.
    probes: HashMap<String, ContainerProbes>,
    /// Per container name.
    waiting: HashMap<String, Waiting>,
    /// The last FailedMount message posted (posted again only when it changes).
    mount_error: Option<String>,
    /// The status last written (written again only when it changes).
    last_status: Option<PodStatus>,
    first_seen: Instant,
    /// Where the pod's start went (logged once it runs).
    start_steps: Vec<(&'static str, Duration)>,
}

impl PodWorker {
    /// A worker for pod `uid`, re-adopting `records` (its containers a previous kubelet ran).
    pub fn new(ctx: Arc<Context>, uid: String, records: Vec<Record>) -> Self {
        Self {
            ctx,
            uid,
            lifecycle: Lifecycle::New,
            records,
            backoff: HashMap::new(),
            probes: HashMap::new(),
            waiting: HashMap::new(),
            mount_error: None,
            last_status: None,
            first_seen: Instant::now(),
            start_steps: Vec::new(),
        }
    }

    /// Work on the pod until it is gone; `rx` holds the newest pod object (None: deleted).
    pub async fn run(mut self, mut rx: watch::Receiver<Option<Arc<Pod>>>) {
        loop {
            let pod = rx.borrow_and_update().clone();
            let next = match pod {
                None => {
                    self = self.blocking(|w| w.teardown(None)).await.0;
                    return;
                }
                Some(pod) if pod.metadata.deletion_timestamp.is_some() => {
                    let span = tracing::info_span!(
                        "terminate",
                        namespace = pod.metadata.namespace.as_deref().unwrap_or(""),
                        pod = pod.metadata.name.as_deref().unwrap_or("")
                    );
                    self.terminate(pod).instrument(span).await;
                    // the Delete event drops our sender; wait for it so we do not sync again
                    while rx.changed().await.is_ok() {}
                    return;
                }
                Some(pod) => {
                    let span = tracing::debug_span!(
                        "sync",
                        namespace = pod.metadata.namespace.as_deref().unwrap_or(""),
                        pod = pod.metadata.name.as_deref().unwrap_or("")
                    );
                    self.sync(pod).instrument(span).await
                }
            };
            tokio::select! {
                r = rx.changed() => if r.is_err() { return },
                _ = tokio::time::sleep(next) => {}
            }
        }
    }

    /// Run `f` on the worker in a blocking thread (runtime calls block).
    async fn blocking<T: Send + 'static>(
        self,
        f: impl FnOnce(&mut Self) -> T + Send + 'static,
    ) -> (Self, T) {
        tokio::task::spawn_blocking(move || {
            let mut w = self;
            let t = f(&mut w);
            (w, t)
        })
        .await
        .expect("pod worker pass panicked")
    }

    /// [`Self::blocking`] on a worker behind `&mut`.
    async fn blocking_mut<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Self) -> T + Send + 'static,
    ) -> T {
        let placeholder = PodWorker::new(self.ctx.clone(), self.uid.clone(), Vec::new());
        let w = std::mem::replace(self, placeholder);
        let (w, t) = w.blocking(f).await;
        *self = w;
        t
    }

    /// One sync: the pass (in a blocking thread, holding a start slot while the pod starts),
    /// then its status write, then its events. Returns when to sync again at the latest.
    async fn sync(&mut self, pod: Arc<Pod>) -> Duration {
        let started = Instant::now();
        let p = pod.clone();
        // a pod still starting waits for a start slot (fair: in the order the pods came)
        let ctx = self.ctx.clone();
        let slot = if self.lifecycle.is_running() {
            None
        } else {
            ctx.start_slots.acquire().await.ok()
        };
        let queued = Instant::now();
        let pass = self
            .blocking_mut(move |w| {
                let waited = queued.elapsed();
                let pass = w.pass(&p);
                w.start_step("blocking-wait", waited);
                pass
            })
            .await;
        let t = Instant::now();
        drop(slot);
        // events go after the status write: they are informational, the status is what
        // clients wait for
        let _post = PostOnDrop(self.ctx.clone(), pod.clone(), pass.events);
        if let Some(status) = pass.status {
            let running = status.phase.as_deref() == Some("Running");
            if self.last_status.as_ref() != Some(&status) {
                match self.ctx.api.patch_status(&pod, &status).await {
                    Ok(()) => self.last_status = Some(status),
                    Err(e) => {
                        tracing::warn!(error = %e, "updating pod status");
                        return Duration::from_secs(1);
                    }
                }
            }
            if running {
                self.reported_running(t.elapsed());
            }
        }
        self.ctx.metrics.observe_sync(started.elapsed());
        pass.next
    }

    /// The status said Running: the first time, record the start latency and log its steps.
    fn reported_running(&mut self, patch: Duration) {
        let Lifecycle::SandboxReady(sandbox) = &self.lifecycle else {
            return;
        };
        self.lifecycle = Lifecycle::Running(sandbox.clone());
        self.ctx.metrics.observe_start(self.first_seen.elapsed());
        self.start_steps.push(("patch", patch));
        let steps: Vec<String> = self
            .start_steps
            .drain(..)
            .map(|(k, d)| format!("{k}={}us", d.as_micros()))
            .collect();
        tracing::info!(
            uid = %self.uid,
            elapsed_ms = self.first_seen.elapsed().as_millis() as u64,
            steps = %steps.join(" "),
            "pod running"
        );
    }

    /// Note how long a step of the pod's start took (until it runs).
    fn start_step(&mut self, step: &'static str, took: Duration) {
        if !self.lifecycle.is_running() {
            self.start_steps.push((step, took));
        }
    }

    /// The newest attempt of `container`.
    fn latest(&self, container: &str) -> Option<&Record> {
        self.records
            .iter()
            .filter(|r| r.container == container)
            .max_by_key(|r| r.attempt)
    }

    /// The runtime's state of container `id`; a container the runtime lost counts as exited.
    fn state(&self, id: &str) -> State {
        self.ctx.runtime.container_state(id).unwrap_or(State {
            status: Status::Stopped,
            exit_code: Some(128),
            error: Some("container state lost".into()),
            ..State::default()
        })
    }
}

/// Posts its events when dropped, whichever way `sync` returns.
struct PostOnDrop(Arc<Context>, Arc<Pod>, Vec<PodEvent>);

impl Drop for PostOnDrop {
    fn drop(&mut self) {
        self.0.api.post_events(&self.1, std::mem::take(&mut self.2));
    }
}

/// The grace period for stopping the pod's containers.
fn grace(pod: &Pod) -> Duration {
    let s = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    Duration::from_secs(s.max(0) as u64)
}
