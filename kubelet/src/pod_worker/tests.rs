//! The pod worker against [`FakeRuntime`] and a recording [`PodApi`]: no root, no kernel, no
//! apiserver. Each test builds a pod, runs the worker's syncs one by one, decides between
//! them how the fake's containers end, and asserts the runtime calls, the status written and
//! the Events and DELETE sent. They mirror the cases of `kubelet/tests/kubelet.rs`, which runs
//! the same paths on a real node.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use k8s_openapi::api::core::v1::{
    Container, ContainerStatus, EmptyDirVolumeSource, ExecAction, Pod, PodSpec, PodStatus, Probe,
    Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::{Context, PodApi, PodWorker};
use crate::agent::inventory;
use crate::cri::{Call, ExecOutput, FakeRuntime};
use crate::events::PodEvent;

/// What the worker wrote to the API.
#[derive(Debug, Clone, PartialEq)]
enum Write {
    Status(Box<PodStatus>),
    /// (reason, container) of each event posted.
    Events(Vec<(&'static str, Option<String>)>),
    Delete {
        name: String,
        uid: String,
    },
}

/// A [`PodApi`] that keeps what it is given.
#[derive(Default)]
struct RecordingApi {
    writes: Mutex<Vec<Write>>,
}

impl RecordingApi {
    fn take(&self) -> Vec<Write> {
        std::mem::take(&mut self.writes.lock().unwrap())
    }
}

impl PodApi for RecordingApi {
    fn patch_status<'a>(
        &'a self,
        _pod: &'a Pod,
        status: &'a PodStatus,
    ) -> BoxFuture<'a, Result<(), kube::Error>> {
        self.writes
            .lock()
            .unwrap()
            .push(Write::Status(Box::new(status.clone())));
        async { Ok(()) }.boxed()
    }

    fn delete<'a>(&'a self, pod: &'a Pod) -> BoxFuture<'a, Result<(), kube::Error>> {
        self.writes.lock().unwrap().push(Write::Delete {
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        });
        async { Ok(()) }.boxed()
    }

    fn post_events(&self, _pod: &Pod, events: Vec<PodEvent>) {
        if events.is_empty() {
            return;
        }
        let events = events
            .into_iter()
            .map(|e| (e.reason, e.container))
            .collect();
        self.writes.lock().unwrap().push(Write::Events(events));
    }
}

/// A node for one test: the fake runtime, the recording API and a scratch root dir.
struct Node {
    rt: Arc<FakeRuntime>,
    api: Arc<RecordingApi>,
    ctx: Arc<Context>,
    root: PathBuf,
}

impl Node {
    fn new() -> Self {
        Self::with_backoff(Duration::from_secs(10))
    }

    fn with_backoff(base: Duration) -> Self {
        let rt = Arc::new(FakeRuntime::new());
        let api = Arc::new(RecordingApi::default());
        let root =
            std::env::temp_dir().join(format!("minik8s-pod-worker-{}", runtime::random_hex(6)));
        // workers write through `api`; the client is for the agent and never dialled here
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let ctx = Arc::new(Context {
            client: kube::Client::try_from(config).unwrap(),
            api: api.clone(),
            runtime: rt.clone(),
            node_name: "node-a".into(),
            node_ip: Some("10.0.0.1".into()),
            root_dir: root.clone(),
            dns: crate::dns_config::DnsSettings {
                cluster_dns: vec!["10.96.0.10".parse().unwrap()],
                resolv_conf: None,
                ..Default::default()
            },
            backoff_base: base,
            backoff_max: Duration::from_secs(300),
            metrics: Default::default(),
            network: Default::default(),
            start_slots: super::start_slots(),
        });
        Self { rt, api, ctx, root }
    }

    /// A worker for `pod` that re-adopts what the runtime has of it.
    fn worker(&self, pod: &Pod) -> PodWorker {
        let uid = pod.metadata.uid.clone().unwrap();
        let records = inventory(self.rt.as_ref()).remove(&uid).unwrap_or_default();
        PodWorker::new(self.ctx.clone(), uid, records)
    }

    /// Names of the containers created by the calls since the last look.
    fn created(&self) -> Vec<String> {
        self.rt
            .take_calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::CreateContainer { name } => Some(name),
                _ => None,
            })
            .collect()
    }

    /// The last status written since the last look.
    fn status(&self) -> PodStatus {
        self.api
            .take()
            .into_iter()
            .rev()
            .find_map(|w| match w {
                Write::Status(s) => Some(*s),
                _ => None,
            })
            .expect("a status was written")
    }

    /// Reasons of the events posted since the last look.
    fn events(&self) -> Vec<&'static str> {
        self.api
            .take()
            .into_iter()
            .filter_map(|w| match w {
                Write::Events(e) => Some(e),
                _ => None,
            })
            .flatten()
            .map(|(reason, _)| reason)
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A pod under construction: `pod("web").container("app").build()`.
struct PodBuilder(Pod);

fn pod(name: &str) -> PodBuilder {
    PodBuilder(Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            ..Default::default()
        },
        spec: Some(PodSpec::default()),
        status: None,
    })
}

fn container(name: &str) -> Container {
    Container {
        name: name.into(),
        image: Some("busybox".into()),
        command: Some(vec!["sleep".into(), "3600".into()]),
        ..Default::default()
    }
}

impl PodBuilder {
    fn spec(&mut self) -> &mut PodSpec {
        self.0.spec.as_mut().unwrap()
    }

    fn container(mut self, name: &str) -> Self {
        self.spec().containers.push(container(name));
        self
    }

    fn init_container(mut self, name: &str) -> Self {
        let c = container(name);
        self.spec().init_containers.get_or_insert_default().push(c);
        self
    }

    fn empty_dir(mut self, name: &str) -> Self {
        self.spec().volumes.get_or_insert_default().push(Volume {
            name: name.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        });
        self
    }

    fn restart_policy(mut self, policy: &str) -> Self {
        self.spec().restart_policy = Some(policy.into());
        self
    }

    /// Its last container gets an exec liveness probe that fails at the first failure.
    fn liveness(mut self) -> Self {
        let c = self.spec().containers.last_mut().unwrap();
        c.liveness_probe = Some(Probe {
            exec: Some(ExecAction {
                command: Some(vec!["check".into()]),
            }),
            failure_threshold: Some(1),
            period_seconds: Some(1),
            ..Default::default()
        });
        self
    }

    /// `kubectl delete` with a grace period of `grace` seconds.
    fn deleting(mut self, grace: i64) -> Self {
        self.0.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
        self.0.metadata.deletion_grace_period_seconds = Some(grace);
        self
    }

    fn build(self) -> Arc<Pod> {
        Arc::new(self.0)
    }
}

/// The status of container `name`.
fn container_status<'a>(status: &'a PodStatus, name: &str) -> &'a ContainerStatus {
    status
        .container_statuses
        .iter()
        .chain(status.init_container_statuses.iter())
        .flatten()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no status for container {name}"))
}

/// The reason of its `state.waiting`, `state.terminated` or "running".
fn state_reason(cs: &ContainerStatus) -> String {
    let s = cs.state.as_ref().unwrap();
    if s.running.is_some() {
        return "running".into();
    }
    s.waiting
        .as_ref()
        .and_then(|w| w.reason.clone())
        .or_else(|| s.terminated.as_ref().and_then(|t| t.reason.clone()))
        .unwrap()
}

#[tokio::test]
async fn init_containers_run_in_order_then_the_containers() {
    let node = Node::new();
    let pod = pod("web")
        .init_container("setup")
        .init_container("migrate")
        .container("app")
        .container("sidecar")
        .build();
    let mut w = node.worker(&pod);

    w.sync(pod.clone()).await;
    assert_eq!(
        node.rt.take_calls(),
        vec![
            Call::RunSandbox {
                uid: "uid-web".into()
            },
            Call::CreateContainer {
                name: "uid-web_setup_0".into()
            },
            Call::StartContainer {
                name: "uid-web_setup_0".into()
            },
        ]
    );
    let st = node.status();
    assert_eq!(st.phase.as_deref(), Some("Pending"));
    assert_eq!(
        state_reason(container_status(&st, "app")),
        "PodInitializing"
    );

    w.sync(pod.clone()).await;
    assert_eq!(node.created(), Vec::<String>::new(), "setup still runs");

    node.rt.exit("uid-web_setup_0", 0);
    w.sync(pod.clone()).await;
    assert_eq!(node.created(), ["uid-web_migrate_0"]);

    node.rt.exit("uid-web_migrate_0", 0);
    w.sync(pod.clone()).await;
    assert_eq!(node.created(), ["uid-web_app_0", "uid-web_sidecar_0"]);
    let st = node.status();
    assert_eq!(st.phase.as_deref(), Some("Running"));
    assert_eq!(state_reason(container_status(&st, "setup")), "Completed");
    assert_eq!(state_reason(container_status(&st, "sidecar")), "running");
    assert_eq!(
        container_status(&st, "app").container_id.as_deref(),
        Some("minik8s://fake0003")
    );
    assert!(w.lifecycle.is_running());
}

#[tokio::test]
async fn the_sandbox_gets_the_pods_resolv_conf() {
    let node = Node::new();
    let pod = pod("web").container("app").build();
    let mut w = node.worker(&pod);
    w.sync(pod.clone()).await;
    let dns = node.rt.sandbox_options("uid-web").unwrap().dns.unwrap();
    assert_eq!(
        dns.to_resolv_conf(),
        "search default.svc.cluster.local svc.cluster.local cluster.local\n\
         nameserver 10.96.0.10\noptions ndots:5\n"
    );
    assert!(!node.events().contains(&"MissingClusterDNS"));
}

#[tokio::test]
async fn restart_policy_decides_what_runs_again_after_an_exit() {
    // (restartPolicy, exit code, restarted, phase)
    let table = [
        ("Always", 0, true, "Running"),
        ("Always", 1, true, "Running"),
        ("OnFailure", 0, false, "Succeeded"),
        ("OnFailure", 1, true, "Running"),
        ("Never", 0, false, "Succeeded"),
        ("Never", 1, false, "Failed"),
    ];
    for (policy, code, restarted, phase) in table {
        let node = Node::new();
        let pod = pod("job").container("app").restart_policy(policy).build();
        let mut w = node.worker(&pod);
        w.sync(pod.clone()).await;
        node.rt.take_calls();
        node.rt.exit("uid-job_app_0", code);
        let next = w.sync(pod.clone()).await;
        let created = node.created();
        assert_eq!(!created.is_empty(), restarted, "{policy} after exit {code}");
        let st = node.status();
        assert_eq!(
            st.phase.as_deref(),
            Some(phase),
            "{policy} after exit {code}"
        );
        if restarted {
            assert_eq!(created, ["uid-job_app_1"], "the first restart is at once");
            assert_eq!(container_status(&st, "app").restart_count, 1);
        } else {
            assert_eq!(next, Duration::from_secs(30), "a finished pod syncs slowly");
        }
    }
}

#[tokio::test]
async fn crash_loop_back_off_doubles_its_delay() {
    let base = Duration::from_millis(100);
    let node = Node::with_backoff(base);
    let pod = pod("crash").container("app").build();
    let mut w = node.worker(&pod);
    w.sync(pod.clone()).await;
    node.rt.take_calls();
    node.rt.exit("uid-crash_app_0", 1);
    w.sync(pod.clone()).await;
    assert_eq!(node.created(), ["uid-crash_app_1"], "first crash: at once");
    node.api.take();

    for (attempt, delay) in [(1, base), (2, base * 2), (3, base * 4)] {
        node.rt.exit(&format!("uid-crash_app_{attempt}"), 1);
        let next = w.sync(pod.clone()).await;
        assert!(next <= delay, "{next:?} > {delay:?}");
        assert_eq!(node.created(), Vec::<String>::new(), "backing off");
        let writes = node.api.take();
        let st = writes
            .iter()
            .find_map(|w| match w {
                Write::Status(s) => Some(s),
                _ => None,
            })
            .unwrap();
        let cs = container_status(st, "app");
        assert_eq!(state_reason(cs), "CrashLoopBackOff");
        let message = cs
            .state
            .as_ref()
            .unwrap()
            .waiting
            .as_ref()
            .unwrap()
            .message
            .clone();
        assert!(message
            .unwrap()
            .starts_with(&format!("back-off {delay:?} ")));
        assert_eq!(cs.restart_count, attempt);
        assert_eq!(st.phase.as_deref(), Some("Running"));
        assert!(writes.contains(&Write::Events(vec![("BackOff", Some("app".into()))])));

        w.sync(pod.clone()).await;
        assert_eq!(
            node.events(),
            Vec::<&str>::new(),
            "one BackOff event per wait"
        );
        tokio::time::sleep(delay).await;
        w.sync(pod.clone()).await;
        let next_attempt = format!("uid-crash_app_{}", attempt + 1);
        assert_eq!(node.created(), [next_attempt]);
        node.api.take();
    }
    // only the latest attempt and the one before it are kept
    assert_eq!(node.rt.names(), ["uid-crash_app_3", "uid-crash_app_4"]);
}

#[tokio::test]
async fn an_oom_killed_container_says_so() {
    let node = Node::new();
    let pod = pod("hog").container("app").restart_policy("Never").build();
    let mut w = node.worker(&pod);
    w.sync(pod.clone()).await;
    node.rt.oom_kill("uid-hog_app_0");
    w.sync(pod.clone()).await;
    let st = node.status();
    let cs = container_status(&st, "app");
    let terminated = cs.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(terminated.reason.as_deref(), Some("OOMKilled"));
    assert_eq!(terminated.exit_code, 137);
    assert_eq!(st.phase.as_deref(), Some("Failed"));
}

#[tokio::test]
async fn a_container_that_cannot_start_is_a_start_error() {
    let node = Node::new();
    node.rt
        .fail_start("app", "executable file not found in $PATH: \"nope\"");
    let pod = pod("broken")
        .container("app")
        .restart_policy("Never")
        .build();
    let mut w = node.worker(&pod);
    w.sync(pod.clone()).await;
    let writes = node.api.take();
    assert!(writes.contains(&Write::Events(vec![
        ("Pulled", Some("app".into())),
        ("Created", Some("app".into())),
        ("Failed", Some("app".into())),
    ])));
    let Some(Write::Status(st)) = writes.first() else {
        panic!("the status goes first: {writes:?}");
    };
    let cs = container_status(st, "app");
    let terminated = cs.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(terminated.reason.as_deref(), Some("StartError"));
    assert_eq!(
        terminated.message.as_deref(),
        Some("executable file not found in $PATH: \"nope\"")
    );
    assert_eq!(st.phase.as_deref(), Some("Failed"));
}

#[tokio::test]
async fn deletion_stops_with_grace_removes_then_deletes_the_pod() {
    let node = Node::new();
    let pod = pod("gone")
        .init_container("setup")
        .container("app")
        .empty_dir("scratch")
        .build();
    let mut w = node.worker(&pod);
    w.sync(pod.clone()).await;
    node.rt.exit("uid-gone_setup_0", 0);
    w.sync(pod.clone()).await;
    assert!(node.root.join("pods/uid-gone").exists());
    node.rt.take_calls();
    node.api.take();

    let deleting = PodBuilder(Pod::clone(&pod)).deleting(7).build();
    w.terminate(deleting).await;
    assert_eq!(
        node.rt.take_calls(),
        vec![
            Call::StopContainer {
                name: "uid-gone_app_0".into(),
                grace: Duration::from_secs(7),
            },
            Call::RemoveContainer {
                name: "uid-gone_setup_0".into()
            },
            Call::RemoveContainer {
                name: "uid-gone_app_0".into()
            },
            Call::RemoveSandbox {
                uid: "uid-gone".into()
            },
        ]
    );
    assert_eq!(
        node.api.take(),
        vec![
            Write::Events(vec![("Killing", Some("app".into()))]),
            Write::Delete {
                name: "gone".into(),
                uid: "uid-gone".into()
            },
        ]
    );
    assert!(node.rt.names().is_empty() && node.rt.sandboxes().is_empty());
    assert!(!node.root.join("pods/uid-gone").exists());
}

#[tokio::test]
async fn a_restarted_kubelet_readopts_running_containers() {
    let node = Node::new();
    // what the previous kubelet left: the sandbox, a restarted container still running
    node.rt.add_sandbox("uid-kept");
    node.rt.add_running("uid-kept_app_0");
    node.rt.exit("uid-kept_app_0", 1);
    node.rt.add_running("uid-kept_app_1");
    let pod = pod("kept").container("app").build();
    let mut w = node.worker(&pod);
    w.sync(pod.clone()).await;
    assert_eq!(
        node.rt.take_calls(),
        vec![],
        "nothing created, started or stopped"
    );
    let st = node.status();
    let cs = container_status(&st, "app");
    assert_eq!(state_reason(cs), "running");
    assert_eq!(cs.restart_count, 1);
    let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
    assert_eq!(st.phase.as_deref(), Some("Running"));
}

#[tokio::test]
async fn a_failing_liveness_probe_restarts_the_container() {
    let node = Node::new();
    node.rt.set_exec_output(ExecOutput {
        success: false,
        output: "unhealthy".into(),
    });
    let pod = pod("sick").container("app").liveness().build();
    let mut w = node.worker(&pod);
    w.sync(pod.clone()).await;
    node.rt.take_calls();
    node.api.take();

    let next = w.sync(pod.clone()).await;
    assert_eq!(next, Duration::ZERO, "pass again at once to restart it");
    assert_eq!(
        node.rt.take_calls(),
        vec![
            Call::Exec {
                name: "uid-sick_app_0".into(),
                command: vec!["check".into()],
            },
            Call::StopContainer {
                name: "uid-sick_app_0".into(),
                grace: Duration::from_secs(30),
            },
        ]
    );
    assert_eq!(node.events(), ["Unhealthy", "Killing"]);
    w.sync(pod.clone()).await;
    assert_eq!(node.created(), ["uid-sick_app_1"]);
}
