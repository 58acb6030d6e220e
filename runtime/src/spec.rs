//! A container's specification: everything `create` resolved from its options and its image
//! (command, environment, user, rootfs layers, namespaces to join, cgroup and limits), written
//! once to `config.json`. The shim and the init read nothing else, so a container runs the same
//! whoever started it. Read next: `wait.rs`, then `store/`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::cgroups::{CgroupsError, Hierarchy, Resources};
use super::namespaces::{Kind, NamespacePlan};
use super::ociprocess::BundleProcess;
use super::rootfs::RootfsSpec;
use super::seccomp::Compiled;

/// Everything needed to run a container, resolved at create time (`config.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_manifest: String,
    pub created_at: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub hostname: String,
    pub tty: bool,
    pub sandbox: Option<String>,
    /// Pinned pod namespaces (or an OCI bundle's namespace paths) to setns into; the others
    /// are created fresh, unless `namespaces` says otherwise.
    pub join_namespaces: Vec<(Kind, PathBuf)>,
    /// An OCI bundle's own list of namespaces: exactly those kinds are created (the others
    /// not joined are the runtime's). None: mnt, pid, net, ipc, uts and cgroup, all new but
    /// the joined ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<NamespacePlan>,
    pub rootfs: RootfsSpec,
    /// Capability bit mask.
    pub capabilities: u64,
    pub no_new_privs: bool,
    /// The seccomp programs the init loads before exec (`seccomp/`); none: unconfined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<Compiled>,
    pub resources: Resources,
    /// Cgroup path relative to the hierarchy root.
    pub cgroup: PathBuf,
    /// The pod-level cgroup (removed with the container when the container is standalone).
    pub pod_cgroup: PathBuf,
    pub cgroup_hierarchy: Hierarchy,
    pub auto_remove: bool,
    /// `--init`: PID 1 is our reaper, the command its child (`reaper.rs`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
    /// OCI `create`: init waits on `exec.fifo` until `start`.
    pub wait_for_start: bool,
    pub log_path: PathBuf,
    /// The OCI bundle this container was created from (`oci.rs`).
    #[serde(default)]
    pub bundle: Option<PathBuf>,
    /// What only an OCI bundle sets: capability sets, rlimits, hooks... (`ociprocess.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_process: Option<BundleProcess>,
}

impl ContainerSpec {
    /// An OCI bundle's container (`oci.rs`) keeps its caller's stdio, as runc does: its init
    /// gets the caller's descriptors 0, 1 and 2 through the shim, and nothing is logged.
    pub fn passes_stdio_through(&self) -> bool {
        self.bundle.is_some()
    }

    /// Whether the container gets a new namespace of `kind`.
    pub fn creates(&self, kind: Kind) -> bool {
        match &self.namespaces {
            Some(plan) => plan.new.contains(&kind),
            None => kind != Kind::User && !self.join_namespaces.iter().any(|(k, _)| *k == kind),
        }
    }

    /// Remove the cgroups that are the container's alone: its own, and when it has no sandbox
    /// the levels up to its pod level, made for it alone (`pod-<id>`; what an OCI
    /// `cgroupsPath` needed that did not exist before, `oci.rs`), each only once nothing is
    /// below it. A sandbox's pod level goes with the sandbox, and the parent stays: other
    /// containers may be creating under them (cgroups.rs).
    pub fn remove_cgroups(&self) -> Result<(), CgroupsError> {
        self.cgroup_hierarchy.remove(&self.cgroup)?;
        if self.sandbox.is_some() || !self.cgroup.starts_with(&self.pod_cgroup) {
            return Ok(());
        }
        let mut level = self.cgroup.as_path();
        while level != self.pod_cgroup {
            let Some(parent) = level.parent() else { break };
            self.cgroup_hierarchy.remove_if_empty(parent);
            level = parent;
        }
        Ok(())
    }
}
