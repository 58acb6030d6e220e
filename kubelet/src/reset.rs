//! `minik8s-kubelet --cleanup`: the node reset, what `kubeadm reset` does for a real node.
//! Containers outlive their kubelet on purpose (each belongs to its shim, so a restarted
//! kubelet re-adopts it), which is why stopping a kubelet is not enough to take a node down:
//! its containers, their pod sandboxes (pinned namespaces, pause processes, pod cgroups), the
//! pod network and its routes, the node's cgroup root and the runtime's state on tmpfs all
//! stay until something removes them. This recipe removes them, in this order:
//!
//! 1. every container, SIGKILLed at once (no grace period: the node is going away), all of
//!    them in parallel, then its cgroups, state and writable layer removed;
//! 2. every pod sandbox (pause process, pinned namespaces, pod cgroup);
//! 3. the pod network recorded under the runtime's root (veths, bridge, iptables chains);
//! 4. our routes to other nodes' pod ranges (`pod_routes.rs`), in the kubelet's namespace;
//! 5. the node's cgroup root, which must now be empty;
//! 6. the runtime's state directory on tmpfs (`runtime::state_dir_for`).
//!
//! Images and pod volumes on disk stay. Every step is idempotent, so a second reset finds
//! nothing to do and succeeds. Read `pod_routes.rs` and `runtime/src/network/mod.rs` next.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use runtime::network::{self, NetworkError};
use runtime::wait::alive;
use runtime::Runtime;

use crate::cri::{ContainerRuntime, CriError, RealRuntime};
use crate::pod_routes::{self, PodRoutesError};

/// How many containers are killed and removed at once.
const PARALLEL: usize = 16;

/// How long a shim may take to end after its container was removed.
const SHIM_EXIT: Duration = Duration::from_secs(1);

/// Why the node reset failed.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    /// Opening the runtime under the root dir failed.
    #[error("open the runtime under {path:?}: {source}")]
    OpenRuntime {
        path: PathBuf,
        #[source]
        source: runtime::ImageError,
    },
    /// Removing a container failed.
    #[error("remove container {id}: {source}")]
    RemoveContainer {
        id: String,
        #[source]
        source: Box<CriError>,
    },
    /// Removing a pod sandbox failed.
    #[error("remove pod sandbox {id}: {source}")]
    RemoveSandbox {
        id: String,
        #[source]
        source: Box<CriError>,
    },
    /// Removing the pod network failed.
    #[error("remove the pod network: {0}")]
    Network(#[source] NetworkError),
    /// Removing our routes to other nodes' pod ranges failed.
    #[error("remove the pod range routes: {0}")]
    Routes(#[source] PodRoutesError),
    /// The cgroup root still holds cgroups that are none of this runtime's.
    #[error("cgroup root {path:?} still holds cgroups of another runtime")]
    CgroupRootBusy { path: PathBuf },
    /// Removing the runtime's state directory failed.
    #[error("remove the runtime state {path:?}: {source}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What to reset: the kubelet's `--root-dir` and `--cgroup-root`.
#[derive(Debug, Clone)]
pub struct ResetConfig {
    pub root_dir: PathBuf,
    pub cgroup_root: PathBuf,
}

/// What a reset removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removed {
    pub containers: usize,
    pub sandboxes: usize,
    pub routes: usize,
}

/// Reset the node: steps 1 to 6 of the module's recipe.
pub fn reset(config: &ResetConfig) -> Result<Removed, ResetError> {
    let runtime_root = config.root_dir.join("runtime");
    let mut removed = Removed::default();
    // a node that never ran (or was reset already) has no runtime root: nothing of it runs
    let state = if runtime_root.exists() {
        let mut rt = Runtime::open(&runtime_root).map_err(|source| ResetError::OpenRuntime {
            path: runtime_root.clone(),
            source,
        })?;
        rt.cgroup_parent = config.cgroup_root.clone();
        let state = rt.state.clone();
        let cri = RealRuntime::new(rt, Default::default());
        (removed.containers, removed.sandboxes) = remove_pods(&cri)?;
        Some(state)
    } else {
        None
    };
    network::cleanup(&runtime_root.join("network")).map_err(ResetError::Network)?;
    removed.routes = pod_routes::remove_all(None).map_err(ResetError::Routes)?;
    if !runtime::cgroups::Hierarchy::host().remove_if_empty(&config.cgroup_root) {
        return Err(ResetError::CgroupRootBusy {
            path: config.cgroup_root.clone(),
        });
    }
    if let Some(state) = state {
        match std::fs::remove_dir_all(&state) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(ResetError::StateDir {
                    path: state,
                    source: e,
                })
            }
            _ => {}
        }
    }
    tracing::info!(
        containers = removed.containers,
        sandboxes = removed.sandboxes,
        routes = removed.routes,
        root = ?config.root_dir,
        "node reset"
    );
    Ok(removed)
}

/// Steps 1 and 2: kill and remove every container, `PARALLEL` at a time (each removal waits
/// for its shim to record the exit), then remove every sandbox. Returns how many of each.
pub fn remove_pods(rt: &dyn ContainerRuntime) -> Result<(usize, usize), ResetError> {
    let containers = rt.list_containers();
    for batch in containers.chunks(PARALLEL) {
        std::thread::scope(|s| {
            let removals: Vec<_> = batch
                .iter()
                .map(|id| s.spawn(move || remove_container(rt, id)))
                .collect();
            removals
                .into_iter()
                .try_for_each(|r| r.join().expect("a removal thread panicked"))
        })?;
    }
    let sandboxes = rt.list_sandboxes();
    for id in &sandboxes {
        rt.remove_sandbox(id)
            .map_err(|source| ResetError::RemoveSandbox {
                id: id.clone(),
                source: Box::new(source),
            })?;
    }
    Ok((containers.len(), sandboxes.len()))
}

/// SIGKILL container `id` (a zero grace period) and remove it; one already gone is no error.
/// Its shim, which records the exit and then tidies up at low priority, gets a moment to end
/// on its own, then is killed: nothing of the node may outlive the reset.
fn remove_container(rt: &dyn ContainerRuntime, id: &str) -> Result<(), ResetError> {
    let fail = |source| ResetError::RemoveContainer {
        id: id.to_string(),
        source: Box::new(source),
    };
    let Ok(state) = rt.container_state(id) else {
        return Ok(());
    };
    rt.stop_container(id, Duration::ZERO).map_err(fail)?;
    rt.remove_container(id).map_err(fail)?;
    if let Some(shim) = state.shim_pid {
        let deadline = Instant::now() + SHIM_EXIT;
        while alive(shim) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if alive(shim) {
            tracing::debug!(container = %id, pid = shim, "killing a shim that outlived its container");
            let _ = kill(Pid::from_raw(shim), Signal::SIGKILL);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cri::{Call, FakeRuntime};

    #[test]
    fn every_container_is_killed_without_grace_and_every_sandbox_removed() {
        let rt = FakeRuntime::new();
        rt.add_sandbox("pod-a");
        rt.add_sandbox("pod-b");
        for name in ["pod-a_c_0", "pod-a_d_0", "pod-b_c_1"] {
            rt.add_running(name);
        }
        assert_eq!(remove_pods(&rt).unwrap(), (3, 2));
        assert!(rt.names().is_empty());
        assert!(rt.sandboxes().is_empty());
        let calls = rt.take_calls();
        let stops: Vec<_> = calls
            .iter()
            .filter_map(|c| match c {
                Call::StopContainer { grace, .. } => Some(*grace),
                _ => None,
            })
            .collect();
        assert_eq!(stops, [Duration::ZERO; 3]);
        // sandboxes go after every container
        let first_sandbox = calls
            .iter()
            .position(|c| matches!(c, Call::RemoveSandbox { .. }))
            .unwrap();
        assert!(calls[first_sandbox..]
            .iter()
            .all(|c| matches!(c, Call::RemoveSandbox { .. })));
    }

    #[test]
    fn a_second_reset_finds_nothing_to_do() {
        let rt = FakeRuntime::new();
        rt.add_running("pod-a_c_0");
        remove_pods(&rt).unwrap();
        assert_eq!(remove_pods(&rt).unwrap(), (0, 0));
    }
}
