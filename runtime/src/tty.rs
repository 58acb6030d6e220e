//! Terminals for `run -t` and `exec -t`. A pseudo-terminal (pty, pty(7)) is a pair: the
//! *master* end, held by whoever plays keyboard and screen (the shim, or `exec`), and the
//! *slave* end `/dev/pts/N`, which the container's process uses as stdin, stdout and stderr.
//! Every container mounts its own devpts instance (`newinstance`), so we allocate the pty from
//! the container's `/dev/ptmx` *after* pivot_root: `tty` inside prints `/dev/pts/0` as in Docker,
//! and host pty numbers stay invisible. A process gets a *controlling* terminal (job control,
//! ^C → SIGINT to the foreground group) by starting a new session (setsid(2)) and claiming the
//! slave with ioctl(TIOCSCTTY). The container's init hands the master back to the shim over a
//! unix socket (SCM_RIGHTS, unix(7)), like runc's `--console-socket`.
//! Read next: `process.rs` (the init's side), `shim/` (the relay), `exec.rs`.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use nix::sys::stat::Mode;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use super::wait::{exit_code, wait_exit};

/// Why setting up a terminal failed.
#[derive(Debug, thiserror::Error)]
pub enum TtyError {
    /// Opening the multiplexer `/dev/ptmx` of the container's devpts failed.
    #[error("open /dev/ptmx: {errno}")]
    OpenMaster { errno: nix::Error },
    /// Unlocking the slave (TIOCSPTLCK) or opening it (TIOCGPTPEER, TIOCGPTN) failed.
    #[error("open pty slave: {errno}")]
    OpenSlave { errno: nix::Error },
    /// Giving the slave to the container's user failed.
    #[error("chown pty slave to uid {uid}: {errno}")]
    Chown { uid: u32, errno: nix::Error },
    /// Binding the slave over `/dev/console` failed.
    #[error("bind {path:?} on /dev/console: {errno}")]
    Console { path: PathBuf, errno: nix::Error },
    /// Sending or receiving the master over the console socket failed.
    #[error("pass pty master over the console socket: {errno}")]
    PassMaster { errno: nix::Error },
    /// setsid(2), dup2(2) or TIOCSCTTY failed.
    #[error("make the pty the controlling terminal: {errno}")]
    Controlling { errno: nix::Error },
}

/// Both ends of a pty, plus the slave's path inside the devpts it came from.
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
    pub path: PathBuf,
}

/// Allocate a pty from `/dev/ptmx` of the current root (the container's own devpts instance)
/// and give the slave to `uid`, with the window size `size`.
pub fn open_in_root(uid: u32, size: Option<libc::winsize>) -> Result<Pty, TtyError> {
    let master = nix::fcntl::open(
        "/dev/ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| TtyError::OpenMaster { errno })?;
    let slave_err = |errno| TtyError::OpenSlave { errno };
    let unlock: libc::c_int = 0;
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCSPTLCK reads an int and TIOCGPTN writes an unsigned int, both of which live
    // across the calls; `master` is an open ptmx fd (ioctl_tty(2)).
    unsafe {
        if libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) < 0
            || libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) < 0
        {
            return Err(slave_err(nix::Error::last()));
        }
    }
    // TIOCGPTPEER opens the slave through the master's own devpts instance: no path lookup
    // that something inside the container could redirect
    // SAFETY: the ioctl takes open(2) flags by value and returns a new fd we take ownership of.
    let fd = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(slave_err(nix::Error::last()));
    }
    // SAFETY: `fd` was just returned by the kernel and nothing else owns it.
    let slave = unsafe { OwnedFd::from_raw_fd(fd) };
    nix::unistd::fchown(&slave, Some(nix::unistd::Uid::from_raw(uid)), None)
        .map_err(|errno| TtyError::Chown { uid, errno })?;
    if let Some(ws) = size {
        set_winsize(slave.as_fd(), &ws);
    }
    Ok(Pty {
        master,
        slave,
        path: PathBuf::from(format!("/dev/pts/{n}")),
    })
}

/// Bind the slave over `/dev/console` (what runc does), for programs that write there.
pub fn bind_console(pty: &Pty) -> Result<(), TtyError> {
    let err = |errno| TtyError::Console {
        path: pty.path.clone(),
        errno,
    };
    let console = "/dev/console";
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o666)
        .open(console)
        .map_err(|e| err(nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO))))?;
    nix::mount::mount(
        Some(&pty.path),
        console,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(err)
}

/// Start a new session and make `slave` its controlling terminal and our stdin/out/err.
pub fn make_controlling(slave: RawFd) -> Result<(), TtyError> {
    let err = |errno| TtyError::Controlling { errno };
    nix::unistd::setsid().map_err(err)?;
    for target in 0..3 {
        // SAFETY: dup2(2) on a descriptor we hold onto one of 0/1/2.
        if unsafe { libc::dup2(slave, target) } < 0 {
            return Err(err(nix::Error::last()));
        }
    }
    // SAFETY: TIOCSCTTY takes an int argument by value; fd 0 is now the slave.
    if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } < 0 {
        return Err(err(nix::Error::last()));
    }
    Ok(())
}

/// Send `fd` over the unix socket `sock`.
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> Result<(), TtyError> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(b"pty")];
    sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .map(drop)
        .map_err(|errno| TtyError::PassMaster { errno })
}

/// Receive one fd sent by [`send_fd`] (blocking).
pub fn recv_fd(sock: BorrowedFd<'_>) -> Result<OwnedFd, TtyError> {
    let mut buf = [0u8; 8];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|errno| TtyError::PassMaster { errno })?;
    for c in msg
        .cmsgs()
        .map_err(|errno| TtyError::PassMaster { errno })?
    {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: SCM_RIGHTS installed this fd in our table; we are its only owner.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(TtyError::PassMaster {
        errno: nix::Error::EBADMSG,
    })
}

/// The window size of the terminal on `fd`, if it is one.
pub fn winsize(fd: BorrowedFd<'_>) -> Option<libc::winsize> {
    // SAFETY: winsize is plain old data; all-zero is a valid value.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize that lives across the call.
    (unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } == 0).then_some(ws)
}

/// Set the window size of the terminal on `fd` (best effort).
pub fn set_winsize(fd: BorrowedFd<'_>, ws: &libc::winsize) {
    // SAFETY: TIOCSWINSZ reads a winsize that lives across the call.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws) };
}

/// Our terminal in raw mode (keys go to the container's terminal unprocessed) until dropped.
pub struct RawMode(Termios);

impl RawMode {
    /// Switch stdin to raw mode if it is a terminal.
    pub fn enable() -> Option<Self> {
        let stdin = std::io::stdin();
        if !nix::unistd::isatty(&stdin).unwrap_or(false) {
            return None;
        }
        let saved = tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        Some(Self(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.0);
    }
}

/// Copy our stdin to `master` and `master` to our stdout until `child` exits and its output
/// is drained; returns the child's exit status (shell convention for signals).
pub fn relay_until_exit(master: &OwnedFd, child: Pid, forward_stdin: bool) -> i32 {
    // SAFETY: fds 0 and 1 stay open for the life of the process.
    let (stdin, stdout) = unsafe { (BorrowedFd::borrow_raw(0), BorrowedFd::borrow_raw(1)) };
    let mut stdin_open = forward_stdin;
    let mut exit = None;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let mut fds = vec![PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if stdin_open {
            fds.push(PollFd::new(stdin, PollFlags::POLLIN));
        }
        // once the child is gone, only drain what is already buffered
        let timeout = if exit.is_some() {
            PollTimeout::ZERO
        } else {
            PollTimeout::from(100u8)
        };
        let ready = match poll(&mut fds, timeout) {
            Ok(n) => n,
            Err(nix::Error::EINTR) => continue,
            Err(_) => break,
        };
        if ready == 0 {
            if exit.is_some() {
                break;
            }
            if let Ok(ws) = waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                exit = exit_code(ws);
            }
            continue;
        }
        let revents = |i: usize| fds[i].revents().is_some_and(|r| !r.is_empty());
        let (master_ready, stdin_ready) = (revents(0), stdin_open && revents(1));
        if master_ready {
            match nix::unistd::read(master, &mut buf) {
                Ok(n) if n > 0 => {
                    if write_all(stdout, &buf[..n]).is_err() {
                        break;
                    }
                }
                // EIO: the last holder of the slave closed it
                _ => break,
            }
        }
        if stdin_ready {
            match nix::unistd::read(stdin, &mut buf) {
                Ok(n) if n > 0 => {
                    let _ = write_all(master.as_fd(), &buf[..n]);
                }
                _ => stdin_open = false,
            }
        }
    }
    exit.unwrap_or_else(|| wait_exit(child))
}

/// write(2) all of `data`, retrying on EINTR and short writes.
pub fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> nix::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
