//! Failure stories on the local lab, as the lab exercises tell them:
//! - a node is lost (its kubelet killed, `minikctl cluster stop`), goes NotReady, and its
//!   pods are replaced on the other node within the lab's grace and toleration times; when it
//!   returns (`cluster start`) it is Ready again and the containers of its evicted pods are
//!   gone;
//! - a rolling update across the nodes keeps every Ready pod answering a pod on the other
//!   node, and never fewer Ready pods than the Deployment's maxUnavailable allows;
//! - etcd and the apiserver killed together and started again: every component reconnects,
//!   nothing written before is lost, and the cluster converges on a new request.

mod cluster;
mod labkit;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cluster::skip_unless_root;
use labkit::{http_get_from, pod_pid, show, Lab};
use serde_json::Value;

const DEPLOYMENT: &str = r#"{"apiVersion":"apps/v1","kind":"Deployment",
"metadata":{"name":"web"},
"spec":{"replicas":4,"selector":{"matchLabels":{"app":"web"}},
"template":{"metadata":{"labels":{"app":"web"}},
"spec":{"terminationGracePeriodSeconds":0,
"containers":[{"name":"main","image":"busybox","command":["sleep","3600"]}]}}}}"#;

/// Poll `f` every 250 ms until it is Some, for at most `secs`.
fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The pods of the Deployment: (uid, node, phase, terminating).
fn pods(lab: &Lab) -> Vec<(String, String, String, bool)> {
    let list: Value =
        serde_json::from_str(&lab.kubectl(&["get", "pods", "-l", "app=web", "-o", "json"]))
            .unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["metadata"]["uid"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                p["spec"]["nodeName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                p["status"]["phase"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                p["metadata"]["deletionTimestamp"].is_string(),
            )
        })
        .collect()
}

fn node_ready(lab: &Lab, node: &str) -> String {
    lab.kubectl(&[
        "get",
        "node",
        node,
        "-o",
        r#"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#,
    ])
}

/// Whether any process on the machine is in a cgroup of one of the pods `uids`.
fn processes_of(uids: &BTreeSet<String>) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("cgroup")).ok())
        .filter(|cg| uids.iter().any(|u| cg.contains(u.as_str())))
        .collect()
}

#[test]
fn a_lost_node_s_pods_are_replaced_and_its_return_removes_the_stale_containers() {
    if skip_unless_root("lab_failures") {
        return;
    }
    let mut lab = Lab::new();
    lab.up(2);
    let (n1, n2) = (
        format!("{}-node-1", lab.name),
        format!("{}-node-2", lab.name),
    );
    let path = lab.dir.join("web.json");
    std::fs::write(&path, DEPLOYMENT).unwrap();
    lab.kubectl(&["apply", "-f", path.to_str().unwrap()]);
    let before = wait_for(60, "4 running pods on both nodes", || {
        let p = pods(&lab);
        let running = p.iter().filter(|p| p.2 == "Running").count() == 4;
        let nodes: BTreeSet<&str> = p.iter().map(|p| p.1.as_str()).collect();
        (running && nodes.len() == 2).then_some(p)
    });
    let lost: BTreeSet<String> = before
        .iter()
        .filter(|p| p.1 == n2)
        .map(|p| p.0.clone())
        .collect();
    assert!(!processes_of(&lost).is_empty(), "the pods of {n2} run");

    let out = lab.minikctl(&["cluster", "stop", &n2, "--name", &lab.name]);
    assert!(out.status.success(), "{}", show(&out));
    let t = Instant::now();
    wait_for(30, "the lost node NotReady", || {
        (node_ready(&lab, &n2) != "True").then_some(())
    });
    let not_ready = t.elapsed();
    wait_for(60, "4 running pods on the remaining node", || {
        let p = pods(&lab);
        let live: Vec<_> = p.iter().filter(|p| !p.3).collect();
        (live.len() == 4 && live.iter().all(|p| p.1 == n1 && p.2 == "Running")).then_some(())
    });
    let replaced = t.elapsed();
    eprintln!("node NotReady after {not_ready:?}, pods replaced after {replaced:?}");
    assert!(
        !processes_of(&lost).is_empty(),
        "a lost kubelet leaves its containers running"
    );

    let out = lab.minikctl(&["cluster", "start", &n2, "--name", &lab.name]);
    assert!(out.status.success(), "{}", show(&out));
    wait_for(30, "the node Ready again", || {
        (node_ready(&lab, &n2) == "True").then_some(())
    });
    wait_for(30, "the evicted pods gone from the API", || {
        let p = pods(&lab);
        (!p.iter().any(|p| lost.contains(&p.0))).then_some(())
    });
    wait_for(30, "the evicted pods' containers gone", || {
        processes_of(&lost).is_empty().then_some(())
    });
    lab.down();
}

/// Four web servers that take three seconds to drain on SIGTERM (as real servers do), Ready when
/// they answer, rolled one at a time (maxSurge 1, maxUnavailable 1), each new one available
/// after a second Ready (so the rollout lasts long enough to be sampled often).
const WEB: &str = r#"{"apiVersion":"apps/v1","kind":"Deployment",
"metadata":{"name":"web"},
"spec":{"replicas":4,"selector":{"matchLabels":{"app":"web"}},
"strategy":{"rollingUpdate":{"maxSurge":1,"maxUnavailable":1}},"minReadySeconds":1,
"template":{"metadata":{"labels":{"app":"web"}},
"spec":{"terminationGracePeriodSeconds":10,
"containers":[{"name":"main","image":"busybox",
"command":["sh","-c","mkdir -p /www && hostname > /www/index.html && trap 'sleep 3; exit 0' TERM; httpd -f -p 8080 -h /www & wait"],
"readinessProbe":{"httpGet":{"path":"/","port":8080},"periodSeconds":1}}]}}}}"#;

/// The Ready, not terminating pods of the Deployment: (name, IP), read through kube-rs (a
/// kubectl process per look would sample the rollout only a few times).
async fn ready_pods(pods: &kube::Api<k8s_openapi::api::core::v1::Pod>) -> Vec<(String, String)> {
    let list = pods
        .list(&kube::api::ListParams::default().labels("app=web"))
        .await
        .unwrap();
    list.items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            let conditions = p.status.as_ref().and_then(|s| s.conditions.as_ref());
            conditions.is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|p| {
            let ip = p.status.as_ref()?.pod_ip.clone()?;
            Some((p.metadata.name?, ip))
        })
        .collect()
}

/// A client of the lab's API, from its kubeconfig.
async fn api_client(lab: &Lab) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(&lab.kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

#[test]
fn a_rolling_update_across_nodes_keeps_every_ready_pod_reachable() {
    if skip_unless_root("lab_failures") {
        return;
    }
    let mut lab = Lab::new();
    lab.up(2);
    let client = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"client"}},
"spec":{{"nodeName":"{}-node-1","terminationGracePeriodSeconds":0,
"containers":[{{"name":"main","image":"busybox","command":["sleep","3600"]}}]}}}}"#,
        lab.name
    );
    for (file, manifest) in [("web.json", WEB), ("client.json", client.as_str())] {
        let path = lab.dir.join(file);
        std::fs::write(&path, manifest).unwrap();
        lab.kubectl(&["apply", "-f", path.to_str().unwrap()]);
    }
    lab.kubectl(&["rollout", "status", "deployment/web", "--timeout=90s"]);
    lab.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/client",
        "--timeout=60s",
    ]);
    let pid = pod_pid(&lab, "client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pods = kube::Api::default_namespaced(rt.block_on(api_client(&lab)));
    let before: BTreeSet<String> = rt
        .block_on(ready_pods(&pods))
        .into_iter()
        .map(|p| p.0)
        .collect();

    lab.kubectl(&["rollout", "restart", "deployment/web"]);
    let (mut rounds, mut requests, mut failures, mut fewest) = (0, 0, Vec::new(), usize::MAX);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready = rt.block_on(ready_pods(&pods));
        fewest = fewest.min(ready.len());
        for (name, ip) in &ready {
            requests += 1;
            if let Err(e) = http_get_from(pid, format!("{ip}:8080").parse().unwrap()) {
                // A pod deleted after the list above is no longer an endpoint (the
                // EndpointSlice controller drops it on its deletionTimestamp): only one still
                // Ready and not terminating had to answer.
                let now = rt.block_on(ready_pods(&pods));
                if now.iter().any(|(n, _)| n == name) {
                    failures.push(format!("{name}: {e}"));
                }
            }
        }
        rounds += 1;
        let names: BTreeSet<String> = ready.iter().map(|p| p.0.clone()).collect();
        if ready.len() == 4 && names.is_disjoint(&before) {
            break;
        }
        assert!(Instant::now() < deadline, "the rollout did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("{rounds} rounds, {requests} requests to Ready pods, fewest Ready {fewest}");
    assert!(
        failures.is_empty(),
        "Ready pods that did not answer: {failures:?}"
    );
    assert!(
        fewest >= 3,
        "at most maxUnavailable=1 pod down at a time, saw {fewest} Ready"
    );
    lab.down();
}

#[test]
fn etcd_and_the_apiserver_killed_and_restarted_lose_nothing_and_the_cluster_converges() {
    if skip_unless_root("lab_failures") {
        return;
    }
    let mut lab = Lab::new();
    lab.up(2);
    let path = lab.dir.join("web.json");
    std::fs::write(&path, DEPLOYMENT).unwrap();
    lab.kubectl(&["apply", "-f", path.to_str().unwrap()]);
    lab.kubectl(&["create", "configmap", "kept", "--from-literal=k=v"]);
    lab.kubectl(&["rollout", "status", "deployment/web", "--timeout=90s"]);

    for what in ["apiserver", "etcd"] {
        let out = lab.minikctl(&["cluster", "stop", what, "--name", &lab.name]);
        assert!(out.status.success(), "{}", show(&out));
    }
    std::thread::sleep(Duration::from_secs(2));
    for what in ["etcd", "apiserver"] {
        let out = lab.minikctl(&["cluster", "start", what, "--name", &lab.name]);
        assert!(out.status.success(), "{}", show(&out));
    }
    wait_for(30, "the apiserver back", || {
        lab.minikctl(&["get", "configmap", "kept"])
            .status
            .success()
            .then_some(())
    });
    let value = lab.kubectl(&["get", "configmap", "kept", "-o", "jsonpath={.data.k}"]);
    assert_eq!(value, "v", "written before the outage, read after it");

    // every component reconnected: the controller scales, the scheduler binds, the kubelets
    // of both nodes run the new pods and report them
    lab.kubectl(&["scale", "deployment/web", "--replicas=6"]);
    wait_for(60, "6 running pods", || {
        let p = pods(&lab);
        (p.iter().filter(|p| p.2 == "Running" && !p.3).count() == 6).then_some(())
    });
    for i in [1, 2] {
        let node = format!("{}-node-{i}", lab.name);
        wait_for(30, "the nodes Ready", || {
            (node_ready(&lab, &node) == "True").then_some(())
        });
    }
    let status = lab.minikctl(&["cluster", "status", "--name", &lab.name]);
    assert!(
        status.status.success(),
        "every process running: {}",
        show(&status)
    );
    lab.down();
}
