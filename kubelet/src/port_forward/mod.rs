//! `kubectl port-forward`, the kubelet's end: `/portForward/{ns}/{pod}` of the kubelet API.
//! kubectl listens on a local port and, for each connection it accepts there, opens a pair of
//! SPDY streams on one session ([`spdy`]) with headers `streamType` (`error` or `data`),
//! `port` (the pod's port) and `requestID` (the pair's key). Once both streams of a pair have
//! come, the kubelet connects to the pod's port ([`dial`]) and copies bytes between it and the
//! data stream; a failure is written as text on the error stream, which kubectl prints as
//! `an error occurred forwarding L -> R: ...`. The kubelet closes the error stream after the
//! copy, and kubectl waits for that before closing its local connection.
//!
//! kubectl 1.31+ tunnels the SPDY session through a WebSocket (subprotocol
//! `SPDY/3.1+portforward.k8s.io`), which the apiserver relays here frame for frame
//! (`apiserver/src/handlers/port_forward.rs`); kube-apiserver instead turns it into an
//! `Upgrade: SPDY/3.1` request to the kubelet, the same bytes without the WebSocket framing.
//! Read `spdy.rs`, then `dial.rs`.

pub mod dial;
pub mod spdy;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::pod_worker::Context;
use dial::PodNetwork;
use spdy::{Frame, Reader, Writer};

/// The WebSocket subprotocol of the tunnelled SPDY session.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// How long the second stream of a pair may take to come (the kubelet's
/// `streamCreationTimeout`).
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The pod being forwarded to: its names for messages and where its ports are.
#[derive(Debug, Clone)]
pub struct Target {
    /// `name_namespace`, the kubelet's full name of a pod.
    pub pod: String,
    pub uid: String,
    pub network: PodNetwork,
}

/// `GET /portForward/{ns}/{pod}` with a WebSocket upgrade: find the pod on this node, then
/// serve the tunnelled SPDY session.
pub async fn handle(ctx: Arc<Context>, ns: String, name: String, ws: WebSocketUpgrade) -> Response {
    let target = match target(&ctx, &ns, &name).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    ws.protocols([TUNNEL_PROTOCOL])
        .on_upgrade(move |socket| async move {
            tracing::debug!(namespace = %ns, pod = %name, "port-forward session");
            serve_websocket(socket, target).await;
            tracing::debug!(namespace = %ns, pod = %name, "port-forward session ended");
        })
}

async fn target(ctx: &Arc<Context>, ns: &str, name: &str) -> Result<Target, Response> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let pod = match api.get_opt(name).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return Err(
                (StatusCode::NOT_FOUND, format!("pod {ns}/{name} not found")).into_response(),
            )
        }
        Err(e) => {
            return Err((
                StatusCode::BAD_GATEWAY,
                format!("looking up pod {ns}/{name}: {e}"),
            )
                .into_response())
        }
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let spec = pod.spec.unwrap_or_default();
    let ips = pod
        .status
        .and_then(|s| s.pod_ips)
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i.ip.parse().ok())
        .collect();
    let netns = if spec.host_network == Some(true) {
        None
    } else {
        let (rt, id) = (ctx.runtime.clone(), uid.clone());
        match tokio::task::spawn_blocking(move || rt.sandbox_status(&id)).await {
            Ok(Ok(s)) => Some(s.netns),
            _ => {
                return Err((
                    StatusCode::NOT_FOUND,
                    format!("pod {ns}/{name} has no sandbox on this node"),
                )
                    .into_response())
            }
        }
    };
    Ok(Target {
        pod: format!("{name}_{ns}"),
        uid,
        network: PodNetwork { netns, ips },
    })
}

/// Unwrap the tunnel: binary messages in, a byte stream for the SPDY session; its bytes out
/// as binary messages.
async fn serve_websocket(socket: WebSocket, target: Target) {
    let (session_end, tunnel_end) = tokio::io::duplex(64 * 1024);
    let (mut from_session, mut to_session) = tokio::io::split(tunnel_end);
    let (mut ws_tx, mut ws_rx) = socket.split();
    let inbound = async move {
        while let Some(Ok(m)) = ws_rx.next().await {
            let b = match m {
                Message::Binary(b) => b,
                Message::Close(_) => break,
                _ => continue,
            };
            if to_session.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = to_session.shutdown().await;
    };
    let outbound = async move {
        let mut buf = vec![0u8; 32 * 1024];
        while let Ok(n @ 1..) = from_session.read(&mut buf).await {
            let m = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
            if ws_tx.send(m).await.is_err() {
                return;
            }
        }
        let close = CloseFrame {
            code: 1000,
            reason: "".into(),
        };
        let _ = ws_tx.send(Message::Close(Some(close))).await;
    };
    let inbound = tokio::spawn(inbound);
    let outbound = tokio::spawn(outbound);
    serve(session_end, Arc::new(target)).await;
    let _ = outbound.await;
    inbound.abort();
}

/// A pair of streams of one forwarded connection, as they come in.
struct Pair {
    error: Option<u32>,
    /// The data stream, its port and the client's bytes on it.
    data: Option<(u32, u16, mpsc::Receiver<Bytes>)>,
    since: Instant,
}

/// The stream headers kubectl sends: (streamType, port, requestID).
fn stream_headers(
    headers: &spdy::Headers,
    stream_id: u32,
) -> Result<(String, u16, String), String> {
    let get = |k: &str| {
        headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    let port = get("port").ok_or("\"port\" header is required")?;
    let port: u16 = port
        .parse()
        .map_err(|e| format!("unable to parse {port:?} as a port: {e}"))?;
    if port < 1 {
        return Err(format!("port \"{port}\" must be > 0"));
    }
    let kind = get("streamtype").ok_or("\"streamType\" header is required")?;
    if kind != "error" && kind != "data" {
        return Err(format!("invalid stream type {kind:?}"));
    }
    // older clients send no requestID: the pair's streams are consecutive odd ids
    let request = match get("requestid") {
        Some(r) if !r.is_empty() => r.to_string(),
        _ if kind == "error" => stream_id.to_string(),
        _ => stream_id.saturating_sub(2).to_string(),
    };
    Ok((kind.to_string(), port, request))
}

/// Serve one SPDY session on `io` until the client goes away.
pub async fn serve<IO>(io: IO, target: Arc<Target>)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(io);
    let (out, mut out_rx) = mpsc::channel::<Frame>(64);
    let writer = tokio::spawn(async move {
        let Ok(mut w) = Writer::new(wr) else { return };
        while let Some(f) = out_rx.recv().await {
            if let Err(e) = w.send(&f).await {
                tracing::debug!(error = %e, "port-forward: writing to the client");
                break;
            }
        }
        let _ = w.shutdown().await;
    });
    // the reader runs on its own: a frame read half-way must not be dropped by the select below
    let (frames_tx, mut frames) = mpsc::channel::<Frame>(16);
    let reader = tokio::spawn(async move {
        let mut reader = Reader::new(rd);
        loop {
            match reader.next().await {
                Ok(Some(f)) => {
                    if frames_tx.send(f).await.is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "port-forward: reading from the client");
                    break;
                }
            }
        }
    });
    let mut inbound: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let mut forwards = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        let frame = tokio::select! {
            f = frames.recv() => f,
            _ = tick.tick() => {
                expire(&mut pairs, &out).await;
                continue;
            }
        };
        let Some(frame) = frame else { break };
        match frame {
            Frame::SynStream {
                stream_id,
                fin,
                headers,
            } => {
                let (kind, port, request) = match stream_headers(&headers, stream_id) {
                    Ok(h) => h,
                    Err(e) => {
                        tracing::debug!(stream_id, error = %e, "port-forward: stream refused");
                        let rst = Frame::RstStream {
                            stream_id,
                            status: spdy::PROTOCOL_ERROR,
                        };
                        let _ = out.send(rst).await;
                        continue;
                    }
                };
                let reply = Frame::SynReply {
                    stream_id,
                    fin: false,
                    headers: vec![],
                };
                let _ = out.send(reply).await;
                let pair = pairs.entry(request.clone()).or_insert_with(|| Pair {
                    error: None,
                    data: None,
                    since: Instant::now(),
                });
                let dup = if kind == "error" {
                    pair.error.replace(stream_id).is_some()
                } else {
                    let (tx, rx) = mpsc::channel(16);
                    if !fin {
                        inbound.insert(stream_id, tx);
                    }
                    pair.data.replace((stream_id, port, rx)).is_some()
                };
                if dup {
                    let msg = format!(
                        "error processing stream for request {request}: {kind} stream already assigned"
                    );
                    if let Some(e) = pair.error {
                        let _ = out.send(data(e, msg.into_bytes().into(), false)).await;
                    }
                    continue;
                }
                if pair.error.is_some() && pair.data.is_some() {
                    let p = pairs.remove(&request).expect("the pair is there");
                    let (Some(error), Some((data_id, port, rx))) = (p.error, p.data) else {
                        continue;
                    };
                    let (target, out) = (target.clone(), out.clone());
                    forwards.spawn(forward(target, port, error, data_id, rx, out));
                }
            }
            Frame::Data {
                stream_id,
                fin,
                data,
            } => {
                if let Some(tx) = inbound.get(&stream_id) {
                    if !data.is_empty() {
                        let _ = tx.send(data).await;
                    }
                }
                if fin {
                    inbound.remove(&stream_id);
                }
            }
            Frame::RstStream { stream_id, .. } => {
                inbound.remove(&stream_id);
            }
            Frame::Ping { id } => {
                let _ = out.send(Frame::Ping { id }).await;
            }
            Frame::GoAway { .. } => break,
            Frame::SynReply { .. } | Frame::Ignored { .. } => {}
        }
    }
    // the client is gone: stop every forward, then the writer
    reader.abort();
    forwards.shutdown().await;
    drop(out);
    let _ = writer.await;
}

fn data(stream_id: u32, data: Bytes, fin: bool) -> Frame {
    Frame::Data {
        stream_id,
        fin,
        data,
    }
}

/// Pairs whose second stream never came: say so on the error stream and drop them.
async fn expire(pairs: &mut HashMap<String, Pair>, out: &mpsc::Sender<Frame>) {
    let stale: Vec<String> = pairs
        .iter()
        .filter(|(_, p)| p.since.elapsed() > STREAM_CREATION_TIMEOUT)
        .map(|(k, _)| k.clone())
        .collect();
    for k in stale {
        let Some(p) = pairs.remove(&k) else { continue };
        if let Some(e) = p.error {
            let msg = format!("(request={k}) timed out waiting for streams");
            let _ = out.send(data(e, msg.into_bytes().into(), true)).await;
        }
        if let Some((d, _, _)) = p.data {
            let _ = out.send(data(d, Bytes::new(), true)).await;
        }
    }
}

/// One forwarded connection: dial the pod's port, copy both ways, close both streams.
async fn forward(
    target: Arc<Target>,
    port: u16,
    error: u32,
    data_id: u32,
    mut from_client: mpsc::Receiver<Bytes>,
    out: mpsc::Sender<Frame>,
) {
    match dial::connect(&target.network, port).await {
        Err(e) => {
            let msg = format!(
                "error forwarding port {port} to pod {}, uid {}: {e}",
                target.pod, target.uid
            );
            tracing::info!(pod = %target.pod, port, error = %e, "port-forward failed");
            let _ = out.send(data(error, msg.into_bytes().into(), false)).await;
        }
        Ok(conn) => {
            let (mut pod_rd, mut pod_wr) = conn.into_split();
            let up = async move {
                while let Some(b) = from_client.recv().await {
                    if pod_wr.write_all(&b).await.is_err() {
                        break;
                    }
                }
                // the client closed its half: so does the pod's socket
                let _ = pod_wr.shutdown().await;
            };
            let down = {
                let out = out.clone();
                async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    while let Ok(n @ 1..) = pod_rd.read(&mut buf).await {
                        let chunk = Bytes::copy_from_slice(&buf[..n]);
                        if out.send(data(data_id, chunk, false)).await.is_err() {
                            break;
                        }
                    }
                }
            };
            tokio::pin!(up, down);
            // the pod's end closing ends the forward (what the client still sends is moot);
            // the client closing its half first leaves the pod's answer to be read to its end
            tokio::select! {
                _ = &mut down => {}
                _ = &mut up => down.await,
            }
        }
    }
    let _ = out.send(data(data_id, Bytes::new(), true)).await;
    let _ = out.send(data(error, Bytes::new(), true)).await;
}
