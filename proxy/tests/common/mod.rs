//! What the proxy's integration tests (and its benchmark) share: network namespaces of the
//! test's own, the small "node and two pods" network both data paths are tested on, a TCP
//! server per pod, the objects of the test Services, and the root namespace's rules to
//! compare before and after.
//!
//! ```text
//!   node ns: v1 10.244.1.1/24 ── eth0 10.244.1.2  pod-1 ns (:8080 answers "pod-1")
//!            v2 10.244.2.1/24 ── eth0 10.244.2.2  pod-2 ns (:8080 answers "pod-2")
//! ```

// Each test crate uses a part of it.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use nix::sched::{setns, CloneFlags};
use proxy::model::{service_ports, ServicePort};
use proxy::sync::Runner;
use serde_json::json;

/// `ip ARGS`, which must succeed.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace of the test's own (`ip netns add`), deleted on drop with its veths.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(role: &str) -> Netns {
        let name = format!("mk8s-px-{}-{role}", std::process::id());
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Where the proxy's commands run for this namespace.
    pub fn runner(&self) -> Runner {
        Runner::in_netns(&self.path())
    }

    /// `ip -n NS ARGS`.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// `ip netns exec NS PROGRAM ARGS`, which must succeed.
    pub fn exec(&self, program: &str, args: &[&str]) {
        let status = Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "{program} {args:?} in {}", self.name);
    }

    /// Run `f` on a new thread inside this namespace.
    pub fn spawn<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> JoinHandle<T> {
        let file = File::open(self.path()).unwrap();
        std::thread::spawn(move || {
            setns(&file, CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
    }

    /// `iptables-save` inside this namespace.
    pub fn iptables_save(&self) -> String {
        self.runner().iptables_save().unwrap()
    }

    /// `nft list ruleset` inside this namespace.
    pub fn nft_ruleset(&self) -> String {
        self.runner().nft(&["list", "ruleset"], None).unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A TCP server on :8080 answering `name` to every connection, until dropped.
pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(ns: &Netns, name: &'static str) -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = ns.spawn(move || {
            let listener = TcpListener::bind("0.0.0.0:8080").unwrap();
            listener.set_nonblocking(true).unwrap();
            ready_tx.send(()).unwrap();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let _ = conn.write_all(name.as_bytes());
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            }
        });
        ready_rx.recv().unwrap();
        Server {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The node and its two pods, each pod serving its name on :8080 (the picture at the top).
pub struct PodNetwork {
    pub node: Netns,
    pub pods: [Netns; 2],
    servers: Vec<Server>,
}

impl PodNetwork {
    /// Namespaces named after `role` (tests in one binary run in parallel).
    pub fn new(role: &str) -> PodNetwork {
        let node = Netns::new(&format!("{role}-node"));
        let pods = [
            Netns::new(&format!("{role}-pod1")),
            Netns::new(&format!("{role}-pod2")),
        ];
        for (i, pod) in pods.iter().enumerate() {
            let n = i + 1;
            let veth = format!("v{n}");
            node.ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &pod.name,
            ]);
            node.ip(&["addr", "add", &format!("10.244.{n}.1/24"), "dev", &veth]);
            node.ip(&["link", "set", &veth, "up"]);
            pod.ip(&["addr", "add", &format!("10.244.{n}.2/24"), "dev", "eth0"]);
            pod.ip(&["link", "set", "eth0", "up"]);
            pod.ip(&["route", "add", "default", "via", &format!("10.244.{n}.1")]);
        }
        // The node needs a route to the Service range for its own connections to leave at
        // all; the DNAT then sends them to the pod.
        node.ip(&["route", "add", "10.96.0.0/12", "dev", "v1"]);
        // The node routes between its pods (a namespace's own setting, not the host's).
        node.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
        let servers = vec![
            Server::start(&pods[0], "pod-1"),
            Server::start(&pods[1], "pod-2"),
        ];
        PodNetwork {
            node,
            pods,
            servers,
        }
    }
}

/// Connect to `addr` from namespace `from` `tries` times; the names that answered.
pub fn answers(from: &Netns, addr: &str, tries: usize) -> Vec<String> {
    let addr: SocketAddr = addr.parse().unwrap();
    from.spawn(move || {
        (0..tries)
            .map(|_| {
                let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                    .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
                conn.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut name = String::new();
                conn.read_to_string(&mut name).unwrap();
                name
            })
            .collect()
    })
    .join()
    .unwrap()
}

/// The distinct names among `answers`.
pub fn distinct(names: &[String]) -> BTreeSet<&str> {
    names.iter().map(String::as_str).collect()
}

/// Connect to `addr` from `from` once: the error kind (Ok if it connected) and how long it
/// took. A refused connection must fail at once, not time out.
pub fn connect_once(from: &Netns, addr: &str) -> (Result<(), ErrorKind>, Duration) {
    let addr: SocketAddr = addr.parse().unwrap();
    from.spawn(move || {
        let start = Instant::now();
        let result = TcpStream::connect_timeout(&addr, Duration::from_secs(3));
        (result.map(drop).map_err(|e| e.kind()), start.elapsed())
    })
    .join()
    .unwrap()
}

/// `minik8s-proxy ARGS` (the binary of this build) inside `ns`, which must succeed.
pub fn proxy_binary(ns: &Netns, args: &[&str]) {
    ns.exec(env!("CARGO_BIN_EXE_minik8s-proxy"), args);
}

/// The root namespace's rules, both `iptables-save` and `nft list ruleset` (which shows
/// iptables-nft's tables as well), without the timestamps and counters that change by
/// themselves.
pub fn root_rules() -> String {
    let save = Command::new("iptables-save").output().unwrap();
    assert!(save.status.success());
    let mut rules: Vec<String> = String::from_utf8_lossy(&save.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match (l.starts_with(':'), l.rfind(" [")) {
            (true, Some(i)) => l[..i].to_string(),
            _ => l.to_string(),
        })
        .collect();
    let nft = Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .unwrap();
    assert!(nft.status.success());
    rules.extend(
        String::from_utf8_lossy(&nft.stdout)
            .lines()
            .map(without_counter_values),
    );
    rules.join("\n")
}

/// `... counter packets 3 bytes 180 ...` → `... counter ...`.
fn without_counter_values(line: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        if (words[i] == "packets" || words[i] == "bytes")
            && words.get(i + 1).is_some_and(|n| n.parse::<u64>().is_ok())
        {
            i += 2;
            continue;
        }
        out.push(words[i]);
        i += 1;
    }
    out.join(" ")
}

/// `default/web` (10.96.0.50:80 → targetPort 8080, NodePort 30080) and `default/nothing`
/// (10.96.0.51:80, no endpoints ever).
pub fn services() -> Vec<Service> {
    let web = json!({
        "metadata": {"namespace": "default", "name": "web"},
        "spec": {"type": "NodePort", "clusterIP": "10.96.0.50",
                 "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}]}
    });
    let empty = json!({
        "metadata": {"namespace": "default", "name": "nothing"},
        "spec": {"clusterIP": "10.96.0.51", "ports": [{"port": 80}]}
    });
    vec![
        serde_json::from_value(web).unwrap(),
        serde_json::from_value(empty).unwrap(),
    ]
}

/// web's EndpointSlice with these ready pod IPs.
pub fn web_slice(ips: &[&str]) -> EndpointSlice {
    let endpoints: Vec<_> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": "default", "name": "web-abcde",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"port": 8080, "protocol": "TCP"}]
    }))
    .unwrap()
}

/// The model of these objects.
pub fn ports(services: &[Service], slices: &[EndpointSlice]) -> Vec<ServicePort> {
    service_ports(services, slices)
}
