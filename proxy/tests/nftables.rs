//! The nftables mode's table on the real kernel, all inside network namespaces the test makes
//! (`common::PodNetwork`, the same node and two pods as `tests/iptables.rs`), and the same
//! story: a ClusterIP Service (10.96.0.50:80 → both pods' :8080, NodePort 30080) reached from
//! the node and from a pod (hairpin included), an endpoint removed no longer reached after
//! the next sync (which wrote only elements), a Service without endpoints refused at once, a
//! deleted Service's chain and map gone from `nft list ruleset`, and `minik8s-proxy --cleanup`
//! removing both modes' rules. The root namespace's rules are compared before and after.
//!
//! Then bad input: whatever the model hands over (odd names, clashing ClusterIPs and
//! NodePorts, a targetPort no endpoint has, a selector matching nothing) renders to text that
//! `nft` accepts, whole and as a change from the previous state; and the sync loop: nothing
//! written before the caches are synced, a change after a quiet spell synced at once, a burst
//! right after a sync folded into one more transaction.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use proxy::model::{service_ports, Protocol, ServicePort, ServicePortName};
use proxy::nftables::{self, endpoints_map, service_chain};
use proxy::rules::RulesConfig;
use proxy::sync::{Periods, ProxyMode, Syncer};
use serde_json::json;

mod common;
use common::{
    answers, connect_once, distinct, ports, proxy_binary, root_rules, services, web_slice, Netns,
    PodNetwork,
};

fn config() -> RulesConfig {
    RulesConfig {
        node_ip: Some("10.244.1.1".parse().unwrap()),
        cluster_cidr: Some("10.244.0.0/16".into()),
    }
}

#[test]
fn a_cluster_ip_spreads_follows_its_endpoints_and_cleans_up() {
    let root_before = root_rules();
    let net = PodNetwork::new("nft");
    let (node, pods) = (&net.node, &net.pods);
    let mut syncer = Syncer::new(node.runner(), ProxyMode::Nftables, config());
    let services = services();

    // Both endpoints ready: 40 connections reach both pods (all on one: 2^-39).
    let both = ports(&services, &[web_slice(&["10.244.1.2", "10.244.2.2"])]);
    let web = both.iter().find(|p| p.name.name == "web").unwrap().clone();
    assert!(syncer.sync(&both).unwrap().full);
    let ruleset = node.nft_ruleset();
    assert!(ruleset.contains("table ip minik8s-proxy"), "{ruleset}");
    assert!(
        ruleset.contains(&format!("chain {}", service_chain(&web))),
        "{ruleset}"
    );
    let names = answers(node, "10.96.0.50:80", 40);
    assert_eq!(distinct(&names), BTreeSet::from(["pod-1", "pod-2"]));
    // The NodePort on the node's address leads to the same pods.
    let names = answers(node, "10.244.1.1:30080", 40);
    assert_eq!(distinct(&names), BTreeSet::from(["pod-1", "pod-2"]));
    // From a pod, through the node (prerouting), both pods answer, pod-1 too: a hairpin
    // connection to itself, which works only because it is masqueraded.
    let names = answers(&pods[0], "10.96.0.50:80", 40);
    assert_eq!(distinct(&names), BTreeSet::from(["pod-1", "pod-2"]));

    // A Service without endpoints is refused at once, not left to time out: from the node
    // (output) and from a pod (forward).
    for from in [node, &pods[1]] {
        let (result, took) = connect_once(from, "10.96.0.51:80");
        assert_eq!(
            result,
            Err(ErrorKind::ConnectionRefused),
            "from {}",
            from.name
        );
        assert!(took < Duration::from_secs(1), "took {took:?}");
    }

    // Nothing changed: nothing written.
    assert_eq!(syncer.sync(&both).unwrap().lines, 0);

    // pod-2 leaves the slice: the next sync rewrites web's chain (one endpoint fewer to
    // draw from: a flush and its three rules) and deletes two elements (pod-2 from web's
    // endpoint map and from the hairpin set), nothing else; pod-2 gets no connection after it.
    let one = ports(&services, &[web_slice(&["10.244.1.2"])]);
    let stats = syncer.sync(&one).unwrap();
    assert!(!stats.full);
    assert_eq!(stats.lines, 6, "{stats:?}");
    let names = answers(node, "10.96.0.50:80", 20);
    assert_eq!(distinct(&names), BTreeSet::from(["pod-1"]));
    let map = node
        .runner()
        .nft(
            &["list", "map", "ip", nftables::TABLE, &endpoints_map(&web)],
            None,
        )
        .unwrap();
    assert!(map.contains("0 : 10.244.1.2 . 8080"), "{map}");
    assert!(!node.nft_ruleset().contains("10.244.2.2"));

    // The Service deleted: its chain, map and elements go with the next sync.
    syncer.sync(&ports(&services[1..], &[])).unwrap();
    let ruleset = node.nft_ruleset();
    assert!(!ruleset.contains("default/web"), "{ruleset}");
    assert!(!ruleset.contains("10.96.0.50"), "{ruleset}");
    assert!(ruleset.contains("10.96.0.51"), "{ruleset}");

    // A fresh syncer (a restarted proxy) replaces the whole table: nothing twice.
    let mut restarted = Syncer::new(node.runner(), ProxyMode::Nftables, config());
    assert!(restarted.sync(&both).unwrap().full);
    let names = answers(node, "10.96.0.50:80", 40);
    assert_eq!(distinct(&names), BTreeSet::from(["pod-1", "pod-2"]));
    let ruleset = node.nft_ruleset();
    assert_eq!(ruleset.matches("table ip minik8s-proxy").count(), 1);
    assert_eq!(ruleset.matches("jump services").count(), 2, "{ruleset}");

    // The iptables mode's rules beside it (a node switched modes without a cleanup):
    // `minik8s-proxy --cleanup` removes both, and a second cleanup finds nothing.
    let mut iptables = Syncer::new(node.runner(), ProxyMode::Iptables, config());
    iptables.sync(&both).unwrap();
    assert!(node.iptables_save().contains("MINIK8S-SVC-"));
    proxy_binary(node, &["--cleanup"]);
    let ruleset = node.nft_ruleset();
    assert!(!ruleset.contains("minik8s-proxy"), "{ruleset}");
    assert!(!ruleset.contains("MINIK8S"), "{ruleset}");
    assert!(!node.iptables_save().contains("MINIK8S"));
    assert!(!restarted.cleanup().unwrap());

    drop(net);
    assert_eq!(
        root_rules(),
        root_before,
        "the root namespace's rules changed"
    );
}

/// A service port built by hand, for what a validating API never sends.
fn raw_port(ns: &str, name: &str, port_name: &str, ip: &str, port: u16) -> ServicePort {
    ServicePort {
        name: ServicePortName {
            namespace: ns.into(),
            name: name.into(),
            port: port_name.into(),
        },
        protocol: Protocol::Tcp,
        cluster_ip: ip.parse().unwrap(),
        port,
        node_port: None,
        endpoints: Vec::new(),
    }
}

fn service(value: serde_json::Value) -> Service {
    serde_json::from_value(value).unwrap()
}

fn slice(value: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(value).unwrap()
}

/// States one after the other, each from input no validating apiserver would accept, or from
/// Services that select nothing: every whole table and every change between two of them is
/// accepted by the kernel (applied for real, in a namespace of the test's own), and the
/// Services without usable endpoints are refused.
#[test]
fn bad_input_never_makes_a_transaction_fail() {
    let node = Netns::new("nft-bad");
    node.ip(&["addr", "add", "10.244.1.1/24", "dev", "lo"]);
    node.ip(&["route", "add", "10.96.0.0/12", "dev", "lo"]);

    // Through the model: a targetPort name no endpoint has, a selector that matches nothing
    // (no slice at all), a slice port without a number, UDP and SCTP ports.
    let named = service(json!({
        "metadata": {"namespace": "default", "name": "named"},
        "spec": {"clusterIP": "10.96.0.60", "type": "NodePort", "ports": [
            {"name": "http", "port": 80, "targetPort": "web", "nodePort": 30060},
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "sig", "port": 9, "protocol": "SCTP"}]}
    }));
    let nothing = service(json!({
        "metadata": {"namespace": "default", "name": "selects-nothing"},
        "spec": {"clusterIP": "10.96.0.61", "selector": {"app": "none"}, "ports": [{"port": 80}]}
    }));
    let other_port = slice(json!({
        "metadata": {"namespace": "default", "name": "named-x",
                     "labels": {"kubernetes.io/service-name": "named"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.1.9"]}, {"addresses": ["not-an-ip"]}],
        "ports": [{"name": "metrics", "port": 9090}, {"name": "http"},
                  {"name": "dns", "port": 5353, "protocol": "UDP"},
                  {"name": "sig", "port": 9999, "protocol": "SCTP"}]
    }));
    let from_model = service_ports([&named, &nothing], [&other_port]);
    assert_eq!(from_model.len(), 4);

    // By hand: odd and overlong names, two ports on one ClusterIP and port, one NodePort
    // twice, the same name twice, a single endpoint, a thousand endpoints, 0.0.0.0.
    let mut odd = raw_port(
        "Kube System",
        "web\"; flush ruleset",
        "HTTP",
        "10.96.0.70",
        80,
    );
    odd.endpoints = vec!["10.244.1.2:8080".parse().unwrap()];
    let mut long = raw_port(&"n".repeat(300), &"s".repeat(300), "p", "10.96.0.71", 80);
    long.endpoints = (0..1000u32)
        .map(|i| {
            format!("10.245.{}.{}:80", i / 250, i % 250 + 1)
                .parse()
                .unwrap()
        })
        .collect();
    let mut clash_a = raw_port("default", "a", "", "10.96.0.72", 80);
    clash_a.node_port = Some(30072);
    clash_a.endpoints = vec!["10.244.1.3:80".parse().unwrap()];
    let mut clash_b = raw_port("default", "b", "", "10.96.0.72", 80);
    clash_b.endpoints = vec!["10.244.1.4:80".parse().unwrap()];
    let mut clash_c = raw_port("default", "c", "", "10.96.0.73", 80);
    clash_c.node_port = Some(30072);
    let mut twice = clash_a.clone();
    twice.cluster_ip = "10.96.0.74".parse().unwrap();
    twice.node_port = None;
    let zero = raw_port("default", "zero", "", "0.0.0.0", 1);
    // Two ports that swap ClusterIPs and NodePorts in one change (each key's value now names
    // the other chain), one of them losing its endpoints and the other gaining them.
    let mut swap_a = raw_port("default", "swap-a", "", "10.96.0.80", 80);
    swap_a.node_port = Some(30080);
    swap_a.endpoints = vec!["10.244.1.5:80".parse().unwrap()];
    let mut swap_b = raw_port("default", "swap-b", "", "10.96.0.81", 80);
    swap_b.node_port = Some(30081);
    let swapped = |p: &ServicePort, ip: &str, node_port: u16, endpoints: &[&str]| {
        let mut p = p.clone();
        p.cluster_ip = ip.parse().unwrap();
        p.node_port = Some(node_port);
        p.endpoints = endpoints.iter().map(|e| e.parse().unwrap()).collect();
        p
    };

    let states: Vec<Vec<ServicePort>> = vec![
        from_model.clone(),
        vec![odd.clone(), long.clone()],
        vec![
            clash_a.clone(),
            clash_b.clone(),
            clash_c.clone(),
            twice.clone(),
            zero,
        ],
        vec![swap_a.clone(), swap_b.clone()],
        vec![
            swapped(&swap_a, "10.96.0.81", 30081, &[]),
            swapped(
                &swap_b,
                "10.96.0.80",
                30080,
                &["10.244.1.6:80", "10.244.1.5:80"],
            ),
        ],
        // every endpoint of the long one but one gone, the odd one without endpoints
        vec![
            {
                let mut l = long.clone();
                l.endpoints.truncate(1);
                l
            },
            {
                let mut o = odd.clone();
                o.endpoints.clear();
                o
            },
        ],
        from_model,
        Vec::new(),
    ];
    let configs = [
        config(),
        RulesConfig {
            node_ip: None,
            cluster_cidr: Some("garbage/99".into()),
        },
    ];
    for config in configs {
        let mut syncer = Syncer::new(node.runner(), ProxyMode::Nftables, config.clone());
        for (i, state) in states.iter().enumerate() {
            // The whole table passes nft's check, and so does the change from the last one.
            let whole = nftables::transaction(&nftables::render(state, &config), None);
            node.runner()
                .nft(&["-c", "-f", "-"], Some(&whole.text))
                .unwrap_or_else(|e| panic!("state {i}, whole: {e}"));
            syncer
                .sync(state)
                .unwrap_or_else(|e| panic!("state {i}, as a change: {e}"));
        }
    }

    // The model's state, applied: each of its ports without endpoints refused at once.
    let mut syncer = Syncer::new(node.runner(), ProxyMode::Nftables, config());
    syncer.sync(&states[0]).unwrap();
    for addr in ["10.96.0.60:80", "10.96.0.61:80", "10.244.1.1:30060"] {
        let (result, took) = connect_once(&node, addr);
        assert_eq!(result, Err(ErrorKind::ConnectionRefused), "{addr}");
        assert!(took < Duration::from_secs(1), "{addr}: {took:?}");
    }
}

/// The sync loop: nothing is written before the caches are synced (an empty list would delete
/// every rule); a change after a quiet spell is synced at once; changes within
/// `--min-sync-period` of a sync wait for its end and become one transaction.
#[test]
fn the_loop_syncs_at_once_then_at_most_once_per_period() {
    let node = Netns::new("loop");
    let synced = Arc::new(AtomicBool::new(false));
    let snapshots = Arc::new(AtomicUsize::new(0));
    let times = Arc::new(Mutex::new(Vec::new()));
    let wanted = Arc::new(Mutex::new(ports(
        &services(),
        &[web_slice(&["10.244.1.2", "10.244.2.2"])],
    )));
    let changed = Arc::new(tokio::sync::Notify::new());
    let snapshot = {
        let (synced, snapshots, wanted) = (synced.clone(), snapshots.clone(), wanted.clone());
        let times = times.clone();
        move || {
            if !synced.load(Ordering::SeqCst) {
                return None;
            }
            times.lock().unwrap().push(Instant::now());
            snapshots.fetch_add(1, Ordering::SeqCst);
            Some(wanted.lock().unwrap().clone())
        }
    };
    let syncer = Syncer::new(node.runner(), ProxyMode::Nftables, RulesConfig::default());
    let min_sync = Duration::from_secs(2);
    let periods = Periods {
        min_sync,
        resync: Duration::from_secs(3600),
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let task = runtime.spawn(proxy::sync::run(syncer, changed.clone(), snapshot, periods));
    let has = |needle: &str| node.nft_ruleset().contains(needle);
    let wait_for = |what: &str, cond: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !cond() {
            assert!(start.elapsed() < Duration::from_secs(10), "no {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
        start.elapsed()
    };

    changed.notify_one();
    std::thread::sleep(Duration::from_millis(400));
    assert!(!has("minik8s-proxy"));

    // The first change after a quiet spell: synced at once, not after the period.
    synced.store(true, Ordering::SeqCst);
    changed.notify_one();
    let took = wait_for("first sync", &|| has("10.244.2.2"));
    assert!(took < min_sync / 2, "took {took:?}");
    assert_eq!(snapshots.load(Ordering::SeqCst), 1);

    // A burst right after it: nothing before the period since the sync ends, then one sync.
    *wanted.lock().unwrap() = ports(&services(), &[web_slice(&["10.244.1.2"])]);
    // (Back to back: spread out, a starved test thread could stretch them past the period.)
    for _ in 0..20 {
        changed.notify_one();
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(has("10.244.2.2"), "synced before the period ended");
    wait_for("the burst's sync", &|| !has("10.244.2.2"));
    std::thread::sleep(Duration::from_millis(300));
    let t0 = times.lock().unwrap()[0];
    let at: Vec<Duration> = times.lock().unwrap().iter().map(|t| *t - t0).collect();
    assert_eq!(snapshots.load(Ordering::SeqCst), 2, "snapshots at {at:?}");
    task.abort();
}
