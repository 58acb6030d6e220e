//! Shared by the integration tests: a real etcd, an apiserver on loopback, and real kubectl.
#![allow(dead_code)]

use std::process::Output;

pub use apiserver::server::ServerConfig;
pub use apiserver::testing::{EtcdProcess, TestServer};

/// An etcd plus an apiserver; both stop when dropped.
pub struct Cluster {
    pub server: TestServer,
    pub etcd: EtcdProcess,
    kube_cache: tempfile::TempDir,
}

impl Cluster {
    pub async fn start() -> Cluster {
        Self::with_config(ServerConfig::default()).await
    }

    pub async fn with_config(config: ServerConfig) -> Cluster {
        let etcd = EtcdProcess::start();
        let server = TestServer::start(&etcd, config).await;
        Cluster {
            server,
            etcd,
            kube_cache: tempfile::tempdir().unwrap(),
        }
    }

    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// Run the real kubectl against this server.
    pub async fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None).await
    }

    /// Run kubectl with `stdin` piped in (for `-f -`).
    pub async fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use tokio::io::AsyncWriteExt;
        let mut cmd = tokio::process::Command::new(apiserver::testing::kubectl());
        cmd.arg("--server")
            .arg(&self.server.url)
            .arg("--cache-dir")
            .arg(self.kube_cache.path())
            .env("KUBECONFIG", "/dev/null")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("run kubectl");
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).await.unwrap();
        }
        drop(input);
        child.wait_with_output().await.unwrap()
    }

    /// kubectl that must succeed; returns stdout.
    pub async fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A `kube` client for this server.
    pub fn kube_client(&self) -> kube::Client {
        let config = kube::Config::new(self.server.url.parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    /// A plain HTTP client for raw requests.
    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::new()
    }
}

/// The manifests folder of the repository.
pub fn manifest(name: &str) -> String {
    format!("{}/../manifests/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A minimal valid pod in API form.
pub fn pod_json(name: &str, labels: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]}
    })
}

/// Send a raw request; returns the HTTP code and the body as JSON (`Null` if it is not JSON).
pub async fn send(req: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let resp = tokio::time::timeout(std::time::Duration::from_secs(30), req.send())
        .await
        .expect("the server answers within 30 s")
        .expect("the request reaches the server");
    let code = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("the body arrives");
    (
        code,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// Assert `body` is a failure `Status` with `code` and `reason`.
#[track_caller]
pub fn assert_status(got: &(u16, serde_json::Value), code: u16, reason: &str) {
    let (http, body) = got;
    assert_eq!(*http, code, "HTTP code; body: {body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["apiVersion"], "v1", "{body}");
    assert_eq!(body["status"], "Failure", "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["reason"], reason, "{body}");
}

/// A watch response read one event (line) at a time.
pub struct WatchStream {
    stream: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: Vec<u8>,
    /// HTTP code of the watch request.
    pub code: u16,
}

impl WatchStream {
    /// Open `GET url` (a `?watch=true` URL).
    pub async fn open(url: &str) -> WatchStream {
        let resp = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            reqwest::Client::new().get(url).send(),
        )
        .await
        .expect("watch answered within 30 s")
        .expect("watch request reaches the server");
        let code = resp.status().as_u16();
        WatchStream {
            stream: Box::pin(resp.bytes_stream()),
            buf: Vec::new(),
            code,
        }
    }

    /// The next event, `None` when the server ended the stream. Panics after `secs` seconds.
    pub async fn next_within(&mut self, secs: u64) -> Option<serde_json::Value> {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(
                    serde_json::from_slice(&line).expect("each watch line is one JSON object"),
                );
            }
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => panic!(
                    "no watch event within {secs} s (buffered: {:?})",
                    String::from_utf8_lossy(&self.buf)
                ),
                Ok(None) => {
                    assert!(
                        self.buf.is_empty(),
                        "stream ended mid-line: {:?}",
                        String::from_utf8_lossy(&self.buf)
                    );
                    return None;
                }
                Ok(Some(chunk)) => self
                    .buf
                    .extend_from_slice(&chunk.expect("watch body chunk")),
            }
        }
    }

    /// The next event, which must exist.
    pub async fn next(&mut self) -> serde_json::Value {
        self.next_within(30).await.expect("the watch is still open")
    }

    /// The next event that is not a BOOKMARK.
    pub async fn next_change(&mut self) -> serde_json::Value {
        loop {
            let ev = self.next().await;
            if ev["type"] != "BOOKMARK" {
                return ev;
            }
        }
    }
}

/// Poll `f` until it returns `Some`, for up to `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
