//! One pass of the pod worker, level-triggered: from the pod spec and what the runtime has,
//! do the next thing due and compute the status. The steps, in order: the volumes, the
//! sandbox, the pod network, the init containers one after the other (each must exit 0
//! before the next starts), the containers (start, restart as the restartPolicy says, probe),
//! and last the status, read back from the runtime. A pass never waits for a container: it
//! starts it and asks to run again soon (`Pass::next`). Read `containers.rs` next.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};

use super::{Lifecycle, PodSandbox, PodWorker, Record};
use crate::cri::{SandboxOptions, Status};
use crate::dns_config;
use crate::events::PodEvent;
use crate::restart::RestartPolicy;
use crate::status::{self, Observed};
use crate::volumes;

/// What a pass decided (computed in a blocking task, applied in async code).
pub(super) struct Pass {
    pub events: Vec<PodEvent>,
    /// The pod's status (None: nothing to report).
    pub status: Option<PodStatus>,
    /// When to pass again at the latest.
    pub next: Duration,
}

impl Pass {
    /// Pass again within `d`.
    pub fn soon(&mut self, d: Duration) {
        self.next = self.next.min(d);
    }
}

/// Where the init containers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Init {
    /// One of them has not exited 0 yet (it runs, waits or backs off).
    Pending,
    /// All of them exited 0 (or there are none): the containers may start.
    Done,
    /// One of them failed and the restartPolicy is Never: the pod failed.
    Failed,
}

impl PodWorker {
    /// One level-triggered pass over the runtime.
    pub(super) fn pass(&mut self, pod: &Pod) -> Pass {
        let mut pass = Pass {
            events: Vec::new(),
            status: None,
            next: Duration::from_secs(1),
        };
        let terminal = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        if terminal && self.records.is_empty() {
            // finished before we (re)started and nothing is left to report on
            pass.next = Duration::from_secs(60);
            return pass;
        }
        self.set_up_volumes(pod, &mut pass);
        let t = Instant::now();
        if !terminal {
            self.ensure_sandbox(pod, &mut pass);
        }
        self.start_step("sandbox", t.elapsed());
        let t = Instant::now();
        if !terminal {
            self.ensure_network(&mut pass);
        }
        self.start_step("network", t.elapsed());
        let can_run = !terminal && self.can_run();
        let policy = RestartPolicy::of(pod);
        let init = self.sync_init_containers(pod, policy, can_run, &mut pass);
        let t = Instant::now();
        if init == Init::Done && can_run {
            self.sync_containers(pod, policy, &mut pass);
        }
        self.start_step("containers", t.elapsed());
        let status = self.pod_status(pod, policy, init);
        if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
            pass.next = Duration::from_secs(30);
        }
        pass.status = Some(status);
        pass
    }

    /// Step 1: the pod's volumes (every pass: a hostPath may appear, a downward API file change).
    fn set_up_volumes(&mut self, pod: &Pod, pass: &mut Pass) {
        match volumes::setup(&self.ctx.root_dir, pod) {
            Ok(v) => {
                match &mut self.lifecycle {
                    Lifecycle::New => self.lifecycle = Lifecycle::VolumesReady { volumes: v },
                    Lifecycle::VolumesReady { volumes } => *volumes = v,
                    Lifecycle::SandboxReady(p) | Lifecycle::Running(p) => p.volumes = v,
                }
                self.mount_error = None;
            }
            Err(e) => {
                let msg = format!("MountVolume.SetUp failed: {e}");
                if self.mount_error.as_deref() != Some(&msg) {
                    pass.events
                        .push(PodEvent::warning("FailedMount", None, msg.clone()));
                    self.mount_error = Some(msg);
                }
                pass.next = Duration::from_secs(5);
            }
        }
    }

    /// Step 2: the sandbox, found (a restarted kubelet) or created, once the volumes are
    /// ready, with the pod's resolv.conf (`dns_config.rs`; the node's file read each time, as
    /// the kubelet does, so an edited one reaches the next pod).
    fn ensure_sandbox(&mut self, pod: &Pod, pass: &mut Pass) {
        let Lifecycle::VolumesReady { volumes } = &self.lifecycle else {
            return;
        };
        let rt = &self.ctx.runtime;
        let sandbox = match rt.sandbox_status(&self.uid) {
            Ok(sandbox) => sandbox,
            Err(_) => {
                let spec = pod.spec.as_ref();
                let hostname = spec
                    .and_then(|s| s.hostname.clone())
                    .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default());
                let node_resolver = match self.ctx.dns.read_node_resolv_conf() {
                    Ok(node) => node,
                    Err(e) => {
                        pass.events.push(PodEvent::warning(
                            "FailedCreatePodSandBox",
                            None,
                            format!("Failed to create pod sandbox: reading --resolv-conf {e}"),
                        ));
                        pass.next = Duration::from_secs(5);
                        return;
                    }
                };
                let dns = dns_config::pod_dns(pod, &self.ctx.dns, node_resolver.as_ref());
                pass.events.extend(dns.events);
                let opts = SandboxOptions {
                    hostname: Some(hostname.chars().take(63).collect()),
                    share_pid: spec.and_then(|s| s.share_process_namespace) == Some(true),
                    dns: Some(dns.config),
                };
                match rt.run_sandbox(&self.uid, &opts) {
                    Ok(sandbox) => sandbox,
                    Err(e) => {
                        pass.events.push(PodEvent::warning(
                            "FailedCreatePodSandBox",
                            None,
                            format!("Failed to create pod sandbox: {e}"),
                        ));
                        pass.next = Duration::from_secs(5);
                        return;
                    }
                }
            }
        };
        self.lifecycle = Lifecycle::SandboxReady(PodSandbox {
            volumes: volumes.clone(),
            sandbox,
            pod_ip: None,
        });
    }

    /// Step 3: the sandbox's address on the pod network, given or found (a restarted
    /// kubelet). Nothing to do while the node has no pod network.
    fn ensure_network(&mut self, pass: &mut Pass) {
        let Some(net) = self.ctx.network.get() else {
            return;
        };
        let Some(p) = self.lifecycle.sandbox_mut().filter(|p| p.pod_ip.is_none()) else {
            return;
        };
        let ip = match net.attached(&self.uid) {
            Some(ip) => ip,
            None => match net.attach(&self.uid, &p.sandbox.netns) {
                Ok(ip) => ip,
                Err(e) => {
                    pass.events.push(PodEvent::warning(
                        "FailedCreatePodSandBox",
                        None,
                        format!("Failed to set up the pod network: {e}"),
                    ));
                    pass.next = Duration::from_secs(5);
                    return;
                }
            },
        };
        tracing::debug!(uid = %self.uid, %ip, "pod network attached");
        p.pod_ip = Some(ip);
    }

    /// Containers may run: the sandbox exists and is on the pod network (if the node has one).
    fn can_run(&self) -> bool {
        let network_ready = self.ctx.network.get().is_none() || self.lifecycle.pod_ip().is_some();
        self.lifecycle.sandbox().is_some() && network_ready
    }

    /// Step 4: the init containers, in order; each must exit 0 before the next starts.
    fn sync_init_containers(
        &mut self,
        pod: &Pod,
        policy: RestartPolicy,
        can_run: bool,
        pass: &mut Pass,
    ) -> Init {
        let spec = pod.spec.as_ref();
        for c in spec
            .and_then(|s| s.init_containers.as_ref())
            .into_iter()
            .flatten()
        {
            let Some((id, attempt)) = self.latest(&c.name).map(|r| (r.id.clone(), r.attempt))
            else {
                if can_run {
                    self.start(pod, c, 0, &mut pass.events);
                    pass.soon(Duration::from_millis(200));
                }
                return Init::Pending;
            };
            let st = self.state(&id);
            if st.status != Status::Stopped {
                pass.soon(Duration::from_millis(200));
                return Init::Pending;
            }
            if st.exit_code == Some(0) {
                continue;
            }
            if policy == RestartPolicy::Never {
                return Init::Failed;
            }
            if can_run {
                self.restart_with_backoff(pod, c, attempt, pass);
            }
            return Init::Pending;
        }
        Init::Done
    }

    /// Step 5: the containers: start the missing, probe the running, restart the exited.
    fn sync_containers(&mut self, pod: &Pod, policy: RestartPolicy, pass: &mut Pass) {
        for c in pod.spec.iter().flat_map(|s| &s.containers) {
            let Some((id, attempt)) = self.latest(&c.name).map(|r| (r.id.clone(), r.attempt))
            else {
                self.start(pod, c, 0, &mut pass.events);
                continue;
            };
            let st = self.state(&id);
            if st.status != Status::Stopped {
                self.probe(pod, c, &id, pass);
            } else if policy.restarts(st.exit_code.unwrap_or(1)) {
                self.restart_with_backoff(pod, c, attempt, pass);
            }
        }
    }

    /// Step 6: the pod's status, read back from the runtime.
    fn pod_status(&self, pod: &Pod, policy: RestartPolicy, init: Init) -> PodStatus {
        let spec = pod.spec.clone().unwrap_or_default();
        let init_statuses: Vec<_> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| {
                let mut o = self.observe(c);
                o.ready = o.latest.as_ref().is_some_and(|(_, _, st, _)| {
                    st.status == Status::Stopped && st.exit_code == Some(0)
                });
                status::container_status(c, &o, "PodInitializing")
            })
            .collect();
        let init_done = init == Init::Done;
        let default_waiting = if init_done {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        let containers: Vec<_> = spec
            .containers
            .iter()
            .map(|c| status::container_status(c, &self.observe(c), default_waiting))
            .collect();
        let phase = status::phase(policy, init == Init::Failed, init_done, &containers);
        let previous = self.last_status.clone().or_else(|| pod.status.clone());
        let pod_ip = self.lifecycle.pod_ip().map(|ip| ip.to_string());
        let seen = status::Seen {
            phase,
            init: init_statuses,
            containers,
            initialized: init_done,
            sandbox_ready: self.lifecycle.sandbox().is_some(),
            host_ip: self.ctx.node_ip.as_deref(),
            pod_ip: pod_ip.as_deref(),
        };
        status::pod_status(pod, previous.as_ref(), seen)
    }

    /// What the runtime and the worker know of container `c`: its latest two attempts, why it
    /// waits, and its probes' verdicts.
    fn observe(&self, c: &Container) -> Observed {
        let mut rs: Vec<&Record> = self
            .records
            .iter()
            .filter(|r| r.container == c.name)
            .collect();
        rs.sort_by_key(|r| std::cmp::Reverse(r.attempt));
        let latest = rs.first().map(|r| {
            let digest = self
                .ctx
                .runtime
                .container_info(&r.id)
                .map(|i| i.image_digest)
                .unwrap_or_default();
            (r.id.clone(), r.attempt, self.state(&r.id), digest)
        });
        let previous = rs
            .get(1)
            .map(|r| (r.id.clone(), r.attempt, self.state(&r.id)));
        let pr = latest.as_ref().and_then(|(id, ..)| self.probes.get(id));
        let started =
            c.startup_probe.is_none() || pr.is_some_and(|p| p.startup.result == Some(true));
        let ready = started
            && (c.readiness_probe.is_none()
                || pr.is_some_and(|p| p.readiness.result == Some(true)));
        Observed {
            latest,
            previous,
            waiting: self
                .waiting
                .get(&c.name)
                .map(|w| (w.reason.to_string(), w.message.clone())),
            ready,
            started,
        }
    }
}
