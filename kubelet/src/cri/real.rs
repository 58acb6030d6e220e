//! The real [`ContainerRuntime`]: the `minik8s-runtime` crate, called in-process, as
//! containerd would be over its socket. Every method is one runtime call (or two, where CRI
//! folds what the runtime keeps apart); image pulls use the node's registry settings
//! (`--insecure-registry`, `--registry-ca-file`). Read `fake.rs` next.

use std::process::Command;
use std::time::Duration;

use runtime::registry::PullOptions;
use runtime::{Attach, ContainerError, Runtime};

use super::{
    ContainerInfo, ContainerRuntime, ContainerStats, CreateOptions, CriError, ImageRecord,
    KernelView, SandboxOptions, SandboxStatus, SandboxView, State,
};

/// The node's runtime and how it reaches registries.
pub struct RealRuntime {
    runtime: Runtime,
    registry: PullOptions,
}

impl RealRuntime {
    pub fn new(runtime: Runtime, registry: PullOptions) -> Self {
        Self { runtime, registry }
    }

    fn sandbox(&self, uid: &str) -> SandboxStatus {
        SandboxStatus {
            id: uid.to_string(),
            netns: self.runtime.sandbox_dir(uid).join("net"),
        }
    }
}

impl ContainerRuntime for RealRuntime {
    fn run_sandbox(&self, uid: &str, opts: &SandboxOptions) -> Result<SandboxStatus, CriError> {
        self.runtime.create_sandbox_with(uid, opts)?;
        Ok(self.sandbox(uid))
    }

    fn sandbox_status(&self, uid: &str) -> Result<SandboxStatus, CriError> {
        self.runtime.sandbox(uid)?;
        Ok(self.sandbox(uid))
    }

    fn remove_sandbox(&self, uid: &str) -> Result<(), CriError> {
        match self.runtime.remove_sandbox(uid, true) {
            Err(ContainerError::SandboxNotFound { .. }) => Ok(()),
            r => Ok(r?),
        }
    }

    fn list_sandboxes(&self) -> Vec<String> {
        self.runtime.sandbox_ids()
    }

    fn image_present(&self, image: &str) -> bool {
        self.runtime.images.resolve(image).is_ok()
    }

    fn pull_image(&self, image: &str) -> Result<(), CriError> {
        runtime::registry::pull(&self.runtime.images, image, &self.registry)?;
        Ok(())
    }

    fn create_container(&self, opts: &CreateOptions) -> Result<String, CriError> {
        Ok(self.runtime.create(opts)?.id)
    }

    fn start_container(&self, id: &str) -> Result<(), CriError> {
        self.runtime.start(id, Attach::Detached)?;
        Ok(())
    }

    fn stop_container(&self, id: &str, grace: Duration) -> Result<(), CriError> {
        self.runtime.stop(id, grace)?;
        Ok(())
    }

    fn remove_container(&self, id: &str) -> Result<(), CriError> {
        Ok(self.runtime.remove(id, true)?)
    }

    fn container_state(&self, id: &str) -> Result<State, CriError> {
        Ok(self.runtime.state(id)?)
    }

    fn container_info(&self, id: &str) -> Result<ContainerInfo, CriError> {
        let spec = self.runtime.spec(id)?;
        Ok(ContainerInfo {
            id: spec.id,
            name: spec.name,
            image_digest: spec.image_manifest,
            log_path: spec.log_path,
        })
    }

    fn list_containers(&self) -> Vec<String> {
        self.runtime.container_ids()
    }

    fn find_container(&self, name: &str) -> Option<String> {
        self.runtime.lookup(name).ok()
    }

    fn container_stats(&self, id: &str) -> Option<ContainerStats> {
        let spec = self.runtime.spec(id).ok()?;
        let stats = spec.cgroup_hierarchy.stats(&spec.cgroup);
        Some(ContainerStats {
            cpu_usage_ns: stats.cpu_usage_ns,
            memory_usage_bytes: stats.memory_usage_bytes,
        })
    }

    fn inspect_container(&self, id: &str) -> Result<KernelView, CriError> {
        Ok(self.runtime.kernel_view(id)?)
    }

    fn inspect_sandbox(&self, uid: &str) -> Result<SandboxView, CriError> {
        Ok(self.runtime.sandbox_view(uid)?)
    }

    fn list_images(&self) -> Vec<ImageRecord> {
        self.runtime.images.list().unwrap_or_default()
    }

    fn helper_command(&self) -> Command {
        let mut cmd = Command::new(&self.runtime.shim_exe);
        cmd.arg("--root").arg(&self.runtime.root);
        cmd
    }
}
