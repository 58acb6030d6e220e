//! Connecting to a pod's port for port-forward, as containerd's CRI `PortForward` does: inside
//! the pod's network namespace, to `localhost:port` (IPv4, then IPv6), which also reaches a
//! server bound to 127.0.0.1 only; when that fails and the pod has addresses on the pod
//! network, from the node to `podIP:port` (a server bound to its pod IP only). A
//! `hostNetwork` pod's localhost is the node's.
//!
//! Entering a namespace changes the calling thread only (setns(2)), so the in-namespace dial
//! runs on a short-lived OS thread of its own, never on a tokio worker (which would stay in the
//! pod's namespace for every task after it); the connected socket keeps the namespace it was
//! made in and is handed to tokio.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::TcpStream;

/// How long one connection attempt may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a pod's ports are.
#[derive(Debug, Clone)]
pub struct PodNetwork {
    /// The sandbox's pinned network namespace; None for a `hostNetwork` pod.
    pub netns: Option<PathBuf>,
    /// `status.podIPs`: the fallback dial targets.
    pub ips: Vec<IpAddr>,
}

/// Connect to `port` of the pod; the error is worded as containerd's, for the error stream.
pub async fn connect(net: &PodNetwork, port: u16) -> Result<TcpStream, String> {
    let (path, local) = match &net.netns {
        None => ("host".to_string(), dial_localhost_here(port).await),
        Some(ns) => (ns.display().to_string(), dial_localhost_in(ns, port).await),
    };
    let err = match local {
        Ok(s) => return Ok(s),
        Err(e) => e,
    };
    let err = if net.ips.is_empty() {
        err
    } else {
        tracing::debug!(port, error = %err, "localhost unreachable, dialling the pod IPs");
        let mut errs = Vec::new();
        for ip in &net.ips {
            match dial(SocketAddr::new(*ip, port)).await {
                Ok(s) => return Ok(s),
                Err(e) => errs.push(e),
            }
        }
        errs.join("\n")
    };
    Err(format!(
        "failed to execute portforward in network namespace {path:?}: {err}"
    ))
}

async fn dial(addr: SocketAddr) -> Result<TcpStream, String> {
    match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(dial_error("tcp", addr, &e)),
        Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
    }
}

/// localhost of the node (a `hostNetwork` pod).
async fn dial_localhost_here(port: u16) -> Result<TcpStream, String> {
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let e4 = match dial(v4).await {
        Ok(s) => return Ok(s),
        Err(e) => e.replacen("dial tcp ", "dial tcp4 ", 1),
    };
    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
    match dial(v6).await {
        Ok(s) => Ok(s),
        Err(e6) => Err(format!(
            "IPv4: {e4} IPv6: {}",
            e6.replacen("dial tcp ", "dial tcp6 ", 1)
        )),
    }
}

/// localhost inside the network namespace `netns`, on a thread of its own.
async fn dial_localhost_in(netns: &Path, port: u16) -> Result<TcpStream, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let path = netns.to_path_buf();
    std::thread::Builder::new()
        .name("portforward-dial".into())
        .spawn(move || {
            let _ = tx.send(dial_localhost_in_thread(&path, port));
        })
        .map_err(|e| format!("starting the dialling thread: {e}"))?;
    let std_stream = rx
        .await
        .map_err(|_| "the dialling thread died".to_string())??;
    std_stream
        .set_nonblocking(true)
        .and_then(|()| TcpStream::from_std(std_stream))
        .map_err(|e| e.to_string())
}

/// The thread's work: setns(2) into `netns`, then connect to 127.0.0.1, else ::1. The thread
/// ends right after, taking the namespace change with it.
fn dial_localhost_in_thread(netns: &Path, port: u16) -> Result<std::net::TcpStream, String> {
    let file = std::fs::File::open(netns).map_err(|e| format!("open {}: {e}", netns.display()))?;
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|errno| {
        tracing::debug!(?netns, ?errno, "setns failed");
        format!("setns {}: {errno}", netns.display())
    })?;
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let e4 = match std::net::TcpStream::connect_timeout(&v4, DIAL_TIMEOUT) {
        Ok(s) => return Ok(s),
        Err(e) => dial_error("tcp4", v4, &e),
    };
    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
    std::net::TcpStream::connect_timeout(&v6, DIAL_TIMEOUT)
        .map_err(|e| format!("IPv4: {e4} IPv6: {}", dial_error("tcp6", v6, &e)))
}

/// Go's wording of a failed dial: `dial tcp4 127.0.0.1:80: connect: connection refused`.
fn dial_error(net: &str, addr: SocketAddr, e: &std::io::Error) -> String {
    let why = match e.raw_os_error() {
        Some(code) => {
            let desc = nix::errno::Errno::from_raw(code).desc();
            format!("connect: {}", lowercase_first(desc))
        }
        None if e.kind() == std::io::ErrorKind::TimedOut => "i/o timeout".to_string(),
        None => e.to_string(),
    };
    format!("dial {net} {addr}: {why}")
}

fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}
