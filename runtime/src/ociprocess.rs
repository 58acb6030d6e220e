//! What an OCI bundle adds to a container's process and which the CLI's and the kubelet's
//! containers never have: all five capability sets, rlimits, an OOM score, sysctls (and the
//! domain name), extra groups, a umask, hooks and annotations (`oci.rs` fills it from `config.json`). The init applies its parts at the points
//! runc does; a container without it does none of this work.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::capabilities;
use super::hooks::{self, HookError, HookState, Hooks, Phase};
use super::rlimits::{self, Rlimit, RlimitError};
use super::sysctl::{self, Sysctl, SysctlError};

/// The bundle's additions (`ContainerSpec::bundle_process`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BundleProcess {
    pub capabilities: capabilities::Sets,
    pub rlimits: Vec<Rlimit>,
    /// `process.oomScoreAdj`.
    pub oom_score_adj: Option<i32>,
    /// `linux.sysctl`, checked at create (`sysctl.rs`).
    pub sysctl: Vec<Sysctl>,
    /// `process.user.additionalGids`.
    pub additional_gids: Vec<u32>,
    /// `process.user.umask`: set just before the command starts.
    pub umask: Option<u32>,
    pub hooks: Hooks,
    /// The bundle's annotations, for `state` and the hooks.
    pub annotations: BTreeMap<String, String>,
}

/// Why the bundle's settings could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum OciProcessError {
    #[error(transparent)]
    Sysctl(#[from] SysctlError),
    #[error(transparent)]
    Rlimit(#[from] RlimitError),
    #[error("write oom_score_adj {value}: {source}")]
    OomScore {
        value: i32,
        #[source]
        source: std::io::Error,
    },
}

impl BundleProcess {
    /// In the container's namespaces, before its rootfs hides the host's `/proc`: sysctls,
    /// the OOM score, rlimits (as root, which may raise hard limits).
    pub fn apply_limits(&self) -> Result<(), OciProcessError> {
        sysctl::apply(&self.sysctl)?;
        if let Some(value) = self.oom_score_adj {
            std::fs::write("/proc/self/oom_score_adj", value.to_string())
                .map_err(|source| OciProcessError::OomScore { value, source })?;
        }
        rlimits::apply(&self.rlimits)?;
        Ok(())
    }

    /// The umask the command starts with, if the bundle gives one.
    pub fn apply_umask(&self) {
        if let Some(mask) = self.umask {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
        }
    }

    /// The state hooks of `phase` read, for container `id` of `bundle` whose init is `pid`.
    pub fn hook_state<'a>(
        &'a self,
        phase: Phase,
        id: &'a str,
        bundle: Option<&'a Path>,
        pid: i32,
    ) -> HookState<'a> {
        HookState {
            oci_version: OCI_VERSION,
            id,
            status: phase.status(),
            pid,
            bundle: bundle.unwrap_or(Path::new("")),
            annotations: &self.annotations,
        }
    }

    /// Run the hooks of `phase`, a failure failing the operation: `prestart` and
    /// `createRuntime` (the shim), `createContainer` and `startContainer` (the init).
    pub fn run_hooks(
        &self,
        phase: Phase,
        id: &str,
        bundle: Option<&Path>,
        pid: i32,
    ) -> Result<(), HookError> {
        if self.hooks.of(phase).is_empty() {
            return Ok(());
        }
        hooks::run(phase, &self.hooks, &self.hook_state(phase, id, bundle, pid))
    }
}

/// The runtime-spec version of the state we report (`state`, hooks).
pub const OCI_VERSION: &str = "1.0.2";
