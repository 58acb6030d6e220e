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

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket;
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::{fork, ForkResult, Pid};

mod message;

use super::cgroups;
use super::spec::ContainerSpec;
use super::state::{State, Status};
use super::wait::{exit_code, wait_exit};
use super::logs::{self, LineSplitter};
use super::namespaces::{self, Kind};
use super::process::{self, InitStdio};
use super::tty;
use super::Runtime;

pub use message::{MessageError, StatusMessage};

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

fn pipe() -> Result<(OwnedFd, OwnedFd), (i32, String)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| (125, format!("pipe: {e}")))
}

fn run(
    rt: &Runtime,
    spec: &ContainerSpec,
    status: &mut StatusPipe,
    attached: bool,
) -> Result<(), (i32, String)> {
    let fail = |e: &dyn std::fmt::Display| (125, e.to_string());
    // 1. stdio: one pipe per stream, or (tty) a socket the init sends the pty master over
    let (out_r, out_w) = pipe()?;
    let err_pipe = if spec.tty { None } else { Some(pipe()?) };
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
    let (errpipe_r, errpipe_w) = pipe()?;
    // one byte on it: the init is in its cgroup and may go on to exec; EOF: give up
    let (joined_r, joined_w) = pipe()?;
    let start_fifo = spec
        .wait_for_start
        .then(|| rt.container_dir(&spec.id).join("exec.fifo"));

    // 2. the pid namespace: a fresh one whose PID 1 our next child becomes, or the pod's
    //    shared one (its PID 1 is the sandbox's pause process)
    let shared_pid = spec.join_namespaces.iter().find(|(k, _)| *k == Kind::Pid);
    match shared_pid {
        Some((kind, path)) => namespaces::join(path, *kind),
        None => namespaces::create(&[Kind::Pid]),
    }
    .map_err(|e| fail(&e))?;

    // SAFETY: the shim is single-threaded, so the child may run arbitrary code after fork.
    let child = match unsafe { fork() } {
        Err(e) => return Err((125, format!("fork: {e}"))),
        Ok(ForkResult::Child) => {
            drop(errpipe_r);
            drop(joined_w);
            let stdio = InitStdio {
                keep_stdin: attached,
                stdout: out_w.as_raw_fd(),
                stderr: err_pipe
                    .as_ref()
                    .map_or(out_w.as_raw_fd(), |(_, w)| w.as_raw_fd()),
                console_socket: console.as_ref().map(|(_, theirs, _)| theirs.as_raw_fd()),
                winsize: console.as_ref().and_then(|(_, _, size)| *size),
            };
            let err = match process::init(spec, &stdio, joined_r, start_fifo.as_deref()) {
                Ok(never) => match never {},
                Err(e) => e,
            };
            let msg = StatusMessage::Failed {
                code: err.exit_code(),
                message: err.to_string(),
            };
            let _ = nix::unistd::write(&errpipe_w, msg.encode().as_bytes());
            // SAFETY: _exit(2) ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(err.exit_code()) };
        }
        Ok(ForkResult::Parent { child }) => child,
    };
    drop(errpipe_w);
    drop(joined_r);
    drop(out_w);

    // 3. the init's cgroups, while it builds its namespaces and rootfs; it waits for us before
    //    it runs any of the container's code. On v1 we create them (pod level, then the
    //    container with its limits) and the init moves itself in (`prepare_self_join`). On v2
    //    `start` created them and we move the init: the first write to cgroup.procs after a
    //    quiet spell waits for an RCU grace period (milliseconds), which `start` began early
    let joined = match spec.cgroup_hierarchy.version {
        cgroups::Version::V1 => spec
            .cgroup_hierarchy
            .create_limited(&spec.cgroup, &spec.resources),
        cgroups::Version::V2 => spec
            .cgroup_hierarchy
            .join(&spec.cgroup, child.as_raw() as u32),
    };
    if let Err(e) = joined {
        drop(joined_w);
        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
        let _ = waitpid(child, None);
        return Err(fail(&e));
    }
    let _ = nix::unistd::write(&joined_w, b"j");
    drop(joined_w);
    let console = console.map(|(ours, theirs, _)| {
        drop(theirs);
        ours
    });
    let err_r = err_pipe.map(|(r, w)| {
        drop(w);
        r
    });

    // 4. wait for exec (EOF on the CLOEXEC error pipe) or an error message
    let mut st = State {
        status: Status::Running,
        shim_pid: Some(std::process::id() as i32),
        pid: Some(child.as_raw()),
        started_at: Some(logs::now()),
        ..State::default()
    };
    if spec.wait_for_start {
        st.status = Status::Created;
        rt.write_state(&spec.id, &st).map_err(|e| fail(&e))?;
        status.send(&StatusMessage::Started { pid: child.as_raw() });
    }
    let mut msg = Vec::new();
    let _ = io::Read::read_to_end(&mut fs::File::from(errpipe_r), &mut msg);
    if !msg.is_empty() {
        let _ = waitpid(child, None);
        let text = String::from_utf8_lossy(&msg).to_string();
        return Err(match StatusMessage::decode(&text) {
            Ok(StatusMessage::Failed { code, message }) => (code, message),
            _ => (125, text),
        });
    }
    // with a tty the init sent the pty master before it exec'd: that is our stdout now (the
    // stdout pipe was only the fallback until then)
    let out_r = match &console {
        Some(sock) => tty::recv_fd(sock.as_fd()).map_err(|e| fail(&e))?,
        None => out_r,
    };
    drop(console);
    let tty = spec.tty;
    st.status = Status::Running;
    rt.write_state(&spec.id, &st).map_err(|e| fail(&e))?;
    if !spec.wait_for_start {
        status.send(&StatusMessage::Started { pid: child.as_raw() });
    }
    if !attached {
        status.close();
    }

    // 5. relay output until the init exits
    let code = relay(spec, child, &out_r, err_r.as_ref(), tty, attached);
    drop(out_r);
    drop(err_r);

    // without its own pid namespace nothing kills the init's leftover children with it
    if shared_pid.is_some() {
        spec.cgroup_hierarchy.kill_all(&spec.cgroup);
    }

    // 6. record the exit
    let stats = spec.cgroup_hierarchy.stats(&spec.cgroup);
    st.status = Status::Stopped;
    st.exit_code = Some(code);
    st.oom_killed = stats.oom_kills > 0;
    st.finished_at = Some(logs::now());
    if !spec.auto_remove {
        let _ = rt.write_state(&spec.id, &st);
    }
    // report first, clean up after: removing the dead mount namespace's mount points and the
    // cgroups waits for RCU grace periods the caller need not sit through
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
        // the cgroup goes with the process; the recorded state keeps what matters
        let _ = spec.remove_cgroups();
    }
    Ok(())
}

/// Copy container output to the log (and our stdout/stderr when attached) until the init exits.
fn relay(
    spec: &ContainerSpec,
    child: Pid,
    out: &OwnedFd,
    err: Option<&OwnedFd>,
    tty: bool,
    attached: bool,
) -> i32 {
    let mut log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log_path)
        .ok();
    let mut splitters = [LineSplitter::default(), LineSplitter::default()];
    let mut open = [true, err.is_some()];
    let mut stdin_open = tty && attached;
    let mut forward = attached;
    let mut buf = vec![0u8; 32 * 1024];
    // SAFETY: fd 0 stays open for the life of the shim.
    let stdin = unsafe { BorrowedFd::borrow_raw(0) };
    let mut exit: Option<i32> = None;
    loop {
        if !open[0] && !open[1] {
            break;
        }
        if exit.is_some() {
            // the init is gone but a stray holder keeps the pipes open: drain what is there
            let mut fds = vec![PollFd::new(out.as_fd(), PollFlags::POLLIN)];
            if let Some(e) = err {
                fds.push(PollFd::new(e.as_fd(), PollFlags::POLLIN));
            }
            if !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0) {
                break;
            }
        }
        let mut fds = Vec::new();
        let mut which = Vec::new();
        if open[0] {
            fds.push(PollFd::new(out.as_fd(), PollFlags::POLLIN));
            which.push(0);
        }
        if let (true, Some(e)) = (open[1], err) {
            fds.push(PollFd::new(e.as_fd(), PollFlags::POLLIN));
            which.push(1);
        }
        if stdin_open {
            fds.push(PollFd::new(stdin, PollFlags::POLLIN));
            which.push(2);
        }
        match poll(&mut fds, PollTimeout::from(200u16)) {
            Ok(0) => {
                // the init may be gone while a stray descendant holds the pipe
                if let Ok(ws) = waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                    if let Some(c) = exit_code(ws) {
                        exit = Some(c);
                    }
                }
                continue;
            }
            Err(nix::Error::EINTR) => continue,
            Err(_) => break,
            Ok(_) => {}
        }
        let ready: Vec<(usize, bool)> = fds
            .iter()
            .zip(&which)
            .map(|(f, w)| (*w, f.revents().is_some_and(|r| !r.is_empty())))
            .collect();
        for (w, is_ready) in ready {
            if !is_ready {
                continue;
            }
            if w == 2 {
                match nix::unistd::read(stdin, &mut buf) {
                    Ok(n) if n > 0 => {
                        let _ = nix::unistd::write(out, &buf[..n]);
                    }
                    _ => stdin_open = false,
                }
                continue;
            }
            let fd = if w == 0 {
                out.as_fd()
            } else {
                err.expect("polled").as_fd()
            };
            match nix::unistd::read(fd, &mut buf) {
                Ok(n) if n > 0 => {
                    let stream = if w == 0 { "stdout" } else { "stderr" };
                    if let Some(l) = log.as_mut() {
                        let _ = splitters[w].feed(stream, &buf[..n], l);
                    }
                    if forward {
                        let target = if w == 0 || tty { 1 } else { 2 };
                        // SAFETY: fds 1 and 2 stay open for the life of the shim.
                        let t = unsafe { BorrowedFd::borrow_raw(target) };
                        if write_all(t, &buf[..n]).is_err() {
                            forward = false;
                        }
                    }
                }
                // EIO on a pty master means the last slave holder is gone
                _ => open[w] = false,
            }
        }
    }
    for (i, s) in splitters.iter_mut().enumerate() {
        if let Some(l) = log.as_mut() {
            let _ = s.finish(if i == 0 { "stdout" } else { "stderr" }, l);
        }
    }
    exit.unwrap_or_else(|| wait_exit(child))
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> nix::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

