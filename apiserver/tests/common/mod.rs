//! Shared by the apiserver's integration tests: what `testkit` gives every crate (a real etcd,
//! an apiserver on loopback, the real kubectl), plus raw HTTP: requests answered with a
//! `Status`, and watches read one event at a time.
// Each test binary includes this module and uses a part of it (and of what it re-exports).
#![allow(dead_code, unused_imports)]

pub use testkit::objects::{manifest, pod_json};
pub use testkit::{wait_for, Cluster, EtcdProcess, ServerConfig, TestServer};

/// A plain HTTP client for raw requests to a test cluster.
pub trait ClusterHttp {
    fn http(&self) -> reqwest::Client;
}

impl ClusterHttp for Cluster {
    fn http(&self) -> reqwest::Client {
        reqwest::Client::new()
    }
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
