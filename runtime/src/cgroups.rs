//! cgroups: the kernel's resource accounting and limits. A container's processes live in a
//! cgroup directory whose files set limits (`cpu.max`/`cpu.cfs_quota_us`: how many µs of CPU
//! per period; `memory.max`/`memory.limit_in_bytes`; `pids.max`) and report usage. cgroup v1
//! has one tree per controller (`/sys/fs/cgroup/cpu/...`), v2 a single tree
//! (`/sys/fs/cgroup/...`) with controllers switched on per level via `cgroup.subtree_control`.
//! We keep `<parent>/<pod>/<container>` (parent `minik8s`, or the runtime's `--cgroup-parent`)
//! in either layout. The root of the hierarchy is a field, so the logic is unit-tested on a
//! tempdir. Read next: `process.rs`, where the container's init joins its cgroup before
//! running user code.
//!
//! # Many containers at once
//!
//! The parent and a sandbox's pod level are shared: many containers (threads of one kubelet,
//! or separate CLI processes) create levels below them at the same moment. Two rules keep that
//! safe without a lock:
//! - *Every level is made ready by whoever uses it, not by whoever created it.* A new v1
//!   cpuset cgroup has empty `cpuset.cpus` and `cpuset.mems` and refuses tasks (ENOSPC) until
//!   they are filled, and a child created below an empty one copies nothing. So
//!   [`Hierarchy::create`] walks the path from the top and, at each level, whether its own
//!   `mkdir` made it or found it, fills empty sets from the level above (already checked)
//!   before it creates anything below. A level it fills also gets `cgroup.clone_children`, so
//!   that the kernel fills the cgroups created below it at their `mkdir`, as it does under
//!   Docker's parent; levels are still checked, since someone else may have made them. On v2
//!   each level likewise switches its parent's controllers on itself.
//! - *No one removes a directory that someone else may be creating under.* A container
//!   removes its own cgroup and, when it has no sandbox, its own pod level (`pod-<id>`,
//!   `oci-<id>`: no other container goes there); a sandbox's pod level goes with
//!   `sandbox rm`, after the sandbox's containers; the parent stays, as Docker's `docker/` and
//!   the kubelet's `kubepods/` do. A level can then vanish under a creation only by someone
//!   outside the runtime, and [`Hierarchy::create`] starts again from the top when it does.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use serde::{Deserialize, Serialize};

use super::devices::{self, DeviceRule, DevicesError};
use super::tuning::Tuning;

/// The v1 controllers we create directories in (`devices` for the device allowlist,
/// `devices.rs`).
pub const V1_CONTROLLERS: [&str; 6] = ["cpu", "cpuacct", "memory", "pids", "cpuset", "devices"];
/// The v1 controllers a container gets a cgroup in only when its settings need them
/// (`tuning.rs`): [`Hierarchy::with_controllers`].
pub const V1_OPTIONAL: [&str; 4] = ["blkio", "hugetlb", "net_cls", "net_prio"];
/// Default CFS period (µs), as Kubernetes uses.
pub const CPU_PERIOD_US: u64 = 100_000;

/// Why a cgroup operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupsError {
    /// Creating a cgroup directory failed.
    #[error("create cgroup {path:?}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Writing a control file failed.
    #[error("write {value:?} to {path:?}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    /// Reading a control file failed.
    #[error("read {path:?}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Removing a cgroup directory failed (processes still inside).
    #[error("remove cgroup {path:?}: {source}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A v1 cpuset level that was checked full is empty: it was removed and made again.
    #[error("{path:?} is empty")]
    EmptyCpuset { path: PathBuf },
    /// The device allowlist could not be put in place.
    #[error(transparent)]
    Devices(#[from] DevicesError),
    /// A setting the host has no file for (no such hugepage size, a kernel without the knob).
    #[error("cgroup setting not supported by this host: no {path:?}")]
    NoSuchFile { path: PathBuf },
    /// A setting the host cannot apply (no such controller, or not in this cgroup layout).
    #[error("cgroup setting {setting}: {reason}")]
    Unsupported {
        setting: &'static str,
        reason: &'static str,
    },
}

impl CgroupsError {
    /// Whether a level of the path being created vanished (or was replaced) under the
    /// creation, which then starts again from the top.
    fn level_vanished(&self) -> bool {
        match self {
            Self::Create { source, .. }
            | Self::Write { source, .. }
            | Self::Read { source, .. } => source.kind() == io::ErrorKind::NotFound,
            Self::EmptyCpuset { .. } => true,
            Self::Remove { .. }
            | Self::Devices(_)
            | Self::Unsupported { .. }
            | Self::NoSuchFile { .. } => false,
        }
    }
}

/// Which cgroup layout the host uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Version {
    /// One hierarchy per controller (also "hybrid" hosts whose controllers are on v1).
    V1,
    /// The unified hierarchy.
    V2,
}

/// Limits for a container cgroup, in the units the cgroup files take; `None` means unlimited.
/// The runtime parses no quantity: its callers convert theirs (the kubelet Kubernetes
/// quantities, the CLI Docker's flags).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// CFS bandwidth: CPU time per period.
    pub cpu_quota: Option<CpuQuota>,
    /// Relative weight as v1 shares (2..262144, default 1024; v2's weight is derived).
    pub cpu_shares: Option<u64>,
    /// Hard memory limit in bytes.
    pub memory_bytes: Option<u64>,
    /// Maximum number of processes (tasks).
    pub pids: Option<u64>,
    /// CPUs the container may run on, in the kernel's list format (`0-2,4`).
    pub cpuset_cpus: Option<String>,
    /// The device allowlist, rules in order (`devices.rs`); none: the parent's (all devices).
    #[serde(default)]
    pub devices: Vec<DeviceRule>,
    /// The finer settings of OCI bundles (`tuning.rs`).
    #[serde(default, skip_serializing_if = "Tuning::is_empty")]
    pub tuning: Tuning,
}

/// A CFS bandwidth limit: the cgroup's processes together may run `quota_us` µs of CPU time in
/// every `period_us` µs of wall time (`cpu.max` on v2; `cpu.cfs_quota_us` and
/// `cpu.cfs_period_us` on v1). A quota of half the period is half a CPU, of twice the period
/// two CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuQuota {
    pub quota_us: u64,
    pub period_us: u64,
}

impl CpuQuota {
    /// The smallest quota and period the kernel accepts (1 ms).
    pub const MIN_US: u64 = 1000;
    /// The largest period the kernel accepts (1 s).
    pub const MAX_PERIOD_US: u64 = 1_000_000;

    /// `quota_us` per the default period, [`CPU_PERIOD_US`].
    pub fn per_default_period(quota_us: u64) -> Self {
        Self {
            quota_us,
            period_us: CPU_PERIOD_US,
        }
    }

    /// Whether the kernel takes it: both at least 1 ms, the period at most 1 s.
    pub fn is_valid(&self) -> bool {
        self.quota_us >= Self::MIN_US
            && (Self::MIN_US..=Self::MAX_PERIOD_US).contains(&self.period_us)
    }

    /// How many CPUs the container can keep busy: the quota in periods, rounded up.
    pub fn whole_cpus(&self) -> u64 {
        self.quota_us.div_ceil(self.period_us.max(1))
    }
}

/// Usage figures read from a cgroup.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    pub cpu_usage_ns: u64,
    pub memory_usage_bytes: u64,
    pub pids_current: u64,
    pub oom_kills: u64,
}

/// Parse a cgroup parent (dockerd's `--cgroup-parent`, the kubelet's `--cgroup-root`): a
/// relative path of plain names (`minik8s`, `lab/node2`), never `..` or absolute.
pub fn parse_parent(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    let plain = p
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if s.is_empty() || !plain {
        return Err(format!("{s:?} is not a relative path of plain names"));
    }
    Ok(p)
}

/// A cgroup hierarchy rooted at `root` (normally `/sys/fs/cgroup`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hierarchy {
    pub root: PathBuf,
    pub version: Version,
    /// v1: each mounted controller and its directory with symlinks resolved (`cpu` and
    /// `cpuacct` may be one mount under two names), found once per process.
    #[serde(skip)]
    controllers: std::sync::OnceLock<Vec<(&'static str, PathBuf)>>,
    /// Which of [`V1_OPTIONAL`] (or their v2 counterparts) this container's cgroup is in too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    optional: Vec<String>,
}

/// v1 shares → v2 weight, the formula runc and Kubernetes use.
pub fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

impl Hierarchy {
    /// Detect the layout under `root`: the unified hierarchy has `cgroup.controllers` at its root.
    pub fn detect(root: &Path) -> Self {
        let version = if root.join("cgroup.controllers").exists() {
            Version::V2
        } else {
            Version::V1
        };
        Self {
            root: root.to_owned(),
            version,
            controllers: std::sync::OnceLock::new(),
            optional: Vec::new(),
        }
    }

    /// This hierarchy with the optional controllers `names` too (of [`V1_OPTIONAL`]), for a
    /// container whose settings need them: refused when the host has one not mounted (v1) or
    /// not available (v2), rather than the settings dropped.
    pub fn with_controllers(&self, names: &[&'static str]) -> Result<Self, CgroupsError> {
        for name in names {
            let present = match self.version {
                Version::V1 => self.root.join(name).is_dir(),
                Version::V2 => {
                    let available = fs::read_to_string(self.root.join("cgroup.controllers"))
                        .unwrap_or_default();
                    v2_name(name).is_some_and(|v2| available.split_whitespace().any(|c| c == v2))
                }
            };
            if !present {
                return Err(CgroupsError::Unsupported {
                    setting: name,
                    reason: "the host has no such cgroup controller mounted",
                });
            }
        }
        let mut h = Self::detect(&self.root);
        h.optional = names.iter().map(|n| n.to_string()).collect();
        Ok(h)
    }

    /// The v1 controllers mounted under the root, with their resolved directories.
    fn controllers(&self) -> &[(&'static str, PathBuf)] {
        self.controllers.get_or_init(|| {
            V1_CONTROLLERS
                .iter()
                .chain(
                    V1_OPTIONAL
                        .iter()
                        .filter(|c| self.optional.iter().any(|o| o == *c)),
                )
                .filter_map(|c| {
                    let base = self.root.join(c);
                    base.exists()
                        .then(|| (*c, fs::canonicalize(&base).unwrap_or(base)))
                })
                .collect()
        })
    }

    /// The v1 controllers a container gets a cgroup of its own in: those of
    /// [`V1_CONTROLLERS`] mounted on the host (none on v2).
    pub fn v1_controllers(&self) -> Vec<&'static str> {
        match self.version {
            Version::V1 => self.controllers().iter().map(|(c, _)| *c).collect(),
            Version::V2 => Vec::new(),
        }
    }

    /// The host's hierarchy.
    pub fn host() -> Self {
        Self::detect(Path::new("/sys/fs/cgroup"))
    }

    /// Directories of the cgroup `rel` (e.g. `minik8s/pod/ctr`): one per v1 controller, one on v2.
    pub fn dirs(&self, rel: &Path) -> Vec<PathBuf> {
        match self.version {
            Version::V2 => vec![self.root.join(rel)],
            Version::V1 => {
                let mut out: Vec<PathBuf> = Vec::new();
                for (_, base) in self.controllers() {
                    // comounted controllers (cpu,cpuacct) appear under two names: keep one
                    let d = base.join(rel);
                    if !out.contains(&d) {
                        out.push(d);
                    }
                }
                out
            }
        }
    }

    fn controller_dir(&self, controller: &str, rel: &Path) -> PathBuf {
        match self.version {
            Version::V2 => self.root.join(rel),
            Version::V1 => match self.controllers().iter().find(|(c, _)| *c == controller) {
                Some((_, base)) => base.join(rel),
                None => self.root.join(controller).join(rel),
            },
        }
    }

    /// Create every level of `rel` from the top, each ready before anything goes below it
    /// (cpuset sets filled on v1, controllers switched on on v2), whoever created it: see the
    /// module doc. A level that vanishes meanwhile (removed by someone outside the runtime,
    /// which never removes a level another container may be creating under) makes it start
    /// again from the top.
    pub fn create(&self, rel: &Path) -> Result<(), CgroupsError> {
        /// Restarts allowed: the runtime's own removals never cause one.
        const RESTARTS: u32 = 10;
        let mut restarts = 0;
        loop {
            match self.create_levels(rel) {
                Err(e) if e.level_vanished() && restarts < RESTARTS => {
                    restarts += 1;
                    tracing::debug!(?rel, restarts, error = %e, "cgroup level vanished: restart");
                }
                result => return result,
            }
        }
    }

    fn create_levels(&self, rel: &Path) -> Result<(), CgroupsError> {
        let mut parent = PathBuf::new();
        for comp in rel.components() {
            let level = parent.join(comp);
            self.create_level(&parent, &level)?;
            parent = level;
        }
        Ok(())
    }

    fn create_level(&self, parent: &Path, rel: &Path) -> Result<(), CgroupsError> {
        if self.version == Version::V2 {
            let pdir = self.root.join(parent);
            let ctl = pdir.join("cgroup.subtree_control");
            let wanted = fs::read_to_string(pdir.join("cgroup.controllers")).unwrap_or_default();
            let enabled = fs::read_to_string(&ctl).unwrap_or_default();
            let optional = self.optional.iter().filter_map(|c| v2_name(c));
            let missing: Vec<String> = ["cpu", "memory", "pids", "cpuset"]
                .into_iter()
                .chain(optional)
                .filter(|c| {
                    wanted.split_whitespace().any(|w| w == *c)
                        && !enabled.split_whitespace().any(|w| w == *c)
                })
                .map(|c| format!("+{c}"))
                .collect();
            if !missing.is_empty() {
                write_file(&ctl, &missing.join(" "))?;
            }
        }
        for dir in self.dirs(rel) {
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(source) => return Err(CgroupsError::Create { path: dir, source }),
            }
        }
        if self.version == Version::V1 && self.controllers().iter().any(|(c, _)| *c == "cpuset") {
            fill_cpuset(&self.controller_dir("cpuset", rel))?;
        }
        Ok(())
    }

    /// [`Hierarchy::create`] `rel`, then [`Hierarchy::apply`] the limits of `res` to it: a
    /// container's cgroup before anything of it runs there.
    pub fn create_limited(&self, rel: &Path, res: &Resources) -> Result<(), CgroupsError> {
        self.create(rel)?;
        self.apply(rel, res)
    }

    /// Write the limits of `res` into the cgroup `rel`.
    pub fn apply(&self, rel: &Path, res: &Resources) -> Result<(), CgroupsError> {
        match self.version {
            Version::V1 => {
                let cpu = self.controller_dir("cpu", rel);
                if let Some(q) = res.cpu_quota {
                    write_file(&cpu.join("cpu.cfs_period_us"), &q.period_us.to_string())?;
                    write_file(&cpu.join("cpu.cfs_quota_us"), &q.quota_us.to_string())?;
                }
                if let Some(s) = res.cpu_shares {
                    write_file(&cpu.join("cpu.shares"), &s.to_string())?;
                }
                if let Some(m) = res.memory_bytes {
                    write_file(
                        &self
                            .controller_dir("memory", rel)
                            .join("memory.limit_in_bytes"),
                        &m.to_string(),
                    )?;
                }
                if let Some(p) = res.pids {
                    write_file(
                        &self.controller_dir("pids", rel).join("pids.max"),
                        &p.to_string(),
                    )?;
                }
                if let Some(c) = &res.cpuset_cpus {
                    write_file(&self.controller_dir("cpuset", rel).join("cpuset.cpus"), c)?;
                }
                if !res.devices.is_empty() {
                    self.apply_devices_v1(rel, &res.devices)?;
                }
            }
            Version::V2 => {
                let dir = self.root.join(rel);
                if let Some(q) = res.cpu_quota {
                    write_file(
                        &dir.join("cpu.max"),
                        &format!("{} {}", q.quota_us, q.period_us),
                    )?;
                }
                if let Some(s) = res.cpu_shares {
                    write_file(&dir.join("cpu.weight"), &shares_to_weight(s).to_string())?;
                }
                if let Some(m) = res.memory_bytes {
                    write_file(&dir.join("memory.max"), &m.to_string())?;
                    // keep the limit a hard one: no swapping instead of being OOM-killed
                    let _ = write_file(&dir.join("memory.swap.max"), "0");
                }
                if let Some(p) = res.pids {
                    write_file(&dir.join("pids.max"), &p.to_string())?;
                }
                if let Some(c) = &res.cpuset_cpus {
                    write_file(&dir.join("cpuset.cpus"), c)?;
                }
                devices::attach_v2(&dir, &res.devices)?;
            }
        }
        self.apply_tuning(rel, res)
    }

    /// The finer settings of `res` (`tuning.rs`), each into a file that must exist: a host
    /// without it (no such hugepage size, a kernel without the knob) refuses the setting.
    fn apply_tuning(&self, rel: &Path, res: &Resources) -> Result<(), CgroupsError> {
        if res.tuning.is_empty() {
            return Ok(());
        }
        let writes = match self.version {
            Version::V1 => {
                let bfq = self
                    .controller_dir("blkio", rel)
                    .join("blkio.bfq.weight")
                    .exists();
                res.tuning.v1_writes(bfq)
            }
            Version::V2 => res.tuning.v2_writes(res.memory_bytes).map_err(|setting| {
                CgroupsError::Unsupported {
                    setting,
                    reason: "not available with cgroup v2",
                }
            })?,
        };
        for w in writes {
            let path = self.controller_dir(w.controller, rel).join(&w.file);
            if !path.exists() {
                return Err(CgroupsError::NoSuchFile { path });
            }
            write_file(&path, &w.value)?;
        }
        Ok(())
    }

    /// The rules into `rel`'s devices cgroup. A host without the v1 devices controller
    /// mounted cannot enforce them: refused rather than run the container unguarded.
    fn apply_devices_v1(&self, rel: &Path, rules: &[DeviceRule]) -> Result<(), CgroupsError> {
        if !self.controllers().iter().any(|(c, _)| *c == "devices") {
            return Err(CgroupsError::Create {
                path: self.root.join("devices"),
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    "no devices controller mounted for the device allowlist",
                ),
            });
        }
        Ok(devices::apply_v1(
            &self.controller_dir("devices", rel),
            rules,
        )?)
    }

    /// The `cgroup.procs` files a process writes "0" into to join `rel`.
    pub fn procs_files(&self, rel: &Path) -> Vec<PathBuf> {
        self.dirs(rel)
            .into_iter()
            .map(|d| d.join("cgroup.procs"))
            .collect()
    }

    /// Move the calling process (`pid` 0) or `pid` into `rel`.
    pub fn join(&self, rel: &Path, pid: u32) -> Result<(), CgroupsError> {
        for f in self.procs_files(rel) {
            write_file(&f, &pid.to_string())?;
        }
        Ok(())
    }

    /// Prepare the calling thread to move itself into `rel` later, where a process can do that
    /// cheaply for itself: on v1, by writing "0" into each controller's `tasks` file. Moving
    /// anything else (a pid, a whole thread group through `cgroup.procs`) takes the kernel's
    /// global `cgroup_threadgroup_rwsem` for writing, and after a quiet spell that waits for an
    /// RCU grace period (5–8 ms on a small VM); a thread moving itself cannot exit or exec
    /// under the kernel's hands, so it skips that lock. For a single-threaded process moving
    /// its one thread is moving the process. The controllers' directories are opened now, so
    /// the move still works after the caller has left the host's mount tree (pivot_root) and
    /// before `rel` exists. `None` on v2, where a domain cgroup only takes whole processes (the
    /// caller then has someone write `cgroup.procs` for it).
    pub fn prepare_self_join(&self, rel: &Path) -> Result<Option<SelfJoin>, CgroupsError> {
        if self.version != Version::V1 {
            return Ok(None);
        }
        let mut dirs = Vec::new();
        for base in self.dirs(Path::new("")) {
            let fd = nix::fcntl::open(
                &base,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|errno| CgroupsError::Read {
                path: base.clone(),
                source: errno.into(),
            })?;
            dirs.push((fd, base, rel.join(self.self_join_file())));
        }
        Ok(Some(SelfJoin { dirs }))
    }

    /// The files a single-threaded process writes "0" into to move itself into `rel`: `tasks`
    /// on v1 (the cheap way, see [`Hierarchy::prepare_self_join`]), `cgroup.procs` on v2.
    pub fn self_join_files(&self, rel: &Path) -> Vec<PathBuf> {
        let file = self.self_join_file();
        self.dirs(rel).into_iter().map(|d| d.join(file)).collect()
    }

    fn self_join_file(&self) -> &'static str {
        match self.version {
            Version::V1 => "tasks",
            Version::V2 => "cgroup.procs",
        }
    }

    /// Start, in the caller, the wait that the next cgroup attach must sit through. Moving a
    /// process into a cgroup (a write to `cgroup.procs`) takes the kernel's
    /// `cgroup_threadgroup_rwsem` for writing, and the first writer after a quiet spell waits a
    /// whole RCU grace period (`rcu_sync_enter`: 6–8 ms on a small VM); writers that come while
    /// one waits, or within a grace period after it, share that wait. So the caller of `start`
    /// moves itself into the cgroup it is already in (a no-op but for the lock) while the shim
    /// forks the init and the init builds its rootfs: by the time the shim moves the init, the
    /// grace period has run or is running. The wait happens under `cgroup_mutex`, which
    /// creating or removing any cgroup also takes: the container's cgroups must exist before
    /// this starts. Best effort; errors are ignored.
    pub fn prime_attach(&self) {
        let Ok(own) = fs::read_to_string("/proc/self/cgroup") else {
            return;
        };
        let procs = own.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
            let dir = match self.version {
                Version::V2 if controllers.is_empty() => self.root.clone(),
                Version::V1 => controllers
                    .split(',')
                    .find(|c| V1_CONTROLLERS.contains(c) && self.root.join(c).is_dir())
                    .map(|c| self.root.join(c))?,
                _ => return None,
            };
            Some(dir.join(path.trim_start_matches('/')).join("cgroup.procs"))
        });
        if let Some(procs) = procs {
            let _ = fs::write(procs, std::process::id().to_string());
        }
    }

    /// Current usage and OOM kill count of `rel`.
    pub fn stats(&self, rel: &Path) -> Stats {
        let num = |p: PathBuf| {
            read_trim(&p)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let field = |p: PathBuf, key: &str| {
            fs::read_to_string(p)
                .ok()
                .and_then(|s| {
                    s.lines().find_map(|l| {
                        l.strip_prefix(key)
                            .and_then(|v| v.trim().parse::<u64>().ok())
                    })
                })
                .unwrap_or(0)
        };
        match self.version {
            Version::V1 => Stats {
                cpu_usage_ns: num(self.controller_dir("cpuacct", rel).join("cpuacct.usage")),
                memory_usage_bytes: num(self
                    .controller_dir("memory", rel)
                    .join("memory.usage_in_bytes")),
                pids_current: num(self.controller_dir("pids", rel).join("pids.current")),
                oom_kills: field(
                    self.controller_dir("memory", rel)
                        .join("memory.oom_control"),
                    "oom_kill ",
                ),
            },
            Version::V2 => {
                let dir = self.root.join(rel);
                Stats {
                    cpu_usage_ns: field(dir.join("cpu.stat"), "usage_usec ") * 1000,
                    memory_usage_bytes: num(dir.join("memory.current")),
                    pids_current: num(dir.join("pids.current")),
                    oom_kills: field(dir.join("memory.events"), "oom_kill "),
                }
            }
        }
    }

    /// Limit files and their values, for `inspect`.
    pub fn limit_files(&self, rel: &Path) -> Vec<(PathBuf, String)> {
        let files: &[(&str, &str)] = match self.version {
            Version::V1 => &[
                ("cpu", "cpu.cfs_quota_us"),
                ("cpu", "cpu.cfs_period_us"),
                ("cpu", "cpu.shares"),
                ("memory", "memory.limit_in_bytes"),
                ("pids", "pids.max"),
                ("cpuset", "cpuset.cpus"),
            ],
            Version::V2 => &[
                ("", "cpu.max"),
                ("", "cpu.weight"),
                ("", "memory.max"),
                ("", "pids.max"),
                ("", "cpuset.cpus"),
            ],
        };
        files
            .iter()
            .map(|(c, f)| self.controller_dir(c, rel).join(f))
            .filter_map(|p| read_trim(&p).ok().map(|v| (p, v)))
            .collect()
    }

    /// Remove `rel` (leaf first), retrying while exiting processes still count as members.
    /// Missing directories are fine: removal is idempotent.
    pub fn remove(&self, rel: &Path) -> Result<(), CgroupsError> {
        for dir in self.dirs(rel) {
            let mut tries = 0;
            loop {
                match fs::remove_dir(&dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if tries < 100 && e.raw_os_error() == Some(libc::EBUSY) => {
                        if tries == 50 {
                            // stragglers (e.g. exec'd processes): kill them, then retry
                            self.kill_dir(&dir);
                        }
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    Err(source) => return Err(CgroupsError::Remove { path: dir, source }),
                }
            }
        }
        Ok(())
    }

    /// Remove `rel` wherever it holds no cgroup below it: a node's cgroup root once its pods
    /// are gone. A level that still has children or processes stays (the kernel refuses with
    /// `EBUSY`; nothing is killed). True when `rel` exists nowhere afterwards.
    pub fn remove_if_empty(&self, rel: &Path) -> bool {
        let mut gone = true;
        for dir in self.dirs(rel) {
            let has_children = fs::read_dir(&dir)
                .map(|rd| {
                    rd.flatten()
                        .any(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                })
                .unwrap_or(false);
            let removed = !has_children
                && match fs::remove_dir(&dir) {
                    Ok(()) => true,
                    Err(e) => e.kind() == io::ErrorKind::NotFound,
                };
            gone &= removed;
        }
        gone
    }

    /// SIGKILL every process in the cgroup `rel` (all hierarchies).
    pub fn kill_all(&self, rel: &Path) {
        for dir in self.dirs(rel) {
            self.kill_dir(&dir);
        }
    }

    fn kill_dir(&self, dir: &Path) {
        if let Ok(s) = fs::read_to_string(dir.join("cgroup.procs")) {
            for pid in s.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// A thread's way into its v1 cgroup from wherever it is by then ([`Hierarchy::prepare_self_join`]):
/// each controller's directory, held open, and the `tasks` file below it. The descriptors are
/// close-on-exec and dropped by [`SelfJoin::join`], so none of the host's directories reaches
/// the container's command.
pub struct SelfJoin {
    dirs: Vec<(OwnedFd, PathBuf, PathBuf)>,
}

impl SelfJoin {
    /// Move the calling thread into the cgroup (it must exist by now).
    pub fn join(self) -> Result<(), CgroupsError> {
        for (dir, base, tasks) in &self.dirs {
            let err = |errno: nix::Error| CgroupsError::Write {
                path: base.join(tasks),
                value: "0".into(),
                source: errno.into(),
            };
            let fd = nix::fcntl::openat(
                dir,
                tasks,
                OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(err)?;
            nix::unistd::write(&fd, b"0").map_err(err)?;
        }
        Ok(())
    }
}

/// Make the v1 cpuset cgroup `dir` able to take tasks: fill its empty `cpuset.cpus` and
/// `cpuset.mems` from its parent's, which must be filled already. Having filled any, set
/// `cgroup.clone_children`, so that cgroups created below `dir` are born with its sets.
fn fill_cpuset(dir: &Path) -> Result<(), CgroupsError> {
    let parent = dir.parent().expect("a cgroup level has a parent");
    let mut filled = false;
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let own = match read_trim(&dir.join(f)) {
            Ok(v) => v,
            // a directory without cpuset files is no cpuset cgroup (a test's stand-in)
            Err(CgroupsError::Read { source, .. })
                if source.kind() == io::ErrorKind::NotFound && dir.is_dir() =>
            {
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if !own.is_empty() {
            continue;
        }
        let from = read_trim(&parent.join(f))?;
        if from.is_empty() {
            // checked a moment ago: the parent was removed and made again since
            return Err(CgroupsError::EmptyCpuset {
                path: parent.join(f),
            });
        }
        write_file(&dir.join(f), &from)?;
        filled = true;
    }
    if filled {
        if let Err(e) = write_file(&dir.join("cgroup.clone_children"), "1") {
            tracing::debug!(?dir, error = %e, "cpuset children will be filled by hand");
        }
    }
    Ok(())
}

/// The v2 controller of a v1 one of [`V1_OPTIONAL`] (v2 has no network controllers).
fn v2_name(v1: &str) -> Option<&'static str> {
    match v1 {
        "blkio" => Some("io"),
        "hugetlb" => Some("hugetlb"),
        _ => None,
    }
}

fn write_file(path: &Path, value: &str) -> Result<(), CgroupsError> {
    fs::write(path, value).map_err(|source| {
        tracing::debug!(?path, value, %source, "cgroup write failed");
        CgroupsError::Write {
            path: path.to_owned(),
            value: value.to_string(),
            source,
        }
    })
}

fn read_trim(path: &Path) -> Result<String, CgroupsError> {
    fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| CgroupsError::Read {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_root(v2: bool) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "minik8s-cgfs-{}-{}",
            std::process::id(),
            super::super::random_hex(6)
        ));
        if v2 {
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("cgroup.controllers"), "cpuset cpu io memory pids\n").unwrap();
            fs::write(d.join("cgroup.subtree_control"), "").unwrap();
        } else {
            for c in V1_CONTROLLERS {
                fs::create_dir_all(d.join(c)).unwrap();
            }
            fs::write(d.join("cpuset/cpuset.cpus"), "0-1\n").unwrap();
            fs::write(d.join("cpuset/cpuset.mems"), "0\n").unwrap();
        }
        d
    }

    #[test]
    fn detects_versions() {
        let a = fake_root(false);
        let b = fake_root(true);
        assert_eq!(Hierarchy::detect(&a).version, Version::V1);
        assert_eq!(Hierarchy::detect(&b).version, Version::V2);
        fs::remove_dir_all(a).unwrap();
        fs::remove_dir_all(b).unwrap();
    }

    #[test]
    fn v1_creates_per_controller_dirs_and_writes_limits() {
        let root = fake_root(false);
        let h = Hierarchy::detect(&root);
        // on a plain tempdir a new cpuset dir has no files; create the parent's ones by hand
        let rel = Path::new("minik8s/pod1/ctr1");
        h.create(rel).unwrap();
        for c in V1_CONTROLLERS {
            assert!(root.join(c).join(rel).is_dir(), "{c}");
        }
        let res = Resources {
            cpu_quota: Some(CpuQuota::per_default_period(20_000)),
            cpu_shares: Some(512),
            memory_bytes: Some(64 << 20),
            pids: Some(100),
            cpuset_cpus: None,
            devices: Vec::new(),
            tuning: Tuning::default(),
        };
        h.apply(rel, &res).unwrap();
        assert_eq!(
            fs::read_to_string(root.join("cpu").join(rel).join("cpu.cfs_quota_us")).unwrap(),
            "20000"
        );
        assert_eq!(
            fs::read_to_string(root.join("cpu").join(rel).join("cpu.cfs_period_us")).unwrap(),
            "100000"
        );
        assert_eq!(
            fs::read_to_string(root.join("memory").join(rel).join("memory.limit_in_bytes"))
                .unwrap(),
            "67108864"
        );
        assert_eq!(
            fs::read_to_string(root.join("pids").join(rel).join("pids.max")).unwrap(),
            "100"
        );
        fs::write(
            root.join("memory").join(rel).join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        fs::write(
            root.join("cpuacct").join(rel).join("cpuacct.usage"),
            "12345\n",
        )
        .unwrap();
        let s = h.stats(rel);
        assert_eq!((s.oom_kills, s.cpu_usage_ns), (2, 12345));
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn v1_fills_the_cpusets_of_levels_made_by_someone_else() {
        let root = fake_root(false);
        let h = Hierarchy::detect(&root);
        let cpuset = root.join("cpuset");
        let read = |level: &str, f: &str| {
            fs::read_to_string(cpuset.join(level).join(f))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        // made by another container a moment ago and not filled yet (a real cgroupfs gives
        // a new cpuset cgroup empty files; the fake gets them by hand)
        for level in ["minik8s", "minik8s/pod1"] {
            fs::create_dir_all(cpuset.join(level)).unwrap();
            fs::write(cpuset.join(level).join("cpuset.cpus"), "").unwrap();
            fs::write(cpuset.join(level).join("cpuset.mems"), "\n").unwrap();
        }
        // filled already, with a narrower set of its own: kept
        fs::create_dir_all(cpuset.join("minik8s/pod2")).unwrap();
        fs::write(cpuset.join("minik8s/pod2/cpuset.cpus"), "1\n").unwrap();
        fs::write(cpuset.join("minik8s/pod2/cpuset.mems"), "0\n").unwrap();
        h.create(Path::new("minik8s/pod1/ctr1")).unwrap();
        h.create(Path::new("minik8s/pod2/ctr2")).unwrap();
        for level in ["minik8s", "minik8s/pod1"] {
            assert_eq!(read(level, "cpuset.cpus"), "0-1", "{level}");
            assert_eq!(read(level, "cpuset.mems"), "0", "{level}");
            // what is created below it from now on, the kernel fills
            assert_eq!(read(level, "cgroup.clone_children"), "1", "{level}");
        }
        assert_eq!(read("minik8s/pod2", "cpuset.cpus"), "1");
        assert!(!cpuset.join("minik8s/pod2/cgroup.clone_children").exists());
        assert!(cpuset.join("minik8s/pod1/ctr1").is_dir());
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn v1_an_empty_parent_cpuset_is_an_error_not_an_empty_child() {
        // a level found empty whose parent is empty too was replaced under the creation; with
        // nothing to copy, creating must fail rather than leave a cpuset that refuses tasks
        let root = fake_root(false);
        fs::write(root.join("cpuset/cpuset.cpus"), "").unwrap();
        let level = root.join("cpuset/minik8s");
        fs::create_dir_all(&level).unwrap();
        fs::write(level.join("cpuset.cpus"), "").unwrap();
        fs::write(level.join("cpuset.mems"), "").unwrap();
        let err = Hierarchy::detect(&root)
            .create(Path::new("minik8s/pod1/ctr1"))
            .unwrap_err();
        assert!(matches!(err, CgroupsError::EmptyCpuset { .. }), "{err}");
        assert!(!root.join("cpuset/minik8s/pod1").exists());
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn v2_enables_controllers_and_writes_limits() {
        let root = fake_root(true);
        let h = Hierarchy::detect(&root);
        let rel = Path::new("minik8s/pod1/ctr1");
        // a real cgroupfs fills new dirs with control files; the fake gets them by hand
        fs::create_dir_all(root.join("minik8s/pod1")).unwrap();
        for d in ["minik8s", "minik8s/pod1"] {
            fs::write(
                root.join(d).join("cgroup.controllers"),
                "cpuset cpu memory pids",
            )
            .unwrap();
            fs::write(root.join(d).join("cgroup.subtree_control"), "").unwrap();
        }
        h.create(rel).unwrap();
        assert_eq!(
            fs::read_to_string(root.join("cgroup.subtree_control")).unwrap(),
            "+cpu +memory +pids +cpuset"
        );
        let res = Resources {
            cpu_quota: Some(CpuQuota {
                quota_us: 50_000,
                period_us: 200_000,
            }),
            cpu_shares: Some(1024),
            memory_bytes: Some(1 << 20),
            pids: Some(10),
            cpuset_cpus: Some("0".into()),
            devices: Vec::new(),
            tuning: Tuning::default(),
        };
        h.apply(rel, &res).unwrap();
        assert_eq!(
            fs::read_to_string(root.join(rel).join("cpu.max")).unwrap(),
            "50000 200000"
        );
        assert_eq!(
            fs::read_to_string(root.join(rel).join("cpu.weight")).unwrap(),
            "39"
        );
        assert_eq!(
            fs::read_to_string(root.join(rel).join("memory.max")).unwrap(),
            "1048576"
        );
        fs::write(
            root.join(rel).join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )
        .unwrap();
        fs::write(
            root.join(rel).join("cpu.stat"),
            "usage_usec 7\nuser_usec 5\n",
        )
        .unwrap();
        let s = h.stats(rel);
        assert_eq!((s.oom_kills, s.cpu_usage_ns), (1, 7000));
        assert_eq!(h.dirs(rel), vec![root.join(rel)]);
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_parent_is_a_relative_path_of_plain_names() {
        assert_eq!(parse_parent("lab/node2"), Ok(PathBuf::from("lab/node2")));
        for bad in ["", "/minik8s", "../up", "a/../b", "./a"] {
            assert!(parse_parent(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn only_an_empty_root_is_removed() {
        let root = fake_root(true);
        let h = Hierarchy::detect(&root);
        fs::create_dir_all(root.join("node-a")).unwrap();
        fs::create_dir_all(root.join("node-b/pod1")).unwrap();
        assert!(h.remove_if_empty(Path::new("node-a")));
        assert!(!root.join("node-a").exists());
        assert!(!h.remove_if_empty(Path::new("node-b")));
        assert!(root.join("node-b/pod1").is_dir());
        assert!(h.remove_if_empty(Path::new("never-made")));
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_cpu_quota_is_valid_within_the_kernels_bounds() {
        assert!(CpuQuota::per_default_period(1000).is_valid());
        assert!(!CpuQuota::per_default_period(999).is_valid());
        let q = |quota_us, period_us| CpuQuota {
            quota_us,
            period_us,
        };
        assert!(!q(5000, 500).is_valid());
        assert!(!q(5000, 2_000_000).is_valid());
        assert_eq!(q(150_000, 100_000).whole_cpus(), 2);
        assert_eq!(q(20_000, 100_000).whole_cpus(), 1);
        assert_eq!(q(200_000, 100_000).whole_cpus(), 2);
    }
}
