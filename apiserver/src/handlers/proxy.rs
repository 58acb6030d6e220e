//! What the apiserver relays to kubelets: `pods/{p}/log`, `pods/{p}/exec` and
//! `nodes/{n}/proxy/{path}`. Each is served by a kubelet, which the apiserver finds from the
//! pod's `spec.nodeName` (or the node named in the URL), the Node's address (InternalIP, else
//! ExternalIP, else Hostname) and `status.daemonEndpoints.kubeletEndpoint.Port`, and calls over
//! TLS ([`crate::kubelet_client`]) with `--kubelet-token-file`'s bearer token. Logs are a
//! streamed GET relayed as is (`kubectl logs -f`); exec is a WebSocket (`v5.channel.k8s.io` or
//! `v4.channel.k8s.io`) whose frames are relayed both ways (as `port_forward.rs`'s are); the
//! node proxy passes any request to the kubelet's API
//! (`kubectl get --raw /api/v1/nodes/N/proxy/stats/summary`, the `/inspect` views of
//! `minikctl inspect`) and its status code and body back, as kube-apiserver's `nodes/proxy`
//! does.

use axum::body::{Body, Bytes};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite;

use super::Ctx;
use crate::error::ApiError;
use crate::kubelet_client;
use crate::state::App;

/// Where a pod's container is served: kubelet `host:port` and the container name.
struct Target {
    kubelet: String,
    container: String,
}

async fn locate(
    app: &App,
    namespace: &str,
    name: &str,
    container: Option<&str>,
) -> Result<Target, ApiError> {
    let pod = stored_pod(app, namespace, name).await?;
    let containers = container_names(&pod["spec"]["containers"]);
    let init = container_names(&pod["spec"]["initContainers"]);
    let container = match container.filter(|c| !c.is_empty()) {
        Some(c) if containers.contains(&c) || init.contains(&c) => c.to_string(),
        Some(c) => {
            return Err(ApiError::BadRequest(format!(
                "container {c} is not valid for pod {name}"
            )))
        }
        None => match containers.as_slice() {
            [one] => one.to_string(),
            _ => return Err(ApiError::BadRequest(choose_one(name, &containers, &init))),
        },
    };
    Ok(Target {
        kubelet: pod_kubelet(app, &pod, name).await?,
        container,
    })
}

/// The stored pod `namespace/name`; a missing pod is a 404.
pub(super) async fn stored_pod(app: &App, namespace: &str, name: &str) -> Result<Value, ApiError> {
    let pod_res = crate::resources::find("", "v1", "pods").expect("pods are served");
    Ok(app
        .storage
        .get(&app.storage.key(pod_res.storage, Some(namespace), name))
        .await?
        .ok_or_else(|| ApiError::NotFound(pod_res.subject(name)))?
        .object)
}

/// The kubelet (`host:port`) of the node `pod` (named `name`) is bound to; an unbound pod is
/// a 400, as kube-apiserver answers.
pub(super) async fn pod_kubelet(app: &App, pod: &Value, name: &str) -> Result<String, ApiError> {
    let node_name = pod["spec"]["nodeName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::BadRequest(format!("pod {name} does not have a host assigned")))?;
    kubelet_of(app, node_name).await
}

/// The `name`s of a pod's `containers` or `initContainers` array.
fn container_names(list: &Value) -> Vec<&str> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect()
}

/// kube-apiserver's refusal to guess the container of a pod that has several (Go's `%s` of
/// the names joined by spaces): `... choose one of: [a b] or one of the init containers: [i]`.
fn choose_one(pod: &str, containers: &[&str], init: &[&str]) -> String {
    let mut msg = format!(
        "a container name must be specified for pod {pod}, choose one of: [{}]",
        containers.join(" ")
    );
    if !init.is_empty() {
        msg += &format!(" or one of the init containers: [{}]", init.join(" "));
    }
    msg
}

/// The kubelet of node `node_name` as `host:port`, from the Node's status; an unknown node is
/// a 404.
async fn kubelet_of(app: &App, node_name: &str) -> Result<String, ApiError> {
    let node_res = crate::resources::find("", "v1", "nodes").expect("nodes are served");
    let node = app
        .storage
        .get(&app.storage.key(node_res.storage, None, node_name))
        .await?
        .ok_or_else(|| ApiError::NotFound(node_res.subject(node_name)))?
        .object;
    let addrs: &[Value] = node["status"]["addresses"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let addr = ["InternalIP", "ExternalIP", "Hostname"]
        .iter()
        .find_map(|t| {
            addrs
                .iter()
                .find(|a| a["type"] == *t)
                .and_then(|a| a["address"].as_str())
        })
        .ok_or_else(|| ApiError::BadRequest(format!("node {node_name} reports no address")))?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .filter(|p| *p > 0)
        .ok_or_else(|| ApiError::BadRequest(format!("node {node_name} reports no kubelet port")))?;
    Ok(if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    })
}

pub(super) fn upstream(e: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("error talking to the kubelet: {e}"))
}

/// A request to a kubelet: method, path with query, and the body with its type.
struct KubeletRequest<'a> {
    method: &'a Method,
    path: &'a str,
    content_type: Option<&'a str>,
    body: &'a [u8],
}

/// A kubelet's answer: its status line and head read, the body still on the connection.
struct KubeletResponse {
    code: u16,
    content_type: Option<String>,
    /// Body bytes that arrived with the head.
    rest: Vec<u8>,
    conn: TlsStream<TcpStream>,
}

/// Why a kubelet could not be asked.
#[derive(Debug, thiserror::Error)]
enum KubeletError {
    /// The TLS settings for kubelets could not be built (`--kubelet-certificate-authority`).
    #[error("kubelet TLS settings: {0}")]
    Tls(#[source] std::io::Error),
    /// Dialling the kubelet, sending the request or reading the answer failed.
    #[error("error talking to the kubelet: {0}")]
    Io(#[source] std::io::Error),
    /// The kubelet's answer is not an HTTP response head.
    #[error("error talking to the kubelet: {0}")]
    Response(&'static str),
}

/// Send `req` to the kubelet at `kubelet` as HTTP/1.0 (so the kubelet closes the connection
/// after the body, whatever its length) with the apiserver's token, and read the head back.
async fn send(
    app: &App,
    kubelet: &str,
    req: KubeletRequest<'_>,
) -> Result<KubeletResponse, KubeletError> {
    let tls = app.config.kubelet_tls().map_err(KubeletError::Tls)?;
    let mut conn = kubelet_client::connect(kubelet, tls)
        .await
        .map_err(KubeletError::Io)?;
    let mut head = format!(
        "{} {} HTTP/1.0\r\nHost: {kubelet}\r\n",
        req.method, req.path
    );
    if let Some(t) = app.config.kubelet_token.as_deref() {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(ct) = req.content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    if !req.body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())
        .await
        .map_err(KubeletError::Io)?;
    conn.write_all(req.body).await.map_err(KubeletError::Io)?;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let body_start = loop {
        let n = conn.read(&mut buf).await.map_err(KubeletError::Io)?;
        if n == 0 {
            return Err(KubeletError::Response(
                "connection closed before the response",
            ));
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if head.len() > 64 * 1024 {
            return Err(KubeletError::Response("response head too large"));
        }
    };
    let rest = head.split_off(body_start);
    let head = String::from_utf8_lossy(&head).into_owned();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(502);
    let content_type = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-type")
            .then(|| v.trim().to_string())
    });
    Ok(KubeletResponse {
        code,
        content_type,
        rest,
        conn,
    })
}

impl KubeletResponse {
    /// The whole body (for error messages).
    async fn text(mut self) -> String {
        let mut body = self.rest;
        let _ = self.conn.read_to_end(&mut body).await;
        String::from_utf8_lossy(&body).trim().to_string()
    }

    /// The body as a stream: what came with the head, then the connection until it closes.
    fn body(self) -> Body {
        let first = futures::stream::iter(
            (!self.rest.is_empty()).then(|| Ok::<Bytes, std::io::Error>(Bytes::from(self.rest))),
        );
        let tail = futures::stream::unfold(self.conn, |mut s| async move {
            let mut buf = vec![0u8; 16 * 1024];
            match s.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), s))
                }
                Err(e) => Some((Err(e), s)),
            }
        });
        Body::from_stream(first.chain(tail))
    }
}

/// `GET pods/{p}/log`: stream the kubelet's `containerLogs` answer.
pub async fn log(ctx: &Ctx) -> Result<Response, ApiError> {
    let ns = ctx.info.namespace.clone().unwrap_or_default();
    let t = locate(&ctx.app, &ns, ctx.name(), ctx.query.get("container")).await?;
    let query = {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for k in [
            "follow",
            "tailLines",
            "sinceSeconds",
            "timestamps",
            "previous",
            "limitBytes",
        ] {
            if let Some(v) = ctx.query.get(k) {
                q.append_pair(k, v);
            }
        }
        q.finish()
    };
    let path = format!("/containerLogs/{ns}/{}/{}?{query}", ctx.name(), t.container);
    let req = KubeletRequest {
        method: &Method::GET,
        path: &path,
        content_type: None,
        body: &[],
    };
    let resp = send(&ctx.app, &t.kubelet, req)
        .await
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    match resp.code {
        200 => Ok(Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "text/plain")
            .body(resp.body())
            .expect("valid response")),
        code @ (401 | 403) => Err(upstream(format!(
            "kubelet refused the apiserver's credentials ({code})"
        ))),
        _ => Err(ApiError::BadRequest(resp.text().await)),
    }
}

/// `nodes/{n}/proxy[/{path}]` (its own routes, for any method): the request relayed to the
/// node's kubelet (path and query as given, body and its type), the kubelet's status code,
/// content type and body streamed back. An unknown node is a 404 `Status`.
pub async fn node(State(app): State<App>, req: Request) -> Response {
    node_proxy(app, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn node_proxy(app: App, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let (node_name, path) = proxied_path(parts.uri.path()).ok_or(ApiError::UnknownResource)?;
    let path = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let kubelet = kubelet_of(&app, node_name).await?;
    let body = axum::body::to_bytes(body, crate::codec::MAX_BODY)
        .await
        .map_err(|_| ApiError::TooLarge(crate::codec::MAX_BODY))?;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let req = KubeletRequest {
        method: &parts.method,
        path: &path,
        content_type,
        body: &body,
    };
    // kube-apiserver answers a kubelet it cannot reach with 503
    let resp = send(&app, &kubelet, req).await.map_err(|e| {
        tracing::warn!(node = node_name, error = %e, "node proxy");
        ApiError::Unavailable(e.to_string())
    })?;
    tracing::debug!(node = node_name, path = %path, code = resp.code, "node proxy");
    let mut out = Response::builder().status(resp.code);
    if let Some(ct) = &resp.content_type {
        out = out.header(header::CONTENT_TYPE, ct);
    }
    out.body(resp.body())
        .map_err(|_| ApiError::Unavailable("bad response from the kubelet".into()))
}

/// `/api/v1/nodes/{node}/proxy/{path}` → (node, `/{path}`); `…/proxy` alone is `/`.
fn proxied_path(url_path: &str) -> Option<(&str, &str)> {
    let (node, rest) = url_path
        .strip_prefix("/api/v1/nodes/")?
        .split_once("/proxy")?;
    match rest {
        "" => Some((node, "/")),
        r if r.starts_with('/') && !node.is_empty() => Some((node, r)),
        _ => None,
    }
}

/// `pods/{p}/exec` (its own route, because it needs the connection upgrade). The pod and the
/// container are checked before the upgrade: kubectl falls back from WebSocket to SPDY when
/// the upgrade is refused, and must then meet the same NotFound or BadRequest, not our refusal
/// of SPDY.
pub async fn exec(
    State(app): State<App>,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let pairs: Vec<(String, String)> =
        form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let container = pairs
        .iter()
        .find(|(k, _)| k == "container")
        .map(|(_, v)| v.as_str());
    let t = match locate(&app, &namespace, &name, container).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let Ok(ws) = ws else {
        return ApiError::BadRequest("exec needs a WebSocket upgrade (v5.channel.k8s.io or v4.channel.k8s.io); SPDY is not supported".into()).into_response();
    };
    let query = {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs.iter().filter(|(k, _)| {
            matches!(
                k.as_str(),
                "command" | "stdin" | "stdout" | "stderr" | "tty"
            )
        }) {
            q.append_pair(k, v);
        }
        q.finish()
    };
    let url = format!(
        "wss://{}/exec/{namespace}/{name}/{}?{query}",
        t.kubelet, t.container
    );
    let token = app.config.kubelet_token.clone();
    let tls = match app.config.kubelet_tls() {
        Ok(t) => t,
        Err(e) => return upstream(e).into_response(),
    };
    ws.protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"])
        .on_upgrade(move |socket| async move {
            if let Err(e) = relay(socket, &url, &t.kubelet, tls, token.as_deref()).await {
                tracing::warn!(namespace = %namespace, pod = %name, error = %e, "exec relay failed");
            }
        })
}

/// Relay the WebSocket `client` to the kubelet's WebSocket at `url`, message for message, with
/// the subprotocol the client agreed (exec's channels, port-forward's tunnel).
pub(super) async fn relay(
    client: WebSocket,
    url: &str,
    kubelet: &str,
    tls: std::sync::Arc<rustls::ClientConfig>,
    token: Option<&str>,
) -> anyhow::Result<()> {
    use tungstenite::client::IntoClientRequest;
    let protocol = client
        .protocol()
        .and_then(|p| p.to_str().ok())
        .unwrap_or("v4.channel.k8s.io")
        .to_string();
    let mut req = url.into_client_request()?;
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse()?);
    if let Some(t) = token {
        req.headers_mut()
            .insert("Authorization", format!("Bearer {t}").parse()?);
    }
    let stream = kubelet_client::connect(kubelet, tls).await?;
    let (node, _) = tokio_tungstenite::client_async(req, stream).await?;
    let (mut node_tx, mut node_rx) = node.split();
    let (mut client_tx, mut client_rx) = client.split();
    let up = async {
        while let Some(Ok(m)) = client_rx.next().await {
            let m = match m {
                Message::Binary(b) => tungstenite::Message::Binary(b),
                Message::Text(t) => tungstenite::Message::Text(t.as_str().into()),
                Message::Close(_) => break,
                _ => continue,
            };
            if node_tx.send(m).await.is_err() {
                break;
            }
        }
        let _ = node_tx.close().await;
    };
    let down = async {
        while let Some(Ok(m)) = node_rx.next().await {
            let m = match m {
                tungstenite::Message::Binary(b) => Message::Binary(b),
                tungstenite::Message::Text(t) => Message::Text(t.as_str().into()),
                tungstenite::Message::Close(_) => break,
                _ => continue,
            };
            if client_tx.send(m).await.is_err() {
                break;
            }
        }
        // a normal closure (1000): client-go treats a close without status as an error
        let _ = client_tx
            .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                code: 1000,
                reason: "".into(),
            })))
            .await;
    };
    // The session ends when the kubelet's side ends (after the exit status). The client may
    // still be sending (stdin, terminal resizes): read on until it answers the close (at most
    // 2 s), because a socket closed with unread data is reset by the kernel, and a reset can
    // reach the client before it has read the exit status.
    tokio::pin!(up, down);
    let client_ended_first = tokio::select! {
        _ = &mut down => false,
        _ = &mut up => true,
    };
    if client_ended_first {
        down.await;
    } else {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), up).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{choose_one, proxied_path};

    #[test]
    fn a_pod_of_several_containers_needs_one_named_as_kube_apiserver_says() {
        assert_eq!(
            choose_one("web", &["a", "b"], &[]),
            "a container name must be specified for pod web, choose one of: [a b]"
        );
        assert_eq!(
            choose_one("web", &["a", "b"], &["setup"]),
            "a container name must be specified for pod web, choose one of: [a b] \
             or one of the init containers: [setup]"
        );
    }

    #[test]
    fn the_proxied_path_is_what_follows_proxy() {
        assert_eq!(
            proxied_path("/api/v1/nodes/n1/proxy/stats/summary"),
            Some(("n1", "/stats/summary"))
        );
        assert_eq!(proxied_path("/api/v1/nodes/n1/proxy"), Some(("n1", "/")));
        assert_eq!(proxied_path("/api/v1/nodes/n1/proxy/"), Some(("n1", "/")));
        assert_eq!(proxied_path("/api/v1/nodes/n1/proxyx"), None);
        assert_eq!(proxied_path("/api/v1/pods/n1/proxy/x"), None);
    }
}
