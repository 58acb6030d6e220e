//! The local lab, `minikctl cluster up|status|down`, end to end: two nodes join through a
//! bootstrap token, each in its own network namespace on the lab's switch; a pod on one node
//! pings a pod on the other by its IP (each node routes the other's pod range, host-gw); the
//! Service proxies run in `--proxy-mode iptables` (`lab_services.rs` runs the default,
//! nftables); the context is merged into the kubeconfig and removed again; and `down` leaves
//! nothing: no process, namespace, cgroup, mount, state directory or kubeconfig entry.

mod cluster;
mod labkit;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use cluster::skip_unless_root;
use labkit::{show, Lab};
use runtime::cgroups::Hierarchy;

/// A busybox pod pinned to `node` that sleeps.
fn sleeper(name: &str, node: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}"}},
"spec":{{"nodeName":"{node}","terminationGracePeriodSeconds":0,
"containers":[{{"name":"main","image":"busybox","command":["sleep","3600"]}}]}}}}"#
    )
}

fn apply(lab: &Lab, manifest: &str) {
    let path = lab.dir.join("pod.json");
    std::fs::write(&path, manifest).unwrap();
    lab.kubectl(&["apply", "-f", path.to_str().unwrap()]);
}

#[test]
fn a_lab_comes_up_routes_pods_across_nodes_and_goes_away_leaving_nothing() {
    if skip_unless_root("lab") {
        return;
    }
    let mut lab = Lab::new();
    let out = lab.up_with(2, &["--proxy-mode", "iptables"]);
    assert!(out.contains("nodes joined and Ready"), "{out}");
    let (n1, n2) = (
        format!("{}-node-1", lab.name),
        format!("{}-node-2", lab.name),
    );
    proxies_use_iptables(&n1);

    // the context is current in the test's kubeconfig; both nodes Ready, with their addresses
    let context = lab.kubectl(&["config", "current-context"]);
    assert_eq!(context.trim(), format!("minik8s-{}", lab.name));
    let nodes = lab.kubectl(&["get", "nodes", "-o", "wide", "--no-headers"]);
    for (node, ip) in [(&n1, "10.240.0.11"), (&n2, "10.240.0.12")] {
        let line = nodes.lines().find(|l| l.starts_with(node.as_str()));
        let line = line.unwrap_or_else(|| panic!("{node} missing: {nodes}"));
        assert!(line.contains(" Ready ") && line.contains(ip), "{line}");
    }

    // one pod per node; the first pings the second across the switch
    apply(&lab, &sleeper("a", &n1));
    apply(&lab, &sleeper("b", &n2));
    lab.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/a",
        "pod/b",
        "--timeout=60s",
    ]);
    let ip_b = lab.kubectl(&["get", "pod", "b", "-o", "jsonpath={.status.podIP}"]);
    let ip_a = lab.kubectl(&["get", "pod", "a", "-o", "jsonpath={.status.podIP}"]);
    assert_ne!(
        ip_a.rsplit_once('.').map(|p| p.0),
        ip_b.rsplit_once('.').map(|p| p.0),
        "the two nodes' pod ranges differ"
    );
    let ping = lab.kubectl(&["exec", "a", "--", "ping", "-c", "1", "-W", "5", &ip_b]);
    assert!(ping.contains("1 packets received"), "{ping}");

    // status: every process running, both nodes listed
    let status = lab.minikctl(&["cluster", "status", "--name", &lab.name]);
    assert!(status.status.success(), "{}", show(&status));
    let page = String::from_utf8_lossy(&status.stdout);
    for want in [
        "etcd",
        "apiserver",
        "controller",
        "scheduler",
        "forward",
        &n1,
        &n2,
    ] {
        assert!(page.contains(want), "{want} missing from status:\n{page}");
    }

    // down: nothing of the lab is left
    let record = std::fs::read_to_string(lab.state_dir().join("lab.json")).unwrap();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    let pids: BTreeSet<i64> = record["daemons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["pid"].as_i64().unwrap())
        .collect();
    let out = lab.down();
    assert!(out.contains("Deleted lab"), "{out}");
    assert_nothing_left(&lab, &pids);
}

/// `--proxy-mode iptables` reached the node's proxy: the DNS Service's ClusterIP (which `up`
/// waited to answer through the proxy) is in its iptables chains, and it wrote no nftables
/// table.
fn proxies_use_iptables(node: &str) {
    let in_node = |cmd: &[&str]| {
        Command::new("ip")
            .args(["netns", "exec", &format!("minik8s-{node}")])
            .args(cmd)
            .output()
            .expect("run ip netns exec")
    };
    let nat = in_node(&["iptables-save", "-t", "nat"]);
    let nat = String::from_utf8_lossy(&nat.stdout);
    assert!(
        nat.lines()
            .any(|l| l.starts_with("-A MINIK8S-SERVICES") && l.contains("10.96.0.10/32")),
        "no iptables rule for kube-dns on {node}:\n{nat}"
    );
    let table = in_node(&["nft", "list", "table", "ip", "minik8s-proxy"]);
    assert!(!table.status.success(), "{}", show(&table));
}

/// After `down`: no recorded process, no namespace or mount of the lab, no cgroup root of its
/// nodes, no state directory, no kubeconfig entry.
fn assert_nothing_left(lab: &Lab, pids: &BTreeSet<i64>) {
    std::thread::sleep(Duration::from_millis(100));
    let living: Vec<_> = pids
        .iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .is_ok_and(|s| !s.contains(") Z ") && !s.contains(") X "))
        })
        .collect();
    assert!(living.is_empty(), "lab processes left: {living:?}");
    for host in ["switch", "control-plane", "node-1", "node-2"] {
        assert!(!lab.netns(host).exists(), "namespace {host} left");
    }
    let prefix = format!("minik8s-{}-", lab.name);
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let state = lab.state_dir().display().to_string();
    let mounts: Vec<&str> = mountinfo
        .lines()
        .filter(|l| l.contains(&prefix) || l.contains(&state))
        .collect();
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    let cgroups = Hierarchy::host();
    let left: Vec<_> = ["node-1", "node-2"]
        .iter()
        .flat_map(|n| cgroups.dirs(std::path::Path::new(&format!("{prefix}{n}"))))
        .filter(|d| d.exists())
        .collect();
    assert!(left.is_empty(), "cgroups left: {left:?}");
    assert!(!lab.state_dir().exists(), "state directory left");
    let procs: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&state))
        .collect();
    assert!(procs.is_empty(), "processes of the lab left: {procs:?}");
    let config = std::fs::read_to_string(&lab.kubeconfig).unwrap_or_default();
    assert!(
        !config.contains(&prefix[..prefix.len() - 1]),
        "kubeconfig entry left:\n{config}"
    );
}
