//! The iptables mode's rules on the real kernel, all inside network namespaces the test makes
//! (`common::PodNetwork`: a node namespace joined by a veth pair to each of two pod
//! namespaces, each pod answering its own name on :8080), and the rules of a ClusterIP Service
//! (10.96.0.50:80 → both pods' :8080, NodePort 30080) written into the node namespace by the
//! proxy's own `Syncer`. Connections from the node and from a pod (hairpin included) reach both
//! pods, an endpoint removed is no longer reached after the next sync, a Service without
//! endpoints is refused at once, and `minik8s-proxy --cleanup` leaves no chain of ours. The
//! root namespace's rules are compared before and after: the test never touches them.
//! `tests/nftables.rs` walks the same story in the nftables mode.

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::time::Duration;

use proxy::rules::RulesConfig;
use proxy::sync::{ProxyMode, Syncer};

mod common;
use common::{
    answers, connect_once, distinct, ports, proxy_binary, root_rules, services, web_slice,
    PodNetwork,
};

#[test]
fn a_cluster_ip_spreads_follows_its_endpoints_and_cleans_up() {
    let root_before = root_rules();
    let net = PodNetwork::new("ipt");
    let (node, pods) = (&net.node, &net.pods);

    let mut syncer = Syncer::new(
        node.runner(),
        ProxyMode::Iptables,
        RulesConfig {
            node_ip: Some("10.244.1.1".parse().unwrap()),
            cluster_cidr: Some("10.244.0.0/16".into()),
        },
    );
    let services = services();

    // Both endpoints ready: 40 connections reach both pods (all on one: 2^-39).
    let both = ports(&services, &[web_slice(&["10.244.1.2", "10.244.2.2"])]);
    let stats = syncer.sync(&both).unwrap();
    assert!(stats.full);
    let saved = node.iptables_save();
    assert!(saved.contains("-j MINIK8S-SERVICES"), "{saved}");
    let names = answers(node, "10.96.0.50:80", 40);
    assert_eq!(distinct(&names), BTreeSet::from(["pod-1", "pod-2"]));
    // The NodePort on the node's address leads to the same pods.
    let names = answers(node, "10.244.1.1:30080", 40);
    assert_eq!(distinct(&names), BTreeSet::from(["pod-1", "pod-2"]));
    // From a pod, through the node (PREROUTING), both pods answer, pod-1 too: a hairpin
    // connection to itself, which works only because it is masqueraded.
    let names = answers(&pods[0], "10.96.0.50:80", 40);
    assert_eq!(distinct(&names), BTreeSet::from(["pod-1", "pod-2"]));

    // A Service without endpoints is refused at once, not left to time out.
    let (result, took) = connect_once(node, "10.96.0.51:80");
    assert_eq!(result, Err(ErrorKind::ConnectionRefused));
    assert!(took < Duration::from_secs(1), "took {took:?}");

    // pod-2 leaves the slice: after the next sync it gets no connection, and its chain is gone.
    let one = ports(&services, &[web_slice(&["10.244.1.2"])]);
    assert!(!syncer.sync(&one).unwrap().full);
    let names = answers(node, "10.96.0.50:80", 20);
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
    let mut restarted = Syncer::new(node.runner(), ProxyMode::Iptables, RulesConfig::default());
    restarted.sync(&both).unwrap();
    let names = answers(node, "10.96.0.50:80", 40);
    assert_eq!(distinct(&names), BTreeSet::from(["pod-1", "pod-2"]));

    // `minik8s-proxy --cleanup` in the node namespace: nothing of ours is left, and a
    // second cleanup finds nothing.
    proxy_binary(node, &["--cleanup"]);
    let saved = node.iptables_save();
    assert!(!saved.contains("MINIK8S"), "{saved}");
    assert!(!restarted.cleanup().unwrap());

    drop(net);
    assert_eq!(
        root_rules(),
        root_before,
        "the root namespace's rules changed"
    );
}
