//! The scheduler against a real apiserver: filters, explanations, no overcommit.

mod common;

use std::collections::HashMap;

use common::{pod_scheduled, poll, Cluster};
use scheduler::resources::{node_allocatable, pod_requests, Resources};
use serde_json::json;

fn alloc(cpu: &str) -> serde_json::Value {
    json!({"cpu": cpu, "memory": "4Gi", "pods": "110"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_are_honoured_and_a_refusal_lists_every_reason() {
    let c = Cluster::start().await;
    c.node(
        "ready",
        true,
        alloc("2"),
        json!({"metadata": {"labels": {"zone": "a"}}}),
    )
    .await;
    c.node(
        "tainted",
        true,
        alloc("2"),
        json!({"metadata": {"labels": {"zone": "b"}},
        "spec": {"taints": [{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]}}),
    )
    .await;
    c.node(
        "not-ready",
        false,
        alloc("2"),
        json!({"metadata": {"labels": {"zone": "a"}}}),
    )
    .await;
    c.node(
        "cordoned",
        true,
        alloc("2"),
        json!({"metadata": {"labels": {"zone": "a"}}, "spec": {"unschedulable": true}}),
    )
    .await;
    let _s = c.scheduler("test");

    // Plain pods land only on the one ready, untainted, uncordoned node.
    c.pod("plain", json!({})).await;
    assert_eq!(c.wait_bound("plain").await, "ready");
    // Toleration + required affinity lead to the tainted node.
    c.pod("infra", json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}]}}}})).await;
    assert_eq!(c.wait_bound("infra").await, "tainted");
    // Host ports: the second pod wanting 8080 has nowhere to go.
    let port = json!({"containers": [{"name": "c", "image": "pause", "ports": [{"containerPort": 80, "hostPort": 8080}]}]});
    c.pod("port-1", port.clone()).await;
    assert_eq!(c.wait_bound("port-1").await, "ready");
    c.pod("port-2", port).await;
    c.pod("zone-c", json!({"nodeSelector": {"zone": "c"}}))
        .await;

    let expect = [
        ("port-2", "0/4 nodes are available: 1 node(s) didn't have free ports for the requested pod ports, \
            1 node(s) had untolerated taint {dedicated: infra}, 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, \
            1 node(s) were unschedulable."),
        ("zone-c", "0/4 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, \
            1 node(s) had untolerated taint {dedicated: infra}, 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, \
            1 node(s) were unschedulable."),
    ];
    for (name, message) in expect {
        let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
        let cond = poll(60, || async {
            pod_scheduled(&c.pods().get(name).await.unwrap()).filter(|c| c.0 == "False")
        })
        .await;
        assert_eq!(
            cond,
            Some(("False".into(), "Unschedulable".into(), message.clone())),
            "{name}"
        );
        assert_eq!(c.node_of(name).await, "");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unschedulable_pod_explains_itself_and_is_placed_when_a_node_fits() {
    let c = Cluster::start().await;
    c.node("small-1", true, alloc("1"), json!({})).await;
    c.node(
        "small-2",
        true,
        alloc("1"),
        json!({"metadata": {"labels": {"disk": "hdd"}}}),
    )
    .await;
    let _s = c.scheduler("test");
    c.pod("big", json!({"containers": [{"name": "c", "image": "pause", "resources": {"requests": {"cpu": "3"}}}]})).await;

    let want = "0/2 nodes are available: 2 Insufficient cpu.";
    let events = poll(60, || async {
        Some(c.events("big", "FailedScheduling").await).filter(|e| !e.is_empty())
    })
    .await;
    let event = &events.expect("a FailedScheduling event")[0];
    assert_eq!(event.message.as_deref(), Some(want));
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(
        event.source.as_ref().and_then(|s| s.component.as_deref()),
        Some("default-scheduler")
    );
    assert_eq!(event.involved_object.kind.as_deref(), Some("Pod"));
    let pod = c.pods().get("big").await.unwrap();
    assert_eq!(
        pod_scheduled(&pod),
        Some(("False".into(), "Unschedulable".into(), want.into()))
    );

    c.node("big-node", true, alloc("4"), json!({})).await;
    assert_eq!(c.wait_bound("big").await, "big-node");
    let scheduled = poll(60, || async {
        Some(c.events("big", "Scheduled").await).filter(|e| !e.is_empty())
    })
    .await
    .unwrap();
    assert_eq!(
        scheduled[0].message.as_deref(),
        Some("Successfully assigned default/big to big-node")
    );
    assert_eq!(scheduled[0].type_.as_deref(), Some("Normal"));
    let pod = c.pods().get("big").await.unwrap();
    assert_eq!(pod_scheduled(&pod).map(|c| c.0), Some("True".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_pods_on_few_nodes_never_overcommit() {
    let c = Cluster::start().await;
    for i in 0..3 {
        c.node(
            &format!("n{i}"),
            true,
            json!({"cpu": "1", "memory": "1Gi", "pods": "6"}),
            json!({}),
        )
        .await;
    }
    let _s = c.scheduler("test");
    // 1000m/node at 300m per pod: 3 fit per node by cpu; 4 of the memory-heavy ones would not.
    let mut created = Vec::new();
    for i in 0..30 {
        let (cpu, mem) = if i % 3 == 0 {
            ("100m", "400Mi")
        } else {
            ("300m", "64Mi")
        };
        let name = format!("p{i}");
        let spec = json!({"containers": [{"name": "c", "image": "pause", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]});
        created.push(tokio::spawn({
            let client = c.client.clone();
            async move {
                let api: kube::Api<k8s_openapi::api::core::v1::Pod> =
                    kube::Api::namespaced(client, "default");
                let mut body = json!({"metadata": {"name": name}, "spec": {"containers": []}});
                body["spec"] = spec;
                api.create(&Default::default(), &serde_json::from_value(body).unwrap())
                    .await
                    .unwrap();
            }
        }));
    }
    for t in created {
        t.await.unwrap();
    }
    // Settled: every pod is bound or marked Unschedulable.
    let settled = poll(90, || async {
        let pods = c.pods().list(&Default::default()).await.unwrap().items;
        let done = pods.iter().all(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_some_and(|n| !n.is_empty())
                || pod_scheduled(p).is_some_and(|c| c.1 == "Unschedulable")
        });
        done.then_some(pods)
    })
    .await
    .expect("every pod bound or unschedulable within 90 s");
    let nodes = kube::Api::<k8s_openapi::api::core::v1::Node>::all(c.client.clone())
        .list(&Default::default())
        .await
        .unwrap();
    let mut used: HashMap<String, Resources> = HashMap::new();
    let mut bound = 0;
    for p in &settled {
        if let Some(n) = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty())
        {
            used.entry(n).or_default().add(&pod_requests(p, false));
            bound += 1;
        }
    }
    for n in &nodes.items {
        let a = node_allocatable(n);
        let u = used
            .get(n.metadata.name.as_deref().unwrap())
            .copied()
            .unwrap_or_default();
        assert!(
            u.milli_cpu <= a.milli_cpu && u.memory <= a.memory && u.pods <= a.pods,
            "{:?} overcommitted: {u:?} > {a:?}",
            n.metadata.name
        );
    }
    // The nodes are full: 3 cpu-bound pods (900m) or mixes; at least 2 pods per node must fit.
    assert!(bound >= 6, "only {bound} pods bound");
    assert!(bound < 30, "all 30 pods bound: they cannot all fit");
}
