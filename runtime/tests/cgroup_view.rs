//! The container's view of its cgroups (`cgroupns.rs`), through the binary on the real
//! kernel: its limits under `/sys/fs/cgroup`, read-only unless privileged, its own cgroup as
//! the root of `/proc/self/cgroup`, in standalone and pod containers and in `exec`. Run as root.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use runtime::cgroups::{Hierarchy, Version};

/// The CPU quota and memory limit files as a container sees them, for the host's layout.
fn limit_files() -> (&'static str, &'static str) {
    match Hierarchy::host().version {
        Version::V1 => (
            "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        ),
        Version::V2 => ("/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/memory.max"),
    }
}

/// A script printing the quota (its first field on v2), the memory limit, whether the quota
/// file takes a write, and `/proc/self/cgroup`.
fn report_script() -> String {
    let (cpu, mem) = limit_files();
    format!(
        "cut -d' ' -f1 {cpu}; cat {mem}; \
         if echo 20000 > {cpu}; then echo writable; else echo read-only; fi 2>/dev/null; \
         cat /proc/self/cgroup"
    )
}

/// Check [`report_script`]'s output: half a CPU, 64 MiB, `writability`, every cgroup "/".
fn assert_report(out: &str, writability: &str) {
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..3], ["50000", "67108864", writability], "{out}");
    assert!(lines.len() > 3, "{out}");
    for l in &lines[3..] {
        assert!(l.ends_with(":/"), "not the cgroup namespace's root: {out}");
    }
}

/// The node's cgroup filesystems are still read-write (a read-only mount inside a container
/// is the mount's, never the shared superblock's).
fn assert_host_cgroupfs_writable() {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    for l in mountinfo.lines().filter(|l| l.contains(" - cgroup")) {
        let super_options = l.rsplit(' ').next().unwrap();
        assert!(super_options.starts_with("rw"), "{l}");
    }
}

#[test]
fn limits_are_visible_read_only_under_sys_fs_cgroup() {
    let rt = Rt::new("cgview");
    let script = report_script();
    let args = [
        "run", "--rm", "--cpus", "0.5", "--memory", "64m", "busybox", "sh", "-c", &script,
    ];
    assert_report(&rt.ok(&args), "read-only");
    // the mounts: the view is read-only, with nothing to execute
    let out = rt.ok(&[
        "run",
        "--rm",
        "busybox",
        "grep",
        "/sys/fs/cgroup",
        "/proc/mounts",
    ]);
    assert!(!out.is_empty(), "nothing mounted at /sys/fs/cgroup");
    for l in out.lines() {
        let options = l.split(' ').nth(3).unwrap();
        assert!(options.starts_with("ro,"), "{l}");
        assert!(
            options.contains("noexec") && options.contains("nosuid"),
            "{l}"
        );
    }
    assert_host_cgroupfs_writable();
}

#[test]
fn the_view_shows_the_containers_own_cgroup_only() {
    let rt = Rt::new("cgown");
    let procs = match Hierarchy::host().version {
        Version::V1 => "/sys/fs/cgroup/pids/cgroup.procs",
        Version::V2 => "/sys/fs/cgroup/cgroup.procs",
    };
    // the shell is PID 1 of its namespace and `cat` its child: nothing else is in its cgroup
    let out = rt.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        &format!("cat {procs}; true"),
    ]);
    let pids: Vec<u32> = out.lines().map(|l| l.parse().unwrap()).collect();
    assert!(pids.contains(&1) && pids.len() == 2, "{out}");
    if Hierarchy::host().version == Version::V1 {
        // one directory (or symlink) per controller the container has a cgroup in
        let out = rt.ok(&["run", "--rm", "busybox", "ls", "/sys/fs/cgroup"]);
        let names: Vec<&str> = out.lines().collect();
        for c in ["cpu", "cpuacct", "cpuset", "memory", "pids"] {
            assert!(names.contains(&c), "{c} missing: {out}");
        }
    }
}

#[test]
fn privileged_containers_may_write_their_cgroups() {
    let rt = Rt::new("cgpriv");
    let script = report_script();
    let args = [
        "run",
        "--rm",
        "--privileged",
        "--cpus",
        "0.5",
        "--memory",
        "64m",
        "busybox",
        "sh",
        "-c",
        &script,
    ];
    assert_report(&rt.ok(&args), "writable");
    assert_host_cgroupfs_writable();
}

#[test]
fn pod_containers_and_exec_see_their_own_limits() {
    let rt = Rt::new("cgpod");
    rt.ok(&["sandbox", "create", "pod1"]);
    let script = report_script();
    let args = [
        "run",
        "--rm",
        "--sandbox",
        "pod1",
        "--cpus",
        "0.5",
        "--memory",
        "64m",
        "busybox",
        "sh",
        "-c",
        &script,
    ];
    assert_report(&rt.ok(&args), "read-only");
    let id = rt.ok_line(&[
        "run",
        "-d",
        "--sandbox",
        "pod1",
        "--cpus",
        "0.5",
        "--memory",
        "64m",
        "busybox",
        "sleep",
        "60",
    ]);
    assert_report(&rt.ok(&["exec", &id, "sh", "-c", &script]), "read-only");
    rt.ok(&["rm", "-f", &id]);
    rt.ok(&["sandbox", "rm", "-f", "pod1"]);
}

/// Removes, on drop, a cgroup parent made in the unified hierarchy of a hybrid host, deepest
/// levels first.
struct UnifiedParent(PathBuf);

impl Drop for UnifiedParent {
    fn drop(&mut self) {
        fn remove(dir: &Path) {
            if let Ok(rd) = fs::read_dir(dir) {
                for e in rd.flatten().filter(|e| e.path().is_dir()) {
                    remove(&e.path());
                }
            }
            let _ = fs::remove_dir(dir);
        }
        remove(&self.0);
    }
}

/// The v2 view, tested on a hybrid host: in a private mount namespace the unified hierarchy
/// (`/sys/fs/cgroup/unified`, with no controllers) is bound over `/sys/fs/cgroup`, where the
/// runtime then finds cgroup v2. Nothing of the node changes but a cgroup under `unified/`.
#[test]
fn the_v2_view_is_the_unified_tree_rooted_at_the_containers_cgroup() {
    let unified = Path::new("/sys/fs/cgroup/unified");
    if Hierarchy::host().version == Version::V2 || !unified.join("cgroup.controllers").exists() {
        eprintln!("skipped: not a hybrid host (v2 hosts run the other tests on v2)");
        return;
    }
    let rt = Rt::new("cgv2");
    let _parent = UnifiedParent(unified.join(&rt.cgroup_parent));
    let script = "grep /sys/fs/cgroup /proc/mounts; cat /sys/fs/cgroup/cgroup.procs; \
                  cat /proc/self/cgroup; mkdir /sys/fs/cgroup/x 2>/dev/null || echo read-only";
    let inner = rt.cmd(&["run", "--rm", "busybox", "sh", "-c", script]);
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount --bind /sys/fs/cgroup/unified /sys/fs/cgroup && exec "$@""#)
        .arg("sh")
        .arg(inner.get_program())
        .args(inner.get_args())
        .envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .stdin(std::process::Stdio::null());
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("cgroup2 /sys/fs/cgroup cgroup2 ro,"),
        "{stdout}"
    );
    // the container's cgroup is the root: the shell (PID 1) and `cat`, nothing else
    assert_eq!(lines[1], "1", "{stdout}");
    assert!(lines.contains(&"0::/"), "{stdout}");
    assert_eq!(lines.last(), Some(&"read-only"), "{stdout}");
    assert_host_cgroupfs_writable();
    // the shim removes the container's cgroups in the background: let it before the guard
    assert!(
        rt.wait_for(20, || rt.no_containers()),
        "--rm left the container"
    );
}
