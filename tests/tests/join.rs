//! A node joins with a bootstrap token, end to end, as on a real machine (issue 13): a
//! cluster served over TLS with authentication (the apiserver, controller manager and
//! scheduler binaries on a `client::pki` PKI), `minikctl cluster token create
//! --print-join-command` with the admin's kubeconfig, and the printed kubelet command run as
//! is (plus the test's root dir, node name and pod network). The node obtains its own
//! certificate through a CSR, registers, becomes Ready and runs a pod; a restarted kubelet
//! reuses `kubelet.conf` without a second CSR. A wrong token and a wrong CA hash are each
//! refused in one line with exit status 1, before the kubelet touches anything.
//! Harness: `cluster/mod.rs` (the `Kubelet` guard, `assert_nothing_left`).

mod cluster;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use client::pki::Credential;
use cluster::*;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;
use testkit::{Component, SecureCluster};

const APISERVER: &str = env!("CARGO_BIN_EXE_e2e-apiserver");
const CONTROLLER: &str = env!("CARGO_BIN_EXE_e2e-controller");
const SCHEDULER: &str = env!("CARGO_BIN_EXE_e2e-scheduler");

/// etcd and the control plane as processes, over HTTPS with client certificates and bootstrap
/// tokens; the controller manager signs node CSRs with the cluster CA. Fields drop in order:
/// the components, then the apiserver, etcd and the directory with the PKI.
struct TlsCluster {
    _components: Vec<Component>,
    secure: SecureCluster,
    client: kube::Client,
}

impl TlsCluster {
    async fn start() -> TlsCluster {
        let secure = SecureCluster::builder(APISERVER)
            .bootstrap_token_auth()
            .start()
            .await;
        let client = testkit::secure::kube_client(secure.admin()).await;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        wait_for(30, "the apiserver's namespaces", || async {
            namespaces.get_opt("kube-public").await.ok()?.map(drop)
        })
        .await;
        let admin_arg = secure.admin().display().to_string();
        let pki = secure.pki();
        let (cert, key) = (pki.cert_path(Credential::Ca), pki.key_path(Credential::Ca));
        let (cert, key) = (cert.display().to_string(), key.display().to_string());
        let controller = Component::start(
            CONTROLLER,
            &[
                "--kubeconfig",
                &admin_arg,
                "--leader-elect=false",
                "--cluster-signing-cert-file",
                &cert,
                "--cluster-signing-key-file",
                &key,
            ],
            &[],
        );
        let scheduler = Component::start(
            SCHEDULER,
            &["--kubeconfig", &admin_arg, "--leader-elect=false"],
            &[],
        );
        TlsCluster {
            _components: vec![controller, scheduler],
            secure,
            client,
        }
    }

    /// `minikctl --kubeconfig admin.conf ARGS`: (exit code, stdout, stderr).
    async fn minikctl(&self, args: &[&str]) -> (i32, String, String) {
        let out = tokio::process::Command::new(MINIKCTL)
            .arg("--kubeconfig")
            .arg(self.secure.admin())
            .args(args)
            .env_remove("KUBECONFIG")
            .output()
            .await
            .expect("run minikctl");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn csrs(&self) -> Api<CertificateSigningRequest> {
        Api::all(self.client.clone())
    }
}

/// The join command's flags (after `minik8s-kubelet`), checked against the cluster.
fn join_flags(line: &str, c: &TlsCluster) -> Vec<String> {
    let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    assert_eq!(
        words.first().map(String::as_str),
        Some("minik8s-kubelet"),
        "{line}"
    );
    let flags = words[1..].to_vec();
    assert_eq!(flags.len(), 6, "{line}");
    assert_eq!(
        (flags[0].as_str(), flags[1].as_str()),
        ("--server", c.secure.url())
    );
    assert_eq!(flags[2], "--bootstrap-token");
    assert_eq!(
        (flags[4].as_str(), flags[5].as_str()),
        ("--ca-cert-hash", c.secure.pki().ca_cert_hash().as_str())
    );
    flags
}

/// Run the kubelet with `flags` on a fresh root dir, expecting it to give up at once: exit
/// status 1 and `line` as its last line on stderr, nothing written under the root.
async fn refused(flags: &[String], line: &str) {
    let root = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new(KUBELET)
        .args(flags)
        .args(["--node-name", &format!("refused-{}", rand_hex())])
        .arg("--root-dir")
        .arg(root.path().join("node"))
        .env_remove("KUBECONFIG")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("a refused join ends within a minute")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().last(), Some(line), "{stderr}");
    assert!(!root.path().join("node").exists(), "nothing written");
}

/// Poll until the node's `Ready` condition is `True`.
async fn wait_ready(c: &TlsCluster, node: &str) {
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(c.client.clone());
    wait_for(60, &format!("node {node} Ready"), || async {
        let n = nodes.get_opt(node).await.ok()??;
        (ready(&n) == Some("True")).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_joins_with_a_bootstrap_token_and_the_ca_hash() {
    if skip_unless_root("a_node_joins_with_a_bootstrap_token_and_the_ca_hash") {
        return;
    }
    init_logs();
    let c = TlsCluster::start().await;
    let (code, stdout, stderr) = c
        .minikctl(&["cluster", "token", "create", "--print-join-command"])
        .await;
    assert_eq!(code, 0, "{stderr}");
    let flags = join_flags(stdout.trim_end(), &c);

    // a wrong token, then a wrong CA hash: one line each, exit 1
    let mut wrong_token = flags.clone();
    wrong_token[3] = "zzzzzz.0000000000000000".into();
    refused(
        &wrong_token,
        "the bootstrap token was refused by the apiserver (401 Unauthorized)",
    )
    .await;
    let mut wrong_hash = flags.clone();
    wrong_hash[5] = format!("sha256:{}", "0".repeat(64));
    let expected = format!(
        "the cluster's CA does not match --ca-cert-hash: expected {}, got {}",
        wrong_hash[5],
        c.secure.pki().ca_cert_hash()
    );
    refused(&wrong_hash, &expected).await;
    assert!(c
        .csrs()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .is_empty());

    // the printed command joins the node
    let node = format!("join-{}", rand_hex());
    let bridge = format!("e2e{}", rand_hex());
    let cidr = random_pod_cidr();
    let connect: Vec<&str> = flags.iter().map(String::as_str).collect();
    let extra = ["--bridge-name", &bridge, "--pod-cidr", &cidr];
    let api_token = format!("token-{}", rand_hex());
    let mut kubelet = Kubelet::start_with(KUBELET, &node, &api_token, &connect, &extra);
    wait_ready(&c, &node).await;
    let conf = kubelet.root.join("kubelet.conf");
    let mode = std::fs::metadata(&conf).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "kubelet.conf holds the node's key");
    let csr = only_csr(&c).await;
    let token_id = &flags[3][..6];
    assert_eq!(
        csr.spec.username.as_deref(),
        Some(format!("system:bootstrap:{token_id}").as_str())
    );
    assert!(csr.status.and_then(|s| s.certificate).is_some());

    // a pod scheduled onto the node runs there
    let mut seen = BTreeSet::new();
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "joined", "namespace": "default"},
        "spec": {"terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "sleep", "image": "busybox", "command": ["sleep", "3600"]}]},
    }))
    .unwrap();
    let created = pods.create(&PostParams::default(), &pod).await.unwrap();
    seen.insert(uid(&created));
    wait_running(&pods, &node).await;
    let pid = kubelet.container_pid(&uid(&created), "sleep");
    let pids: BTreeSet<i32> = pid.into_iter().collect();

    // a restart reuses kubelet.conf: no second CSR, the node stays Ready
    let credential = std::fs::read(&conf).unwrap();
    kubelet.terminate();
    kubelet.spawn();
    // the kubelet joins before it starts: once it has started, a second CSR would be there
    wait_for(30, "the restarted kubelet to start", || {
        let started = kubelet.log().matches("kubelet started").count() >= 2;
        async move { started.then_some(()) }
    })
    .await;
    assert_eq!(
        std::fs::read(&conf).unwrap(),
        credential,
        "kubelet.conf kept"
    );
    wait_ready(&c, &node).await;
    only_csr(&c).await;

    pods.delete("joined", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    wait_for(60, "pod joined gone", || async {
        pods.get_opt("joined").await.ok()?.is_none().then_some(())
    })
    .await;
    let roots = vec![kubelet.root.clone()];
    let bridges: Vec<String> = kubelet.bridge.clone().into_iter().collect();
    drop(kubelet);
    assert_nothing_left(&roots, &bridges, &seen, &pids);
}

/// The one CSR of the test; a second would mean the kubelet joined again.
async fn only_csr(c: &TlsCluster) -> CertificateSigningRequest {
    let mut items = c.csrs().list(&ListParams::default()).await.unwrap().items;
    assert_eq!(items.len(), 1, "one CSR: {items:?}");
    items.remove(0)
}

/// Poll until pod `joined` runs on `node`.
async fn wait_running(pods: &Api<Pod>, node: &str) {
    wait_for(120, "pod joined Running on the joined node", || async {
        let p = pods.get_opt("joined").await.ok()??;
        (node_of(&p) == node && phase(&p) == "Running").then_some(())
    })
    .await;
}
