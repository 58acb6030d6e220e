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
/// Returns its exit code.
pub(super) fn relay(
    spec: &ContainerSpec,
    child: Pid,
    out: &OwnedFd,
    err: Option<&OwnedFd>,
    tty: bool,
    attached: bool,
) -> i32 {
    let mut r = Relay {
        out,
        err,
        tty,
        log: fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log_path)
            .ok(),
        splitters: [LineSplitter::default(), LineSplitter::default()],
        open: [true, err.is_some()],
        stdin_open: tty && attached,
        forward: attached,
        buf: vec![0u8; 32 * 1024],
    };
    let mut exit: Option<i32> = None;
    while r.open[0] || r.open[1] {
        // the init is gone but a stray holder keeps the pipes open: drain what is there
        if exit.is_some() && !r.output_pending() {
            break;
        }
        let ready = match r.poll() {
            Ok(ready) if ready.is_empty() => {
                // the init may be gone while a stray descendant holds the pipe
                if let Ok(ws) = waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                    if let Some(c) = exit_code(ws) {
                        exit = Some(c);
                    }
                }
                continue;
            }
            Ok(ready) => ready,
            Err(nix::Error::EINTR) => continue,
            Err(_) => break,
        };
        for source in ready {
            match source {
                Source::Stdin => r.copy_stdin(),
                Source::Output(w) => r.copy_output(w),
            }
        }
    }
    r.finish_log();
    exit.unwrap_or_else(|| wait_exit(child))
}

/// What the relay polls.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// The container's stdout (0) or stderr (1).
    Output(usize),
    /// Our stdin, forwarded to a tty container.
    Stdin,
}

/// The relay's streams and what is still open.
struct Relay<'a> {
    out: &'a OwnedFd,
    err: Option<&'a OwnedFd>,
    tty: bool,
    log: Option<fs::File>,
    /// One per output stream: the CRI log is written in whole lines.
    splitters: [LineSplitter; 2],
    /// stdout, stderr still open.
    open: [bool; 2],
    stdin_open: bool,
    /// Copy output to our stdout/stderr too (attached, until that fails).
    forward: bool,
    buf: Vec<u8>,
}

impl Relay<'_> {
    fn output(&self, w: usize) -> BorrowedFd<'_> {
        if w == 0 {
            self.out.as_fd()
        } else {
            self.err.expect("polled").as_fd()
        }
    }

    /// Whether any output is waiting to be read (without waiting for more).
    fn output_pending(&self) -> bool {
        let mut fds = vec![PollFd::new(self.out.as_fd(), PollFlags::POLLIN)];
        if let Some(e) = self.err {
            fds.push(PollFd::new(e.as_fd(), PollFlags::POLLIN));
        }
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
    }

    /// Wait up to 200 ms for the open streams; the ready ones (none: timeout).
    fn poll(&self) -> nix::Result<Vec<Source>> {
        // SAFETY: fd 0 stays open for the life of the shim.
        let stdin = unsafe { BorrowedFd::borrow_raw(0) };
        let mut fds = Vec::new();
        let mut which = Vec::new();
        for w in [0, 1] {
            if self.open[w] {
                fds.push(PollFd::new(self.output(w), PollFlags::POLLIN));
                which.push(Source::Output(w));
            }
        }
        if self.stdin_open {
            fds.push(PollFd::new(stdin, PollFlags::POLLIN));
            which.push(Source::Stdin);
        }
        if poll(&mut fds, PollTimeout::from(200u16))? == 0 {
            return Ok(Vec::new());
        }
        Ok(fds
            .iter()
            .zip(which)
            .filter(|(f, _)| f.revents().is_some_and(|r| !r.is_empty()))
            .map(|(_, w)| w)
            .collect())
    }

    /// Our stdin to the container's terminal.
    fn copy_stdin(&mut self) {
        // SAFETY: fd 0 stays open for the life of the shim.
        let stdin = unsafe { BorrowedFd::borrow_raw(0) };
        match nix::unistd::read(stdin, &mut self.buf) {
            Ok(n) if n > 0 => {
                let _ = nix::unistd::write(self.out, &self.buf[..n]);
            }
            _ => self.stdin_open = false,
        }
    }

    /// One read of output stream `w` into the log (and our stdout/stderr).
    fn copy_output(&mut self, w: usize) {
        let fd: &OwnedFd = if w == 0 {
            self.out
        } else {
            self.err.expect("polled")
        };
        match nix::unistd::read(fd, &mut self.buf) {
            Ok(n) if n > 0 => {
                let data = &self.buf[..n];
                if let Some(l) = self.log.as_mut() {
                    let _ = self.splitters[w].feed(stream_name(w), data, l);
                }
                if self.forward {
                    let target = if w == 0 || self.tty { 1 } else { 2 };
                    // SAFETY: fds 1 and 2 stay open for the life of the shim.
                    let t = unsafe { BorrowedFd::borrow_raw(target) };
                    if write_all(t, data).is_err() {
                        self.forward = false;
                    }
                }
            }
            // EIO on a pty master means the last slave holder is gone
            _ => self.open[w] = false,
        }
    }

    /// Write what is left of a last line without newline.
    fn finish_log(&mut self) {
        for (i, s) in self.splitters.iter_mut().enumerate() {
            if let Some(l) = self.log.as_mut() {
                let _ = s.finish(stream_name(i), l);
            }
        }
    }
}

fn stream_name(w: usize) -> &'static str {
    if w == 0 {
        "stdout"
    } else {
        "stderr"
    }
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
