//! `pods/{p}/log` and `pods/{p}/exec`: served by the pod's kubelet, which the apiserver finds
//! from the pod's `spec.nodeName`, the Node's address (InternalIP, else Hostname) and
//! `status.daemonEndpoints.kubeletEndpoint.Port`, and calls over TLS
//! ([`crate::kubelet_client`]) with `--kubelet-token-file`'s bearer token. Logs are a streamed GET relayed as is (`kubectl logs -f`); exec is a WebSocket
//! (`v5.channel.k8s.io` or `v4.channel.k8s.io`) whose frames are relayed both ways.

use axum::body::{Body, Bytes};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    let pod_res = crate::resources::find("", "v1", "pods").expect("pods are served");
    let pod = app
        .storage
        .get(&app.storage.key(pod_res.storage, Some(namespace), name))
        .await?
        .ok_or_else(|| ApiError::NotFound(pod_res.subject(name)))?
        .object;
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(
            pod["spec"]["initContainers"]
                .as_array()
                .into_iter()
                .flatten(),
        )
        .filter_map(|c| c["name"].as_str())
        .collect();
    let container = match container.filter(|c| !c.is_empty()) {
        Some(c) if names.contains(&c) => c.to_string(),
        Some(c) => {
            return Err(ApiError::BadRequest(format!(
                "container {c} is not valid for pod {name}"
            )))
        }
        None => match pod["spec"]["containers"].as_array().map(Vec::as_slice) {
            Some([one]) => one["name"].as_str().unwrap_or_default().to_string(),
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "a container name must be specified for pod {name}, choose one of: {names:?}"
                )))
            }
        },
    };
    let node_name = pod["spec"]["nodeName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::BadRequest(format!("pod {name} does not have a host assigned")))?;
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
    let host = if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    };
    Ok(Target {
        kubelet: host,
        container,
    })
}

fn upstream(e: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("error talking to the kubelet: {e}"))
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
    let tls = ctx.app.config.kubelet_tls().map_err(upstream)?;
    let mut s = kubelet_client::connect(&t.kubelet, tls)
        .await
        .map_err(upstream)?;
    let auth = ctx
        .app
        .config
        .kubelet_token
        .as_deref()
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {}\r\n{auth}\r\n", t.kubelet).as_bytes())
        .await
        .map_err(upstream)?;
    // response head, then the body until the kubelet closes the connection
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let body_start = loop {
        let n = s.read(&mut buf).await.map_err(upstream)?;
        if n == 0 {
            return Err(upstream("connection closed before the response"));
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if head.len() > 64 * 1024 {
            return Err(upstream("response head too large"));
        }
    };
    let rest = head.split_off(body_start);
    let code: u16 = String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(502);
    if code != 200 {
        let mut body = rest;
        let _ = s.read_to_end(&mut body).await;
        let msg = String::from_utf8_lossy(&body).trim().to_string();
        return Err(match code {
            401 | 403 => upstream(format!(
                "kubelet refused the apiserver's credentials ({code})"
            )),
            404 => ApiError::BadRequest(msg),
            _ => ApiError::BadRequest(msg),
        });
    }
    let first = futures::stream::iter(
        (!rest.is_empty()).then(|| Ok::<Bytes, std::io::Error>(Bytes::from(rest))),
    );
    let tail = futures::stream::unfold(s, |mut s| async move {
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
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/plain")
        .body(Body::from_stream(first.chain(tail)))
        .expect("valid response"))
}

/// `pods/{p}/exec` (its own route, because it needs the connection upgrade).
pub async fn exec(
    State(app): State<App>,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(ws) = ws else {
        return ApiError::BadRequest("exec needs a WebSocket upgrade (v5.channel.k8s.io or v4.channel.k8s.io); SPDY is not supported".into()).into_response();
    };
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
                tracing::warn!(namespace = %namespace, pod = %name, "exec: {e}");
            }
        })
}

async fn relay(
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
    // the session ends when the kubelet's side ends (after the exit status)
    tokio::select! {
        _ = down => {}
        _ = async { up.await; std::future::pending::<()>().await } => {}
    }
    Ok(())
}
