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
//! Either way the area is remembered, and a forked child, which inherits the memory and the
//! kernel's addresses, renames itself by writing into its copy of it ([`rename_inherited`]):
//! no system call but `PR_SET_NAME`. Read next: `shim/`, `process.rs` and `reaper.rs`, its
//! users.

use std::ffi::CString;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where this process's title is, since [`set_shortest_fitting`] put it there: the start of
/// the area the kernel reads `cmdline` from, the end of its argument part (the byte before
/// it marks a setproctitle(3) title) and the end of the whole area; zeros before.
static AREA: [AtomicUsize; 3] = [
    AtomicUsize::new(0),
    AtomicUsize::new(0),
    AtomicUsize::new(0),
];

/// The title area of this process (`AREA`).
#[derive(Debug, Clone, Copy)]
struct Area {
    start: usize,
    arg_end: usize,
    end: usize,
}

impl Area {
    fn remembered() -> Option<Area> {
        let [start, arg_end, end] = AREA.each_ref().map(|a| a.load(Ordering::Relaxed));
        (start != 0).then_some(Area {
            start,
            arg_end,
            end,
        })
    }

    fn remember(self) {
        for (a, v) in AREA.iter().zip([self.start, self.arg_end, self.end]) {
            a.store(v, Ordering::Relaxed);
        }
    }

    /// Write the first of `titles` that fits whole (else the last, cut) as one string
    /// followed by NULs, and mark the area's argument part as overwritten (a non-NUL last
    /// byte), the setproctitle(3) way the kernel reads up to the first NUL.
    fn write(self, titles: &[&str]) {
        let Area {
            start,
            arg_end,
            end,
        } = self;
        if start == 0 || end < start + 2 || arg_end <= start || arg_end > end {
            return;
        }
        // room for at least one NUL before the last byte
        let room = end - start - 2;
        let Some(title) = titles
            .iter()
            .find(|t| t.len() <= room)
            .or(titles.last())
            .map(|t| t.as_bytes())
        else {
            return;
        };
        let n = title.len().min(room);
        // SAFETY: [start, end) is this process's own title area: its argument (and
        // environment) strings on its stack (proc_pid_stat(5)), or the buffer `set` leaked,
        // mapped writable either way; nothing of ours reads the strings any more.
        unsafe {
            std::ptr::copy_nonoverlapping(title.as_ptr(), start as *mut u8, n);
            std::ptr::write_bytes((start + n) as *mut u8, 0, end - start - n);
            // the mark, unless the title itself runs over that byte into the environment
            if start + n < arg_end {
                *((arg_end - 1) as *mut u8) = b' ';
            }
        }
    }
}

/// Rename a forked child of a process that named itself with [`set`]: `title` written over
/// its copy of the parent's title (cut to that room), `comm` with `PR_SET_NAME`, one system
/// call in all. Without a title area from the parent, [`set`] (a few more).
pub fn rename_inherited(comm: &str, title: &str) {
    let Some(area) = Area::remembered() else {
        return set(comm, &[title], None);
    };
    // no allocation: the name goes to the kernel from the stack, NUL-terminated
    let mut name = [0u8; 16];
    let n = comm.len().min(15);
    name[..n].copy_from_slice(&comm.as_bytes()[..n]);
    // SAFETY: prctl(PR_SET_NAME) reads a NUL-terminated string of at most 16 bytes.
    unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
    area.write(&[title]);
}

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
    if ok {
        let args_end = args_end as usize;
        Area {
            start: start as usize,
            arg_end: args_end,
            end: args_end,
        }
        .remember();
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
    let area = Area {
        start: arg_start,
        arg_end,
        end,
    };
    area.write(titles);
    area.remember();
}

/// Where this process's argument and environment strings are: (arg_start, arg_end,
/// env_start, env_end), fields 48–51 of `/proc/self/stat` (proc_pid_stat(5)); zeros if unknown.
pub(crate) fn command_line_area() -> (usize, usize, usize, usize) {
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
    fn a_forked_child_renames_itself_in_its_parents_title_area() {
        let out = in_child(|| {
            set("shim-test", &["minik8s-runtime-shim", "abc"], None);
            rename_inherited("init-test", "minik8s-runtime init");
        });
        let (cmdline, rest) = out.split_once('|').unwrap();
        assert_eq!(cmdline, "minik8s-runtime init\0", "{out:?}");
        assert!(rest.ends_with("|init-test\n"), "{out:?}");
    }

    /// The cost of naming the init, in a debug build: `rename_inherited` in a freshly forked
    /// child (its first write to the copied title page included) against nothing and against
    /// a full `set`; medians of 500 forks. `cargo test -p minik8s-runtime --lib
    /// proctitle::tests::naming_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a microbenchmark: run by hand"]
    fn naming_cost() {
        set(
            "bench-parent",
            &["minik8s-runtime-shim", "0123456789ab"],
            None,
        );
        let median = |f: fn()| -> u64 {
            let mut ns: Vec<u64> = (0..500)
                .map(|_| {
                    let (r, w) = nix::unistd::pipe().unwrap();
                    // SAFETY: the child times `f`, writes to a pipe and _exits.
                    match unsafe { nix::unistd::fork() }.unwrap() {
                        nix::unistd::ForkResult::Child => {
                            let t = std::time::Instant::now();
                            f();
                            let ns = t.elapsed().as_nanos() as u64;
                            let _ = nix::unistd::write(&w, &ns.to_le_bytes());
                            // SAFETY: _exit(2) ends the forked child without the harness.
                            unsafe { libc::_exit(0) };
                        }
                        nix::unistd::ForkResult::Parent { child } => {
                            drop(w);
                            let mut b = [0u8; 8];
                            std::io::Read::read_exact(&mut std::fs::File::from(r), &mut b).unwrap();
                            nix::sys::wait::waitpid(child, None).unwrap();
                            u64::from_le_bytes(b)
                        }
                    }
                })
                .collect();
            ns.sort_unstable();
            ns[ns.len() / 2]
        };
        let nothing = median(|| {});
        let rename = median(|| rename_inherited("minik8s-init", "minik8s-runtime init"));
        let full = median(|| set("minik8s-init", &["minik8s-runtime", "init"], None));
        // the copy-on-write fault of the title's page alone
        let touch = median(|| {
            if let Some(a) = Area::remembered() {
                // SAFETY: the first byte of our own title area, rewritten with its value.
                unsafe { std::ptr::write_volatile(a.start as *mut u8, *(a.start as *const u8)) };
            }
        });
        eprintln!(
            "median ns in a forked child: nothing {nothing}, first write to the title page \
             {touch}, rename_inherited {rename}, set {full}"
        );
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
