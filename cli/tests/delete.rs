//! `minikctl delete`: by name, by selector, `--all`, by file; the grace period and the
//! cascade as the server receives them; `--wait`.

mod common;

use common::{kubectl_json, minikctl, write, Cluster};
use serde_json::json;

async fn run_pod(cluster: &Cluster, name: &str, app: &str) {
    cluster
        .kubectl_ok(&[
            "run",
            name,
            "--image=busybox",
            &format!("--labels=app={app}"),
        ])
        .await;
}

#[tokio::test]
async fn by_name_selector_and_all() {
    let cluster = Cluster::start().await;
    for (name, app) in [("a", "x"), ("b", "x"), ("c", "y"), ("d", "y")] {
        run_pod(&cluster, name, app).await;
    }
    assert_eq!(
        minikctl(&cluster, &["delete", "pod", "a"]).await.ok(),
        "pod \"a\" deleted\n"
    );
    let out = minikctl(&cluster, &["delete", "po", "-l", "app=x"])
        .await
        .ok();
    assert_eq!(out, "pod \"b\" deleted\n");
    let out = minikctl(&cluster, &["delete", "pods", "--all"]).await.ok();
    assert_eq!(out, "pod \"c\" deleted\npod \"d\" deleted\n");
    let run = minikctl(&cluster, &["delete", "pods", "--all"]).await;
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (0, "No resources found in default namespace.\n")
    );
    let err = minikctl(&cluster, &["delete", "pod", "a"]).await.failed();
    assert_eq!(err, "Error from server (NotFound): pods \"a\" not found\n");
    let run = minikctl(&cluster, &["delete", "pod", "a", "--ignore-not-found"]).await;
    assert_eq!((run.code, run.stdout.as_str()), (0, ""));
    let err = minikctl(&cluster, &["delete", "pods"]).await.failed();
    assert_eq!(
        err,
        "error: resource(s) were provided, but no name was specified\n"
    );
}

#[tokio::test]
async fn by_file_reports_what_is_missing_with_the_file() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "pods.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: one}\nspec: {containers: [{name: c, image: busybox}]}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: two}\nspec: {containers: [{name: c, image: busybox}]}\n",
    );
    minikctl(&cluster, &["apply", "-f", &file]).await.ok();
    cluster.kubectl_ok(&["delete", "pod", "one"]).await;
    let run = minikctl(&cluster, &["delete", "-f", &file]).await;
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout, "pod \"two\" deleted\n");
    assert_eq!(
        run.stderr,
        format!("Error from server (NotFound): error when deleting \"{file}\": pods \"one\" not found\n")
    );
    assert!(cluster.pods().get_opt("two").await.unwrap().is_none());
}

/// A pod bound to a node waits for its kubelet; the grace period is what it is given, and
/// `--wait=false` returns at once. (No kubelet runs here, so grace 0 finishes it.)
#[tokio::test]
async fn grace_period_and_wait() {
    let cluster = Cluster::start().await;
    cluster
        .create_pod(
            "bound",
            "nowhere",
            json!({"containers": [{"name": "c", "image": "busybox"}]}),
        )
        .await;
    let out = minikctl(
        &cluster,
        &[
            "delete",
            "pod",
            "bound",
            "--grace-period=45",
            "--wait=false",
        ],
    )
    .await
    .ok();
    assert_eq!(out, "pod \"bound\" deleted\n");
    let pod = kubectl_json(&cluster, &["pod", "bound"]).await;
    assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 45);
    let out = minikctl(
        &cluster,
        &["delete", "pod", "bound", "--grace-period=0", "--force"],
    )
    .await
    .ok();
    assert_eq!(out, "pod \"bound\" deleted\n");
    assert!(
        cluster.pods().get_opt("bound").await.unwrap().is_none(),
        "--wait returned: gone"
    );
}

/// `--cascade` becomes the propagation policy: foreground and orphan leave the owner with
/// the finalizer the garbage collector acts on (none runs here; the test removes it).
#[tokio::test]
async fn cascade_reaches_the_server_as_a_propagation_policy() {
    let cluster = Cluster::start().await;
    let manifests = format!(
        "{}/../manifests/hello-deployment.yaml",
        env!("CARGO_MANIFEST_DIR")
    );
    for (cascade, finalizer) in [("foreground", "foregroundDeletion"), ("orphan", "orphan")] {
        minikctl(&cluster, &["apply", "-f", &manifests]).await.ok();
        let flag = format!("--cascade={cascade}");
        let out = minikctl(
            &cluster,
            &["delete", "deploy", "hello", &flag, "--wait=false"],
        )
        .await
        .ok();
        assert_eq!(out, "deployment.apps \"hello\" deleted\n");
        let deploy = kubectl_json(&cluster, &["deploy", "hello"]).await;
        assert_eq!(
            deploy["metadata"]["finalizers"],
            json!([finalizer]),
            "{cascade}"
        );
        cluster
            .kubectl_ok(&[
                "patch",
                "deploy",
                "hello",
                "--type=merge",
                "-p",
                r#"{"metadata":{"finalizers":null}}"#,
            ])
            .await;
        let err = minikctl(&cluster, &["get", "deploy", "hello"])
            .await
            .failed();
        assert!(err.contains("NotFound"), "{err}");
    }
    let err = minikctl(&cluster, &["delete", "deploy", "x", "--cascade=sideways"]).await;
    assert_eq!(
        err.code, 1,
        "clap refuses an unknown cascade: {}",
        err.stderr
    );
}
