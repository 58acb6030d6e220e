//! `--route-pod-cidrs` (host-gw) on the real kernel: two "nodes", each a network namespace of
//! the test's own with an `eth0` on one lab subnet (a veth pair joins them) and a pod bridge
//! holding its pod range's gateway. The kubelet's reconcile runs inside node a's namespace;
//! the test reads the routes back with `ip`, sends a TCP connection along one, and checks that
//! the root namespace never saw any of it. Every namespace goes on drop, with its links and
//! routes, also when a test fails.

mod harness;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use harness::*;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kubelet::pod_routes::{self, Skip, ROUTE_PROTOCOL};
use serde_json::json;
use testkit::{wait_for, Task};

/// The routes in `ns` tagged with our protocol, as `ip` prints them.
fn our_routes(ns: &Netns) -> Vec<String> {
    routes_in(Some(ns), &ROUTE_PROTOCOL.to_string())
}

/// `ip -4 route show proto PROTO` in `ns` (the root namespace when None), one route a line.
fn routes_in(ns: Option<&Netns>, proto: &str) -> Vec<String> {
    let args = ["-4", "route", "show", "proto", proto];
    let out = match ns {
        Some(ns) => ns.ip(&args),
        None => ip(&args),
    };
    out.lines().map(|l| l.trim().to_string()).collect()
}

/// Two nodes, a and b, on the lab subnet 172.31.251.0/24, each with its pod bridge.
struct Lab {
    a: Netns,
    b: Netns,
}

impl Lab {
    fn new() -> Lab {
        let hex = rand_hex();
        let (a, b) = (
            Netns::new(format!("mkr{hex}a")),
            Netns::new(format!("mkr{hex}b")),
        );
        a.ip(&[
            "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", &b.name,
        ]);
        for (ns, addr, gw) in [
            (&a, "172.31.251.11/24", "10.244.1.1/24"),
            (&b, "172.31.251.12/24", "10.244.2.1/24"),
        ] {
            ns.ip(&["addr", "add", addr, "dev", "eth0"]);
            ns.ip(&["link", "set", "eth0", "up"]);
            ns.ip(&["link", "add", "minik8s0", "type", "bridge"]);
            ns.ip(&["addr", "add", gw, "dev", "minik8s0"]);
            ns.ip(&["link", "set", "minik8s0", "up"]);
        }
        Lab { a, b }
    }
}

fn node(name: &str, pod_cidr: &str, ip: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"podCIDR": pod_cidr},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]},
    }))
    .unwrap()
}

/// What the root namespace holds of ours: routes tagged with our protocol, and ip_forward.
fn root_view() -> (Vec<String>, String) {
    let forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    (routes_in(None, &ROUTE_PROTOCOL.to_string()), forward)
}

/// Connect from node a to node b's bridge address through the route to b's pod range.
fn connect_across(lab: &Lab) -> String {
    let listener = lab.b.run(|| TcpListener::bind("10.244.2.1:0").unwrap());
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        s.write_all(b"hello from b").unwrap();
        peer.ip().to_string()
    });
    let got = lab.a.run(|| {
        let addr = format!("10.244.2.1:{port}").parse().unwrap();
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        buf
    });
    assert_eq!(got, "hello from b");
    server.join().unwrap()
}

#[test]
fn routes_follow_the_nodes_inside_the_node_namespace_only() {
    let root_before = root_view();
    let lab = Lab::new();
    let a = lab.a.path();
    // a route of someone else's, which the kubelet must leave alone
    lab.a
        .ip(&["route", "add", "10.99.0.0/16", "via", "172.31.251.12"]);
    let nodes = vec![
        node("a", "10.244.1.0/24", "172.31.251.11"),
        node("b", "10.244.2.0/24", "172.31.251.12"),
        node("c", "10.244.3.0/24", "172.31.251.13"),
        node("far", "10.244.4.0/24", "192.168.99.5"),
    ];
    let pass = pod_routes::reconcile(nodes.clone(), "a", Some(&a)).unwrap();
    assert_eq!(pass.added.len(), 2, "{pass:?}");
    assert!(matches!(
        pass.skipped.get("far"),
        Some(Skip::NotConnected { .. })
    ));
    let routes = our_routes(&lab.a);
    assert_eq!(routes.len(), 2, "{routes:?}");
    assert!(
        routes[0].starts_with("10.244.2.0/24 via 172.31.251.12 dev eth0"),
        "{routes:?}"
    );
    assert!(
        routes[1].starts_with("10.244.3.0/24 via 172.31.251.13 dev eth0"),
        "{routes:?}"
    );
    let forward = lab
        .a
        .run(|| std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward"));
    assert_eq!(forward.unwrap().trim(), "1");
    // the route carries traffic: node a reaches node b's pod range from its eth0 address
    assert_eq!(connect_across(&lab), "172.31.251.11");

    // level-triggered: the same Nodes change nothing
    let again = pod_routes::reconcile(nodes, "a", Some(&a)).unwrap();
    assert!(
        again.added.is_empty() && again.deleted.is_empty(),
        "{again:?}"
    );

    // c is gone, b has a new range and a new address: only b's new route is left
    let nodes = vec![
        node("a", "10.244.1.0/24", "172.31.251.11"),
        node("b", "10.244.12.0/24", "172.31.251.14"),
    ];
    let pass = pod_routes::reconcile(nodes, "a", Some(&a)).unwrap();
    assert_eq!((pass.added.len(), pass.deleted.len()), (1, 2), "{pass:?}");
    let routes = our_routes(&lab.a);
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert!(
        routes[0].starts_with("10.244.12.0/24 via 172.31.251.14 dev eth0"),
        "{routes:?}"
    );

    // --cleanup's step: our routes go, the other route stays
    assert_eq!(pod_routes::remove_all(Some(&a)).unwrap(), 1);
    assert!(our_routes(&lab.a).is_empty());
    assert_eq!(pod_routes::remove_all(Some(&a)).unwrap(), 0);
    assert!(lab
        .a
        .ip(&["-4", "route"])
        .contains("10.99.0.0/16 via 172.31.251.12"));
    assert!(our_routes(&lab.b).is_empty());

    assert_eq!(root_view(), root_before, "the root namespace changed");
    assert!(!ip(&["-4", "route"]).contains("172.31.251."));
}

/// Create Node `name` with its range and address (status is a subresource).
async fn create_node(nodes: &Api<Node>, name: &str, pod_cidr: &str, address: &str) {
    let body = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
        "spec": {"podCIDR": pod_cidr}});
    let n: Node = serde_json::from_value(body).unwrap();
    nodes.create(&PostParams::default(), &n).await.unwrap();
    let status = json!({"status": {"addresses": [{"type": "InternalIP", "address": address}]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_node_watch_adds_and_deletes_routes_as_nodes_come_and_go() {
    let root_before = root_view();
    let lab = Lab::new();
    let c = Cluster::start().await;
    let nodes: Api<Node> = Api::all(c.client());
    create_node(&nodes, "a", "10.244.1.0/24", "172.31.251.11").await;
    create_node(&nodes, "b", "10.244.2.0/24", "172.31.251.12").await;
    let _routes = Task::spawn(pod_routes::run(c.client(), "a".into(), Some(lab.a.path())));
    let has = |want: &'static str| {
        let a = &lab.a;
        move || {
            let routes = our_routes(a);
            let found = routes.iter().any(|r| r.starts_with(want));
            async move { found.then_some(()) }
        }
    };
    wait_for(
        20,
        "the route to b's pods",
        has("10.244.2.0/24 via 172.31.251.12"),
    )
    .await;
    create_node(&nodes, "c", "10.244.3.0/24", "172.31.251.13").await;
    wait_for(
        20,
        "the route to c's pods",
        has("10.244.3.0/24 via 172.31.251.13"),
    )
    .await;
    nodes.delete("b", &DeleteParams::default()).await.unwrap();
    wait_for(20, "b's route deleted", || {
        let routes = our_routes(&lab.a);
        async move { (routes.len() == 1).then_some(()) }
    })
    .await;
    assert!(our_routes(&lab.a)[0].starts_with("10.244.3.0/24 via 172.31.251.13"));
    assert_eq!(root_view(), root_before, "the root namespace changed");
}
