//! `minikctl inspect`, the built binary against a whole cluster (etcd, apiserver, controller
//! manager, scheduler, a real kubelet with a pod network), as root: what it prints about a pod
//! is checked against the kernel of its node, read by this test directly. The namespace inodes
//! against `/proc/<pid>/ns/*`, the cgroup's limit files against the cgroup filesystem, the
//! overlay root and the volume against `/proc/<pid>/mounts`, the etcd key and resourceVersion
//! against the API; then `inspect node`, and the errors a user meets (an unknown pod, an
//! unknown container: one line on stderr, exit 1). Harness: `cluster/mod.rs`; the kubelet's
//! own test of the same facts through `kubectl get --raw` is in `kubelet/tests/kubelet.rs`.

mod cluster;

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::process::Output;
use std::time::{Duration, Instant};

use cluster::*;
use serde_json::{json, Value};

/// Run the built `minikctl` against the cluster's kubeconfig.
async fn minikctl(c: &Cluster, args: &[&str]) -> Output {
    tokio::process::Command::new(MINIKCTL)
        .arg("--kubeconfig")
        .arg(c.kubeconfig())
        .args(args)
        .env_remove("KUBECONFIG")
        .kill_on_drop(true)
        .output()
        .await
        .expect("run minikctl")
}

/// `minikctl ARGS` that must succeed; its stdout.
async fn minikctl_ok(c: &Cluster, args: &[&str]) -> String {
    let out = minikctl(c, args).await;
    assert!(
        out.status.success(),
        "minikctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// `minikctl ARGS` that must fail as kubectl fails: exit 1, nothing on stdout, one line on
/// stderr; that line.
async fn minikctl_fails(c: &Cluster, args: &[&str]) -> String {
    let out = minikctl(c, args).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "minikctl {args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "minikctl {args:?} printed to stdout");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    stderr.trim_end().to_string()
}

/// The inode of `/proc/<pid>/ns/<kind>`, as `ls -l /proc/<pid>/ns` shows it.
fn ns_inode(pid: i64, kind: &str) -> u64 {
    std::fs::metadata(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .ino()
}

fn container<'a>(v: &'a Value, name: &str) -> &'a Value {
    v["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no container {name} in {v}"))
}

/// The namespace `kind` of a container's kernel view: (inode, shared with the pod?).
fn ns_of(kernel: &Value, kind: &str) -> (u64, bool) {
    let n = kernel["namespaces"]
        .as_array()
        .and_then(|ns| ns.iter().find(|n| n["kind"] == kind))
        .unwrap_or_else(|| panic!("no {kind} namespace in {kernel}"));
    (n["inode"].as_u64().unwrap(), n["sharedFrom"].is_string())
}

/// A cluster with one Ready node and the pod `peek`: `main` (CPU and memory limits, an
/// emptyDir at /data; it changes its root and the volume, then sleeps) and `side`.
async fn cluster_with_pod() -> (Cluster, Kubelet) {
    let c = start_cluster(controller::manager::Config::default()).await;
    let k = start_kubelet(&c, &format!("inspect-{}", rand_hex()));
    let nodes = c.nodes();
    wait_for(30, "node Ready", || async {
        let n = nodes.get_opt(&k.node).await.ok()??;
        (ready(&n) == Some("True")).then_some(())
    })
    .await;
    c.create_pod("peek", &k.node, json!({"terminationGracePeriodSeconds": 0,
        "volumes": [{"name": "scratch", "emptyDir": {}}],
        "containers": [
            {"name": "main", "image": "busybox",
             "command": ["sh", "-c", "echo changed > /etc/motd; rm /etc/group; mkdir /data/made-inside; exec sleep 1000"],
             "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
             "volumeMounts": [{"name": "scratch", "mountPath": "/data"}]},
            {"name": "side", "image": "busybox", "command": ["sleep", "1000"]}]}))
        .await;
    c.wait_pod("peek", 60, "Running", |p| phase(p) == "Running")
        .await;
    (c, k)
}

/// `inspect pod peek -o json` once `main` has made its changes (it execs sleep after them)
/// and the pod's resourceVersion held still around the call, so the two can be compared.
async fn settled_view(c: &Cluster) -> (Value, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let before = c
            .pods()
            .get("peek")
            .await
            .unwrap()
            .metadata
            .resource_version;
        let out = minikctl_ok(c, &["inspect", "pod", "peek", "-o", "json"]).await;
        let after = c
            .pods()
            .get("peek")
            .await
            .unwrap()
            .metadata
            .resource_version;
        let v: Value = serde_json::from_str(&out).expect("inspect -o json is JSON");
        let execd = container(&v, "main")["kernel"]["init"]["cmdline"] == json!(["sleep", "1000"]);
        if execd && before == after {
            return (v, after.unwrap());
        }
        assert!(Instant::now() < deadline, "main never exec'd sleep: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Namespaces: the inodes `/proc` shows; net, ipc, uts shared by the two containers (the
/// sandbox's), pid, mnt, cgroup each their own.
fn check_namespaces(v: &Value, main: &Value, side: &Value) {
    let pid = main["init"]["hostPid"].as_i64().unwrap();
    let side_pid = side["init"]["hostPid"].as_i64().unwrap();
    let sandbox: Vec<u64> = v["sandbox"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n[2].as_u64().unwrap())
        .collect();
    for kind in ["net", "ipc", "uts", "pid", "mnt", "cgroup"] {
        let (inode, shared) = ns_of(main, kind);
        let (side_inode, _) = ns_of(side, kind);
        assert_eq!(inode, ns_inode(pid, kind), "{kind}");
        assert_eq!(side_inode, ns_inode(side_pid, kind), "{kind}");
        let pod_wide = matches!(kind, "net" | "ipc" | "uts");
        assert_eq!(shared, pod_wide, "{kind}");
        assert_eq!(inode == side_inode, pod_wide, "{kind}");
        assert_eq!(sandbox.contains(&inode), pod_wide, "{kind}");
    }
}

/// The cgroup: every limit file as the cgroup filesystem holds it, the spec's limits among
/// them, and the process in that cgroup.
fn check_cgroup(main: &Value) {
    let pid = main["init"]["hostPid"].as_i64().unwrap();
    let limits = main["cgroup"]["limits"].as_array().unwrap();
    for l in limits {
        let on_disk = std::fs::read_to_string(l["path"].as_str().unwrap()).unwrap();
        assert_eq!(on_disk.trim(), l["value"], "{l}");
    }
    let value = |file: &str| {
        limits
            .iter()
            .find(|l| l["path"].as_str().unwrap().ends_with(file))
            .map(|l| l["value"].as_str().unwrap().to_string())
    };
    let memory = value("/memory.max").or_else(|| value("/memory.limit_in_bytes"));
    assert_eq!(memory.as_deref(), Some("67108864"), "{limits:?}");
    let cpu = value("/cpu.max").or_else(|| value("/cpu.cfs_quota_us"));
    assert!(cpu.is_some_and(|v| v.starts_with("50000")), "{limits:?}");
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = main["cgroup"]["path"].as_str().unwrap();
    let leaf = path.rsplit('/').next().unwrap();
    assert!(
        cg.lines().all(|l| l.ends_with(leaf) || l.ends_with('/')),
        "{cg} vs {path}"
    );
}

/// The root filesystem and the volume, against `/proc/<pid>/mounts`.
fn check_mounts(c: &Value) {
    let main = &c["kernel"];
    let pid = main["init"]["hostPid"].as_i64().unwrap();
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mounts")).unwrap();
    let at = |dir: &str| {
        mounts
            .lines()
            .find(|l| l.split(' ').nth(1) == Some(dir))
            .unwrap_or_else(|| panic!("nothing mounted at {dir}: {mounts}"))
    };
    let root = at("/");
    let rootfs = &main["rootfs"];
    assert!(root.starts_with("overlay / overlay "), "{root}");
    let upper = rootfs["upperdir"].as_str().unwrap();
    assert!(root.contains(&format!("upperdir={upper}")), "{root}");
    for dir in rootfs["lowerdirs"].as_array().unwrap() {
        assert!(root.contains(dir.as_str().unwrap()), "{dir} not in {root}");
    }
    let changed: Vec<(&str, &str)> = rootfs["upper"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap(), e["kind"].as_str().unwrap()))
        .collect();
    assert!(changed.contains(&("/etc/group", "whiteout")), "{changed:?}");
    assert!(changed.contains(&("/etc/motd", "file")), "{changed:?}");
    at("/data");
    let vol = &c["volumes"][0];
    assert_eq!(
        (&vol["name"], &vol["mountPath"]),
        (&json!("scratch"), &json!("/data"))
    );
    let host = std::path::Path::new(vol["hostPath"].as_str().unwrap());
    assert!(host.join("made-inside").is_dir(), "{vol}");
}

/// The text view names the same facts a user would look for.
async fn check_text(c: &Cluster, v: &Value, rv: &str) {
    let text = minikctl_ok(c, &["inspect", "pod", "peek"]).await;
    let main = &container(v, "main")["kernel"];
    let pid = main["init"]["hostPid"].as_i64().unwrap();
    let host_path = container(v, "main")["volumes"][0]["hostPath"]
        .as_str()
        .unwrap();
    for want in [
        format!("/registry/pods/default/peek (resourceVersion {rv})"),
        format!("host pid {pid}: sleep 1000"),
        format!("net:[{}]", ns_inode(pid, "net")),
        format!("pid:[{}]", ns_inode(pid, "pid")),
        "shared with the pod".to_string(),
        "Container side".to_string(),
        format!("<- {host_path} (rw)"),
        "/etc/group (deleted: whiteout)".to_string(),
        format!(
            "Pod IP:           {}",
            v["network"]["podIP"].as_str().unwrap()
        ),
    ] {
        assert!(text.contains(&want), "{want:?} missing from:\n{text}");
    }
}

/// `inspect node`: its pod among the requests, the image, the Lease and the etcd key.
async fn check_node(c: &Cluster, node: &str) {
    let text = minikctl_ok(c, &["inspect", "node", node]).await;
    for want in [
        "Lease:",
        "renewed",
        "Ready=True",
        "busybox:latest",
        "cpu 500m",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("default") && l.contains("peek")),
        "{text}"
    );
    let out = minikctl_ok(c, &["inspect", "node", node, "-o", "json"]).await;
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["api"]["etcdKey"], format!("/registry/minions/{node}"));
    let n = c.nodes().get(node).await.unwrap();
    assert!(
        v["api"]["leaseRenewedSecondsAgo"].as_i64().unwrap() < 10,
        "{v}"
    );
    assert!(n.metadata.resource_version.is_some());
    assert_eq!(v["requested"]["pods"], 1, "{v}");
}

/// The errors a user meets, each one line and exit 1.
async fn check_errors(c: &Cluster) {
    let line = minikctl_fails(c, &["inspect", "pod", "nope"]).await;
    assert_eq!(
        line,
        r#"Error from server (NotFound): pods "nope" not found"#
    );
    let line = minikctl_fails(c, &["inspect", "pod", "peek", "-c", "nope"]).await;
    assert_eq!(line, "error: container nope is not valid for pod peek");
    let line = minikctl_fails(c, &["inspect", "node", "no-such-node"]).await;
    assert_eq!(
        line,
        r#"Error from server (NotFound): nodes "no-such-node" not found"#
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn inspect_pod_and_node_match_the_kernel_of_the_node() {
    if skip_unless_root("inspect_pod_and_node_match_the_kernel_of_the_node") {
        return;
    }
    let (c, k) = cluster_with_pod().await;
    let pod = c.pods().get("peek").await.unwrap();
    let (v, rv) = settled_view(&c).await;

    assert_eq!(v["uid"], uid(&pod).as_str());
    assert_eq!(v["nodeName"], k.node.as_str());
    assert_eq!(v["api"]["etcdKey"], "/registry/pods/default/peek");
    assert_eq!(v["api"]["resourceVersion"], rv.as_str());
    let main = &container(&v, "main")["kernel"];
    let side = &container(&v, "side")["kernel"];
    let pid = main["init"]["hostPid"].as_i64().unwrap();
    assert_eq!(Some(pid as i32), k.container_pid(&uid(&pod), "main"));
    assert_eq!(main["pidOne"]["hostPid"], pid, "its own pid namespace");
    check_namespaces(&v, main, side);
    check_cgroup(main);
    check_mounts(container(&v, "main"));
    check_text(&c, &v, &rv).await;

    // -c: that container only
    let out = minikctl_ok(&c, &["inspect", "pod", "peek", "-c", "side", "-o", "json"]).await;
    let only: Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&Value> = only["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["name"])
        .collect();
    assert_eq!(names, [&json!("side")]);

    check_node(&c, &k.node).await;
    check_errors(&c).await;

    // Clean up: the pod deleted through the API, its containers gone from the node.
    let pids: BTreeSet<i32> = [main, side]
        .iter()
        .map(|k| k["init"]["hostPid"].as_i64().unwrap() as i32)
        .collect();
    c.pods()
        .delete("peek", &Default::default())
        .await
        .expect("delete the pod");
    c.wait_gone("peek", 60).await;
    wait_for(30, "the node's runtime empty", || async {
        let rt = k.runtime();
        (rt.container_ids().is_empty() && rt.sandbox_ids().is_empty()).then_some(())
    })
    .await;
    let (roots, bridges) = (
        vec![k.root.clone()],
        k.bridge.clone().into_iter().collect::<Vec<_>>(),
    );
    drop(k);
    assert_nothing_left(&roots, &bridges, &BTreeSet::from([uid(&pod)]), &pids);
}
