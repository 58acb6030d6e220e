//! Containers: the runtime's CRI-like surface, one file per operation (as youki's
//! `container/container_start.rs`, `container_kill.rs`, ...). `create.rs` turns options and an
//! image into a `config.json` in the container's directory (nothing runs yet); `start.rs`
//! launches a shim that forks the container's init; `stop.rs` sends SIGTERM, waits the grace
//! period, then SIGKILLs, and removes; `inspect.rs` reads the configuration, the live kernel
//! state and the log back. The state (`state.json`, written by the shim) is the only truth
//! between processes, so any later CLI call can adopt the container. Sandboxes (pods,
//! `sandbox.rs`) pin shared net/ipc/uts namespaces and own the pod cgroup.
//! The records these operations share (spec, state, the name index, cleanup) are below the
//! shim, in `spec.rs`, `state.rs` and `store/`. Read next: `create.rs`, then `start.rs`.

mod command;
mod create;
pub mod explain;
mod inspect;
mod sandbox;
mod start;
mod stop;
mod update;

use std::fs;
use std::io::{BufRead, BufReader};

use super::cgroups::CpuQuota;
use super::shim::StatusMessage;

pub use super::error::ContainerError;
pub use super::spec::ContainerSpec;
pub use super::state::{State, Status};
pub use super::wait::alive;
pub use create::parse_volume;
pub use inspect::{
    process_view, CgroupView, KernelView, LimitFile, MountView, NamespaceView, ProcessView,
    RootfsView, SandboxView, UpperEntry, UpperKind,
};
pub use sandbox::{DnsConfig, Sandbox, SandboxOptions};
pub use update::ResourceUpdate;

/// Options of `run`/`create`, as the CLI or the kubelet gives them.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub name: Option<String>,
    pub image: String,
    /// Replaces the image's Cmd (and keeps its Entrypoint), like `docker run IMAGE CMD...`.
    pub command: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<String>,
    pub volumes: Vec<String>,
    pub hostname: Option<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    /// CPU limit as a CFS quota and period (Docker's `--cpus`, Kubernetes' `limits.cpu`,
    /// converted by the caller).
    pub cpu_quota: Option<CpuQuota>,
    /// Relative CPU weight as v1 shares, 2..262144 (Kubernetes derives it from
    /// `requests.cpu`).
    pub cpu_shares: Option<u64>,
    /// Memory limit in bytes, at least 1 MiB.
    pub memory_bytes: Option<u64>,
    /// Maximum number of processes, at least 1.
    pub pids: Option<u64>,
    /// CPUs to run on, in the kernel's list format (`0-2,4`).
    pub cpuset: Option<String>,
    pub tty: bool,
    pub sandbox: Option<String>,
    pub readonly: bool,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub no_new_privs: bool,
    /// The seccomp filter (ignored when privileged, as Docker does).
    pub seccomp: super::seccomp::Policy,
    pub auto_remove: bool,
    pub wait_for_start: bool,
    /// Isolation switched off to show what it does (the labs' `--chroot`, `--no-proc-virt`).
    pub teaching: TeachingSwitches,
    /// PID 1 is a reaper of ours and the command its child (Docker's `--init`, `reaper.rs`).
    pub init: bool,
}

/// Switches that undo one isolation each, for the labs: the student sees the problem the
/// runtime's default solves. Both off by default, and the kubelet never sets them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TeachingSwitches {
    /// Enter the root with chroot(2), not pivot_root(2): the host's root stays in the mount
    /// namespace, and a process with CAP_SYS_CHROOT can climb back out (`rootfs.rs`).
    pub chroot: bool,
    /// No generated `/proc/meminfo` and `/proc/cpuinfo` (`procfs.rs`): the host's figures.
    pub host_proc: bool,
}

/// How `start` connects to the container's stdio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// Output only to the log; `start` returns once the command runs.
    Detached,
    /// Output also to our stdout/stderr; stdin forwarded if `stdin`.
    Foreground { stdin: bool },
    /// OCI `create` (runc's "pass-through" mode): the init's stdin, stdout and stderr are our
    /// own descriptors, handed down through the shim, which keeps no copy; nothing is logged.
    PassThrough,
}

/// What a started container reports back.
pub struct Started {
    pub pid: i32,
    /// Kept open in foreground mode: the shim reports [`StatusMessage::Exited`] here.
    status: Option<BufReader<fs::File>>,
}

impl Started {
    /// Wait for the exit line of a foreground container: (exit code, OOM killed).
    pub fn wait(mut self) -> Option<(i32, bool)> {
        let mut line = String::new();
        self.status.as_mut()?.read_line(&mut line).ok()?;
        match StatusMessage::decode(&line).ok()? {
            StatusMessage::Exited { code, oom_killed } => Some((code, oom_killed)),
            _ => None,
        }
    }
}
