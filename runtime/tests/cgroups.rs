//! The runtime's cgroup tree under load, on the real kernel. A container's cgroup is
//! `<parent>/<pod>/<container>`; the parent and a sandbox's pod level are shared, so many
//! containers create (and remove) below them at once: a fresh node's first pods, or a burst of
//! `run --rm`. Every start must succeed whoever created a level and whatever is being removed
//! meanwhile. Each test has a cgroup parent of its own (`--cgroup-parent`), absent when it
//! starts, so that it never touches another runtime's or test's cgroups; its guard kills what
//! is left inside and removes it. Run as root.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use runtime::cgroups::{Hierarchy, Version};
use runtime::container::{Attach, CreateOptions, Status};
use runtime::Runtime;

/// A cgroup parent of the test's own, absent until the runtime creates it; on drop everything
/// in and under it is killed and removed, in every hierarchy.
struct CgroupParent {
    rel: PathBuf,
    hierarchy: Hierarchy,
}

impl CgroupParent {
    fn new(test: &str) -> Self {
        let rel = PathBuf::from(format!("minik8s-test-{test}-{}", rand_hex()));
        let hierarchy = Hierarchy::host();
        for d in hierarchy.dirs(&rel) {
            assert!(!d.exists(), "{d:?} exists before the test");
        }
        CgroupParent { rel, hierarchy }
    }

    /// The global flag that puts a runtime's pods under this parent.
    fn flag(&self) -> [&str; 2] {
        ["--cgroup-parent", self.rel.to_str().expect("utf-8 name")]
    }

    /// The directory of the cgroup `rel` (below the parent) in the cpuset hierarchy (v1) or
    /// the unified one (v2).
    fn cpuset_dir(&self, rel: &Path) -> PathBuf {
        match self.hierarchy.version {
            Version::V1 => self.hierarchy.root.join("cpuset").join(&self.rel).join(rel),
            Version::V2 => self.hierarchy.root.join(&self.rel).join(rel),
        }
    }
}

impl Drop for CgroupParent {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut left = Vec::new();
            for top in self.hierarchy.dirs(&self.rel) {
                remove_tree(&top, &mut left);
            }
            if left.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                eprintln!("cgroups of the test left: {left:?}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// SIGKILL every process in `dir` and below, then remove the directories deepest first;
/// whatever could not be removed goes into `left`.
fn remove_tree(dir: &Path, left: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&e.path(), left);
        }
    }
    if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    if fs::remove_dir(dir).is_err() && dir.exists() {
        left.push(dir.to_owned());
    }
}

/// The runtime's children are waited for and reaped even when an assertion fails first.
struct Children(Vec<Child>);

impl Children {
    /// Wait for all; the stderr of those that failed.
    fn failures(mut self) -> Vec<String> {
        let mut out = Vec::new();
        for c in self.0.drain(..) {
            let o = c.wait_with_output().unwrap();
            if !o.status.success() {
                out.push(String::from_utf8_lossy(&o.stderr).trim().to_string());
            }
        }
        out
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Build the built-in image once, before the burst: its first build is not what is tested.
fn warm_image(rt: &Rt) {
    Runtime::open(&rt.root)
        .unwrap()
        .images
        .resolve("busybox")
        .unwrap();
}

#[test]
fn many_runs_at_once_on_a_fresh_cgroup_parent_all_start() {
    // each round: a dozen `run --rm` processes at once under a parent that does not exist yet.
    // They all create it (one wins the mkdir, the others find it), and the first to exit
    // remove their cgroups while the last are still creating theirs
    const ROUNDS: usize = 40;
    const AT_ONCE: usize = 12;
    let mut parents = Vec::new();
    let rt = Rt::new("cgburst");
    warm_image(&rt);
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        let parent = CgroupParent::new(&format!("burst{round}"));
        let flag = parent.flag();
        let children = Children(
            (0..AT_ONCE)
                .map(|_| {
                    rt.cmd(&[flag[0], flag[1], "run", "--rm", "busybox", "--", "true"])
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect(),
        );
        failures.extend(
            children
                .failures()
                .into_iter()
                .map(|e| format!("round {round}: {e}")),
        );
        parents.push(parent);
    }
    let cleaned = rt.wait_for(30, || rt.no_containers());
    assert!(
        failures.is_empty(),
        "{} of {} runs failed:\n{}",
        failures.len(),
        ROUNDS * AT_ONCE,
        failures.join("\n")
    );
    assert!(cleaned, "--rm left containers");
}

/// One pod as the kubelet's pod worker runs it: sandbox, a container in it, its exit, removal.
fn run_pod(rt: &Runtime, pod: &str) -> Result<(), String> {
    rt.create_sandbox(pod, None)
        .map_err(|e| format!("sandbox create {pod}: {e}"))?;
    let ran = (|| {
        let spec = rt
            .create(&CreateOptions {
                image: "busybox".into(),
                command: vec!["true".into()],
                sandbox: Some(pod.into()),
                ..CreateOptions::default()
            })
            .map_err(|e| format!("create in {pod}: {e}"))?;
        let started = rt.start(&spec.id, Attach::Detached);
        let st = rt
            .wait_stopped(&spec.id, Duration::from_secs(20))
            .map_err(|e| format!("state of {}: {e}", spec.id));
        let removed = rt.remove(&spec.id, true);
        started.map_err(|e| format!("start in {pod}: {e}"))?;
        let st = st?;
        if st.status != Status::Stopped || st.exit_code != Some(0) {
            return Err(format!("container in {pod} ended as {st:?}"));
        }
        removed.map_err(|e| format!("remove in {pod}: {e}"))
    })();
    let removed = rt
        .remove_sandbox(pod, true)
        .map_err(|e| format!("sandbox rm {pod}: {e}"));
    ran.and(removed)
}

#[test]
fn sandboxes_created_by_many_threads_at_once_all_run_their_containers() {
    // the kubelet's pod workers are threads of one process: on a fresh node they create their
    // sandboxes' pod cgroups under the not-yet-existing parent at once, and a pod that is done
    // removes its sandbox while others are still creating theirs
    const ROUNDS: usize = 40;
    const THREADS: usize = 8;
    let mut parents = Vec::new();
    let rt = Rt::new("cgthreads");
    warm_image(&rt);
    let mut runtime = Runtime::open(&rt.root).unwrap();
    // this test binary is not the runtime: shims are the runtime binary's `shim` command
    runtime.shim_exe = PathBuf::from(BIN);
    let mut failures = Vec::new();
    for round in 0..ROUNDS {
        let parent = CgroupParent::new(&format!("threads{round}"));
        runtime.cgroup_parent = parent.rel.clone();
        let runtime = &runtime;
        std::thread::scope(|s| {
            let pods: Vec<_> = (0..THREADS)
                .map(|i| s.spawn(move || run_pod(runtime, &format!("r{round}-pod{i}"))))
                .collect();
            for p in pods {
                if let Err(e) = p.join().unwrap() {
                    failures.push(format!("round {round}: {e}"));
                }
            }
        });
        parents.push(parent);
    }
    assert!(
        failures.is_empty(),
        "{} of {} pods failed:\n{}",
        failures.len(),
        ROUNDS * THREADS,
        failures.join("\n")
    );
    assert!(rt.no_containers(), "containers left");
}

#[test]
fn levels_made_by_someone_else_with_empty_cpusets_are_filled_before_use() {
    // On cgroup v1 a new cpuset cgroup has empty `cpuset.cpus` and `cpuset.mems` and refuses
    // tasks (ENOSPC) until they are filled. Here the parent and a sandbox's pod level exist
    // before the runtime comes, made by someone else and never filled: the runtime must fill
    // every level it uses, not only those it made itself.
    let parent = CgroupParent::new("handmade");
    let rt = Rt::new("cghandmade");
    let h = &parent.hierarchy;
    for d in h.dirs(&parent.rel.join("pod1")) {
        fs::create_dir_all(&d).unwrap();
    }
    let cpuset = |rel: &str, file: &str| {
        fs::read_to_string(parent.cpuset_dir(Path::new(rel)).join(file))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    if h.version == Version::V1 {
        assert_eq!(cpuset("", "cpuset.cpus"), "", "a new cpuset is empty");
        assert_eq!(cpuset("pod1", "cpuset.mems"), "", "a new cpuset is empty");
    }
    // the runtime under this test's parent: `ok(args)` is `rt.ok(--cgroup-parent P args)`
    let ok = |args: &[&str]| rt.ok(&[&parent.flag()[..], args].concat());
    ok(&["sandbox", "create", "pod1"]);
    let out = ok(&["run", "--rm", "--sandbox", "pod1", "busybox", "hostname"]);
    assert_eq!(out.trim(), "pod1");
    let out = ok(&["run", "--rm", "busybox", "echo", "standalone"]);
    assert_eq!(out.trim(), "standalone");
    if h.version == Version::V1 {
        for level in ["", "pod1"] {
            for file in ["cpuset.cpus", "cpuset.mems"] {
                assert_ne!(cpuset(level, file), "", "{level}/{file} left empty");
            }
        }
    }
    ok(&["sandbox", "rm", "pod1"]);
    assert!(
        rt.wait_for(20, || rt.no_containers()),
        "--rm left containers"
    );
}
