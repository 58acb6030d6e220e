//! The real kubectl (`KUBECTL` or on PATH, 1.30 or newer) against our apiserver on a real etcd.

mod common;

use common::{manifest, Cluster};

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: NAME
  namespace: NS
  labels: {app: APP}
spec:
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
"#;

fn pod(name: &str, ns: &str, app: &str) -> String {
    POD.replace("NAME", name)
        .replace("NS", ns)
        .replace("APP", app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_creates_then_updates_and_get_prints_real_columns() {
    let c = Cluster::start().await;
    let out = c
        .kubectl_ok(&["apply", "-f", &manifest("hello-deployment.yaml")])
        .await;
    assert!(out.contains("deployment.apps/hello created"), "{out}");

    // Unchanged manifest: no patch, reported as unchanged.
    let out = c
        .kubectl_ok(&["apply", "-f", &manifest("hello-deployment.yaml")])
        .await;
    assert!(out.contains("unchanged"), "{out}");

    // A changed manifest is a strategic merge patch.
    let changed = std::fs::read_to_string(manifest("hello-deployment.yaml"))
        .unwrap()
        .replace("replicas: 3", "replicas: 4")
        .replace("image: busybox", "image: busybox:1.36");
    let out = c.kubectl_stdin(&["apply", "-f", "-"], Some(&changed)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configured"));
    let got = c
        .kubectl_ok(&["get", "deploy", "hello", "-o", "jsonpath={.spec.replicas} {.metadata.generation} {.spec.template.spec.containers[0].image} {.spec.strategy.rollingUpdate.maxSurge}"])
        .await;
    assert_eq!(got, "4 2 busybox:1.36 25%");

    let table = c.kubectl_ok(&["get", "deployments"]).await;
    let header = table.lines().next().unwrap();
    for col in ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"] {
        assert!(header.contains(col), "missing column {col}: {table}");
    }
    assert!(table.contains("hello"));

    let wide = c.kubectl_ok(&["get", "deployments", "-o", "wide"]).await;
    assert!(wide.lines().next().unwrap().contains("IMAGES"), "{wide}");

    let described = c.kubectl_ok(&["describe", "deployment", "hello"]).await;
    assert!(
        described.contains("Name:") && described.contains("hello"),
        "{described}"
    );
    assert!(described.contains("busybox:1.36"), "{described}");

    let out = c.kubectl_ok(&["delete", "deployment", "hello"]).await;
    assert!(out.contains("deleted"), "{out}");
    let out = c.kubectl(&["get", "deployment", "hello"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("deployments.apps \"hello\" not found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_validation_rejects_unknown_fields() {
    let c = Cluster::start().await;
    let bad =
        pod("typo", "default", "x").replace("image: busybox", "image: busybox\n    imagee: oops");
    let out = c.kubectl_stdin(&["apply", "-f", "-"], Some(&bad)).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown field \"spec.containers[0].imagee\""),
        "{err}"
    );
    // Nothing was stored.
    assert!(!c.kubectl(&["get", "pod", "typo"]).await.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_patch_scale_and_selectors() {
    let c = Cluster::start().await;
    c.kubectl_ok(&["create", "namespace", "team"]).await;
    for (name, ns, app) in [
        ("a", "default", "web"),
        ("b", "default", "db"),
        ("c", "team", "web"),
    ] {
        let out = c
            .kubectl_stdin(&["apply", "-f", "-"], Some(&pod(name, ns, app)))
            .await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    c.kubectl_ok(&["label", "pod", "a", "tier=front"]).await;
    let out = c
        .kubectl_ok(&["get", "pods", "-l", "tier=front", "-o", "name"])
        .await;
    assert_eq!(out.trim(), "pod/a");
    let out = c
        .kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app in (web,db),tier!=front",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(out.trim(), "pod/b");

    let all = c.kubectl_ok(&["get", "pods", "-A", "-l", "app=web"]).await;
    assert!(
        all.lines().next().unwrap().starts_with("NAMESPACE"),
        "{all}"
    );
    assert!(all.contains("team") && all.contains("default"), "{all}");

    let out = c
        .kubectl_ok(&[
            "get",
            "pods",
            "--field-selector",
            "metadata.name=b",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(out.trim(), "pod/b");
    let out = c
        .kubectl_ok(&[
            "get",
            "pods",
            "-A",
            "--field-selector",
            "metadata.namespace=team",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(out.trim(), "pod/c");
    let out = c
        .kubectl(&["get", "pods", "--field-selector", "spec.bogus=1"])
        .await;
    assert!(!out.status.success());

    // Three patch types.
    c.kubectl_ok(&[
        "patch",
        "pod",
        "a",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"annotations":{"m":"1"}}}"#,
    ])
    .await;
    c.kubectl_ok(&[
        "patch",
        "pod",
        "a",
        "--type",
        "json",
        "-p",
        r#"[{"op":"add","path":"/metadata/annotations/j","value":"2"}]"#,
    ])
    .await;
    c.kubectl_ok(&[
        "patch",
        "pod",
        "a",
        "-p",
        r#"{"spec":{"containers":[{"name":"main","image":"busybox:1.36"}]}}"#,
    ])
    .await;
    let out = c
        .kubectl_ok(&["get", "pod", "a", "-o", "jsonpath={.metadata.annotations.m}{.metadata.annotations.j} {.spec.containers[0].image} {.spec.containers[0].command[0]}"])
        .await;
    assert_eq!(out, "12 busybox:1.36 sleep");

    c.kubectl_ok(&["apply", "-f", &manifest("hello-deployment.yaml")])
        .await;
    let out = c
        .kubectl_ok(&["scale", "deployment", "hello", "--replicas", "7"])
        .await;
    assert!(out.contains("scaled"), "{out}");
    let out = c
        .kubectl_ok(&["get", "deploy", "hello", "-o", "jsonpath={.spec.replicas}"])
        .await;
    assert_eq!(out, "7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_with_a_stale_object_is_a_conflict() {
    let c = Cluster::start().await;
    c.kubectl_stdin(&["apply", "-f", "-"], Some(&pod("p", "default", "x")))
        .await;
    let stale = c.kubectl_ok(&["get", "pod", "p", "-o", "json"]).await;
    c.kubectl_ok(&["label", "pod", "p", "changed=yes"]).await;
    let out = c.kubectl_stdin(&["replace", "-f", "-"], Some(&stale)).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the object has been modified"), "{err}");
    // The fresher write survived.
    let out = c
        .kubectl_ok(&[
            "get",
            "pod",
            "p",
            "-o",
            "jsonpath={.metadata.labels.changed}",
        ])
        .await;
    assert_eq!(out, "yes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_changes_as_they_happen() {
    let c = Cluster::start().await;
    let mut cmd = c.kubectl_command();
    cmd.args(["get", "pods", "-w", "--request-timeout", "8s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    c.kubectl_stdin(&["apply", "-f", "-"], Some(&pod("watched", "default", "x")))
        .await;
    c.kubectl_ok(&["label", "pod", "watched", "round=2"]).await;
    c.kubectl_ok(&["delete", "pod", "watched"]).await;
    let out = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().next().unwrap_or("").contains("STATUS"),
        "{text}"
    );
    assert!(
        text.matches("watched").count() >= 3,
        "expected added, modified and deleted lines:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_commands_send_protobuf_and_work() {
    let c = Cluster::start().await;
    let out = c.kubectl_ok(&["create", "namespace", "demo"]).await;
    assert!(out.contains("namespace/demo created"), "{out}");
    let out = c
        .kubectl_ok(&["create", "deployment", "web", "--image=nginx", "-n", "demo"])
        .await;
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let out = c
        .kubectl_ok(&[
            "get",
            "deploy",
            "web",
            "-n",
            "demo",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image} {.spec.selector.matchLabels.app}",
        ])
        .await;
    assert_eq!(out, "nginx web");
    let out = c.kubectl_ok(&["api-resources"]).await;
    for line in [
        "deployments",
        "deploy",
        "apps/v1",
        "leases",
        "coordination.k8s.io/v1",
        "pods",
        "po",
    ] {
        assert!(
            out.contains(line),
            "{line} missing from api-resources:\n{out}"
        );
    }
    let out = c.kubectl_ok(&["get", "ns"]).await;
    for ns in [
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "demo",
    ] {
        assert!(out.contains(ns), "{out}");
    }
}
