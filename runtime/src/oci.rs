//! The OCI runtime command line (runtime-spec `runtime.md`), which conformance suites such as
//! runtime-tools' validation and youki's `contest` drive: `create --bundle DIR ID` prepares
//! the container from the bundle's `config.json` (parsed with `oci-spec`) and leaves its init
//! blocked on `exec.fifo`; `start ID` opens the fifo so the init execs the user process;
//! `state ID` prints the lifecycle JSON; `kill` and `delete` finish it. The bundle's `rootfs`
//! is bind-mounted instead of an overlay; everything else reuses the container path.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Linux, LinuxDeviceCgroup, LinuxDeviceType, LinuxIdMapping, LinuxNamespaceType, LinuxResources,
    Process, Spec,
};
use serde_json::json;

use super::cgroups::{CpuQuota, Hierarchy, Resources, CPU_PERIOD_US};
use super::container::{Attach, ContainerError, ContainerSpec, State, Status};
use super::devices::{self, DeviceKind, DeviceRule};
use super::hooks::{self, Phase};
use super::maskedpaths::PathRules;
use super::namespaces::{self, IdMapping, Kind, NamespacePlan};
use super::ociprocess::OCI_VERSION;
use super::rootfs::{RootSwitch, RootfsSpec};
use super::seccomp::{self, Compiled, Profile, SeccompError};
use super::tuning::{Throttle, ThrottleDevice, Tuning, WeightDevice};
use super::{bundle, capabilities, logs, Runtime};

fn invalid(reason: &'static str, value: impl Into<String>) -> ContainerError {
    ContainerError::InvalidOption {
        flag: "config.json",
        value: value.into(),
        reason,
    }
}

/// The capability mask of the process's bounding set.
fn capability_mask(process: &Process) -> Result<u64, ContainerError> {
    let caps: Vec<String> = process
        .capabilities()
        .as_ref()
        .and_then(|c| c.bounding().clone())
        .map(|set| {
            set.iter()
                .filter_map(|c| serde_json::to_value(c).ok()?.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let mut mask = 0u64;
    for c in &caps {
        mask |=
            1 << capabilities::number(c).ok_or_else(|| invalid("unknown capability", c.clone()))?;
    }
    Ok(mask)
}

/// The bundle's `linux.seccomp`, compiled with its own actions (an unsupported one is an
/// error, never dropped); none without it, as runc.
fn seccomp_filter(linux: &Linux, capabilities: u64) -> Result<Option<Compiled>, ContainerError> {
    let Some(oci) = linux.seccomp() else {
        return Ok(None);
    };
    let value = serde_json::to_value(oci).map_err(SeccompError::Parse)?;
    let profile: Profile = serde_json::from_value(value).map_err(SeccompError::Parse)?;
    Ok(Some(seccomp::compile(&profile, capabilities)?))
}

/// The bundle's namespaces (`linux.namespaces`), exactly: a kind with a path is joined (the
/// path must be a namespace of that kind), one without is created, an unlisted one is the
/// runtime's own, as runc. A new user namespace gets the bundle's ID mappings, a uts namespace
/// (new or joined) the bundle's hostname. Refused: a kind listed twice, a user namespace
/// without mappings, a hostname without a uts namespace listed. Without a mount namespace the
/// rootfs is built in the runtime's, below the rootfs only (`RootSwitch::HostChroot`).
fn namespaces(
    spec: &Spec,
    linux: &Linux,
) -> Result<(Vec<(Kind, PathBuf)>, NamespacePlan), ContainerError> {
    let mut join = Vec::new();
    let mut plan = NamespacePlan::default();
    for ns in linux.namespaces().clone().unwrap_or_default() {
        let kind = match ns.typ() {
            LinuxNamespaceType::Pid => Kind::Pid,
            LinuxNamespaceType::Mount => Kind::Mnt,
            LinuxNamespaceType::Network => Kind::Net,
            LinuxNamespaceType::Ipc => Kind::Ipc,
            LinuxNamespaceType::Uts => Kind::Uts,
            LinuxNamespaceType::Cgroup => Kind::Cgroup,
            LinuxNamespaceType::User => Kind::User,
            LinuxNamespaceType::Time => return Err(invalid("unsupported namespace", "time")),
        };
        if plan.new.contains(&kind) || join.iter().any(|(k, _)| *k == kind) {
            return Err(invalid("namespace listed twice", kind.proc_name()));
        }
        match ns.path() {
            Some(p) => {
                namespaces::check_type(p, kind)?;
                join.push((kind, p.clone()));
            }
            None => plan.new.push(kind),
        }
    }
    if plan.new.contains(&Kind::User) {
        let ids = |m: &Option<Vec<LinuxIdMapping>>| -> Vec<IdMapping> {
            m.iter()
                .flatten()
                .map(|m| IdMapping {
                    container_id: m.container_id(),
                    host_id: m.host_id(),
                    size: m.size(),
                })
                .collect()
        };
        plan.uid_mappings = ids(linux.uid_mappings());
        plan.gid_mappings = ids(linux.gid_mappings());
        if plan.uid_mappings.is_empty() || plan.gid_mappings.is_empty() {
            return Err(invalid(
                "a new user namespace needs uidMappings and gidMappings",
                "user",
            ));
        }
    }
    let hostname = spec.hostname().as_ref().is_some_and(|h| !h.is_empty());
    let uts_joined = join.iter().any(|(k, _)| *k == Kind::Uts);
    if hostname && !plan.new.contains(&Kind::Uts) && !uts_joined {
        return Err(invalid("a hostname needs a uts namespace", "hostname"));
    }
    plan.hostname_in_joined_uts = hostname && uts_joined;
    Ok((join, plan))
}

/// The bundle's cgroup settings (`linux.resources`): what the host's cgroups take, written as
/// runc writes them (`cgroups.rs`, `tuning.rs`); what they cannot (rdma, unified, v2-only
/// files on v1) is refused.
fn resources(linux: &Linux) -> Result<Resources, ContainerError> {
    let res = linux.resources().clone().unwrap_or_default();
    if res.rdma().as_ref().is_some_and(|r| !r.is_empty()) {
        return Err(invalid("unsupported cgroup setting", "resources.rdma"));
    }
    if res.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        return Err(invalid("unsupported cgroup setting", "resources.unified"));
    }
    let cpu = res.cpu().clone().unwrap_or_default();
    if cpu.idle().is_some() || cpu.burst().is_some() {
        return Err(invalid(
            "unsupported cgroup setting",
            "resources.cpu.idle/burst",
        ));
    }
    let memory = (*res.memory()).unwrap_or_default();
    if memory.swappiness().is_some_and(|s| s > 100) {
        return Err(invalid(
            "swappiness must be within 0..100",
            "resources.memory.swappiness",
        ));
    }
    if memory.use_hierarchy().is_some() || memory.check_before_update().is_some() {
        return Err(invalid(
            "unsupported cgroup setting",
            "resources.memory.useHierarchy/checkBeforeUpdate",
        ));
    }
    let quota = cpu.quota().filter(|q| *q > 0).map(|q| CpuQuota {
        quota_us: q as u64,
        period_us: cpu.period().unwrap_or(CPU_PERIOD_US),
    });
    Ok(Resources {
        cpu_quota: quota,
        cpu_shares: cpu.shares(),
        memory_bytes: memory.limit().filter(|l| *l > 0).map(|l| l as u64),
        pids: res
            .pids()
            .as_ref()
            .map(|p| p.limit())
            .filter(|l| *l > 0)
            .map(|l| l as u64),
        cpuset_cpus: cpu.cpus().clone(),
        devices: device_rules(res.devices()),
        tuning: Tuning {
            cpu_period_us: cpu.period().filter(|_| quota.is_none()),
            rt_runtime_us: cpu.realtime_runtime(),
            rt_period_us: cpu.realtime_period(),
            cpuset_mems: cpu.mems().clone(),
            memory_reservation: memory.reservation(),
            memory_swap: memory.swap(),
            kernel_memory: memory.kernel(),
            kernel_tcp_memory: memory.kernel_tcp(),
            swappiness: memory.swappiness(),
            disable_oom_killer: memory.disable_oom_killer().unwrap_or(false),
            ..block_io_and_more(&res)
        },
    })
}

/// The block I/O, hugepage and network parts of `linux.resources`.
fn block_io_and_more(res: &LinuxResources) -> Tuning {
    let bio = res.block_io().clone().unwrap_or_default();
    let throttles = [
        (Throttle::ReadBps, bio.throttle_read_bps_device()),
        (Throttle::WriteBps, bio.throttle_write_bps_device()),
        (Throttle::ReadIops, bio.throttle_read_iops_device()),
        (Throttle::WriteIops, bio.throttle_write_iops_device()),
    ];
    let net = res.network().clone().unwrap_or_default();
    Tuning {
        blkio_weight: bio.weight(),
        blkio_leaf_weight: bio.leaf_weight(),
        weight_devices: (bio.weight_device().iter().flatten())
            .map(|d| WeightDevice {
                major: d.major(),
                minor: d.minor(),
                weight: d.weight(),
                leaf_weight: d.leaf_weight(),
            })
            .collect(),
        throttle_devices: throttles
            .iter()
            .flat_map(|(kind, devices)| {
                devices.iter().flatten().map(|d| ThrottleDevice {
                    kind: *kind,
                    major: d.major(),
                    minor: d.minor(),
                    rate: d.rate(),
                })
            })
            .collect(),
        hugepage_limits: (res.hugepage_limits().iter().flatten())
            .map(|h| (h.page_size().clone(), h.limit().max(0) as u64))
            .collect(),
        net_class_id: net.class_id(),
        net_priorities: (net.priorities().iter().flatten())
            .map(|p| (p.name().clone(), p.priority()))
            .collect(),
        ..Tuning::default()
    }
}

/// Where the container's cgroup goes (`linux.cgroupsPath`, as runc with its cgroupfs driver
/// reads it): an absolute path from the hierarchy's root, a relative one below the runtime's
/// cgroup parent; none: `<parent>/oci-<id>/ctr`. Returns the cgroup and the topmost level of it
/// that does not exist yet, which deleting the container removes with everything of it below
/// (`ContainerSpec::remove_cgroups`); levels that existed before stay. A path out of the tree
/// (`..`), the root itself, or a cgroup with processes in it already is refused.
fn cgroup_paths(
    rt: &Runtime,
    hierarchy: &Hierarchy,
    linux: &Linux,
    id: &str,
) -> Result<(PathBuf, PathBuf), ContainerError> {
    let Some(path) = linux.cgroups_path() else {
        let pod = rt.cgroup_parent.join(format!("oci-{id}"));
        return Ok((pod.join("ctr"), pod));
    };
    let plain = path.components().all(|c| {
        matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::RootDir
        )
    });
    let rel = match path.strip_prefix("/") {
        Ok(abs) => abs.to_owned(),
        Err(_) => rt.cgroup_parent.join(path),
    };
    if !plain || rel.as_os_str().is_empty() {
        return Err(invalid(
            "cgroupsPath must name a cgroup below the root",
            path.display().to_string(),
        ));
    }
    let exists = |level: &Path| hierarchy.dirs(level).iter().any(|d| d.exists());
    let busy = hierarchy
        .procs_files(&rel)
        .iter()
        .any(|f| fs::read_to_string(f).is_ok_and(|procs| !procs.trim().is_empty()));
    if busy {
        return Err(invalid(
            "cgroupsPath names a cgroup with processes in it",
            path.display().to_string(),
        ));
    }
    let top = rel
        .ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .take_while(|a| !exists(a))
        .last()
        .unwrap_or(&rel)
        .to_owned();
    Ok((rel, top))
}

/// The bundle's device rules, then (as runc appends its `AllowedDevices`) the allow rules of
/// the devices the runtime itself makes in `/dev`: the init opens `/dev/null`, and a bundle
/// that only says "deny all" still gets a working `/dev`. No rules: no restriction.
fn device_rules(rules: &Option<Vec<LinuxDeviceCgroup>>) -> Vec<DeviceRule> {
    let mut out: Vec<DeviceRule> = rules.iter().flatten().filter_map(device_rule).collect();
    if !out.is_empty() {
        out.extend(devices::default_rules().into_iter().filter(|r| r.allow));
    }
    out
}

/// A rule of `linux.resources.devices`; FIFO rules (`p`), which no cgroup checks, are left
/// out, a missing access is `rwm`.
fn device_rule(r: &LinuxDeviceCgroup) -> Option<DeviceRule> {
    let kind = match r.typ().unwrap_or_default() {
        LinuxDeviceType::A => DeviceKind::All,
        LinuxDeviceType::B => DeviceKind::Block,
        LinuxDeviceType::C | LinuxDeviceType::U => DeviceKind::Char,
        LinuxDeviceType::P => return None,
    };
    let number = |n: Option<i64>| n.and_then(|n| u32::try_from(n).ok());
    let access = match r.access().as_deref() {
        None | Some("") => devices::RWM,
        Some(a) => a.chars().fold(0, |bits, c| {
            bits | match c {
                'r' => devices::READ,
                'w' => devices::WRITE,
                'm' => devices::MKNOD,
                _ => 0,
            }
        }),
    };
    Some(DeviceRule {
        allow: r.allow(),
        kind,
        major: number(r.major()),
        minor: number(r.minor()),
        access,
    })
}

/// The bundle's `linux.maskedPaths` and `linux.readonlyPaths`, exactly: the runtime adds no
/// default of its own (the tool that wrote `config.json` did: Docker's list for containerd).
fn path_rules(linux: &Linux) -> PathRules {
    let paths = |l: &Option<Vec<String>>| l.iter().flatten().map(PathBuf::from).collect::<Vec<_>>();
    PathRules {
        masked: paths(linux.masked_paths()),
        readonly: paths(linux.readonly_paths()),
    }
}

impl Runtime {
    /// OCI `create`: build the container from `bundle/config.json`, start its shim and leave the
    /// init waiting for `start`. Returns the init's host pid.
    pub fn oci_create(&self, id: &str, bundle: &Path) -> Result<i32, ContainerError> {
        if id.is_empty() || id.contains('/') || self.container_dir(id).exists() {
            return Err(ContainerError::NameInUse {
                name: id.to_string(),
            });
        }
        let bundle = fs::canonicalize(bundle).map_err(|source| ContainerError::Io {
            step: "open bundle",
            path: bundle.to_owned(),
            source,
        })?;
        let cfg_path = bundle.join("config.json");
        let spec = Spec::load(&cfg_path).map_err(|e| invalid("cannot parse", e.to_string()))?;
        bundle::check(&spec)?;
        let process = spec
            .process()
            .clone()
            .ok_or_else(|| invalid("no process", ""))?;
        let args = process.args().clone().unwrap_or_default();
        if args.is_empty() {
            return Err(invalid("process.args is empty", ""));
        }
        let root = spec.root().clone().ok_or_else(|| invalid("no root", ""))?;
        let rootfs_dir = if root.path().is_absolute() {
            root.path().clone()
        } else {
            bundle.join(root.path())
        };
        let mask = capability_mask(&process)?;
        let linux = spec.linux().clone().unwrap_or_default();
        let (join, plan) = namespaces(&spec, &linux)?;
        // no mount namespace listed: the rootfs is built in ours (runc's chroot)
        let own_mnt = plan.new.contains(&Kind::Mnt) || join.iter().any(|(k, _)| *k == Kind::Mnt);
        let switch = match own_mnt {
            true => RootSwitch::default(),
            false => RootSwitch::HostChroot,
        };
        let resources = resources(&linux)?;
        let hierarchy = self
            .cgroups
            .with_controllers(&resources.tuning.v1_controllers())?;
        let (cgroup, pod_cgroup) = cgroup_paths(self, &hierarchy, &linux, id)?;
        let filesystems = bundle::filesystems(&spec, &linux)?;
        let bundle_process = bundle::process(&spec, &process, &linux)?;
        let dir = self.container_dir(id);
        let hostname = spec.hostname().clone().unwrap_or_else(|| id.to_string());
        let user = process.user();
        let cspec = ContainerSpec {
            id: id.to_string(),
            name: id.to_string(),
            image: format!("bundle:{}", bundle.display()),
            image_manifest: String::new(),
            created_at: logs::now(),
            args,
            env: process.env().clone().unwrap_or_default(),
            cwd: process.cwd().display().to_string(),
            uid: user.uid(),
            gid: user.gid(),
            hostname,
            tty: false,
            sandbox: None,
            join_namespaces: join,
            namespaces: Some(plan),
            rootfs: RootfsSpec {
                lowerdirs: Vec::new(),
                upperdir: PathBuf::new(),
                workdir: PathBuf::new(),
                merged: dir.join("rootfs"),
                files: Vec::new(),
                volumes: Vec::new(),
                readonly: root.readonly().unwrap_or(false),
                privileged: false,
                path_rules: path_rules(&linux),
                bind_rootfs: Some(rootfs_dir),
                bundle: Some(filesystems),
                switch,
            },
            capabilities: mask,
            no_new_privs: process.no_new_privileges().unwrap_or(false),
            seccomp: seccomp_filter(&linux, mask)?,
            resources,
            cgroup,
            pod_cgroup,
            cgroup_hierarchy: hierarchy,
            auto_remove: false,
            init: false,
            wait_for_start: true,
            log_path: dir.join("container.log"),
            bundle: Some(bundle.clone()),
            bundle_process: Some(bundle_process),
        };
        self.write_bundle_container(&cspec)?;
        match self.start(id, Attach::PassThrough) {
            Ok(started) => Ok(started.pid),
            Err(e) => {
                let _ = self.cleanup(&cspec);
                Err(e)
            }
        }
    }

    /// The container's directory with its exec fifo, `config.json` and first state.
    fn write_bundle_container(&self, cspec: &ContainerSpec) -> Result<(), ContainerError> {
        let dir = self.container_dir(&cspec.id);
        let io = |step: &'static str| {
            let path = dir.clone();
            move |source| ContainerError::Io { step, path, source }
        };
        fs::create_dir_all(dir.join("rootfs")).map_err(io("create container dir"))?;
        nix::unistd::mkfifo(
            &dir.join("exec.fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| io("mkfifo")(e.into()))?;
        fs::write(
            dir.join("config.json"),
            serde_json::to_vec_pretty(cspec).expect("serializable"),
        )
        .map_err(io("write config"))?;
        self.write_state(&cspec.id, &State::default())
    }

    /// OCI `start`: release the init blocked on `exec.fifo`.
    pub fn oci_start(&self, id: &str) -> Result<(), ContainerError> {
        let st = self.state(id)?;
        let spec = self.spec(id)?;
        let pid = st.pid.unwrap_or(0);
        if st.status != Status::Created {
            return Err(ContainerError::WrongState {
                id: id.to_string(),
                status: st.status,
            });
        }
        let fifo = self.container_dir(id).join("exec.fifo");
        // opening for reading unblocks the init's open for writing; it then writes one byte
        let mut buf = Vec::new();
        let mut f = fs::File::open(&fifo).map_err(|source| ContainerError::Io {
            step: "open exec fifo",
            path: fifo.clone(),
            source,
        })?;
        let _ = std::io::Read::read_to_end(&mut f, &mut buf);
        let _ = fs::remove_file(&fifo);
        // the shim flips the state to running once the exec happened
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut st = self.state(id)?;
        while st.status == Status::Created && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(2));
            st = self.state(id)?;
        }
        // the init failed after `create` returned (a startContainer hook, the exec)
        if let (Status::Stopped, Some(message)) = (st.status, st.error) {
            let code = st.exit_code.unwrap_or(125);
            return Err(ContainerError::StartFailed { code, message });
        }
        if let Some(b) = &spec.bundle_process {
            let state = b.hook_state(Phase::Poststart, id, spec.bundle.as_deref(), pid);
            hooks::run_warning(Phase::Poststart, &b.hooks, &state);
        }
        Ok(())
    }

    /// OCI `delete`: remove the container, then run its `poststop` hooks (a failure is a
    /// warning). A container that does not exist (a failed `create` leaves none) is an error,
    /// but with `force` nothing to do, as runc: runtime-tools cleans up with `delete --force`.
    pub fn oci_delete(&self, id: &str, force: bool) -> Result<(), ContainerError> {
        if !self.has_config(id) {
            tracing::debug!(id, force, "delete: no such container");
            return match force {
                true => Ok(()),
                false => Err(ContainerError::NotFound { id: id.to_string() }),
            };
        }
        let spec = self.spec(id)?;
        let pid = self.state(id)?.pid.unwrap_or(0);
        self.remove(id, force)?;
        if let Some(b) = &spec.bundle_process {
            let state = b.hook_state(Phase::Poststop, id, spec.bundle.as_deref(), pid);
            hooks::run_warning(Phase::Poststop, &b.hooks, &state);
        }
        Ok(())
    }

    /// OCI `state` JSON.
    pub fn oci_state(&self, id: &str) -> Result<serde_json::Value, ContainerError> {
        let spec = self.spec(id)?;
        let st = self.state(id)?;
        let status = match st.status {
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
        };
        let annotations = spec
            .bundle_process
            .as_ref()
            .map(|b| b.annotations.clone())
            .unwrap_or_default();
        Ok(json!({
            "ociVersion": OCI_VERSION,
            "id": id,
            "status": status,
            "pid": if st.status == Status::Stopped { 0 } else { st.pid.unwrap_or(0) },
            "bundle": spec.bundle,
            "annotations": annotations,
        }))
    }
}
