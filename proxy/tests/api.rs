//! The proxy against a real apiserver: a Service (its ClusterIP allocated by the apiserver)
//! and an EndpointSlice written through the API, the proxy's watch caches and sync loop run
//! in-process, programming a network namespace of the test's own. The rules follow the
//! objects: the Service's chains appear, an endpoint added to the slice gets its chain, and
//! the Service deleted takes its chains away.

use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use proxy::model::{Protocol, ServicePortName};
use proxy::rules::{service_chain, RulesConfig};
use proxy::sync::{Iptables, Periods, Syncer};
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

/// The node namespace's rules once `check` accepts them (within 10 s).
async fn rules_where(node: &Netns, what: &str, check: impl Fn(&str) -> bool) -> String {
    let path = node.path();
    wait_for(10, what, || {
        let path = path.clone();
        let ok = &check;
        async move {
            let saved = tokio::task::spawn_blocking(move || Iptables::in_netns(&path).save())
                .await
                .unwrap()
                .unwrap();
            ok(&saved).then_some(saved)
        }
    })
    .await
}

#[tokio::test]
async fn the_rules_follow_services_and_endpoint_slices() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let node = Netns::new("api");

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
    let syncer = Syncer::new(Iptables::in_netns(&node.path()), RulesConfig::default());
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
    let web_chain = service_chain(
        &ServicePortName {
            namespace: "default".into(),
            name: "web".into(),
            port: String::new(),
        },
        Protocol::Tcp,
    );
    let to_cluster_ip = format!("-d {cluster_ip}/32 -p tcp -m tcp --dport 80");
    let saved = rules_where(&node, "the Service's rules", |s| {
        s.contains(&to_cluster_ip) && s.contains("--to-destination 10.244.1.2:8080")
    })
    .await;
    assert!(saved.contains(&format!("-j {web_chain}")), "{saved}");
    assert!(!saved.contains("10.244.2.2"), "{saved}");

    let both = slice(&["10.244.1.2", "10.244.2.2"]);
    slices
        .patch("web-abcde", &PatchParams::default(), &Patch::Merge(&both))
        .await
        .unwrap();
    let saved = rules_where(&node, "the second endpoint's chain", |s| {
        s.contains("--to-destination 10.244.2.2:8080")
    })
    .await;
    let picks = format!("-A {web_chain} ");
    assert_eq!(saved.matches(&picks).count(), 2, "{saved}");

    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    let saved = rules_where(&node, "the deleted Service's chains gone", |s| {
        !s.contains(&web_chain)
    })
    .await;
    // The slice is still there (no garbage collector runs here), but a slice without a
    // Service programs nothing.
    assert!(!saved.contains("10.244.1.2"), "{saved}");
    assert!(saved.contains(":MINIK8S-SERVICES"), "{saved}");
}
