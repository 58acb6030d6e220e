//! Times a trivial container (`/bin/true` in busybox) three ways, N iterations each:
//! `minik8s-runtime run --rm` (pid, net, ipc, uts, mount, cgroup namespaces, cgroup limits,
//! overlay, pivot_root), `runc run` on an OCI bundle of the same rootfs, and the floor
//! `unshare -fmuipn chroot ROOTFS /bin/true`. The three take turns (ours, runc, floor, ours,
//! …) so that a change in the machine's load hits all of them alike. Prints median and p90
//! and the ratios of the medians.
//!
//! Usage: `runtime-bench [ITERATIONS]` as root (build with --release for meaningful figures).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Median and p90 of `v`.
fn summary(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    let n = v.len();
    (v[n / 2], v[(n * 9 / 10).min(n - 1)])
}

fn timed(f: impl FnOnce() -> Result<()>) -> Result<Duration> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed())
}

fn check(cmd: &mut Command) -> Result<()> {
    let st = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("{cmd:?}"))?;
    if !st.success() {
        bail!("{cmd:?} failed: {st}");
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() -> Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(30)
        .max(1);
    let exe = std::env::current_exe()?;
    let ours = exe.with_file_name("minik8s-runtime");
    let work = std::env::temp_dir().join(format!("minik8s-bench-{}", std::process::id()));
    let root = work.join("root");
    std::fs::create_dir_all(&root)?;
    // where the runtime keeps its per-container state for this root (tmpfs); the root must
    // exist first, its canonical path names the state directory
    let state = runtime::state_dir_for(&root);
    // a cgroup parent of the bench's own, removed at the end (the default one is a kubelet's)
    let cgroup_parent = PathBuf::from(format!("minik8s-bench-{}", std::process::id()));
    let result = (|| -> Result<()> {
        let bench = Bench {
            ours: &ours,
            root: &root,
            cgroup_parent: &cgroup_parent,
            containers: state.join("containers"),
            runc_root: work.join("runc-state"),
            bundle: work.join("bundle"),
        };
        bench.run(usize::MAX)?; // imports busybox: the runc bundle is made of its layer
        bench.make_runc_bundle()?;
        // warm-up, then the three in turns
        let runc_ok = bench
            .runc(usize::MAX)
            .map_err(|e| println!("runc run failed: {e:#}"))
            .is_ok();
        bench.floor()?;
        bench.gone()?;
        let t = bench.measure(n, runc_ok)?;
        report(n, t);
        Ok(())
    })();
    let _ = Command::new(&ours)
        .arg("--root")
        .arg(&root)
        .args(["ps", "-q"])
        .output();
    let _ = std::fs::remove_dir_all(&state);
    let _ = std::fs::remove_dir_all(&work);
    remove_cgroup_parent(&cgroup_parent);
    result
}

/// Remove the bench's cgroup parent once the shims' background clean-up has emptied it.
fn remove_cgroup_parent(parent: &Path) {
    let hierarchy = runtime::cgroups::Hierarchy::host();
    for _ in 0..100 {
        if hierarchy.remove_if_empty(parent) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("cgroup parent {} left: not empty", parent.display());
}

/// The three ways of running `/bin/true`, and where each keeps its files.
struct Bench<'a> {
    ours: &'a Path,
    root: &'a Path,
    /// Where our containers' cgroups go (`--cgroup-parent`).
    cgroup_parent: &'a Path,
    /// The runtime's container state directory (tmpfs): empty once our container is removed.
    containers: PathBuf,
    runc_root: PathBuf,
    bundle: PathBuf,
}

/// The samples of [`Bench::measure`].
struct Timings {
    ours: Vec<Duration>,
    /// Ours until the container is removed.
    gone: Vec<Duration>,
    /// Empty if runc failed.
    runc: Vec<Duration>,
    floor: Vec<Duration>,
}

impl Bench<'_> {
    /// `minik8s-runtime run --rm` with limits.
    fn run(&self, _: usize) -> Result<()> {
        check(Command::new(self.ours).arg("--root").arg(self.root).args([
            "--cgroup-parent",
            self.cgroup_parent.to_str().expect("utf-8 name"),
            "run",
            "--rm",
            "--cpus",
            "1",
            "--memory",
            "256Mi",
            "--pids",
            "1000",
            "busybox",
            "/bin/true",
        ]))
    }

    /// The same rootfs as a runc bundle, running `/bin/true` without a terminal.
    fn make_runc_bundle(&self) -> Result<()> {
        let layers: Vec<PathBuf> = std::fs::read_dir(self.root.join("layers"))?
            .flatten()
            .map(|e| e.path())
            .collect();
        let bundle = &self.bundle;
        std::fs::create_dir_all(bundle)?;
        check(
            Command::new("cp")
                .arg("-a")
                .arg(&layers[0])
                .arg(bundle.join("rootfs")),
        )?;
        check(Command::new("runc").arg("spec").current_dir(bundle))?;
        let cfg_path = bundle.join("config.json");
        let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path)?)?;
        cfg["process"]["args"] = serde_json::json!(["/bin/true"]);
        cfg["process"]["terminal"] = serde_json::json!(false);
        std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg)?)?;
        Ok(())
    }

    /// `runc run` of the bundle.
    fn runc(&self, i: usize) -> Result<()> {
        check(
            Command::new("runc")
                .arg("--root")
                .arg(&self.runc_root)
                .args(["run", "--bundle"])
                .arg(&self.bundle)
                .arg(format!("bench-{}-{i}", std::process::id())),
        )
    }

    /// The floor: namespaces and a chroot, nothing else.
    fn floor(&self) -> Result<()> {
        check(
            Command::new("unshare")
                .arg("-fmuipn")
                .arg("chroot")
                .arg(self.bundle.join("rootfs"))
                .arg("/bin/true"),
        )
    }

    /// Wait until our containers are removed. `run --rm` returns once the exit is recorded; the
    /// shim then removes the container (overlay, cgroups, state) in the background at nice 19.
    /// `runc run` removes before it returns, so the time until ours is gone is shown as well.
    /// The container's state (tmpfs) goes last, after its writable layer.
    fn gone(&self) -> Result<()> {
        while std::fs::read_dir(&self.containers)?.next().is_some() {
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(())
    }

    /// `n` rounds of ours, runc (if it works) and the floor, taking turns.
    fn measure(&self, n: usize, runc_ok: bool) -> Result<Timings> {
        let mut t = Timings {
            ours: Vec::new(),
            gone: Vec::new(),
            runc: Vec::new(),
            floor: Vec::new(),
        };
        for i in 0..n {
            let start = Instant::now();
            self.run(i)?;
            t.ours.push(start.elapsed());
            self.gone()?;
            t.gone.push(start.elapsed());
            if runc_ok {
                t.runc.push(timed(|| self.runc(i))?);
            }
            t.floor.push(timed(|| self.floor())?);
        }
        Ok(t)
    }
}

/// Medians, p90s and the ratios against the goals.
fn report(n: usize, t: Timings) {
    let (our_med, our_p90) = summary(t.ours);
    let (gone_med, gone_p90) = summary(t.gone);
    let (floor_med, floor_p90) = summary(t.floor);
    let runc_result = (!t.runc.is_empty()).then(|| summary(t.runc));
    let line = |what: &str, med: Duration, p90: Duration| {
        println!("{what:<44} {:>7.2}ms {:>7.2}ms", ms(med), ms(p90));
    };
    println!("{n} iterations, /bin/true in busybox");
    println!("{:<44} {:>9} {:>9}", "", "median", "p90");
    line(
        "minik8s-runtime run --rm (ns+cgroups+overlay)",
        our_med,
        our_p90,
    );
    line(
        "  ... until removed (background cleanup done)",
        gone_med,
        gone_p90,
    );
    if let Some((m, p)) = runc_result {
        line("runc run", m, p);
    }
    line("unshare -fmuipn chroot (floor)", floor_med, floor_p90);
    if let Some((m, _)) = runc_result {
        println!("ours / runc  = {:.2} (goal <= 0.35)", ms(our_med) / ms(m));
        println!("ours until removed / runc = {:.2}", ms(gone_med) / ms(m));
    }
    println!(
        "ours / floor = {:.2} (goal <= 3)",
        ms(our_med) / ms(floor_med)
    );
}
