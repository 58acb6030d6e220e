//! A private cluster control plane for one test: a real etcd and the apiserver, in-process on a
//! loopback port, under an etcd key prefix no other test shares.
//!
//! The [`Cluster`] owns both and stops them when dropped (tasks it spawned first, then the
//! apiserver, then etcd). It hands out what a test talks to the API with: one `kube::Client`,
//! the real kubectl (with a cache dir of its own, never the user's kubeconfig), and a
//! kubeconfig file for tools that want one. The apiserver can be stopped and started again on
//! the same address and data, as an outage would. Read next: `kubectl.rs`, `node/mod.rs`.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, PostParams};

pub use apiserver::testing::ServerConfig;

use crate::wait::{wait_for, Task};
use crate::{kubectl, EtcdProcess, TestServer};

/// An etcd plus an apiserver; both stop when dropped.
pub struct Cluster {
    /// Components running in-process against this apiserver; they stop first.
    tasks: Vec<Task>,
    pub server: TestServer,
    pub etcd: EtcdProcess,
    /// kubectl's cache dir (discovery), inside the cluster's temporary dir.
    pub cache: PathBuf,
    /// The etcd key prefix the apiserver stores under (a restarted one reuses it).
    prefix: String,
    config: ServerConfig,
    /// One client for the whole cluster: building one loads the host's root certificates
    /// (milliseconds of CPU), which a benchmark creating pods must not pay per pod.
    client: kube::Client,
    /// kubectl reads the kubeconfig instead of `--server` (as the end-to-end tests do).
    kubectl_reads_kubeconfig: bool,
    /// Holds the kubeconfig and kubectl's cache; removed on drop.
    dir: tempfile::TempDir,
}

impl Cluster {
    /// etcd and an apiserver with the default configuration.
    pub async fn start() -> Cluster {
        Self::with_config(ServerConfig::default()).await
    }

    /// etcd and an apiserver that presents a fresh token to kubelets (for `pods/log` and
    /// `pods/exec`); [`Cluster::kubelet_token`] tells it to the kubelets.
    pub async fn for_kubelets() -> Cluster {
        Self::with_config(ServerConfig {
            kubelet_token: Some(format!("token-{}", crate::rand_hex())),
            ..Default::default()
        })
        .await
    }

    /// etcd and an apiserver configured by `config`.
    pub async fn with_config(config: ServerConfig) -> Cluster {
        let etcd = EtcdProcess::start();
        let prefix = format!("/registry-{}", uuid::Uuid::new_v4().simple());
        let server = TestServer::start_on(&etcd, &prefix, loopback(), config.clone()).await;
        let dir = tempfile::Builder::new()
            .prefix("minik8s-test-")
            .tempdir()
            .expect("a temporary dir");
        std::fs::write(dir.path().join("kubeconfig"), kubeconfig(&server.url)).unwrap();
        Cluster {
            tasks: Vec::new(),
            client: client_for(&server.url),
            server,
            etcd,
            cache: dir.path().join("kube-cache"),
            prefix,
            config,
            kubectl_reads_kubeconfig: false,
            dir,
        }
    }

    /// Make kubectl read [`Cluster::kubeconfig`] rather than take `--server`.
    pub fn kubectl_reads_kubeconfig(mut self) -> Cluster {
        self.kubectl_reads_kubeconfig = true;
        self
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// A client for this apiserver (a clone of the cluster's one).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// A kubeconfig file pointing at this apiserver, namespace `default`.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// The token the apiserver presents to kubelets; only for [`Cluster::for_kubelets`].
    pub fn kubelet_token(&self) -> &str {
        self.config
            .kubelet_token
            .as_deref()
            .expect("a cluster started with Cluster::for_kubelets")
    }

    /// Run `future` (a component's main loop) until the cluster drops.
    pub fn spawn<F>(&mut self, future: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.push(Task::spawn(future));
    }

    /// Stop the apiserver (open watches are cut) and wait until its port refuses connections.
    pub async fn stop_apiserver(&self) {
        self.server.shutdown();
        let addr = self.server.addr;
        wait_for(30, "the apiserver's port to close", || async {
            std::net::TcpStream::connect(addr).is_err().then_some(())
        })
        .await;
    }

    /// Start the apiserver again on the same address and etcd data.
    pub async fn restart_apiserver(&mut self) {
        let addr = self.server.addr;
        self.server =
            TestServer::start_on(&self.etcd, &self.prefix, addr, self.config.clone()).await;
        self.client = client_for(&self.server.url);
    }

    /// A second apiserver on the same etcd data, on a fresh port: another writer that can change
    /// objects while the first apiserver is down.
    pub async fn second_apiserver(&self) -> (TestServer, kube::Client) {
        let server =
            TestServer::start_on(&self.etcd, &self.prefix, loopback(), self.config.clone()).await;
        let client = client_for(&server.url);
        (server, client)
    }

    /// kubectl aimed at this apiserver, its cache dir its own; add the arguments and run it.
    pub fn kubectl_command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(kubectl::kubectl());
        if self.kubectl_reads_kubeconfig {
            cmd.arg("--kubeconfig")
                .arg(self.kubeconfig())
                .env_remove("KUBECONFIG");
        } else {
            cmd.arg("--server")
                .arg(self.url())
                .env("KUBECONFIG", "/dev/null");
        }
        cmd.arg("--cache-dir")
            .arg(&self.cache)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Run the real kubectl against this server.
    pub async fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None).await
    }

    /// Run kubectl with `stdin` piped in (for `-f -`).
    pub async fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use tokio::io::AsyncWriteExt;
        let mut cmd = self.kubectl_command();
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run kubectl");
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).await.unwrap();
        }
        drop(input);
        child.wait_with_output().await.unwrap()
    }

    /// kubectl that must succeed; returns stdout.
    pub async fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run kubectl; returns (success, stdout + stderr).
    pub async fn kubectl_text(&self, args: &[&str]) -> (bool, String) {
        let out = self.kubectl(args).await;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }
}

/// Pods and Nodes, the objects most tests create and watch.
impl Cluster {
    /// Pods in `default`.
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

    /// Create a pod bound to `node` from a JSON spec fragment, labelled `app=<name>`.
    pub async fn create_pod(&self, name: &str, node: &str, spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        spec["nodeName"] = serde_json::json!(node);
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
            "spec": spec,
        }))
        .unwrap();
        self.pods()
            .create(&PostParams::default(), &pod)
            .await
            .expect("create pod")
    }

    /// Poll the pod until `f` holds; returns it. Panics after `secs` with its last status.
    pub async fn wait_pod(
        &self,
        name: &str,
        secs: u64,
        what: &str,
        mut f: impl FnMut(&Pod) -> bool,
    ) -> Pod {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut last = None;
        while Instant::now() < deadline {
            if let Ok(Some(p)) = self.pods().get_opt(name).await {
                if f(&p) {
                    return p;
                }
                last = Some(p);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "pod {name}: timed out waiting for {what}; last: {}",
            serde_json::to_string_pretty(&last.map(|p| p.status)).unwrap()
        );
    }

    /// Wait until pod `name` no longer exists; panics after `secs`.
    pub async fn wait_gone(&self, name: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.pods().get_opt(name).await.unwrap().is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("pod {name} still exists after {secs}s");
    }
}

/// A client for the apiserver at `url`.
pub fn client_for(url: &str) -> kube::Client {
    kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap()
}

fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A kubeconfig with one cluster, one (anonymous) user and a context using both.
fn kubeconfig(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\n\
         clusters:\n- name: e2e\n  cluster:\n    server: {url}\n\
         users:\n- name: e2e\n  user: {{}}\n\
         contexts:\n- name: e2e\n  context:\n    cluster: e2e\n    user: e2e\n    namespace: default\n\
         current-context: e2e\n"
    )
}
