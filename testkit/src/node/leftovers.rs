//! The proof that a test cleaned up: after its kubelets are dropped, the kernel holds nothing
//! of it. Containers are processes in namespaces and cgroups, pinned by mounts, wired to
//! bridges; each of those outlives a crashed test unless removed, so each is checked.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use runtime::cgroups::Hierarchy;
use runtime::wait::alive;

/// After the kubelets are dropped: no container process of the test is alive, no process
/// runs out of a kubelet root (shims), no mount refers to a kubelet root (sandbox namespace
/// pins), no cgroup root of its kubelets, no pod cgroup of the test and no pod bridge of its
/// nodes is left.
pub fn assert_nothing_left(
    roots: &[PathBuf],
    bridges: &[String],
    uids: &BTreeSet<String>,
    pids: &BTreeSet<i32>,
) {
    assert_no_process(pids);
    let cgroup_roots: Vec<PathBuf> = roots.iter().map(|r| super::cgroup_root(r)).collect();
    let roots: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    let mut procs = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmd) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if roots.iter().any(|r| cmd.contains(r.as_str())) {
            procs.push(cmd);
        }
    }
    assert!(procs.is_empty(), "processes of the test left: {procs:?}");

    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mounts: Vec<&str> = mountinfo
        .lines()
        .filter(|l| roots.iter().any(|r| l.contains(r.as_str())))
        .collect();
    assert!(mounts.is_empty(), "mounts of the test left: {mounts:?}");

    // the kubelets' own cgroup roots, and pod cgroups under the default root (where a
    // kubelet that ignored its root would have put them)
    let cgroups = Hierarchy::host();
    let left: Vec<PathBuf> = cgroup_roots
        .into_iter()
        .chain(uids.iter().map(|u| Path::new("minik8s").join(u)))
        .flat_map(|rel| cgroups.dirs(&rel))
        .filter(|d| d.exists())
        .collect();
    assert!(left.is_empty(), "cgroups of the test left: {left:?}");

    let links: Vec<&String> = bridges
        .iter()
        .filter(|b| Path::new("/sys/class/net").join(b).exists())
        .collect();
    assert!(links.is_empty(), "pod bridges of the test left: {links:?}");
}

/// Wait up to 10 s for the container processes `pids` to be gone; panic naming the living.
fn assert_no_process(pids: &BTreeSet<i32>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let living: Vec<_> = pids.iter().filter(|p| alive(**p)).collect();
    assert!(living.is_empty(), "container processes left: {living:?}");
}
