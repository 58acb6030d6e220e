//! Failure stories on the local lab, as the lab exercises tell them: a node is lost (its
//! kubelet killed, `minikctl cluster stop`), goes NotReady, and its pods are replaced on
//! the other node within the lab's grace and toleration times; when it returns
//! (`cluster start`) it is Ready again and the containers of its evicted pods are gone.

mod cluster;
mod labkit;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cluster::skip_unless_root;
use labkit::{show, Lab};
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
