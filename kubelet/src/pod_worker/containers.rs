//! One container of the pod: start an attempt (pull its image per `imagePullPolicy`, create,
//! start), restart it after an exit under CrashLoopBackOff, and run its probes (a failed
//! liveness or startup probe stops it, and the restart policy brings it back). The runtime
//! names every attempt `<pod uid>_<container>_<attempt>`; the attempt is the restartCount,
//! and only the latest attempt and the one before it (`lastState`, `logs --previous`) are
//! kept. Read `teardown.rs` next.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};

use super::pass::Pass;
use super::{grace, PodWorker, Record, Waiting};
use crate::container_config;
use crate::etc_hosts;
use crate::events::PodEvent;
use crate::probes::{self, ProbeKind};
use crate::restart::Verdict;

/// The container's `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PullPolicy {
    /// Pull on every start.
    Always,
    /// Pull when the node does not have the image.
    IfNotPresent,
    /// Never pull: the image must be on the node.
    Never,
}

impl PullPolicy {
    /// The policy of `c`; unset, `Always` for a `:latest` image, else `IfNotPresent`.
    fn of(c: &Container, normalized_image: &str) -> Self {
        match c.image_pull_policy.as_deref() {
            Some("Always") => Self::Always,
            Some("Never") => Self::Never,
            Some(_) => Self::IfNotPresent,
            None if normalized_image.ends_with(":latest") => Self::Always,
            None => Self::IfNotPresent,
        }
    }
}

impl PodWorker {
    /// Note why container `name` does not run.
    fn wait(&mut self, name: &str, reason: &'static str, message: String) {
        self.waiting
            .insert(name.into(), Waiting { reason, message });
    }

    /// Create and start attempt `attempt` of `c`, keeping only the attempt before it.
    pub(super) fn start(
        &mut self,
        pod: &Pod,
        c: &Container,
        attempt: u32,
        events: &mut Vec<PodEvent>,
    ) {
        if !self.ensure_image(c, attempt, events) {
            return;
        }
        self.remove_old_attempts(&c.name, attempt);
        self.create_and_start(pod, c, attempt, events);
    }

    /// The image of `c` is on the node, pulled if its policy says so (busybox is built in).
    fn ensure_image(&mut self, c: &Container, attempt: u32, events: &mut Vec<PodEvent>) -> bool {
        let rt = self.ctx.runtime.clone();
        let name = c.name.as_str();
        let image = c.image.clone().unwrap_or_default();
        let normalized = runtime::image::normalize(&image);
        let present = rt.image_present(&image);
        let policy = PullPolicy::of(c, &normalized);
        let must_pull =
            normalized != "busybox:latest" && (policy == PullPolicy::Always || !present);
        if must_pull && policy == PullPolicy::Never {
            let message =
                format!("Container image {image:?} is not present with pull policy of Never");
            self.wait(name, "ErrImageNeverPull", message);
            return false;
        }
        if !must_pull {
            if attempt == 0 {
                events.push(PodEvent::normal(
                    "Pulled",
                    Some(name),
                    format!("Container image {image:?} already present on machine"),
                ));
            }
            return true;
        }
        events.push(PodEvent::normal(
            "Pulling",
            Some(name),
            format!("Pulling image {image:?}"),
        ));
        let t = Instant::now();
        match rt.pull_image(&image) {
            Ok(()) => {
                events.push(PodEvent::normal(
                    "Pulled",
                    Some(name),
                    format!("Successfully pulled image {image:?} in {:?}", t.elapsed()),
                ));
                true
            }
            Err(e) => {
                events.push(PodEvent::warning(
                    "Failed",
                    Some(name),
                    format!("Failed to pull image {image:?}: {e}"),
                ));
                self.wait(name, "ErrImagePull", e.to_string());
                false
            }
        }
    }

    /// Before attempt `attempt` of `container`: keep the previous attempt (lastState, logs
    /// --previous), remove the older ones.
    fn remove_old_attempts(&mut self, container: &str, attempt: u32) {
        let old: Vec<Record> = self
            .records
            .iter()
            .filter(|r| r.container == container && r.attempt + 1 < attempt)
            .cloned()
            .collect();
        for r in old {
            let _ = self.ctx.runtime.remove_container(&r.id);
            self.records.retain(|x| x.id != r.id);
        }
    }

    /// Create attempt `attempt` of `c` in the runtime, record it, and start it.
    fn create_and_start(
        &mut self,
        pod: &Pod,
        c: &Container,
        attempt: u32,
        events: &mut Vec<PodEvent>,
    ) {
        let rt = self.ctx.runtime.clone();
        let name = c.name.as_str();
        let host_ip = self.ctx.node_ip.clone().unwrap_or_default();
        let pod_ip = self.lifecycle.pod_ip();
        let config = container_config::create_options(
            pod,
            c,
            attempt,
            self.lifecycle.volumes().unwrap_or(&BTreeMap::new()),
            &host_ip,
            pod_ip.map(|ip| ip.to_string()).as_deref(),
            &self.ctx.root_dir.join("seccomp"),
        )
        .and_then(|mut opts| {
            // the pod's /etc/hosts, now that its address is known
            let domain = &self.ctx.dns.cluster_domain;
            let ip = pod_ip.map(IpAddr::V4);
            opts.volumes
                .extend(etc_hosts::mount(&self.ctx.root_dir, pod, c, ip, domain)?);
            Ok(opts)
        });
        let opts = match config {
            Ok(o) => o,
            Err(e) => {
                events.push(PodEvent::warning(
                    "Failed",
                    Some(name),
                    format!("Error: {e}"),
                ));
                self.wait(name, "CreateContainerConfigError", e.to_string());
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
                self.wait(name, "CreateContainerError", e.to_string());
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
            Ok(()) => {
                events.push(PodEvent::normal(
                    "Started",
                    Some(name),
                    format!("Started container {name}"),
                ));
                self.probes.insert(id, probes::ContainerProbes::new());
            }
            Err(e) => events.push(PodEvent::warning(
                "Failed",
                Some(name),
                format!("Error: {e}"),
            )),
        }
    }

    /// Attempt `attempt` of `c` exited and should run again: now, or after its back-off.
    pub(super) fn restart_with_backoff(
        &mut self,
        pod: &Pod,
        c: &Container,
        attempt: u32,
        pass: &mut Pass,
    ) {
        let (base, max) = (self.ctx.backoff_base, self.ctx.backoff_max);
        let backoff = self.backoff.entry(c.name.clone()).or_default();
        let Verdict::Wait {
            delay,
            remaining,
            first,
        } = backoff.poll(Instant::now(), base, max)
        else {
            self.start(pod, c, attempt + 1, &mut pass.events);
            return;
        };
        let pod_name = format!(
            "{}_{}({})",
            pod.metadata.name.as_deref().unwrap_or(""),
            pod.metadata.namespace.as_deref().unwrap_or(""),
            self.uid
        );
        if first {
            pass.events.push(PodEvent::warning(
                "BackOff",
                Some(&c.name),
                format!(
                    "Back-off restarting failed container {} in pod {pod_name}",
                    c.name
                ),
            ));
        }
        let message = format!(
            "back-off {delay:?} restarting failed container={} pod={pod_name}",
            c.name
        );
        self.wait(&c.name, "CrashLoopBackOff", message);
        pass.soon(remaining);
    }

    /// Run the due probes of container `id` (attempt of `c`); a failed liveness or startup
    /// probe stops it.
    pub(super) fn probe(&mut self, pod: &Pod, c: &Container, id: &str, pass: &mut Pass) {
        let pod_ip = self.lifecycle.pod_ip();
        let pr = self.probes.entry(id.to_string()).or_default();
        let now = Instant::now();
        let started_at = pr.started_at;
        let started = c.startup_probe.is_none() || pr.startup.result == Some(true);
        let mut kill_reason = None;
        let list = [
            (
                ProbeKind::Startup,
                c.startup_probe.as_ref().filter(|_| !started),
            ),
            (
                ProbeKind::Liveness,
                c.liveness_probe.as_ref().filter(|_| started),
            ),
            (
                ProbeKind::Readiness,
                c.readiness_probe.as_ref().filter(|_| started),
            ),
        ];
        for (kind, probe) in list {
            let Some(probe) = probe else { continue };
            let st = pr.state_mut(kind);
            let due = probes::next_due(probe, st, started_at);
            if due > now {
                pass.soon(due - now);
                continue;
            }
            let (ok, out) = probes::run(self.ctx.runtime.as_ref(), id, &self.uid, pod_ip, probe);
            if !ok {
                pass.events.push(PodEvent::warning(
                    "Unhealthy",
                    Some(&c.name),
                    format!("{kind} probe failed: {out}"),
                ));
            }
            let verdict = probes::record(probe, st, ok);
            pass.soon(
                probes::next_due(probe, st, started_at).saturating_duration_since(Instant::now()),
            );
            if verdict == Some(false) && kind.kills() {
                kill_reason = Some(format!(
                    "Container {} failed {} probe, will be restarted",
                    c.name,
                    kind.to_string().to_lowercase()
                ));
            }
        }
        if let Some(msg) = kill_reason {
            pass.events
                .push(PodEvent::normal("Killing", Some(&c.name), msg));
            let _ = self.ctx.runtime.stop_container(id, grace(pod));
            self.probes.remove(id);
            pass.next = Duration::ZERO;
        }
    }
}
