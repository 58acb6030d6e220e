//! The apiserver authenticates to the kubelet with its client certificate (issue 13), as
//! kube-apiserver does with `--kubelet-client-certificate`: the kubelet started with
//! `--client-ca-file` and no bearer token serves `kubectl logs`/`exec` through the apiserver,
//! answers a caller without a credential 401 and refuses a certificate of another CA in the
//! handshake. Real etcd, apiserver, kubelet binary and containers, as `kubelet.rs`.

mod harness;

use std::time::{Duration, Instant};

use harness::*;
use serde_json::json;
use testkit::TempPki;

#[tokio::test(flavor = "multi_thread")]
async fn apiserver_reaches_the_kubelet_with_its_client_certificate() {
    let pki = TempPki::create();
    let cert = pki.kubelet_client_cert();
    let c = Cluster::with_config(ServerConfig {
        kubelet_client_cert: Some(cert.clone()),
        ..Default::default()
    })
    .await;
    let ca = pki.ca();
    // an empty token file: the kubelet API has no bearer token, only the client CA
    let node = format!("node-{}", rand_hex());
    let connect = ["--server", c.url()];
    let k = Kubelet::start_with(
        bin(),
        &node,
        "",
        &connect,
        &["--client-ca-file", ca.to_str().unwrap()],
    );
    c.create_pod(
        "talk",
        &k.node,
        json!({"terminationGracePeriodSeconds": 0, "containers": [{"name": "c", "image": "busybox",
        "command": ["sh", "-c", "echo hello; sleep 3600"]}]}),
    )
    .await;
    c.wait_pod("talk", 60, "Running", |p| phase(p) == "Running")
        .await;

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, out) = c.kubectl_text(&["logs", "talk"]).await;
        if ok && out.contains("hello") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "kubectl logs: {out}\n{}",
            k.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = c
        .kubectl_ok(&["exec", "talk", "--", "echo", "from exec"])
        .await;
    assert_eq!(out.trim(), "from exec");

    let base = format!("https://127.0.0.1:{}", k.port);
    assert_eq!(
        get_with_cert(&format!("{base}/healthz"), None)
            .await
            .unwrap(),
        200
    );
    // no credential: 401, as with the token
    assert_eq!(
        get_with_cert(&format!("{base}/metrics"), None)
            .await
            .unwrap(),
        401
    );
    assert_eq!(
        get_with_cert(&format!("{base}/containerLogs/default/talk/c"), None)
            .await
            .unwrap(),
        401
    );
    // the apiserver's certificate, directly
    assert_eq!(
        get_with_cert(&format!("{base}/metrics"), Some(&cert))
            .await
            .unwrap(),
        200
    );
    // a certificate of another CA ends the handshake
    let other = TempPki::create().kubelet_client_cert();
    let refused = get_with_cert(&format!("{base}/metrics"), Some(&other)).await;
    let refused = refused.expect_err("a certificate of another CA was accepted");
    assert!(refused.to_string().contains("alert"), "{refused}");
}
