//! Containers: the runtime's CRI-like surface. `create` turns options + an image into a
//! `config.json` in the container's directory (nothing runs yet); `start` launches a shim that
//! forks the container's init; `stop` sends SIGTERM, waits the grace period, then SIGKILLs;
//! `remove` deletes the directory, cgroups and logs. The state (`state.json`, written by the
//! shim) is the only truth between processes, so any later CLI call can adopt the container.
//! Sandboxes (pods) pin shared net/ipc/uts namespaces and own the pod cgroup.


use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::cgroups::{self, Resources};
use super::image::Image;
use super::namespaces::{self, Kind};
use super::rootfs::{self, BindMount, RootfsSpec};
use super::store::{read_json, valid_name, write_json};
use super::{capabilities, layer, logs, pause, procfs, random_hex, Runtime};

pub use super::error::ContainerError;
use super::error::io_err;
pub use super::spec::ContainerSpec;
pub use super::state::{State, Status};
pub use super::wait::alive;

/// Options of `run`/`create`, as the CLI or the kubelet gives them.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub name: Option<String>,
    pub image: String,
    /// Replaces the image's Cmd (and keeps its Entrypoint), like `docker run IMAGE CMD...`.
    pub command: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<String>,
    pub volumes: Vec<String>,
    pub hostname: Option<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub cpus: Option<String>,
    pub cpu_shares: Option<u64>,
    pub memory: Option<String>,
    pub pids: Option<i64>,
    pub cpuset: Option<String>,
    pub tty: bool,
    pub sandbox: Option<String>,
    pub readonly: bool,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub no_new_privs: bool,
    pub auto_remove: bool,
    pub wait_for_start: bool,
}

/// A pod sandbox: pinned namespaces, per-pod /etc files and the pod cgroup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sandbox {
    pub id: String,
    pub hostname: String,
    pub cgroup: PathBuf,
    pub created_at: String,
    /// Host pid of the pause process, PID 1 of the pod's shared pid namespace (`pause.rs`);
    /// `None`: every container gets its own pid namespace.
    #[serde(default)]
    pub pause_pid: Option<i32>,
}

/// Options of `sandbox create`: the pod-level part of a PodSpec.
#[derive(Debug, Clone, Default)]
pub struct SandboxOptions {
    /// Defaults to the sandbox id.
    pub hostname: Option<String>,
    /// `shareProcessNamespace: true`: all containers in one pid namespace.
    pub share_pid: bool,
}

/// How `start` connects to the container's stdio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// Output only to the log; `start` returns once the command runs.
    Detached,
    /// Output also to our stdout/stderr; stdin forwarded if `stdin`.
    Foreground { stdin: bool },
}

/// What a started container reports back.
pub struct Started {
    pub pid: i32,
    /// Kept open in foreground mode: the shim writes `exited <code> <oom>` here.
    status: Option<BufReader<fs::File>>,
}

impl Started {
    /// Wait for the exit line of a foreground container: (exit code, OOM killed).
    pub fn wait(mut self) -> Option<(i32, bool)> {
        let mut line = String::new();
        self.status.as_mut()?.read_line(&mut line).ok()?;
        let mut it = line.split_whitespace();
        match (it.next(), it.next(), it.next()) {
            (Some("exited"), Some(code), Some(oom)) => Some((code.parse().ok()?, oom == "1")),
            _ => None,
        }
    }
}

/// Whether this process has a single thread: only then may it fork and go on running Rust
/// code in the child (with more threads, the child may only exec).
fn single_threaded() -> bool {
    fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.split_whitespace().eq(["Threads:", "1"]))
        })
        .unwrap_or(false)
}

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
    pub fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.state.join("sandboxes").join(id)
    }

    /// Create a sandbox: pinned net/ipc/uts namespaces (loopback up), /etc files, pod cgroup.
    pub fn create_sandbox(
        &self,
        id: &str,
        hostname: Option<&str>,
    ) -> Result<Sandbox, ContainerError> {
        let opts = SandboxOptions {
            hostname: hostname.map(str::to_string),
            share_pid: false,
        };
        self.create_sandbox_with(id, &opts)
    }

    /// Create a sandbox with `opts`; with `share_pid` also its pid namespace and pause process.
    pub fn create_sandbox_with(
        &self,
        id: &str,
        opts: &SandboxOptions,
    ) -> Result<Sandbox, ContainerError> {
        let hostname = opts.hostname.as_deref();
        let dir = self.sandbox_dir(id);
        if dir.exists() {
            return Err(ContainerError::NameInUse {
                name: id.to_string(),
            });
        }
        fs::create_dir_all(&dir).map_err(io_err("create sandbox dir", &dir))?;
        let hostname = hostname.unwrap_or(id).to_string();
        let mut sb = Sandbox {
            id: id.to_string(),
            hostname: hostname.clone(),
            cgroup: self.cgroup_parent.join(id),
            created_at: logs::now(),
            pause_pid: None,
        };
        let result = (|| {
            write_etc_files(&dir, &hostname)?;
            namespaces::create_pinned(&dir, &hostname)?;
            self.cgroups.create(&sb.cgroup)?;
            if opts.share_pid {
                let pid = pause::spawn(&self.shim_exe, &self.root, &dir)?;
                sb.pause_pid = Some(pid);
                if let Err(e) = pause::pin(pid, &dir) {
                    pause::remove(Some(pid), &dir);
                    return Err(e.into());
                }
            }
            write_json(&dir.join("sandbox.json"), &sb)
        })();
        if let Err(e) = result {
            let _ = self.remove_sandbox(id, true);
            return Err(e);
        }
        Ok(sb)
    }

    pub fn sandbox(&self, id: &str) -> Result<Sandbox, ContainerError> {
        let path = self.sandbox_dir(id).join("sandbox.json");
        if !path.exists() {
            return Err(ContainerError::SandboxNotFound { id: id.to_string() });
        }
        read_json(&path)
    }

    pub fn sandbox_ids(&self) -> Vec<String> {
        fs::read_dir(self.state.join("sandboxes"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Remove a sandbox; with `force` its containers are stopped and removed first.
    pub fn remove_sandbox(&self, id: &str, force: bool) -> Result<(), ContainerError> {
        let dir = self.sandbox_dir(id);
        for cid in self.container_ids() {
            if self.spec(&cid).ok().and_then(|s| s.sandbox).as_deref() == Some(id) {
                if !force && self.state(&cid)?.status == Status::Running {
                    return Err(ContainerError::WrongState {
                        id: cid,
                        status: Status::Running,
                    });
                }
                self.remove(&cid, true)?;
            }
        }
        let sb = self.sandbox(id).ok();
        pause::remove(sb.as_ref().and_then(|sb| sb.pause_pid), &dir);
        namespaces::remove_pinned(&dir);
        // the pod level the sandbox recorded (its runtime's cgroup parent may not be ours);
        // the parent above it stays: others may be creating under it (cgroups.rs)
        let cg = sb.map_or_else(|| self.cgroup_parent.join(id), |sb| sb.cgroup);
        self.cgroups.remove(&cg)?;
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }

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

    /// Launch the shim for a created container and wait until the command runs (or fails).
    pub fn start(&self, id: &str, attach: Attach) -> Result<Started, ContainerError> {
        let st = self.state(id)?;
        if st.status != Status::Created || st.shim_pid.is_some() {
            return Err(ContainerError::WrongState {
                id: id.to_string(),
                status: st.status,
            });
        }
        let (status_r, status_w): (OwnedFd, OwnedFd) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| ContainerError::Io {
                step: "pipe",
                path: PathBuf::new(),
                source: e.into(),
            })?;
        let v2 = self.cgroups.version == cgroups::Version::V2;
        let single = single_threaded();
        // the spec, where this process needs it: for the v2 cgroups, or a forked shim's
        // (a re-exec'd shim reads it itself)
        let spec = if v2 || single {
            Some(self.spec(id)?)
        } else {
            None
        };
        // cgroup v2: the cgroups exist, with their limits, before the shim does. Creating a
        // cgroup takes the kernel's cgroup_mutex, which the attach priming below holds for an
        // RCU grace period (cgroups.rs), so a shim that created them would sit out that whole
        // wait. On v1 there is no priming, and the shim creates them while the init sets up.
        if let Some(spec) = spec.as_ref().filter(|_| v2) {
            if let Err(e) = spec
                .cgroup_hierarchy
                .create_limited(&spec.cgroup, &spec.resources)
            {
                let message = e.to_string();
                self.record_start_failure(spec, 125, &message);
                return Err(ContainerError::StartFailed { code: 125, message });
            }
        }
        let foreground = matches!(attach, Attach::Foreground { .. });
        let pid = match spec.filter(|_| single) {
            Some(spec) => self.fork_shim(spec, attach, &status_r, status_w)?,
            None => self.spawn_shim(id, attach, status_w)?,
        };
        // the shim's move of the init into its cgroup then waits less (cgroups.rs); on v1 the
        // init moves itself, with no wait to hide
        if v2 {
            self.cgroups.prime_attach();
        }
        let mut reader = BufReader::new(fs::File::from(status_r));
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let mut it = line.trim_end().splitn(3, ' ');
        let result = match (it.next(), it.next(), it.next()) {
            (Some("started"), Some(pid), _) => Ok(Started {
                pid: pid.parse().unwrap_or(0),
                status: foreground.then_some(reader),
            }),
            (Some("error"), Some(code), msg) => Err(ContainerError::StartFailed {
                code: code.parse().unwrap_or(125),
                message: msg.unwrap_or("").to_string(),
            }),
            _ => Err(ContainerError::StartFailed {
                code: 125,
                message: format!("shim exited without reporting ({})", line.trim()),
            }),
        };
        // the shim stays our child until we exit; reap it in the background if it ends first
        std::thread::spawn(move || {
            let _ = nix::sys::wait::waitpid(pid, None);
        });
        result
    }

    /// Start the shim as a re-exec of our binary (`shim_exe --root R shim ID`): the only safe
    /// way out of a multi-threaded caller such as the kubelet.
    fn spawn_shim(
        &self,
        id: &str,
        attach: Attach,
        status_w: OwnedFd,
    ) -> Result<Pid, ContainerError> {
        let mut cmd = Command::new(&self.shim_exe);
        cmd.arg("--root").arg(&self.root).arg("shim").arg(id);
        // the pipe's write end where `cmd` holds no copy of it: open until the shim has it
        let mut held = None;
        match attach {
            Attach::Detached => {
                // The status pipe goes in as the shim's stdout (it moves it off fd 1 and makes
                // its own session, `shim::main`): with no code to run between fork and exec,
                // the standard library spawns with posix_spawn, a vfork-like clone that neither
                // copies the caller's page tables nor leaves a multi-threaded kubelet taking
                // copy-on-write faults afterwards (4% of a 100-pod burst's CPU, measured).
                cmd.arg("--status-fd")
                    .arg("1")
                    .stdin(Stdio::null())
                    .stdout(Stdio::from(status_w))
                    .stderr(Stdio::null());
            }
            Attach::Foreground { stdin } => {
                cmd.arg("--status-fd").arg("3").arg("--attached");
                cmd.stdin(if stdin {
                    Stdio::inherit()
                } else {
                    Stdio::null()
                });
                let wfd = status_w.as_raw_fd();
                // SAFETY: the closure runs between fork and exec and only calls dup2(2) and
                // setsid(2), both async-signal-safe; `held` keeps `wfd` open until then.
                unsafe {
                    cmd.pre_exec(move || {
                        if libc::dup2(wfd, 3) < 0 || libc::setsid() < 0 {
                            return Err(io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
                held = Some(status_w);
            }
        }
        let child = cmd.spawn().map_err(io_err("spawn shim", &self.shim_exe))?;
        drop(held);
        Ok(Pid::from_raw(child.id() as i32))
    }

    /// Start the shim as a plain fork of a single-threaded caller (the CLI): it already holds
    /// the spec, and skips loading our binary a second time (milliseconds on every `run`).
    fn fork_shim(
        &self,
        spec: ContainerSpec,
        attach: Attach,
        status_r: &OwnedFd,
        status_w: OwnedFd,
    ) -> Result<Pid, ContainerError> {
        let fork_err = |errno: nix::Error| ContainerError::Io {
            step: "fork shim",
            path: self.container_dir(&spec.id),
            source: errno.into(),
        };
        // SAFETY: the caller checked that this process has a single thread, so the child may
        // run arbitrary code; it never returns into the caller (it ends in _exit).
        match unsafe { nix::unistd::fork() }.map_err(fork_err)? {
            nix::unistd::ForkResult::Parent { child } => Ok(child),
            nix::unistd::ForkResult::Child => {
                // SAFETY: the caller's read end, which this process never uses again.
                unsafe { libc::close(status_r.as_raw_fd()) };
                let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    let _ = nix::unistd::setsid();
                    let null = fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open("/dev/null");
                    if let Ok(null) = &null {
                        let targets: &[i32] = match attach {
                            Attach::Detached => &[0, 1, 2],
                            Attach::Foreground { stdin: false } => &[0],
                            Attach::Foreground { stdin: true } => &[],
                        };
                        for fd in targets {
                            // SAFETY: dup2(2) of a descriptor we hold onto one of 0/1/2.
                            unsafe { libc::dup2(null.as_raw_fd(), *fd) };
                        }
                    }
                    drop(null);
                    let attached = matches!(attach, Attach::Foreground { .. });
                    super::shim::serve(self, &spec, Some(fs::File::from(status_w)), attached)
                }))
                .unwrap_or(125);
                // SAFETY: _exit(2) ends the forked shim without running the caller's exit
                // handlers or flushing its buffers a second time.
                unsafe { libc::_exit(code) }
            }
        }
    }

    /// Send `signal` to the container's init.
    pub fn kill(&self, id: &str, signal: Signal) -> Result<(), ContainerError> {
        let st = self.state(id)?;
        match (st.status, st.pid) {
            (Status::Running | Status::Created, Some(pid)) if alive(pid) => {
                kill(Pid::from_raw(pid), signal).map_err(|errno| ContainerError::Signal {
                    signal,
                    pid,
                    errno,
                })
            }
            (status, _) => Err(ContainerError::WrongState {
                id: id.to_string(),
                status,
            }),
        }
    }

    /// Wait until the shim recorded the exit, up to `timeout`.
    pub fn wait_stopped(&self, id: &str, timeout: Duration) -> Result<State, ContainerError> {
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.state(id)?;
            if st.status == Status::Stopped || Instant::now() >= deadline {
                return Ok(st);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL; waits for the exit to be recorded.
    pub fn stop(&self, id: &str, grace: Duration) -> Result<State, ContainerError> {
        let st = self.state(id)?;
        if st.status == Status::Stopped {
            return Ok(st);
        }
        let Some(pid) = st.pid else {
            return Ok(st);
        };
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        let st = self.wait_stopped(id, grace)?;
        if st.status == Status::Stopped {
            return Ok(st);
        }
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        let st = self.wait_stopped(id, Duration::from_secs(10))?;
        if st.status != Status::Stopped && !alive(pid) {
            // no shim to record it: record it ourselves
            let mut st = st;
            st.status = Status::Stopped;
            st.exit_code = Some(137);
            st.finished_at = Some(logs::now());
            self.write_state(id, &st)?;
            return Ok(st);
        }
        Ok(st)
    }

    /// Remove a container: with `force` a running one is killed first. Idempotent on cgroups.
    pub fn remove(&self, id: &str, force: bool) -> Result<(), ContainerError> {
        let st = self.state(id)?;
        if st.status == Status::Running
            || (st.status == Status::Created && st.pid.is_some_and(alive))
        {
            if !force {
                return Err(ContainerError::WrongState {
                    id: id.to_string(),
                    status: st.status,
                });
            }
            self.stop(id, Duration::ZERO)?;
        }
        let spec = self.spec(id)?;
        self.cleanup(&spec)
    }

    /// The log text of a container (CRI records parsed back into lines), from byte `offset`.
    pub fn read_logs(
        &self,
        id: &str,
        offset: u64,
    ) -> Result<(Vec<(String, String)>, u64), ContainerError> {
        let spec = self.spec(id)?;
        let mut f = match fs::File::open(&spec.log_path) {
            Ok(f) => f,
            Err(_) => return Ok((Vec::new(), offset)),
        };
        use std::io::Seek;
        f.seek(io::SeekFrom::Start(offset))
            .map_err(io_err("seek log", &spec.log_path))?;
        let mut buf = String::new();
        f.read_to_string(&mut buf)
            .map_err(io_err("read log", &spec.log_path))?;
        // only consume complete records
        let complete = buf.rfind('\n').map_or(0, |i| i + 1);
        let mut out = Vec::new();
        let mut partial = String::new();
        for line in buf[..complete].lines() {
            if let Some(r) = logs::parse(line) {
                partial.push_str(r.text);
                if !r.partial {
                    out.push((r.stream.to_string(), std::mem::take(&mut partial)));
                }
            }
        }
        Ok((out, offset + complete as u64))
    }
}

/// The per-pod `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`.
fn write_etc_files(dir: &Path, hostname: &str) -> Result<(), ContainerError> {
    let hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
    );
    let resolv = fs::read_to_string("/etc/resolv.conf")
        .map(|s| {
            s.lines()
                .filter(|l| !l.contains("127.0.0."))
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        })
        .unwrap_or_default();
    for (name, content) in [
        ("hosts", hosts),
        ("hostname", format!("{hostname}\n")),
        ("resolv.conf", resolv),
    ] {
        let p = dir.join(name);
        fs::write(&p, content).map_err(io_err("write", &p))?;
    }
    Ok(())
}

impl Runtime {
    /// Configuration plus live kernel state: host pid, namespace inodes, cgroup limit files,
    /// overlay directories and the container's mounts.
    pub fn inspect(&self, id: &str) -> Result<serde_json::Value, ContainerError> {
        let spec = self.spec(id)?;
        let st = self.state(id)?;
        let live = st.pid.filter(|p| st.status != Status::Stopped && alive(*p));
        let ns: serde_json::Map<String, serde_json::Value> = match live {
            Some(pid) => Kind::ALL
                .iter()
                .filter_map(|k| {
                    namespaces::inode(pid, *k)
                        .map(|i| (k.proc_name().to_string(), serde_json::json!(i)))
                })
                .collect(),
            None => Default::default(),
        };
        let cgroups: Vec<serde_json::Value> = spec
            .cgroup_hierarchy
            .dirs(&spec.cgroup)
            .into_iter()
            .filter(|d| d.exists())
            .map(|d| serde_json::json!({ "path": d }))
            .collect();
        let limits: serde_json::Map<String, serde_json::Value> = spec
            .cgroup_hierarchy
            .limit_files(&spec.cgroup)
            .into_iter()
            .map(|(p, v)| (p.display().to_string(), serde_json::json!(v)))
            .collect();
        let stats = live.map(|_| spec.cgroup_hierarchy.stats(&spec.cgroup));
        let mounts: Vec<String> = live
            .and_then(|pid| fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok())
            .map(|s| {
                s.lines()
                    .map(|l| l.split(' ').nth(4).unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default();
        Ok(serde_json::json!({
            "Id": spec.id,
            "Name": spec.name,
            "Image": spec.image,
            "ImageManifest": spec.image_manifest,
            "Created": spec.created_at,
            "Args": spec.args,
            "Env": spec.env,
            "State": st,
            "HostPid": live,
            "Sandbox": spec.sandbox,
            "Namespaces": ns,
            "CgroupVersion": spec.cgroup_hierarchy.version,
            "Cgroup": spec.cgroup,
            "CgroupDirs": cgroups,
            "CgroupLimits": limits,
            "Resources": spec.resources,
            "Stats": stats,
            "Overlay": {
                "LowerDirs": spec.rootfs.lowerdirs,
                "UpperDir": spec.rootfs.upperdir,
                "WorkDir": spec.rootfs.workdir,
                "MergedDir": spec.rootfs.merged,
            },
            "Volumes": spec.rootfs.volumes,
            "Mounts": mounts,
            "LogPath": spec.log_path,
        }))
    }
}
