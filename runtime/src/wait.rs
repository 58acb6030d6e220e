//! Whether a process still lives, and how it ended: the exit code the way shells and Docker
//! report it (the process's own status, or 128 + the signal that killed it). The shim, `exec`
//! and the CLI's attached sessions wait for their children with these; the store corrects a
//! recorded state with `alive`. Read next: `store/`.

use std::fs;

use nix::sys::signal::kill;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

/// Whether a process exists (signal 0).
pub fn alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok() && !is_zombie(pid)
}

fn is_zombie(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .map(|r| r.trim_start().starts_with('Z'))
                .unwrap_or(false)
        })
        .unwrap_or(true)
}

/// The exit code of a child that ended (`None` while it only stopped or continued).
pub fn exit_code(ws: WaitStatus) -> Option<i32> {
    match ws {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Block until `child` ends; its exit code (128 + signal when killed, 255 if it cannot be
/// waited for).
pub fn wait_exit(child: Pid) -> i32 {
    loop {
        match waitpid(child, None) {
            Ok(ws) => {
                if let Some(c) = exit_code(ws) {
                    return c;
                }
            }
            Err(nix::Error::EINTR) => continue,
            Err(_) => return 255,
        }
    }
}
