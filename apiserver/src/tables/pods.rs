//! The pod row of `kubectl get pods`. STATUS is not `status.phase`: it is the most telling
//! reason found, in order: `status.reason` (e.g. `NodeLost`, `Evicted`), a failing or waiting
//! init container (`Init:0/1`, `Init:CrashLoopBackOff`), then the last container that is
//! waiting or terminated (`ContainerCreating`, `CrashLoopBackOff`, `OOMKilled`, `Completed`,
//! `Error`), and finally `Terminating` once `deletionTimestamp` is set. RESTARTS adds how long
//! ago the last restart happened: `3 (2m ago)`.

use serde_json::{json, Value};

use super::{age, col, int_at, name, since, str_at, time_at, wide, Col, AGE, NAME};

pub(super) const COLUMNS: &[Col] = &[
    NAME,
    col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    col("Status", "string", "The aggregate status of the containers in this pod."),
    col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
    AGE,
    wide("IP", "string", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
    wide("Node", "string", "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName."),
    wide("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods."),
    wide("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness."),
];

fn list<'a>(obj: &'a Value, pointer: &str) -> &'a [Value] {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// `restartPolicy: Always` on an init container makes it a sidecar, counted with the containers.
fn is_sidecar(obj: &Value, container_name: &str) -> bool {
    list(obj, "/spec/initContainers")
        .iter()
        .any(|c| c["name"] == container_name && c["restartPolicy"] == "Always")
}

fn last_terminated_at(status: &Value) -> Option<jiff::Timestamp> {
    time_at(status, "/lastState/terminated/finishedAt")
}

/// A terminated state without a reason: `Signal:9` or `ExitCode:1`.
fn exit_reason(terminated: &Value, prefix: &str) -> String {
    let signal = int_at(terminated, "/signal", 0);
    if signal != 0 {
        format!("{prefix}Signal:{signal}")
    } else {
        format!("{prefix}ExitCode:{}", int_at(terminated, "/exitCode", 0))
    }
}

fn condition_true(obj: &Value, ty: &str) -> bool {
    list(obj, "/status/conditions")
        .iter()
        .any(|c| c["type"] == ty && c["status"] == "True")
}

/// The pod row with its cells and, for finished pods, the `Completed` row condition.
/// The pod's row: READY, STATUS and RESTARTS from its container statuses (kubectl's
/// `printPod`), then the wide columns.
pub(super) fn row(obj: &Value, now: jiff::Timestamp) -> Value {
    let phase = str_at(obj, "/status/phase");
    let mut tally = Tally::default();
    let init_reason = init_containers(obj, &mut tally);
    let initializing = init_reason.is_some();
    let mut reason = init_reason.unwrap_or_else(|| pod_reason(obj, phase));
    if !initializing || condition_true(obj, "Initialized") {
        reason = containers(obj, &mut tally, reason);
    }
    let reason = terminating(obj, phase, reason);
    let ip = obj
        .pointer("/status/podIPs/0/ip")
        .and_then(Value::as_str)
        .unwrap_or(str_at(obj, "/status/podIP"));
    let mut row = json!({"cells": [
        name(obj),
        format!("{}/{}", tally.ready, total_containers(obj)),
        reason,
        tally.restarts_cell(now),
        age(obj, now),
        or_none(ip),
        or_none(str_at(obj, "/spec/nodeName")),
        or_none(str_at(obj, "/status/nominatedNodeName")),
        readiness_gates(obj),
    ]});
    if let Some(c) = completed_condition(phase) {
        row["conditions"] = c;
    }
    row
}

/// What the container statuses add up to: READY and RESTARTS.
#[derive(Default)]
struct Tally {
    ready: usize,
    restarts: i64,
    last_restart: Option<jiff::Timestamp>,
    /// Restarts of sidecars (init containers with `restartPolicy: Always`), which count with
    /// the containers' once the pod is initialised.
    sidecar_restarts: i64,
    sidecar_last_restart: Option<jiff::Timestamp>,
}

impl Tally {
    /// `3 (2m ago)`, or the bare count when there was no restart.
    fn restarts_cell(&self, now: jiff::Timestamp) -> String {
        match self.last_restart {
            Some(at) if self.restarts != 0 => {
                format!("{} ({} ago)", self.restarts, since(Some(at), now))
            }
            _ => self.restarts.to_string(),
        }
    }
}

/// STATUS before any container has a say: the phase, `status.reason` (`Evicted`, `NodeLost`),
/// or `SchedulingGated`.
fn pod_reason(obj: &Value, phase: &str) -> String {
    let gated = list(obj, "/status/conditions")
        .iter()
        .any(|c| c["type"] == "PodScheduled" && c["reason"] == "SchedulingGated");
    match str_at(obj, "/status/reason") {
        _ if gated => "SchedulingGated".into(),
        "" => phase.to_string(),
        r => r.to_string(),
    }
}

/// Counts the init containers' restarts (and ready sidecars) up to the first one still
/// initialising; its reason (`Init:Error`, `Init:CrashLoopBackOff`, `Init:1/2`) if there is one.
fn init_containers(obj: &Value, tally: &mut Tally) -> Option<String> {
    let specs = list(obj, "/spec/initContainers").len();
    for (i, cs) in list(obj, "/status/initContainerStatuses")
        .iter()
        .enumerate()
    {
        let count = int_at(cs, "/restartCount", 0);
        tally.restarts += count;
        tally.last_restart = tally.last_restart.max(last_terminated_at(cs));
        let sidecar = is_sidecar(obj, str_at(cs, "/name"));
        if sidecar {
            tally.sidecar_restarts += count;
            tally.sidecar_last_restart = tally.sidecar_last_restart.max(last_terminated_at(cs));
        }
        let terminated = cs.pointer("/state/terminated");
        if terminated.is_some_and(|t| int_at(t, "/exitCode", 0) == 0) {
            continue;
        }
        if sidecar && cs["started"] == true {
            if cs["ready"] == true {
                tally.ready += 1;
            }
            continue;
        }
        let waiting_reason = str_at(cs, "/state/waiting/reason");
        return Some(match terminated {
            Some(t) if str_at(t, "/reason").is_empty() => exit_reason(t, "Init:"),
            Some(t) => format!("Init:{}", str_at(t, "/reason")),
            None if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" => {
                format!("Init:{waiting_reason}")
            }
            None => format!("Init:{i}/{specs}"),
        });
    }
    None
}

/// Counts the containers' restarts and readiness; STATUS becomes the reason of the first
/// container (from the last) that is waiting or terminated, `reason` if none is.
fn containers(obj: &Value, tally: &mut Tally, mut reason: String) -> String {
    tally.restarts = tally.sidecar_restarts;
    tally.last_restart = tally.sidecar_last_restart;
    let mut has_running = false;
    for cs in list(obj, "/status/containerStatuses").iter().rev() {
        tally.restarts += int_at(cs, "/restartCount", 0);
        tally.last_restart = tally.last_restart.max(last_terminated_at(cs));
        let waiting_reason = str_at(cs, "/state/waiting/reason");
        if !waiting_reason.is_empty() {
            reason = waiting_reason.to_string();
        } else if let Some(t) = cs.pointer("/state/terminated") {
            reason = match str_at(t, "/reason") {
                "" => exit_reason(t, ""),
                r => r.to_string(),
            };
        } else if cs["ready"] == true && cs.pointer("/state/running").is_some() {
            has_running = true;
            tally.ready += 1;
        }
    }
    if reason == "Completed" && has_running {
        reason = if condition_true(obj, "Ready") {
            "Running".into()
        } else {
            "NotReady".into()
        };
    }
    reason
}

/// `Terminating` once `deletionTimestamp` is set (`Unknown` on a lost node), unless the pod
/// has already finished.
fn terminating(obj: &Value, phase: &str, reason: String) -> String {
    let deleting = obj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|d| !d.is_null());
    if !deleting {
        reason
    } else if str_at(obj, "/status/reason") == "NodeLost" {
        "Unknown".into()
    } else if phase != "Succeeded" && phase != "Failed" {
        "Terminating".into()
    } else {
        reason
    }
}

/// READY's denominator: the containers and the sidecars.
fn total_containers(obj: &Value) -> usize {
    let sidecars = list(obj, "/spec/initContainers")
        .iter()
        .filter(|c| c["restartPolicy"] == "Always")
        .count();
    list(obj, "/spec/containers").len() + sidecars
}

/// READINESS GATES: passing/total, `<none>` without gates.
fn readiness_gates(obj: &Value) -> String {
    let gates = list(obj, "/spec/readinessGates");
    if gates.is_empty() {
        return "<none>".into();
    }
    let passing = gates
        .iter()
        .filter(|g| condition_true(obj, str_at(g, "/conditionType")))
        .count();
    format!("{passing}/{}", gates.len())
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s.to_string()
    }
}

/// The row condition kubectl uses to hide finished pods unless `--show-all`.
fn completed_condition(phase: &str) -> Option<Value> {
    let (reason, message) = match phase {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return None,
    };
    Some(json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ago, now};
    use super::super::{row as table_row, IncludeObject};
    use k8s_openapi::api::core::v1::{
        Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
        ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodIP, PodSpec, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use serde_json::{json, Value};

    fn status(name: &str, state: ContainerState, ready: bool, restarts: i32) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            image: "nginx".into(),
            image_id: String::new(),
            ready,
            restart_count: restarts,
            state: Some(state),
            ..Default::default()
        }
    }

    fn waiting(reason: &str) -> ContainerState {
        ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn running() -> ContainerState {
        ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(ago(60))),
            }),
            ..Default::default()
        }
    }

    fn terminated(exit_code: i32, reason: Option<&str>) -> ContainerState {
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code,
                reason: reason.map(Into::into),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn pod(
        containers: &[&str],
        inits: &[&str],
        phase: &str,
        statuses: Vec<ContainerStatus>,
        init_statuses: Vec<ContainerStatus>,
    ) -> Pod {
        let c = |n: &&str| Container {
            name: n.to_string(),
            image: Some("nginx".into()),
            ..Default::default()
        };
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                creation_timestamp: Some(Time(ago(600))),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: containers.iter().map(c).collect(),
                init_containers: (!inits.is_empty()).then(|| inits.iter().map(c).collect()),
                node_name: Some("n1".into()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                pod_ips: Some(vec![PodIP {
                    ip: "10.0.0.5".into(),
                }]),
                container_statuses: Some(statuses),
                init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
                ..Default::default()
            }),
        }
    }

    fn cells(p: &Pod) -> Value {
        table_row(
            "pods",
            &serde_json::to_value(p).unwrap(),
            now(),
            IncludeObject::None,
        )["cells"]
            .clone()
    }

    #[test]
    fn running_pod_with_wide_columns() {
        let p = pod(
            &["web"],
            &[],
            "Running",
            vec![status("web", running(), true, 0)],
            vec![],
        );
        assert_eq!(
            cells(&p),
            json!(["web", "1/1", "Running", "0", "10m", "10.0.0.5", "n1", "<none>", "<none>"])
        );
    }

    #[test]
    fn crash_loop_back_off_with_restarts_ago() {
        let mut s = status("web", waiting("CrashLoopBackOff"), false, 3);
        s.last_state = Some(terminated(1, Some("Error")));
        s.last_state
            .as_mut()
            .unwrap()
            .terminated
            .as_mut()
            .unwrap()
            .finished_at = Some(Time(ago(120)));
        let p = pod(&["web"], &[], "Running", vec![s], vec![]);
        let c = cells(&p);
        assert_eq!(c[1], "0/1");
        assert_eq!(c[2], "CrashLoopBackOff");
        assert_eq!(c[3], "3 (2m ago)");
    }

    #[test]
    fn pending_container_creating_and_no_status() {
        let p = pod(
            &["web"],
            &[],
            "Pending",
            vec![status("web", waiting("ContainerCreating"), false, 0)],
            vec![],
        );
        assert_eq!(cells(&p)[2], "ContainerCreating");
        let mut p = pod(&["web"], &[], "Pending", vec![], vec![]);
        p.spec.as_mut().unwrap().node_name = None;
        p.status.as_mut().unwrap().pod_ips = None;
        let c = cells(&p);
        assert_eq!(
            (&c[1], &c[2], &c[5], &c[6]),
            (
                &json!("0/1"),
                &json!("Pending"),
                &json!("<none>"),
                &json!("<none>")
            )
        );
    }

    #[test]
    fn terminated_reasons() {
        let p = pod(
            &["job"],
            &[],
            "Succeeded",
            vec![status("job", terminated(0, Some("Completed")), false, 0)],
            vec![],
        );
        let r = table_row(
            "pods",
            &serde_json::to_value(&p).unwrap(),
            now(),
            IncludeObject::None,
        );
        assert_eq!(r["cells"][2], "Completed");
        assert_eq!(r["conditions"][0]["reason"], "Succeeded");
        let p = pod(
            &["job"],
            &[],
            "Failed",
            vec![status("job", terminated(137, Some("OOMKilled")), false, 0)],
            vec![],
        );
        assert_eq!(cells(&p)[2], "OOMKilled");
        let p = pod(
            &["job"],
            &[],
            "Failed",
            vec![status("job", terminated(2, Some("Error")), false, 0)],
            vec![],
        );
        assert_eq!(cells(&p)[2], "Error");
        let p = pod(
            &["job"],
            &[],
            "Failed",
            vec![status("job", terminated(3, None), false, 0)],
            vec![],
        );
        assert_eq!(cells(&p)[2], "ExitCode:3");
    }

    #[test]
    fn init_containers() {
        let p = pod(
            &["web"],
            &["setup"],
            "Pending",
            vec![status("web", waiting("PodInitializing"), false, 0)],
            vec![status("setup", running(), false, 0)],
        );
        assert_eq!(cells(&p)[2], "Init:0/1");
        let p = pod(
            &["web"],
            &["setup"],
            "Pending",
            vec![],
            vec![status("setup", waiting("CrashLoopBackOff"), false, 4)],
        );
        assert_eq!(cells(&p)[2], "Init:CrashLoopBackOff");
        assert_eq!(cells(&p)[3], "4");
        let p = pod(
            &["web"],
            &["setup"],
            "Pending",
            vec![],
            vec![status("setup", terminated(1, None), false, 0)],
        );
        assert_eq!(cells(&p)[2], "Init:ExitCode:1");
        let p = pod(
            &["web"],
            &["setup"],
            "Running",
            vec![status("web", running(), true, 0)],
            vec![status("setup", terminated(0, Some("Completed")), false, 0)],
        );
        assert_eq!(cells(&p)[2], "Running");
    }

    #[test]
    fn sidecar_counts_as_container_and_completed_with_running_is_not_ready() {
        let mut p = pod(
            &["web"],
            &["proxy"],
            "Running",
            vec![status("web", running(), true, 0)],
            vec![],
        );
        p.spec.as_mut().unwrap().init_containers.as_mut().unwrap()[0].restart_policy =
            Some("Always".into());
        let mut sidecar = status("proxy", running(), true, 0);
        sidecar.started = Some(true);
        p.status.as_mut().unwrap().init_container_statuses = Some(vec![sidecar]);
        assert_eq!(cells(&p)[1], "2/2");

        let p = pod(
            &["a", "b"],
            &[],
            "Running",
            vec![
                status("a", terminated(0, Some("Completed")), false, 0),
                status("b", running(), true, 0),
            ],
            vec![],
        );
        assert_eq!(cells(&p)[2], "NotReady");
        let mut p = p;
        p.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            ..Default::default()
        }]);
        assert_eq!(cells(&p)[2], "Running");
    }

    #[test]
    fn terminating_and_node_lost() {
        let mut p = pod(
            &["web"],
            &[],
            "Running",
            vec![status("web", running(), true, 0)],
            vec![],
        );
        p.metadata.deletion_timestamp = Some(Time(ago(5)));
        assert_eq!(cells(&p)[2], "Terminating");
        p.status.as_mut().unwrap().reason = Some("NodeLost".into());
        assert_eq!(cells(&p)[2], "Unknown");
        p.metadata.deletion_timestamp = None;
        p.status.as_mut().unwrap().container_statuses = Some(vec![]);
        assert_eq!(cells(&p)[2], "NodeLost");
    }

    #[test]
    fn readiness_gates() {
        let mut p = pod(
            &["web"],
            &[],
            "Running",
            vec![status("web", running(), true, 0)],
            vec![],
        );
        p.spec.as_mut().unwrap().readiness_gates = Some(vec![
            k8s_openapi::api::core::v1::PodReadinessGate {
                condition_type: "a".into(),
            },
            k8s_openapi::api::core::v1::PodReadinessGate {
                condition_type: "b".into(),
            },
        ]);
        p.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
            type_: "a".into(),
            status: "True".into(),
            ..Default::default()
        }]);
        assert_eq!(cells(&p)[8], "1/2");
    }
}
