//! The container runtime interface: what the kubelet asks of the node's runtime, as a trait.
//! A real kubelet never runs a container itself; it calls containerd or CRI-O over CRI
//! (`RunPodSandbox`, `CreateContainer`, `StartContainer`, `ContainerStatus`, `ExecSync`, ...)
//! and reads container logs from the file the runtime names. [`ContainerRuntime`] is that
//! boundary for minik8s: a pod *sandbox* (the namespaces and cgroup a pod's containers share),
//! images, containers (create, start, stop, remove, state, list), exec, the log file and the
//! live kernel state the `/inspect` API shows.
//!
//! Two implementations: [`RealRuntime`] over the `minik8s-runtime` crate (`real.rs`), and
//! [`FakeRuntime`] (`fake.rs`), an in-memory runtime whose containers' states a unit test sets
//! (running, exited with a code, OOM-killed, failing to start) and which records every call.
//! The pod worker, the agent, probes and the kubelet API take an `Arc<dyn ContainerRuntime>`.
//! Read `real.rs` next, then `pod_worker/`.

mod fake;
mod real;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use fake::{Call, FakeRuntime};
pub use real::RealRuntime;
pub use runtime::container::{KernelView, SandboxOptions, SandboxView};
pub use runtime::image::ImageRecord;
pub use runtime::{CreateOptions, State, Status};

/// Why a runtime call failed.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    /// The runtime refused or failed the call (no such container, a start that failed, ...).
    #[error(transparent)]
    Runtime(#[from] runtime::ContainerError),
    /// Pulling an image from its registry failed.
    #[error(transparent)]
    Pull(#[from] runtime::registry::RegistryError),
}

/// A pod sandbox as the runtime reports it (CRI's `PodSandboxStatus`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxStatus {
    /// The sandbox id: the pod's UID.
    pub id: String,
    /// The pinned network namespace, which the pod network attaches to.
    pub netns: PathBuf,
}

/// What a container was created as (its config, which never changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    /// The runtime name: `<pod uid>_<container>_<attempt>` (`container_config::runtime_name`).
    pub name: String,
    /// Digest of the image manifest the container runs (for `imageID`).
    pub image_digest: String,
    /// Where the runtime writes the container's output (CRI's `log_path`): the kubelet reads
    /// logs from this file itself, as a real kubelet does.
    pub log_path: PathBuf,
}

/// A running container's resource usage (CRI's `ContainerStats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContainerStats {
    pub cpu_usage_ns: u64,
    pub memory_usage_bytes: u64,
}

/// How a command run in a container ended (CRI's `ExecSyncResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// The command exited 0 within its timeout.
    pub success: bool,
    /// Its stdout and stderr, trimmed (or why it could not run).
    pub output: String,
}

/// The node's container runtime, as the kubelet uses it. Calls block (they fork, wait on
/// shims, read state files): async callers run them in `spawn_blocking`.
#[doc(alias = "CRI")]
pub trait ContainerRuntime: Send + Sync {
    // --- sandboxes

    /// `RunPodSandbox`: create the pod's sandbox `uid` (pinned namespaces, pod cgroup).
    fn run_sandbox(&self, uid: &str, opts: &SandboxOptions) -> Result<SandboxStatus, CriError>;
    /// `PodSandboxStatus`: the sandbox, when it exists.
    fn sandbox_status(&self, uid: &str) -> Result<SandboxStatus, CriError>;
    /// `StopPodSandbox` + `RemovePodSandbox`: its pause process is killed and its namespaces
    /// and cgroup removed. A sandbox that is not there is not an error.
    fn remove_sandbox(&self, uid: &str) -> Result<(), CriError>;
    /// `ListPodSandbox`: the ids of every sandbox.
    fn list_sandboxes(&self) -> Vec<String>;

    // --- images

    /// `ImageStatus`: is the image in the node's store?
    fn image_present(&self, image: &str) -> bool;
    /// `PullImage`, with the node's registry settings.
    fn pull_image(&self, image: &str) -> Result<(), CriError>;

    // --- containers

    /// `CreateContainer`: returns the new container's id.
    fn create_container(&self, opts: &CreateOptions) -> Result<String, CriError>;
    /// `StartContainer`: returns once the command runs, or with why it could not start.
    fn start_container(&self, id: &str) -> Result<(), CriError>;
    /// `StopContainer`: SIGTERM, then SIGKILL after `grace`.
    fn stop_container(&self, id: &str, grace: Duration) -> Result<(), CriError>;
    /// `RemoveContainer` (forced: a running container is killed first).
    fn remove_container(&self, id: &str) -> Result<(), CriError>;
    /// `ContainerStatus`: the container's state (status, exit code, OOM kill, times, error).
    fn container_state(&self, id: &str) -> Result<State, CriError>;
    /// What the container was created as (name, image digest, log path).
    fn container_info(&self, id: &str) -> Result<ContainerInfo, CriError>;
    /// `ListContainers`: the ids of every container.
    fn list_containers(&self) -> Vec<String>;
    /// The id of the container named `name`.
    fn find_container(&self, name: &str) -> Option<String>;
    /// `ContainerStats`: its cgroup's usage.
    fn container_stats(&self, id: &str) -> Option<ContainerStats>;

    // --- inspection (the kubelet's `/inspect` API)

    /// The container's live kernel state: processes, namespaces, cgroup, rootfs, mounts.
    fn inspect_container(&self, id: &str) -> Result<KernelView, CriError>;
    /// The sandbox's pinned namespaces, pause process and pod-level cgroup.
    fn inspect_sandbox(&self, uid: &str) -> Result<SandboxView, CriError>;
    /// `ListImages`: every image name in the node's store with its manifest digest.
    fn list_images(&self) -> Vec<ImageRecord>;

    // --- exec

    /// The node's single-threaded helper (`minik8s-kubelet --root DIR ...`), for work inside
    /// a container's namespaces that the threaded kubelet cannot do itself.
    fn helper_command(&self) -> Command;

    /// `Exec`: a command that runs `command` in container `id`; the caller sets its stdio.
    fn exec_command(&self, id: &str, command: &[String]) -> Command {
        let mut cmd = self.helper_command();
        cmd.arg("exec").arg(id).arg("--").args(command);
        cmd
    }

    /// `ExecSync`: run `command` in container `id`, killed after `timeout`.
    fn exec_sync(&self, id: &str, command: &[String], timeout: Duration) -> ExecOutput {
        run_with_timeout(self.exec_command(id, command), timeout)
    }
}

/// Run a helper process to its end or to `timeout` (then it is killed), collecting its output.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> ExecOutput {
    let failed = |output: String| ExecOutput {
        success: false,
        output,
    };
    let mut child = match cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return failed(format!("starting probe: {e}")),
    };
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut out = String::new();
                if let Some(mut o) = child.stdout.take() {
                    let _ = o.read_to_string(&mut out);
                }
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut out);
                }
                return ExecOutput {
                    success: status.success(),
                    output: out.trim().to_string(),
                };
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return failed(format!("probe timed out after {}s", timeout.as_secs()));
            }
        }
    }
}
