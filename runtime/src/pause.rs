//! The pod's `pause` process, for sandboxes whose containers share one pid namespace
//! (Kubernetes `shareProcessNamespace: true`). A pid namespace lives only as long as its PID 1:
//! once that exits, the kernel kills every other member and refuses new ones. So the sandbox
//! starts a tiny PID 1 of its own that does nothing but reap orphans (what the `pause` image
//! does in a real cluster); containers then join its namespace with setns(2) and see each
//! other's processes. It joins the pod's net/ipc/uts namespaces, has an empty read-only root, no
//! capabilities, is not dumpable and shows `/pause` as its command line, so a container cannot
//! reach or learn about the host through `/proc/1/`.
//! Read next: `shim/`, which joins the pinned namespace instead of creating one.

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::{fork, ForkResult, Pid};

use super::capabilities;
use super::namespaces::{self, Kind, NamespacesError};
use super::proctitle;

/// Why starting the pause process failed.
#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    /// Spawning the helper (our own binary, `pause DIR`) failed.
    #[error("spawn pause helper {exe:?}: {source}")]
    Spawn {
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The helper did not report a pid.
    #[error("pause helper failed: {message}")]
    Helper { message: String },
    #[error(transparent)]
    Namespaces(#[from] NamespacesError),
}

/// Start the pause process of the sandbox in `dir` (its net/ipc/uts pins must exist) through
/// `exe --root ROOT pause DIR`, and return its host pid. A re-exec, because the caller may be
/// multi-threaded and the helper forks.
pub fn spawn(exe: &Path, root: &Path, dir: &Path) -> Result<i32, PauseError> {
    let mut cmd = Command::new(exe);
    cmd.arg("--root")
        .arg(root)
        .arg("pause")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure runs between fork and exec and only calls setsid(2), which is
    // async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let out = cmd.output().map_err(|source| PauseError::Spawn {
        exe: exe.to_owned(),
        source,
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim().parse::<i32>() {
        Ok(pid) if out.status.success() && pid > 0 => Ok(pid),
        _ => Err(PauseError::Helper {
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }),
    }
}

/// The helper (`pause DIR`, single-threaded): join the pod's namespaces, unshare a pid
/// namespace, fork its PID 1, print that child's host pid and exit.
pub fn main(dir: &Path) -> i32 {
    let result = (|| -> Result<i32, NamespacesError> {
        for kind in [Kind::Net, Kind::Ipc, Kind::Uts] {
            namespaces::join(&dir.join(kind.proc_name()), kind)?;
        }
        namespaces::create(&[Kind::Pid, Kind::Mnt])?;
        // SAFETY: the helper is single-threaded (a fresh exec), so the child may run any code.
        match unsafe { fork() } {
            Err(errno) => Err(NamespacesError::Unshare {
                kinds: "fork pause".into(),
                errno,
            }),
            Ok(ForkResult::Child) => pause(dir),
            Ok(ForkResult::Parent { child }) => Ok(child.as_raw()),
        }
    })();
    match result {
        Ok(pid) => {
            println!("{pid}");
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// PID 1 of the pod: shed everything, then reap children forever.
fn pause(dir: &Path) -> ! {
    // stdio to /dev/null first: the spawner reads our parent's stdout until EOF
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // SAFETY: dup2(2) of an fd we hold onto 0/1/2.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    let _ = nix::unistd::setsid();
    // read while /proc is still reachable
    let area = proctitle::command_line_area();
    // an empty read-only root: /proc/1/root shows nothing of the host (mount_namespaces(7))
    let root_ok = mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .and_then(|()| {
        mount(
            Some("pause"),
            dir,
            Some("tmpfs"),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("size=4k,mode=555"),
        )
    })
    .and_then(|()| nix::unistd::chdir(dir))
    .and_then(|()| nix::unistd::pivot_root(".", "."))
    .and_then(|()| umount2(".", MntFlags::MNT_DETACH))
    .and_then(|()| nix::unistd::chdir("/"));
    if root_ok.is_err() {
        // SAFETY: _exit(2) ends the process without running the parent's handlers.
        unsafe { libc::_exit(1) };
    }
    // SAFETY: prctl with integer and static string arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, c"pause".as_ptr());
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
    hide_command_line(area);
    let _ = capabilities::drop_bounding(0);
    let _ = capabilities::set(0);
    // only SIGCHLD is ever taken: as PID 1 without handlers we ignore every signal from
    // inside the pod (a container's `kill 1` does nothing); `sandbox rm` sends SIGKILL
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGCHLD);
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals), None);
    loop {
        let _ = signals.wait();
        while let Ok(ws) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            if ws == nix::sys::wait::WaitStatus::StillAlive {
                break;
            }
        }
    }
}

/// Make `/proc/1/cmdline` read `/pause`, as the real pause image's does. Ours was inherited
/// from the helper (`<host path of the binary> --root <runtime dir> pause <sandbox dir>`),
/// readable by every container of the pod. We overwrite the argument area in place the way
/// setproctitle(3) does: `/pause`, NULs, and a non-NUL last byte, which tells the kernel to
/// report the area only up to its first NUL (fs/proc/base.c, get_mm_cmdline). The environment
/// area is zeroed too.
fn hide_command_line((arg_start, arg_end, env_start, env_end): (usize, usize, usize, usize)) {
    const NAME: &[u8] = b"/pause\0";
    if arg_start == 0 || arg_end <= arg_start + NAME.len() {
        return;
    }
    // SAFETY: [arg_start, arg_end) and [env_start, env_end) are this process's own argument
    // and environment strings on its stack (proc_pid_stat(5)), mapped writable; nothing in
    // this single-threaded process reads them any more.
    unsafe {
        std::ptr::copy_nonoverlapping(NAME.as_ptr(), arg_start as *mut u8, NAME.len());
        std::ptr::write_bytes(
            (arg_start + NAME.len()) as *mut u8,
            0,
            arg_end - arg_start - NAME.len(),
        );
        *((arg_end - 1) as *mut u8) = b' ';
        if env_start != 0 && env_end > env_start {
            std::ptr::write_bytes(env_start as *mut u8, 0, env_end - env_start);
        }
    }
}

/// Host pid of the process pinned as PID 1 of the namespace file `pin`, if `pid` is it.
pub fn is_pause_of(pid: i32, pin: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::metadata(pin) else {
        return false;
    };
    namespaces::inode(pid, Kind::Pid) == Some(m.ino())
        && std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map(|s| {
                s.lines()
                    .any(|l| l.trim_end().ends_with("\t1") && l.starts_with("NSpid:"))
            })
            .unwrap_or(false)
}

/// Stop the pause process `pid` of the sandbox whose pid namespace is pinned at `pin`: all
/// remaining members of the namespace die with it.
pub fn stop(pid: i32, pin: &Path) {
    if is_pause_of(pid, pin) {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Pin the pid namespace of `pid` as `dir/pid` (a bind mount of its nsfs file).
pub fn pin(pid: i32, dir: &Path) -> Result<PathBuf, NamespacesError> {
    let target = dir.join(Kind::Pid.proc_name());
    namespaces::pin_file(&format!("/proc/{pid}/ns/pid"), &target)?;
    Ok(target)
}

/// Stop the pause process recorded for the sandbox in `dir` and unpin its pid namespace.
pub fn remove(pid: Option<i32>, dir: &Path) {
    let pin = dir.join(Kind::Pid.proc_name());
    if let Some(pid) = pid {
        stop(pid, &pin);
    }
    if pin.exists() {
        let _ = umount2(&pin, MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&pin);
    }
}
