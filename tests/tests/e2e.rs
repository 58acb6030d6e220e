//! The whole cluster end to end, as root: a Deployment's pods are created by the controller
//! manager, bound by the scheduler and run by two real kubelets in real containers; when one
//! node crashes (its kubelet is SIGKILLed) the node lifecycle controller notices the silent
//! Lease, taints the node, evicts its pods, and the ReplicaSet's replacements run on the other
//! node; the restarted kubelet cleans up what it left behind and the node comes back.
//! Harness: `cluster/mod.rs`.

mod cluster;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cluster::*;
use controller::manager::Config;
use controller::node_lifecycle::UNREACHABLE_TAINT;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;

/// Node-lifecycle timings for a lab: a node is Unknown 5 s after its kubelet last renewed its
/// Lease (every second here) or posted its status.
fn lab_config() -> Config {
    Config {
        node_monitor_grace_period: Duration::from_secs(5),
        pod_eviction_timeout: Duration::from_secs(2),
        ..Default::default()
    }
}

/// A cluster with two Ready nodes, `<id>-a` and `<id>-b`.
async fn two_nodes(config: Config) -> (Cluster, Kubelet, Kubelet) {
    let c = start_cluster(config).await;
    let id = rand_hex();
    let a = start_kubelet(&c, &format!("e2e-{id}-a"));
    let b = start_kubelet(&c, &format!("e2e-{id}-b"));
    for k in [&a, &b] {
        let nodes = c.nodes();
        wait_for(30, &format!("node {} Ready", k.node), || async {
            let n = nodes.get_opt(&k.node).await.ok()??;
            (ready(&n) == Some("True")).then_some(())
        })
        .await;
    }
    (c, a, b)
}

/// `replicas` busybox pods sleeping, labelled `app=<name>`. The pods tolerate an unreachable
/// or not-ready node for 2 s only (instead of the 300 s the apiserver's DefaultTolerationSeconds
/// admission gives every pod), so a crashed node's pods are evicted quickly.
async fn create_deployment(c: &Cluster, name: &str, replicas: i32) -> Deployment {
    let tolerate = |key: &str| json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2});
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "tolerations": [tolerate(UNREACHABLE_TAINT), tolerate("node.kubernetes.io/not-ready")],
                    "containers": [{"name": "sleep", "image": "busybox", "command": ["sleep", "3600"]}],
                },
            },
        },
    }))
    .unwrap();
    Api::<Deployment>::namespaced(c.client(), "default")
        .create(&PostParams::default(), &d)
        .await
        .expect("create deployment")
}

/// Pods and container processes seen during a test, for the final leak check.
#[derive(Default)]
struct Seen {
    uids: BTreeSet<String>,
    pids: BTreeSet<i32>,
    /// (pod uid, node) for every bound pod.
    bound: BTreeSet<(String, String)>,
}

impl Seen {
    fn pods(&mut self, pods: &[Pod]) {
        self.uids.extend(pods.iter().map(uid));
        self.bound.extend(
            pods.iter()
                .filter(|p| !node_of(p).is_empty())
                .map(|p| (uid(p), node_of(p).to_string())),
        );
    }
}

/// The container of `p` on its node: alive, and running `sleep 3600`.
fn running_container(p: &Pod, kubelets: &[&Kubelet]) -> Option<i32> {
    let k = kubelets.iter().find(|k| k.node == node_of(p))?;
    let pid = k.container_pid(&uid(p), "sleep")?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    (cmdline == b"sleep\x003600\x00").then_some(pid)
}

/// Wait until the app has exactly `n` live pods, all Running with their container running in
/// the runtime of their node, on nodes that satisfy `on`; returns them.
async fn wait_running(
    c: &Cluster,
    app: &str,
    n: usize,
    kubelets: &[&Kubelet],
    seen: &mut Seen,
    what: &str,
    on: impl Fn(&str) -> bool,
) -> Vec<Pod> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pods = c.app_pods(app).await;
        seen.pods(&pods);
        let live: Vec<Pod> = pods
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .cloned()
            .collect();
        let pids: Vec<Option<i32>> = live
            .iter()
            .map(|p| {
                if running(p) {
                    running_container(p, kubelets)
                } else {
                    None
                }
            })
            .collect();
        seen.pids.extend(pids.iter().flatten());
        if live.len() == n
            && pids.iter().all(Option::is_some)
            && live.iter().all(|p| on(node_of(p)))
        {
            return live;
        }
        let last = pods
            .iter()
            .map(|p| {
                format!(
                    "{} node={} phase={} deleting={}",
                    p.metadata.name.as_deref().unwrap_or(""),
                    node_of(p),
                    phase(p),
                    p.metadata.deletion_timestamp.is_some()
                )
            })
            .collect::<Vec<_>>()
            .join("\n  ");
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; pods:\n  {last}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Delete the Deployment with kubectl; the garbage collector takes its ReplicaSet and pods,
/// the kubelets stop and remove every container and sandbox. Then drop the kubelets and check
/// the kernel holds nothing of the test.
async fn delete_and_check_clean(c: &Cluster, app: &str, kubelets: Vec<Kubelet>, seen: &mut Seen) {
    let (ok, out) = c.kubectl_text(&["delete", "deployment", app]).await;
    assert!(ok, "kubectl delete deployment: {out}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pods = c.app_pods(app).await;
        seen.pods(&pods);
        if pods.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Deployment's pods not gone after 60s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for k in &kubelets {
        wait_for(30, &format!("node {} runtime empty", k.node), || async {
            let rt = k.runtime();
            (rt.container_ids().is_empty() && rt.sandbox_ids().is_empty()).then_some(())
        })
        .await;
    }
    let roots: Vec<_> = kubelets.iter().map(|k| k.root.clone()).collect();
    let bridges: Vec<_> = kubelets.iter().filter_map(|k| k.bridge.clone()).collect();
    drop(kubelets);
    assert_nothing_left(&roots, &bridges, &seen.uids, &seen.pids);
}

#[tokio::test(flavor = "multi_thread")]
async fn deployment_runs_across_two_real_kubelets_and_rolls_out() {
    if skip_unless_root("deployment_runs_across_two_real_kubelets_and_rolls_out") {
        return;
    }
    let started = Instant::now();
    let (c, a, b) = two_nodes(lab_config()).await;
    let mut seen = Seen::default();
    create_deployment(&c, "web", 4).await;

    let pods = wait_running(&c, "web", 4, &[&a, &b], &mut seen, "4 running pods", |_| {
        true
    })
    .await;
    for k in [&a, &b] {
        let here = pods.iter().filter(|p| node_of(p) == k.node).count();
        assert!(
            here > 0,
            "node {} got no pod: the scheduler did not spread",
            k.node
        );
    }
    let (ok, out) = c
        .kubectl_text(&["rollout", "status", "deployment/web", "--timeout=60s"])
        .await;
    assert!(ok, "kubectl rollout status failed: {out}");
    assert!(out.contains("successfully rolled out"), "{out}");
    eprintln!(
        "deployment rolled out on two nodes after {:?}",
        started.elapsed()
    );

    delete_and_check_clean(&c, "web", vec![a, b], &mut seen).await;
    eprintln!("test done after {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn crashed_node_pods_are_replaced_and_the_restarted_kubelet_cleans_up() {
    if skip_unless_root("crashed_node_pods_are_replaced_and_the_restarted_kubelet_cleans_up") {
        return;
    }
    let started = Instant::now();
    let (c, mut a, b) = two_nodes(lab_config()).await;
    let mut seen = Seen::default();
    create_deployment(&c, "web", 4).await;
    let pods = wait_running(&c, "web", 4, &[&a, &b], &mut seen, "4 running pods", |_| {
        true
    })
    .await;
    let victims: Vec<Pod> = pods
        .iter()
        .filter(|p| node_of(p) == a.node)
        .cloned()
        .collect();
    assert!(!victims.is_empty(), "node {} got no pod", a.node);
    let victim_pids: Vec<i32> = victims
        .iter()
        .map(|p| a.container_pid(&uid(p), "sleep").unwrap())
        .collect();

    // The node crashes: its kubelet is SIGKILLed; its containers keep running, unsupervised.
    a.kill();
    let crashed = Instant::now();
    assert!(victim_pids.iter().all(|p| runtime::container::alive(*p)));

    // The node lifecycle controller notices the silent Lease: Ready=Unknown + unreachable taint.
    let nodes = c.nodes();
    wait_for(
        30,
        "the crashed node Ready=Unknown with the unreachable taint",
        || async {
            let n = nodes.get_opt(&a.node).await.ok()??;
            (ready(&n) == Some("Unknown") && has_taint(&n, UNREACHABLE_TAINT)).then_some(())
        },
    )
    .await;
    eprintln!(
        "node Unknown + tainted {:?} after the crash",
        crashed.elapsed()
    );

    // Its pods are evicted (Terminating: nobody is there to stop them) and replaced; the
    // scheduler puts the replacements on the surviving node.
    let victim_uids: BTreeSet<String> = victims.iter().map(uid).collect();
    wait_for(30, "the crashed node's pods evicted", || async {
        let pods = c.app_pods("web").await;
        pods.iter()
            .filter(|p| victim_uids.contains(&uid(p)))
            .all(|p| p.metadata.deletion_timestamp.is_some())
            .then_some(())
    })
    .await;
    let b_node = b.node.clone();
    let replaced = wait_running(
        &c,
        "web",
        4,
        &[&a, &b],
        &mut seen,
        "4 running pods on the surviving node",
        |n| n == b_node,
    )
    .await;
    assert!(replaced.iter().all(|p| !victim_uids.contains(&uid(p))));
    let strays: Vec<_> = seen
        .bound
        .iter()
        .filter(|(u, n)| *n == a.node && !victim_uids.contains(u))
        .collect();
    assert!(
        strays.is_empty(),
        "pods scheduled to the dead node: {strays:?}"
    );
    eprintln!(
        "pods replaced on {} {:?} after the crash",
        b.node,
        crashed.elapsed()
    );
    let (ok, out) = c
        .kubectl_text(&["rollout", "status", "deployment/web", "--timeout=30s"])
        .await;
    assert!(ok, "kubectl rollout status failed: {out}");

    // While the node is down, one evicted pod is removed from the API for good (as
    // `kubectl delete --force` does): the kubelet will find a container of a pod that no
    // longer exists. The others are still Terminating, waiting for their kubelet.
    let gone = victims[0].metadata.name.clone().unwrap();
    let (ok, out) = c
        .kubectl_text(&["delete", "pod", &gone, "--grace-period=0", "--force"])
        .await;
    assert!(ok, "kubectl delete --force: {out}");
    assert!(victim_pids.iter().all(|p| runtime::container::alive(*p)));

    // The kubelet comes back with the same node name and root dir: it stops and removes every
    // container of the evicted pods, and the Terminating pods disappear from the API.
    a.spawn();
    let restarted = Instant::now();
    wait_for(
        30,
        "the restarted kubelet removed the old containers",
        || async {
            let rt = a.runtime();
            (rt.container_ids().is_empty()
                && rt.sandbox_ids().is_empty()
                && victim_pids.iter().all(|p| !runtime::container::alive(*p)))
            .then_some(())
        },
    )
    .await;
    wait_for(30, "the evicted pods gone from the API", || async {
        let pods = c.app_pods("web").await;
        (!pods.iter().any(|p| victim_uids.contains(&uid(p)))).then_some(())
    })
    .await;
    // The node is Ready again and loses the taint.
    wait_for(30, "the node Ready again without the taint", || async {
        let n = nodes.get_opt(&a.node).await.ok()??;
        (ready(&n) == Some("True") && !has_taint(&n, UNREACHABLE_TAINT)).then_some(())
    })
    .await;
    eprintln!(
        "node recovered and cleaned up {:?} after the restart",
        restarted.elapsed()
    );

    // Nothing moved back: the four replacements still run where they were.
    let now = wait_running(
        &c,
        "web",
        4,
        &[&a, &b],
        &mut seen,
        "the replacements still running",
        |n| n == b_node,
    )
    .await;
    let uids = |ps: &[Pod]| ps.iter().map(uid).collect::<BTreeSet<_>>();
    assert_eq!(uids(&now), uids(&replaced));

    delete_and_check_clean(&c, "web", vec![a, b], &mut seen).await;
    eprintln!("test done after {:?}", started.elapsed());
}
