//! The OCI runtime command line (runtime-spec `runtime.md`), which conformance suites such as
//! runtime-tools' validation and youki's `contest` drive: `create --bundle DIR ID` prepares
//! the container from the bundle's `config.json` (parsed with `oci-spec`) and leaves its init
//! blocked on `exec.fifo`; `start ID` opens the fifo so the init execs the user process;
//! `state ID` prints the lifecycle JSON; `kill` and `delete` finish it. The bundle's `rootfs`
//! is bind-mounted instead of an overlay; everything else reuses the container path.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Linux, LinuxDeviceCgroup, LinuxDeviceType, LinuxNamespaceType, Process, Spec,
};
use serde_json::json;

use super::cgroups::{CpuQuota, Resources, CPU_PERIOD_US};
use super::container::{Attach, ContainerError, ContainerSpec, State, Status};
use super::devices::{self, DeviceKind, DeviceRule};
use super::maskedpaths::PathRules;
use super::namespaces::Kind;
use super::rootfs::{BindMount, RootfsSpec};
use super::seccomp::{self, Compiled, Profile, SeccompError};
use super::{capabilities, logs, Runtime};

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

/// The net, ipc and uts namespaces the bundle names by path: joined; the others are created.
fn namespaces_to_join(linux: &Linux) -> Vec<(Kind, PathBuf)> {
    let mut join = Vec::new();
    for ns in linux.namespaces().clone().unwrap_or_default() {
        let kind = match ns.typ() {
            LinuxNamespaceType::Network => Kind::Net,
            LinuxNamespaceType::Ipc => Kind::Ipc,
            LinuxNamespaceType::Uts => Kind::Uts,
            _ => continue,
        };
        if let Some(p) = ns.path() {
            join.push((kind, p.clone()));
        }
    }
    join
}

/// The bundle's cgroup limits.
fn resources(linux: &Linux) -> Resources {
    let res = linux.resources().clone().unwrap_or_default();
    let cpu = res.cpu().clone().unwrap_or_default();
    Resources {
        cpu_quota: cpu.quota().filter(|q| *q > 0).map(|q| CpuQuota {
            quota_us: q as u64,
            period_us: cpu.period().unwrap_or(CPU_PERIOD_US),
        }),
        cpu_shares: cpu.shares(),
        memory_bytes: res
            .memory()
            .as_ref()
            .and_then(|m| m.limit())
            .filter(|l| *l > 0)
            .map(|l| l as u64),
        pids: res
            .pids()
            .as_ref()
            .map(|p| p.limit())
            .filter(|l| *l > 0)
            .map(|l| l as u64),
        cpuset_cpus: cpu.cpus().clone(),
        devices: device_rules(res.devices()),
    }
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

/// The bundle's bind mounts (`type: bind`, or a `bind`/`rbind` option); `ro` makes one
/// read-only.
fn bind_mounts(spec: &Spec) -> Vec<BindMount> {
    spec.mounts()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| {
            m.typ().as_deref() == Some("bind")
                || m.options()
                    .as_ref()
                    .is_some_and(|o| o.iter().any(|x| x == "bind" || x == "rbind"))
        })
        .filter_map(|m| {
            let readonly = m
                .options()
                .as_ref()
                .is_some_and(|o| o.iter().any(|x| x == "ro"));
            Some(BindMount {
                source: m.source().clone()?,
                destination: m.destination().clone(),
                readonly,
            })
        })
        .collect()
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
        let join = namespaces_to_join(&linux);
        let resources = resources(&linux);
        let volumes = bind_mounts(&spec);
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
            rootfs: RootfsSpec {
                lowerdirs: Vec::new(),
                upperdir: PathBuf::new(),
                workdir: PathBuf::new(),
                merged: dir.join("rootfs"),
                files: Vec::new(),
                volumes,
                readonly: root.readonly().unwrap_or(false),
                privileged: false,
                path_rules: path_rules(&linux),
                bind_rootfs: Some(rootfs_dir),
            },
            capabilities: mask,
            no_new_privs: process.no_new_privileges().unwrap_or(false),
            seccomp: seccomp_filter(&linux, mask)?,
            resources,
            cgroup: self.cgroup_parent.join(format!("oci-{id}")).join("ctr"),
            pod_cgroup: self.cgroup_parent.join(format!("oci-{id}")),
            cgroup_hierarchy: self.cgroups.clone(),
            auto_remove: false,
            init: false,
            wait_for_start: true,
            log_path: dir.join("container.log"),
            bundle: Some(bundle.clone()),
        };
        self.write_bundle_container(&cspec)?;
        match self.start(id, Attach::Detached) {
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
        while self.state(id)?.status == Status::Created && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(2));
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
        Ok(json!({
            "ociVersion": "1.0.2",
            "id": id,
            "status": status,
            "pid": if st.status == Status::Stopped { 0 } else { st.pid.unwrap_or(0) },
            "bundle": spec.bundle,
            "annotations": {},
        }))
    }
}
