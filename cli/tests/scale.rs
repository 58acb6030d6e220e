//! `minikctl scale`: Deployments and ReplicaSets resized through their scale subresource, by
//! name or from a file, the `--current-replicas` precondition, and a missing object, each
//! compared with the real kubectl.

mod common;

use common::{minikctl, same_as_kubectl, write, Cluster};
use serde_json::Value;

const WORKLOADS: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: main, image: busybox}]}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: cache}
spec:
  replicas: 1
  selector: {matchLabels: {app: cache}}
  template:
    metadata: {labels: {app: cache}}
    spec: {containers: [{name: main, image: busybox}]}
";

/// The replicas `kind/name` asks for, and its whole scale view.
async fn replicas(cluster: &Cluster, kind: &str, name: &str) -> (i64, Value) {
    let object: Value =
        serde_json::from_str(&cluster.kubectl_ok(&["get", kind, name, "-o", "json"]).await)
            .unwrap();
    (object["spec"]["replicas"].as_i64().unwrap(), object)
}

#[tokio::test]
async fn deployments_and_replicasets_scale_by_name_and_from_a_file() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "workloads.yaml", WORKLOADS);
    cluster.kubectl_ok(&["apply", "-f", &file]).await;
    let (_, before) = replicas(&cluster, "deployment", "web").await;
    let out = minikctl(&cluster, &["scale", "deployment", "web", "--replicas=3"])
        .await
        .ok();
    assert_eq!(out, "deployment.apps/web scaled\n");
    let (n, after) = replicas(&cluster, "deployment", "web").await;
    assert_eq!(n, 3);
    // Only the replicas changed: the template is untouched.
    assert_eq!(after["spec"]["template"], before["spec"]["template"]);
    let out = minikctl(&cluster, &["scale", "rs/cache", "--replicas=2"])
        .await
        .ok();
    assert_eq!(out, "replicaset.apps/cache scaled\n");
    assert_eq!(replicas(&cluster, "rs", "cache").await.0, 2);
    let out = minikctl(&cluster, &["scale", "-f", &file, "--replicas=0"])
        .await
        .ok();
    assert_eq!(
        out,
        "deployment.apps/web scaled\nreplicaset.apps/cache scaled\n"
    );
    assert_eq!(replicas(&cluster, "deployment", "web").await.0, 0);
    assert_eq!(replicas(&cluster, "rs", "cache").await.0, 0);
    let theirs = cluster
        .kubectl_ok(&["scale", "-f", &file, "--replicas=1"])
        .await;
    assert_eq!(theirs, out, "kubectl prints the same lines");
}

#[tokio::test]
async fn preconditions_and_missing_objects_fail_as_kubectls_do() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "workloads.yaml", WORKLOADS);
    cluster.kubectl_ok(&["apply", "-f", &file]).await;
    let out = minikctl(
        &cluster,
        &[
            "scale",
            "deploy/web",
            "--current-replicas=1",
            "--replicas=4",
        ],
    )
    .await
    .ok();
    assert_eq!(out, "deployment.apps/web scaled\n");
    assert_eq!(replicas(&cluster, "deployment", "web").await.0, 4);
    for args in [
        &[
            "scale",
            "deploy/web",
            "--current-replicas=2",
            "--replicas=5",
        ][..],
        &["scale", "deployment", "nope", "--replicas=1"],
    ] {
        let ours = same_as_kubectl(&cluster, args).await;
        assert_eq!(ours.code, 1, "{args:?}: {}", ours.stderr);
    }
    assert_eq!(replicas(&cluster, "deployment", "web").await.0, 4);
    let err = minikctl(&cluster, &["scale", "deployment", "nope", "--replicas=1"])
        .await
        .failed();
    // kubectl 1.32 words a missing object this way, not as `Error from server (NotFound)`.
    assert_eq!(
        err,
        "error: no objects passed to scale deployments.apps \"nope\" not found\n"
    );
    let err = minikctl(&cluster, &["scale", "deployment", "web"])
        .await
        .failed();
    assert_eq!(err, "error: required flag(s) \"replicas\" not set\n");
}
