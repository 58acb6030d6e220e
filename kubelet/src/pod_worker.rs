//! The pod worker: one task per pod (by UID), level-triggered. Each pass compares the pod spec
//! with what the runtime has (sandbox, init containers in order, then containers), starts what
//! is missing, restarts what exited as the restartPolicy says (with CrashLoopBackOff: base
//! delay doubling to 5 min), runs probes, and posts `pods/{p}/status` when it changed. A pod
//! with a deletionTimestamp is stopped (SIGTERM, grace, SIGKILL), removed from the runtime and
//! then deleted from the API with gracePeriodSeconds=0 and a UID precondition.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use runtime::network::Network;
use tokio::sync::watch;
use tracing::Instrument;

use crate::container_config;
use crate::cri::{ContainerRuntime, SandboxOptions, SandboxStatus, State, Status};
use crate::events::{PodEvent, Recorder};
use crate::metrics::Metrics;
use crate::probes::{self, ContainerProbes};
use crate::status::{self, Observed};
use crate::volumes;

/// What every pod worker shares.
pub struct Context {
    pub client: kube::Client,
    pub runtime: Arc<dyn ContainerRuntime>,
    pub node_name: String,
    pub node_ip: Option<String>,
    /// `--root-dir`: pods' volumes live under `pods/<uid>/`.
    pub root_dir: PathBuf,
    /// First CrashLoopBackOff delay (doubles per crash up to `backoff_max`).
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub recorder: Recorder,
    pub metrics: Metrics,
    /// The pod network, once the node's pod range is known (`--pod-cidr` or the Node's
    /// spec.podCIDR); until then sandboxes get loopback only.
    pub network: OnceLock<Network>,
    /// Passes of pods that are still starting run at most this many at a time, first come
    /// first served ([`start_slots`]): on a small node a burst of pods then starts one after
    /// the other instead of all of them sharing the CPUs (and the kernel's rtnl lock) and
    /// finishing together at the end of the burst.
    pub start_slots: tokio::sync::Semaphore,
}

/// How many starting pods sync at once: two per CPU, so that one waiting on its container's
/// init (rootfs, exec) leaves the CPU to another.
pub fn start_slots() -> tokio::sync::Semaphore {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    tokio::sync::Semaphore::new(2 * cpus)
}

/// A runtime container of this pod.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    pub container: String,
    pub attempt: u32,
}

#[derive(Debug, Default)]
struct Backoff {
    /// Delay applied to the next crash (zero: restart at once).
    delay: Duration,
    until: Option<Instant>,
    reported: bool,
}

/// Per-pod state the worker keeps between passes.
pub struct PodWorker {
    ctx: Arc<Context>,
    uid: String,
    records: Vec<Record>,
    backoff: HashMap<String, Backoff>,
    probes: HashMap<String, ContainerProbes>,
    waiting: HashMap<String, (String, String)>,
    volumes: Option<BTreeMap<String, PathBuf>>,
    mount_error: Option<String>,
    /// The pod's sandbox, once it exists.
    sandbox: Option<SandboxStatus>,
    /// The pod's address on the pod network (None: not attached, or no pod network).
    pod_ip: Option<std::net::Ipv4Addr>,
    last_status: Option<PodStatus>,
    first_seen: Instant,
    reported_running: bool,
    /// Where the pod's start went (logged once it runs).
    start_steps: Vec<(&'static str, Duration)>,
}

/// What a pass decided (computed in a blocking task, applied in async code).
struct Pass {
    events: Vec<PodEvent>,
    status: Option<PodStatus>,
    next: Duration,
}

fn policy(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.clone())
        .unwrap_or_else(|| "Always".into())
}

impl PodWorker {
    pub fn new(ctx: Arc<Context>, uid: String, records: Vec<Record>) -> Self {
        Self {
            ctx,
            uid,
            records,
            backoff: HashMap::new(),
            probes: HashMap::new(),
            waiting: HashMap::new(),
            volumes: None,
            mount_error: None,
            sandbox: None,
            pod_ip: None,
            last_status: None,
            first_seen: Instant::now(),
            reported_running: false,
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

    async fn sync(&mut self, pod: Arc<Pod>) -> Duration {
        let started = Instant::now();
        let p = pod.clone();
        // a pod still starting waits for a start slot (fair: in the order the pods came)
        let ctx = self.ctx.clone();
        let slot = if self.reported_running {
            None
        } else {
            ctx.start_slots.acquire().await.ok()
        };
        let w = std::mem::replace(
            self,
            PodWorker::new(self.ctx.clone(), self.uid.clone(), Vec::new()),
        );
        let queued = Instant::now();
        let (w, pass) = w
            .blocking(move |w| {
                let waited = queued.elapsed();
                let pass = w.pass(&p);
                if !w.reported_running {
                    w.start_steps.push(("blocking-wait", waited));
                }
                pass
            })
            .await;
        *self = w;
        let t = Instant::now();
        drop(slot);
        // events go after the status write: they are informational, the status is what
        // clients wait for
        let _post = PostOnDrop(self.ctx.clone(), pod.clone(), pass.events);
        if let Some(status) = pass.status {
            let running = status.phase.as_deref() == Some("Running");
            if self.last_status.as_ref() != Some(&status) {
                let api: Api<Pod> = Api::namespaced(
                    self.ctx.client.clone(),
                    pod.metadata.namespace.as_deref().unwrap_or("default"),
                );
                let name = pod.metadata.name.clone().unwrap_or_default();
                let patch =
                    serde_json::json!({"metadata": {"uid": pod.metadata.uid}, "status": status});
                match api
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => self.last_status = Some(status),
                    Err(e) => {
                        tracing::warn!("updating pod status: {e}");
                        return Duration::from_secs(1);
                    }
                }
            }
            if running && !self.reported_running {
                self.reported_running = true;
                self.ctx.metrics.observe_start(self.first_seen.elapsed());
                self.start_steps.push(("patch", t.elapsed()));
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
        }
        self.ctx.metrics.observe_sync(started.elapsed());
        pass.next
    }

    fn latest(&self, container: &str) -> Option<&Record> {
        self.records
            .iter()
            .filter(|r| r.container == container)
            .max_by_key(|r| r.attempt)
    }

    fn state(&self, id: &str) -> State {
        self.ctx.runtime.container_state(id).unwrap_or(State {
            status: Status::Stopped,
            exit_code: Some(128),
            error: Some("container state lost".into()),
            ..State::default()
        })
    }

    /// One level-triggered pass over the runtime.
    fn pass(&mut self, pod: &Pod) -> Pass {
        let mut events = Vec::new();
        let mut next = Duration::from_secs(1);
        let spec = pod.spec.clone().unwrap_or_default();
        let policy = policy(pod);
        let terminal = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        if terminal && self.records.is_empty() {
            // finished before we (re)started and nothing is left to report on
            return Pass {
                events,
                status: None,
                next: Duration::from_secs(60),
            };
        }
        match volumes::setup(&self.ctx.root_dir, pod) {
            Ok(v) => {
                self.volumes = Some(v);
                self.mount_error = None;
            }
            Err(e) => {
                let msg = format!("MountVolume.SetUp failed: {e}");
                if self.mount_error.as_deref() != Some(&msg) {
                    events.push(PodEvent::warning("FailedMount", None, msg.clone()));
                    self.mount_error = Some(msg);
                }
                next = Duration::from_secs(5);
            }
        }
        let t = Instant::now();
        if self.sandbox.is_none() && self.volumes.is_some() && !terminal {
            let hostname = spec
                .hostname
                .clone()
                .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
            let hostname: String = hostname.chars().take(63).collect();
            if let Ok(sandbox) = self.ctx.runtime.sandbox_status(&self.uid) {
                self.sandbox = Some(sandbox);
            } else {
                let opts = SandboxOptions {
                    hostname: Some(hostname),
                    share_pid: spec.share_process_namespace == Some(true),
                };
                match self.ctx.runtime.run_sandbox(&self.uid, &opts) {
                    Ok(sandbox) => self.sandbox = Some(sandbox),
                    Err(e) => {
                        events.push(PodEvent::warning(
                            "FailedCreatePodSandBox",
                            None,
                            format!("Failed to create pod sandbox: {e}"),
                        ));
                        next = Duration::from_secs(5);
                    }
                }
            }
        }
        if !self.reported_running {
            self.start_steps.push(("sandbox", t.elapsed()));
        }
        let t = Instant::now();
        if self.sandbox.is_some() && self.pod_ip.is_none() && !terminal {
            if let Err(e) = self.attach_network() {
                events.push(PodEvent::warning(
                    "FailedCreatePodSandBox",
                    None,
                    format!("Failed to set up the pod network: {e}"),
                ));
                next = Duration::from_secs(5);
            }
        }
        if !self.reported_running {
            self.start_steps.push(("network", t.elapsed()));
        }
        let network_ready = self.ctx.network.get().is_none() || self.pod_ip.is_some();
        let can_run =
            self.sandbox.is_some() && network_ready && self.volumes.is_some() && !terminal;

        // init containers, in order; each must exit 0 before the next
        let mut init_done = true;
        let mut init_failed = false;
        for c in spec.init_containers.iter().flatten() {
            let latest = self.latest(&c.name).map(|r| (r.id.clone(), r.attempt));
            match latest {
                None => {
                    init_done = false;
                    if can_run {
                        self.start(pod, c, 0, &mut events);
                        next = next.min(Duration::from_millis(200));
                    }
                    break;
                }
                Some((id, attempt)) => {
                    let st = self.state(&id);
                    if st.status != Status::Stopped {
                        init_done = false;
                        next = next.min(Duration::from_millis(200));
                        break;
                    }
                    if st.exit_code == Some(0) {
                        continue;
                    }
                    init_done = false;
                    if policy == "Never" {
                        init_failed = true;
                    } else if can_run {
                        self.restart_with_backoff(pod, c, attempt, &mut events, &mut next);
                    }
                    break;
                }
            }
        }

        // containers
        let t = Instant::now();
        if init_done && can_run {
            for c in &spec.containers {
                let latest = self.latest(&c.name).map(|r| (r.id.clone(), r.attempt));
                match latest {
                    None => self.start(pod, c, 0, &mut events),
                    Some((id, attempt)) => {
                        let st = self.state(&id);
                        if st.status != Status::Stopped {
                            self.probe(pod, c, &id, &mut events, &mut next);
                        } else if status::restarts(&policy, st.exit_code.unwrap_or(1)) {
                            self.restart_with_backoff(pod, c, attempt, &mut events, &mut next);
                        }
                    }
                }
            }
        }

        if !self.reported_running {
            self.start_steps.push(("containers", t.elapsed()));
        }
        // status
        let observe = |w: &Self, c: &Container| -> Observed {
            let mut rs: Vec<&Record> = w.records.iter().filter(|r| r.container == c.name).collect();
            rs.sort_by_key(|r| std::cmp::Reverse(r.attempt));
            let latest = rs.first().map(|r| {
                let digest = w
                    .ctx
                    .runtime
                    .container_info(&r.id)
                    .map(|i| i.image_digest)
                    .unwrap_or_default();
                (r.id.clone(), r.attempt, w.state(&r.id), digest)
            });
            let previous = rs.get(1).map(|r| (r.id.clone(), r.attempt, w.state(&r.id)));
            let pr = latest.as_ref().and_then(|(id, ..)| w.probes.get(id));
            let started =
                c.startup_probe.is_none() || pr.is_some_and(|p| p.startup.result == Some(true));
            let ready = started
                && (c.readiness_probe.is_none()
                    || pr.is_some_and(|p| p.readiness.result == Some(true)));
            Observed {
                latest,
                previous,
                waiting: w.waiting.get(&c.name).cloned(),
                ready,
                started,
            }
        };
        let init: Vec<_> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| {
                let mut o = observe(self, c);
                o.ready = o.latest.as_ref().is_some_and(|(_, _, st, _)| {
                    st.status == Status::Stopped && st.exit_code == Some(0)
                });
                status::container_status(c, &o, "PodInitializing")
            })
            .collect();
        let default_waiting = if init_done {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        let containers: Vec<_> = spec
            .containers
            .iter()
            .map(|c| status::container_status(c, &observe(self, c), default_waiting))
            .collect();
        let phase = status::phase(&policy, init_failed, init_done, &containers);
        let previous = self.last_status.clone().or_else(|| pod.status.clone());
        let st = status::pod_status(
            pod,
            previous.as_ref(),
            phase,
            init,
            containers,
            init_done,
            self.sandbox.is_some(),
            self.ctx.node_ip.as_deref(),
            self.pod_ip.map(|ip| ip.to_string()).as_deref(),
        );
        if matches!(phase, "Succeeded" | "Failed") {
            next = Duration::from_secs(30);
        }
        Pass {
            events,
            status: Some(st),
            next,
        }
    }

    /// Give the sandbox its address on the pod network, or find the one it has (a restarted
    /// kubelet). Nothing to do while the node has no pod network.
    fn attach_network(&mut self) -> Result<(), runtime::network::NetworkError> {
        let (Some(net), Some(sandbox)) = (self.ctx.network.get(), self.sandbox.as_ref()) else {
            return Ok(());
        };
        let ip = match net.attached(&self.uid) {
            Some(ip) => ip,
            None => net.attach(&self.uid, &sandbox.netns)?,
        };
        tracing::debug!(uid = %self.uid, %ip, "pod network attached");
        self.pod_ip = Some(ip);
        Ok(())
    }

    /// Create and start attempt `attempt` of `c`, keeping only the attempt before it.
    fn start(&mut self, pod: &Pod, c: &Container, attempt: u32, events: &mut Vec<PodEvent>) {
        let rt = &self.ctx.runtime;
        let name = c.name.as_str();
        let image = c.image.clone().unwrap_or_default();
        // image: busybox is built in; others are pulled per imagePullPolicy
        let normalized = runtime::image::normalize(&image);
        let present = rt.image_present(&image);
        let pull_policy = c.image_pull_policy.clone().unwrap_or_else(|| {
            if normalized.ends_with(":latest") {
                "Always".into()
            } else {
                "IfNotPresent".into()
            }
        });
        let must_pull = normalized != "busybox:latest" && (pull_policy == "Always" || !present);
        if must_pull && pull_policy == "Never" {
            self.waiting.insert(
                name.into(),
                (
                    "ErrImageNeverPull".into(),
                    format!("Container image {image:?} is not present with pull policy of Never"),
                ),
            );
            return;
        }
        if must_pull {
            events.push(PodEvent::normal(
                "Pulling",
                Some(name),
                format!("Pulling image {image:?}"),
            ));
            let t = Instant::now();
            match rt.pull_image(&image) {
                Ok(_) => events.push(PodEvent::normal(
                    "Pulled",
                    Some(name),
                    format!("Successfully pulled image {image:?} in {:?}", t.elapsed()),
                )),
                Err(e) => {
                    events.push(PodEvent::warning(
                        "Failed",
                        Some(name),
                        format!("Failed to pull image {image:?}: {e}"),
                    ));
                    self.waiting
                        .insert(name.into(), ("ErrImagePull".into(), e.to_string()));
                    return;
                }
            }
        } else if attempt == 0 {
            events.push(PodEvent::normal(
                "Pulled",
                Some(name),
                format!("Container image {image:?} already present on machine"),
            ));
        }
        // keep the previous attempt (lastState, logs --previous); remove older ones
        let old: Vec<Record> = self
            .records
            .iter()
            .filter(|r| r.container == name && r.attempt + 1 < attempt)
            .cloned()
            .collect();
        for r in old {
            let _ = rt.remove_container(&r.id);
            self.records.retain(|x| x.id != r.id);
        }
        let host_ip = self.ctx.node_ip.clone().unwrap_or_default();
        let opts = match container_config::create_options(
            pod,
            c,
            attempt,
            self.volumes.as_ref().unwrap_or(&BTreeMap::new()),
            &host_ip,
            self.pod_ip.map(|ip| ip.to_string()).as_deref(),
        ) {
            Ok(o) => o,
            Err(e) => {
                events.push(PodEvent::warning(
                    "Failed",
                    Some(name),
                    format!("Error: {e}"),
                ));
                self.waiting.insert(
                    name.into(),
                    ("CreateContainerConfigError".into(), e.to_string()),
                );
                return;
            }
        };
        // a leftover of this very attempt (kubelet died between create and record) goes first
        if let Some(id) = rt.find_container(opts.name.as_deref().unwrap_or_default()) {
            let _ = rt.remove_container(&id);
        }
        let id = match rt.create_container(&opts) {
            Ok(id) => id,
            Err(e) => {
                events.push(PodEvent::warning(
                    "Failed",
                    Some(name),
                    format!("Error: {e}"),
                ));
                self.waiting
                    .insert(name.into(), ("CreateContainerError".into(), e.to_string()));
                return;
            }
        };
        events.push(PodEvent::normal(
            "Created",
            Some(name),
            format!("Created container {name}"),
        ));
        self.records.push(Record {
            id: id.clone(),
            container: name.into(),
            attempt,
        });
        self.waiting.remove(name);
        match rt.start_container(&id) {
            Ok(_) => {
                events.push(PodEvent::normal(
                    "Started",
                    Some(name),
                    format!("Started container {name}"),
                ));
                self.probes.insert(id, ContainerProbes::new());
            }
            Err(e) => events.push(PodEvent::warning(
                "Failed",
                Some(name),
                format!("Error: {e}"),
            )),
        }
    }

    /// The exited container should run again: now, or after its back-off.
    fn restart_with_backoff(
        &mut self,
        pod: &Pod,
        c: &Container,
        attempt: u32,
        events: &mut Vec<PodEvent>,
        next: &mut Duration,
    ) {
        let (base, max) = (self.ctx.backoff_base, self.ctx.backoff_max);
        let b = self.backoff.entry(c.name.clone()).or_default();
        let now = Instant::now();
        let until = *b.until.get_or_insert(now + b.delay);
        if now < until {
            let pod_name = format!(
                "{}_{}({})",
                pod.metadata.name.as_deref().unwrap_or(""),
                pod.metadata.namespace.as_deref().unwrap_or(""),
                self.uid
            );
            let msg = format!(
                "back-off {:?} restarting failed container={} pod={pod_name}",
                b.delay, c.name
            );
            if !b.reported {
                b.reported = true;
                events.push(PodEvent::warning(
                    "BackOff",
                    Some(&c.name),
                    format!(
                        "Back-off restarting failed container {} in pod {pod_name}",
                        c.name
                    ),
                ));
            }
            self.waiting
                .insert(c.name.clone(), ("CrashLoopBackOff".into(), msg));
            *next = (*next).min(until - now);
            return;
        }
        b.delay = if b.delay.is_zero() {
            base
        } else {
            (b.delay * 2).min(max)
        };
        b.until = None;
        b.reported = false;
        self.start(pod, c, attempt + 1, events);
    }

    /// Run the container's due probes; a failed liveness/startup probe kills it.
    fn probe(
        &mut self,
        pod: &Pod,
        c: &Container,
        id: &str,
        events: &mut Vec<PodEvent>,
        next: &mut Duration,
    ) {
        let pr = self.probes.entry(id.to_string()).or_default();
        let now = Instant::now();
        let started = c.startup_probe.is_none() || pr.startup.result == Some(true);
        let mut kill_reason = None;
        let list: [(&str, Option<&k8s_openapi::api::core::v1::Probe>); 3] = [
            ("Startup", c.startup_probe.as_ref().filter(|_| !started)),
            ("Liveness", c.liveness_probe.as_ref().filter(|_| started)),
            ("Readiness", c.readiness_probe.as_ref().filter(|_| started)),
        ];
        for (kind, probe) in list {
            let Some(probe) = probe else { continue };
            let st = match kind {
                "Startup" => &mut pr.startup,
                "Liveness" => &mut pr.liveness,
                _ => &mut pr.readiness,
            };
            let due = probes::next_due(probe, st, pr.started_at);
            if due > now {
                *next = (*next).min(due - now);
                continue;
            }
            let (ok, out) =
                probes::run(self.ctx.runtime.as_ref(), id, &self.uid, self.pod_ip, probe);
            if !ok {
                events.push(PodEvent::warning(
                    "Unhealthy",
                    Some(&c.name),
                    format!("{kind} probe failed: {out}"),
                ));
            }
            let verdict = probes::record(probe, st, ok);
            *next = (*next).min(
                probes::next_due(probe, st, pr.started_at)
                    .saturating_duration_since(Instant::now()),
            );
            if verdict == Some(false) && kind != "Readiness" {
                kill_reason = Some(format!(
                    "Container {} failed {} probe, will be restarted",
                    c.name,
                    kind.to_lowercase()
                ));
            }
        }
        if let Some(msg) = kill_reason {
            events.push(PodEvent::normal("Killing", Some(&c.name), msg));
            let _ = self.ctx.runtime.stop_container(id, grace(pod));
            self.probes.remove(id);
            *next = Duration::ZERO;
        }
    }

    /// Stop everything of the pod (grace for running containers) and remove it from the node.
    fn teardown(&mut self, pod: Option<&Pod>) -> Vec<PodEvent> {
        let rt = self.ctx.runtime.clone();
        let grace = pod.map(grace).unwrap_or(Duration::from_secs(2));
        let mut events = Vec::new();
        let running: Vec<Record> = self
            .records
            .iter()
            .filter(|r| {
                rt.container_state(&r.id)
                    .is_ok_and(|s| s.status != Status::Stopped)
            })
            .cloned()
            .collect();
        for r in &running {
            events.push(PodEvent::normal(
                "Killing",
                Some(&r.container),
                format!("Stopping container {}", r.container),
            ));
        }
        std::thread::scope(|s| {
            for r in &running {
                let rt = &rt;
                s.spawn(move || rt.stop_container(&r.id, grace));
            }
        });
        for r in &self.records {
            let _ = rt.remove_container(&r.id);
        }
        self.records.clear();
        if let Some(net) = self.ctx.network.get() {
            if let Err(e) = net.detach(&self.uid) {
                tracing::warn!(uid = %self.uid, "detaching from the pod network: {e}");
            }
        }
        self.pod_ip = None;
        if let Err(e) = rt.remove_sandbox(&self.uid) {
            tracing::warn!(uid = %self.uid, error = %e, "removing sandbox");
        }
        self.sandbox = None;
        volumes::teardown(&self.ctx.root_dir, &self.uid);
        events
    }

    /// Graceful deletion: stop, remove, then delete the pod object for good.
    async fn terminate(&mut self, pod: Arc<Pod>) {
        let p = pod.clone();
        let w = std::mem::replace(
            self,
            PodWorker::new(self.ctx.clone(), self.uid.clone(), Vec::new()),
        );
        let (w, events) = w.blocking(move |w| w.teardown(Some(&p))).await;
        *self = w;
        self.ctx.recorder.post(&pod, events);
        let api: Api<Pod> = Api::namespaced(
            self.ctx.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let name = pod.metadata.name.clone().unwrap_or_default();
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        for attempt in 0..30u32 {
            match api.delete(&name, &dp).await {
                Ok(_) => return,
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return,
                Err(e) => {
                    tracing::warn!("deleting pod: {e}");
                    tokio::time::sleep(Duration::from_millis(200 * (attempt as u64 + 1))).await;
                }
            }
        }
    }
}

/// Posts its events when dropped, whichever way `sync` returns.
struct PostOnDrop(Arc<Context>, Arc<Pod>, Vec<PodEvent>);

impl Drop for PostOnDrop {
    fn drop(&mut self) {
        self.0.recorder.post(&self.1, std::mem::take(&mut self.2));
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
