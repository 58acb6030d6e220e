//! The shim's relay: the container's output, line by line, into its CRI log (and to the
//! attached terminal), and the terminal's input to a tty container, until the init exits.
//! A stray descendant holding the pipes open does not keep the shim waiting once the init is
//! gone. Read next: `../logs.rs` (the CRI log format).

use std::fs;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use crate::logs::LineSplitter;
use crate::spec::ContainerSpec;
use crate::wait::{exit_code, wait_exit};

/// Copy container output to the log (and our stdout/stderr when attached) until the init exits.
pub(super) fn relay(
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

