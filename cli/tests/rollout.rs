//! `minikctl rollout`: status through each stage of a rollout, history, undo, restart, pause
//! and resume, each compared with the real kubectl where kubectl's words are known.
//!
//! The test cluster has no controller, so each test plays the Deployment controller itself:
//! it creates the ReplicaSets a rollout would have left (owned through `ownerReferences`,
//! numbered by `deployment.kubernetes.io/revision`) and writes the Deployment's `status`
//! through the status subresource.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{minikctl, same_as_kubectl, Cluster};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

const REVISION: &str = "deployment.kubernetes.io/revision";
const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

fn deployments(cluster: &Cluster) -> Api<Deployment> {
    Api::namespaced(cluster.client(), "default")
}

fn replicasets(cluster: &Cluster) -> Api<ReplicaSet> {
    Api::namespaced(cluster.client(), "default")
}

/// A pod template of app `app` running `image`, with the parts `history --revision` prints.
fn template(app: &str, image: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{
            "name": "main", "image": image, "command": ["sleep", "3600"],
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "env": [{"name": "MODE", "value": "blue"}],
        }]},
    })
}

/// Deployment `name` (3 replicas, running `image`), at revision `revision`.
async fn create_deployment(
    cluster: &Cluster,
    name: &str,
    image: &str,
    revision: u32,
) -> Deployment {
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "annotations": {REVISION: revision.to_string()}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": name}},
            "template": template(name, image),
        },
    }))
    .unwrap();
    deployments(cluster)
        .create(&PostParams::default(), &d)
        .await
        .expect("create deployment")
}

/// The ReplicaSet the controller would make for `owner`'s revision `revision` of `image`.
async fn create_replicaset(
    cluster: &Cluster,
    owner: &Deployment,
    revision: u32,
    image: &str,
    cause: Option<&str>,
) {
    let app = owner.metadata.name.clone().unwrap();
    let hash = format!("h{revision}");
    let mut t = template(&app, image);
    t["metadata"]["labels"]["pod-template-hash"] = json!(hash);
    let mut annotations = json!({REVISION: revision.to_string()});
    if let Some(c) = cause {
        annotations[CHANGE_CAUSE] = json!(c);
    }
    let rs: ReplicaSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {
            "name": format!("{app}-{hash}"),
            "labels": {"app": app, "pod-template-hash": hash},
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "Deployment", "name": app,
                "uid": owner.metadata.uid, "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": app, "pod-template-hash": hash}},
            "template": t,
        },
    }))
    .unwrap();
    replicasets(cluster)
        .create(&PostParams::default(), &rs)
        .await
        .expect("create replicaset");
}

/// Deployment `name` at revision 2 (`busybox:1.36`, no change-cause recorded), with its
/// revision 1 (`busybox:1.35`, change-cause `first`), as a rollout would have left them.
async fn with_history(cluster: &Cluster, name: &str) -> Deployment {
    let d = create_deployment(cluster, name, "busybox:1.36", 2).await;
    create_replicaset(cluster, &d, 1, "busybox:1.35", Some("first")).await;
    create_replicaset(cluster, &d, 2, "busybox:1.36", None).await;
    d
}

/// Write the Deployment's status, as the controller would.
async fn set_status(cluster: &Cluster, name: &str, status: Value) {
    deployments(cluster)
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
        .expect("patch status");
}

fn counts(replicas: i64, updated: i64, available: i64) -> Value {
    json!({"observedGeneration": 1, "replicas": replicas, "updatedReplicas": updated,
           "availableReplicas": available})
}

#[tokio::test]
async fn status_follows_a_rollout_through_its_stages() {
    let cluster = Cluster::start().await;
    create_deployment(&cluster, "web", "busybox", 1).await;
    let (mut child, mut lines) = common::follow(&cluster, &["rollout", "status", "deployment/web"]);
    let mut next = async || common::next_line(&mut lines).await;
    let waiting = "Waiting for deployment \"web\" rollout to finish: ";
    assert_eq!(
        next().await,
        "Waiting for deployment spec update to be observed..."
    );
    let stages = [
        (
            counts(1, 1, 0),
            "1 out of 3 new replicas have been updated...",
        ),
        (counts(4, 3, 1), "1 old replicas are pending termination..."),
        (counts(3, 3, 2), "2 of 3 updated replicas are available..."),
    ];
    for (status, message) in stages {
        set_status(&cluster, "web", status.clone()).await;
        assert_eq!(next().await, format!("{waiting}{message}"));
        // The same state, printed once by each tool and then left.
        same_as_kubectl(
            &cluster,
            &["rollout", "status", "deploy", "web", "--watch=false"],
        )
        .await;
    }
    set_status(&cluster, "web", counts(3, 3, 3)).await;
    assert_eq!(next().await, "deployment \"web\" successfully rolled out");
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("minikctl exits once the rollout is done")
        .unwrap();
    assert!(status.success());
    let done = same_as_kubectl(&cluster, &["rollout", "status", "deployment/web"]).await;
    assert_eq!(done.stdout, "deployment \"web\" successfully rolled out\n");
}

#[tokio::test]
async fn status_gives_up_as_kubectl_does() {
    let cluster = Cluster::start().await;
    create_deployment(&cluster, "web", "busybox", 2).await;
    set_status(&cluster, "web", counts(3, 1, 1)).await;
    let run = same_as_kubectl(
        &cluster,
        &["rollout", "status", "deployment/web", "--timeout=1s"],
    )
    .await;
    assert_eq!(run.code, 1);
    assert_eq!(run.stderr, "error: timed out waiting for the condition\n");
    let run = same_as_kubectl(
        &cluster,
        &["rollout", "status", "deployment/web", "--revision=3"],
    )
    .await;
    assert_eq!(
        run.stderr,
        "error: desired revision (3) is different from the running revision (2)\n"
    );
    let deadline = json!({"conditions": [{"type": "Progressing", "status": "False",
        "reason": "ProgressDeadlineExceeded", "message": "too slow"}]});
    set_status(&cluster, "web", deadline).await;
    let run = same_as_kubectl(&cluster, &["rollout", "status", "deployment/web"]).await;
    assert_eq!(
        run.stderr,
        "error: deployment \"web\" exceeded its progress deadline\n"
    );
    let run = same_as_kubectl(&cluster, &["rollout", "status", "deployment/nope"]).await;
    assert_eq!(
        run.stderr,
        "Error from server (NotFound): deployments.apps \"nope\" not found\n"
    );
}

#[tokio::test]
async fn history_lists_the_replicasets_by_revision() {
    let cluster = Cluster::start().await;
    let web = with_history(&cluster, "web").await;
    // Revision 3 of another Deployment (another uid) is not web's.
    let other = create_deployment(&cluster, "other", "busybox", 3).await;
    create_replicaset(&cluster, &other, 3, "busybox", Some("not web's")).await;
    let _ = web;
    let run = same_as_kubectl(&cluster, &["rollout", "history", "deployment/web"]).await;
    assert_eq!(
        run.stdout,
        "deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         first\n2         <none>\n\n"
    );
    let run = same_as_kubectl(
        &cluster,
        &["rollout", "history", "deployment", "web", "--revision=1"],
    )
    .await;
    assert!(
        run.stdout
            .starts_with("deployment.apps/web with revision #1\nPod Template:\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("    Image:\tbusybox:1.35\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("  Annotations:\tkubernetes.io/change-cause: first\n"),
        "{}",
        run.stdout
    );
    let run = same_as_kubectl(
        &cluster,
        &["rollout", "history", "deployment/web", "--revision=7"],
    )
    .await;
    assert_eq!(run.stderr, "error: unable to find the specified revision\n");
    create_deployment(&cluster, "lonely", "busybox", 1).await;
    let run = same_as_kubectl(&cluster, &["rollout", "history", "deployment/lonely"]).await;
    assert_eq!(
        run.stdout,
        "deployment.apps/lonely \nNo rollout history found.\n"
    );
}

/// The Deployment's template and annotations, which an undo rewrites.
async fn rolled_back_fields(cluster: &Cluster, name: &str) -> (Value, Value) {
    let d = serde_json::to_value(deployments(cluster).get(name).await.unwrap()).unwrap();
    (
        d["spec"]["template"].clone(),
        d["metadata"]["annotations"].clone(),
    )
}

#[tokio::test]
async fn undo_restores_the_previous_template_as_kubectl_does() {
    let cluster = Cluster::start().await;
    with_history(&cluster, "ours").await;
    with_history(&cluster, "theirs").await;
    let out = minikctl(&cluster, &["rollout", "undo", "deployment/ours"])
        .await
        .ok();
    assert_eq!(out, "deployment.apps/ours rolled back\n");
    let out = cluster
        .kubectl_ok(&["rollout", "undo", "deployment/theirs"])
        .await;
    assert_eq!(out, "deployment.apps/theirs rolled back\n");
    let (template, annotations) = rolled_back_fields(&cluster, "ours").await;
    assert_eq!(template["spec"]["containers"][0]["image"], "busybox:1.35");
    assert_eq!(template["metadata"]["labels"], json!({"app": "ours"}));
    assert_eq!(annotations, json!({REVISION: "2", CHANGE_CAUSE: "first"}));
    let (their_template, their_annotations) = rolled_back_fields(&cluster, "theirs").await;
    let renamed = serde_json::to_string(&their_template)
        .unwrap()
        .replace("theirs", "ours");
    assert_eq!(template, serde_json::from_str::<Value>(&renamed).unwrap());
    assert_eq!(annotations, their_annotations);
    for name in ["deployment/ours", "deployment/theirs"] {
        let run = same_as_kubectl(&cluster, &["rollout", "undo", name, "--to-revision=1"]).await;
        assert!(
            run.stdout
                .ends_with(" skipped rollback (current template already matches revision 1)\n"),
            "{}",
            run.stdout
        );
    }
    let run = same_as_kubectl(
        &cluster,
        &["rollout", "undo", "deploy/ours", "--to-revision=5"],
    )
    .await;
    assert_eq!(
        run.stderr,
        "error: unable to find specified revision 5 in history\n"
    );
    let lonely = create_deployment(&cluster, "lonely", "busybox", 1).await;
    create_replicaset(&cluster, &lonely, 1, "busybox", None).await;
    let run = same_as_kubectl(&cluster, &["rollout", "undo", "deployment/lonely"]).await;
    assert_eq!(
        run.stderr,
        "error: no rollout history found for deployment \"lonely\"\n"
    );
}

#[tokio::test]
async fn restart_sets_the_annotation_once_a_second() {
    let cluster = Cluster::start().await;
    create_deployment(&cluster, "web", "busybox", 1).await;
    let restarted_at = async || {
        let d = serde_json::to_value(deployments(&cluster).get("web").await.unwrap()).unwrap();
        d["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"]
            .as_str()
            .map(str::to_string)
    };
    assert_eq!(restarted_at().await, None);
    // Two restarts within one second: the second changes nothing, and says so. A run may
    // straddle a second's boundary; then both succeed and the test tries again.
    let mut refused = false;
    for _ in 0..5 {
        let out = minikctl(&cluster, &["rollout", "restart", "deployment/web"])
            .await
            .ok();
        assert_eq!(out, "deployment.apps/web restarted\n");
        let first = restarted_at().await.expect("the annotation is set");
        let again = minikctl(&cluster, &["rollout", "restart", "deployment/web"]).await;
        if again.code == 0 {
            assert_ne!(restarted_at().await.unwrap(), first);
            // the next try's first restart must not fall in the second of this one
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
            continue;
        }
        assert_eq!(
            again.failed(),
            "error: failed to create patch for web: if restart has already been triggered within the past second, please wait before attempting to trigger another\n"
        );
        assert_eq!(restarted_at().await.unwrap(), first);
        refused = true;
        break;
    }
    assert!(
        refused,
        "a second restart within a second was never refused"
    );
}

#[tokio::test]
async fn pause_and_resume_and_what_they_refuse() {
    let cluster = Cluster::start().await;
    with_history(&cluster, "web").await;
    let paused = async || {
        deployments(&cluster)
            .get("web")
            .await
            .unwrap()
            .spec
            .unwrap()
            .paused
    };
    let run = same_as_kubectl(&cluster, &["rollout", "resume", "deployment/web"]).await;
    assert_eq!(
        run.stderr,
        "error: deployments.apps \"web\" is not paused\n"
    );
    let out = minikctl(&cluster, &["rollout", "pause", "deployment/web"])
        .await
        .ok();
    assert_eq!(out, "deployment.apps/web paused\n");
    assert_eq!(paused().await, Some(true));
    let run = same_as_kubectl(&cluster, &["rollout", "pause", "deployment/web"]).await;
    assert_eq!(
        run.stderr,
        "error: deployments.apps \"web\" is already paused\n"
    );
    let run = same_as_kubectl(&cluster, &["rollout", "restart", "deployment/web"]).await;
    assert_eq!(run.code, 1);
    let run = same_as_kubectl(&cluster, &["rollout", "undo", "deployment/web"]).await;
    assert_eq!(run.code, 1);
    let out = minikctl(&cluster, &["rollout", "resume", "deployment/web"])
        .await
        .ok();
    assert_eq!(out, "deployment.apps/web resumed\n");
    assert_ne!(paused().await, Some(true));
}

#[tokio::test]
async fn rollout_of_a_pod_is_not_supported() {
    let cluster = Cluster::start().await;
    cluster
        .kubectl_ok(&["run", "solo", "--image=busybox"])
        .await;
    for verb in ["restart", "pause", "resume", "status", "history", "undo"] {
        let run = same_as_kubectl(&cluster, &["rollout", verb, "pod/solo"]).await;
        assert_eq!(run.code, 1, "{verb}");
        assert_eq!(run.stderr.lines().count(), 1, "{verb}: {}", run.stderr);
    }
    let err = minikctl(&cluster, &["rollout", "restart", "pod/solo"])
        .await
        .failed();
    assert_eq!(err, "error: pods \"solo\" restarting is not supported\n");
    let err = minikctl(&cluster, &["rollout", "status"]).await.failed();
    assert_eq!(err, "error: required resource not specified\n");
}

#[tokio::test]
async fn a_type_alone_means_every_object_of_it() {
    let cluster = Cluster::start().await;
    with_history(&cluster, "api").await;
    with_history(&cluster, "web").await;
    set_status(&cluster, "api", counts(3, 3, 3)).await;
    set_status(&cluster, "web", counts(3, 3, 3)).await;
    let run = same_as_kubectl(&cluster, &["rollout", "history", "deployment"]).await;
    assert!(
        run.stdout.starts_with("deployment.apps/api \n")
            && run.stdout.contains("\ndeployment.apps/web \n"),
        "{}",
        run.stdout
    );
    let run = same_as_kubectl(&cluster, &["rollout", "status", "deployments"]).await;
    assert_eq!(
        run.stdout,
        "deployment \"api\" successfully rolled out\ndeployment \"web\" successfully rolled out\n"
    );
    cluster.kubectl_ok(&["create", "namespace", "empty"]).await;
    for verb in ["status", "history", "pause", "resume", "restart", "undo"] {
        same_as_kubectl(&cluster, &["-n", "empty", "rollout", verb, "deployment"]).await;
    }
    let out = minikctl(&cluster, &["rollout", "pause", "deploy"])
        .await
        .ok();
    assert_eq!(
        out,
        "deployment.apps/api paused\ndeployment.apps/web paused\n"
    );
}

#[tokio::test]
async fn status_stops_when_the_deployment_is_deleted() {
    let cluster = Cluster::start().await;
    create_deployment(&cluster, "web", "busybox", 1).await;
    let kubeconfig = cluster.kubeconfig();
    let args = ["rollout", "status", "deployment/web"];
    let mut ours = common::minikctl_command();
    ours.args(["--kubeconfig", kubeconfig.to_str().unwrap()]);
    let mut children = Vec::new();
    for mut cmd in [ours, cluster.kubectl_command()] {
        let mut child = cmd
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Its first line: it has listed the Deployment and is watching it.
        let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("a first line within 20s")
            .unwrap();
        assert_eq!(
            first.as_deref(),
            Some("Waiting for deployment spec update to be observed...")
        );
        children.push((child, lines));
    }
    cluster.kubectl_ok(&["delete", "deployment", "web"]).await;
    for (child, mut lines) in children {
        let rest = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("rollout status ends when the Deployment is deleted")
            .unwrap();
        assert_eq!(rest, None, "nothing more on stdout");
        let out = child.wait_with_output().await.unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "error: object has been deleted\n"
        );
    }
}

#[tokio::test]
async fn selectors_and_missing_arguments_read_like_kubectls() {
    let cluster = Cluster::start().await;
    with_history(&cluster, "api").await;
    with_history(&cluster, "web").await;
    cluster
        .kubectl_ok(&["label", "deployment", "web", "tier=front"])
        .await;
    let run = same_as_kubectl(
        &cluster,
        &["rollout", "history", "deployment", "-l", "tier=front"],
    )
    .await;
    assert!(
        run.stdout.starts_with("deployment.apps/web \n"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("api"), "{}", run.stdout);
    for verb in ["status", "history", "undo", "pause", "resume", "restart"] {
        let run = same_as_kubectl(&cluster, &["rollout", verb]).await;
        assert_eq!(run.code, 1, "{verb}");
        for named in [&["deployment/web"][..], &["deployment", "web"]] {
            let mut args = vec!["rollout", verb, "-l", "a=b"];
            args.extend_from_slice(named);
            let run = same_as_kubectl(&cluster, &args).await;
            assert_eq!(run.code, 1, "{verb}");
        }
    }
    let out = minikctl(
        &cluster,
        &["rollout", "pause", "deploy", "-l", "tier=front"],
    )
    .await
    .ok();
    assert_eq!(out, "deployment.apps/web paused\n");
}

/// A template with most of what kubectl's `DescribePodTemplate` prints.
fn rich_template() -> Value {
    json!({
        "metadata": {
            "labels": {"app": "rich", "tier": "back"},
            "annotations": {
                "long": "x".repeat(150),
                "multi": "line one\nline two\n",
                "short": "yes",
            },
        },
        "spec": {
            "serviceAccountName": "builder",
            "priorityClassName": "high",
            "nodeSelector": {"disk": "ssd", "zone": "a"},
            "tolerations": [
                {"operator": "Exists"},
                {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"},
                {"key": "slow", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
            ],
            "initContainers": [{"name": "setup", "image": "busybox", "args": ["echo", "a\nb"]}],
            "containers": [{
                "name": "main", "image": "busybox:1.36",
                "command": ["sh", "-c"], "args": ["sleep 3600"],
                "ports": [{"containerPort": 80, "protocol": "TCP"},
                          {"containerPort": 53, "hostPort": 5353, "protocol": "UDP"}],
                "resources": {"limits": {"memory": "128Mi", "cpu": "500m"},
                              "requests": {"cpu": "100m"}},
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                                  "initialDelaySeconds": 3, "timeoutSeconds": 1, "periodSeconds": 10,
                                  "successThreshold": 1, "failureThreshold": 3},
                "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]},
                                   "timeoutSeconds": 1, "periodSeconds": 5,
                                   "successThreshold": 1, "failureThreshold": 3},
                "startupProbe": {"tcpSocket": {"port": 80}, "timeoutSeconds": 1,
                                 "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 30},
                "envFrom": [{"configMapRef": {"name": "settings"}},
                            {"prefix": "S_", "secretRef": {"name": "creds", "optional": true}}],
                "env": [
                    {"name": "PLAIN", "value": "one\ntwo"},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "spec.nodeName"}}},
                    {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pass"}}},
                    {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode", "optional": true}}},
                ],
                "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"},
                                 {"name": "config", "mountPath": "/etc/app", "readOnly": true, "subPath": "app"}],
            }],
            "volumes": [
                {"name": "scratch", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                {"name": "host", "hostPath": {"path": "/var/log", "type": "Directory"}},
                {"name": "config", "configMap": {"name": "settings"}},
                {"name": "creds", "secret": {"secretName": "creds", "optional": true}},
            ],
        },
    })
}

#[tokio::test]
async fn a_revisions_template_is_printed_as_kubectl_prints_it() {
    let cluster = Cluster::start().await;
    let d = create_deployment(&cluster, "rich", "busybox", 1).await;
    let mut t = rich_template();
    t["metadata"]["labels"]["pod-template-hash"] = json!("h1");
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {
            "name": "rich-h1",
            "labels": {"app": "rich", "pod-template-hash": "h1"},
            "annotations": {REVISION: "1", CHANGE_CAUSE: "kubectl apply --record"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "rich",
                                 "uid": d.metadata.uid, "controller": true}],
        },
        "spec": {"selector": {"matchLabels": {"app": "rich", "pod-template-hash": "h1"}},
                 "template": t},
    }))
    .unwrap();
    replicasets(&cluster)
        .create(&PostParams::default(), &rs)
        .await
        .expect("create replicaset");
    let run = same_as_kubectl(
        &cluster,
        &["rollout", "history", "deploy/rich", "--revision=1"],
    )
    .await;
    // Owned by the Deployment but not selected by its selector (no labels): no revision.
    let stray: ReplicaSet = serde_json::from_value(json!({
        "metadata": {
            "name": "rich-stray",
            "annotations": {REVISION: "2"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "rich",
                                 "uid": d.metadata.uid, "controller": true}],
        },
        "spec": {"selector": {"matchLabels": {"x": "y"}},
                 "template": {"metadata": {"labels": {"x": "y"}}, "spec": rich_template()["spec"]}},
    }))
    .unwrap();
    replicasets(&cluster)
        .create(&PostParams::default(), &stray)
        .await
        .expect("create replicaset");
    let table = same_as_kubectl(&cluster, &["rollout", "history", "deploy/rich"]).await;
    assert_eq!(
        table.stdout,
        "deployment.apps/rich \nREVISION  CHANGE-CAUSE\n1         kubectl apply --record\n\n"
    );
    for part in [
        "  Tolerations:\top=Exists\n",
        "    Limits:\n",
        "    Readiness:\texec [cat /tmp/ready]",
    ] {
        assert!(run.stdout.contains(part), "{part:?} in\n{}", run.stdout);
    }
}

#[tokio::test]
async fn undo_dry_runs_change_nothing() {
    let cluster = Cluster::start().await;
    with_history(&cluster, "web").await;
    let before = rolled_back_fields(&cluster, "web").await;
    let run = same_as_kubectl(
        &cluster,
        &["rollout", "undo", "deploy/web", "--dry-run=client"],
    )
    .await;
    assert!(
        run.stdout
            .starts_with("deployment.apps/web Pod Template:\n")
            && run.stdout.ends_with("<none>\n (dry run)\n"),
        "{}",
        run.stdout
    );
    let run = same_as_kubectl(
        &cluster,
        &["rollout", "undo", "deploy/web", "--dry-run=server"],
    )
    .await;
    assert_eq!(
        run.stdout,
        "deployment.apps/web rolled back (server dry run)\n"
    );
    assert_eq!(rolled_back_fields(&cluster, "web").await, before);
}
