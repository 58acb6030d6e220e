//! The kubelet's own HTTPS API (what the apiserver proxies `kubectl logs`/`exec` to):
//! `/containerLogs/{ns}/{pod}/{container}` (follow, tailLines, sinceSeconds, timestamps,
//! previous), `/exec/{ns}/{pod}/{container}` (WebSocket, `v5`/`v4.channel.k8s.io`: channel 0
//! stdin, 1 stdout, 2 stderr, 3 error/exit status, 4 resize, 255 close),
//! `/portForward/{ns}/{pod}` (kubectl's SPDY session tunnelled in a WebSocket,
//! [`crate::port_forward`]), `/metrics`,
//! `/stats/summary`, `/inspect/{ns}/{pod}` and `/inspect/node` (the pod down to the kernel,
//! [`crate::inspect`]) and an unauthenticated `/healthz`. Every other request must
//! authenticate or gets 401: with `--client-ca-file`, the handshake requests (does not
//! require) a client certificate, and one chaining to that CA (the apiserver's
//! `apiserver-kubelet-client.crt`) authenticates its holder, a certificate of another CA
//! ending the handshake; otherwise `Authorization: Bearer <token>` (the token the apiserver
//! holds). TLS only, with the certificate of [`crate::serving_cert`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use runtime::logs;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::agent::inventory;
use crate::cri::Status;
use crate::pod_worker::Context;

#[derive(Clone)]
struct AppState {
    ctx: Arc<Context>,
    token: Option<Arc<str>>,
}

/// The CN of the connection's client certificate, if it sent one. A connection's `TlsInfo`
/// (recorded by axum-server) holds a peer certificate only when the handshake requested one
/// with `--client-ca-file` and verified it against that CA, so one here authenticates.
fn client_cert_cn(req: &Request) -> Option<String> {
    let tls = req.extensions().get::<Arc<axum_server::tls::TlsInfo>>()?;
    let leaf = tls.peer_certificates.first()?;
    Some(client::pki::identity_of(leaf).map_or_else(|_| String::new(), |id| id.user))
}

async fn auth(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(cn) = client_cert_cn(&req) {
        tracing::debug!(user = %cn, path = %req.uri().path(), "kubelet API: client certificate");
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match (&s.token, presented) {
        (Some(t), Some(p)) if constant_time_eq(t.as_bytes(), p.as_bytes()) => next.run(req).await,
        _ => (StatusCode::UNAUTHORIZED, "Unauthorized\n").into_response(),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn query_pairs(q: &Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn error(code: StatusCode, msg: String) -> Response {
    (code, msg).into_response()
}

/// Runtime id of the pod's container (latest attempt, or the one before with `previous`).
async fn find_container(
    ctx: &Arc<Context>,
    ns: &str,
    pod: &str,
    container: &str,
    previous: bool,
) -> Result<String, Response> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let p = match api.get_opt(pod).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return Err(error(
                StatusCode::NOT_FOUND,
                format!("pod {ns}/{pod} not found"),
            ))
        }
        Err(e) => {
            return Err(error(
                StatusCode::BAD_GATEWAY,
                format!("looking up pod {ns}/{pod}: {e}"),
            ))
        }
    };
    let uid = p.metadata.uid.clone().unwrap_or_default();
    let c = ctx.clone();
    let mut records: Vec<_> = tokio::task::spawn_blocking(move || {
        inventory(c.runtime.as_ref())
            .remove(&uid)
            .unwrap_or_default()
    })
    .await
    .unwrap_or_default();
    records.retain(|r| r.container == container);
    records.sort_by_key(|r| std::cmp::Reverse(r.attempt));
    match records.get(usize::from(previous)) {
        Some(r) => Ok(r.id.clone()),
        None if previous => Err(error(
            StatusCode::BAD_REQUEST,
            format!("previous terminated container {container:?} in pod {pod:?} not found"),
        )),
        None => Err(error(
            StatusCode::BAD_REQUEST,
            format!("container {container:?} in pod {pod:?} is not available"),
        )),
    }
}

/// Complete log lines from `offset`: (time, text) with partial records joined; new offset.
fn read_records(path: &std::path::Path, offset: u64) -> (Vec<(String, String)>, u64) {
    use std::io::{Read, Seek};
    let Ok(mut f) = std::fs::File::open(path) else {
        return (Vec::new(), offset);
    };
    let _ = f.seek(std::io::SeekFrom::Start(offset));
    let mut buf = String::new();
    let _ = f.read_to_string(&mut buf);
    let complete = buf.rfind('\n').map_or(0, |i| i + 1);
    let mut out = Vec::new();
    let mut partial = String::new();
    let mut consumed = 0;
    let mut pos = 0;
    for line in buf[..complete].split_inclusive('\n') {
        pos += line.len();
        if let Some(r) = logs::parse(line.trim_end_matches('\n')) {
            partial.push_str(r.text);
            if !r.partial {
                out.push((r.time.to_string(), std::mem::take(&mut partial)));
                consumed = pos;
            }
        }
    }
    (out, offset + consumed as u64)
}

async fn container_logs(
    State(s): State<AppState>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
) -> Response {
    let q: HashMap<String, String> = query_pairs(&q).into_iter().collect();
    let flag = |k: &str| q.get(k).is_some_and(|v| v == "true" || v == "1");
    let id = match find_container(&s.ctx, &ns, &pod, &container, flag("previous")).await {
        Ok(id) => id,
        Err(r) => return r,
    };
    let rt = s.ctx.runtime.clone();
    let Ok(info) = rt.container_info(&id) else {
        return error(StatusCode::NOT_FOUND, "container is gone".into());
    };
    let (follow, timestamps) = (flag("follow"), flag("timestamps"));
    let tail: Option<usize> = q.get("tailLines").and_then(|v| v.parse().ok());
    let since = q
        .get("sinceSeconds")
        .and_then(|v| v.parse::<i64>().ok())
        .map(|s| jiff::Timestamp::now() - jiff::SignedDuration::from_secs(s));
    let render = move |lines: Vec<(String, String)>| -> Bytes {
        let mut out = String::new();
        for (t, text) in lines {
            if since.is_some_and(|s| t.parse::<jiff::Timestamp>().is_ok_and(|ts| ts < s)) {
                continue;
            }
            if timestamps {
                out.push_str(&t);
                out.push(' ');
            }
            out.push_str(&text);
            out.push('\n');
        }
        Bytes::from(out)
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        let path = info.log_path.clone();
        let (mut lines, mut offset) = read_records(&path, 0);
        if let Some(n) = tail {
            lines.drain(..lines.len().saturating_sub(n));
        }
        if tx.send(Ok(render(lines))).await.is_err() || !follow {
            return;
        }
        loop {
            let stopped = rt
                .container_state(&id)
                .map(|s| s.status == Status::Stopped)
                .unwrap_or(true);
            let (lines, next) = read_records(&path, offset);
            offset = next;
            if !lines.is_empty() && tx.send(Ok(render(lines))).await.is_err() {
                return;
            }
            if stopped {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    Response::builder()
        .header("content-type", "text/plain")
        .body(Body::from_stream(stream))
        .expect("valid response")
}

async fn exec(
    State(s): State<AppState>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    let pairs = query_pairs(&q);
    let command: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    let flag = |k: &str| {
        pairs
            .iter()
            .any(|(n, v)| n == k && (v == "true" || v == "1"))
    };
    let (stdin, tty) = (flag("stdin"), flag("tty"));
    if command.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "you must specify at least one command for the container".into(),
        );
    }
    let id = match find_container(&s.ctx, &ns, &pod, &container, false).await {
        Ok(id) => id,
        Err(r) => return r,
    };
    let ctx = s.ctx.clone();
    ws.protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"])
        .on_upgrade(move |socket| async move {
            if let Err(e) = run_exec(socket, ctx, id, command, stdin, tty).await {
                tracing::warn!(namespace = %ns, pod = %pod, error = %e, "exec");
            }
        })
}

/// The status the error channel carries when the command ended.
pub fn exit_status(code: i32) -> serde_json::Value {
    if code == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({"metadata": {}, "status": "Failure", "message": format!("command terminated with non-zero exit code: exit status {code}"),
               "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
    }
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(v.into())
}

fn set_winsize(fd: i32, width: u16, height: u16) {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct we own.
    unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) };
}

type Reader = Box<dyn tokio::io::AsyncRead + Unpin + Send>;
type Writer = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;

/// An exec'd process and its ends: output readers by stream channel (1 stdout, 2 stderr; one
/// pty for both with a tty), its stdin, and the pty master (for resizes).
struct ExecProcess {
    child: tokio::process::Child,
    readers: Vec<(u8, Reader)>,
    stdin: Option<Writer>,
    master_fd: Option<std::os::fd::RawFd>,
}

/// Spawns `cmd` on a new pseudo-terminal, as its session leader with the pty as its
/// controlling terminal (so ^C reaches it as SIGINT).
fn spawn_with_tty(mut cmd: tokio::process::Command) -> anyhow::Result<ExecProcess> {
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::process::Stdio;
    let pty = nix::pty::openpty(None, None)?;
    let slave: OwnedFd = pty.slave;
    cmd.stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave));
    // SAFETY: setsid and TIOCSCTTY on fd 0 are async-signal-safe syscalls.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    let master_fd = Some(pty.master.as_raw_fd());
    let read_half = tokio::fs::File::from_std(std::fs::File::from(pty.master.try_clone()?));
    let write_half = tokio::fs::File::from_std(std::fs::File::from(pty.master));
    Ok(ExecProcess {
        child,
        readers: vec![(1, Box::new(read_half))],
        stdin: Some(Box::new(write_half)),
        master_fd,
    })
}

/// Spawns `cmd` with pipes for stdout and stderr, and for stdin if the client sends one.
fn spawn_with_pipes(mut cmd: tokio::process::Command, stdin: bool) -> anyhow::Result<ExecProcess> {
    use std::process::Stdio;
    cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let stdin = child.stdin.take().map(|i| Box::new(i) as Writer);
    let readers: Vec<(u8, Reader)> = vec![
        (1, Box::new(child.stdout.take().expect("piped"))),
        (2, Box::new(child.stderr.take().expect("piped"))),
    ];
    Ok(ExecProcess {
        child,
        readers,
        stdin,
        master_fd: None,
    })
}

/// One task per output stream, each sending what it reads as frames of its channel.
fn pump_output(
    readers: Vec<(u8, Reader)>,
    out_tx: &tokio::sync::mpsc::Sender<Message>,
) -> Vec<tokio::task::JoinHandle<()>> {
    readers
        .into_iter()
        .map(|(ch, mut r)| {
            let tx = out_tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 32 * 1024];
                loop {
                    match r.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if tx.send(frame(ch, &buf[..n])).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            })
        })
        .collect()
}

/// The client's frames: channel 0 is stdin, 4 a terminal resize (`{"Width","Height"}`), and
/// 255 with stream 0 closes stdin (v5).
async fn handle_input(
    mut stream: futures::stream::SplitStream<WebSocket>,
    mut stdin: Option<Writer>,
    master_fd: Option<std::os::fd::RawFd>,
) {
    while let Some(Ok(m)) = stream.next().await {
        let data: Bytes = match m {
            Message::Binary(b) => b,
            Message::Text(t) => Bytes::copy_from_slice(t.as_bytes()),
            Message::Close(_) => break,
            _ => continue,
        };
        match data.first() {
            Some(0) => {
                if let Some(w) = stdin.as_mut() {
                    if w.write_all(&data[1..]).await.is_err() {
                        stdin = None;
                    } else {
                        let _ = w.flush().await;
                    }
                }
            }
            Some(4) => {
                if let (Some(fd), Ok(v)) = (
                    master_fd,
                    serde_json::from_slice::<serde_json::Value>(&data[1..]),
                ) {
                    set_winsize(
                        fd,
                        v["Width"].as_u64().unwrap_or(80) as u16,
                        v["Height"].as_u64().unwrap_or(24) as u16,
                    );
                }
            }
            Some(255) if data.get(1) == Some(&0) => {
                if let Some(mut w) = stdin.take() {
                    let _ = w.shutdown().await;
                }
            }
            _ => {}
        }
    }
}

/// Runs `command` in container `id` and relays it over the WebSocket: output frames while it
/// runs, then its exit status on channel 3 and a normal close.
async fn run_exec(
    socket: WebSocket,
    ctx: Arc<Context>,
    id: String,
    command: Vec<String>,
    stdin: bool,
    tty: bool,
) -> anyhow::Result<()> {
    let mut cmd = tokio::process::Command::from(ctx.runtime.exec_command(&id, &command));
    cmd.kill_on_drop(true);
    let mut process = if tty {
        spawn_with_tty(cmd)?
    } else {
        spawn_with_pipes(cmd, stdin)?
    };
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Message>(64);
    let pumps = pump_output(std::mem::take(&mut process.readers), &out_tx);
    let (mut sink, stream) = socket.split();
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let close = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || close {
                break;
            }
        }
    });
    let reader = tokio::spawn(handle_input(
        stream,
        process.stdin.take(),
        process.master_fd,
    ));
    let code = process.child.wait().await?.code().unwrap_or(1);
    for p in pumps {
        if tty {
            // the pty master never reports EOF while we hold it; give the output a moment
            let _ = tokio::time::timeout(Duration::from_millis(200), p).await;
        } else {
            let _ = p.await;
        }
    }
    let _ = out_tx
        .send(frame(3, exit_status(code).to_string().as_bytes()))
        .await;
    // a normal closure (1000): client-go treats a close without status as an error
    let _ = out_tx
        .send(Message::Close(Some(axum::extract::ws::CloseFrame {
            code: 1000,
            reason: "".into(),
        })))
        .await;
    drop(out_tx);
    let _ = writer.await;
    reader.abort();
    Ok(())
}

/// `GET /portForward/{ns}/{pod}`: [`crate::port_forward`].
async fn port_forward(
    State(s): State<AppState>,
    Path((ns, pod)): Path<(String, String)>,
    ws: WebSocketUpgrade,
) -> Response {
    crate::port_forward::handle(s.ctx.clone(), ns, pod, ws).await
}

async fn metrics(State(s): State<AppState>) -> String {
    s.ctx.metrics.render()
}

/// Node figures: running containers and their cgroup usage.
async fn stats_summary(State(s): State<AppState>) -> Response {
    let ctx = s.ctx.clone();
    let body = tokio::task::spawn_blocking(move || {
        let rt = &ctx.runtime;
        let containers: Vec<serde_json::Value> = rt
            .list_containers()
            .into_iter()
            .filter_map(|id| {
                let info = rt.container_info(&id).ok()?;
                let st = rt.container_state(&id).ok()?;
                if st.status != Status::Running {
                    return None;
                }
                let stats = rt.container_stats(&id).unwrap_or_default();
                Some(json!({"name": info.name, "cpu": {"usageCoreNanoSeconds": stats.cpu_usage_ns}, "memory": {"usageBytes": stats.memory_usage_bytes}}))
            })
            .collect();
        json!({"node": {"nodeName": ctx.node_name}, "containers": containers})
    })
    .await
    .unwrap_or_default();
    axum::Json(body).into_response()
}

/// `GET /inspect/{ns}/{pod}`: one of this node's pods down to the kernel; 404 for others.
async fn inspect_pod(
    State(s): State<AppState>,
    Path((ns, pod)): Path<(String, String)>,
) -> Response {
    match crate::inspect::pod(&s.ctx, &ns, &pod).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => {
            tracing::debug!(namespace = %ns, pod = %pod, error = %e, "inspect");
            error(e.status(), format!("{e}\n"))
        }
    }
}

/// `GET /inspect/node`: the node's pods and requests, the runtime's images.
async fn inspect_node(State(s): State<AppState>) -> Response {
    match crate::inspect::node(&s.ctx).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => error(e.status(), format!("{e}\n")),
    }
}

/// The router: `/healthz` open, everything else behind a client certificate or the bearer
/// token.
pub fn router(ctx: Arc<Context>, token: Option<String>) -> Router {
    let state = AppState {
        ctx,
        // an empty token file would let `Bearer ` with nothing after it in: it means no token
        token: token.filter(|t| !t.is_empty()).map(Into::into),
    };
    let protected = Router::new()
        .route("/metrics", get(metrics))
        .route("/stats/summary", get(stats_summary))
        .route("/containerLogs/{ns}/{pod}/{container}", get(container_logs))
        .route("/exec/{ns}/{pod}/{container}", get(exec).post(exec))
        .route("/portForward/{ns}/{pod}", get(port_forward))
        .route("/inspect/node", get(inspect_node))
        .route("/inspect/{ns}/{pod}", get(inspect_pod))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state);
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(protected)
}

/// The TLS settings: serve `cert`; with `client_ca_pem` (`--client-ca-file`), request a
/// client certificate and refuse one that does not chain to it.
pub fn tls_config(
    cert: &crate::serving_cert::ServingCert,
    client_ca_pem: Option<&[u8]>,
) -> std::io::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(&cert.cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(std::io::Error::other)?;
    let key = PrivateKeyDer::from_pem_slice(&cert.key_pem).map_err(std::io::Error::other)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?;
    let builder = match client_ca_pem {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in CertificateDer::pem_slice_iter(pem) {
                roots
                    .add(ca.map_err(std::io::Error::other)?)
                    .map_err(std::io::Error::other)?;
            }
            if roots.is_empty() {
                return Err(std::io::Error::other(
                    "--client-ca-file holds no certificate",
                ));
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .allow_unauthenticated()
                    .build()
                    .map_err(std::io::Error::other)?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(std::io::Error::other)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serve the kubelet API over HTTPS on `listener` with `tls` (see [`tls_config`]).
pub async fn serve(
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    ctx: Arc<Context>,
    token: Option<String>,
) -> std::io::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls = axum_server::tls_rustls::RustlsConfig::from_config(tls);
    listener.set_nonblocking(true)?;
    axum_server::from_tcp_rustls(listener, tls)?
        .serve(router(ctx, token).into_make_service())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_ca_is_requested_only_when_given_and_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let cert =
            crate::serving_cert::ServingCert::self_signed(dir.path(), &["n1".into()]).unwrap();
        assert!(tls_config(&cert, None).is_ok());
        let err = tls_config(&cert, Some(b"")).unwrap_err();
        assert!(err.to_string().contains("--client-ca-file"), "{err}");
        let config = tls_config(&cert, Some(&cert.cert_pem)).unwrap();
        assert!(config.alpn_protocols.contains(&b"h2".to_vec()));
    }
}
