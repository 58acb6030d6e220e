//! The apiserver binary on a PKI made by `client::pki` (issue 13): HTTPS with the PKI's serving
//! certificate, `--client-ca-file ca.crt` and a token file. The admin kubeconfig works with
//! kube-rs and with the real kubectl, which verify the serving certificate against the CA at
//! 127.0.0.1 (no `--insecure-skip-tls-verify` anywhere); a certificate of another CA is refused
//! at the handshake; no certificate and no token is a 401 `Status`; a bearer token still works
//! beside the client CA.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use client::pki::{Pki, Sans};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use testkit::{free_port, ChildGuard, EtcdProcess};

/// An apiserver process serving the PKI under `dir/pki`.
struct Secured {
    _server: ChildGuard,
    _etcd: EtcdProcess,
    dir: tempfile::TempDir,
    pki: Pki,
    url: String,
}

impl Secured {
    /// Start etcd and the apiserver with the serving certificate, the client CA and a token
    /// file (`s3cret` is `tok-user` in `ops`); wait until it is ready.
    fn start() -> Secured {
        let etcd = EtcdProcess::start();
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::create(&dir.path().join("pki"), &Sans::default()).unwrap();
        let tokens = dir.path().join("tokens.csv");
        std::fs::write(&tokens, "s3cret,tok-user,7,\"ops\"\n").unwrap();
        let port = free_port();
        let p = |name: &str| pki.dir().join(name);
        let server = ChildGuard(
            Command::new(env!("CARGO_BIN_EXE_minik8s-apiserver"))
                .args(["--etcd-servers", &etcd.endpoint])
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .arg("--tls-cert-file")
                .arg(p("apiserver.crt"))
                .arg("--tls-private-key-file")
                .arg(p("apiserver.key"))
                .arg("--client-ca-file")
                .arg(p("ca.crt"))
                .arg("--token-auth-file")
                .arg(&tokens)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let secured = Secured {
            _server: server,
            _etcd: etcd,
            dir,
            pki,
            url: format!("https://127.0.0.1:{port}"),
        };
        secured.wait_ready();
        secured
    }

    /// `/readyz` needs no credential; the CA must verify the serving certificate.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (code, body) = self.curl(&[], "/readyz");
            if code == 200 && body == "ok" {
                return;
            }
            assert!(Instant::now() < deadline, "not ready: {code} {body}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `curl` verifying the server against the cluster CA: (HTTP code, body).
    fn curl(&self, extra: &[&str], path: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-s", "--cacert"])
            .arg(self.pki.cert_path(client::pki::Credential::Ca))
            .args(extra)
            .args(["-w", "\n%{http_code}", &format!("{}{path}", self.url)])
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.parse().unwrap_or(0), body.to_string())
    }

    /// Write a kubeconfig for `user` with this cluster's CA and the given pair.
    fn kubeconfig(&self, name: &str, user: &str, cert: &str, key: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        let text = self.pki.kubeconfig(&self.url, user, cert, key).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The real kubectl with `args`, reading no kubeconfig but what `args` name.
    fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(testkit::kubectl())
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache"))
            .args(args)
            .env("KUBECONFIG", "/dev/null")
            .output()
            .expect("run kubectl")
    }
}

async fn kube_client(kubeconfig: &Path) -> kube::Client {
    let text = std::fs::read_to_string(kubeconfig).unwrap();
    let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_kubeconfig_works_with_kube_rs_and_kubectl() {
    let s = tokio::task::spawn_blocking(Secured::start).await.unwrap();
    let admin = s.dir.path().join("admin.conf");
    std::fs::write(&admin, s.pki.admin_kubeconfig(&s.url).unwrap()).unwrap();

    let namespaces: Api<Namespace> = Api::all(kube_client(&admin).await);
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .expect("kube-rs lists namespaces as kubernetes-admin")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(names.contains(&"kube-system".to_string()), "{names:?}");

    let admin_arg = admin.to_str().unwrap();
    let out = s.kubectl(&["--kubeconfig", admin_arg, "get", "ns", "-o", "name"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("namespace/default"), "{stdout}");
    let out = s.kubectl(&["--kubeconfig", admin_arg, "create", "ns", "by-cert"]);
    assert!(out.status.success(), "{}", text(&out).1);

    // a node's credential, as the join step will issue it, is a user too
    let (cert, key) = s
        .pki
        .issue_client("system:node:n1", &["system:nodes"])
        .unwrap();
    let node = s.kubeconfig("node.conf", "system:node:n1", &cert, &key);
    let out = s.kubectl(&[
        "--kubeconfig",
        node.to_str().unwrap(),
        "get",
        "ns",
        "by-cert",
    ]);
    assert!(out.status.success(), "{}", text(&out).1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_cas_certificate_is_refused_and_no_credential_is_401() {
    let s = tokio::task::spawn_blocking(Secured::start).await.unwrap();
    // another cluster's CA (the same name, minik8s-ca: a signature that does not verify) and a
    // self-signed certificate (an unknown issuer); each with the cluster's CA for the server
    let other = Pki::create(&s.dir.path().join("other-pki"), &Sans::default()).unwrap();
    let self_signed = rcgen::generate_simple_self_signed(vec!["mallory".into()]).unwrap();
    let intruders = [
        other.issue_client("mallory", &["system:masters"]).unwrap(),
        (
            self_signed.cert.pem(),
            self_signed.signing_key.serialize_pem(),
        ),
    ];
    for (i, (cert, key)) in intruders.iter().enumerate() {
        let intruder = s.kubeconfig(&format!("intruder-{i}.conf"), "mallory", cert, key);
        let namespaces: Api<Namespace> = Api::all(kube_client(&intruder).await);
        let err = namespaces
            .list(&ListParams::default())
            .await
            .expect_err("a certificate of another CA is refused");
        // refused at the handshake, before any HTTP answer: a TLS alert (DecryptError for
        // the bad signature, UnknownCA for the unknown issuer), or, when the server's alert
        // races the client's first request (TLS 1.3 checks the client's certificate after the
        // client considers the handshake done), a connection closed before any response
        let shown = format!("{err:?}");
        assert!(
            !matches!(err, kube::Error::Api(_)),
            "an HTTP answer: {shown}"
        );
        assert!(
            shown.contains("AlertReceived") || shown.contains("connection was not ready"),
            "{shown}"
        );
        let out = s.kubectl(&["--kubeconfig", intruder.to_str().unwrap(), "get", "ns"]);
        let (_, stderr) = text(&out);
        assert!(!out.status.success());
        assert!(
            stderr.contains("remote error: tls:"),
            "a TLS alert: {stderr}"
        );
    }

    // neither certificate nor token: a 401 Status, and a wrong token likewise
    for extra in [&[][..], &["-H", "Authorization: Bearer wrong"][..]] {
        let (code, body) = s.curl(extra, "/api/v1/namespaces");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        common::assert_status(&(code, body), 401, "Unauthorized");
    }
    // health stays open
    assert_eq!(s.curl(&[], "/healthz"), (200, "ok".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_still_works_beside_the_client_ca() {
    let s = tokio::task::spawn_blocking(Secured::start).await.unwrap();
    let ca = s.pki.cert_path(client::pki::Credential::Ca);
    let ca = ca.to_str().unwrap();
    let server = ["--server", &s.url, "--certificate-authority", ca];
    let out = s.kubectl(
        &[
            &server[..],
            &["--token", "s3cret", "get", "ns", "-o", "name"],
        ]
        .concat(),
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("namespace/kube-system"), "{stdout}");
    let out = s.kubectl(&[&server[..], &["--token", "wrong", "get", "ns"]].concat());
    assert!(!out.status.success());
    assert!(text(&out).1.contains("Unauthorized"), "{}", text(&out).1);

    // kubeadm's recipe for the CA hash (openssl, the SPKI's DER) gives ca_cert_hash's value
    let recipe = format!(
        "openssl x509 -pubkey -noout -in {ca} | openssl pkey -pubin -outform der | openssl dgst -sha256 -hex | sed 's/^.* //'"
    );
    let out = Command::new("sh").args(["-c", &recipe]).output().unwrap();
    let hex = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(s.pki.ca_cert_hash(), format!("sha256:{hex}"));
}
