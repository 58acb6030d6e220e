//! Probes: liveness (restart when it fails), readiness (gates Ready) and startup (holds the
//! other two until it succeeds). Each runs every `periodSeconds` after
//! `initialDelaySeconds`, flips after `failureThreshold`/`successThreshold` results. `exec`
//! runs the command in the container. `tcpSocket`/`httpGet` connect, like the real kubelet's,
//! from the node to the pod's IP when the pod is on the pod network; a pod with loopback only
//! is probed from inside its network namespace (127.0.0.1). Exec and namespace probes go
//! through a single-threaded helper process (our own binary), because entering namespaces
//! from the threaded kubelet is not possible.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Probe;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::cri::{self, ContainerRuntime};

/// The three kinds of probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// Holds the other two until it succeeds; failing, it restarts the container.
    Startup,
    /// Failing, it restarts the container.
    Liveness,
    /// Gates the container's (and so the pod's) Ready condition; never restarts.
    Readiness,
}

impl ProbeKind {
    /// Does a failure verdict of this probe stop the container?
    pub fn kills(self) -> bool {
        self != Self::Readiness
    }
}

impl std::fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Startup => "Startup",
            Self::Liveness => "Liveness",
            Self::Readiness => "Readiness",
        })
    }
}

/// Counters of one probe of one container.
#[derive(Debug, Clone, Default)]
pub struct ProbeState {
    pub successes: i32,
    pub failures: i32,
    pub last_run: Option<Instant>,
    /// Current verdict (None until the first threshold is reached).
    pub result: Option<bool>,
}

/// Probe states of one running container (keyed by runtime id in the worker).
#[derive(Debug, Clone)]
pub struct ContainerProbes {
    pub started_at: Instant,
    pub liveness: ProbeState,
    pub readiness: ProbeState,
    pub startup: ProbeState,
}

impl ContainerProbes {
    pub fn new() -> Self {
        Self {
            started_at: Instant::now(),
            liveness: Default::default(),
            readiness: Default::default(),
            startup: Default::default(),
        }
    }
}

impl ContainerProbes {
    /// The counters of the probe of `kind`.
    pub fn state_mut(&mut self, kind: ProbeKind) -> &mut ProbeState {
        match kind {
            ProbeKind::Startup => &mut self.startup,
            ProbeKind::Liveness => &mut self.liveness,
            ProbeKind::Readiness => &mut self.readiness,
        }
    }
}

impl Default for ContainerProbes {
    fn default() -> Self {
        Self::new()
    }
}

fn secs(v: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(v.unwrap_or(default).max(0) as u64)
}

/// When the probe is next due (None: due now).
pub fn next_due(p: &Probe, st: &ProbeState, started_at: Instant) -> Instant {
    match st.last_run {
        None => started_at + secs(p.initial_delay_seconds, 0),
        Some(t) => t + secs(p.period_seconds, 10).max(Duration::from_secs(1)),
    }
}

/// Record one result; returns the verdict when it changed.
pub fn record(p: &Probe, st: &mut ProbeState, ok: bool) -> Option<bool> {
    st.last_run = Some(Instant::now());
    if ok {
        st.successes += 1;
        st.failures = 0;
    } else {
        st.failures += 1;
        st.successes = 0;
    }
    let verdict = if ok && st.successes >= p.success_threshold.unwrap_or(1) {
        Some(true)
    } else if !ok && st.failures >= p.failure_threshold.unwrap_or(3) {
        Some(false)
    } else {
        None
    };
    match verdict {
        Some(v) if st.result != Some(v) => {
            st.result = Some(v);
            Some(v)
        }
        _ => None,
    }
}

fn port(p: &IntOrString) -> Option<u16> {
    match p {
        IntOrString::Int(i) => u16::try_from(*i).ok(),
        IntOrString::String(s) => s.parse().ok(),
    }
}

/// Run `probe` against container `id` of the pod whose sandbox is `sandbox` and whose address
/// on the pod network is `pod_ip`; (ok, message).
pub fn run(
    rt: &dyn ContainerRuntime,
    id: &str,
    sandbox: &str,
    pod_ip: Option<std::net::Ipv4Addr>,
    probe: &Probe,
) -> (bool, String) {
    let timeout = secs(probe.timeout_seconds, 1).max(Duration::from_secs(1));
    if let Some(ip) = pod_ip.filter(|_| probe.exec.is_none()) {
        let (kind, port, path) = match (&probe.tcp_socket, &probe.http_get) {
            (Some(t), _) => ("tcp", port(&t.port), "/"),
            (None, Some(h)) => ("http", port(&h.port), h.path.as_deref().unwrap_or("/")),
            (None, None) => {
                return (
                    false,
                    "probe has no handler (exec, httpGet or tcpSocket)".into(),
                )
            }
        };
        let Some(port) = port else {
            return (false, "named ports are not supported".into());
        };
        let addr = std::net::SocketAddr::from((ip, port));
        return match check(addr, kind, path, timeout) {
            Ok(()) => (true, String::new()),
            Err(e) => (false, e),
        };
    }
    if let Some(e) = &probe.exec {
        let command = e.command.clone().unwrap_or_default();
        let out = rt.exec_sync(id, &command, timeout);
        return (out.success, out.output);
    }
    let mut cmd = rt.helper_command();
    if let Some(t) = &probe.tcp_socket {
        let Some(p) = port(&t.port) else {
            return (false, "named ports are not supported".into());
        };
        cmd.arg("netns-probe")
            .arg(sandbox)
            .arg("tcp")
            .arg(p.to_string());
    } else if let Some(h) = &probe.http_get {
        let Some(p) = port(&h.port) else {
            return (false, "named ports are not supported".into());
        };
        cmd.arg("netns-probe")
            .arg(sandbox)
            .arg("http")
            .arg(p.to_string())
            .arg(h.path.as_deref().unwrap_or("/"));
    } else {
        return (
            false,
            "probe has no handler (exec, httpGet or tcpSocket)".into(),
        );
    }
    let out = cri::run_with_timeout(cmd, timeout);
    (out.success, out.output)
}

/// The helper's side of tcp/http probes: enter the sandbox's network namespace (we are
/// single-threaded here) and connect to 127.0.0.1:port; http wants a 2xx/3xx answer.
pub fn netns_probe_main(
    runtime_root: &Path,
    sandbox: &str,
    kind: &str,
    port: u16,
    path: &str,
) -> i32 {
    let ns = runtime::state_dir_for(runtime_root)
        .join("sandboxes")
        .join(sandbox)
        .join("net");
    let f = match std::fs::File::open(&ns) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("open {}: {e}", ns.display());
            return 2;
        }
    };
    if let Err(e) = nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET) {
        eprintln!("setns: {e}");
        return 2;
    }
    match check(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        kind,
        path,
        Duration::from_secs(5),
    ) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// Connect to `addr`; for `http`, GET `path` and want a 2xx/3xx answer.
fn check(
    addr: std::net::SocketAddr,
    kind: &str,
    path: &str,
    timeout: Duration,
) -> Result<(), String> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("dial tcp {addr}: {e}"))?;
    if kind != "http" {
        return Ok(());
    }
    let _ = s.set_read_timeout(Some(timeout));
    let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.32\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    let line = String::from_utf8_lossy(&buf[..n]);
    let code: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {code}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        let p = Probe {
            failure_threshold: Some(2),
            success_threshold: Some(1),
            ..Default::default()
        };
        let mut st = ProbeState::default();
        assert_eq!(record(&p, &mut st, true), Some(true));
        assert_eq!(record(&p, &mut st, false), None);
        assert_eq!(record(&p, &mut st, false), Some(false));
        assert_eq!(record(&p, &mut st, false), None);
        assert_eq!(record(&p, &mut st, true), Some(true));
    }
}
