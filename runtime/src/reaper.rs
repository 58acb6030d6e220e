//! `run --init`: a tiny PID 1 of our own that reaps zombies and forwards signals, what
//! Docker's `--init` (tini, as `/sbin/docker-init -- CMD`) gives a container whose command
//! was not written to be an init. PID 1 of a pid namespace inherits every orphan, and a program
//! that never calls wait(2) on them leaves their zombies piling up; PID 1 also gets no signal
//! it has no handler for (a plain `sleep` ignores `stop`'s SIGTERM and is SIGKILLed after the
//! grace period).
//!
//! It needs no binary in the image: the container's init is our own code until execve(2), so
//! once everything is set up (rootfs, cgroup, user, capabilities, seccomp: all inherited) it
//! forks. The child becomes the command (its own process group, the terminal's foreground
//! one, so ^C reaches it) and the parent stays PID 1: its command line reads
//! `/init -- CMD ARGS` and its name `init` (`proctitle.rs`), it is not dumpable (its memory is
//! a copy of the shim's), it closes every descriptor but stdio (so the shim sees the command's
//! exec and its output's end as without it), and then, with every signal blocked, waits for
//! signals: SIGCHLD reaps all children that ended, any other is sent on to the command. When
//! the command ends, it exits with the command's status (128 + signal if killed), so the
//! container's exit code is the command's as without `--init`. Read next: `process.rs`.

use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};

use super::wait::exit_code;

/// The command line the reaper shows, as Docker's `/sbin/docker-init`.
pub const INIT_PATH: &str = "/init";

/// Why the reaper could not start the command.
#[derive(Debug, thiserror::Error)]
pub enum ReaperError {
    /// fork(2) failed.
    #[error("fork the command under --init: {errno}")]
    Fork { errno: nix::Error },
}

/// Signals left unblocked: those the kernel sends for a fault of our own, which must act.
const SYNCHRONOUS: [Signal; 7] = [
    Signal::SIGFPE,
    Signal::SIGILL,
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGABRT,
    Signal::SIGTRAP,
    Signal::SIGSYS,
];

/// Name this process the container's init (`/init -- ARGS`, with the container's `env`): call
/// it while it still holds CAP_SYS_RESOURCE; the command's execve later replaces the name in
/// the child.
pub fn name(args: &[String], env: &[String]) {
    let mut title = vec![INIT_PATH, "--"];
    title.extend(args.iter().map(String::as_str));
    super::proctitle::set("init", &title, Some(env));
}

/// Fork the command: returns in the child, which goes on to exec it; the parent never
/// returns (it reaps until the command ends, then exits with its status). Call it last
/// before exec, in a single-threaded process.
pub fn fork_command() -> Result<(), ReaperError> {
    let mut blocked = SigSet::all();
    for s in SYNCHRONOUS {
        blocked.remove(s);
    }
    // blocked before the fork: a signal that comes in between is only left pending
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&blocked), None);
    // SAFETY: the container's init is single-threaded; the child runs on to execve(2).
    match unsafe { fork() } {
        Err(errno) => Err(ReaperError::Fork { errno }),
        Ok(ForkResult::Child) => {
            become_foreground();
            let _ = nix::sys::signal::sigprocmask(
                SigmaskHow::SIG_SETMASK,
                Some(&SigSet::empty()),
                None,
            );
            Ok(())
        }
        Ok(ForkResult::Parent { child }) => reap(child, &blocked),
    }
}

/// In the child: a process group of its own, the terminal's foreground one if there is a
/// terminal (SIGTTOU is still blocked, so the change from the background is allowed).
fn become_foreground() {
    let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
    // SAFETY: tcsetpgrp(3) on fd 0 with our own process group; ENOTTY without a terminal.
    unsafe { libc::tcsetpgrp(0, libc::getpgrp()) };
}

/// The reaper's life: shed what the command does not need us to hold, then wait for signals
/// until `command` ends.
fn reap(command: Pid, blocked: &SigSet) -> ! {
    // SAFETY: prctl and close_range(2) with integer arguments. Our descriptors above stdio are
    // the shim's pipes (CLOEXEC: the command's exec closes its copies, ours must go too).
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
            for fd in 3..4096 {
                libc::close(fd);
            }
        }
    }
    loop {
        let signal = match blocked.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if signal != Signal::SIGCHLD {
            let _ = kill(command, signal);
            continue;
        }
        if let Some(code) = reap_children(command) {
            // SAFETY: _exit(2): nothing of the shim's copy may run (no atexit, no flushing).
            unsafe { libc::_exit(code) };
        }
    }
}

/// Wait for every child that ended; the command's exit code if it was among them.
fn reap_children(command: Pid) -> Option<i32> {
    let mut ended = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(nix::Error::ECHILD) => return ended,
            Ok(ws) => {
                if ws.pid() == Some(command) {
                    ended = exit_code(ws).or(ended);
                }
            }
            Err(nix::Error::EINTR) => continue,
            Err(_) => return ended,
        }
    }
}
