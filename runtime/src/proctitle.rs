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
/// is left as it was. A few system calls; `/proc/self/stat` is read only for the fallback,
/// which cuts `args` to the original command line's length: see [`set_shortest_fitting`] for
/// a title that must not be cut anywhere.
pub fn set(comm: &str, args: &[&str], env: Option<&[String]>) {
    set_shortest_fitting(comm, &[args], env);
}

/// [`set`] with shorter forms of the command line to fall back on: `titles`, longest first.
/// With `PR_SET_MM` the first is shown whole; overwritten in place, the first that fits the
/// original command line's area (its length, less two bytes), else the last one, cut. So a
/// caller that must not show a cut word (the shim's id) gives forms that end where a word
/// does, the last short enough to fit anywhere.
pub fn set_shortest_fitting(comm: &str, titles: &[&[&str]], env: Option<&[String]>) {
    if let Ok(name) = CString::new(comm) {
        // SAFETY: prctl(PR_SET_NAME) reads a NUL-terminated string (at most 16 bytes used).
        unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
    }
    let Some(args) = titles.first() else {
        return;
    };
    let mut block: Vec<u8> = Vec::new();
    for a in args.iter() {
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
        let joined: Vec<String> = titles.iter().map(|t| t.join(" ")).collect();
        let joined: Vec<&str> = joined.iter().map(String::as_str).collect();
        overwrite_in_place(&joined, env.is_some());
    }
}

fn set_mm(what: libc::c_int, addr: libc::c_ulong) -> bool {
    // SAFETY: prctl(PR_SET_MM) with integer arguments; the address is of a leaked buffer that
    // stays mapped for the life of the process.
    unsafe { libc::prctl(libc::PR_SET_MM, what as libc::c_ulong, addr, 0, 0) == 0 }
}

/// Without CAP_SYS_RESOURCE, the setproctitle(3) way: the first of `titles` that fits (else
/// the last, cut to fit), NULs, and a non-NUL last byte of the argument area. With
/// `use_env`, the title may run on into the environment strings that follow the arguments
/// (the kernel reads on into them, up to the first NUL), which are wiped.
fn overwrite_in_place(titles: &[&str], use_env: bool) {
    let (arg_start, arg_end, env_start, env_end) = command_line_area();
    let end = match use_env && env_start == arg_end && env_end > env_start {
        true => env_end,
        false => arg_end,
    };
    if arg_start == 0 || end < arg_start + 2 {
        return;
    }
    // room for at least one NUL before the last byte
    let room = end - arg_start - 2;
    let Some(title) = titles
        .iter()
        .find(|t| t.len() <= room)
        .or(titles.last())
        .map(|t| t.as_bytes())
    else {
        return;
    };
    let n = title.len().min(room);
    // SAFETY: [arg_start, end) are this process's own argument (and environment) strings on
    // its stack (proc_pid_stat(5)), mapped writable; the caller reads them no more.
    unsafe {
        std::ptr::copy_nonoverlapping(title.as_ptr(), arg_start as *mut u8, n);
        std::ptr::write_bytes((arg_start + n) as *mut u8, 0, end - arg_start - n);
        // the mark, unless the title itself runs over that byte into the environment
        if arg_start + n < arg_end {
            *((arg_end - 1) as *mut u8) = b' ';
        }
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
        let out = in_child(|| overwrite_in_place(&["/init -- sleep 5"], true));
        assert!(out.starts_with("/init -- sleep 5\0|"), "{out:?}");
        assert!(!out.contains("PATH="), "{out:?}");
    }

    #[test]
    fn the_first_title_that_fits_is_written_in_place() {
        // longer than any test's command line and environment
        let long = "x".repeat(1 << 20);
        let out = in_child(|| overwrite_in_place(&[&long, "shim 0123456789ab", "shim"], false));
        assert!(out.starts_with("shim 0123456789ab\0|"), "{out:?}");
        let out = in_child(|| overwrite_in_place(&[&long, &long], true));
        let (cmdline, _) = out.split_once('|').unwrap();
        assert!(cmdline.len() > 10 && cmdline.trim_end_matches('\0').bytes().all(|b| b == b'x'));
        // a title running over the arguments' last byte into the environment keeps its byte
        let (arg_start, arg_end, env_start, env_end) = command_line_area();
        if env_start == arg_end && env_end > arg_end + 2 {
            let title = "y".repeat(arg_end - arg_start + 1);
            let out = in_child(|| overwrite_in_place(&[&title], true));
            assert!(out.starts_with(&format!("{title}\0|")), "{out:?}");
        }
    }
}
