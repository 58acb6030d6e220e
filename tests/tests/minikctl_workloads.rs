//! minikctl's workload commands, the built binary against a whole cluster (etcd, apiserver,
//! controller manager, scheduler, a real kubelet running busybox containers), as root. Where
//! the real kubectl can run the same command, both run and must agree on stdout, stderr and
//! exit code; elsewhere the output is checked against the API and the node.
//!
//! `logs` reads what a container really printed (`-c`, `--tail`, `--timestamps`, `-f` until
//! the container ends, `--previous` after a real restart, `deploy/NAME`); `exec` runs commands
//! in the container (exit codes, stdin, `-c`, a missing pod); `events` and `describe pod` show
//! what the scheduler and the kubelet reported. `scale` changes the pods the node runs;
//! `cordon` keeps a new pod Pending until `uncordon`; `drain` evicts the node's pods as kubectl
//! prints it; `rollout status` follows the real controller through a template change. Each
//! test ends by deleting what it made and checking the kernel holds nothing of it.
//! Harness: `cluster/mod.rs`; the kubelet's side of logs and exec: `kubelet/src/server.rs`.

mod cluster;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use cluster::run::*;
use cluster::*;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use testkit::objects::container_status;
use tokio::io::AsyncBufReadExt;

/// Create a pod in `default` from a JSON spec fragment, labelled `app=<name>`, for the
/// scheduler to place.
async fn create_pod(c: &Cluster, name: &str, spec: Value) -> Pod {
    let pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": spec,
    }))
    .expect("a valid pod");
    c.pods()
        .create(&PostParams::default(), &pod)
        .await
        .expect("create pod")
}

/// Deployment `web`: `replicas` busybox pods that print `web up` and sleep.
async fn create_web(c: &Cluster, replicas: i32) {
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
                    "name": "web", "image": "busybox",
                    "command": ["sh", "-c", "echo web up; exec sleep 3600"]}]},
            },
        },
    }))
    .expect("a valid deployment");
    Api::<Deployment>::namespaced(c.client(), "default")
        .create(&PostParams::default(), &d)
        .await
        .expect("create deployment");
}

/// A cluster with one Ready node.
async fn one_node(prefix: &str) -> (Cluster, Kubelet) {
    let c = start_cluster(controller::manager::Config::default()).await;
    let k = start_kubelet(&c, &format!("{prefix}-{}", rand_hex()));
    let nodes = c.nodes();
    wait_for(30, "node Ready", || async {
        let n = nodes.get_opt(&k.node).await.ok()??;
        (ready(&n) == Some("True")).then_some(())
    })
    .await;
    (c, k)
}

/// Pods and container processes seen during a test, for the final leak check.
#[derive(Default)]
struct Seen {
    uids: BTreeSet<String>,
    pids: BTreeSet<i32>,
}

impl Seen {
    /// Note the pods of `default` and the host pids of their running containers.
    async fn look(&mut self, c: &Cluster, k: &Kubelet) -> Vec<Pod> {
        let pods = c
            .pods()
            .list(&Default::default())
            .await
            .expect("list pods")
            .items;
        for p in &pods {
            let u = uid(p);
            let names = p.spec.iter().flat_map(|s| s.containers.iter());
            self.pids
                .extend(names.filter_map(|ct| k.container_pid(&u, &ct.name)));
            self.uids.insert(u);
        }
        pods
    }
}

/// The pods of app `web` not being deleted.
async fn live_web(c: &Cluster) -> Vec<Pod> {
    let pods = c.app_pods("web").await;
    pods.into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

/// Wait until `web` has exactly `n` live pods, all running; returns them.
async fn wait_web_running(c: &Cluster, k: &Kubelet, seen: &mut Seen, n: usize) -> Vec<Pod> {
    let mut last = Vec::new();
    for _ in 0..600 {
        seen.look(c, k).await;
        let pods = c.app_pods("web").await;
        let live = live_web(c).await;
        if live.len() == n && live.iter().all(running) && pods.len() == n {
            return live;
        }
        last = pods
            .iter()
            .map(|p| {
                format!(
                    "{} {} {}",
                    p.metadata.name.as_deref().unwrap_or(""),
                    node_of(p),
                    phase(p)
                )
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("web never had {n} running pods; last: {last:?}");
}

/// Delete the Deployment and every pod, wait until the node runs nothing, stop the node and
/// check the kernel holds nothing of the test.
async fn clean_up(c: Cluster, k: Kubelet, mut seen: Seen) {
    let deployments: Api<Deployment> = Api::namespaced(c.client(), "default");
    if deployments.get_opt("web").await.expect("get web").is_some() {
        deployments
            .delete("web", &DeleteParams::background())
            .await
            .expect("delete web");
    }
    // the bare pods; the Deployment's go with its ReplicaSets, which would replace them
    for p in seen.look(&c, &k).await {
        if p.metadata.owner_references.is_none_or(|o| o.is_empty()) {
            let name = p.metadata.name.unwrap_or_default();
            let _ = c.pods().delete(&name, &DeleteParams::default()).await;
        }
    }
    let replicasets: Api<ReplicaSet> = Api::namespaced(c.client(), "default");
    let mut left = Vec::new();
    for _ in 0..600 {
        left = seen.look(&c, &k).await;
        let sets = replicasets
            .list(&Default::default())
            .await
            .expect("list rs");
        if left.is_empty() && sets.items.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(left.is_empty(), "pods left after 60 s: {left:?}");
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
    assert_nothing_left(&roots, &bridges, &seen.uids, &seen.pids);
    drop(c);
}

// ---- logs ----

/// `talk`: containers `a` (prints a-1 … a-5) and `b` (prints b-line), both then sleeping.
async fn create_talk(c: &Cluster) {
    create_pod(c, "talk", json!({"terminationGracePeriodSeconds": 0, "containers": [
        {"name": "a", "image": "busybox",
         "command": ["sh", "-c", "for i in 1 2 3 4 5; do echo a-$i; done; exec sleep 3600"]},
        {"name": "b", "image": "busybox", "command": ["sh", "-c", "echo b-line; exec sleep 3600"]},
    ]}))
    .await;
}

/// `crash`: restartPolicy Always, each run counts itself in an emptyDir, prints `run N`
/// and exits 1 a second later.
async fn create_crash(c: &Cluster) {
    create_pod(c, "crash", json!({"terminationGracePeriodSeconds": 0,
        "volumes": [{"name": "count", "emptyDir": {}}],
        "containers": [{"name": "crash", "image": "busybox",
            "command": ["sh", "-c", "n=$(cat /data/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/n; echo run $n; sleep 1; exit 1"],
            "volumeMounts": [{"name": "count", "mountPath": "/data"}]}]}))
    .await;
}

/// `logs`, `-c`, `--tail`, `--timestamps`, `deploy/NAME` and the errors, as kubectl has them.
async fn check_logs(c: &Cluster) {
    let all = "a-1\na-2\na-3\na-4\na-5\n";
    let ran = same_as_kubectl(c, &["logs", "talk"], None).await;
    assert_eq!(ran.stdout, all, "the first container, as kubectl picks it");
    assert_eq!(ran.stderr, "Defaulted container \"a\" out of: a, b\n");
    assert_eq!(
        same_as_kubectl(c, &["logs", "talk", "-c", "a"], None)
            .await
            .stdout,
        all
    );
    let b = same_as_kubectl(c, &["logs", "pod/talk", "-c", "b"], None).await;
    assert_eq!(b.stdout, "b-line\n");
    let tail = same_as_kubectl(c, &["logs", "talk", "-c", "a", "--tail=2"], None).await;
    assert_eq!(tail.stdout, "a-4\na-5\n");

    let stamped = minikctl_ok(c, &["logs", "talk", "-c", "a", "--timestamps"]).await;
    let lines: Vec<(&str, &str)> = stamped
        .lines()
        .map(|l| l.split_once(' ').expect("a timestamp, a space, the line"))
        .collect();
    assert_eq!(
        lines.iter().map(|l| l.1).collect::<Vec<_>>(),
        ["a-1", "a-2", "a-3", "a-4", "a-5"]
    );
    let now = jiff::Timestamp::now();
    for (t, _) in &lines {
        let ts: jiff::Timestamp = t
            .parse()
            .unwrap_or_else(|e| panic!("{t:?} not RFC 3339: {e}"));
        assert!(
            t.contains('T') && (t.ends_with('Z') || t.contains('+')),
            "{t}"
        );
        assert!(
            ts <= now && now.duration_since(ts).as_secs() < 300,
            "{t} vs {now}"
        );
    }

    let web = same_as_kubectl(c, &["logs", "deploy/web"], None).await;
    assert_eq!(web.stdout, "web up\n");

    let err = same_as_kubectl(c, &["logs", "talk", "-c", "nope"], None).await;
    assert_eq!((err.code, err.stdout.as_str()), (Some(1), ""));
    assert_eq!(
        err.stderr,
        "error: container nope is not valid for pod talk\n"
    );
    // kubectl's logs rewrites the NotFound of its resource builder, naming the namespace
    let err = same_as_kubectl(c, &["logs", "nope"], None).await;
    let missing = "pods \"nope\" not found in namespace \"default\"";
    assert_eq!(
        err.stderr,
        format!("error: error from server (NotFound): {missing}\n")
    );
    // the API itself refuses to guess, as kube-apiserver words it
    let raw = c
        .kubectl(&["get", "--raw", "/api/v1/namespaces/default/pods/talk/log"])
        .await;
    let choose = "a container name must be specified for pod talk, choose one of: [a b]";
    let stderr = String::from_utf8_lossy(&raw.stderr);
    assert_eq!(
        stderr,
        format!("Error from server (BadRequest): {choose}\n")
    );
    let err = same_as_kubectl(c, &["logs", "talk", "-c", "a", "--previous"], None).await;
    assert_eq!(err.code, Some(1), "no previous instance: {err:?}");
}

/// `logs -f` on a pod that prints, sleeps, prints and exits: the first line comes while the
/// container still runs, the command ends when the container does.
async fn check_follow(c: &Cluster) {
    create_pod(c, "once", json!({"restartPolicy": "Never", "containers": [{
        "name": "once", "image": "busybox", "command": ["sh", "-c", "echo start; sleep 4; echo end"]}]}))
    .await;
    c.wait_pod("once", 60, "Running", running).await;
    let mut child = minikctl_command(c, &["logs", "-f", "once"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run minikctl logs -f");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout piped")).lines();
    let within = Duration::from_secs(20);
    let first = tokio::time::timeout(within, lines.next_line())
        .await
        .expect("the first line within 20 s");
    assert_eq!(first.expect("read").as_deref(), Some("start"));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "logs -f ended before the container"
    );
    let p = c.pods().get("once").await.expect("get once");
    assert!(running(&p), "the container still runs while logs -f waits");
    let second = tokio::time::timeout(within, lines.next_line())
        .await
        .expect("the second line within 20 s");
    assert_eq!(second.expect("read").as_deref(), Some("end"));
    let eof = tokio::time::timeout(within, lines.next_line())
        .await
        .expect("logs -f to end with the container");
    assert_eq!(eof.expect("read"), None);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
    assert!(status.expect("minikctl exits").expect("wait").success());
    c.wait_pod("once", 30, "Succeeded", |p| phase(p) == "Succeeded")
        .await;
    // the logs outlive the container, exec does not
    let done = same_as_kubectl(c, &["logs", "once"], None).await;
    assert_eq!(done.stdout, "start\nend\n");
    let ran = same_as_kubectl(c, &["exec", "once", "--", "true"], None).await;
    let completed = "cannot exec into a container in a completed pod; current phase is Succeeded";
    assert_eq!(ran.stderr, format!("error: {completed}\n"));
}

/// `logs --previous` after the kubelet restarted `crash`: the run before the current one.
async fn check_previous(c: &Cluster) {
    c.wait_pod("crash", 60, "a restart", |p| {
        container_status(p, 0).is_some_and(|s| s.restart_count >= 1)
    })
    .await;
    let run = |out: &str| -> Option<u32> { out.trim().strip_prefix("run ")?.parse().ok() };
    let out = minikctl_ok(c, &["logs", "crash", "--previous"]).await;
    let previous = run(&out).unwrap_or_else(|| panic!("logs --previous: {out:?}"));
    // A run that has just started may not have printed yet.
    let current = wait_for(10, "the current run's line", || async {
        run(&minikctl_ok(c, &["logs", "crash"]).await)
    })
    .await;
    assert!(
        previous >= 1 && current > previous,
        "previous {previous}, current {current}"
    );
}

// ---- exec ----

/// `exec`: an exit code, stdin echoed, `-c`, the default container, the errors; each as the
/// real `kubectl exec` has it on the same pod.
async fn check_exec(c: &Cluster) {
    let ran = same_as_kubectl(
        c,
        &["exec", "talk", "-c", "a", "--", "sh", "-c", "exit 3"],
        None,
    )
    .await;
    assert_eq!(ran.code, Some(3));
    assert_eq!(ran.stderr, "command terminated with exit code 3\n");

    let input = "hello\nfrom stdin\n";
    let ran = same_as_kubectl(
        c,
        &["exec", "-i", "talk", "-c", "a", "--", "cat"],
        Some(input),
    )
    .await;
    assert_eq!((ran.code, ran.stdout.as_str()), (Some(0), input));
    // -t without a terminal on stdin: said, and the pipe used as is
    let args = ["exec", "-i", "-t", "talk", "-c", "a", "--", "cat"];
    let ran = same_as_kubectl(c, &args, Some(input)).await;
    assert_eq!(ran.stdout, input);
    let no_tty = "Unable to use a TTY - input is not a terminal or the right kind of file\n";
    assert_eq!(ran.stderr, no_tty);

    let ran = same_as_kubectl(c, &["exec", "talk", "-c", "b", "--", "hostname"], None).await;
    assert_eq!(ran.stdout, "talk\n");
    let ran = same_as_kubectl(c, &["exec", "talk", "--", "cat", "/proc/1/cmdline"], None).await;
    assert_eq!(ran.stdout, "sleep\x003600\x00", "container a, the first");
    assert_eq!(ran.stderr, "Defaulted container \"a\" out of: a, b\n");

    let ran = same_as_kubectl(c, &["exec", "x", "--", "true"], None).await;
    assert_eq!((ran.code, ran.stdout.as_str()), (Some(1), ""));
    assert_eq!(
        ran.stderr,
        "Error from server (NotFound): pods \"x\" not found\n"
    );
    let ran = same_as_kubectl(c, &["exec", "talk", "-c", "nope", "--", "true"], None).await;
    assert_eq!(ran.code, Some(1));
}

// ---- events ----

/// The cells of a table line after LAST SEEN (which moves between two runs).
fn cells_after_age(line: &str) -> Vec<String> {
    let cells: Vec<String> = line
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    cells.into_iter().skip(1).collect()
}

/// A table's rows without LAST SEEN, sorted: two runs list the same events.
fn rows(table: &str) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = table.lines().skip(1).map(cells_after_age).collect();
    rows.sort();
    rows
}

/// `events --for pod/talk`: the scheduler's Scheduled and the kubelet's Pulled, Created and
/// Started for each container, as `kubectl events` lists them; `--types=Warning`: the
/// kubelet's BackOff for `crash` and nothing Normal.
async fn check_events(c: &Cluster, node: &str) {
    let ours = minikctl_ok(c, &["events", "--for", "pod/talk"]).await;
    let header: Vec<&str> = ours
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    );
    let theirs = c.kubectl_ok(&["events", "--for", "pod/talk"]).await;
    assert_eq!(
        rows(&ours),
        rows(&theirs),
        "minikctl:\n{ours}\nkubectl:\n{theirs}"
    );
    let row = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let have = rows(&ours);
    let scheduled = format!("Successfully assigned default/talk to {node}");
    assert!(
        have.contains(&row(&["Normal", "Scheduled", "Pod/talk", &scheduled])),
        "{ours}"
    );
    for ct in ["a", "b"] {
        let pulled = "Container image \"busybox\" already present on machine";
        let created = format!("Created container {ct}");
        let started = format!("Started container {ct}");
        for want in [
            row(&["Normal", "Pulled", "Pod/talk", pulled]),
            row(&["Normal", "Created", "Pod/talk", &created]),
            row(&["Normal", "Started", "Pod/talk", &started]),
        ] {
            assert!(have.contains(&want), "{want:?} not in:\n{ours}");
        }
    }

    let warnings = minikctl_ok(c, &["events", "--types=Warning"]).await;
    let warned = rows(&warnings);
    assert!(warned.iter().all(|r| r[0] == "Warning"), "{warnings}");
    assert!(
        warned
            .iter()
            .any(|r| r[1] == "BackOff" && r[2] == "Pod/crash"),
        "no BackOff for crash in:\n{warnings}"
    );
    let everything = minikctl_ok(c, &["events"]).await;
    for pod in ["talk", "crash", "once"] {
        assert!(
            rows(&everything)
                .iter()
                .any(|r| r[1] == "Scheduled" && r[2] == format!("Pod/{pod}")),
            "no Scheduled for {pod} in:\n{everything}"
        );
    }
}

/// The rows of a `describe` Events table without Age (which moves between two runs), sorted.
fn described_events(text: &str) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = text
        .lines()
        .skip_while(|l| !l.starts_with("Events:"))
        .skip(3)
        .map(|l| {
            let mut cells = cells_after_age(&format!("age  {l}"));
            if cells.len() > 2 {
                cells.remove(2);
            }
            cells
        })
        .collect();
    rows.sort();
    rows
}

/// `describe pod talk` ends with the pod's events, the same rows `kubectl describe` shows.
async fn check_describe(c: &Cluster, node: &str) {
    let ours = minikctl_ok(c, &["describe", "pod", "talk"]).await;
    let theirs = c.kubectl_ok(&["describe", "pod", "talk"]).await;
    let rows = described_events(&ours);
    assert_eq!(
        rows,
        described_events(&theirs),
        "minikctl:\n{ours}\nkubectl:\n{theirs}"
    );
    let scheduled = format!("Successfully assigned default/talk to {node}");
    let has = |reason: &str, message: &str| {
        rows.iter()
            .any(|r| r[1] == reason && r.last().is_some_and(|m| m == message))
    };
    assert!(has("Scheduled", &scheduled), "{ours}");
    assert!(has("Started", "Started container b"), "{ours}");
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_exec_and_events_of_real_containers() {
    if skip_unless_root("logs_exec_and_events_of_real_containers") {
        return;
    }
    let (c, k) = one_node("workloads").await;
    let mut seen = Seen::default();
    create_talk(&c).await;
    create_crash(&c).await;
    create_web(&c, 1).await;
    c.wait_pod("talk", 60, "Running", running).await;
    wait_web_running(&c, &k, &mut seen, 1).await;
    check_follow(&c).await;
    check_logs(&c).await;
    check_previous(&c).await;
    check_exec(&c).await;
    check_events(&c, &k.node).await;
    check_describe(&c, &k.node).await;
    clean_up(c, k, seen).await;
}

// ---- scale, cordon, drain, rollout ----

/// `scale deployment/web`: three running pods, then one; a missing Deployment as kubectl
/// reports it.
async fn check_scale(c: &Cluster, k: &Kubelet, seen: &mut Seen) {
    let out = minikctl_ok(c, &["scale", "deployment/web", "--replicas=3"]).await;
    assert_eq!(out, "deployment.apps/web scaled\n");
    wait_web_running(c, k, seen, 3).await;
    // of three pods, logs reads the one kubectl reads (Ready the longest) and says so
    let logs = same_as_kubectl(c, &["logs", "deploy/web"], None).await;
    assert_eq!(logs.stdout, "web up\n");
    assert!(
        logs.stderr.starts_with("Found 3 pods, using pod/web-"),
        "{logs:?}"
    );
    let out = minikctl_ok(c, &["scale", "deployment/web", "--replicas=1"]).await;
    assert_eq!(out, "deployment.apps/web scaled\n");
    wait_web_running(c, k, seen, 1).await;
    let web = Api::<Deployment>::namespaced(c.client(), "default")
        .get("web")
        .await
        .expect("get web");
    assert_eq!(web.spec.and_then(|s| s.replicas), Some(1));
    let err = same_as_kubectl(c, &["scale", "deployment/nope", "--replicas=2"], None).await;
    assert_eq!((err.code, err.stdout.as_str()), (Some(1), ""));
    let args = [
        "scale",
        "deployment/web",
        "--replicas=2",
        "--current-replicas=5",
    ];
    let err = same_as_kubectl(c, &args, None).await;
    assert_eq!(err.stderr, "error: Expected replicas to be 5, was 1\n");
}

/// Why the scheduler left a pod Pending: its PodScheduled condition's reason when False.
fn unschedulable(p: &Pod) -> bool {
    node_of(p).is_empty()
        && phase(p) == "Pending"
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.type_ == "PodScheduled"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("Unschedulable")
                })
            })
}

/// `cordon`: a new pod stays Pending, the scheduler saying why; `uncordon`: it runs. Saying
/// it twice is `already`, as with kubectl.
async fn check_cordon(c: &Cluster, k: &Kubelet, seen: &mut Seen) {
    let node = k.node.as_str();
    assert_eq!(
        minikctl_ok(c, &["cordon", node]).await,
        format!("node/{node} cordoned\n")
    );
    let again = same_as_kubectl(c, &["cordon", node], None).await;
    assert_eq!(again.stdout, format!("node/{node} already cordoned\n"));
    create_pod(
        c,
        "late",
        json!({"terminationGracePeriodSeconds": 0,
        "volumes": [{"name": "scratch", "emptyDir": {}}],
        "containers": [{"name": "late", "image": "busybox", "command": ["sleep", "3600"],
            "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}]}),
    )
    .await;
    c.wait_pod(
        "late",
        30,
        "PodScheduled=False Unschedulable",
        unschedulable,
    )
    .await;
    let failed = minikctl_ok(c, &["events", "--for", "pod/late", "--types=Warning"]).await;
    let why = "0/1 nodes are available: 1 node(s) were unschedulable.";
    assert!(
        rows(&failed)
            .iter()
            .any(|r| r[1] == "FailedScheduling" && r[3] == why),
        "{failed}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let late = c.pods().get("late").await.expect("get late");
    assert!(unschedulable(&late), "still Pending on a cordoned node");

    assert_eq!(
        minikctl_ok(c, &["uncordon", node]).await,
        format!("node/{node} uncordoned\n")
    );
    let again = same_as_kubectl(c, &["uncordon", node], None).await;
    assert_eq!(again.stdout, format!("node/{node} already uncordoned\n"));
    let late = c
        .wait_pod("late", 60, "Running after uncordon", running)
        .await;
    assert_eq!(node_of(&late), node);
    seen.look(c, k).await;
}

/// Without `--force` and `--delete-emptydir-data`, drain refuses the bare pod with an emptyDir
/// and evicts nothing, word for word as kubectl (each run starts on an uncordoned node).
async fn check_drain_refused(c: &Cluster, node: &str) {
    let args = ["drain", node, "--ignore-daemonsets"];
    let ours = minikctl(c, &args).await;
    minikctl_ok(c, &["uncordon", node]).await;
    let theirs: Ran = c.kubectl(&args).await.into();
    minikctl_ok(c, &["uncordon", node]).await;
    assert_eq!(
        ours, theirs,
        "minikctl (left) and kubectl (right) differ on {args:?}"
    );
    assert_eq!(ours.code, Some(1));
    assert_eq!(ours.stdout, format!("node/{node} cordoned\n"));
    let refusal = "cannot delete Pods with local storage (use --delete-emptydir-data to override): default/late";
    assert!(ours.stderr.contains(refusal), "{}", ours.stderr);
    assert!(c.pods().get("late").await.is_ok(), "nothing evicted");
}

/// `drain --ignore-daemonsets --force --delete-emptydir-data`: kubectl's lines, the bare pod
/// gone, the Deployment's replacement Pending on the cordoned node; `uncordon`: it runs.
async fn check_drain(c: &Cluster, k: &Kubelet, seen: &mut Seen) {
    let node = k.node.as_str();
    let web = live_web(c).await;
    let [web] = web.as_slice() else {
        panic!("one web pod before the drain: {web:?}")
    };
    let web = web.metadata.name.clone().expect("a name");
    let args = [
        "drain",
        node,
        "--ignore-daemonsets",
        "--force",
        "--delete-emptydir-data",
    ];
    let ran = tokio::time::timeout(Duration::from_secs(60), minikctl(c, &args))
        .await
        .expect("drain ends within 60 s");
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_eq!(
        ran.stderr,
        "Warning: deleting Pods that declare no controller: default/late\n"
    );
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(
        lines.first(),
        Some(&format!("node/{node} cordoned").as_str()),
        "{lines:?}"
    );
    assert_eq!(
        lines.last(),
        Some(&format!("node/{node} drained").as_str()),
        "{lines:?}"
    );
    let middle: BTreeSet<&str> = lines[1..lines.len() - 1].iter().copied().collect();
    let evicting = |p: &str| format!("evicting pod default/{p}");
    let evicted = |p: &str| format!("pod/{p} evicted");
    let want = [
        evicting("late"),
        evicting(&web),
        evicted("late"),
        evicted(&web),
    ];
    assert_eq!(
        middle,
        want.iter().map(String::as_str).collect(),
        "{lines:?}"
    );
    for p in ["late", web.as_str()] {
        let at = |l: String| lines.iter().position(|x| *x == l);
        assert!(at(evicting(p)) < at(evicted(p)), "{lines:?}");
    }

    assert!(
        c.pods().get_opt("late").await.expect("get late").is_none(),
        "a bare pod is gone"
    );
    assert!(
        c.pods().get_opt(&web).await.expect("get web").is_none(),
        "{web} is gone"
    );
    wait_for(30, "web's replacement Pending, unschedulable", || async {
        let live = live_web(c).await;
        (live.len() == 1 && unschedulable(&live[0])).then_some(())
    })
    .await;
    assert_eq!(
        minikctl_ok(c, &["uncordon", node]).await,
        format!("node/{node} uncordoned\n")
    );
    let again = wait_web_running(c, k, seen, 1).await;
    assert_eq!(node_of(&again[0]), node);
}

/// A template change rolled out by the real controller: `rollout status` follows it to the
/// end and then says what kubectl says; the new pod prints the new template's line.
async fn check_rollout(c: &Cluster, k: &Kubelet, seen: &mut Seen) {
    let v2 = json!({"spec": {"template": {"spec": {"containers": [{
        "name": "web", "image": "busybox",
        "command": ["sh", "-c", "echo web v2; exec sleep 3600"]}]}}}});
    Api::<Deployment>::namespaced(c.client(), "default")
        .patch("web", &PatchParams::default(), &Patch::Merge(&v2))
        .await
        .expect("change web's template");
    let args = ["rollout", "status", "deployment/web", "--timeout=60s"];
    let ran = tokio::time::timeout(Duration::from_secs(70), minikctl(c, &args))
        .await
        .expect("rollout status ends");
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let done = "deployment \"web\" successfully rolled out";
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines.last(), Some(&done), "{lines:?}");
    let waiting = |l: &&str| l.starts_with("Waiting for deployment");
    assert!(lines[..lines.len() - 1].iter().all(waiting), "{lines:?}");
    let after = same_as_kubectl(c, &["rollout", "status", "deployment/web"], None).await;
    assert_eq!(after.stdout, format!("{done}\n"));
    same_as_kubectl(c, &["rollout", "history", "deployment/web"], None).await;

    wait_web_running(c, k, seen, 1).await;
    let logs = same_as_kubectl(c, &["logs", "deploy/web"], None).await;
    assert_eq!(logs.stdout, "web v2\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn scale_cordon_drain_and_roll_out_on_a_real_node() {
    if skip_unless_root("scale_cordon_drain_and_roll_out_on_a_real_node") {
        return;
    }
    let (c, k) = one_node("drain").await;
    let mut seen = Seen::default();
    create_web(&c, 1).await;
    wait_web_running(&c, &k, &mut seen, 1).await;
    check_scale(&c, &k, &mut seen).await;
    check_cordon(&c, &k, &mut seen).await;
    check_drain_refused(&c, &k.node).await;
    check_drain(&c, &k, &mut seen).await;
    check_rollout(&c, &k, &mut seen).await;
    clean_up(c, k, seen).await;
}
