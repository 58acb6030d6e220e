//! The proxy's rules on the real kernel, all inside network namespaces the test makes: a
//! "node" namespace joined by a veth pair to each of two "pod" namespaces, a tiny TCP server
//! in each pod answering its own name, and the rules of a ClusterIP Service (10.96.0.50:80 →
//! both pods' :8080, NodePort 30080) written into the node namespace by the proxy's own
//! `Syncer`. Connections from the node and from a pod (hairpin included) reach both pods, an
//! endpoint removed is no longer reached after the next sync, a Service without endpoints is
//! refused at once, and `minik8s-proxy --cleanup` leaves no chain of ours. The root
//! namespace's rules are compared before and after: the test never touches them.
//!
//! ```text
//!   node ns: v1 10.244.1.1/24 ── eth0 10.244.1.2  pod-1 ns (:8080 answers "pod-1")
//!            v2 10.244.2.1/24 ── eth0 10.244.2.2  pod-2 ns (:8080 answers "pod-2")
//! ```

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use proxy::model::{service_ports, ServicePort};
use proxy::rules::RulesConfig;
use proxy::sync::{Iptables, Syncer};
use serde_json::json;

mod common;
use common::Netns;

/// A TCP server on :8080 answering `name` to every connection, until dropped.
struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(ns: &Netns, name: &'static str) -> Server {
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

/// Connect to `addr` from namespace `from` `tries` times; the names that answered.
fn answers(from: &Netns, addr: &str, tries: usize) -> Vec<String> {
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

fn distinct(names: &[String]) -> BTreeSet<&str> {
    names.iter().map(String::as_str).collect()
}

/// The root namespace's rules without the timestamps and counters that change by themselves.
fn root_rules() -> String {
    let out = Command::new("iptables-save").output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| match (l.starts_with(':'), l.rfind(" [")) {
            (true, Some(i)) => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn services() -> Vec<Service> {
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

fn web_slice(ips: &[&str]) -> EndpointSlice {
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

fn ports(services: &[Service], slices: &[EndpointSlice]) -> Vec<ServicePort> {
    service_ports(services, slices)
}

#[test]
fn a_cluster_ip_spreads_follows_its_endpoints_and_cleans_up() {
    let root_before = root_rules();
    let node = Netns::new("node");
    let pods = [Netns::new("pod1"), Netns::new("pod2")];
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
    // The node needs a route to the Service range for its own connections to leave at all;
    // the DNAT then sends them to the pod.
    node.ip(&["route", "add", "10.96.0.0/12", "dev", "v1"]);
    // The node routes between its pods (a namespace's own setting, not the host's).
    let forward = Command::new("ip")
        .args([
            "netns",
            "exec",
            &node.name,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ])
        .status()
        .unwrap();
    assert!(forward.success());
    let servers = [
        Server::start(&pods[0], "pod-1"),
        Server::start(&pods[1], "pod-2"),
    ];

    let mut syncer = Syncer::new(
        Iptables::in_netns(&node.path()),
        RulesConfig {
            node_ip: Some("10.244.1.1".parse().unwrap()),
            cluster_cidr: Some("10.244.0.0/16".into()),
        },
    );
    let services = services();

    // Both endpoints ready: 40 connections reach both pods (all on one: 2^-39).
    let both = ports(&services, &[web_slice(&["10.244.1.2", "10.244.2.2"])]);
    syncer.sync(&both).unwrap();
    let saved = node.iptables_save();
    assert!(saved.contains("-j MINIK8S-SERVICES"), "{saved}");
    let names = answers(&node, "10.96.0.50:80", 40);
    assert_eq!(distinct(&names), BTreeSet::from(["pod-1", "pod-2"]));
    // The NodePort on the node's address leads to the same pods.
    let names = answers(&node, "10.244.1.1:30080", 40);
    assert_eq!(distinct(&names), BTreeSet::from(["pod-1", "pod-2"]));
    // From a pod, through the node (PREROUTING), both pods answer, pod-1 too: a hairpin
    // connection to itself, which works only because it is masqueraded.
    let names = answers(&pods[0], "10.96.0.50:80", 40);
    assert_eq!(distinct(&names), BTreeSet::from(["pod-1", "pod-2"]));

    // A Service without endpoints is refused at once, not left to time out.
    let refused = node
        .spawn(|| {
            let start = Instant::now();
            let addr = "10.96.0.51:80".parse().unwrap();
            let result = TcpStream::connect_timeout(&addr, Duration::from_secs(3));
            (result.map(drop).map_err(|e| e.kind()), start.elapsed())
        })
        .join()
        .unwrap();
    assert_eq!(refused.0, Err(ErrorKind::ConnectionRefused));
    assert!(refused.1 < Duration::from_secs(1), "took {:?}", refused.1);

    // pod-2 leaves the slice: after the next sync it gets no connection, and its chain is gone.
    let one = ports(&services, &[web_slice(&["10.244.1.2"])]);
    syncer.sync(&one).unwrap();
    let names = answers(&node, "10.96.0.50:80", 20);
    assert_eq!(distinct(&names), BTreeSet::from(["pod-1"]));
    let saved = node.iptables_save();
    assert_eq!(saved.matches(":MINIK8S-SEP-").count(), 1, "{saved}");
    // The jumps from the built-in chains were not added a second time.
    assert_eq!(saved.matches("-A PREROUTING").count(), 1, "{saved}");

    // The Service deleted: its chains go with the next sync.
    syncer.sync(&ports(&services[1..], &[])).unwrap();
    let saved = node.iptables_save();
    assert!(!saved.contains("MINIK8S-SVC-"), "{saved}");
    assert!(!saved.contains("MINIK8S-SEP-"), "{saved}");

    // A fresh syncer (a restarted proxy) reads the kernel and writes the same rules again.
    let mut restarted = Syncer::new(Iptables::in_netns(&node.path()), RulesConfig::default());
    restarted.sync(&both).unwrap();
    let names = answers(&node, "10.96.0.50:80", 40);
    assert_eq!(distinct(&names), BTreeSet::from(["pod-1", "pod-2"]));

    // `minik8s-proxy --cleanup` in the node namespace: nothing of ours is left, and a
    // second cleanup finds nothing.
    let status = Command::new("ip")
        .args([
            "netns",
            "exec",
            &node.name,
            env!("CARGO_BIN_EXE_minik8s-proxy"),
            "--cleanup",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let saved = node.iptables_save();
    assert!(!saved.contains("MINIK8S"), "{saved}");
    assert!(!restarted.cleanup().unwrap());

    drop(servers);
    drop(pods);
    drop(node);
    assert_eq!(
        root_rules(),
        root_before,
        "the root namespace's rules changed"
    );
}

/// The sync loop: nothing is written before the caches are synced (an empty list would delete
/// every rule), and a burst of changes within the debounce becomes one transaction.
#[test]
fn a_burst_of_changes_is_one_transaction() {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;

    let node = Netns::new("loop");
    let synced = Arc::new(AtomicBool::new(false));
    let snapshots = Arc::new(AtomicUsize::new(0));
    let wanted = Arc::new(Mutex::new(ports(
        &services(),
        &[web_slice(&["10.244.1.2", "10.244.2.2"])],
    )));
    let changed = Arc::new(tokio::sync::Notify::new());
    let snapshot = {
        let (synced, snapshots, wanted) = (synced.clone(), snapshots.clone(), wanted.clone());
        move || {
            if !synced.load(Ordering::SeqCst) {
                return None;
            }
            snapshots.fetch_add(1, Ordering::SeqCst);
            Some(wanted.lock().unwrap().clone())
        }
    };
    let syncer = Syncer::new(Iptables::in_netns(&node.path()), RulesConfig::default());
    let periods = proxy::sync::Periods {
        min_sync: Duration::from_millis(50),
        resync: Duration::from_secs(3600),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let task = runtime.spawn(proxy::sync::run(syncer, changed.clone(), snapshot, periods));
    let settle = || std::thread::sleep(Duration::from_millis(400));

    changed.notify_one();
    settle();
    assert!(!node.iptables_save().contains("MINIK8S"));

    synced.store(true, Ordering::SeqCst);
    for _ in 0..20 {
        changed.notify_one();
    }
    settle();
    assert_eq!(snapshots.load(Ordering::SeqCst), 1);
    let saved = node.iptables_save();
    assert_eq!(saved.matches(":MINIK8S-SEP-").count(), 2, "{saved}");

    *wanted.lock().unwrap() = ports(&services(), &[web_slice(&["10.244.1.2"])]);
    changed.notify_one();
    settle();
    assert_eq!(snapshots.load(Ordering::SeqCst), 2);
    let saved = node.iptables_save();
    assert_eq!(saved.matches(":MINIK8S-SEP-").count(), 1, "{saved}");
    task.abort();
}
