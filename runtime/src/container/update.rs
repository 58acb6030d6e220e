//! `update`: change a running container's limits, as `docker update` does. A limit is nothing
//! but a number in a cgroup file (`cpu.cfs_quota_us` or `cpu.max`, `memory.limit_in_bytes` or
//! `memory.max`, `pids.max`), which the kernel reads on every scheduling decision, charge and
//! fork: writing it takes effect at once, with no restart. The new limits also go into the
//! container's `config.json` (so `inspect` shows them) and its generated `/proc/meminfo` and
//! `/proc/cpuinfo` (`procfs.rs`), rewritten in place under their bind mounts.
//! Read next: `inspect.rs`.

use std::fs;

use super::{ContainerError, Status};
use crate::cgroups::{CpuQuota, Resources};
use crate::error::io_err;
use crate::store::write_json;
use crate::{procfs, Runtime};

/// The limits to change; `None` keeps the current one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceUpdate {
    pub cpu_quota: Option<CpuQuota>,
    pub memory_bytes: Option<u64>,
    pub pids: Option<u64>,
}

impl ResourceUpdate {
    fn check(&self) -> Result<(), ContainerError> {
        let invalid = |flag, value: String, reason| {
            Err(ContainerError::InvalidOption {
                flag,
                value,
                reason,
            })
        };
        if let Some(q) = self.cpu_quota.filter(|q| !q.is_valid()) {
            return invalid(
                "cpus",
                format!("{}/{} µs", q.quota_us, q.period_us),
                "the CPU quota and period must be at least 1 ms, the period at most 1 s",
            );
        }
        if let Some(m) = self.memory_bytes.filter(|m| *m < 1 << 20) {
            return invalid("memory", m.to_string(), "expected at least 1 MiB");
        }
        if self.pids == Some(0) {
            return invalid("pids-limit", "0".into(), "must be positive");
        }
        Ok(())
    }
}

impl Runtime {
    /// Write the new limits into the cgroup of container `id` (running: live; created: before
    /// it starts), then into its `config.json`; returns the limits now in force.
    pub fn update(&self, id: &str, update: &ResourceUpdate) -> Result<Resources, ContainerError> {
        update.check()?;
        let mut spec = self.spec(id)?;
        let status = self.state(id)?.status;
        if status == Status::Stopped {
            return Err(ContainerError::WrongState {
                id: id.to_string(),
                status,
            });
        }
        let changed = Resources {
            cpu_quota: update.cpu_quota,
            memory_bytes: update.memory_bytes,
            pids: update.pids,
            ..Resources::default()
        };
        if status == Status::Running {
            spec.cgroup_hierarchy.apply(&spec.cgroup, &changed)?;
        }
        let res = &mut spec.resources;
        res.cpu_quota = update.cpu_quota.or(res.cpu_quota);
        res.memory_bytes = update.memory_bytes.or(res.memory_bytes);
        res.pids = update.pids.or(res.pids);
        self.refresh_proc_files(id, res)?;
        write_json(&self.container_dir(id).join("config.json"), &spec)?;
        tracing::info!(id, ?update, "limits updated");
        Ok(spec.resources)
    }

    /// Rewrite the generated `/proc` files a container has, in place (the bind mount holds
    /// the inode: a new file would not be seen).
    fn refresh_proc_files(&self, id: &str, res: &Resources) -> Result<(), ContainerError> {
        let dir = self.container_dir(id);
        let meminfo = dir.join("meminfo");
        if let (true, Some(m)) = (meminfo.exists(), res.memory_bytes) {
            fs::write(&meminfo, procfs::meminfo(m)).map_err(io_err("write", &meminfo))?;
        }
        let cpuinfo = dir.join("cpuinfo");
        if let (true, Some(q)) = (cpuinfo.exists(), res.cpu_quota) {
            let host = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
            let text = procfs::cpuinfo(&host, q.whole_cpus() as usize);
            fs::write(&cpuinfo, text).map_err(io_err("write", &cpuinfo))?;
        }
        Ok(())
    }
}
