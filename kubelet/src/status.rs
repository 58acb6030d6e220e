//! Pod status, computed like the real kubelet from what the runtime reports: a
//! `containerStatus` per container (state/lastState with reasons and exit codes, restartCount
//! = attempt number, ready, started), the phase (Pending → Running → Succeeded/Failed) and the
//! four conditions (PodScheduled, Initialized, ContainersReady, Ready), whose
//! lastTransitionTime only moves when their status changes.

use crate::cri::{State, Status};
use crate::restart::RestartPolicy;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// What the worker knows about one container of the pod.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Latest runtime container: (id, attempt, state, image manifest digest).
    pub latest: Option<(String, u32, State, String)>,
    /// The one before it (for `lastState`).
    pub previous: Option<(String, u32, State)>,
    /// Why it is not running, when the worker decided that (CrashLoopBackOff, ErrImagePull...).
    pub waiting: Option<(String, String)>,
    /// Readiness probe result (true when there is no readiness probe and it runs).
    pub ready: bool,
    /// Startup probe passed (true when there is none and it runs).
    pub started: bool,
}

/// Parse the runtime's RFC 3339 timestamps.
pub fn time(s: &Option<String>) -> Option<Time> {
    s.as_deref()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
        .map(Time)
}

/// `minik8s://<id>`.
pub fn container_id(id: &str) -> String {
    format!("minik8s://{id}")
}

fn terminated(id: &str, st: &State) -> ContainerStateTerminated {
    let code = st.exit_code.unwrap_or(137);
    let reason = if st.oom_killed {
        "OOMKilled"
    } else if st.error.is_some() && st.started_at.is_none() {
        "StartError"
    } else if code == 0 {
        "Completed"
    } else {
        "Error"
    };
    ContainerStateTerminated {
        exit_code: code,
        reason: Some(reason.into()),
        message: st.error.clone(),
        started_at: time(&st.started_at),
        finished_at: time(&st.finished_at),
        container_id: Some(container_id(id)),
        signal: None,
    }
}

/// The `containerStatus` of `c`.
pub fn container_status(c: &Container, o: &Observed, default_waiting: &str) -> ContainerStatus {
    let image = c.image.clone().unwrap_or_default();
    let mut cs = ContainerStatus {
        name: c.name.clone(),
        image: image.clone(),
        image_id: String::new(),
        ..Default::default()
    };
    let last_state = o
        .previous
        .as_ref()
        .filter(|(_, _, st)| st.status == Status::Stopped)
        .map(|(id, _, st)| ContainerState {
            terminated: Some(terminated(id, st)),
            ..Default::default()
        });
    match &o.latest {
        None => {
            let (reason, message) = o
                .waiting
                .clone()
                .unwrap_or((default_waiting.into(), String::new()));
            cs.state = Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason),
                    message: Some(message).filter(|m| !m.is_empty()),
                }),
                ..Default::default()
            });
            cs.started = Some(false);
        }
        Some((id, attempt, st, digest)) => {
            cs.container_id = Some(container_id(id));
            cs.image_id = format!("{}@{digest}", runtime::image::normalize(&image));
            cs.restart_count = *attempt as i32;
            let running = st.status != Status::Stopped;
            cs.started = Some(running && o.started);
            cs.ready = running && o.ready;
            if running {
                cs.state = Some(ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: time(&st.started_at),
                    }),
                    ..Default::default()
                });
                cs.last_state = last_state;
            } else if let Some((reason, message)) = &o.waiting {
                cs.state = Some(ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some(reason.clone()),
                        message: Some(message.clone()),
                    }),
                    ..Default::default()
                });
                cs.last_state = Some(ContainerState {
                    terminated: Some(terminated(id, st)),
                    ..Default::default()
                });
            } else {
                cs.state = Some(ContainerState {
                    terminated: Some(terminated(id, st)),
                    ..Default::default()
                });
                cs.last_state = last_state;
            }
        }
    }
    if cs.last_state.is_none() {
        cs.last_state = Some(ContainerState::default());
    }
    cs
}

/// The pod phase from its containers' states.
pub fn phase(
    policy: RestartPolicy,
    init_failed: bool,
    init_done: bool,
    containers: &[ContainerStatus],
) -> &'static str {
    if init_failed {
        return "Failed";
    }
    if !init_done {
        return "Pending";
    }
    let term = |c: &ContainerStatus| {
        c.state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .map(|t| t.exit_code)
            .or_else(|| {
                // waiting after a run (back-off) counts as its last exit
                c.state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and(c.last_state.as_ref())
                    .and_then(|s| s.terminated.as_ref())
                    .map(|t| t.exit_code)
            })
    };
    let running = containers
        .iter()
        .filter(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        .count();
    let never_ran = containers
        .iter()
        .filter(|c| c.container_id.is_none())
        .count();
    if never_ran > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    let exits: Vec<i32> = containers.iter().filter_map(term).collect();
    if exits.len() < containers.len() {
        return "Running";
    }
    if exits.iter().any(|e| policy.restarts(*e)) {
        return "Running";
    }
    if exits.iter().all(|e| *e == 0) {
        "Succeeded"
    } else {
        "Failed"
    }
}

/// Conditions, keeping lastTransitionTime from `previous` when the status is unchanged.
pub fn conditions(
    previous: Option<&PodStatus>,
    phase: &str,
    initialized: bool,
    containers_ready: bool,
    sandbox: bool,
) -> Vec<PodCondition> {
    let now = Time(jiff::Timestamp::now());
    let completed = phase == "Succeeded" || phase == "Failed";
    let b = |v: bool| if v { "True" } else { "False" };
    let mut wanted = vec![
        ("PodReadyToStartContainers", b(sandbox), None),
        (
            "Initialized",
            b(initialized),
            (!initialized).then_some("ContainersNotInitialized"),
        ),
        (
            "Ready",
            b(containers_ready && !completed),
            (!containers_ready || completed).then_some(if completed {
                "PodCompleted"
            } else {
                "ContainersNotReady"
            }),
        ),
        (
            "ContainersReady",
            b(containers_ready && !completed),
            (!containers_ready || completed).then_some(if completed {
                "PodCompleted"
            } else {
                "ContainersNotReady"
            }),
        ),
        ("PodScheduled", "True", None),
    ];
    if completed && initialized {
        wanted[1].2 = Some("PodCompleted");
    }
    wanted
        .into_iter()
        .map(|(type_, status, reason)| {
            let prev = previous
                .and_then(|p| p.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == type_));
            let last_transition_time = match prev {
                Some(p) if p.status == status => {
                    p.last_transition_time.clone().or_else(|| Some(now.clone()))
                }
                _ => Some(now.clone()),
            };
            PodCondition {
                type_: type_.into(),
                status: status.into(),
                reason: reason.map(str::to_string),
                last_transition_time,
                ..Default::default()
            }
        })
        .collect()
}

/// What the worker saw of the pod in one pass, for [`pod_status`].
#[derive(Debug, Clone)]
pub struct Seen<'a> {
    pub phase: &'a str,
    pub init: Vec<ContainerStatus>,
    pub containers: Vec<ContainerStatus>,
    /// Every init container exited 0.
    pub initialized: bool,
    /// The pod's sandbox exists.
    pub sandbox_ready: bool,
    pub host_ip: Option<&'a str>,
    pub pod_ip: Option<&'a str>,
}

/// Assemble the pod status.
pub fn pod_status(pod: &Pod, previous: Option<&PodStatus>, seen: Seen<'_>) -> PodStatus {
    let Seen {
        phase,
        init,
        containers,
        initialized,
        sandbox_ready: sandbox,
        host_ip,
        pod_ip,
    } = seen;
    let containers_ready = !containers.is_empty() && containers.iter().all(|c| c.ready);
    let start_time = previous
        .and_then(|p| p.start_time.clone())
        .unwrap_or_else(|| Time(jiff::Timestamp::now()));
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(conditions(
            previous,
            phase,
            initialized,
            containers_ready,
            sandbox,
        )),
        init_container_statuses: Some(init).filter(|v| !v.is_empty()),
        container_statuses: Some(containers),
        host_ip: host_ip.map(str::to_string),
        host_ips: host_ip.map(|ip| vec![k8s_openapi::api::core::v1::HostIP { ip: ip.into() }]),
        pod_ip: pod_ip.map(str::to_string),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip: ip.into() }]),
        start_time: Some(start_time),
        qos_class: previous
            .and_then(|p| p.qos_class.clone())
            .or_else(|| Some(qos_class(pod).into())),
        ..Default::default()
    }
}

/// Guaranteed (limits = requests for every container), Burstable, or BestEffort.
pub fn qos_class(pod: &Pod) -> &'static str {
    let cs = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or(&[]);
    let any = cs.iter().any(|c| {
        c.resources.as_ref().is_some_and(|r| {
            r.limits.as_ref().is_some_and(|l| !l.is_empty())
                || r.requests.as_ref().is_some_and(|l| !l.is_empty())
        })
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = cs.iter().all(|c| {
        let r = c.resources.as_ref();
        let l = r.and_then(|r| r.limits.as_ref());
        let q = r.and_then(|r| r.requests.as_ref()).or(l);
        ["cpu", "memory"].iter().all(|k| {
            l.and_then(|l| l.get(*k)).is_some()
                && l.and_then(|l| l.get(*k)) == q.and_then(|q| q.get(*k))
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RestartPolicy::{Always, Never, OnFailure};

    fn stopped(code: i32, oom: bool) -> State {
        State {
            status: Status::Stopped,
            exit_code: Some(code),
            oom_killed: oom,
            started_at: Some("2026-01-01T00:00:00Z".into()),
            ..State::default()
        }
    }

    fn ctr() -> Container {
        Container {
            name: "c".into(),
            image: Some("busybox".into()),
            ..Default::default()
        }
    }

    #[test]
    fn oom_and_backoff_states() {
        let o = Observed {
            latest: Some(("id1".into(), 3, stopped(137, true), "sha256:x".into())),
            waiting: Some(("CrashLoopBackOff".into(), "back-off".into())),
            ..Default::default()
        };
        let cs = container_status(&ctr(), &o, "ContainerCreating");
        assert_eq!(cs.restart_count, 3);
        assert_eq!(
            cs.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("CrashLoopBackOff")
        );
        assert_eq!(
            cs.last_state
                .as_ref()
                .unwrap()
                .terminated
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("OOMKilled")
        );
        assert_eq!(cs.container_id.as_deref(), Some("minik8s://id1"));
        assert_eq!(phase(Always, false, true, &[cs]), "Running");
    }

    #[test]
    fn phases() {
        let done = |code| {
            container_status(
                &ctr(),
                &Observed {
                    latest: Some(("i".into(), 0, stopped(code, false), "d".into())),
                    ..Default::default()
                },
                "",
            )
        };
        assert_eq!(phase(Never, false, true, &[done(0)]), "Succeeded");
        assert_eq!(phase(Never, false, true, &[done(1)]), "Failed");
        assert_eq!(phase(OnFailure, false, true, &[done(0)]), "Succeeded");
        assert_eq!(phase(Always, false, true, &[done(0)]), "Running");
        assert_eq!(phase(Always, false, false, &[]), "Pending");
        let none = container_status(&ctr(), &Observed::default(), "ContainerCreating");
        assert_eq!(phase(Always, false, true, &[none]), "Pending");
    }

    #[test]
    fn transition_time_is_kept() {
        let c1 = conditions(None, "Running", true, true, true);
        let prev = PodStatus {
            conditions: Some(c1.clone()),
            ..Default::default()
        };
        std::thread::sleep(std::time::Duration::from_millis(5));
        let c2 = conditions(Some(&prev), "Running", true, false, true);
        let t = |cs: &[PodCondition], ty: &str| {
            cs.iter()
                .find(|c| c.type_ == ty)
                .unwrap()
                .last_transition_time
                .clone()
        };
        assert_eq!(t(&c1, "Initialized"), t(&c2, "Initialized"));
        assert_ne!(t(&c1, "Ready"), t(&c2, "Ready"));
    }
}
