//! The shim: one small monitor process per container, like containerd-shim or conmon. It is
//! started by `start` (a re-exec of our binary, or a plain fork when the caller is
//! single-threaded, which saves loading the binary again), detaches into its own session and
//! outlives its caller. It unshares (or joins) the pid namespace, forks the container's init
//! (`process.rs`), then creates the cgroup and moves the init into it while the init builds its
//! rootfs: on cgroup v1 that move waits for an RCU grace period, the largest single cost of a
//! start, so it should not wait alone. The init execs only once the move is done. Then it owns
//! the container's stdio, writing every line to the CRI log (and to an attached terminal), reaps
//! the init, reads the OOM counter and records exit code and `OOMKilled` in `state.json`.
//! It is single-threaded: no threads exist when it forks. It reports to its caller with typed
//! messages (`message.rs`).

use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::socket;
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Pid};

mod message;
mod relay;

use super::cgroups;
use super::hooks::{HookError, Phase};
use super::logs;
use super::namespaces::{self, Kind};
use super::process::{self, InitStdio};
use super::spec::ContainerSpec;
use super::state::{State, Status};
use super::tty;
use super::userns;
use super::Runtime;
use relay::relay;

pub use message::{MessageError, StatusMessage};

/// The shim's command line, `minik8s-runtime-shim ID` (`/proc/PID/cmdline`), and its name
/// (`comm`, at most 15 bytes).
pub const SHIM_NAME: &str = "minik8s-runtime-shim";
pub const SHIM_COMM: &str = "minik8s-shim";

/// Name the shim `minik8s-runtime-shim ID` (comm `minik8s-shim`), so that `ps` on the host
/// tells shims from CLI invocations. Without CAP_SYS_RESOURCE a forked shim can only
/// overwrite the CLI's command line in place (`proctitle.rs`), which may be shorter than the
/// title: then the id is Docker's short one, its first 12 hex digits
/// (`minik8s-runtime-shim 90837bc0255e`), and where even that does not fit (a command line
/// under 35 bytes), or the id is not one of our 64 hex digits (an OCI id), the name alone.
/// Never a cut id, which would look whole and match nothing.
fn name_shim(id: &str) {
    let short = id
        .get(..12)
        .filter(|_| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()));
    let (full, name): (&[&str], &[&str]) = (&[SHIM_NAME, id], &[SHIM_NAME]);
    let shortened = short.map(|short| [SHIM_NAME, short]);
    let titles: Vec<&[&str]> = match &shortened {
        Some(shortened) => vec![full, shortened, name],
        None => vec![full, name],
    };
    super::proctitle::set_shortest_fitting(SHIM_COMM, &titles, None);
}

/// The pipe back to whoever started us: one line per event.
struct StatusPipe(Option<fs::File>);

impl StatusPipe {
    fn send(&mut self, message: &StatusMessage) {
        if let Some(f) = self.0.as_mut() {
            if writeln!(f, "{}", message.encode()).is_err() {
                self.0 = None;
            }
        }
    }
    fn close(&mut self) {
        self.0 = None;
    }
}

/// Run the shim for container `id` (a re-exec of our binary, `shim ID`); returns the shim's
/// exit code.
pub fn main(rt: &Runtime, id: &str, status_fd: Option<i32>, attached: bool) -> i32 {
    // our own session, so that the caller's terminal signals and its exit leave us alone
    // (a shim spawned with its status pipe as stdout comes in the caller's session)
    let _ = nix::unistd::setsid();
    // SAFETY: the fd number was handed to us by `start` (our stdout, or dup2'd onto fd 3
    // before exec) and is owned by nothing else in this process.
    let status = status_fd.map(|fd| unsafe { fs::File::from_raw_fd(fd) });
    let status = status.map(|f| {
        if f.as_raw_fd() > 2 {
            let _ = nix::fcntl::fcntl(
                &f,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            );
            return f;
        }
        // stdout (or another standard stream): move the pipe off it, and put /dev/null there,
        // so that nothing we or the container print later lands in the pipe by accident
        let fd = f.as_raw_fd();
        let moved = nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3));
        let null = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null");
        match (moved, null) {
            (Ok(new), Ok(null)) => {
                // SAFETY: dup2(2) of /dev/null onto the standard stream the pipe came in on,
                // whose old description `moved` now holds.
                unsafe { libc::dup2(null.as_raw_fd(), fd) };
                // `fd` is the standard stream again (now /dev/null): not ours to close
                std::mem::forget(f);
                // SAFETY: `new` is a fresh descriptor from F_DUPFD_CLOEXEC, owned only here.
                unsafe { fs::File::from_raw_fd(new) }
            }
            _ => f,
        }
    });
    let spec = match rt.spec(id) {
        Ok(s) => s,
        Err(e) => {
            StatusPipe(status).send(&StatusMessage::Failed {
                code: 125,
                message: e.to_string(),
            });
            return 1;
        }
    };
    serve(rt, &spec, status, attached)
}

/// The shim's work for a container whose spec is at hand: `main` after a re-exec, or a forked
/// child of a single-threaded caller (`Runtime::start`). Returns the shim's exit code.
pub fn serve(rt: &Runtime, spec: &ContainerSpec, status: Option<fs::File>, attached: bool) -> i32 {
    // a forked shim has the CLI's command line, a re-exec'd one the kubelet's or ours
    name_shim(&spec.id);
    let mut status = StatusPipe(status);
    match run(rt, spec, &mut status, attached) {
        Ok(()) => 0,
        Err((code, msg)) => {
            rt.record_start_failure(spec, code, &msg);
            status.send(&StatusMessage::Failed { code, message: msg });
            1
        }
    }
}

/// Why the container did not start: the exit code to report (125: the runtime failed) and
/// the message.
type Failure = (i32, String);

fn runtime_failure(e: &dyn std::fmt::Display) -> Failure {
    (125, e.to_string())
}

fn pipe() -> Result<(OwnedFd, OwnedFd), Failure> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| (125, format!("pipe: {e}")))
}

/// The shim's recipe, one function per step:
/// 1. [`InitPipes::new`]: the init's stdio, its error pipe and the cgroup-joined pipe;
/// 2. [`enter_pid_namespace`]: a fresh pid namespace, or the pod's shared one;
///    then [`fork_init`]: the init, PID 1 of that namespace (`process.rs`);
/// 3. [`put_in_cgroup`]: the init's cgroups, while it builds its rootfs;
/// 4. [`wait_for_exec`]: the init execs the command or reports why it could not;
/// 5. [`relay`]: output to the log until the init exits;
/// 6. [`finish`]: record the exit, report it, clean up.
fn run(
    rt: &Runtime,
    spec: &ContainerSpec,
    status: &mut StatusPipe,
    attached: bool,
) -> Result<(), Failure> {
    let pipes = InitPipes::new(spec, attached)?;
    let shared_pid = enter_pid_namespace(spec)?;
    let start_fifo = spec
        .wait_for_start
        .then(|| rt.container_dir(&spec.id).join("exec.fifo"));
    let (child, ours) = fork_init(spec, pipes, attached, start_fifo.as_deref())?;
    put_in_cgroup(spec, child, ours.joined)?;
    if let (Some((entered, written)), Some(plan)) = (&ours.userns, &spec.namespaces) {
        let (uid, gid) = (&plan.uid_mappings, &plan.gid_mappings);
        if let Err(e) = userns::write_maps(child.as_raw(), uid, gid, entered, written) {
            let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(child, None);
            return Err(runtime_failure(&e));
        }
    }
    let mut st = State {
        status: Status::Running,
        shim_pid: Some(std::process::id() as i32),
        pid: Some(child.as_raw()),
        started_at: Some(logs::now()),
        ..State::default()
    };
    let mut error_r = ours.error;
    if spec.wait_for_start {
        error_r = wait_for_ready(child, error_r)?;
        st.status = Status::Created;
        rt.write_state(&spec.id, &st)
            .map_err(|e| runtime_failure(&e))?;
        status.send(&StatusMessage::Started {
            pid: child.as_raw(),
        });
    }
    let out_r = wait_for_exec(child, error_r, ours.out, ours.console)?;
    st.status = Status::Running;
    rt.write_state(&spec.id, &st)
        .map_err(|e| runtime_failure(&e))?;
    if !spec.wait_for_start {
        status.send(&StatusMessage::Started {
            pid: child.as_raw(),
        });
    }
    if !attached {
        status.close();
    }

    let code = relay(spec, child, &out_r, ours.err.as_ref(), spec.tty, attached);
    drop(out_r);
    drop(ours.err);
    // without its own pid namespace nothing kills the init's leftover children with it
    if shared_pid {
        spec.cgroup_hierarchy.kill_all(&spec.cgroup);
    }
    finish(rt, spec, status, st, code);
    Ok(())
}

/// The descriptors between the shim and the init, both ends, made before the fork.
struct InitPipes {
    /// The init's stdout (and stderr with a tty, until the pty replaces it).
    out: (OwnedFd, OwnedFd),
    /// The init's stderr, without a tty.
    err: Option<(OwnedFd, OwnedFd)>,
    /// With a tty: a socket pair over which the init sends the pty master, and the size the
    /// pty starts with (the attached terminal's).
    console: Option<(OwnedFd, OwnedFd, Option<libc::winsize>)>,
    /// CLOEXEC: EOF when the init execs, a [`StatusMessage::Failed`] when it cannot.
    error: (OwnedFd, OwnedFd),
    /// One byte on it: the init is in its cgroup and may go on to exec; EOF: give up.
    joined: (OwnedFd, OwnedFd),
    /// A new user namespace: the init's "entered" pipe, then the shim's "maps written".
    userns: Option<((OwnedFd, OwnedFd), (OwnedFd, OwnedFd))>,
}

/// The shim's ends of [`InitPipes`] once the init is forked.
struct ShimEnds {
    out: OwnedFd,
    err: Option<OwnedFd>,
    console: Option<OwnedFd>,
    error: OwnedFd,
    joined: OwnedFd,
    /// The read end of "entered", the write end of "maps written".
    userns: Option<(OwnedFd, OwnedFd)>,
}

impl InitPipes {
    /// Step 1: stdio is one pipe per stream, or (tty) a socket the init sends the pty master
    /// over.
    fn new(spec: &ContainerSpec, attached: bool) -> Result<Self, Failure> {
        let out = pipe()?;
        let err = if spec.tty { None } else { Some(pipe()?) };
        let console = if spec.tty {
            let (ours, theirs) = socket::socketpair(
                socket::AddressFamily::Unix,
                socket::SockType::SeqPacket,
                None,
                socket::SockFlag::SOCK_CLOEXEC,
            )
            .map_err(|e| (125, format!("socketpair: {e}")))?;
            // SAFETY: fd 0 stays open for the life of the shim.
            let size = attached
                .then(|| tty::winsize(unsafe { BorrowedFd::borrow_raw(0) }))
                .flatten();
            Some((ours, theirs, size))
        } else {
            None
        };
        Ok(Self {
            out,
            err,
            console,
            error: pipe()?,
            joined: pipe()?,
            userns: match spec.creates(Kind::User) {
                true => Some((pipe()?, pipe()?)),
                false => None,
            },
        })
    }
}

/// Step 2: the pid namespace: a fresh one whose PID 1 our next child becomes, or the pod's
/// shared one (its PID 1 is the sandbox's pause process), or (a bundle that lists none) ours.
/// Returns whether the init has none of its own.
fn enter_pid_namespace(spec: &ContainerSpec) -> Result<bool, Failure> {
    let shared_pid = spec.join_namespaces.iter().find(|(k, _)| *k == Kind::Pid);
    match shared_pid {
        Some((kind, path)) => namespaces::join(path, *kind),
        None if spec.creates(Kind::Pid) => namespaces::create(&[Kind::Pid]),
        None => return Ok(true),
    }
    .map_err(|e| runtime_failure(&e))?;
    Ok(shared_pid.is_some())
}

/// Step 2, continued: fork the container's init, which never returns here (it execs the
/// command, or reports its failure on the error pipe and exits). Returns its pid and the
/// shim's ends of the pipes.
fn fork_init(
    spec: &ContainerSpec,
    pipes: InitPipes,
    attached: bool,
    start_fifo: Option<&Path>,
) -> Result<(Pid, ShimEnds), Failure> {
    let InitPipes {
        out: (out_r, out_w),
        err,
        console,
        error: (error_r, error_w),
        joined: (joined_r, joined_w),
        userns,
    } = pipes;
    // SAFETY: the shim is single-threaded, so the child may run arbitrary code after fork.
    let child = match unsafe { fork() } {
        Err(e) => return Err((125, format!("fork: {e}"))),
        Ok(ForkResult::Child) => {
            drop(error_r);
            drop(joined_w);
            let pass = spec.passes_stdio_through();
            let stdio = InitStdio {
                keep_stdin: attached || pass,
                stdout: if pass { 1 } else { out_w.as_raw_fd() },
                stderr: match (pass, &err) {
                    (true, _) => 2,
                    (false, Some((_, w))) => w.as_raw_fd(),
                    (false, None) => out_w.as_raw_fd(),
                },
                console_socket: console.as_ref().map(|(_, theirs, _)| theirs.as_raw_fd()),
                winsize: console.as_ref().and_then(|(_, _, size)| *size),
                ready: spec.wait_for_start.then(|| error_w.as_raw_fd()),
                userns: userns.map(|((_, entered_w), (written_r, _))| (entered_w, written_r)),
            };
            let err = match process::init(spec, stdio, joined_r, start_fifo) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            let msg = StatusMessage::Failed {
                code: err.exit_code(),
                message: err.to_string(),
            };
            let _ = nix::unistd::write(&error_w, msg.encode().as_bytes());
            // SAFETY: _exit(2) ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(err.exit_code()) };
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    // the init's ends close here: EOF on each pipe then means the init is gone (or exec'd)
    drop((error_w, joined_r, out_w));
    if spec.passes_stdio_through() {
        release_stdio();
    }
    let ends = ShimEnds {
        out: out_r,
        err: err.map(|(r, _w)| r),
        console: console.map(|(ours, _theirs, _)| ours),
        error: error_r,
        joined: joined_w,
        userns: userns.map(|((entered_r, _), (_, written_w))| (entered_r, written_w)),
    };
    Ok((child, ends))
}

/// Step 2, pass-through stdio: the init has the caller's stdin, stdout and stderr; the shim
/// lets go of its copies (/dev/null in their place), so that a caller reading a pipe sees EOF
/// when the container's process, not its shim, closes it (as with runc).
fn release_stdio() {
    if let Ok(null) = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..=2 {
            // SAFETY: dup2(2) of a descriptor we hold onto one of our standard streams.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

/// Step 3, continued: an OCI bundle's `prestart` and `createRuntime` hooks, in our (the
/// runtime's) namespaces, once the init is in its cgroup and before it may go on
/// (`hooks.rs`).
fn runtime_hooks(spec: &ContainerSpec, child: Pid) -> Result<(), HookError> {
    let Some(b) = &spec.bundle_process else {
        return Ok(());
    };
    for phase in [Phase::Prestart, Phase::CreateRuntime] {
        b.run_hooks(phase, &spec.id, spec.bundle.as_deref(), child.as_raw())?;
    }
    Ok(())
}

/// Step 3: the init's cgroups, while it builds its namespaces and rootfs; it waits for us before
/// it runs any of the container's code. On v1 we create them (pod level, then the container
/// with its limits) and the init moves itself in (`prepare_self_join`). On v2 `start` created
/// them and we move the init: the first write to cgroup.procs after a quiet spell waits for an
/// RCU grace period (milliseconds), which `start` began early. On failure the init is killed.
fn put_in_cgroup(spec: &ContainerSpec, child: Pid, joined_w: OwnedFd) -> Result<(), Failure> {
    let joined = match spec.cgroup_hierarchy.version {
        cgroups::Version::V1 => spec
            .cgroup_hierarchy
            .create_limited(&spec.cgroup, &spec.resources)
            .and_then(|()| match spec.creates(Kind::User) {
                // an init in a user namespace may not write the host's cgroup files
                true => spec
                    .cgroup_hierarchy
                    .join(&spec.cgroup, child.as_raw() as u32),
                false => Ok(()),
            }),
        cgroups::Version::V2 => spec
            .cgroup_hierarchy
            .join(&spec.cgroup, child.as_raw() as u32),
    };
    if let Err(e) = joined {
        drop(joined_w);
        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
        let _ = waitpid(child, None);
        return Err(runtime_failure(&e));
    }
    // the init goes on to its createContainer hooks: ours come first
    if let Err(e) = runtime_hooks(spec, child) {
        drop(joined_w);
        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
        let _ = waitpid(child, None);
        return Err(runtime_failure(&e));
    }
    let _ = nix::unistd::write(&joined_w, b"j");
    Ok(())
}

/// Step 4, OCI `create`: the init reports [`process::READY`] on the error pipe just before it
/// waits for `start`, so that `create` fails when anything before (a `createContainer` hook,
/// the working directory) does, as with runc. Returns the pipe for [`wait_for_exec`].
fn wait_for_ready(child: Pid, error_r: OwnedFd) -> Result<OwnedFd, Failure> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    // byte by byte: nothing after the line may be read here
    while let Ok(1) = nix::unistd::read(&error_r, &mut byte) {
        line.push(byte[0]);
        if byte[0] == b'\n' {
            break;
        }
    }
    if line == process::READY {
        return Ok(error_r);
    }
    let _ = waitpid(child, None);
    let text = String::from_utf8_lossy(&line).to_string();
    Err(match StatusMessage::decode(&text) {
        Ok(StatusMessage::Failed { code, message }) => (code, message),
        _ => {
            let text = text.trim();
            (125, format!("the init exited before it was ready ({text})"))
        }
    })
}

/// Step 4: wait for exec (EOF on the CLOEXEC error pipe) or the init's failure. Returns the
/// container's output: with a tty the pty master the init sent before it exec'd (the stdout
/// pipe was only the fallback until then), else the stdout pipe.
fn wait_for_exec(
    child: Pid,
    error_r: OwnedFd,
    out_r: OwnedFd,
    console: Option<OwnedFd>,
) -> Result<OwnedFd, Failure> {
    let mut msg = Vec::new();
    let _ = io::Read::read_to_end(&mut fs::File::from(error_r), &mut msg);
    if !msg.is_empty() {
        let _ = waitpid(child, None);
        let text = String::from_utf8_lossy(&msg).to_string();
        return Err(match StatusMessage::decode(&text) {
            Ok(StatusMessage::Failed { code, message }) => (code, message),
            _ => (125, text),
        });
    }
    match &console {
        Some(sock) => tty::recv_fd(sock.as_fd()).map_err(|e| runtime_failure(&e)),
        None => Ok(out_r),
    }
}

/// Step 6: record the exit (exit code, OOM kill), report it, then clean up: the cgroups (the
/// recorded state keeps what matters), or everything of an auto-removed container. Reporting
/// comes first: removing the dead mount namespace's mount points and the cgroups waits for
/// RCU grace periods the caller need not sit through.
fn finish(rt: &Runtime, spec: &ContainerSpec, status: &mut StatusPipe, mut st: State, code: i32) {
    let stats = spec.cgroup_hierarchy.stats(&spec.cgroup);
    st.status = Status::Stopped;
    st.exit_code = Some(code);
    st.oom_killed = stats.oom_kills > 0;
    st.finished_at = Some(logs::now());
    if !spec.auto_remove {
        let _ = rt.write_state(&spec.id, &st);
    }
    status.send(&StatusMessage::Exited {
        code,
        oom_killed: st.oom_killed,
    });
    status.close();
    // what is left is housekeeping: let it yield to the node's real work (the next container's
    // start on a small node). Our own session is our own scheduling autogroup, whose nice
    // value is what counts against other sessions (sched(7))
    let _ = fs::write("/proc/self/autogroup", "19");
    // SAFETY: setpriority(2) with integer arguments only.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
    if spec.auto_remove {
        let _ = rt.cleanup(spec);
    } else {
        let _ = spec.remove_cgroups();
    }
}
