//! Harness for the kubelet tests: `testkit`'s cluster (a private etcd + apiserver, in-process)
//! and nodes, with this crate's `minik8s-kubelet` binary as the node's process. Dropping a
//! `Kubelet` kills the process and removes every container, sandbox and pod network it left,
//! then its root dir; `TestNet` gives a test a bridge and a /24 of its own.
// Each test binary includes this module and uses a part of it (and of what it re-exports).
#![allow(dead_code, unused_imports)]

mod netns;

use std::ffi::OsString;

use apiserver::kubelet_client::ClientCert;

pub use netns::{ip, Netns};

pub use testkit::objects::{condition, container_status, phase};
pub use testkit::{
    container_pid, free_port, link_exists, rand_hex, Cluster, EtcdProcess, Kubelet, ServerConfig,
    TestNet, TestServer,
};

pub const BIN: &str = env!("CARGO_BIN_EXE_minik8s-kubelet");

/// The kubelet the tests run: this crate's, or `MINIK8S_KUBELET_BIN` (a benchmark may compare
/// another build of the kubelet, and so of its shim).
pub fn bin() -> OsString {
    std::env::var_os("MINIK8S_KUBELET_BIN").unwrap_or_else(|| BIN.into())
}

/// Start a kubelet for a fresh node `node-<hex>` against `cluster`, with `extra` flags.
pub fn start_kubelet(cluster: &Cluster, extra: &[&str]) -> Kubelet {
    Kubelet::start(bin(), cluster, &format!("node-{}", rand_hex()), extra)
}

/// A minimal HTTP/1.0 `GET url`, over TLS for `https://` the way the apiserver dials kubelets
/// (the kubelet's certificate not verified), with `token` as bearer token and `cert` as client
/// certificate: the whole response as text.
pub async fn get_text(
    url: &str,
    token: Option<&str>,
    cert: Option<&ClientCert>,
) -> std::io::Result<String> {
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    trait AsyncReadWrite: AsyncRead + AsyncWrite {}
    impl<T: AsyncRead + AsyncWrite> AsyncReadWrite for T {}
    let (tls, rest) = match url.strip_prefix("https://") {
        Some(rest) => (true, rest),
        None => (false, url.strip_prefix("http://").expect("an http(s) URL")),
    };
    let (host, path) = rest.split_at(rest.find('/').expect("a path"));
    let mut s: Box<dyn Unpin + Send + AsyncReadWrite> = if tls {
        let config = apiserver::kubelet_client::tls_config(None, cert)?;
        Box::new(apiserver::kubelet_client::connect(host, config).await?)
    } else {
        Box::new(tokio::net::TcpStream::connect(host).await?)
    };
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n{auth}\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    // a TLS peer may close without close_notify after the body: keep what arrived
    if let Err(e) = s.read_to_end(&mut buf).await {
        if buf.is_empty() {
            return Err(e);
        }
    }
    Ok(String::from_utf8_lossy(&buf).to_string())
}

/// The status code of an HTTP response's text.
pub fn status_of(response: &str) -> Option<u16> {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
}

/// `GET url` over TLS with `cert` as the client certificate: the status code, or the error
/// that ended the connection.
pub async fn get_with_cert(url: &str, cert: Option<&ClientCert>) -> std::io::Result<u16> {
    let text = get_text(url, None, cert).await?;
    status_of(&text).ok_or_else(|| std::io::Error::other(format!("no HTTP status in {text:?}")))
}
