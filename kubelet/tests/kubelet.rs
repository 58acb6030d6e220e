//! The kubelet end to end, as root: real etcd + apiserver, the real `minik8s-kubelet` binary,
//! real containers. Pods are bound by setting `spec.nodeName` (no scheduler).

mod harness;

use std::time::{Duration, Instant};

use harness::*;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node};
use kube::api::{Api, ListParams};
use serde_json::json;

async fn lease_renew_time(c: &Cluster, node: &str) -> Option<jiff::Timestamp> {
    let leases: Api<Lease> = Api::namespaced(c.client(), "kube-node-lease");
    leases
        .get_opt(node)
        .await
        .ok()
        .flatten()?
        .spec?
        .renew_time
        .map(|t| t.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn node_registers_and_lease_renews_until_the_kubelet_stops() {
    let c = Cluster::for_kubelets().await;
    let mut k = start_kubelet(&c, &[]);
    let nodes: Api<Node> = Api::all(c.client());
    let deadline = Instant::now() + Duration::from_secs(30);
    let node = loop {
        if let Some(n) = nodes.get_opt(&k.node).await.unwrap() {
            if n.status
                .as_ref()
                .and_then(|s| s.node_info.as_ref())
                .is_some()
            {
                break n;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node never registered:\n{}",
            k.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let labels = node.metadata.labels.clone().unwrap();
    assert_eq!(labels["kubernetes.io/hostname"], k.node);
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert!(labels.contains_key("kubernetes.io/arch"));
    let st = node.status.clone().unwrap();
    let info = st.node_info.unwrap();
    assert_eq!(info.container_runtime_version, "minik8s://0.1.0");
    assert_eq!(info.kubelet_version, "v1.32.0-minik8s");
    assert_eq!(info.operating_system, "linux");
    for v in [
        &info.boot_id,
        &info.kernel_version,
        &info.os_image,
        &info.architecture,
    ] {
        assert!(!v.is_empty(), "{info:?}");
    }
    // a machine ID where the machine has one (a minimal container image has none)
    let host_id = ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .find(|id| !id.is_empty())
        .unwrap_or_default();
    assert_eq!(info.machine_id, host_id, "{info:?}");
    if !host_id.is_empty() {
        assert!(!info.system_uuid.is_empty(), "{info:?}");
    }
    let cap = st.capacity.unwrap();
    assert_eq!(cap["pods"].0, "110");
    assert!(cap.contains_key("cpu") && cap.contains_key("memory"));
    assert!(st.allocatable.unwrap().contains_key("memory"));
    let addrs = st.addresses.unwrap();
    assert!(addrs
        .iter()
        .any(|a| a.type_ == "InternalIP" && a.address == "127.0.0.1"));
    assert!(addrs.iter().any(|a| a.type_ == "Hostname"));
    let conds = st.conditions.unwrap();
    for t in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert!(conds.iter().any(|c| c.type_ == t), "{t} missing");
    }
    assert_eq!(
        conds.iter().find(|c| c.type_ == "Ready").unwrap().status,
        "True"
    );
    assert_eq!(
        st.daemon_endpoints.unwrap().kubelet_endpoint.unwrap().port,
        k.port as i32
    );

    // the lease is renewed every --lease-interval (1 s here)
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        if let Some(t) = lease_renew_time(&c, &k.node).await {
            break t;
        }
        assert!(Instant::now() < deadline, "no lease:\n{}", k.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let leases: Api<Lease> = Api::namespaced(c.client(), "kube-node-lease");
    let lease = leases.get(&k.node).await.unwrap();
    assert_eq!(
        lease.spec.as_ref().unwrap().lease_duration_seconds,
        Some(40)
    );
    assert_eq!(
        lease.spec.as_ref().unwrap().holder_identity.as_deref(),
        Some(k.node.as_str())
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while lease_renew_time(&c, &k.node).await.unwrap() <= first {
        assert!(Instant::now() < deadline, "lease never renewed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // stopped kubelet: no more renewals
    k.kill();
    let stopped = lease_renew_time(&c, &k.node).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        lease_renew_time(&c, &k.node).await.unwrap(),
        stopped,
        "lease renewed by a dead kubelet"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_runs_with_init_container_env_volumes_and_events() {
    let c = Cluster::for_kubelets().await;
    let k = start_kubelet(&c, &[]);
    let pod = c
        .create_pod(
            "web",
            &k.node,
            json!({
                "initContainers": [{"name": "init", "image": "busybox", "command": ["sh", "-c", "echo prepared > /work/ready"],
                                    "volumeMounts": [{"name": "work", "mountPath": "/work"}]}],
                "containers": [{"name": "main", "image": "busybox",
                    "command": ["sh", "-c", concat!("cat /work/ready; echo $GREETING $POD; cat /etc/podinfo/name; echo; id -u; ",
                        // its limits, where the JVM and Go's automaxprocs look (v1, else v2)
                        "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max; ",
                        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; ",
                        "exec sleep 1000")],
                    "env": [{"name": "GREETING", "value": "hello"}, {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                    "securityContext": {"runAsUser": 1234, "allowPrivilegeEscalation": false},
                    "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
                    "volumeMounts": [{"name": "work", "mountPath": "/work"}, {"name": "info", "mountPath": "/etc/podinfo", "readOnly": true}]}],
                "volumes": [{"name": "work", "emptyDir": {}},
                            {"name": "info", "downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}}],
                "terminationGracePeriodSeconds": 1,
            }),
        )
        .await;
    let uid = pod.metadata.uid.clone().unwrap();
    let p = c
        .wait_pod("web", 60, "Running and Ready", |p| {
            phase(p) == "Running" && condition(p, "Ready").as_deref() == Some("True")
        })
        .await;
    let st = p.status.as_ref().unwrap();
    assert_eq!(st.host_ip.as_deref(), Some("127.0.0.1"));
    assert!(st.start_time.is_some());
    for t in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        assert_eq!(condition(&p, t).as_deref(), Some("True"), "{t}");
    }
    let cs = container_status(&p, 0).unwrap();
    assert!(cs.ready && cs.started == Some(true));
    assert_eq!(cs.restart_count, 0);
    assert!(cs
        .container_id
        .as_deref()
        .unwrap()
        .starts_with("minik8s://"));
    assert!(cs.image_id.contains("sha256:"), "{}", cs.image_id);
    assert!(cs.state.as_ref().unwrap().running.is_some());
    let init = &st.init_container_statuses.as_ref().unwrap()[0];
    assert_eq!(
        init.state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("Completed")
    );

    // the container saw the init container's file, env, downward API, its user ...
    let rt = k.runtime();
    let id = cs
        .container_id
        .as_deref()
        .unwrap()
        .trim_start_matches("minik8s://")
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text: Vec<String> = rt
            .read_logs(&id, 0)
            .unwrap()
            .0
            .into_iter()
            .map(|(_, l)| l)
            .collect();
        if text.len() >= 6 || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // ... and its own limits under /sys/fs/cgroup: 500m of CPU, 64Mi
    assert_eq!(
        text,
        vec!["prepared", "hello web", "web", "1234", "50000", "67108864"]
    );
    // resources became cgroup limits
    let inspect = rt.inspect(&id).unwrap();
    assert_eq!(
        inspect["Resources"]["memory_bytes"],
        json!(64 << 20),
        "{inspect}"
    );
    let pid = harness::container_pid(&rt, &uid, "main");
    assert_eq!(pid, inspect["HostPid"].as_i64().map(|p| p as i32));
    // in every hierarchy, under this node's own cgroup root (`--cgroup-root`), not `minik8s`
    let cgroups = std::fs::read_to_string(format!("/proc/{}/cgroup", pid.unwrap())).unwrap();
    let own_root = format!("/{}/", testkit::cgroup_root(&k.root).display());
    for line in cgroups.lines().filter(|l| !l.ends_with(":/")) {
        assert!(line.contains(&own_root), "{line} is not under {own_root}");
    }

    // events were posted
    let events: Api<Event> = Api::namespaced(c.client(), "default");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = events.list(&ListParams::default()).await.unwrap();
        let reasons: Vec<String> = list
            .items
            .iter()
            .filter(|e| e.involved_object.uid.as_deref() == Some(&uid))
            .filter_map(|e| e.reason.clone())
            .collect();
        if ["Pulled", "Created", "Started"]
            .iter()
            .all(|r| reasons.iter().any(|x| x == r))
        {
            break;
        }
        assert!(Instant::now() < deadline, "events: {reasons:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `seccompProfile: {type: RuntimeDefault}` gives the runtime's default filter, as Kubernetes
/// does; a container without a profile runs unconfined (no `SeccompDefault` feature); a
/// `Localhost` profile comes from the kubelet's `<root-dir>/seccomp`.
#[tokio::test(flavor = "multi_thread")]
async fn seccomp_runtime_default_only_when_the_pod_asks() {
    let c = Cluster::for_kubelets().await;
    let k = start_kubelet(&c, &[]);
    let show = json!([
        "sh",
        "-c",
        "grep '^Seccomp:' /proc/self/status | cut -f2; exec sleep 1000"
    ]);
    let seccomp_dir = k.root.join("seccomp");
    std::fs::create_dir_all(&seccomp_dir).unwrap();
    std::fs::write(
        seccomp_dir.join("no-mkdir.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    let try_mkdir = json!(["sh", "-c", "mkdir /tmp/x 2>&1 || true; exec sleep 1000"]);
    let pod = c
        .create_pod(
            "seccomp",
            &k.node,
            json!({
                "containers": [
                    {"name": "confined", "image": "busybox", "command": show,
                     "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}},
                    {"name": "open", "image": "busybox", "command": show},
                    {"name": "local", "image": "busybox", "command": try_mkdir,
                     "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "no-mkdir.json"}}}],
                "terminationGracePeriodSeconds": 1,
            }),
        )
        .await;
    let uid = pod.metadata.uid.clone().unwrap();
    let p = c
        .wait_pod("seccomp", 60, "Running", |p| phase(p) == "Running")
        .await;
    let rt = k.runtime();
    let mut modes = Vec::new();
    for name in ["confined", "open", "local"] {
        let statuses = p
            .status
            .as_ref()
            .unwrap()
            .container_statuses
            .iter()
            .flatten();
        let cs = statuses.into_iter().find(|s| s.name == name).unwrap();
        let id = cs
            .container_id
            .as_deref()
            .unwrap()
            .trim_start_matches("minik8s://");
        let deadline = Instant::now() + Duration::from_secs(20);
        let lines = loop {
            let lines: Vec<String> = rt
                .read_logs(id, 0)
                .unwrap()
                .0
                .into_iter()
                .map(|(_, l)| l)
                .collect();
            if !lines.is_empty() || Instant::now() > deadline {
                break lines;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        modes.push(lines.join(","));
    }
    assert_eq!(modes[..2], ["2", "0"], "pod {uid}");
    assert!(modes[2].contains("Permission denied"), "{modes:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn crashing_container_backs_off_and_restart_count_grows() {
    let c = Cluster::for_kubelets().await;
    let k = start_kubelet(&c, &[]);
    c.create_pod("crash", &k.node, json!({"containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "echo boom; exit 3"]}]})).await;
    let p = c
        .wait_pod("crash", 60, "two restarts", |p| {
            container_status(p, 0).is_some_and(|s| s.restart_count >= 2)
        })
        .await;
    let cs = container_status(&p, 0).unwrap();
    let last = cs
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("lastState.terminated");
    assert_eq!(last.exit_code, 3);
    assert_eq!(last.reason.as_deref(), Some("Error"));
    assert_eq!(phase(&p), "Running");
    c.wait_pod("crash", 60, "CrashLoopBackOff", |p| {
        container_status(p, 0)
            .and_then(|s| s.state.as_ref()?.waiting.as_ref()?.reason.clone())
            .as_deref()
            == Some("CrashLoopBackOff")
    })
    .await;
    // only the current and the previous attempt are kept in the runtime
    let rt = k.runtime();
    let deadline = Instant::now() + Duration::from_secs(20);
    while rt.container_ids().len() > 2 {
        assert!(
            Instant::now() < deadline,
            "old attempts not removed: {:?}",
            rt.container_ids()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_policy_never_ends_in_succeeded_or_failed() {
    let c = Cluster::for_kubelets().await;
    let k = start_kubelet(&c, &[]);
    c.create_pod("ok", &k.node, json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]})).await;
    c.create_pod("bad", &k.node, json!({"restartPolicy": "OnFailure", "initContainers": [{"name": "i", "image": "busybox", "command": ["true"]}],
        "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "test -e /marker || { touch /marker; exit 1; }"]}]})).await;
    c.create_pod("never", &k.node, json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "exit 7"]}]})).await;
    let p = c
        .wait_pod("ok", 60, "Succeeded", |p| phase(p) == "Succeeded")
        .await;
    assert_eq!(
        container_status(&p, 0)
            .unwrap()
            .state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .reason
            .as_deref(),
        Some("Completed")
    );
    assert_eq!(condition(&p, "Ready").as_deref(), Some("False"));
    let p = c
        .wait_pod("never", 60, "Failed", |p| phase(p) == "Failed")
        .await;
    let t = container_status(&p, 0)
        .unwrap()
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (7, Some("Error")));
    assert_eq!(container_status(&p, 0).unwrap().restart_count, 0);
    // OnFailure: the writable layer is per attempt, so the retry fails again... until back-off lets it run
    let p = c
        .wait_pod("bad", 60, "restarted", |p| {
            container_status(p, 0).is_some_and(|s| s.restart_count >= 1)
        })
        .await;
    assert_eq!(
        container_status(&p, 0)
            .unwrap()
            .last_state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .exit_code,
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_delete_stops_within_grace_and_removes_everything() {
    let c = Cluster::for_kubelets().await;
    let k = start_kubelet(&c, &[]);
    let pod = c
        .create_pod("term", &k.node, json!({"terminationGracePeriodSeconds": 20,
            "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "trap 'echo bye; exit 0' TERM; while true; do sleep 0.2; done"]}]}))
        .await;
    let uid = pod.metadata.uid.clone().unwrap();
    c.wait_pod("term", 60, "Running", |p| phase(p) == "Running")
        .await;
    let rt = k.runtime();
    let pid = container_pid(&rt, &uid, "c").expect("container pid");
    assert!(runtime::container::alive(pid));
    let started = Instant::now();
    let out = c
        .kubectl(&["delete", "pod", "term", "--wait=true", "--timeout=60s"])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.wait_gone("term", 30).await;
    // the trap exits on SIGTERM: well within the 20 s grace period
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert!(!runtime::container::alive(pid));
    assert!(rt.container_ids().is_empty(), "{:?}", rt.container_ids());
    assert!(rt.sandbox_ids().is_empty(), "{:?}", rt.sandbox_ids());
    assert!(!k.root.join("pods").join(&uid).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn kubelet_restart_readopts_running_containers_and_removes_orphans() {
    let c = Cluster::for_kubelets().await;
    let mut k = start_kubelet(&c, &[]);
    let keep = c.create_pod("keep", &k.node, json!({"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1000"]}], "terminationGracePeriodSeconds": 0})).await;
    let gone = c.create_pod("gone", &k.node, json!({"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1000"]}], "terminationGracePeriodSeconds": 0})).await;
    let before = c
        .wait_pod("keep", 60, "Running", |p| phase(p) == "Running")
        .await;
    c.wait_pod("gone", 60, "Running", |p| phase(p) == "Running")
        .await;
    let rt = k.runtime();
    let pid = container_pid(&rt, keep.metadata.uid.as_deref().unwrap(), "c").unwrap();
    let gone_pid = container_pid(&rt, gone.metadata.uid.as_deref().unwrap(), "c").unwrap();

    k.kill();
    // while the kubelet is down, "gone" is force-deleted from the API
    let out = c
        .kubectl(&["delete", "pod", "gone", "--grace-period=0", "--force"])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        runtime::container::alive(pid),
        "container died with the kubelet"
    );
    k.spawn();

    // the orphan goes; the survivor is untouched
    let deadline = Instant::now() + Duration::from_secs(30);
    while runtime::container::alive(gone_pid)
        || rt
            .sandbox_ids()
            .contains(gone.metadata.uid.as_ref().unwrap())
    {
        assert!(
            Instant::now() < deadline,
            "orphan not removed:\n{}",
            k.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = c
        .wait_pod("keep", 30, "Running", |p| phase(p) == "Running")
        .await;
    let (b, a) = (
        container_status(&before, 0).unwrap(),
        container_status(&after, 0).unwrap(),
    );
    assert_eq!(a.container_id, b.container_id);
    assert_eq!(a.restart_count, 0);
    assert_eq!(
        container_pid(&rt, keep.metadata.uid.as_deref().unwrap(), "c"),
        Some(pid)
    );
    assert!(runtime::container::alive(pid));
    assert_eq!(rt.container_ids().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_liveness_probe_restarts_the_container() {
    let c = Cluster::for_kubelets().await;
    let k = start_kubelet(&c, &[]);
    c.create_pod("live", &k.node, json!({"terminationGracePeriodSeconds": 1, "containers": [{"name": "c", "image": "busybox",
        "command": ["sh", "-c", "touch /tmp/healthy; sleep 2; rm /tmp/healthy; sleep 1000"],
        "livenessProbe": {"exec": {"command": ["cat", "/tmp/healthy"]}, "periodSeconds": 1, "failureThreshold": 2}}]})).await;
    let p = c
        .wait_pod("live", 90, "a restart", |p| {
            container_status(p, 0).is_some_and(|s| s.restart_count >= 1)
        })
        .await;
    let uid = p.metadata.uid.clone().unwrap();
    let events: Api<Event> = Api::namespaced(c.client(), "default");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reasons: Vec<String> = events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.involved_object.uid.as_deref() == Some(&uid))
            .filter_map(|e| e.reason)
            .collect();
        if reasons.iter().any(|r| r == "Unhealthy") && reasons.iter().any(|r| r == "Killing") {
            break;
        }
        assert!(Instant::now() < deadline, "events: {reasons:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_probe_gates_ready() {
    let c = Cluster::for_kubelets().await;
    let k = start_kubelet(&c, &[]);
    c.create_pod("ready", &k.node, json!({"terminationGracePeriodSeconds": 0, "containers": [{"name": "c", "image": "busybox",
        "command": ["sh", "-c", "sleep 4; touch /tmp/ready; sleep 1000"],
        "readinessProbe": {"exec": {"command": ["test", "-e", "/tmp/ready"]}, "periodSeconds": 1}}]})).await;
    let p = c
        .wait_pod("ready", 60, "Running", |p| phase(p) == "Running")
        .await;
    let cs = container_status(&p, 0).unwrap();
    assert!(cs.state.as_ref().unwrap().running.is_some());
    assert!(!cs.ready, "ready before the probe passed");
    assert_eq!(condition(&p, "Ready").as_deref(), Some("False"));
    c.wait_pod("ready", 60, "Ready", |p| {
        condition(p, "Ready").as_deref() == Some("True")
            && container_status(p, 0).is_some_and(|s| s.ready)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kubelet_api_requires_the_token() {
    let c = Cluster::for_kubelets().await;
    let k = start_kubelet(&c, &[]);
    let base = format!("https://127.0.0.1:{}", k.port);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest_get(&format!("{base}/healthz"), None).await {
            assert_eq!(r.0, 200);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "kubelet API never came up:\n{}",
            k.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        reqwest_get(&format!("{base}/metrics"), None)
            .await
            .unwrap()
            .0,
        401
    );
    assert_eq!(
        reqwest_get(&format!("{base}/metrics"), Some("wrong"))
            .await
            .unwrap()
            .0,
        401
    );
    assert_eq!(
        reqwest_get(&format!("{base}/containerLogs/default/x/y"), None)
            .await
            .unwrap()
            .0,
        401
    );
    assert_eq!(
        reqwest_get(&format!("{base}/inspect/node"), None)
            .await
            .unwrap()
            .0,
        401
    );
    let (code, body) = reqwest_get(&format!("{base}/metrics"), Some(&k.token))
        .await
        .unwrap();
    assert_eq!(code, 200);
    assert!(
        body.contains("kubelet_pod_start_duration_seconds_bucket"),
        "{body}"
    );
    // HTTPS only: plain HTTP gets no answer, even with the token
    let plain = reqwest_get(
        &format!("http://127.0.0.1:{}/metrics", k.port),
        Some(&k.token),
    )
    .await;
    assert!(!matches!(plain, Ok((200, _))), "{plain:?}");
    // the self-signed serving certificate is kept for the next start
    let pem = std::fs::read_to_string(k.root.join("pki/kubelet.crt")).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
}

/// `harness::get_text` without a client certificate: (status code, 0 without one; body).
async fn reqwest_get(url: &str, token: Option<&str>) -> std::io::Result<(u16, String)> {
    let text = get_text(url, token, None).await?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status_of(&text).unwrap_or(0), body))
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_logs_and_exec_through_the_apiserver() {
    let c = Cluster::for_kubelets().await;
    let k = start_kubelet(&c, &[]);
    c.create_pod("talk", &k.node, json!({"terminationGracePeriodSeconds": 0, "containers": [{"name": "c", "image": "busybox",
        "command": ["sh", "-c", "echo one; echo two; echo err >&2; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.3; done"]}]})).await;
    c.wait_pod("talk", 60, "Running", |p| phase(p) == "Running")
        .await;

    // plain logs, tail, timestamps
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = c.kubectl(&["logs", "talk"]).await;
        let s = String::from_utf8_lossy(&out.stdout).to_string();
        // stdout and stderr are separate pipes: their relative order is not fixed
        let l: Vec<&str> = s.lines().collect();
        if out.status.success()
            && l.len() >= 4
            && l[..2] == ["one", "two"]
            && l.contains(&"err")
            && l.contains(&"tick 1")
        {
            break;
        }
        assert!(Instant::now() < deadline, "kubectl logs: {}", text(&out));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = c
        .kubectl(&["logs", "talk", "--tail=1", "--timestamps"])
        .await;
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(s.lines().count(), 1, "{}", text(&out));
    let (ts, rest) = s.trim().split_once(' ').unwrap();
    assert!(ts.parse::<jiff::Timestamp>().is_ok(), "{s}");
    assert!(rest.starts_with("tick ") || rest == "err", "{s}");

    // logs -f keeps streaming new lines
    let mut follow = tokio::process::Command::new(testkit::kubectl())
        .args(["--server", c.url(), "--cache-dir"])
        .arg(&c.cache)
        .args(["logs", "-f", "talk", "--tail=1"])
        .env("KUBECONFIG", "/dev/null")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines =
        tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(follow.stdout.take().unwrap()));
    let mut ticks = Vec::new();
    while ticks.len() < 4 {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("logs -f stalled")
            .unwrap()
            .expect("logs -f ended");
        if let Some(n) = line.strip_prefix("tick ") {
            ticks.push(n.parse::<u64>().unwrap());
        }
    }
    assert!(ticks.windows(2).all(|w| w[1] == w[0] + 1), "{ticks:?}");
    let _ = follow.kill().await;

    // exec: output, exit code, stdin
    let out = c
        .kubectl(&[
            "exec",
            "talk",
            "--",
            "sh",
            "-c",
            "echo hi from $(hostname); echo oops >&2; exit 3",
        ])
        .await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi from talk\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("oops"));
    let out = c.kubectl(&["exec", "talk", "--", "true"]).await;
    assert!(out.status.success(), "{}", text(&out));
    // the container's own cgroup, where the JVM and automaxprocs look: no CPU limit (v1, else v2)
    let quota = concat!(
        "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null",
        " || cut -d' ' -f1 /sys/fs/cgroup/cpu.max"
    );
    let out = c.kubectl(&["exec", "talk", "--", "sh", "-c", quota]).await;
    assert!(out.status.success(), "{}", text(&out));
    let quota = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(quota == "-1" || quota == "max", "{}", text(&out));
    let mut child = tokio::process::Command::new(testkit::kubectl())
        .args(["--server", c.url(), "--cache-dir"])
        .arg(&c.cache)
        .args(["exec", "-i", "talk", "--", "sh", "-c", "tr a-z A-Z"])
        .env("KUBECONFIG", "/dev/null")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut i = child.stdin.take().unwrap();
        i.write_all(b"shout\n").await.unwrap();
    }
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("exec -i hung")
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "SHOUT\n");

    // a wrong container is a clear error
    let out = c.kubectl(&["logs", "talk", "-c", "nope"]).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("not valid"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn http_and_tcp_probes_reach_the_pod_network_namespace() {
    let c = Cluster::for_kubelets().await;
    let k = start_kubelet(&c, &[]);
    c.create_pod("web", &k.node, json!({"terminationGracePeriodSeconds": 0, "containers": [{"name": "c", "image": "busybox",
        "command": ["sh", "-c", "mkdir /www; echo ok > /www/index.html; sleep 2; exec httpd -f -p 8080 -h /www"],
        "readinessProbe": {"httpGet": {"path": "/index.html", "port": 8080}, "periodSeconds": 1},
        "livenessProbe": {"tcpSocket": {"port": 8080}, "initialDelaySeconds": 5, "periodSeconds": 1, "failureThreshold": 3}}]})).await;
    c.wait_pod("web", 60, "Ready", |p| {
        condition(p, "Ready").as_deref() == Some("True")
    })
    .await;
    // the liveness probe keeps passing: no restart
    tokio::time::sleep(Duration::from_secs(6)).await;
    let p = c
        .wait_pod("web", 10, "Ready", |p| {
            condition(p, "Ready").as_deref() == Some("True")
        })
        .await;
    assert_eq!(container_status(&p, 0).unwrap().restart_count, 0);
    // a probe on a closed port fails: readiness on 9090 never passes
    c.create_pod("closed", &k.node, json!({"terminationGracePeriodSeconds": 0, "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1000"],
        "readinessProbe": {"tcpSocket": {"port": 9090}, "periodSeconds": 1, "failureThreshold": 1}}]})).await;
    c.wait_pod("closed", 60, "Running", |p| phase(p) == "Running")
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let p = c
        .wait_pod("closed", 10, "Running", |p| phase(p) == "Running")
        .await;
    assert_eq!(condition(&p, "Ready").as_deref(), Some("False"));
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_exec_with_a_terminal() {
    if !std::path::Path::new("/usr/bin/script").exists() {
        eprintln!("skipping: util-linux `script` (gives kubectl a terminal) is not installed");
        return;
    }
    let c = Cluster::for_kubelets().await;
    let k = start_kubelet(&c, &[]);
    c.create_pod("tty", &k.node, json!({"terminationGracePeriodSeconds": 0, "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1000"]}]})).await;
    c.wait_pod("tty", 60, "Running", |p| phase(p) == "Running")
        .await;
    let kubectl = format!("{} --server {} --cache-dir {} exec -it tty -- sh -c 'test -t 0 && test -t 1 && echo on-a-terminal; exit 4'", testkit::kubectl().display(), c.url(), c.cache.display());
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new("/usr/bin/script")
            .args(["-qec", &kubectl, "/dev/null"])
            .env("KUBECONFIG", "/dev/null")
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .expect("exec -it hung")
    .unwrap();
    let s = text(&out);
    // stdin and stdout are a terminal (the host pty; `tty` cannot name it: the container has its own devpts)
    assert!(s.contains("on-a-terminal"), "{s}");
    assert_eq!(out.status.code(), Some(4), "{s}");
}

/// `ip -4 -o addr` of the network namespace pinned at `ns`.
fn addrs_in(ns: &std::path::Path) -> String {
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(["ip", "-4", "-o", "addr"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn iptables_rules(table: &str) -> String {
    let out = std::process::Command::new("iptables")
        .args(["-w", "5", "-t", table, "-S"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// GET / from the test process (the node's own namespace) to a pod.
fn http_get(ip: &str, port: u16) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::new(ip.parse().unwrap(), port);
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn pod_ip(p: &k8s_openapi::api::core::v1::Pod) -> String {
    p.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .unwrap_or_default()
}

#[test]
fn pod_network_attach_detach_and_cleanup_without_a_cluster() {
    use runtime::network::{self, iptables, Network, NetworkConfig};
    let net = TestNet::new();
    let dir = std::env::temp_dir().join(format!("minik8s-net-{}", rand_hex()));
    struct Cleanup(std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = network::cleanup(&self.0.join("network"));
            runtime::namespaces::remove_pinned(&self.0.join("sb"));
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(dir.clone());
    let sb = dir.join("sb");
    std::fs::create_dir_all(&sb).unwrap();
    runtime::namespaces::create_pinned(&sb, "netpod").unwrap();

    let n = Network::setup(
        &dir.join("network"),
        NetworkConfig {
            bridge: net.bridge.clone(),
            cidr: net.cidr.clone(),
            mtu: 1500,
            masquerade: true,
        },
    )
    .unwrap();
    assert!(link_exists(&net.bridge));
    let gateway = format!("10.244.{}.1", net.octet);
    let filter = iptables_rules("filter");
    assert!(
        filter.contains(&format!("-A FORWARD -j MINIK8S-{}", net.bridge)),
        "{filter}"
    );
    assert!(
        filter.contains(&format!("-i {b} -o {b} -j ACCEPT", b = net.bridge)),
        "{filter}"
    );
    let nat = iptables_rules("nat");
    assert!(
        nat.contains(&format!(
            "-s {} ! -o {} -j MASQUERADE",
            net.cidr, net.bridge
        )),
        "{nat}"
    );
    // setting up again (a restarted kubelet) adds nothing twice
    let again = Network::setup(&dir.join("network"), n.config.clone()).unwrap();
    let jumps = iptables_rules("filter")
        .matches(&format!("-j MINIK8S-{}\n", net.bridge))
        .count();
    assert_eq!(jumps, 1);
    drop(again);

    let id = "0badcafe-1111-2222-3333-444455556666";
    let ip = n.attach(id, &sb.join("net")).unwrap();
    assert_eq!(ip.to_string(), format!("10.244.{}.2", net.octet));
    assert_eq!(n.attached(id), Some(ip));
    assert!(link_exists("vm0badcafe"));
    let inside = addrs_in(&sb.join("net"));
    assert!(
        inside.contains(&format!("eth0    inet {ip}/24")),
        "{inside}"
    );
    // the node reaches the pod over TCP: a busybox httpd in the pod's namespace
    std::fs::create_dir_all(dir.join("www")).unwrap();
    std::fs::write(dir.join("www/index.html"), "in the pod\n").unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _httpd = Kill(
        std::process::Command::new("nsenter")
            .arg(format!("--net={}", sb.join("net").display()))
            .args(["/bin/busybox", "httpd", "-f", "-p", "8080", "-h"])
            .arg(dir.join("www"))
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        match http_get(&ip.to_string(), 8080) {
            Ok(b) => break b,
            Err(e) if Instant::now() > deadline => panic!("node to pod: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    assert!(body.contains("in the pod"), "{body}");
    // the pod's default route goes via the gateway
    let routes = std::process::Command::new("nsenter")
        .arg(format!("--net={}", sb.join("net").display()))
        .args(["ip", "-4", "route"])
        .output()
        .unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout);
    assert!(
        routes.contains(&format!("default via {gateway} dev eth0")),
        "{routes}"
    );

    // shutdown (the kubelet's SIGTERM) with a pod attached keeps the bridge and the rules:
    // the pod outlives the kubelet, and so does its network
    n.shutdown().unwrap();
    assert!(iptables::installed(&net.bridge));
    assert!(link_exists(&net.bridge));
    let body = http_get(&ip.to_string(), 8080).expect("the pod is reachable after shutdown");
    assert!(body.contains("in the pod"), "{body}");
    n.detach(id).unwrap();
    assert!(!link_exists("vm0badcafe"));
    assert!(n.allocations().is_empty());
    assert_eq!(n.attached(id), None);
    n.shutdown().unwrap();
    assert!(!link_exists(&net.bridge));
    assert!(!iptables_rules("nat").contains(&net.bridge));
    assert!(!iptables_rules("filter").contains(&net.bridge));
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_get_ips_reach_each_other_and_the_node_and_nothing_is_left() {
    let net = TestNet::new();
    let c = Cluster::for_kubelets().await;
    let flags = net.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut k = start_kubelet(&c, &flags);
    let server = c
        .create_pod("server", &k.node, json!({"terminationGracePeriodSeconds": 0, "containers": [{"name": "c", "image": "busybox",
            "command": ["sh", "-c", "mkdir /www; echo hello from $MY_IP > /www/index.html; exec httpd -f -p 8080 -h /www"],
            "env": [{"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
            "readinessProbe": {"httpGet": {"path": "/index.html", "port": 8080}, "periodSeconds": 1}}]}))
        .await;
    let p = c
        .wait_pod("server", 60, "Running and Ready", |p| {
            phase(p) == "Running" && condition(p, "Ready").as_deref() == Some("True")
        })
        .await;
    let server_ip = pod_ip(&p);
    let st = p.status.as_ref().unwrap();
    let cidr: runtime::network::Cidr = net.cidr.parse().unwrap();
    let ip: std::net::Ipv4Addr = server_ip.parse().expect("podIP set");
    assert!(
        cidr.contains(ip) && ip != cidr.gateway(),
        "{ip} not a pod address of {cidr}"
    );
    assert_eq!(st.pod_ips.as_ref().unwrap()[0].ip, server_ip);
    assert_eq!(st.host_ip.as_deref(), Some("127.0.0.1"));

    // the node reaches the pod over TCP, and the downward API saw the pod's IP
    let body = http_get(&server_ip, 8080).unwrap();
    assert!(body.contains(&format!("hello from {server_ip}")), "{body}");

    // another pod reaches it by IP
    c.create_pod("client", &k.node, json!({"restartPolicy": "Never", "terminationGracePeriodSeconds": 0, "containers": [{"name": "c", "image": "busybox",
        "command": ["sh", "-c", format!("for i in 1 2 3 4 5; do timeout 5 wget -q -O - http://{server_ip}:8080/ && exit 0; sleep 1; done; exit 1")]}]}))
        .await;
    let p = c
        .wait_pod("client", 60, "Succeeded", |p| {
            matches!(phase(p), "Succeeded" | "Failed")
        })
        .await;
    let client_ip = pod_ip(&p);
    let out = c.kubectl(&["logs", "client"]).await;
    assert_eq!(phase(&p), "Succeeded", "{}", text(&out));
    assert!(
        text(&out).contains(&format!("hello from {server_ip}")),
        "{}",
        text(&out)
    );
    assert_ne!(client_ip, server_ip);

    // a restarted kubelet keeps the pod's address and hands out a new one
    let server_veth = runtime::network::veth_name(server.metadata.uid.as_deref().unwrap());
    assert!(link_exists(&server_veth));
    k.kill();
    k.spawn();
    c.create_pod("late", &k.node, json!({"terminationGracePeriodSeconds": 0, "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1000"]}]}))
        .await;
    let late = c
        .wait_pod("late", 60, "Running", |p| phase(p) == "Running")
        .await;
    let late_ip = pod_ip(&late);
    assert!(!late_ip.is_empty());
    assert_ne!(late_ip, server_ip);
    let p = c
        .wait_pod("server", 10, "Running", |p| phase(p) == "Running")
        .await;
    assert_eq!(pod_ip(&p), server_ip);
    assert!(http_get(&server_ip, 8080).unwrap().contains("hello from"));
    assert!(link_exists(&net.bridge));
    assert!(runtime::network::iptables::installed(&net.bridge));

    // deleting the pods removes their veths and addresses
    let veths: Vec<String> = [&server, &late]
        .iter()
        .map(|p| runtime::network::veth_name(p.metadata.uid.as_deref().unwrap()))
        .collect();
    for name in ["server", "client", "late"] {
        let out = c.kubectl(&["delete", "pod", name, "--wait=false"]).await;
        assert!(out.status.success(), "{}", text(&out));
    }
    for name in ["server", "client", "late"] {
        c.wait_gone(name, 30).await;
    }
    // (grace 0: the API object goes at once, the kubelet tears the pod down right after)
    let ips = k.root.join("runtime/network/ips");
    let allocated = || -> Vec<String> {
        std::fs::read_dir(&ips)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("10."))
            .collect()
    };
    // the teardown detaches the pod from the network, then removes its sandbox: wait for both
    let sandboxes = || k.runtime().sandbox_ids();
    let deadline = Instant::now() + Duration::from_secs(30);
    while veths.iter().any(|v| link_exists(v)) || !allocated().is_empty() || !sandboxes().is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "left behind: veths {:?}, addresses {:?}, sandboxes {:?}\n{}",
            veths.iter().filter(|v| link_exists(v)).collect::<Vec<_>>(),
            allocated(),
            sandboxes(),
            k.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // stopping the kubelet removes the bridge and every rule of ours
    k.terminate();
    assert!(!link_exists(&net.bridge), "bridge left behind");
    assert!(
        !runtime::network::iptables::installed(&net.bridge),
        "iptables rules left behind"
    );
    assert!(!iptables_rules("filter").contains(&net.bridge));
}

/// `kubectl get --raw PATH` as JSON.
async fn get_raw(c: &Cluster, path: &str) -> serde_json::Value {
    let out = c.kubectl(&["get", "--raw", path]).await;
    assert!(out.status.success(), "get --raw {path}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{path}: {e}: {}", text(&out)))
}

/// The inode of `/proc/<pid>/ns/<kind>`, as `ls -l /proc/<pid>/ns` shows it.
fn ns_inode(pid: i64, kind: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .ino()
}

/// The namespace `kind` of a container's kernel view: (inode, sharedFrom).
fn ns_of(kernel: &serde_json::Value, kind: &str) -> (u64, serde_json::Value) {
    let n = kernel["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} namespace in {kernel}"));
    (n["inode"].as_u64().unwrap(), n["sharedFrom"].clone())
}

fn container_view<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name} in {v}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn inspect_through_the_node_proxy_matches_the_kernel() {
    let net = TestNet::new();
    let c = Cluster::for_kubelets().await;
    let flags = net.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let k = start_kubelet(&c, &flags);
    let pod = c.create_pod("peek", &k.node, json!({"terminationGracePeriodSeconds": 0,
        "volumes": [{"name": "scratch", "emptyDir": {}}],
        "containers": [
            {"name": "main", "image": "busybox",
             "command": ["sh", "-c", "echo changed > /etc/motd; rm /etc/group; mkdir /data/made-inside; exec sleep 1000"],
             "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
             "volumeMounts": [{"name": "scratch", "mountPath": "/data"}]},
            {"name": "side", "image": "busybox", "command": ["sleep", "1000"]}]}))
        .await;
    let uid = pod.metadata.uid.clone().unwrap();
    let p = c
        .wait_pod("peek", 60, "Running", |p| phase(p) == "Running")
        .await;

    // the kubelet's own API through the apiserver, as kubectl reaches it
    let summary = get_raw(&c, &format!("/api/v1/nodes/{}/proxy/stats/summary", k.node)).await;
    assert_eq!(summary["node"]["nodeName"], k.node.as_str(), "{summary}");

    // wait until the main container has made its changes (it execs sleep after them)
    let path = format!("/api/v1/nodes/{}/proxy/inspect/default/peek", k.node);
    let deadline = Instant::now() + Duration::from_secs(30);
    let v = loop {
        let v = get_raw(&c, &path).await;
        if container_view(&v, "main")["kernel"]["init"]["cmdline"] == json!(["sleep", "1000"]) {
            break v;
        }
        assert!(Instant::now() < deadline, "main never exec'd sleep: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(v["uid"], uid.as_str());
    assert_eq!(v["nodeName"], k.node.as_str());
    let main = &container_view(&v, "main")["kernel"];
    let side = &container_view(&v, "side")["kernel"];

    // the init: the host pid the runtime recorded, PID 1 of its own pid namespace
    let pid = main["init"]["hostPid"].as_i64().unwrap();
    assert_eq!(Some(pid as i32), k.container_pid(&uid, "main"));
    assert_eq!(
        main["init"]["nsPids"].as_array().unwrap().last(),
        Some(&json!(1))
    );
    assert_eq!(main["pidOne"]["hostPid"], pid);

    // namespaces: the inodes /proc shows; net, ipc, uts from the sandbox, the rest its own
    let sandbox_ns = |kind: &str| {
        v["sandbox"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n[0] == kind)
            .map(|n| n[2].as_u64().unwrap())
    };
    let side_pid = side["init"]["hostPid"].as_i64().unwrap();
    for kind in ["net", "ipc", "uts", "pid", "mnt", "cgroup"] {
        let (inode, shared) = ns_of(main, kind);
        assert_eq!(inode, ns_inode(pid, kind), "{kind}");
        let (side_inode, _) = ns_of(side, kind);
        assert_eq!(side_inode, ns_inode(side_pid, kind), "{kind}");
        let pod_wide = matches!(kind, "net" | "ipc" | "uts");
        assert_eq!(shared.is_string(), pod_wide, "{kind}: {shared}");
        assert_eq!(inode == side_inode, pod_wide, "{kind}");
        assert_eq!(sandbox_ns(kind) == Some(inode), pod_wide, "{kind}");
    }

    // the cgroup: every limit file as the cgroup filesystem holds it, the limits of the spec
    let limits = main["cgroup"]["limits"].as_array().unwrap();
    let limit = |file: &str| {
        limits
            .iter()
            .find(|l| l["path"].as_str().unwrap().ends_with(file))
            .map(|l| l["value"].as_str().unwrap().to_string())
    };
    for l in limits {
        let on_disk = std::fs::read_to_string(l["path"].as_str().unwrap()).unwrap();
        assert_eq!(on_disk.trim(), l["value"], "{l}");
    }
    match limit("/cpu.max") {
        Some(v2) => {
            assert_eq!(v2, "50000 100000");
            assert_eq!(limit("/memory.max").as_deref(), Some("67108864"));
        }
        None => {
            assert_eq!(limit("/cpu.cfs_quota_us").as_deref(), Some("50000"));
            assert_eq!(limit("/memory.limit_in_bytes").as_deref(), Some("67108864"));
        }
    }
    assert!(
        main["cgroup"]["usage"]["memory_usage_bytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let leaf = std::path::Path::new(main["cgroup"]["path"].as_str().unwrap())
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        cg.lines().all(|l| l.ends_with(&leaf) || l.ends_with('/')),
        "{cg} vs {leaf}"
    );

    // the root filesystem: the overlay /proc/<pid>/mounts shows, its layers, its changes
    let rootfs = &main["rootfs"];
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mounts")).unwrap();
    let root_line = mounts
        .lines()
        .find(|l| l.split(' ').nth(1) == Some("/"))
        .unwrap();
    let upper = rootfs["upperdir"].as_str().unwrap();
    assert!(root_line.starts_with("overlay / overlay "), "{root_line}");
    assert!(
        root_line.contains(&format!("upperdir={upper}")),
        "{root_line}"
    );
    let opts = rootfs["mountOptions"].as_str().unwrap();
    assert!(opts.contains(&format!("upperdir={upper}")), "{opts}");
    let layers = rootfs["layers"].as_array().unwrap();
    assert!(!layers.is_empty());
    for (layer, dir) in layers.iter().zip(rootfs["lowerdirs"].as_array().unwrap()) {
        let hex = layer.as_str().unwrap().strip_prefix("sha256:").unwrap();
        assert!(dir.as_str().unwrap().ends_with(hex), "{layer} vs {dir}");
        assert!(root_line.contains(dir.as_str().unwrap()), "{root_line}");
    }
    assert!(rootfs["initLayer"]
        .as_str()
        .unwrap()
        .ends_with("init-layer"));
    let changed: Vec<(&str, &str)> = rootfs["upper"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap(), e["kind"].as_str().unwrap()))
        .collect();
    assert!(changed.contains(&("/etc/group", "whiteout")), "{changed:?}");
    assert!(changed.contains(&("/etc/motd", "file")), "{changed:?}");

    // the volume: where it lives on the host, mounted where the spec says
    let vol = &container_view(&v, "main")["volumes"][0];
    assert_eq!(vol["name"], "scratch");
    assert_eq!(vol["mountPath"], "/data");
    let host = std::path::Path::new(vol["hostPath"].as_str().unwrap());
    assert!(host.join("made-inside").is_dir(), "{vol}");
    assert!(mounts.lines().any(|l| l.split(' ').nth(1) == Some("/data")));
    assert!(main["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["mountPoint"] == "/data"));

    // the network: the pod's address, its veth on the bridge
    let n = &v["network"];
    assert_eq!(n["podIP"].as_str(), Some(pod_ip(&p).as_str()));
    assert_eq!(n["bridge"], net.bridge.as_str());
    let veth = runtime::network::veth_name(&uid);
    assert_eq!(n["hostVeth"], veth.as_str());
    assert_eq!(n["hostVethMaster"], net.bridge.as_str());
    let ifindex = std::fs::read_to_string(format!("/sys/class/net/{veth}/ifindex")).unwrap();
    assert_eq!(n["hostVethIndex"].to_string(), ifindex.trim());

    // a pod sharing one pid namespace: PID 1 is the pause process
    c.create_pod(
        "shared",
        &k.node,
        json!({"terminationGracePeriodSeconds": 0, "shareProcessNamespace": true,
        "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1000"]}]}),
    )
    .await;
    c.wait_pod("shared", 60, "Running", |p| phase(p) == "Running")
        .await;
    let s = get_raw(
        &c,
        &format!("/api/v1/nodes/{}/proxy/inspect/default/shared", k.node),
    )
    .await;
    let kernel = &container_view(&s, "c")["kernel"];
    let pause = s["sandbox"]["pause"]["hostPid"].as_i64().unwrap();
    assert_eq!(kernel["pidOne"]["hostPid"], pause, "{s}");
    assert_ne!(kernel["init"]["hostPid"], pause);
    assert!(ns_of(kernel, "pid").1.is_string());
    assert_eq!(ns_of(kernel, "pid").0, ns_inode(pause, "pid"));

    // the node view: its pods' requests against its allocatable, the runtime's images
    let node = get_raw(&c, &format!("/api/v1/nodes/{}/proxy/inspect/node", k.node)).await;
    let images = node["runtime"]["images"].as_array().unwrap();
    assert!(
        images.iter().any(|i| i["name"] == "busybox:latest"),
        "{node}"
    );
    let pods = node["pods"].as_array().unwrap();
    let mut names: Vec<&str> = pods.iter().map(|p| p["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["peek", "shared"], "{node}");
    let peek = pods.iter().find(|p| p["name"] == "peek").unwrap();
    // only limits given: the requests default to them
    assert_eq!(peek["cpuMillis"], 500, "{node}");
    assert_eq!(peek["memoryBytes"], 64 * 1024 * 1024, "{node}");
    assert_eq!(node["requested"]["pods"], 2);
    assert_eq!(node["requested"]["cpuMillis"], 500);
    assert!(
        node["allocatable"]["cpuMillis"].as_u64().unwrap() >= 1000,
        "{node}"
    );
    assert!(node["allocatable"]["memoryBytes"].as_u64().unwrap() > 0);

    // only the kubelet's own pods: not found, elsewhere, unknown node
    c.create_pod(
        "elsewhere",
        "no-such-node",
        json!({"containers": [{"name": "c", "image": "busybox"}]}),
    )
    .await;
    for pod in ["nope", "elsewhere"] {
        let path = format!("/api/v1/nodes/{}/proxy/inspect/default/{pod}", k.node);
        let out = c.kubectl(&["get", "--raw", &path]).await;
        assert!(!out.status.success(), "{pod}: {}", text(&out));
        assert!(
            text(&out).contains("NotFound") || text(&out).contains("not found"),
            "{}",
            text(&out)
        );
    }
    let out = c
        .kubectl(&[
            "get",
            "--raw",
            "/api/v1/nodes/no-such-node/proxy/inspect/node",
        ])
        .await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("nodes \"no-such-node\" not found"),
        "{}",
        text(&out)
    );
}
