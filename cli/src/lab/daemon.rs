//! The lab's processes. Each is started detached (its own process group, stdin closed,
//! output to a log file in the lab's state) so that it outlives `minikctl cluster up`, and is
//! recorded with its pid *and* its start time (`/proc/PID/stat` field 22): `down` signals a
//! pid only while that pair still matches, so a recycled pid is never signalled.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::{io_err, netns, LabError};

/// What a lab process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Etcd,
    Apiserver,
    Controller,
    Scheduler,
    Kubelet,
    /// A node's Service proxy (`minik8s-proxy`): its NAT rules for ClusterIPs and NodePorts.
    Proxy,
    /// A node's cluster DNS server (`minik8s-dns`), one endpoint of the `kube-dns` Service.
    Dns,
    /// The API relay from the root namespace (`forward.rs`).
    Forward,
}

impl Role {
    /// Whether it runs on a node, for one node (kubelet, proxy, DNS), rather than on the
    /// control plane or in the root namespace.
    pub fn is_per_node(self) -> bool {
        matches!(self, Role::Kubelet | Role::Proxy | Role::Dns)
    }

    /// The name `status` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Etcd => "etcd",
            Role::Apiserver => "apiserver",
            Role::Controller => "controller",
            Role::Scheduler => "scheduler",
            Role::Kubelet => "kubelet",
            Role::Proxy => "proxy",
            Role::Dns => "dns",
            Role::Forward => "forward",
        }
    }
}

/// A started process, as `lab.json` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Daemon {
    pub role: Role,
    /// The host it runs on (a node's name, the control plane's, or `root`).
    pub host: String,
    pub pid: u32,
    /// Clock ticks after boot at which it started (`/proc/PID/stat` field 22).
    pub start_time: u64,
    pub log: PathBuf,
    /// How it was started, so that it can be started again (`cluster node start`).
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub netns: Option<PathBuf>,
}

/// How to start a lab process.
pub struct Launch<'a> {
    pub role: Role,
    pub host: &'a str,
    pub program: &'a Path,
    pub args: Vec<OsString>,
    /// The namespace to start it in; None: this one.
    pub netns: Option<&'a Path>,
    pub log: PathBuf,
}

/// Start `launch` detached and record it.
pub fn start(launch: Launch<'_>) -> Result<Daemon, LabError> {
    let how = (
        launch.program.to_owned(),
        launch.args.clone(),
        launch.netns.map(Path::to_owned),
    );
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&launch.log)
        .map_err(io_err("open", &launch.log))?;
    let err = log.try_clone().map_err(io_err("open", &launch.log))?;
    let mut cmd = Command::new(launch.program);
    cmd.args(&launch.args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0);
    let child = match launch.netns {
        Some(ns) => netns::spawn_in(ns, cmd)?,
        None => cmd.spawn().map_err(|source| LabError::Spawn {
            what: launch.program.display().to_string(),
            source,
        })?,
    };
    let pid = child.id();
    // The child is not waited for: it outlives this process, and init reaps it.
    drop(child);
    let start_time = start_time(pid).ok_or_else(|| {
        LabError::Other(format!(
            "{} exited at once: see {}",
            launch.role.as_str(),
            launch.log.display()
        ))
    })?;
    Ok(Daemon {
        role: launch.role,
        host: launch.host.to_string(),
        pid,
        start_time,
        log: launch.log,
        program: how.0,
        args: how.1,
        netns: how.2,
    })
}

/// `/proc/PID/stat`: the state letter and the start time.
fn stat(pid: u32) -> Option<(char, u64)> {
    let raw = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name is in parentheses and may hold spaces: fields follow the last ')'
    let rest = &raw[raw.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let state = fields.first()?.chars().next()?;
    Some((state, fields.get(19)?.parse().ok()?))
}

fn start_time(pid: u32) -> Option<u64> {
    stat(pid).map(|(_, t)| t)
}

impl Daemon {
    /// Start it again as it was started the first time; the new record.
    pub fn restart(&self) -> Result<Daemon, LabError> {
        start(Launch {
            role: self.role,
            host: &self.host,
            program: &self.program,
            args: self.args.clone(),
            netns: self.netns.as_deref(),
            log: self.log.clone(),
        })
    }

    /// Whether the recorded process still runs (same pid, same start time, not a zombie).
    pub fn is_running(&self) -> bool {
        matches!(stat(self.pid), Some((state, t)) if t == self.start_time && state != 'Z' && state != 'X')
    }

    /// Send `sig` if the process is still the recorded one.
    pub fn signal(&self, sig: Signal) {
        if self.is_running() {
            let _ = kill(Pid::from_raw(self.pid as i32), sig);
        }
    }
}

/// Stop `daemons`: SIGTERM to every one still ours, up to `grace` for all to exit, then
/// SIGKILL for the rest and up to a second more.
pub fn stop_all(daemons: &[Daemon], grace: Duration) {
    for d in daemons {
        d.signal(Signal::SIGTERM);
    }
    if !wait_gone(daemons, grace) {
        for d in daemons {
            d.signal(Signal::SIGKILL);
        }
        wait_gone(daemons, Duration::from_secs(1));
    }
}

/// Wait until none of `daemons` runs; false on timeout.
fn wait_gone(daemons: &[Daemon], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !daemons.iter().any(Daemon::is_running) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_started_process_is_recorded_and_stopped_by_pid_and_start_time() {
        let dir = tempfile::tempdir().unwrap();
        let d = start(Launch {
            role: Role::Forward,
            host: "root",
            program: Path::new("sleep"),
            args: vec!["30".into()],
            netns: None,
            log: dir.path().join("sleep.log"),
        })
        .unwrap();
        assert!(d.is_running());
        let impostor = Daemon {
            start_time: d.start_time + 1,
            ..d.clone()
        };
        assert!(
            !impostor.is_running(),
            "another start time is another process"
        );
        stop_all(&[impostor], Duration::from_millis(50));
        assert!(d.is_running(), "an impostor record signals nothing");
        stop_all(std::slice::from_ref(&d), Duration::from_secs(2));
        assert!(!d.is_running());
    }
}
