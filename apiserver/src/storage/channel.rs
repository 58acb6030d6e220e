//! The gRPC channel to etcd: one HTTP/2 connection, every request handed straight to it.
//!
//! gRPC calls are HTTP/2 streams, so one connection carries every request of the server at
//! once (kube-apiserver's etcd client also shares one). etcd-client's default channel puts a
//! tower `Buffer` (a queue drained by a worker task) and a load balancer in front of that
//! connection, even for a single endpoint: every call then costs a task hop before it reaches
//! the connection. This channel gives the request to hyper's HTTP/2 client directly, and
//! dials again on the next request once the connection has died (etcd restarted), so the
//! server recovers as it did with the balanced channel. Read `storage.rs` for what is sent.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::{Authority, Scheme, Uri};
use http::{Request, Response};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tonic::body::Body;
use tonic::Status;

/// A cheap handle on the shared connection (see the module doc).
#[derive(Clone)]
pub struct DirectChannel {
    inner: Arc<Inner>,
}

struct Inner {
    /// `host:port` of the endpoint.
    authority: Authority,
    connect_timeout: Duration,
    /// HTTP/2 PING interval and how long to wait for the answer.
    keep_alive: (Duration, Duration),
    /// The live connection's request handle; `None` before the first dial.
    sender: Mutex<Option<SendRequest<Body>>>,
    /// Held while dialing, so a burst of requests after a failure dials once.
    dialing: tokio::sync::Mutex<()>,
}

impl DirectChannel {
    /// A channel to `endpoint` (`http://host:port` or `host:port`); dials on first use.
    pub fn new(
        endpoint: &str,
        connect_timeout: Duration,
        keep_alive: (Duration, Duration),
    ) -> Result<DirectChannel, String> {
        let hostport = endpoint
            .strip_prefix("http://")
            .unwrap_or(endpoint)
            .trim_end_matches('/');
        let authority: Authority = hostport
            .parse()
            .map_err(|e| format!("etcd endpoint {endpoint:?}: {e}"))?;
        Ok(DirectChannel {
            inner: Arc::new(Inner {
                authority,
                connect_timeout,
                keep_alive,
                sender: Mutex::new(None),
                dialing: tokio::sync::Mutex::new(()),
            }),
        })
    }
}

impl Inner {
    /// The request handle of a live connection, dialing one if there is none.
    async fn sender(&self) -> Result<SendRequest<Body>, Status> {
        if let Some(s) = self.live() {
            return Ok(s);
        }
        let _dialing = self.dialing.lock().await;
        // Someone else may have dialed while we waited.
        if let Some(s) = self.live() {
            return Ok(s);
        }
        let sender = self.dial().await?;
        *self.sender.lock().unwrap() = Some(sender.clone());
        Ok(sender)
    }

    fn live(&self) -> Option<SendRequest<Body>> {
        self.sender
            .lock()
            .unwrap()
            .as_ref()
            .filter(|s| !s.is_closed())
            .cloned()
    }

    async fn dial(&self) -> Result<SendRequest<Body>, Status> {
        let unavailable =
            |what: &str, e: &dyn std::fmt::Display| Status::unavailable(format!("{what}: {e}"));
        let tcp = tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(self.authority.as_str()),
        )
        .await
        .map_err(|e| unavailable("connecting to etcd", &e))?
        .map_err(|e| unavailable("connecting to etcd", &e))?;
        let _ = tcp.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(self.keep_alive.0)
            .keep_alive_timeout(self.keep_alive.1)
            .keep_alive_while_idle(true)
            .handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| unavailable("HTTP/2 handshake with etcd", &e))?;
        let authority = self.authority.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(etcd = %authority, error = %e, "etcd connection ended");
            }
        });
        Ok(sender)
    }
}

impl tower::Service<Request<Body>> for DirectChannel {
    type Response = Response<Body>;
    type Error = tower::BoxError;
    type Future =
        Pin<Box<dyn Future<Output = Result<Response<Body>, tower::BoxError>> + Send + 'static>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // HTTP/2 multiplexes: the connection takes any number of requests (up to etcd's
        // stream limit, beyond which hyper queues them).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(async move {
            // tonic sends the path only; HTTP/2 needs :scheme and :authority too.
            let mut parts = req.uri().clone().into_parts();
            parts.scheme = Some(Scheme::HTTP);
            parts.authority = Some(inner.authority.clone());
            *req.uri_mut() = Uri::from_parts(parts)?;
            let mut sender = inner.sender().await?;
            // A closed connection is an unavailable etcd (503), as in tonic's own channel.
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| Status::unavailable(format!("etcd connection: {e}")))?;
            Ok(resp.map(Body::new))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_with_or_without_scheme() {
        let d = Duration::from_secs(1);
        for e in [
            "http://127.0.0.1:2379",
            "127.0.0.1:2379",
            "http://127.0.0.1:2379/",
        ] {
            let c = DirectChannel::new(e, d, (d, d)).unwrap();
            assert_eq!(c.inner.authority.as_str(), "127.0.0.1:2379");
        }
        assert!(DirectChannel::new("http://a b", d, (d, d)).is_err());
    }
}
