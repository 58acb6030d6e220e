//! `start`: launch the container's shim and wait until the command runs (or fails). A
//! multi-threaded caller (the kubelet) re-executes our binary as the shim; a single-threaded
//! one (the CLI) forks it, which skips loading the binary again. The shim answers on a status
//! pipe. Read next: `../shim/`, then `stop.rs`.

use std::fs;
use std::io::{self, BufRead, BufReader};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use nix::unistd::Pid;

use super::{Attach, ContainerError, ContainerSpec, Started, Status};
use crate::error::io_err;
use crate::shim::{self, StatusMessage};
use crate::{cgroups, Runtime};

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

impl Runtime {
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
        let result = match StatusMessage::decode(&line) {
            Ok(StatusMessage::Started { pid }) => Ok(Started {
                pid,
                status: foreground.then_some(reader),
            }),
            Ok(StatusMessage::Failed { code, message }) => {
                Err(ContainerError::StartFailed { code, message })
            }
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
        cmd.arg0(shim::SHIM_NAME)
            .arg("--root")
            .arg(&self.root)
            .arg("shim")
            .arg(id);
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
            Attach::Foreground { .. } | Attach::PassThrough => {
                // the status pipe on fd 3; our stdio is the shim's (stdin only if asked)
                cmd.arg("--status-fd").arg("3");
                if matches!(attach, Attach::Foreground { .. }) {
                    cmd.arg("--attached");
                }
                if matches!(attach, Attach::Foreground { stdin: false }) {
                    cmd.stdin(Stdio::null());
                }
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
                            Attach::Foreground { stdin: true } | Attach::PassThrough => &[],
                        };
                        for fd in targets {
                            // SAFETY: dup2(2) of a descriptor we hold onto one of 0/1/2.
                            unsafe { libc::dup2(null.as_raw_fd(), *fd) };
                        }
                    }
                    drop(null);
                    let attached = matches!(attach, Attach::Foreground { .. });
                    shim::serve(self, &spec, Some(fs::File::from(status_w)), attached)
                }))
                .unwrap_or(125);
                // SAFETY: _exit(2) ends the forked shim without running the caller's exit
                // handlers or flushing its buffers a second time.
                unsafe { libc::_exit(code) }
            }
        }
    }
}
