//! A node for tests: the real kubelet binary as a process, with its own node name, root dir
//! (images, container state, pod volumes) and, when asked, its own pod network, against a
//! test [`Cluster`]. Several kubelets can share a host this way, as nodes of one cluster or of
//! parallel tests.
//!
//! Dropping a [`Kubelet`] kills the process and force-removes every container and sandbox
//! under its root (processes, sandbox mounts, cgroups), its pod network (veths, bridge,
//! iptables rules), its cgroup root, then the root dir itself: containers outlive a killed
//! kubelet (each belongs to its shim), so the test must remove them. Each kubelet puts its pod
//! cgroups under a cgroup root of its own, named after its root dir ([`cgroup_root`]), so that
//! two test nodes never share a cgroup. Read next: `net.rs`, `leftovers.rs`.

mod leftovers;
mod net;

use std::ffi::OsString;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use runtime::wait::alive;
use runtime::Runtime;

pub use leftovers::assert_nothing_left;
pub use net::{link_exists, random_pod_cidr, TestNet};

use crate::Cluster;

/// A running (or killed) kubelet process: one node.
pub struct Kubelet {
    pub node: String,
    pub root: PathBuf,
    /// The port of its HTTPS API (logs, exec, metrics) on 127.0.0.1.
    pub port: u16,
    /// The bearer token its API asks for (the cluster's kubelet token).
    pub token: String,
    /// The node's own pod bridge, when started with `--bridge-name`.
    pub bridge: Option<String>,
    bin: OsString,
    args: Vec<String>,
    child: Option<Child>,
}

impl Kubelet {
    /// Start kubelet `bin` for node `node` against `cluster` (a [`Cluster::for_kubelets`]),
    /// renewing its Lease every second, with `extra` flags. Its root is a fresh dir named after
    /// the node in the temp dir.
    pub fn start(
        bin: impl Into<OsString>,
        cluster: &Cluster,
        node: &str,
        extra: &[&str],
    ) -> Kubelet {
        let token = cluster.kubelet_token().to_string();
        Kubelet::start_with(bin, node, &token, &["--server", cluster.url()], extra)
    }

    /// Start kubelet `bin` for node `node` that reaches the apiserver as `connect` says
    /// (`--server URL`, or a join: `--server URL --bootstrap-token T --ca-cert-hash H`), its
    /// API asking for `api_token`; otherwise as [`Kubelet::start`].
    pub fn start_with(
        bin: impl Into<OsString>,
        node: &str,
        api_token: &str,
        connect: &[&str],
        extra: &[&str],
    ) -> Kubelet {
        let root = std::env::temp_dir().join(format!("minik8s-kubelet-{node}"));
        fs::create_dir_all(&root).unwrap();
        let port = crate::free_port();
        let token = api_token.to_string();
        fs::write(root.join("token"), &token).unwrap();
        let mut args: Vec<String> = connect.iter().map(|f| f.to_string()).collect();
        args.extend(flags(node, &root, port));
        args.extend(extra.iter().map(|f| f.to_string()));
        let bridge = extra
            .iter()
            .position(|f| *f == "--bridge-name")
            .and_then(|i| extra.get(i + 1).map(|b| b.to_string()));
        let mut k = Kubelet {
            node: node.into(),
            root,
            port,
            token,
            bridge,
            bin: bin.into(),
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
        let child = Command::new(&self.bin)
            .args(&self.args)
            .env_remove("KUBECONFIG")
            // `kube=warn` would also silence `kubelet::*`: a directive matches target prefixes
            .env("RUST_LOG", "info,kube_client=warn,kube_runtime=warn")
            // an environment variable, not `--cgroup-root`: older builds (a benchmark's
            // baseline) ignore it rather than refuse to start
            .env("MINIK8S_CGROUP_ROOT", cgroup_root(&self.root))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {:?}: {e}", self.bin));
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

    /// SIGKILL the kubelet: the node "crashes", but its containers keep running (each belongs
    /// to its shim, not to the kubelet).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The node's container runtime, opened on its root.
    pub fn runtime(&self) -> Runtime {
        let mut rt = Runtime::open(&self.root.join("runtime")).unwrap();
        rt.cgroup_parent = cgroup_root(&self.root);
        rt
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.root.join("kubelet.log")).unwrap_or_default()
    }

    /// Host pid of pod `uid`'s container `name` (latest attempt) on this node, if it runs.
    pub fn container_pid(&self, uid: &str, name: &str) -> Option<i32> {
        container_pid(&self.runtime(), uid, name).filter(|p| alive(*p))
    }

    /// Force-remove what the kubelet left under its root: containers, the pod network,
    /// sandboxes, the runtime's state on tmpfs.
    fn remove_leftovers(&self) {
        let Ok(mut rt) = Runtime::open(&self.root.join("runtime")) else {
            return;
        };
        rt.cgroup_parent = cgroup_root(&self.root);
        for id in rt.container_ids() {
            let _ = rt.remove(&id, true);
        }
        let _ = runtime::network::cleanup(&rt.root.join("network"));
        for sb in rt.sandbox_ids() {
            let _ = rt.remove_sandbox(&sb, true);
        }
        let _ = fs::remove_dir_all(&rt.state);
        rt.cgroups.remove_if_empty(&rt.cgroup_parent);
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
        self.remove_leftovers();
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// The cgroup root of the test kubelet whose root dir is `root`: the dir's name
/// (`minik8s-kubelet-NODE`), relative to the hierarchy root.
pub fn cgroup_root(root: &std::path::Path) -> PathBuf {
    PathBuf::from(root.file_name().expect("a kubelet root dir has a name"))
}

/// The flags every test kubelet runs with: its node, root, API port and token; a Lease
/// renewed and a crashed container restarted within a second.
fn flags(node: &str, root: &std::path::Path, port: u16) -> Vec<String> {
    vec![
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
    ]
}

/// Host pid of the pod's container `name` (latest attempt), from the runtime's records
/// (the process may have exited since).
pub fn container_pid(rt: &Runtime, uid: &str, name: &str) -> Option<i32> {
    let mut best: Option<(u32, String)> = None;
    for id in rt.container_ids() {
        let Ok(spec) = rt.spec(&id) else { continue };
        if let Some((u, c, a)) = kubelet::container_config::parse_runtime_name(&spec.name) {
            if u == uid && c == name && best.as_ref().is_none_or(|(b, _)| a > *b) {
                best = Some((a, id));
            }
        }
    }
    rt.state(&best?.1).ok()?.pid
}
