//! `minik8s-kubelet --cleanup`, the node reset (`kubeadm reset`), on the real kernel: after a
//! kubelet ran pods on its pod network and stopped (its containers keep running, as they do
//! when a kubelet stops), one `--cleanup` leaves no container or shim process, no mount, no
//! cgroup, no veth, no bridge and no runtime state on tmpfs; a second one is a quick no-op.

mod harness;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::*;
use serde_json::json;

/// Run `minik8s-kubelet --root-dir ROOT --cleanup` as the node's kubelet would be run (its
/// cgroup root from the environment); how long it took.
fn cleanup(root: &Path) -> Duration {
    let started = Instant::now();
    let out = Command::new(bin())
        .args(["--root-dir", root.to_str().unwrap(), "--cleanup"])
        .env("MINIK8S_CGROUP_ROOT", testkit::cgroup_root(root))
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "--cleanup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

#[tokio::test(flavor = "multi_thread")]
async fn cleanup_after_pods_ran_leaves_nothing_and_a_second_is_a_no_op() {
    let net = TestNet::new();
    let c = Cluster::for_kubelets().await;
    let flags = net.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut k = start_kubelet(&c, &flags);
    let sleeper = |name| json!({"name": name, "image": "busybox", "command": ["sleep", "1000"]});
    // a pod that ignores SIGTERM (a reset must not wait for it) and one with a pause process
    c.create_pod(
        "stubborn",
        &k.node,
        json!({"containers": [{"name": "c", "image": "busybox",
        "command": ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]}, sleeper("d")]}),
    )
    .await;
    c.create_pod(
        "shared",
        &k.node,
        json!({"shareProcessNamespace": true, "containers": [sleeper("c")]}),
    )
    .await;
    let mut uids = BTreeSet::new();
    let mut veths = Vec::new();
    for name in ["stubborn", "shared"] {
        let p = c
            .wait_pod(name, 60, "Running", |p| phase(p) == "Running")
            .await;
        let uid = p.metadata.uid.clone().unwrap();
        veths.push(runtime::network::veth_name(&uid));
        uids.insert(uid);
    }
    let pids: BTreeSet<i32> = uids
        .iter()
        .flat_map(|u| ["c", "d"].map(|n| k.container_pid(u, n)))
        .flatten()
        .collect();
    assert!(pids.len() >= 2, "container pids: {pids:?}");
    let runtime_root = k.root.join("runtime");
    let state = runtime::state_dir_for(&runtime_root);
    assert!(state.join("sandboxes").read_dir().unwrap().count() >= 2);
    assert!(veths.iter().all(|v| link_exists(v)));

    // the kubelet stops; its pods keep running until the node is reset
    k.terminate();
    assert!(pids.iter().all(|p| runtime::wait::alive(*p)));
    let took = cleanup(&k.root);
    eprintln!("--cleanup took {took:?}");
    assert!(took < Duration::from_secs(5), "--cleanup took {took:?}");

    testkit::assert_nothing_left(
        std::slice::from_ref(&k.root),
        std::slice::from_ref(&net.bridge),
        &uids,
        &pids,
    );
    let left: Vec<&String> = veths.iter().filter(|v| link_exists(v)).collect();
    assert!(left.is_empty(), "veths left: {left:?}");
    assert!(!state.exists(), "runtime state left: {state:?}");
    let state = state.display().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mounts: Vec<&str> = mounts.lines().filter(|l| l.contains(&state)).collect();
    assert!(mounts.is_empty(), "sandbox mounts left: {mounts:?}");
    assert!(!runtime::network::iptables::installed(&net.bridge));

    let again = cleanup(&k.root);
    assert!(
        again < Duration::from_secs(2),
        "a second --cleanup took {again:?}"
    );
    assert!(
        !Path::new(&state).exists(),
        "a second --cleanup left {state}"
    );
}

#[test]
fn cleanup_of_a_root_that_never_ran_succeeds() {
    let root = std::env::temp_dir().join(format!("minik8s-reset-{}", rand_hex()));
    cleanup(&root);
    assert!(!root.exists(), "--cleanup created {root:?}");
}
