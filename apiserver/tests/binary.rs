//! The `minik8s-apiserver` binary itself: flag checks, TLS with bearer tokens, health and
//! metrics endpoints, reached by the real kubectl.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::{free_port, ChildGuard as ServerProcess, EtcdProcess};

fn kubectl(server: &str, cache: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new(testkit::kubectl())
        .args(["--server", server, "--cache-dir"])
        .arg(cache)
        .args(extra)
        .env("KUBECONFIG", "/dev/null")
        .output()
        .expect("run kubectl")
}

#[test]
fn refuses_to_expose_an_open_api_on_a_non_loopback_address() {
    let out = Command::new(env!("CARGO_BIN_EXE_minik8s-apiserver"))
        .args([
            "--etcd-servers",
            "http://127.0.0.1:1",
            "--listen",
            "0.0.0.0:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one readable line: {err}");
    assert!(
        err.contains("refusing to serve 0.0.0.0:0 without TLS and authentication"),
        "{err}"
    );
}

#[test]
fn serves_https_with_bearer_tokens_and_health_and_metrics() {
    let etcd = EtcdProcess::start();
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let (cert_file, key_file, tokens) = (
        dir.path().join("tls.crt"),
        dir.path().join("tls.key"),
        dir.path().join("tokens.csv"),
    );
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.signing_key.serialize_pem()).unwrap();
    std::fs::write(&tokens, "s3cret,admin,1,\"system:masters\"\n").unwrap();
    let port = free_port();
    let _server = ServerProcess(
        Command::new(env!("CARGO_BIN_EXE_minik8s-apiserver"))
            .args([
                "--etcd-servers",
                &etcd.endpoint,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("--tls-cert-file")
            .arg(&cert_file)
            .arg("--tls-private-key-file")
            .arg(&key_file)
            .arg("--token-auth-file")
            .arg(&tokens)
            .args(["--default-unreachable-toleration-seconds", "7"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let server = format!("https://127.0.0.1:{port}");
    let cache = dir.path().join("kube-cache");
    let with_token = |args: &[&str]| {
        let mut all = vec!["--insecure-skip-tls-verify", "--token", "s3cret"];
        all.extend_from_slice(args);
        kubectl(&server, &cache, &all)
    };
    // Wait until the server answers (it bootstraps the default namespaces first).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = with_token(&["get", "--raw", "/readyz"]);
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server never became ready: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = with_token(&["get", "namespaces", "-o", "name"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("namespace/kube-system"));

    // DefaultTolerationSeconds follows the flags: unreachable 7 s, not-ready the default 300 s.
    let out = with_token(&["run", "tol", "--image=busybox", "--restart=Never"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = with_token(&[
        "get",
        "pod",
        "tol",
        "-o",
        "jsonpath={range .spec.tolerations[*]}{.key}={.tolerationSeconds} {end}",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "node.kubernetes.io/not-ready=300 node.kubernetes.io/unreachable=7"
    );

    // A wrong token: 401 (with no token at all kubectl would prompt for a password).
    let out = kubectl(
        &server,
        &cache,
        &[
            "--insecure-skip-tls-verify",
            "--token",
            "wrong",
            "get",
            "--raw",
            "/api/v1/namespaces",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Unauthorized") || err.contains("provide credentials"),
        "{err}"
    );
    // No token: a 401 Status.
    let out = Command::new("curl")
        .args([
            "-sk",
            "-w",
            "\n%{http_code}",
            &format!("{server}/api/v1/namespaces"),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("\n401"), "{text}");
    assert!(text.contains("\"reason\":\"Unauthorized\""), "{text}");

    // Health needs no token; metrics count what was served.
    let out = Command::new("curl")
        .args(["-sk", &format!("{server}/healthz")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok");
    let out = with_token(&["get", "--raw", "/metrics"]);
    let metrics = String::from_utf8_lossy(&out.stdout);
    assert!(
        metrics.contains(
            "apiserver_request_total{verb=\"list\",resource=\"namespaces\",code=\"200\"}"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("apiserver_request_duration_seconds_bucket"));
}
