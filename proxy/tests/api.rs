//! The proxy against a real apiserver, in both modes: a Service (its ClusterIP allocated by
//! the apiserver) and an EndpointSlice written through the API, the proxy's watch caches and
//! sync loop run in-process, programming a network namespace of the test's own. The rules
//! follow the objects: the Service's rules appear, an endpoint added to the slice is added,
//! and the Service deleted takes its rules away.

use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use proxy::model::{Protocol, ServicePortName};
use proxy::rules::{service_chain, RulesConfig};
use proxy::sync::{Periods, ProxyMode, Syncer};
use serde_json::json;
use testkit::{wait_for, Cluster, Task};

mod common;
use common::Netns;

fn slice(ips: &[&str]) -> serde_json::Value {
    let endpoints: Vec<_> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "web-abcde", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"port": 8080, "protocol": "TCP"}]
    })
}

/// The node namespace's rules of `mode` (`iptables-save`, `nft list ruleset`) once `check`
/// accepts them (within 10 s).
async fn rules_where(
    node: &Netns,
    mode: ProxyMode,
    what: &str,
    check: impl Fn(&str) -> bool,
) -> String {
    let runner = node.runner();
    wait_for(10, what, || {
        let runner = runner.clone();
        let ok = &check;
        async move {
            let rules = tokio::task::spawn_blocking(move || match mode {
                ProxyMode::Iptables => runner.iptables_save(),
                ProxyMode::Nftables => runner.nft(&["list", "ruleset"], None),
            })
            .await
            .unwrap()
            .unwrap();
            ok(&rules).then_some(rules)
        }
    })
    .await
}

#[tokio::test]
async fn iptables_rules_follow_services_and_endpoint_slices() {
    the_rules_follow_services_and_endpoint_slices(ProxyMode::Iptables).await;
}

#[tokio::test]
async fn nftables_rules_follow_services_and_endpoint_slices() {
    the_rules_follow_services_and_endpoint_slices(ProxyMode::Nftables).await;
}

async fn the_rules_follow_services_and_endpoint_slices(mode: ProxyMode) {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let node = Netns::new(&format!("api-{mode}"));

    let web: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .unwrap();
    let web = services.create(&PostParams::default(), &web).await.unwrap();
    let cluster_ip = web.spec.unwrap().cluster_ip.expect("a ClusterIP allocated");
    let first: EndpointSlice = serde_json::from_value(slice(&["10.244.1.2"])).unwrap();
    slices.create(&PostParams::default(), &first).await.unwrap();

    let (caches, feed) = proxy::cache::watch(client.clone());
    let syncer = Syncer::new(node.runner(), mode, RulesConfig::default());
    let periods = Periods {
        min_sync: Duration::from_millis(20),
        resync: Duration::from_secs(30),
    };
    let changed = caches.changed.clone();
    let _feed = Task::spawn(feed);
    let _sync = Task::spawn(proxy::sync::run(
        syncer,
        changed,
        move || caches.service_ports(),
        periods,
    ));

    // The apiserver's own `kubernetes` Service is programmed too; look at web's rules only.
    let web_name = ServicePortName {
        namespace: "default".into(),
        name: "web".into(),
        port: String::new(),
    };
    let (web_rules, to_cluster_ip, first, second) = match mode {
        ProxyMode::Iptables => (
            service_chain(&web_name, Protocol::Tcp),
            format!("-d {cluster_ip}/32 -p tcp -m tcp --dport 80"),
            "--to-destination 10.244.1.2:8080",
            "--to-destination 10.244.2.2:8080",
        ),
        ProxyMode::Nftables => (
            "default/web/tcp".to_string(),
            format!("{cluster_ip} . tcp . 80 : goto service-"),
            "0 : 10.244.1.2 . 8080",
            "1 : 10.244.2.2 . 8080",
        ),
    };
    let rules = rules_where(&node, mode, "the Service's rules", |s| {
        s.contains(&to_cluster_ip) && s.contains(first)
    })
    .await;
    assert!(rules.contains(&web_rules), "{rules}");
    assert!(!rules.contains("10.244.2.2"), "{rules}");

    let both = slice(&["10.244.1.2", "10.244.2.2"]);
    slices
        .patch("web-abcde", &PatchParams::default(), &Patch::Merge(&both))
        .await
        .unwrap();
    let rules = rules_where(&node, mode, "the second endpoint", |s| s.contains(second)).await;
    if mode == ProxyMode::Iptables {
        let picks = format!("-A {web_rules} ");
        assert_eq!(rules.matches(&picks).count(), 2, "{rules}");
    } else {
        assert!(rules.contains("numgen random mod 2 map"), "{rules}");
    }

    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    let rules = rules_where(&node, mode, "the deleted Service's rules gone", |s| {
        !s.contains(&web_rules)
    })
    .await;
    // The slice is still there (no garbage collector runs here), but a slice without a
    // Service programs nothing.
    assert!(!rules.contains("10.244.1.2"), "{rules}");
    match mode {
        ProxyMode::Iptables => assert!(rules.contains(":MINIK8S-SERVICES"), "{rules}"),
        ProxyMode::Nftables => assert!(rules.contains("chain services"), "{rules}"),
    }
}
