//! `minikctl describe`: the pages of a Pod, a Deployment, a ReplicaSet, a Node, a Namespace
//! and a kind without a describer (a Lease), each compared line by line with the real
//! `kubectl describe` on the same objects; the Events table; not found; `-f` and `-l`.
//!
//! The cluster has no controllers and no kubelet, so the test writes what they would: a
//! ReplicaSet owned by the Deployment, a Node with its status and Lease, Events about the
//! pod. Event times lie ten days back, so their Age (`10d`) cannot tick during the test; the
//! one time-dependent cell left, a pod's Age at the end of the node's pod table, is masked in
//! both outputs.

mod common;

use common::{minikctl, write, Cluster};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

const OBJECTS: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web, tier: front}
  annotations: {note: "a pod to describe"}
spec:
  nodeName: n1
  containers:
  - name: main
    image: busybox:1.36
    command: [sh, -c, "sleep 3600"]
    args: ["--verbose"]
    ports: [{containerPort: 8080}]
    env:
    - {name: GREETING, value: hello}
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    resources:
      requests: {cpu: 100m, memory: 64Mi}
      limits: {cpu: 200m, memory: 128Mi}
    readinessProbe:
      httpGet: {path: /healthz, port: 8080}
    volumeMounts: [{name: scratch, mountPath: /data}]
  volumes:
  - name: scratch
    emptyDir: {}
  tolerations:
  - {key: dedicated, operator: Equal, value: web, effect: NoSchedule}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: hello
  labels: {app: hello}
spec:
  replicas: 2
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports: [{containerPort: 80}]
"#;

/// A cluster with the objects above, a ReplicaSet of the Deployment, a Node `n1` with its
/// status and Lease, and two Events about pod `web`.
async fn cluster_with_objects() -> Cluster {
    let cluster = Cluster::start().await;
    cluster
        .kubectl_stdin(&["apply", "-f", "-"], Some(OBJECTS))
        .await;
    let client = cluster.client();
    node(&client).await;
    replica_set(&cluster).await;
    running_pod(&cluster).await;
    pod_events(&client).await;
    series_event(&client).await;
    cluster
}

async fn create(client: &kube::Client, url: &str, body: Value) {
    let req = http::Request::post(url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap())
        .unwrap();
    client
        .request::<Value>(req)
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
}

/// Node `n1` as a kubelet registers it, and its Lease.
async fn node(client: &kube::Client) {
    let nodes: Api<Node> = Api::all(client.clone());
    let n = serde_json::from_value(json!({"metadata": {"name": "n1",
        "labels": {"kubernetes.io/hostname": "n1", "node-role.kubernetes.io/worker": ""}}}))
    .unwrap();
    nodes.create(&PostParams::default(), &n).await.unwrap();
    let at = "2026-01-01T00:00:00Z";
    let status = json!({"status": {
        "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110", "ephemeral-storage": "20Gi"},
        "allocatable": {"cpu": "2", "memory": "3840Mi", "pods": "110", "ephemeral-storage": "20Gi"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "kubelet is posting ready status", "lastHeartbeatTime": at,
            "lastTransitionTime": at}],
        "addresses": [{"type": "InternalIP", "address": "10.0.0.1"},
            {"type": "Hostname", "address": "n1"}],
        "nodeInfo": {"machineID": "m", "systemUUID": "s", "bootID": "b",
            "kernelVersion": "6.8.0", "osImage": "Ubuntu", "containerRuntimeVersion": "minik8s://0.1",
            "kubeletVersion": "v1.32.0", "kubeProxyVersion": "", "operatingSystem": "linux",
            "architecture": "amd64"}}});
    nodes
        .patch_status("n1", &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
    create(
        client,
        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "n1"},
            "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40,
                "renewTime": "2026-01-01T00:00:00.000000Z"}}),
    )
    .await;
}

/// The Deployment's ReplicaSet, as its controller would make it.
async fn replica_set(cluster: &Cluster) {
    let d = common::kubectl_json(cluster, &["deployment", "hello"]).await;
    let mut template = d["spec"]["template"].clone();
    template["metadata"]["labels"]["pod-template-hash"] = json!("5d4f");
    create(
        &cluster.client(),
        "/apis/apps/v1/namespaces/default/replicasets",
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "hello-5d4f", "labels": {"app": "hello", "pod-template-hash": "5d4f"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "hello",
                    "uid": d["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]},
            "spec": {"replicas": 2,
                "selector": {"matchLabels": {"app": "hello", "pod-template-hash": "5d4f"}},
                "template": template}}),
    )
    .await;
}

/// Pod `db` of the ReplicaSet, running on `n1` with a restarted container, as its kubelet
/// would report it.
async fn running_pod(cluster: &Cluster) {
    let rs = common::kubectl_json(cluster, &["replicaset", "hello-5d4f"]).await;
    let client = cluster.client();
    create(
        &client,
        "/api/v1/namespaces/default/pods",
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "db", "labels": {"app": "hello", "pod-template-hash": "5d4f"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "hello-5d4f", "uid": rs["metadata"]["uid"], "controller": true}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "nginx", "image": "nginx:1.27",
                "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}}}]}}),
    )
    .await;
    let at = "2026-01-01T00:00:00Z";
    let cond = |t: &str| json!({"type": t, "status": "True", "lastTransitionTime": at});
    let status = json!({"status": {"phase": "Running", "hostIP": "10.0.0.1",
        "podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}], "startTime": at,
        "conditions": [cond("PodScheduled"), cond("Initialized"), cond("ContainersReady"), cond("Ready")],
        "containerStatuses": [{"name": "nginx", "ready": true, "restartCount": 2, "started": true,
            "image": "nginx:1.27", "imageID": "sha256:abc", "containerID": "minik8s://0123",
            "state": {"running": {"startedAt": at}},
            "lastState": {"terminated": {"exitCode": 137, "reason": "Error", "startedAt": at,
                "finishedAt": at}}}]}});
    Api::<Pod>::namespaced(client, "default")
        .patch_status("db", &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
}

/// Two Events about pod `web` (one repeated), ten days old.
async fn pod_events(client: &kube::Client) {
    let pod = Api::<Pod>::namespaced(client.clone(), "default")
        .get("web")
        .await
        .unwrap();
    let old = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(240);
    let older = old - jiff::SignedDuration::from_hours(24);
    for (name, kind, reason, message, count, first) in [
        (
            "web.1",
            "Normal",
            "Scheduled",
            "Successfully assigned default/web to n1",
            1,
            old,
        ),
        (
            "web.2",
            "Warning",
            "BackOff",
            "Back-off restarting failed container",
            3,
            older,
        ),
    ] {
        create(
            client,
            "/api/v1/namespaces/default/events",
            json!({"metadata": {"name": name},
                "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web",
                    "uid": pod.metadata.uid, "apiVersion": "v1"},
                "reason": reason, "message": message, "type": kind, "count": count,
                "source": {"component": "default-scheduler"},
                "firstTimestamp": first.to_string(), "lastTimestamp": old.to_string()}),
        )
        .await;
    }
}

/// An events.k8s.io/v1 Event about pod `db` (how newer components write them: `regarding`,
/// `note`, `reportingController`, a `series` for repeats), ten days old.
async fn series_event(client: &kube::Client) {
    let pod = Api::<Pod>::namespaced(client.clone(), "default")
        .get("db")
        .await
        .unwrap();
    let secs = jiff::Timestamp::now().as_second() - 240 * 3600;
    let at = jiff::Timestamp::from_second(secs).unwrap().to_string();
    let micro = at.replace('Z', ".000000Z");
    create(
        client,
        "/apis/events.k8s.io/v1/namespaces/default/events",
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "db.1"},
            "regarding": {"kind": "Pod", "namespace": "default", "name": "db",
                "uid": pod.metadata.uid, "apiVersion": "v1"},
            "reason": "Pulled", "note": "Container image \"nginx:1.27\" already present",
            "type": "Normal", "action": "Pulling", "reportingController": "kubelet",
            "reportingInstance": "n1", "eventTime": micro,
            "series": {"count": 4, "lastObservedTime": micro}}),
    )
    .await;
}

/// The text with a pod's Age (the last cell of the node's pod table) masked.
fn masked(text: &str) -> Vec<String> {
    let is_age = |t: &str| {
        !t.is_empty()
            && t.chars().all(|c| c.is_ascii_digit() || "smhdy".contains(c))
            && t.starts_with(|c: char| c.is_ascii_digit())
    };
    text.lines()
        .map(|l| match l.rsplit_once(' ') {
            Some((head, last)) if l.starts_with("  default ") && is_age(last) => {
                format!("{head} AGE")
            }
            _ => l.to_string(),
        })
        .collect()
}

#[tokio::test]
async fn pages_match_kubectls_line_by_line() {
    let cluster = cluster_with_objects().await;
    for args in [
        &["describe", "pod", "web"][..],
        &["describe", "pod", "db"],
        &["describe", "deployment", "hello"],
        &["describe", "rs", "hello-5d4f"],
        &["describe", "node", "n1"],
        &["describe", "namespace", "default"],
        &["describe", "lease", "n1", "-n", "kube-node-lease"],
        &["describe", "pods"],
        &["describe", "pod/web", "deploy/hello"],
        &["describe", "nodes"],
        &["describe", "ns"],
        &["describe", "deploy,rs"],
        &["describe", "events"],
        &["describe", "pods", "-A"],
        &["describe", "pod", "web", "--show-events=false"],
        &["describe", "node", "n1", "--show-events=false"],
    ] {
        let ours = minikctl(&cluster, args).await.ok();
        let theirs = cluster.kubectl_ok(args).await;
        let (ours, theirs) = (masked(&ours), masked(&theirs));
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(a, b, "{args:?} line {}:\n{}", i + 1, theirs.join("\n"));
        }
        assert_eq!(ours.len(), theirs.len(), "{args:?}:\n{}", theirs.join("\n"));
    }
}

#[tokio::test]
async fn events_end_the_page_of_their_object() {
    let cluster = cluster_with_objects().await;
    let page = minikctl(&cluster, &["describe", "pod", "web"]).await.ok();
    let events = &page[page.find("\nEvents:\n").expect("an Events section")..];
    let lines: Vec<&str> = events.lines().skip(2).collect();
    assert!(
        lines[0].starts_with("  Type     Reason     Age "),
        "{events}"
    );
    assert!(
        lines[2].starts_with("  Normal   Scheduled  10d "),
        "{events}"
    );
    assert!(
        lines[3].starts_with("  Warning  BackOff    10d (x3 over 11d)  default-scheduler  ")
            && lines[3].ends_with("  Back-off restarting failed container"),
        "{events}"
    );
    assert_eq!(lines.len(), 4, "{events}");
    let page = minikctl(&cluster, &["describe", "deploy", "hello"])
        .await
        .ok();
    assert!(page.ends_with("\nEvents:            <none>\n"), "{page}");
    assert!(
        page.contains("\nNewReplicaSet:     hello-5d4f (0/2 replicas created)\n"),
        "{page}"
    );
}

/// The page `minikctl ARGS` prints, its words separated by single spaces.
async fn words(cluster: &Cluster, args: &[&str]) -> String {
    let page = minikctl(cluster, args).await.ok();
    page.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn a_running_pod_shows_its_containers_state_and_its_owner() {
    let cluster = cluster_with_objects().await;
    let db = words(&cluster, &["describe", "pod", "db"]).await;
    for want in [
        "Node: n1/10.0.0.1 Start Time: Thu, 01 Jan 2026 00:00:00 +0000",
        "Status: Running IP: 10.244.0.5 IPs: IP: 10.244.0.5 Controlled By: ReplicaSet/hello-5d4f",
        "Container ID: minik8s://0123 Image: nginx:1.27 Image ID: sha256:abc",
        "State: Running Started: Thu, 01 Jan 2026 00:00:00 +0000 Last State: Terminated \
         Reason: Error Exit Code: 137",
        "Ready: True Restart Count: 2 Limits: cpu: 500m memory: 256Mi Requests: cpu: 500m",
        "Conditions: Type Status PodScheduled True Initialized True ContainersReady True Ready True",
    ] {
        assert!(db.contains(want), "{want:?} not in:\n{db}");
    }
    assert!(
        db.contains("Normal Pulled 10d (x4 over 10d) kubelet Container image"),
        "{db}"
    );
    let rs = words(&cluster, &["describe", "rs", "hello-5d4f"]).await;
    let want = "Replicas: 0 current / 2 desired Pods Status: 1 Running / 0 Waiting / 0 Succeeded / 0 Failed";
    assert!(rs.contains(want), "{rs}");
    let node = words(&cluster, &["describe", "node", "n1"]).await;
    assert!(node.contains("Non-terminated Pods: (2 in total)"), "{node}");
    assert!(node.contains("cpu 600m (30%) 700m (35%)"), "{node}");
}

#[tokio::test]
async fn not_found_is_the_servers_status_and_the_rest_is_described() {
    let cluster = cluster_with_objects().await;
    let run = minikctl(&cluster, &["describe", "pod", "nope"]).await;
    assert_eq!((run.code, run.stdout.as_str()), (1, ""));
    assert_eq!(
        run.stderr,
        "Error from server (NotFound): pods \"nope\" not found\n"
    );
    let run = minikctl(&cluster, &["describe", "pods", "web", "nope"]).await;
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.starts_with("Name:         web\n"),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stderr,
        "Error from server (NotFound): pods \"nope\" not found\n"
    );
    let run = minikctl(&cluster, &["describe", "pods", "-n", "kube-public"]).await;
    assert_eq!((run.code, run.stdout.as_str()), (0, ""));
    assert_eq!(run.stderr, "No resources found in kube-public namespace.\n");
    let err = minikctl(&cluster, &["describe"]).await.failed();
    assert!(
        err.starts_with("error: You must specify the type of resource"),
        "{err}"
    );
}

#[tokio::test]
async fn by_file_by_selector_and_by_prefix() {
    let cluster = cluster_with_objects().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "objects.yaml", OBJECTS);
    for args in [
        &["describe", "-f", &file][..],
        &["describe", "pods", "-l", "app=web"],
        &["describe", "deploy", "hel"],
    ] {
        let ours = minikctl(&cluster, args).await.ok();
        let theirs = cluster.kubectl_ok(args).await;
        assert_eq!(masked(&ours), masked(&theirs), "{args:?}");
    }
    let by_file = minikctl(&cluster, &["describe", "-f", &file]).await.ok();
    assert!(by_file.starts_with("Name:         web\n"), "{by_file}");
    assert!(
        by_file.contains("\n\n\nName:                   hello\n"),
        "{by_file}"
    );
    let none = minikctl(&cluster, &["describe", "pods", "-l", "app=none"]).await;
    assert_eq!(none.stderr, "No resources found in default namespace.\n");
}
