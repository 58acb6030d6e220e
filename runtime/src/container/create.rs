//! `create`: resolve options and an image into a container's specification, and write it with
//! the container's directories (nothing runs yet). Everything is validated before the disk is
//! touched: the command must be in the image (or where a mount may provide it: `command.rs`),
//! the user in its `/etc/passwd`, limits and volumes well-formed. Read next: `start.rs`.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::image::Config as ImageConfig;

use super::command;
use super::sandbox::write_etc_files;
use super::{ContainerError, ContainerSpec, CreateOptions, Sandbox, State};
use crate::cgroups::Resources;
use crate::error::io_err;
use crate::image::Image;
use crate::maskedpaths::PathRules;
use crate::namespaces::Kind;
use crate::rootfs::{self, BindMount, RootSwitch, RootfsSpec};
use crate::store::{valid_name, write_json};
use crate::{capabilities, devices, logs, procfs, random_hex, Runtime};

/// Find `uid:gid` for a user spec (`name`, `uid`, `uid:gid`, `name:group`) in the image's
/// `/etc/passwd` and `/etc/group` (top layer first).
fn resolve_user(user: &str, image: &Image) -> Result<(u32, u32), ContainerError> {
    let find = |file: &str, name: &str| -> Option<(u32, u32)> {
        for dir in image.layers.iter().rev() {
            if let Ok(text) = fs::read_to_string(dir.join(file)) {
                for l in text.lines() {
                    let f: Vec<&str> = l.split(':').collect();
                    if f.len() >= 4 && f[0] == name {
                        return Some((f[2].parse().ok()?, f[3].parse().ok()?));
                    }
                }
                return None;
            }
        }
        None
    };
    let bad = || ContainerError::InvalidOption {
        flag: "user",
        value: user.to_string(),
        reason: "unknown user or group in the image",
    };
    let (u, g) = user
        .split_once(':')
        .map_or((user, None), |(u, g)| (u, Some(g)));
    let (uid, pgid) = match u.parse::<u32>() {
        Ok(n) => (n, find("etc/passwd", u).map(|(_, g)| g).unwrap_or(n)),
        Err(_) => find("etc/passwd", u).ok_or_else(bad)?,
    };
    let gid = match g {
        None => pgid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => find("etc/group", g).map(|(gid, _)| gid).ok_or_else(bad)?,
        },
    };
    Ok((uid, gid))
}

/// Parse `HOST:CTR[:ro|rw]`.
pub fn parse_volume(v: &str) -> Result<BindMount, ContainerError> {
    let bad = |reason| ContainerError::InvalidOption {
        flag: "volume",
        value: v.to_string(),
        reason,
    };
    let parts: Vec<&str> = v.split(':').collect();
    let (host, ctr, mode) = match parts.as_slice() {
        [h, c] => (*h, *c, "rw"),
        [h, c, m] => (*h, *c, *m),
        _ => return Err(bad("expected HOST:CONTAINER[:ro]")),
    };
    if !host.starts_with('/') || !ctr.starts_with('/') {
        return Err(bad("both paths must be absolute"));
    }
    if ctr.split('/').any(|c| c == "..") {
        return Err(bad("container path must not contain '..'"));
    }
    let readonly = match mode {
        "ro" => true,
        "rw" => false,
        _ => return Err(bad("mode must be ro or rw")),
    };
    let source = fs::canonicalize(host).map_err(|_| bad("host path does not exist"))?;
    Ok(BindMount {
        source,
        destination: PathBuf::from(ctr),
        readonly,
    })
}

impl Runtime {
    /// Resolve options and an image into a container directory with its `config.json`.
    /// On any error nothing is left behind. The recipe:
    /// 1. [`Runtime::validate`]: everything about the options and the image, before the disk is
    ///    touched;
    /// 2. [`Runtime::place`]: the container's id, directories, hostname, namespaces and cgroup,
    ///    alone or in its sandbox;
    /// 3. [`Runtime::assemble`]: the specification;
    /// 4. [`Runtime::write_container`]: its directories and files, `config.json` last.
    pub fn create(&self, opts: &CreateOptions) -> Result<ContainerSpec, ContainerError> {
        let valid = self.validate(opts)?;
        let place = self.place(opts, valid.sandbox.as_ref());
        let spec = self.assemble(opts, valid, &place)?;
        self.reserve_name(&spec.name, &spec.id)?;
        if let Err(e) = self.write_container(&spec, &place) {
            let _ = fs::remove_dir_all(&place.dir);
            let _ = fs::remove_dir_all(&place.disk);
            self.release_name(&spec.name, &spec.id);
            return Err(e);
        }
        tracing::debug!(id = spec.id, image = %spec.image, "container created");
        Ok(spec)
    }

    /// Step 1: resolve the image and check every option against it.
    fn validate(&self, opts: &CreateOptions) -> Result<Validated, ContainerError> {
        let image = self.images.resolve(&opts.image)?;
        let ic = image.config.config().clone().unwrap_or_default();
        let args = command_line(opts, &ic)?;
        let env = environment(opts, &ic)?;
        let cwd = opts
            .workdir
            .clone()
            .or_else(|| ic.working_dir().clone().filter(|w| !w.is_empty()))
            .unwrap_or_else(|| "/".into());
        let resources = resources(opts)?;
        let volumes = opts
            .volumes
            .iter()
            .map(|v| parse_volume(v))
            .collect::<Result<Vec<_>, _>>()?;
        // certainly missing: fail now; what a mount may provide, the init looks up inside
        let view = command::View {
            layers: image.layers.iter().rev().map(PathBuf::as_path).collect(),
            mounts: volumes
                .iter()
                .map(|v| v.destination.clone())
                .chain(rootfs::mount_points())
                .collect(),
        };
        if view.find_command(&args[0], &env, &cwd) == command::Presence::Absent {
            return Err(ContainerError::CommandNotFound {
                command: args[0].clone(),
            });
        }
        let capabilities = capabilities::mask(opts.privileged, &opts.cap_add, &opts.cap_drop)?;
        let (uid, gid) = match opts
            .user
            .clone()
            .or_else(|| ic.user().clone().filter(|u| !u.is_empty()))
        {
            Some(u) => resolve_user(&u, &image)?,
            None => (0, 0),
        };
        if let Some(name) = &opts.name {
            if !valid_name(name) {
                return Err(ContainerError::InvalidOption {
                    flag: "name",
                    value: name.clone(),
                    reason: "use letters, digits, '-', '_' or '.'",
                });
            }
        }
        let sandbox = match &opts.sandbox {
            Some(s) => Some(self.sandbox(s)?),
            None => None,
        };
        Ok(Validated {
            image,
            args,
            env,
            cwd,
            resources,
            volumes,
            capabilities,
            uid,
            gid,
            sandbox,
        })
    }

    /// Step 2: a fresh id and where the container goes: its directories, hostname, the pod
    /// namespaces it joins, where its `/etc` files come from, its pod-level cgroup.
    fn place(&self, opts: &CreateOptions, sandbox: Option<&Sandbox>) -> Placement {
        let id = random_hex(32);
        let dir = self.container_dir(&id);
        let hostname = opts
            .hostname
            .clone()
            .or_else(|| sandbox.map(|s| s.hostname.clone()))
            .unwrap_or_else(|| id[..12].to_string());
        let (join_namespaces, etc_dir, pod_cgroup) = match sandbox {
            Some(sb) => {
                let sdir = self.sandbox_dir(&sb.id);
                let shared_pid = sb.pause_pid.map(|_| Kind::Pid);
                let join = [Kind::Net, Kind::Ipc, Kind::Uts]
                    .into_iter()
                    .chain(shared_pid)
                    .map(|k| (k, sdir.join(k.proc_name())))
                    .collect();
                (join, sdir, sb.cgroup.clone())
            }
            None => (
                Vec::new(),
                dir.clone(),
                self.cgroup_parent.join(format!("pod-{}", &id[..12])),
            ),
        };
        Placement {
            disk: self.container_disk_dir(&id),
            dir,
            hostname,
            join_namespaces,
            etc_dir,
            pod_cgroup,
            own_etc_files: sandbox.is_none(),
            id,
        }
    }

    /// Step 3: the container's specification, from the validated options and its place.
    fn assemble(
        &self,
        opts: &CreateOptions,
        valid: Validated,
        place: &Placement,
    ) -> Result<ContainerSpec, ContainerError> {
        let Validated {
            image,
            args,
            mut env,
            cwd,
            resources,
            volumes,
            capabilities,
            uid,
            gid,
            sandbox: _,
        } = valid;
        let id = &place.id;
        if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
            env.push(format!("HOSTNAME={}", place.hostname));
        }
        if opts.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        let init_layer = rootfs::init_layer(&self.root)?;
        Ok(ContainerSpec {
            id: id.clone(),
            name: opts
                .name
                .clone()
                .unwrap_or_else(|| format!("c-{}", &id[..12])),
            image: image.name.clone(),
            image_manifest: image.manifest_digest.clone(),
            created_at: logs::now(),
            args,
            env,
            cwd,
            uid,
            gid,
            hostname: place.hostname.clone(),
            tty: opts.tty,
            sandbox: opts.sandbox.clone(),
            join_namespaces: place.join_namespaces.clone(),
            namespaces: None,
            rootfs: RootfsSpec {
                lowerdirs: image
                    .layers
                    .iter()
                    .rev()
                    .cloned()
                    .chain([init_layer])
                    .collect(),
                upperdir: place.disk.join("upper"),
                workdir: place.disk.join("work"),
                merged: place.dir.join("rootfs"),
                files: bound_files(place, &resources, opts.readonly, &volumes)
                    .into_iter()
                    .filter(|f| !(opts.teaching.host_proc && f.destination.starts_with("/proc")))
                    .collect(),
                volumes,
                readonly: opts.readonly,
                privileged: opts.privileged,
                path_rules: PathRules::docker_default(opts.privileged),
                bind_rootfs: None,
                switch: match opts.teaching.chroot {
                    true => RootSwitch::Chroot,
                    false => RootSwitch::PivotRoot,
                },
                bundle: None,
            },
            capabilities,
            no_new_privs: opts.no_new_privs,
            seccomp: crate::seccomp::for_container_cached(
                &opts.seccomp,
                opts.privileged,
                capabilities,
                &self.state,
            )?,
            resources,
            cgroup: place.pod_cgroup.join(&id[..12]),
            pod_cgroup: place.pod_cgroup.clone(),
            cgroup_hierarchy: self.cgroups.clone(),
            auto_remove: opts.auto_remove,
            init: opts.init,
            wait_for_start: opts.wait_for_start,
            log_path: place.disk.join("container.log"),
            bundle: None,
            bundle_process: None,
        })
    }

    /// Step 4: the container's directories (on tmpfs and on disk), its own `/etc` files when it
    /// has no sandbox, the generated `/proc` files, the exec fifo of an OCI `create`, then
    /// `config.json` (which makes the container exist) and its first state.
    fn write_container(
        &self,
        spec: &ContainerSpec,
        place: &Placement,
    ) -> Result<(), ContainerError> {
        let (dir, disk) = (&place.dir, &place.disk);
        for p in [dir.join("rootfs"), disk.join("upper"), disk.join("work")] {
            fs::create_dir_all(&p).map_err(io_err("create container dir", &p))?;
        }
        if place.own_etc_files {
            write_etc_files(dir, &place.hostname, None)?;
        }
        let bound = |f: &str| {
            spec.rootfs
                .files
                .iter()
                .any(|b| b.destination == Path::new(f))
        };
        if let Some(m) = spec
            .resources
            .memory_bytes
            .filter(|_| bound("/proc/meminfo"))
        {
            fs::write(dir.join("meminfo"), procfs::meminfo(m))
                .map_err(io_err("write meminfo", dir))?;
        }
        if let Some(q) = spec.resources.cpu_quota.filter(|_| bound("/proc/cpuinfo")) {
            let host = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
            let n = q.whole_cpus() as usize;
            fs::write(dir.join("cpuinfo"), procfs::cpuinfo(&host, n))
                .map_err(io_err("write cpuinfo", dir))?;
        }
        if spec.wait_for_start {
            let fifo = dir.join("exec.fifo");
            nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(
                |e| ContainerError::Io {
                    step: "mkfifo",
                    path: fifo.clone(),
                    source: e.into(),
                },
            )?;
        }
        write_json(&dir.join("config.json"), spec)?;
        self.write_state(&spec.id, &State::default())
    }
}

/// What step 1 of `create` found valid.
struct Validated {
    image: Image,
    /// Entrypoint and command.
    args: Vec<String>,
    env: Vec<String>,
    cwd: String,
    resources: Resources,
    volumes: Vec<BindMount>,
    capabilities: u64,
    uid: u32,
    gid: u32,
    sandbox: Option<Sandbox>,
}

/// Where step 2 of `create` puts the container.
struct Placement {
    id: String,
    /// On tmpfs: config, state, generated files, the rootfs mount point.
    dir: PathBuf,
    /// On disk: the writable layer and the log.
    disk: PathBuf,
    hostname: String,
    join_namespaces: Vec<(Kind, PathBuf)>,
    /// Where `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf` come from: the sandbox's,
    /// or the container's own directory.
    etc_dir: PathBuf,
    pod_cgroup: PathBuf,
    /// No sandbox: the container writes its own `/etc` files.
    own_etc_files: bool,
}

/// The image's Entrypoint (or the options') followed by its Cmd, which a command in the options
/// replaces, like `docker run IMAGE CMD...`.
fn command_line(opts: &CreateOptions, ic: &ImageConfig) -> Result<Vec<String>, ContainerError> {
    let entrypoint = opts
        .entrypoint
        .clone()
        .unwrap_or_else(|| ic.entrypoint().clone().unwrap_or_default());
    let cmd = if opts.command.is_empty() {
        ic.cmd().clone().unwrap_or_default()
    } else {
        opts.command.clone()
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(ContainerError::InvalidOption {
            flag: "command",
            value: String::new(),
            reason: "the image has no default command; give one",
        });
    }
    Ok(args)
}

/// The image's environment, overridden by the options' `KEY=VALUE`s, with a default `PATH`.
fn environment(opts: &CreateOptions, ic: &ImageConfig) -> Result<Vec<String>, ContainerError> {
    let mut env: Vec<String> = ic.env().clone().unwrap_or_default();
    for e in &opts.env {
        let Some((k, _)) = e.split_once('=') else {
            return Err(ContainerError::InvalidOption {
                flag: "env",
                value: e.clone(),
                reason: "expected KEY=VALUE",
            });
        };
        env.retain(|x| x.split_once('=').map(|(xk, _)| xk) != Some(k));
        env.push(e.clone());
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    Ok(env)
}

/// Files bound into the container: the `/etc` files, and `/proc/meminfo` and `/proc/cpuinfo`
/// generated from the limits when there are limits. An `/etc` file the caller mounts a volume
/// over is left to it (as containerd leaves `/etc/hosts` to the kubelet's own file).
fn bound_files(
    place: &Placement,
    resources: &Resources,
    readonly: bool,
    volumes: &[BindMount],
) -> Vec<BindMount> {
    let mut files: Vec<BindMount> = ["hosts", "hostname", "resolv.conf"]
        .iter()
        .map(|f| BindMount {
            source: place.etc_dir.join(f),
            destination: Path::new("/etc").join(f),
            readonly,
        })
        .filter(|f| !volumes.iter().any(|v| v.destination == f.destination))
        .collect();
    if resources.memory_bytes.is_some() {
        files.push(BindMount {
            source: place.dir.join("meminfo"),
            destination: "/proc/meminfo".into(),
            readonly: true,
        });
    }
    if resources.cpu_quota.is_some() {
        files.push(BindMount {
            source: place.dir.join("cpuinfo"),
            destination: "/proc/cpuinfo".into(),
            readonly: true,
        });
    }
    files
}

/// The cgroup limits of the options, checked against what the kernel takes.
fn resources(opts: &CreateOptions) -> Result<Resources, ContainerError> {
    let invalid = |flag, value: String, reason| ContainerError::InvalidOption {
        flag,
        value,
        reason,
    };
    if let Some(q) = opts.cpu_quota.filter(|q| !q.is_valid()) {
        return Err(invalid(
            "cpus",
            format!("{}/{} µs", q.quota_us, q.period_us),
            "the CPU quota and period must be at least 1 ms, the period at most 1 s",
        ));
    }
    if let Some(m) = opts.memory_bytes.filter(|m| *m < 1 << 20) {
        return Err(invalid(
            "memory",
            m.to_string(),
            "expected a size of at least 1 MiB",
        ));
    }
    if let Some(p) = opts.pids.filter(|p| *p == 0) {
        return Err(invalid("pids", p.to_string(), "must be positive"));
    }
    Ok(Resources {
        cpu_quota: opts.cpu_quota,
        cpu_shares: opts.cpu_shares,
        memory_bytes: opts.memory_bytes,
        pids: opts.pids,
        cpuset_cpus: opts.cpuset.clone(),
        devices: if opts.privileged {
            Vec::new()
        } else {
            devices::default_rules()
        },
        tuning: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_volume_over_an_etc_file_replaces_the_runtimes_own() {
        let place = Placement {
            id: "c1".into(),
            dir: "/run/c1".into(),
            disk: "/var/c1".into(),
            hostname: "web".into(),
            join_namespaces: Vec::new(),
            etc_dir: "/run/sandbox".into(),
            pod_cgroup: "/pod".into(),
            own_etc_files: false,
        };
        let hosts = BindMount {
            source: "/pods/u1/etc-hosts".into(),
            destination: "/etc/hosts/".into(),
            readonly: false,
        };
        let files = bound_files(&place, &Resources::default(), false, &[hosts]);
        let destinations: Vec<&Path> = files.iter().map(|f| f.destination.as_path()).collect();
        assert_eq!(
            destinations,
            [Path::new("/etc/hostname"), Path::new("/etc/resolv.conf")]
        );
        let all = bound_files(&place, &Resources::default(), false, &[]);
        assert_eq!(all.len(), 3);
    }
}
