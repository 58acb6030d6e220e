//! Bootstrap tokens (issue 13: nodes join with `--bootstrap-token abcdef.0123456789abcdef`),
//! through the apiserver binary with `--enable-bootstrap-token-auth` on a `client::pki` PKI,
//! over HTTPS verified against the cluster CA, as a joining node would talk to it. The admin
//! creates the token's Secret with kubectl the way kubeadm's documentation does; a moment
//! later the token lists nodes with kubectl and kube-rs; a wrong secret, an unknown id, an
//! expired token, one not marked for authentication, one of the wrong type and a deleted
//! Secret are each a 401 `Status`.

mod common;

use std::process::Output;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use testkit::SecureCluster;

const TOKEN: &str = "abcdef.0123456789abcdef";

/// The apiserver binary with TLS, the cluster CA for the admin's certificate, and bootstrap
/// tokens enabled.
struct Joinable(SecureCluster);

impl Joinable {
    async fn start() -> Joinable {
        let cluster = SecureCluster::builder(env!("CARGO_BIN_EXE_minik8s-apiserver"))
            .bootstrap_token_auth()
            .start()
            .await;
        Joinable(cluster)
    }

    fn ca(&self) -> String {
        self.0.ca().display().to_string()
    }

    /// `curl` verifying the server against the cluster CA, with `token` as bearer token:
    /// the HTTP code and the body as JSON (`Null` if it is not JSON).
    fn curl(&self, token: Option<&str>, path: &str) -> (u16, serde_json::Value) {
        let header = token.map(|t| format!("Authorization: Bearer {t}"));
        let extra = match &header {
            Some(h) => vec!["-H", h.as_str()],
            None => vec![],
        };
        let (code, body) = self.0.curl(&extra, path);
        let body = serde_json::from_str(&body).unwrap_or(serde_json::Value::Null);
        (code, body)
    }

    /// kubectl as kubernetes-admin (its client certificate); must succeed.
    fn admin(&self, args: &[&str]) -> String {
        let admin = self.0.admin().display().to_string();
        let out = self
            .0
            .kubectl(&[&["--kubeconfig", admin.as_str()][..], args].concat());
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// kubectl with nothing but the CA and a bearer token, as a joining node.
    fn with_token(&self, token: &str, args: &[&str]) -> Output {
        let ca = self.ca();
        let creds = [
            "--server",
            self.0.url(),
            "--certificate-authority",
            &ca,
            "--token",
            token,
        ];
        self.0.kubectl(&[&creds[..], args].concat())
    }

    /// A token Secret as kubeadm makes one, with `extra` literals added.
    fn create_token(&self, id: &str, secret: &str, ty: &str, extra: &[&str]) {
        let name = format!("bootstrap-token-{id}");
        let (id_lit, secret_lit) = (
            format!("--from-literal=token-id={id}"),
            format!("--from-literal=token-secret={secret}"),
        );
        let mut args = vec![
            "-n",
            "kube-system",
            "create",
            "secret",
            "generic",
            &name,
            "--type",
            ty,
            &id_lit,
            &secret_lit,
        ];
        args.extend_from_slice(extra);
        self.admin(&args);
    }
}

/// An RFC 3339 time `secs` seconds from now (in the past when negative), to the second.
fn expiration_in(secs: i64) -> String {
    let t = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(secs);
    format!(
        "--from-literal=expiration={}",
        t.round(jiff::Unit::Second).unwrap()
    )
}

/// A kubeconfig holding only the CA and a bearer token.
async fn kube_client_with_token(j: &Joinable, token: &str) -> kube::Client {
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster: {{server: \"{}\", certificate-authority: \"{}\"}}\nusers:\n- name: joiner\n  user: {{token: \"{token}\"}}\ncontexts:\n- name: lab\n  context: {{cluster: lab, user: joiner}}\ncurrent-context: lab\n",
        j.0.url(),
        j.ca()
    );
    testkit::secure::kube_client_from_yaml(&text).await
}

#[track_caller]
fn assert_401(got: (u16, serde_json::Value)) {
    common::assert_status(&got, 401, "Unauthorized");
    assert_eq!(got.1["message"], "Unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_secret_created_a_moment_ago_lets_a_joining_node_in() {
    let j = Joinable::start().await;
    assert_401(j.curl(Some(TOKEN), "/api/v1/nodes"));

    let expiration = expiration_in(3600);
    let extra = [
        "--from-literal=usage-bootstrap-authentication=true",
        "--from-literal=usage-bootstrap-signing=true",
        "--from-literal=auth-extra-groups=system:bootstrappers:kubeadm:default-node-token",
        expiration.as_str(),
    ];
    j.create_token(
        "abcdef",
        "0123456789abcdef",
        "bootstrap.kubernetes.io/token",
        &extra,
    );
    let out = j.with_token(TOKEN, &["get", "nodes"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr, "No resources found\n");

    let nodes: Api<Node> = Api::all(kube_client_with_token(&j, TOKEN).await);
    let list = nodes.list(&ListParams::default()).await;
    assert!(list
        .expect("kube-rs lists nodes with the bootstrap token")
        .items
        .is_empty());

    // the Secret gone, the token is refused at once
    j.admin(&[
        "-n",
        "kube-system",
        "delete",
        "secret",
        "bootstrap-token-abcdef",
    ]);
    assert_401(j.curl(Some(TOKEN), "/api/v1/nodes"));
    let out = j.with_token(TOKEN, &["get", "nodes"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: You must be logged in to the server (Unauthorized)\n"
    );
    let err = nodes.list(&ListParams::default()).await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 401 && s.reason == "Unauthorized"),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_expired_unusable_and_mistyped_tokens_are_401() {
    let j = Joinable::start().await;
    let usable = "--from-literal=usage-bootstrap-authentication=true";
    let ty = "bootstrap.kubernetes.io/token";
    j.create_token("abcdef", "0123456789abcdef", ty, &[usable]);
    j.create_token(
        "expird",
        "0123456789abcdef",
        ty,
        &[usable, &expiration_in(-60)],
    );
    j.create_token("nouse1", "0123456789abcdef", ty, &[]);
    j.create_token("opaque", "0123456789abcdef", "Opaque", &[usable]);
    assert_eq!(j.curl(Some(TOKEN), "/api/v1/nodes").0, 200);
    for token in [
        "abcdef.0000000000000000",
        "zzzzzz.0123456789abcdef",
        "expird.0123456789abcdef",
        "nouse1.0123456789abcdef",
        "opaque.0123456789abcdef",
        "abcdef0123456789abcdef",
    ] {
        let got = j.curl(Some(token), "/api/v1/nodes");
        assert_eq!(got.0, 401, "{token}: {}", got.1);
        assert_401(got);
    }
    // a token that expires while in use stops working at once
    let past = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1);
    let patch = format!(
        r#"{{"stringData":{{"expiration":"{}"}}}}"#,
        past.round(jiff::Unit::Second).unwrap()
    );
    j.admin(&[
        "-n",
        "kube-system",
        "patch",
        "secret",
        "bootstrap-token-abcdef",
        "-p",
        &patch,
    ]);
    assert_401(j.curl(Some(TOKEN), "/api/v1/nodes"));
}

/// kubeadm's discovery: a node with no credential reads `kube-public/cluster-info`, and
/// nothing else; a wrong credential is 401 even there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_info_alone_is_readable_without_a_credential() {
    let j = Joinable::start().await;
    let path = "/api/v1/namespaces/kube-public/configmaps/cluster-info";
    let got = j.curl(None, path);
    common::assert_status(&got, 404, "NotFound");
    j.admin(&[
        "-n",
        "kube-public",
        "create",
        "configmap",
        "cluster-info",
        "--from-literal=kubeconfig=k",
    ]);
    let (code, body) = j.curl(None, path);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["data"]["kubeconfig"], "k");
    for other in [
        "/api/v1/namespaces/kube-public/configmaps",
        "/api/v1/namespaces/kube-system/secrets",
        "/api/v1/nodes",
        "/api/v1/namespaces/kube-public/configmaps/cluster-info?watch=true",
    ] {
        assert_401(j.curl(None, other));
    }
    assert_401(j.curl(Some("abcdef.0000000000000000"), path));
    assert_401(j.curl(Some("nonsense"), path));
}
