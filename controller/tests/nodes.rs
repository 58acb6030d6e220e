//! Node lifecycle, IPAM and the orphaned-pod collector against a real apiserver: nodes are Node
//! objects with Leases the test renews or stops renewing (no kubelet).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::json;

async fn node(client: &kube::Client, name: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let n = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    nodes.create(&PostParams::default(), &n).await.unwrap();
    let now = jiff::Timestamp::now();
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(json!({"status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": now.to_string(), "lastTransitionTime": now.to_string()}
        ]}})))
        .await
        .unwrap();
}

/// A stand-in kubelet heartbeat: renews the node's Lease every 500 ms while `alive`.
fn heartbeat(client: kube::Client, name: &str, alive: Arc<AtomicBool>) -> Task {
    let name = name.to_string();
    Task(tokio::spawn(async move {
        let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
        loop {
            if alive.load(Ordering::SeqCst) {
                let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                    jiff::Timestamp::now(),
                );
                let lease = Lease {
                    metadata: kube::api::ObjectMeta {
                        name: Some(name.clone()),
                        ..Default::default()
                    },
                    spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
                        holder_identity: Some(name.clone()),
                        lease_duration_seconds: Some(3),
                        renew_time: Some(now),
                        ..Default::default()
                    }),
                };
                let _ = leases
                    .patch(
                        &name,
                        &PatchParams::apply("test-kubelet").force(),
                        &Patch::Apply(&lease),
                    )
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }))
}

fn bound_pod(name: &str, node: &str, toleration_seconds: Option<i64>) -> Pod {
    let mut t = json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"});
    if let Some(s) = toleration_seconds {
        t["tolerationSeconds"] = json!(s);
    }
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"nodeName": node, "tolerations": [t], "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap()
}

fn tainted(n: &Node) -> bool {
    n.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|ts| {
            ts.iter()
                .any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_node_is_tainted_its_pods_evicted_and_a_renewed_lease_lifts_the_taint() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let ns: Api<Namespace> = Api::all(client.clone());
    if ns.get_opt("kube-node-lease").await.unwrap().is_none() {
        namespace(&client, "kube-node-lease").await;
    }
    let alive = Arc::new(AtomicBool::new(true));
    node(&client, "n1").await;
    node(&client, "n2").await;
    let _hb = heartbeat(client.clone(), "n1", alive.clone());
    let _hb2 = heartbeat(client.clone(), "n2", Arc::new(AtomicBool::new(true)));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &bound_pod("short", "n1", Some(1)))
        .await
        .unwrap();
    pods.create(&PostParams::default(), &bound_pod("forever", "n1", None))
        .await
        .unwrap();
    let _ctrl = cluster.start_controllers(fast_config());
    let nodes: Api<Node> = Api::all(client.clone());

    // IPAM: distinct /24s.
    let cidrs = wait_for(30, "pod CIDRs", || async {
        let a = nodes.get("n1").await.unwrap().spec?.pod_cidr?;
        let b = nodes.get("n2").await.unwrap().spec?.pod_cidr?;
        Some((a, b))
    })
    .await;
    assert_ne!(cidrs.0, cidrs.1);
    assert!(
        cidrs.0.starts_with("10.244.") && cidrs.0.ends_with(".0/24"),
        "{cidrs:?}"
    );

    // The kubelet goes silent.
    alive.store(false, Ordering::SeqCst);
    wait_for(30, "n1 Ready=Unknown and tainted", || async {
        let n = nodes.get("n1").await.unwrap();
        (tainted(&n) && ready(&n) == Some("Unknown")).then_some(())
    })
    .await;
    wait_for(30, "the pod with a 1 s toleration evicted", || async {
        pods.get_opt("short")
            .await
            .unwrap()
            .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
            .then_some(())
    })
    .await;
    assert!(
        pods.get("forever")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_none(),
        "a pod tolerating forever stays"
    );
    let n2 = nodes.get("n2").await.unwrap();
    assert!(!tainted(&n2), "a node with a fresh lease is not tainted");

    // It comes back: the taint goes.
    alive.store(true, Ordering::SeqCst);
    wait_for(30, "the taint removed", || async {
        (!tainted(&nodes.get("n1").await.unwrap())).then_some(())
    })
    .await;

    // The node is deleted: its pods go after the (here 2 s) quarantine.
    nodes.delete("n1", &DeleteParams::default()).await.unwrap();
    wait_for(30, "pods of a deleted node removed", || async {
        let left: Vec<String> = pods
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .map(|p| p.name_any())
            .collect();
        left.is_empty().then_some(())
    })
    .await;
}

/// Seconds from `since` until `check` holds (polled every 100 ms), or panic after 60 s.
async fn seconds_until<F, Fut>(since: tokio::time::Instant, what: &str, check: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<()>>,
{
    wait_for(60, what, check).await;
    since.elapsed().as_secs_f64()
}

/// A 2.3 s apiserver outage, during which another writer labels a node (so the controller's
/// copy of it is stale) and registers a new one: once the apiserver is back, the silent node is
/// marked Unknown and tainted, and the new node gets its pod CIDR, within seconds, like the
/// scheduler and kubelets. Neither a 409 on a stale copy nor the watches' back-off may stall it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_short_apiserver_outage_nodes_are_handled_within_seconds() {
    let mut cluster = Cluster::start().await;
    let client = cluster.client();
    node(&client, "n1").await;
    let alive = Arc::new(AtomicBool::new(true));
    let _hb = heartbeat(client.clone(), "n1", alive.clone());
    let config = controller::manager::Config {
        node_monitor_grace_period: Duration::from_secs(2),
        ..fast_config()
    };
    let _ctrl = cluster.start_controllers(config);
    let nodes: Api<Node> = Api::all(client.clone());
    wait_for(30, "n1's pod CIDR", || async {
        nodes.get("n1").await.unwrap().spec?.pod_cidr.map(|_| ())
    })
    .await;

    // The kubelet goes silent and the apiserver goes away.
    alive.store(false, Ordering::SeqCst);
    let down = tokio::time::Instant::now();
    cluster.stop_apiserver().await;
    let (other, other_client) = cluster.second_apiserver().await;
    let other_nodes: Api<Node> = Api::all(other_client.clone());
    other_nodes
        .patch(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"rack": "r2"}}})),
        )
        .await
        .unwrap();
    node(&other_client, "n2").await;
    drop(other);
    tokio::time::sleep_until(down + Duration::from_millis(2300)).await;
    cluster.restart_apiserver().await;
    let back = tokio::time::Instant::now();

    let (unknown, cidr) = tokio::join!(
        seconds_until(back, "n1 Ready=Unknown and tainted", || async {
            let n = nodes.get("n1").await.ok()?;
            (tainted(&n) && ready(&n) == Some("Unknown")).then_some(())
        }),
        seconds_until(back, "n2's pod CIDR", || async {
            nodes.get("n2").await.ok()?.spec?.pod_cidr.map(|_| ())
        }),
    );
    eprintln!("after the outage: n1 Unknown+tainted in {unknown:.1} s, n2 CIDR in {cidr:.1} s");
    assert!(
        unknown <= 6.0,
        "n1 marked Unknown {unknown:.1} s after the apiserver came back"
    );
    assert!(
        cidr <= 6.0,
        "n2 got its pod CIDR {cidr:.1} s after the apiserver came back"
    );
}

fn is_live(p: &Option<Pod>) -> bool {
    p.as_ref()
        .is_some_and(|p| p.metadata.deletion_timestamp.is_none())
}

/// The pod as it was when deleted (from a watch).
async fn last_state_before_deletion(pods: Api<Pod>, name: &str) -> Pod {
    use futures::StreamExt;
    use kube::runtime::watcher;
    let mut events = watcher(pods, watcher::Config::default()).boxed();
    loop {
        if let Some(Ok(watcher::Event::Delete(p))) = events.next().await {
            if p.name_any() == name {
                return p;
            }
        }
    }
}

/// Upstream podgc's 40 s quarantine: a pod bound to a node that does not exist outlives a
/// few passes of the collector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_of_a_missing_node_is_kept_for_the_default_quarantine() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &bound_pod("orphan", "nowhere", None),
    )
    .await
    .unwrap();
    let config = controller::manager::Config {
        pod_gc_quarantine: controller::manager::Config::default().pod_gc_quarantine,
        ..fast_config()
    };
    let _ctrl = cluster.start_controllers(config);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        is_live(&pods.get_opt("orphan").await.unwrap()),
        "a pod of a missing node deleted before the 40 s quarantine"
    );
}

/// After the quarantine, a pod of a node still gone is marked Failed with a DisruptionTarget
/// condition (DeletionByPodGC) and deleted; a node that registers within the quarantine saves
/// its pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_of_a_node_gone_for_the_quarantine_is_marked_failed_and_deleted() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &bound_pod("orphan", "nowhere", None),
    )
    .await
    .unwrap();
    pods.create(&PostParams::default(), &bound_pod("saved", "late", None))
        .await
        .unwrap();
    let deleted = tokio::spawn(last_state_before_deletion(pods.clone(), "orphan"));
    let config = controller::manager::Config {
        pod_gc_quarantine: Duration::from_secs(3),
        ..fast_config()
    };
    let started = tokio::time::Instant::now();
    let _ctrl = cluster.start_controllers(config);
    tokio::time::sleep(Duration::from_secs(1)).await;
    node(&client, "late").await;

    let orphan = tokio::time::timeout(Duration::from_secs(30), deleted)
        .await
        .expect("the orphaned pod deleted")
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "deleted before the quarantine ran out"
    );
    let status = orphan.status.unwrap_or_default();
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    let condition = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "DisruptionTarget")
        .expect("a DisruptionTarget condition");
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_deref()),
        ("True", Some(controller::pod_gc::REASON))
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        is_live(&pods.get_opt("saved").await.unwrap()),
        "a pod whose node registered within the quarantine was collected"
    );
}

/// A sync computed from a stale copy of a silent node (someone wrote the node since) is
/// refused with 409; the sync reads the node again and finishes in the same call instead of
/// failing and waiting for the watch to catch up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_on_a_stale_copy_of_a_node_reads_it_again_and_finishes() {
    use controller::node_lifecycle::{reconcile, Context};
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let nodes: Api<Node> = Api::all(client.clone());
    node(&client, "n1").await;
    let long_ago = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1)).to_string();
    let heartbeat = json!({"status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": long_ago}]}});
    nodes
        .patch_status("n1", &PatchParams::default(), &Patch::Strategic(heartbeat))
        .await
        .unwrap();
    let stale = nodes.get("n1").await.unwrap();
    let label = json!({"metadata": {"labels": {"rack": "r2"}}});
    nodes
        .patch("n1", &PatchParams::default(), &Patch::Merge(label))
        .await
        .unwrap();

    let ctx = Arc::new(Context {
        client: client.clone(),
        leases: kube::runtime::reflector::store::<Lease>().0,
        config: (&fast_config()).into(),
        recorder: controller::events::Recorder::new(client.clone(), "test"),
    });
    let synced = reconcile(Arc::new(stale), ctx).await;
    assert!(synced.is_ok(), "{:?}", synced.err());
    let n = nodes.get("n1").await.unwrap();
    assert_eq!(ready(&n), Some("Unknown"));
    assert!(tainted(&n));
    assert_eq!(n.labels().get("rack").map(String::as_str), Some("r2"));
}

/// The Ready condition of `pod` ("" without one).
fn pod_ready(p: &Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.clone())
        .unwrap_or_default()
}

/// The `ready` condition of each endpoint of the Service `web`'s slices.
async fn endpoint_readiness(client: &kube::Client) -> Vec<bool> {
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let list = slices
        .list(&kube::api::ListParams::default().labels("kubernetes.io/service-name=web"))
        .await
        .unwrap();
    list.items
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .map(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
        .collect()
}

/// Upstream's MarkPodsNotReady: once a node goes silent, its pods' Ready condition becomes
/// False (before any eviction: they tolerate the taint for ever here), so the EndpointSlice of
/// a Service lists them as not ready; a pod of a healthy node keeps Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_nodes_pods_are_marked_not_ready_and_leave_the_services_ready_endpoints() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let ns: Api<Namespace> = Api::all(client.clone());
    if ns.get_opt("kube-node-lease").await.unwrap().is_none() {
        namespace(&client, "kube-node-lease").await;
    }
    let alive = Arc::new(AtomicBool::new(true));
    node(&client, "n1").await;
    node(&client, "n2").await;
    let _hb = heartbeat(client.clone(), "n1", alive.clone());
    let _hb2 = heartbeat(client.clone(), "n2", Arc::new(AtomicBool::new(true)));
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), "default");
    let svc = json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}});
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(svc).unwrap(),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for (name, node, ip) in [("web-1", "n1", "10.244.1.5"), ("web-2", "n2", "10.244.2.5")] {
        let mut p = serde_json::to_value(bound_pod(name, node, None)).unwrap();
        p["metadata"]["labels"] = json!({"app": "web"});
        let p = pods
            .create(&PostParams::default(), &serde_json::from_value(p).unwrap())
            .await
            .unwrap();
        mark_ready(&client, &p).await;
        let ip = json!({"status": {"podIP": ip, "podIPs": [{"ip": ip}]}});
        pods.patch_status(name, &PatchParams::default(), &Patch::Merge(ip))
            .await
            .unwrap();
    }
    let _ctrl = cluster.start_controllers(fast_config());
    wait_for(30, "both endpoints ready", || async {
        (endpoint_readiness(&client).await == [true, true]).then_some(())
    })
    .await;

    alive.store(false, Ordering::SeqCst);
    let nodes: Api<Node> = Api::all(client.clone());
    wait_for(30, "n1 Ready=Unknown", || async {
        (ready(&nodes.get("n1").await.unwrap()) == Some("Unknown")).then_some(())
    })
    .await;
    wait_for(10, "web-1 Ready=False", || async {
        (pod_ready(&pods.get("web-1").await.unwrap()) == "False").then_some(())
    })
    .await;
    let mut readiness = wait_for(10, "one endpoint not ready", || async {
        let r = endpoint_readiness(&client).await;
        (r.len() == 2 && r.contains(&false)).then_some(r)
    })
    .await;
    readiness.sort();
    assert_eq!(readiness, [false, true]);
    let web1 = pods.get("web-1").await.unwrap();
    assert!(
        web1.metadata.deletion_timestamp.is_none(),
        "a pod tolerating for ever stays"
    );
    assert_eq!(pod_ready(&pods.get("web-2").await.unwrap()), "True");
}
