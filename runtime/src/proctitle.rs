//! A process's title: the command line `ps` shows (`/proc/PID/cmdline`) and its short name
//! (`comm`, 15 bytes, `/proc/PID/comm`). Both come from the last execve(2), so a process that
//! forks and goes on as something else (the shim forked by the CLI, the container's `--init`
//! reaper) would show its parent's command line; this gives it one of its own.
//!
//! The kernel reads `cmdline` from the process's memory between two addresses it keeps
//! (`arg_start`, `arg_end`; the environment likewise). [`set`] points them at a fresh buffer
//! with `prctl(PR_SET_MM)`, which needs CAP_SYS_RESOURCE; without it, it overwrites the
//! original area in place as setproctitle(3) does (then one string, cut to the area's length:
//! a non-NUL last byte tells the kernel to read the area up to its first NUL, fs/proc/base.c).
//! Read next: `shim/` and `reaper.rs`, its users.

use std::ffi::CString;

/// Give the calling process the command line `args` and the short name `comm`; with `env`,
/// also the environment `/proc/PID/environ` shows (the caller then needs its old environment
/// strings no more: the fallback may write over them). Best effort: what the kernel refuses
/// is left as it was. A few system calls; `/proc/self/stat` is read only for the fallback.
pub fn set(comm: &str, args: &[&str], env: Option<&[String]>) {
    if let Ok(name) = CString::new(comm) {
        // SAFETY: prctl(PR_SET_NAME) reads a NUL-terminated string (at most 16 bytes used).
        unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
    }
    let mut block: Vec<u8> = Vec::new();
    for a in args {
        block.extend_from_slice(a.as_bytes());
        block.push(0);
    }
    let args_len = block.len();
    for e in env.unwrap_or_default() {
        block.extend_from_slice(e.as_bytes());
        block.push(0);
    }
    // the kernel reads it for as long as the process lives
    let block: &'static [u8] = Box::leak(block.into_boxed_slice());
    let start = block.as_ptr() as libc::c_ulong;
    let args_end = start + args_len as libc::c_ulong;
    let end = start + block.len() as libc::c_ulong;
    // each call checks start <= end against the other's current value: the new area lies
    // below the old one (heap under stack), so start first, else end first
    let pair = |lo, hi, a, b| (set_mm(lo, a) && set_mm(hi, b)) || (set_mm(hi, b) && set_mm(lo, a));
    let ok = pair(
        libc::PR_SET_MM_ARG_START,
        libc::PR_SET_MM_ARG_END,
        start,
        args_end,
    );
    if ok && env.is_some() {
        let _ = pair(
            libc::PR_SET_MM_ENV_START,
            libc::PR_SET_MM_ENV_END,
            args_end,
            end,
        );
    }
    if !ok {
        overwrite_in_place(&args.join(" "), env.is_some());
    }
}

fn set_mm(what: libc::c_int, addr: libc::c_ulong) -> bool {
    // SAFETY: prctl(PR_SET_MM) with integer arguments; the address is of a leaked buffer that
    // stays mapped for the life of the process.
    unsafe { libc::prctl(libc::PR_SET_MM, what as libc::c_ulong, addr, 0, 0) == 0 }
}

/// Without CAP_SYS_RESOURCE, the setproctitle(3) way: `title` (cut to fit), NULs, a non-NUL
/// last byte. With `use_env`, the title may run on into the environment strings that follow
/// the arguments (the kernel reads on into them, up to the first NUL), which are wiped.
fn overwrite_in_place(title: &str, use_env: bool) {
    let (arg_start, arg_end, env_start, env_end) = command_line_area();
    let end = match use_env && env_start == arg_end && env_end > env_start {
        true => env_end,
        false => arg_end,
    };
    if arg_start == 0 || end < arg_start + 2 {
        return;
    }
    let title = title.as_bytes();
    // room for at least one NUL before the last byte
    let n = title.len().min(end - arg_start - 2);
    // SAFETY: [arg_start, end) are this process's own argument (and environment) strings on
    // its stack (proc_pid_stat(5)), mapped writable; the caller reads them no more.
    unsafe {
        std::ptr::copy_nonoverlapping(title.as_ptr(), arg_start as *mut u8, n);
        std::ptr::write_bytes((arg_start + n) as *mut u8, 0, end - arg_start - n);
        *((arg_end - 1) as *mut u8) = b' ';
    }
}

/// Where this process's argument and environment strings are: (arg_start, arg_end,
/// env_start, env_end), fields 48–51 of `/proc/self/stat` (proc_pid_stat(5)); zeros if unknown.
fn command_line_area() -> (usize, usize, usize, usize) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // the fields after `(comm)`, which may contain spaces, start at field 3
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<usize> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let field = |n: usize| f.get(n - 3).copied().unwrap_or(0);
    (field(48), field(49), field(50), field(51))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `title` makes of a forked child's `/proc/self/{cmdline,environ,comm}`.
    fn in_child(title: impl FnOnce()) -> String {
        let (r, w) = nix::unistd::pipe().unwrap();
        // SAFETY: the child sets its title, reads /proc and writes to a pipe, then _exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                drop(r);
                title();
                let read = |f: &str| std::fs::read(format!("/proc/self/{f}")).unwrap_or_default();
                let out = [read("cmdline"), read("environ"), read("comm")].join(&b'|');
                let _ = nix::unistd::write(&w, &out);
                // SAFETY: _exit(2) ends the forked test child without running the harness.
                unsafe { libc::_exit(0) };
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(w);
                let mut out = Vec::new();
                std::io::Read::read_to_end(&mut std::fs::File::from(r), &mut out).unwrap();
                nix::sys::wait::waitpid(child, None).unwrap();
                String::from_utf8_lossy(&out).into_owned()
            }
        }
    }

    #[test]
    fn a_forked_process_gets_a_title_of_its_own() {
        let env = ["A=1".to_string()];
        let out = in_child(|| set("shim-test", &["minik8s-runtime-shim", "abc"], Some(&env)));
        // with CAP_SYS_RESOURCE the exact strings, else the setproctitle(3) form
        let (cmdline, rest) = out.split_once('|').unwrap();
        assert!(
            cmdline == "minik8s-runtime-shim\0abc\0" || cmdline == "minik8s-runtime-shim abc\0",
            "{out:?}"
        );
        let (environ, comm) = rest.rsplit_once('|').unwrap();
        assert!(
            environ == "A=1\0" || environ.bytes().all(|b| b == 0),
            "{out:?}"
        );
        assert_eq!(comm, "shim-test\n");
        // the fallback, whatever our capabilities: one string, the environment wiped
        let out = in_child(|| overwrite_in_place("/init -- sleep 5", true));
        assert!(out.starts_with("/init -- sleep 5\0|"), "{out:?}");
        assert!(!out.contains("PATH="), "{out:?}");
    }
}
