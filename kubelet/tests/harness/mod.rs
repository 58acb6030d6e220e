//! Harness for the kubelet tests: a private etcd + apiserver (in-process) and the real
//! `minik8s-kubelet` binary as a process with its own node name and root dir. Dropping a
//! `Kubelet` kills the process (by pid) and force-removes every container and sandbox under
//! its root, its pod network (veths, bridge, iptables rules), then the root itself.
//! `TestNet` picks a bridge name and a /24 of its own for a test that runs a pod network.
#![allow(dead_code)]

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use apiserver::server::ServerConfig;
pub use apiserver::testing::{EtcdProcess, TestServer};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use runtime::Runtime;

pub const BIN: &str = env!("CARGO_BIN_EXE_minik8s-kubelet");

pub fn rand_hex() -> String {
    runtime::random_hex(4)
}

/// etcd + apiserver.
pub struct Cluster {
    pub server: TestServer,
    pub etcd: EtcdProcess,
    pub cache: PathBuf,
    /// What the apiserver presents to kubelets.
    pub kubelet_token: String,
    /// One client for the whole cluster: building one loads the host's root certificates
    /// (milliseconds of CPU), which a benchmark creating pods must not pay per pod.
    client: kube::Client,
}

impl Cluster {
    pub async fn start() -> Cluster {
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
        let cache = std::env::temp_dir().join(format!("minik8s-kubectl-cache-{}", rand_hex()));
        let client =
            kube::Client::try_from(kube::Config::new(server.url.parse().unwrap())).unwrap();
        Cluster {
            server,
            etcd,
            cache,
            kubelet_token,
            client,
        }
    }

    pub fn url(&self) -> &str {
        &self.server.url
    }

    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client(), "default")
    }

    /// Run the real kubectl against this server.
    pub async fn kubectl(&self, args: &[&str]) -> std::process::Output {
        tokio::process::Command::new(apiserver::testing::kubectl())
            .arg("--server")
            .arg(self.url())
            .arg("--cache-dir")
            .arg(&self.cache)
            .env("KUBECONFIG", "/dev/null")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run kubectl")
    }

    /// Create a pod bound to `node` from a JSON spec fragment.
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

    /// Poll the pod until `f` holds; returns it. Panics after `secs`.
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

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.cache);
    }
}

pub fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

pub fn container_status(p: &Pod, i: usize) -> Option<&k8s_openapi::api::core::v1::ContainerStatus> {
    p.status.as_ref()?.container_statuses.as_ref()?.get(i)
}

pub fn condition(p: &Pod, t: &str) -> Option<String> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == t)
        .map(|c| c.status.clone())
}

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running kubelet process.
pub struct Kubelet {
    pub node: String,
    pub root: PathBuf,
    pub port: u16,
    pub token: String,
    args: Vec<String>,
    child: Option<Child>,
}

impl Kubelet {
    /// Start a kubelet for a fresh node against `cluster`.
    pub fn start(cluster: &Cluster, extra: &[&str]) -> Kubelet {
        let id = rand_hex();
        let node = format!("node-{id}");
        let root = std::env::temp_dir().join(format!("minik8s-kubelet-{id}"));
        fs::create_dir_all(&root).unwrap();
        let port = free_port();
        let token = cluster.kubelet_token.clone();
        fs::write(root.join("token"), &token).unwrap();
        let mut args: Vec<String> = vec![
            "--server".into(),
            cluster.url().into(),
            "--node-name".into(),
            node.clone(),
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
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut k = Kubelet {
            node,
            root,
            port,
            token,
            args,
            child: None,
        };
        k.spawn();
        k
    }

    /// (Re)start the process with the same flags.
    pub fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("kubelet.log"))
            .unwrap();
        // a benchmark may compare another build of the kubelet (and so of its shim)
        let bin = std::env::var_os("MINIK8S_KUBELET_BIN").unwrap_or_else(|| BIN.into());
        let child = Command::new(bin)
            .args(&self.args)
            .env("RUST_LOG", "info,kube=warn,kubelet=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kubelet");
        self.child = Some(child);
    }

    /// SIGTERM the process and wait for it to exit (at most 20 s, then SIGKILL).
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    panic!("kubelet did not exit within 20 s of SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// SIGKILL the process (containers keep running: they belong to their shims).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn runtime(&self) -> Runtime {
        Runtime::open(&self.root.join("runtime")).unwrap()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.root.join("kubelet.log")).unwrap_or_default()
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
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
            let _ = runtime::network::cleanup(&rt.root.join("network"));
            for sb in rt.sandbox_ids() {
                let _ = rt.remove_sandbox(&sb, true);
            }
            let _ = std::fs::remove_dir_all(&rt.state);
        }
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Host pid of the pod's container `name` (latest attempt), from the runtime.
pub fn container_pid(rt: &Runtime, uid: &str, name: &str) -> Option<i32> {
    let mut best: Option<(u32, String)> = None;
    for id in rt.container_ids() {
        let spec = rt.spec(&id).ok()?;
        if let Some((u, c, a)) = kubelet::container_config::parse_runtime_name(&spec.name) {
            if u == uid && c == name && best.as_ref().is_none_or(|(b, _)| a > *b) {
                best = Some((a, id));
            }
        }
    }
    rt.state(&best?.1).ok()?.pid
}

/// A bridge name and a /24 of the test's own (`10.244.200.0/24` and up, not used on this host),
/// so parallel tests never share either. Dropping it removes the bridge and our iptables
/// chains for it, even if the test failed half-way.
pub struct TestNet {
    pub bridge: String,
    pub cidr: String,
    /// The third octet: the range is 10.244.<n>.0/24.
    pub octet: u8,
}

static NEXT_NET: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl TestNet {
    pub fn new() -> TestNet {
        let used = String::from_utf8_lossy(
            &Command::new("ip")
                .args(["-4", "-o", "addr"])
                .output()
                .expect("ip addr")
                .stdout,
        )
        .into_owned();
        for _ in 0..50 {
            let n = NEXT_NET.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let octet = 200 + ((std::process::id() + n * 7) % 50) as u8;
            if used.contains(&format!("10.244.{octet}.")) {
                continue;
            }
            return TestNet {
                bridge: format!("mkt{}", rand_hex()),
                cidr: format!("10.244.{octet}.0/24"),
                octet,
            };
        }
        panic!("no free 10.244.200-249.0/24 range on this host");
    }

    /// Kubelet flags for this network.
    pub fn flags(&self) -> Vec<String> {
        vec![
            "--pod-cidr".into(),
            self.cidr.clone(),
            "--bridge-name".into(),
            self.bridge.clone(),
        ]
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        use runtime::network::{iptables, link};
        iptables::teardown(&self.bridge);
        let b = self.bridge.clone();
        let _ = link::on_thread(None, move |h| async move { link::delete(&h, &b).await });
    }
}

/// Whether a network interface of that name exists in the host namespace.
pub fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", "dev", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
