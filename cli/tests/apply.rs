//! `minikctl apply` and `create`: the repository's manifests applied twice, a field removed
//! from a file removed from the object, the same objects as the real kubectl makes, and
//! server-side apply with its conflicts.

mod common;

use common::{kubectl_json, minikctl, minikctl_stdin, write, Cluster};
use serde_json::{json, Value};

fn manifests_dir() -> String {
    format!("{}/../manifests", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn applying_the_manifests_twice_leaves_everything_unchanged() {
    let cluster = Cluster::start().await;
    let dir = manifests_dir();
    let first = minikctl(&cluster, &["apply", "-f", &dir]).await.ok();
    assert_eq!(
        first,
        "deployment.apps/hello created\npod/hello created\nservice/web created\n"
    );
    let second = minikctl(&cluster, &["apply", "-f", &dir]).await.ok();
    assert_eq!(
        second,
        "deployment.apps/hello unchanged\npod/hello unchanged\nservice/web unchanged\n"
    );
    let out = minikctl(&cluster, &["delete", "-f", &dir]).await.ok();
    assert_eq!(
        out,
        "deployment.apps \"hello\" deleted\npod \"hello\" deleted\nservice \"web\" deleted\n"
    );
}

const WEB_V1: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: front}
  annotations: {note: first}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: main
        image: busybox
        command: [sleep, '3600']
        env: [{name: A, value: '1'}, {name: B, value: '2'}]
      - name: side
        image: busybox
";

/// v1 without the `tier` label, the annotation, env B and the `side` container.
const WEB_V2: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: main
        image: busybox:1.36
        command: [sleep, '3600']
        env: [{name: A, value: '1'}]
";

#[tokio::test]
async fn a_field_removed_from_the_file_is_removed_from_the_object() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "web.yaml", WEB_V1);
    let created = minikctl(&cluster, &["apply", "-f", &file]).await.ok();
    assert_eq!(created, "deployment.apps/web created\n");
    cluster
        .kubectl_ok(&["label", "deployment", "web", "owner=someone-else"])
        .await;
    write(dir.path(), "web.yaml", WEB_V2);
    let configured = minikctl(&cluster, &["apply", "-f", &file]).await.ok();
    assert_eq!(configured, "deployment.apps/web configured\n");
    let deploy = kubectl_json(&cluster, &["deployment", "web"]).await;
    let labels = &deploy["metadata"]["labels"];
    assert_eq!(labels, &json!({"app": "web", "owner": "someone-else"}));
    assert!(
        deploy["metadata"]["annotations"].get("note").is_none(),
        "{deploy}"
    );
    let containers = deploy["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1, "{deploy}");
    assert_eq!(containers[0]["image"], "busybox:1.36");
    assert_eq!(containers[0]["env"], json!([{"name": "A", "value": "1"}]));
    let again = minikctl(&cluster, &["apply", "-f", &file]).await.ok();
    assert_eq!(again, "deployment.apps/web unchanged\n");
    minikctl(&cluster, &["delete", "-f", &file]).await.ok();
}

/// The object without what the server sets (and may set differently each time).
fn user_fields(mut object: Value) -> Value {
    let metadata = object["metadata"].as_object_mut().unwrap();
    for field in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "managedFields",
    ] {
        metadata.remove(field);
    }
    object.as_object_mut().unwrap().remove("status");
    object
}

const DEPLOY_V1: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: same, labels: {app: same, stage: one}}
spec:
  replicas: 2
  selector: {matchLabels: {app: same}}
  template:
    metadata: {labels: {app: same}}
    spec:
      containers:
      - {name: a, image: busybox, ports: [{containerPort: 80}, {containerPort: 81}]}
      - {name: b, image: busybox, env: [{name: X, value: <&>}]}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: same, annotations: {a: '1', b: '2'}}
spec: {holderIdentity: one, leaseDurationSeconds: 10}
";

const DEPLOY_V2: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: same, labels: {app: same}}
spec:
  selector: {matchLabels: {app: same}}
  template:
    metadata: {labels: {app: same}}
    spec:
      containers:
      - {name: c, image: busybox}
      - {name: a, image: busybox:1.36, ports: [{containerPort: 81}]}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: same, annotations: {b: '3'}}
spec: {holderIdentity: two}
";

#[tokio::test]
async fn minikctl_and_kubectl_make_the_same_objects() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "same.yaml", DEPLOY_V1);
    let mut snapshots = Vec::new();
    for tool in ["minikctl", "kubectl"] {
        for text in [DEPLOY_V1, DEPLOY_V2] {
            write(dir.path(), "same.yaml", text);
            let args = ["apply", "-f", file.as_str()];
            if tool == "minikctl" {
                minikctl(&cluster, &args).await.ok();
            } else {
                cluster.kubectl_ok(&args).await;
            }
            let deploy = kubectl_json(&cluster, &["deployment", "same"]).await;
            let lease = kubectl_json(&cluster, &["lease", "same"]).await;
            snapshots.push((tool, user_fields(deploy), user_fields(lease)));
        }
        minikctl(&cluster, &["delete", "-f", &file]).await.ok();
    }
    for i in 0..2 {
        assert_eq!(
            snapshots[i].1,
            snapshots[i + 2].1,
            "deployment after apply #{}",
            i + 1
        );
        assert_eq!(
            snapshots[i].2,
            snapshots[i + 2].2,
            "lease after apply #{}",
            i + 1
        );
    }
}

#[tokio::test]
async fn stdin_and_recursive_directories() {
    let cluster = Cluster::start().await;
    let cm = |name: &str| {
        format!("apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {{name: {name}}}\n")
    };
    let out = minikctl_stdin(&cluster, &["apply", "-f", "-"], Some(&cm("from-stdin")))
        .await
        .ok();
    assert_eq!(out, "lease.coordination.k8s.io/from-stdin created\n");
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "top.yaml", &cm("top"));
    write(dir.path(), "sub/deeper.yml", &cm("deeper"));
    let d = dir.path().to_str().unwrap();
    assert_eq!(
        minikctl(&cluster, &["apply", "-f", d]).await.ok(),
        "lease.coordination.k8s.io/top created\n"
    );
    assert_eq!(
        minikctl(&cluster, &["apply", "-R", "-f", d]).await.ok(),
        "lease.coordination.k8s.io/deeper created\nlease.coordination.k8s.io/top unchanged\n"
    );
    minikctl(&cluster, &["delete", "-R", "-f", d]).await.ok();
    minikctl(&cluster, &["delete", "lease", "from-stdin"])
        .await
        .ok();
}

/// Server-side apply hands the whole object to the server, which merges it. (minik8s's
/// apiserver does not track field managers yet, so there are no conflicts to force.)
#[tokio::test]
async fn server_side_apply_lets_the_server_merge() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let lease = |v: &str| {
        format!("apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {{name: ssa}}\nspec: {{holderIdentity: {v}}}\n")
    };
    let file = write(dir.path(), "lease.yaml", &lease("first"));
    let out = minikctl(&cluster, &["apply", "--server-side", "-f", &file])
        .await
        .ok();
    assert_eq!(out, "lease.coordination.k8s.io/ssa serverside-applied\n");
    cluster
        .kubectl_ok(&["annotate", "lease", "ssa", "kept=yes"])
        .await;
    write(dir.path(), "lease.yaml", &lease("second"));
    let out = minikctl(
        &cluster,
        &["apply", "--server-side", "--force-conflicts", "-f", &file],
    )
    .await
    .ok();
    assert_eq!(out, "lease.coordination.k8s.io/ssa serverside-applied\n");
    let live = kubectl_json(&cluster, &["lease", "ssa"]).await;
    assert_eq!(live["spec"]["holderIdentity"], "second");
    assert_eq!(live["metadata"]["annotations"]["kept"], "yes");
    let err = minikctl(&cluster, &["apply", "--force-conflicts", "-f", &file]).await;
    assert_eq!(
        err.code, 1,
        "--force-conflicts needs --server-side: {}",
        err.stderr
    );
    minikctl(&cluster, &["delete", "-f", &file]).await.ok();
}

#[tokio::test]
async fn create_refuses_what_exists_and_names_the_file() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "two.yaml",
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: one}\n---\n\
         apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: two}\n",
    );
    let out = minikctl(&cluster, &["create", "-f", &file]).await.ok();
    assert_eq!(
        out,
        "lease.coordination.k8s.io/one created\nlease.coordination.k8s.io/two created\n"
    );
    cluster.kubectl_ok(&["delete", "lease", "two"]).await;
    let run = minikctl(&cluster, &["create", "-f", &file]).await;
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout, "lease.coordination.k8s.io/two created\n");
    assert_eq!(
        run.stderr,
        format!("Error from server (AlreadyExists): error when creating \"{file}\": leases.coordination.k8s.io \"one\" already exists\n")
    );
    let live = kubectl_json(&cluster, &["lease", "one"]).await;
    assert!(
        live["metadata"].get("annotations").is_none(),
        "create does not record last-applied"
    );
    minikctl(&cluster, &["delete", "-f", &file]).await.ok();
}
