//! A whole cluster for end-to-end tests: a private etcd, the apiserver, the controller manager
//! and the scheduler (both in-process, as tasks on the test's runtime) and real kubelets (the
//! `e2e-kubelet` binary, i.e. the kubelet's own `main`, as child processes with their own node
//! name and root dir), plus the real kubectl through a kubeconfig.
//!
//! Everything is torn down on drop, also when a test panics: a `Kubelet` is SIGKILLed and every
//! container and sandbox under its root is force-removed (processes, sandbox mounts, cgroups);
//! then the `Cluster` stops the controllers, the apiserver and etcd. [`assert_nothing_left`]
//! checks afterwards that the kernel holds nothing of the test.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apiserver::server::ServerConfig;
use apiserver::testing::{EtcdProcess, TestServer};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams};
use runtime::cgroups::Hierarchy;
use runtime::container::alive;
use runtime::Runtime;

/// The kubelet binary built from `kubelet/src/bin/minik8s-kubelet.rs` by this package.
pub const KUBELET: &str = env!("CARGO_BIN_EXE_e2e-kubelet");

/// The tests need root (namespaces, cgroups, mounts): say so and skip otherwise.
pub fn skip_unless_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return false;
    }
    eprintln!("skipping {test}: end-to-end tests run containers and need root");
    true
}

/// Controller and scheduler logs go to the test's captured output (shown on failure).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .with_test_writer()
        .try_init();
}

pub fn rand_hex() -> String {
    runtime::random_hex(4)
}

/// Aborts its task when dropped.
pub struct Task(tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// etcd + apiserver + controller manager + scheduler. Fields drop in order: the components
/// stop before the apiserver, the apiserver before etcd.
pub struct Cluster {
    controllers: Task,
    scheduler: Task,
    pub server: TestServer,
    pub etcd: EtcdProcess,
    /// Holds the kubeconfig and kubectl's cache.
    pub dir: PathBuf,
    /// What the apiserver presents to kubelets (logs, exec).
    pub kubelet_token: String,
}

impl Cluster {
    /// Start everything but the kubelets; `controllers` carries the node-lifecycle timings.
    pub async fn start(controllers: controller::manager::Config) -> Cluster {
        init_logs();
        let etcd = EtcdProcess::start();
        let kubelet_token = format!("token-{}", rand_hex());
        let server = TestServer::start(
            &etcd,
            ServerConfig {
                kubelet_token: Some(kubelet_token.clone()),
                ..Default::default()
            },
        )
        .await;
        let dir = std::env::temp_dir().join(format!("minik8s-e2e-{}", rand_hex()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("kubeconfig"),
            format!(
                "apiVersion: v1\nkind: Config\n\
                 clusters:\n- name: e2e\n  cluster:\n    server: {url}\n\
                 users:\n- name: e2e\n  user: {{}}\n\
                 contexts:\n- name: e2e\n  context:\n    cluster: e2e\n    user: e2e\n    namespace: default\n\
                 current-context: e2e\n",
                url = server.url
            ),
        )
        .unwrap();
        let client = client_for(&server.url);
        let controllers = Task(tokio::spawn(controller::manager::run(
            client.clone(),
            controllers,
        )));
        let scheduler = Task(tokio::spawn(async move {
            if let Err(e) = scheduler::run(client, scheduler::SchedulerConfig::default()).await {
                tracing::error!(error = %e, "scheduler stopped");
            }
        }));
        Cluster {
            controllers,
            scheduler,
            server,
            etcd,
            dir,
            kubelet_token,
        }
    }

    pub fn url(&self) -> &str {
        &self.server.url
    }

    pub fn client(&self) -> kube::Client {
        client_for(&self.server.url)
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// Run the real kubectl with the cluster's kubeconfig; returns (success, stdout + stderr).
    pub async fn kubectl(&self, args: &[&str]) -> (bool, String) {
        let out = tokio::process::Command::new(apiserver::testing::kubectl())
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.join("kube-cache"))
            .env_remove("KUBECONFIG")
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .unwrap_or_else(|e| panic!("run kubectl: {e}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client(), "default")
    }

    pub fn nodes(&self) -> Api<Node> {
        Api::all(self.client())
    }

    /// The pods in `default` with label `app=<app>`.
    pub async fn app_pods(&self, app: &str) -> Vec<Pod> {
        self.pods()
            .list(&ListParams::default().labels(&format!("app={app}")))
            .await
            .map(|l| l.items)
            .unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn client_for(url: &str) -> kube::Client {
    kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap()
}

/// Poll `f` every 200 ms until it returns `Some`; panics with `what` (and `context()`, e.g. a
/// state dump) after `secs`.
pub async fn wait_for<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {secs}s: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Which optional flags this kubelet build has (pod networking may or may not be there).
struct KubeletFlags {
    /// `--bridge-name` and `--pod-cidr`: the node's pod network on a bridge of its own.
    bridge: bool,
    /// `--cleanup-network`: remove the pod network recorded under the root dir.
    cleanup_network: bool,
}

fn kubelet_flags() -> &'static KubeletFlags {
    static FLAGS: std::sync::OnceLock<KubeletFlags> = std::sync::OnceLock::new();
    FLAGS.get_or_init(|| {
        let out = Command::new(KUBELET)
            .arg("--help")
            .output()
            .unwrap_or_else(|e| panic!("run {KUBELET} --help: {e}"));
        let help = String::from_utf8_lossy(&out.stdout);
        KubeletFlags {
            bridge: help.contains("--bridge-name") && help.contains("--pod-cidr"),
            cleanup_network: help.contains("--cleanup-network"),
        }
    })
}

/// A /24 for one node: two kubelets on one host need distinct pod ranges (and bridges).
pub fn random_pod_cidr() -> String {
    let b = u32::from_str_radix(&runtime::random_hex(2), 16).unwrap();
    format!("10.{}.{}.0/24", 200 + (b >> 8) % 40, b & 0xff)
}

/// A running (or killed) kubelet process: one node.
pub struct Kubelet {
    pub node: String,
    pub root: PathBuf,
    /// The node's own pod bridge, when the kubelet has pod networking.
    pub bridge: Option<String>,
    args: Vec<String>,
    child: Option<Child>,
}

impl Kubelet {
    /// Start a kubelet for node `node` against `cluster`, renewing its Lease every second.
    pub fn start(cluster: &Cluster, node: &str) -> Kubelet {
        let root = std::env::temp_dir().join(format!("minik8s-e2e-kubelet-{node}"));
        fs::create_dir_all(&root).unwrap();
        fs::write(root.join("token"), &cluster.kubelet_token).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let mut args: Vec<String> = vec![
            "--server".into(),
            cluster.url().into(),
            "--node-name".into(),
            node.into(),
            "--root-dir".into(),
            root.display().to_string(),
            "--node-ip".into(),
            "127.0.0.1".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--auth-token-file".into(),
            root.join("token").display().to_string(),
            "--lease-interval".into(),
            "1s".into(),
            "--backoff-base".into(),
            "1s".into(),
        ];
        let mut bridge = None;
        if kubelet_flags().bridge {
            let name = format!("e2e{}", rand_hex());
            args.extend([
                "--bridge-name".into(),
                name.clone(),
                "--pod-cidr".into(),
                random_pod_cidr(),
            ]);
            bridge = Some(name);
        }
        let mut k = Kubelet {
            node: node.into(),
            root,
            bridge,
            args,
            child: None,
        };
        k.spawn();
        k
    }

    /// (Re)start the process with the same node name, root dir and flags.
    pub fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("kubelet.log"))
            .unwrap();
        let child = Command::new(KUBELET)
            .args(&self.args)
            .env_remove("KUBECONFIG")
            .env("RUST_LOG", "info,kube=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {KUBELET}: {e}"));
        self.child = Some(child);
    }

    /// SIGKILL the kubelet: the node "crashes", but its containers keep running (each belongs
    /// to its shim, not to the kubelet).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn runtime(&self) -> Runtime {
        Runtime::open(&self.root.join("runtime")).unwrap()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.root.join("kubelet.log")).unwrap_or_default()
    }

    /// Host pid of pod `uid`'s container `name` (latest attempt) on this node, if it runs.
    pub fn container_pid(&self, uid: &str, name: &str) -> Option<i32> {
        let rt = self.runtime();
        let mut best: Option<(u32, String)> = None;
        for id in rt.container_ids() {
            let Ok(spec) = rt.spec(&id) else { continue };
            if let Some((u, c, a)) = kubelet::container_config::parse_runtime_name(&spec.name) {
                if u == uid && c == name && best.as_ref().is_none_or(|(b, _)| a > *b) {
                    best = Some((a, id));
                }
            }
        }
        rt.state(&best?.1).ok()?.pid.filter(|p| alive(*p))
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "---- kubelet {} log (tail) ----\n{}",
                self.node,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        if let Ok(rt) = Runtime::open(&self.root.join("runtime")) {
            for id in rt.container_ids() {
                let _ = rt.remove(&id, true);
            }
            for sb in rt.sandbox_ids() {
                let _ = rt.remove_sandbox(&sb, true);
            }
            let _ = std::fs::remove_dir_all(&rt.state);
        }
        if kubelet_flags().cleanup_network {
            let _ = Command::new(KUBELET)
                .arg("--root-dir")
                .arg(&self.root)
                .arg("--cleanup-network")
                .env_remove("KUBECONFIG")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = fs::remove_dir_all(&self.root);
    }
}

pub fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

pub fn node_of(p: &Pod) -> &str {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

pub fn uid(p: &Pod) -> String {
    p.metadata.uid.clone().unwrap_or_default()
}

/// A pod counts as running when its phase says so and its container reports `running`.
pub fn running(p: &Pod) -> bool {
    phase(p) == "Running"
        && p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| {
                !cs.is_empty()
                    && cs
                        .iter()
                        .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
            })
}

/// The node's Ready condition status ("True", "False", "Unknown").
pub fn ready(n: &Node) -> Option<&str> {
    n.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

pub fn has_taint(n: &Node, key: &str) -> bool {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| ts.iter().any(|t| t.key == key))
}

/// After the kubelets are dropped: no container process of the test is alive, no process
/// runs out of a kubelet root (shims), no mount refers to a kubelet root (sandbox namespace
/// pins), no pod cgroup of the test and no pod bridge of its nodes is left.
pub fn assert_nothing_left(
    roots: &[PathBuf],
    bridges: &[String],
    uids: &BTreeSet<String>,
    pids: &BTreeSet<i32>,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let living: Vec<_> = pids.iter().filter(|p| alive(**p)).collect();
    assert!(living.is_empty(), "container processes left: {living:?}");

    let roots: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    let mut procs = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmd) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if roots.iter().any(|r| cmd.contains(r.as_str())) {
            procs.push(cmd);
        }
    }
    assert!(procs.is_empty(), "processes of the test left: {procs:?}");

    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mounts: Vec<&str> = mountinfo
        .lines()
        .filter(|l| roots.iter().any(|r| l.contains(r.as_str())))
        .collect();
    assert!(mounts.is_empty(), "mounts of the test left: {mounts:?}");

    let cgroups = Hierarchy::host();
    let left: Vec<PathBuf> = uids
        .iter()
        .flat_map(|u| cgroups.dirs(&Path::new("minik8s").join(u)))
        .filter(|d| d.exists())
        .collect();
    assert!(left.is_empty(), "cgroups of the test left: {left:?}");

    let links: Vec<&String> = bridges
        .iter()
        .filter(|b| Path::new("/sys/class/net").join(b).exists())
        .collect();
    assert!(links.is_empty(), "pod bridges of the test left: {links:?}");
}
