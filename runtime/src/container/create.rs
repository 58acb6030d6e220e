//! `create`: resolve options and an image into a container's specification, and write it with
//! the container's directories (nothing runs yet). Everything is validated before the disk is
//! touched: the command must be in the image, the user in its `/etc/passwd`, limits and volumes
//! well-formed. Read next: `start.rs`.

use std::fs;
use std::path::{Path, PathBuf};

use super::sandbox::write_etc_files;
use super::{ContainerError, ContainerSpec, CreateOptions, State};
use crate::cgroups::{self, Resources};
use crate::error::io_err;
use crate::image::Image;
use crate::namespaces::Kind;
use crate::rootfs::{self, BindMount, RootfsSpec};
use crate::store::{valid_name, write_json};
use crate::{capabilities, layer, logs, procfs, random_hex, Runtime};

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

/// Does `command` exist in the image (PATH lookup over the layers, honouring whiteouts)?
fn command_in_image(command: &str, env: &[String], image: &Image) -> bool {
    let lookup = |path: &str| -> bool {
        let rel = path.trim_start_matches('/');
        for dir in image.layers.iter().rev() {
            // symlinked dirs (bin -> usr/bin) resolve inside the layer stack only approximately:
            // accept anything that resolves in some layer
            if let Ok(p) = layer::resolve_in_root(dir, Path::new(rel), Path::new(rel), false) {
                if let Ok(m) = fs::symlink_metadata(&p) {
                    return !layer::is_whiteout(&m);
                }
            }
        }
        false
    };
    if command.contains('/') {
        return lookup(command);
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':').any(|d| lookup(&format!("{d}/{command}")))
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
    /// On any error nothing is left behind.
    pub fn create(&self, opts: &CreateOptions) -> Result<ContainerSpec, ContainerError> {
        // validate everything before touching the disk
        let image = self.images.resolve(&opts.image)?;
        let ic = image.config.config().clone().unwrap_or_default();
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
        if !command_in_image(&args[0], &env, &image) {
            return Err(ContainerError::CommandNotFound {
                command: args[0].clone(),
            });
        }
        let resources = Resources {
            cpu_quota_us: match &opts.cpus {
                None => None,
                Some(c) => Some(cgroups::cpus_to_quota(c).ok_or_else(|| {
                    ContainerError::InvalidOption {
                        flag: "cpus",
                        value: c.clone(),
                        reason: "expected a positive number of CPUs like 0.5 or 500m",
                    }
                })?),
            },
            cpu_shares: opts.cpu_shares,
            memory_bytes: match &opts.memory {
                None => None,
                Some(m) => Some(
                    cgroups::parse_bytes(m)
                        .filter(|b| *b >= 1 << 20)
                        .ok_or_else(|| ContainerError::InvalidOption {
                            flag: "memory",
                            value: m.clone(),
                            reason: "expected a size of at least 1Mi like 64Mi or 1G",
                        })?,
                ),
            },
            pids: match opts.pids {
                None => None,
                Some(p) if p > 0 => Some(p as u64),
                Some(p) => {
                    return Err(ContainerError::InvalidOption {
                        flag: "pids",
                        value: p.to_string(),
                        reason: "must be positive",
                    })
                }
            },
            cpuset_cpus: opts.cpuset.clone(),
        };
        let volumes = opts
            .volumes
            .iter()
            .map(|v| parse_volume(v))
            .collect::<Result<Vec<_>, _>>()?;
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

        let id = random_hex(32);
        let dir = self.container_dir(&id);
        let disk = self.container_disk_dir(&id);
        let name = opts
            .name
            .clone()
            .unwrap_or_else(|| format!("c-{}", &id[..12]));
        let hostname = opts
            .hostname
            .clone()
            .or_else(|| sandbox.as_ref().map(|s| s.hostname.clone()))
            .unwrap_or_else(|| id[..12].to_string());
        let (join_namespaces, etc_dir, pod_cgroup) = match &sandbox {
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
        if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
            env.push(format!("HOSTNAME={hostname}"));
        }
        if opts.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        let mut files: Vec<BindMount> = ["hosts", "hostname", "resolv.conf"]
            .iter()
            .map(|f| BindMount {
                source: etc_dir.join(f),
                destination: Path::new("/etc").join(f),
                readonly: opts.readonly,
            })
            .collect();
        if let Some(m) = resources.memory_bytes {
            files.push(BindMount {
                source: dir.join("meminfo"),
                destination: "/proc/meminfo".into(),
                readonly: true,
            });
            let _ = m;
        }
        if resources.cpu_quota_us.is_some() {
            files.push(BindMount {
                source: dir.join("cpuinfo"),
                destination: "/proc/cpuinfo".into(),
                readonly: true,
            });
        }
        let init_layer = rootfs::init_layer(&self.root)?;
        let spec = ContainerSpec {
            id: id.clone(),
            name,
            image: image.name.clone(),
            image_manifest: image.manifest_digest.clone(),
            created_at: logs::now(),
            args,
            env,
            cwd: opts
                .workdir
                .clone()
                .or_else(|| ic.working_dir().clone().filter(|w| !w.is_empty()))
                .unwrap_or_else(|| "/".into()),
            uid,
            gid,
            hostname: hostname.clone(),
            tty: opts.tty,
            sandbox: opts.sandbox.clone(),
            join_namespaces,
            rootfs: RootfsSpec {
                lowerdirs: image
                    .layers
                    .iter()
                    .rev()
                    .cloned()
                    .chain([init_layer])
                    .collect(),
                upperdir: disk.join("upper"),
                workdir: disk.join("work"),
                merged: dir.join("rootfs"),
                files,
                volumes,
                readonly: opts.readonly,
                privileged: opts.privileged,
                bind_rootfs: None,
            },
            capabilities,
            no_new_privs: opts.no_new_privs,
            resources,
            cgroup: pod_cgroup.join(&id[..12]),
            pod_cgroup,
            cgroup_hierarchy: self.cgroups.clone(),
            auto_remove: opts.auto_remove,
            wait_for_start: opts.wait_for_start,
            log_path: disk.join("container.log"),
            bundle: None,
        };
        self.reserve_name(&spec.name, &id)?;
        let result = (|| {
            for p in [dir.join("rootfs"), disk.join("upper"), disk.join("work")] {
                fs::create_dir_all(&p).map_err(io_err("create container dir", &p))?;
            }
            if sandbox.is_none() {
                write_etc_files(&dir, &hostname)?;
            }
            if let Some(m) = spec.resources.memory_bytes {
                fs::write(dir.join("meminfo"), procfs::meminfo(m))
                    .map_err(io_err("write meminfo", &dir))?;
            }
            if let Some(q) = spec.resources.cpu_quota_us {
                let host = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
                let n = q.div_ceil(cgroups::CPU_PERIOD_US) as usize;
                fs::write(dir.join("cpuinfo"), procfs::cpuinfo(&host, n))
                    .map_err(io_err("write cpuinfo", &dir))?;
            }
            if spec.wait_for_start {
                nix::unistd::mkfifo(
                    &dir.join("exec.fifo"),
                    nix::sys::stat::Mode::from_bits_truncate(0o600),
                )
                .map_err(|e| ContainerError::Io {
                    step: "mkfifo",
                    path: dir.join("exec.fifo"),
                    source: e.into(),
                })?;
            }
            write_json(&dir.join("config.json"), &spec)?;
            self.write_state(&id, &State::default())
        })();
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&dir);
            let _ = fs::remove_dir_all(&disk);
            self.release_name(&spec.name, &id);
            return Err(e);
        }
        tracing::debug!(id, image = %spec.image, "container created");
        Ok(spec)
    }
}
