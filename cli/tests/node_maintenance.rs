//! `minikctl cordon`, `uncordon` and `drain` on nodes created through the API, compared with
//! the real kubectl.
//!
//! The test cluster has no kubelet: a node is only its object, and a pod bound to it
//! (`spec.nodeName`) is never run. So an evicted pod is deleted *gracefully* and stays
//! `Terminating` until its grace period is over and a kubelet would remove it; with
//! `--grace-period=0` the apiserver deletes it at once, as it deletes any pod whose kubelet
//! need not stop anything.

mod common;

use common::{kubectl, minikctl, Cluster};
use k8s_openapi::api::core::v1::Node;
use kube::api::PostParams;
use serde_json::json;

async fn create_node(cluster: &Cluster, name: &str) {
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
    }))
    .unwrap();
    cluster
        .nodes()
        .create(&PostParams::default(), &node)
        .await
        .expect("create node");
}

async fn unschedulable(cluster: &Cluster, name: &str) -> Option<bool> {
    cluster
        .nodes()
        .get(name)
        .await
        .unwrap()
        .spec
        .and_then(|s| s.unschedulable)
}

/// A pod nobody controls, bound to `node`.
async fn bare_pod(cluster: &Cluster, name: &str, node: &str) {
    cluster
        .create_pod(
            name,
            node,
            json!({"containers": [{"name": "main", "image": "busybox"}]}),
        )
        .await;
}

#[tokio::test]
async fn cordon_and_uncordon_toggle_unschedulable() {
    let cluster = Cluster::start().await;
    create_node(&cluster, "n1").await;
    let out = minikctl(&cluster, &["cordon", "n1"]).await.ok();
    assert_eq!(out, "node/n1 cordoned\n");
    assert_eq!(unschedulable(&cluster, "n1").await, Some(true));
    let out = minikctl(&cluster, &["cordon", "n1"]).await.ok();
    assert_eq!(out, "node/n1 already cordoned\n");
    assert_eq!(out, cluster.kubectl_ok(&["cordon", "n1"]).await);
    let out = minikctl(&cluster, &["uncordon", "n1"]).await.ok();
    assert_eq!(out, "node/n1 uncordoned\n");
    assert_eq!(unschedulable(&cluster, "n1").await, None);
    assert_eq!(out.replace("uncordoned", "already uncordoned"), {
        cluster.kubectl_ok(&["uncordon", "n1"]).await
    });
    let ours = minikctl(&cluster, &["cordon", "nope"]).await;
    let theirs = kubectl(&cluster, &["cordon", "nope"]).await;
    assert_eq!(ours.failed(), theirs.failed());
}

#[tokio::test]
async fn drain_refuses_a_bare_pod_without_force() {
    let cluster = Cluster::start().await;
    create_node(&cluster, "n1").await;
    bare_pod(&cluster, "bare", "n1").await;
    let ours = minikctl(&cluster, &["drain", "n1"]).await;
    assert_eq!(ours.stdout, "node/n1 cordoned\n");
    assert_eq!(
        ours.failed(),
        "error: unable to drain node \"n1\" due to error: cannot delete Pods that declare no controller (use --force to override): default/bare, continuing command...\n\
         There are pending nodes to be drained:\n n1\n\
         cannot delete Pods that declare no controller (use --force to override): default/bare\n"
    );
    assert_eq!(unschedulable(&cluster, "n1").await, Some(true));
    assert!(cluster.pods().get_opt("bare").await.unwrap().is_some());
    cluster.kubectl_ok(&["uncordon", "n1"]).await;
    let ours = minikctl(&cluster, &["drain", "n1"]).await;
    cluster.kubectl_ok(&["uncordon", "n1"]).await;
    let theirs = kubectl(&cluster, &["drain", "n1"]).await;
    // kubectl 1.32's message for this filter already begins `cannot delete`, and its report
    // adds another (`cannot delete cannot delete Pods ...`); minikctl says it once.
    let theirs_stderr = theirs
        .stderr
        .replace("cannot delete cannot delete", "cannot delete");
    assert_eq!(
        (ours.code, &ours.stdout, &ours.stderr),
        (theirs.code, &theirs.stdout, &theirs_stderr)
    );
}

#[tokio::test]
async fn drain_with_force_evicts_a_bare_pod() {
    let cluster = Cluster::start().await;
    create_node(&cluster, "n1").await;
    let args = ["drain", "n1", "--force", "--grace-period=0"];
    let mut runs = Vec::new();
    for tool in ["minikctl", "kubectl"] {
        bare_pod(&cluster, "bare", "n1").await;
        let run = if tool == "minikctl" {
            minikctl(&cluster, &args).await
        } else {
            kubectl(&cluster, &args).await
        };
        cluster.wait_gone("bare", 10).await;
        assert_eq!(unschedulable(&cluster, "n1").await, Some(true));
        cluster.kubectl_ok(&["uncordon", "n1"]).await;
        runs.push(run);
    }
    let (ours, theirs) = (&runs[0], &runs[1]);
    assert_eq!(ours.code, 0, "{}", ours.stderr);
    assert_eq!(
        ours.stdout,
        "node/n1 cordoned\nevicting pod default/bare\npod/bare evicted\nnode/n1 drained\n"
    );
    assert_eq!(
        ours.stderr,
        "Warning: deleting Pods that declare no controller: default/bare\n"
    );
    assert_eq!(
        (ours.code, &ours.stdout, &ours.stderr),
        (theirs.code, &theirs.stdout, &theirs.stderr)
    );
}

/// Without a kubelet nobody finishes a graceful deletion: the evicted pod stays
/// `Terminating`, and drain gives up at its `--timeout` naming it, as kubectl does.
#[tokio::test]
async fn drain_waits_for_an_evicted_pod_until_its_timeout() {
    let cluster = Cluster::start().await;
    create_node(&cluster, "n1").await;
    bare_pod(&cluster, "bare", "n1").await;
    let ours = minikctl(&cluster, &["drain", "n1", "--force", "--timeout=2s"]).await;
    assert_eq!(ours.code, 1, "{}", ours.stderr);
    assert_eq!(ours.stdout, "node/n1 cordoned\nevicting pod default/bare\n");
    assert!(
        ours.stderr.contains("There are pending pods in node \"n1\" when an error occurred: error when waiting for pod \"bare\" in namespace \"default\" to terminate: context deadline exceeded\npod/bare\n"),
        "{}",
        ours.stderr
    );
    let pod = cluster.pods().get("bare").await.unwrap();
    assert!(
        pod.metadata.deletion_timestamp.is_some(),
        "the pod is Terminating"
    );
    cluster.kubectl_ok(&["uncordon", "n1"]).await;
    let theirs = kubectl(&cluster, &["drain", "n1", "--force", "--timeout=2s"]).await;
    assert_eq!(
        (ours.code, &ours.stdout, &ours.stderr),
        (theirs.code, &theirs.stdout, &theirs.stderr)
    );
}
