//! `version`, `api-resources`, `cluster-info`, how the client finds the server, and the
//! errors that come before any request: an unreachable server, an unknown resource type.

mod common;

use common::{minikctl, raw, Cluster};

#[tokio::test]
async fn version_and_cluster_info_reach_the_server() {
    let cluster = Cluster::start().await;
    let out = minikctl(&cluster, &["version"]).await.ok();
    assert!(out.starts_with("Client Version: v"), "{out}");
    assert!(out.contains("Server Version: v1."), "{out}");
    let out = minikctl(&cluster, &["cluster-info"]).await.ok();
    assert!(
        out.starts_with(&format!(
            "Kubernetes control plane is running at {}\n",
            cluster.url()
        )),
        "{out}"
    );
}

#[tokio::test]
async fn api_resources_lists_discovery_with_short_names() {
    let cluster = Cluster::start().await;
    let out = minikctl(&cluster, &["api-resources"]).await.ok();
    let header = out.lines().next().unwrap();
    assert!(header.starts_with("NAME "), "{header}");
    for col in ["SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"] {
        assert!(header.contains(col), "{header}");
    }
    let pods = out.lines().find(|l| l.starts_with("pods ")).unwrap();
    let cells: Vec<&str> = pods.split_whitespace().collect();
    assert_eq!(cells, ["pods", "po", "v1", "true", "Pod"]);
    let names = minikctl(
        &cluster,
        &["api-resources", "-o", "name", "--namespaced=false"],
    )
    .await
    .ok();
    assert!(names.lines().any(|l| l == "nodes"), "{names}");
    assert!(!names.lines().any(|l| l == "pods"), "{names}");
}

#[tokio::test]
async fn server_flag_wins_over_kubeconfig_env() {
    let cluster = Cluster::start().await;
    let mut cmd = common::minikctl_command();
    let out = cmd
        .env("KUBECONFIG", "/nonexistent/config:/dev/null")
        .args([
            "--server",
            cluster.url(),
            "get",
            "ns",
            "default",
            "-o",
            "name",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "namespace/default\n");
}

#[tokio::test]
async fn kubeconfig_env_and_context_are_read() {
    let cluster = Cluster::start().await;
    let mut cmd = common::minikctl_command();
    let kubeconfig = cluster.kubeconfig();
    let out = cmd
        .env(
            "KUBECONFIG",
            format!("/nonexistent/config:{}", kubeconfig.display()),
        )
        .args(["--context", "e2e", "get", "ns", "default", "-o", "name"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "namespace/default\n");
    let run = common::minikctl(&cluster, &["--context", "nope", "get", "pods"]).await;
    let err = run.failed();
    assert!(err.starts_with("error: ") && err.contains("nope"), "{err}");
}

#[tokio::test]
async fn an_unreachable_server_is_one_line_and_exit_1() {
    let err = raw(&["--server", "http://127.0.0.1:1", "get", "pods"], None)
        .await
        .failed();
    assert_eq!(
        err,
        "The connection to the server 127.0.0.1:1 was refused - did you specify the right host or port?\n"
    );
}

#[tokio::test]
async fn an_unknown_resource_type_is_named() {
    let cluster = Cluster::start().await;
    let err = minikctl(&cluster, &["get", "widgets"]).await.failed();
    assert_eq!(
        err,
        "error: the server doesn't have a resource type \"widgets\"\n"
    );
}
