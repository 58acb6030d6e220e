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

// --- an OCI bundle's linux.cgroupsPath and linux.resources (runtime-tools' linux_cgroups_*)

/// A busybox bundle in `bundle` whose process sleeps, with `linux` as its `linux` section.
fn oci_bundle(bundle: &Path, linux: serde_json::Value) {
    let rootfs = bundle.join("rootfs");
    for d in ["bin", "dev", "proc", "sys", "tmp"] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sleep")).unwrap();
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {"user": {"uid": 0, "gid": 0}, "args": ["sleep", "100"], "env": ["PATH=/bin"], "cwd": "/"},
        "root": {"path": "rootfs"},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": linux,
    });
    fs::write(
        bundle.join("config.json"),
        serde_json::to_vec(&config).unwrap(),
    )
    .unwrap();
}

/// `create` with no stdio of the caller's but a file for its errors (the container keeps
/// create's stdio, as with runc: reading a pipe to its end would wait for the container).
fn oci_create(rt: &Rt, parent: &CgroupParent, bundle: &Path, id: &str) -> Result<(), String> {
    let errors = bundle.join(format!("{id}.err"));
    let status = rt
        .cmd(
            &[
                &parent.flag()[..],
                &["create", "--bundle", bundle.to_str().unwrap(), id],
            ]
            .concat(),
        )
        .stdout(Stdio::null())
        .stderr(fs::File::create(&errors).unwrap())
        .status()
        .unwrap();
    match status.success() {
        true => Ok(()),
        false => Err(fs::read_to_string(&errors).unwrap_or_default()),
    }
}

/// The cgroup `pid` is in, per `/proc/PID/cgroup`, in the hierarchy holding `controller` (v1)
/// or the unified one.
fn cgroup_of(pid: i32, controller: &str) -> String {
    let own = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    own.lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
            let hit = controllers.split(',').any(|c| c == controller) || controllers.is_empty();
            hit.then(|| path.to_string())
        })
        .unwrap()
}

fn init_pid(rt: &Rt, id: &str) -> i32 {
    let state: serde_json::Value = serde_json::from_str(&rt.ok(&["state", id])).unwrap();
    state["pid"].as_i64().unwrap() as i32
}

#[test]
fn an_absolute_cgroups_path_is_from_the_root_and_goes_at_delete() {
    let rt = Rt::new("cgabs");
    let parent = CgroupParent::new("abs");
    let bundle = TempDir::new("cgabs");
    let path = format!("/{}/ctr", parent.rel.display());
    oci_bundle(
        bundle.path(),
        serde_json::json!({"namespaces": [{"type": "pid"}, {"type": "mount"}], "cgroupsPath": path}),
    );
    let id = format!("abs-{}", rand_hex());
    oci_create(&rt, &parent, bundle.path(), &id).unwrap();
    assert_eq!(cgroup_of(init_pid(&rt, &id), "memory"), path);
    rt.ok(&["delete", "-f", &id]);
    // the path's levels did not exist before: all of them go
    for d in parent.hierarchy.dirs(&parent.rel) {
        assert!(!d.exists(), "{d:?} left after delete");
    }
}

#[test]
fn a_relative_cgroups_path_is_below_the_parent_and_only_new_levels_go() {
    let rt = Rt::new("cgrel");
    let parent = CgroupParent::new("rel");
    let bundle = TempDir::new("cgrel");
    // a level that exists before the container: it stays
    parent.hierarchy.create(&parent.rel.join("kept")).unwrap();
    oci_bundle(
        bundle.path(),
        serde_json::json!({
            "namespaces": [{"type": "pid"}, {"type": "mount"}],
            "cgroupsPath": "kept/testdir/container",
        }),
    );
    let id = format!("rel-{}", rand_hex());
    oci_create(&rt, &parent, bundle.path(), &id).unwrap();
    let expected = format!("/{}/kept/testdir/container", parent.rel.display());
    assert_eq!(cgroup_of(init_pid(&rt, &id), "pids"), expected);
    rt.ok(&["delete", "-f", &id]);
    for d in parent.hierarchy.dirs(&parent.rel.join("kept")) {
        assert!(d.is_dir(), "{d:?}, which existed before, was removed");
        assert!(
            !d.join("testdir").exists(),
            "{d:?}/testdir left after delete"
        );
    }
}

/// The major:minor of a block device of the host (a whole disk), for blkio settings.
fn a_block_device() -> Option<String> {
    fs::read_dir("/sys/block").ok()?.flatten().find_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        let real = !name.starts_with("loop") && !name.starts_with("ram");
        real.then(|| fs::read_to_string(e.path().join("dev")).ok())?
            .map(|d| d.trim().to_string())
    })
}

#[test]
fn memory_details_and_blkio_throttles_reach_the_cgroup_files() {
    let h = Hierarchy::host();
    if h.version != Version::V1 || !h.root.join("blkio").is_dir() {
        eprintln!("skipped: needs cgroup v1 with blkio mounted");
        return;
    }
    let Some(dev) = a_block_device() else {
        eprintln!("skipped: no block device");
        return;
    };
    let (major, minor) = dev.split_once(':').unwrap();
    let (major, minor): (i64, i64) = (major.parse().unwrap(), minor.parse().unwrap());
    let rt = Rt::new("cgtune");
    let mut parent = CgroupParent::new("tune");
    parent.hierarchy = h.with_controllers(&["blkio"]).unwrap();
    let bundle = TempDir::new("cgtune");
    let limit = 50_593_792i64;
    oci_bundle(
        bundle.path(),
        serde_json::json!({
            "namespaces": [{"type": "pid"}, {"type": "mount"}],
            "cgroupsPath": "ctr",
            "resources": {
                "memory": {"limit": limit, "reservation": limit / 2, "swap": limit * 2,
                           "swappiness": 10, "disableOOMKiller": true},
                "blockIO": {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 102400}],
                            "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 300}]},
            },
        }),
    );
    let id = format!("tune-{}", rand_hex());
    oci_create(&rt, &parent, bundle.path(), &id).unwrap();
    let pid = init_pid(&rt, &id);
    let file = |controller: &str, name: &str| {
        let rel = cgroup_of(pid, controller);
        fs::read_to_string(h.root.join(controller).join(&rel[1..]).join(name)).unwrap()
    };
    let read = file("memory", "memory.soft_limit_in_bytes");
    let swap = file("memory", "memory.memsw.limit_in_bytes");
    let swappiness = file("memory", "memory.swappiness");
    let oom = file("memory", "memory.oom_control");
    let rbps = file("blkio", "blkio.throttle.read_bps_device");
    let wiops = file("blkio", "blkio.throttle.write_iops_device");
    rt.ok(&["delete", "-f", &id]);
    assert_eq!(read.trim(), (limit / 2).to_string());
    assert_eq!(swap.trim(), (limit * 2).to_string());
    assert_eq!(swappiness.trim(), "10");
    assert!(oom.starts_with("oom_kill_disable 1"), "{oom}");
    assert_eq!(rbps.trim(), format!("{dev} 102400"));
    assert_eq!(wiops.trim(), format!("{dev} 300"));
    for d in parent.hierarchy.dirs(&parent.rel.join("ctr")) {
        assert!(!d.exists(), "{d:?} left after delete");
    }
}

#[test]
fn a_setting_the_host_cannot_apply_is_refused_not_dropped() {
    let rt = Rt::new("cgrefuse");
    let parent = CgroupParent::new("refuse");
    let bundle = TempDir::new("cgrefuse");
    let cases = [
        (
            serde_json::json!({"unified": {"memory.high": "1000000"}}),
            "unified",
        ),
        (
            serde_json::json!({"hugepageLimits": [{"pageSize": "3MB", "limit": 1048576}]}),
            "hugetlb",
        ),
        (
            serde_json::json!({"memory": {"swappiness": 200}}),
            "swappiness",
        ),
    ];
    for (resources, named) in cases {
        let _ = fs::remove_dir_all(bundle.path().join("rootfs"));
        oci_bundle(
            bundle.path(),
            serde_json::json!({"namespaces": [{"type": "pid"}, {"type": "mount"}], "resources": resources}),
        );
        let id = format!("refuse-{}", rand_hex());
        let err = oci_create(&rt, &parent, bundle.path(), &id).unwrap_err();
        assert!(err.contains(named), "{named}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one readable line: {err}");
    }
    assert!(rt.no_containers());
}

/// A cgroup v1 tree of the test's own: a tmpfs with the host's hierarchies bound in, and new
/// `hugetlb` and `net_cls,net_prio` hierarchies (which this host may not mount) mounted on
/// it; unmounted on drop, after the cgroups made in it are gone.
struct PrivateTree {
    root: TempDir,
    mounted: Vec<PathBuf>,
}

impl PrivateTree {
    fn new() -> Option<Self> {
        use nix::mount::{mount, MsFlags};
        let host = Hierarchy::host();
        let own = fs::read_to_string("/proc/self/cgroup").unwrap();
        // only controllers in no hierarchy yet can be mounted here as these
        let free = |c: &str| {
            !own.lines().any(|l| {
                l.split(':')
                    .nth(1)
                    .is_some_and(|cs| cs.split(',').any(|x| x == c))
            })
        };
        let all_free = ["hugetlb", "net_cls", "net_prio"].into_iter().all(free);
        if host.version != Version::V1 || !all_free {
            return None;
        }
        let root = TempDir::new("cgtree");
        let mut tree = PrivateTree {
            root,
            mounted: Vec::new(),
        };
        let at = tree.root.path().to_owned();
        mount(
            Some("tmpfs"),
            &at,
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        tree.mounted.push(at.clone());
        for c in runtime::cgroups::V1_CONTROLLERS {
            fs::create_dir(at.join(c)).unwrap();
            let flags = MsFlags::MS_BIND;
            mount(
                Some(&host.root.join(c)),
                &at.join(c),
                None::<&str>,
                flags,
                None::<&str>,
            )
            .unwrap();
            tree.mounted.push(at.join(c));
        }
        for (options, links) in [
            ("hugetlb", &[][..]),
            ("net_cls,net_prio", &["net_cls", "net_prio"][..]),
        ] {
            fs::create_dir(at.join(options)).unwrap();
            mount(
                Some("cgroup"),
                &at.join(options),
                Some("cgroup"),
                MsFlags::empty(),
                Some(options),
            )
            .unwrap();
            tree.mounted.push(at.join(options));
            for l in links {
                std::os::unix::fs::symlink(options, at.join(l)).unwrap();
            }
        }
        Some(tree)
    }
}

impl Drop for PrivateTree {
    fn drop(&mut self) {
        use nix::mount::{mount, umount2, MntFlags, MsFlags};
        let (tmpfs, below) = self.mounted.split_first().expect("the tmpfs first");
        for m in below.iter().rev() {
            let _ = umount2(m, MntFlags::MNT_DETACH);
        }
        // a v1 hierarchy dies at an unmount that finds it without children; the container's
        // view of it (in its mount namespace) may have been the last mount instead: mount it
        // again, now with nothing below, and unmount it until the kernel has let it go
        for options in ["hugetlb", "net_cls,net_prio"] {
            let dir = tmpfs.join(options);
            for _ in 0..20 {
                let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
                if !own.lines().any(|l| l.split(':').nth(1) == Some(options)) {
                    break;
                }
                let flags = MsFlags::empty();
                if mount(Some("cgroup"), &dir, Some("cgroup"), flags, Some(options)).is_ok() {
                    let _ = umount2(&dir, MntFlags::empty());
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = umount2(tmpfs, MntFlags::MNT_DETACH);
    }
}

#[test]
fn hugetlb_limits_and_the_network_class_reach_their_cgroup_files() {
    let Some(tree) = PrivateTree::new() else {
        eprintln!("skipped: needs cgroup v1 with hugetlb and net_cls,net_prio unmounted");
        return;
    };
    let sizes: Vec<String> = fs::read_dir("/sys/kernel/mm/hugepages")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let kb: u64 = e
                        .file_name()
                        .to_str()?
                        .strip_prefix("hugepages-")?
                        .strip_suffix("kB")?
                        .parse()
                        .ok()?;
                    Some(match kb {
                        kb if kb >= 1 << 20 => format!("{}GB", kb >> 20),
                        kb => format!("{}MB", kb >> 10),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let Some(size) = sizes.first() else {
        eprintln!("skipped: no hugepage size");
        return;
    };
    let state = Rt::new("cghuge");
    let bundle = TempDir::new("cghuge");
    oci_bundle(
        bundle.path(),
        serde_json::json!({
            "namespaces": [{"type": "pid"}, {"type": "mount"}],
            "resources": {
                "hugepageLimits": [{"pageSize": size, "limit": 2u64 << 30}],
                "network": {"classID": 255, "priorities": [{"name": "lo", "priority": 10}]},
            },
        }),
    );
    let mut rt = Runtime::open(&state.root).unwrap();
    rt.cgroups = Hierarchy::detect(tree.root.path());
    rt.cgroup_parent = state.cgroup_parent.clone();
    rt.shim_exe = BIN.into();
    let id = format!("huge-{}", rand_hex());
    let created = rt.oci_create(&id, bundle.path());
    let ctr = tree
        .root
        .path()
        .join("net_cls,net_prio")
        .join(&state.cgroup_parent)
        .join(format!("oci-{id}/ctr"));
    let huge_file = tree
        .root
        .path()
        .join("hugetlb")
        .join(&state.cgroup_parent)
        .join(format!("oci-{id}/ctr/hugetlb.{size}.limit_in_bytes"));
    let read = |p: PathBuf| fs::read_to_string(p).unwrap_or_default();
    let (huge, class, prio) = (
        read(huge_file),
        read(ctr.join("net_cls.classid")),
        read(ctr.join("net_prio.ifpriomap")),
    );
    let _ = rt.oci_delete(&id, true);
    for c in ["hugetlb", "net_cls,net_prio", "pids"] {
        let parent = tree.root.path().join(c).join(&state.cgroup_parent);
        let _ = fs::remove_dir(&parent);
        assert!(!parent.exists(), "{parent:?} left");
    }
    created.unwrap();
    assert_eq!(huge.trim(), (2u64 << 30).to_string());
    assert_eq!(class.trim(), "255");
    assert!(prio.lines().any(|l| l.trim() == "lo 10"), "{prio}");
}
