//! The apiserver binary on a PKI made by `client::pki` (issue 13): HTTPS with the PKI's serving
//! certificate, `--client-ca-file ca.crt` and a token file. The admin kubeconfig works with
//! kube-rs and with the real kubectl, which verify the serving certificate against the CA at
//! 127.0.0.1 (no `--insecure-skip-tls-verify` anywhere); a certificate of another CA is refused
//! at the handshake; no certificate and no token is a 401 `Status`; a bearer token still works
//! beside the client CA.

mod common;

use std::process::{Command, Output};

use client::pki::{Pki, Sans};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use testkit::secure::kube_client;
use testkit::SecureCluster;

/// Start etcd and the apiserver with the serving certificate, the client CA and a token file
/// (`s3cret` is `tok-user` in `ops`); wait until it is ready.
async fn start() -> SecureCluster {
    SecureCluster::builder(env!("CARGO_BIN_EXE_minik8s-apiserver"))
        .token_auth_file("s3cret,tok-user,7,\"ops\"\n")
        .start()
        .await
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_kubeconfig_works_with_kube_rs_and_kubectl() {
    let s = start().await;
    let admin = s.admin();
    let namespaces: Api<Namespace> = Api::all(kube_client(admin).await);
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
        .pki()
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
    let s = start().await;
    // another cluster's CA (the same name, minik8s-ca: a signature that does not verify) and a
    // self-signed certificate (an unknown issuer); each with the cluster's CA for the server
    let other = Pki::create(&s.dir().join("other-pki"), &Sans::default()).unwrap();
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
    let s = start().await;
    let ca = s.ca();
    let ca = ca.to_str().unwrap();
    let server = ["--server", s.url(), "--certificate-authority", ca];
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
    assert_eq!(s.pki().ca_cert_hash(), format!("sha256:{hex}"));
}
