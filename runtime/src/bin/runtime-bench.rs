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
    let result = (|| -> Result<()> {
        let run = |_: usize| {
            check(Command::new(&ours).arg("--root").arg(&root).args([
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
        };
        run(usize::MAX)?; // imports busybox: the runc bundle below is made of its layer

        // the same rootfs as a runc bundle
        let layers: Vec<PathBuf> = std::fs::read_dir(root.join("layers"))?
            .flatten()
            .map(|e| e.path())
            .collect();
        let bundle = work.join("bundle");
        std::fs::create_dir_all(&bundle)?;
        check(
            Command::new("cp")
                .arg("-a")
                .arg(&layers[0])
                .arg(bundle.join("rootfs")),
        )?;
        check(Command::new("runc").arg("spec").current_dir(&bundle))?;
        let cfg_path = bundle.join("config.json");
        let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_path)?)?;
        cfg["process"]["args"] = serde_json::json!(["/bin/true"]);
        cfg["process"]["terminal"] = serde_json::json!(false);
        std::fs::write(&cfg_path, serde_json::to_vec_pretty(&cfg)?)?;
        let runc_root = work.join("runc-state");
        let runc = |i: usize| {
            check(
                Command::new("runc")
                    .arg("--root")
                    .arg(&runc_root)
                    .args(["run", "--bundle"])
                    .arg(&bundle)
                    .arg(format!("bench-{}-{i}", std::process::id())),
            )
        };

        let rootfs = bundle.join("rootfs");
        let floor = |_: usize| {
            check(
                Command::new("unshare")
                    .arg("-fmuipn")
                    .arg("chroot")
                    .arg(&rootfs)
                    .arg("/bin/true"),
            )
        };
        // warm-up, then the three in turns
        let runc_ok = runc(usize::MAX)
            .map_err(|e| println!("runc run failed: {e:#}"))
            .is_ok();
        floor(usize::MAX)?;
        // `run --rm` returns once the exit is recorded; the shim then removes the container
        // (overlay, cgroups, state) in the background at nice 19. `runc run` removes before it
        // returns, so the time until our container is gone is shown as well.
        // the container's state (tmpfs) goes last, after its writable layer
        let containers = state.join("containers");
        let gone = || -> Result<()> {
            while std::fs::read_dir(&containers)?.next().is_some() {
                std::thread::sleep(Duration::from_micros(200));
            }
            Ok(())
        };
        gone()?;
        let (mut o, mut r, mut f, mut g) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            let t = Instant::now();
            run(i)?;
            o.push(t.elapsed());
            gone()?;
            g.push(t.elapsed());
            if runc_ok {
                r.push(timed(|| runc(i))?);
            }
            f.push(timed(|| floor(i))?);
        }
        let (our_med, our_p90) = summary(o);
        let (gone_med, gone_p90) = summary(g);
        let (floor_med, floor_p90) = summary(f);
        let runc_result = if runc_ok { Ok(summary(r)) } else { Err(()) };

        println!("{n} iterations, /bin/true in busybox");
        println!("{:<44} {:>9} {:>9}", "", "median", "p90");
        println!(
            "{:<44} {:>7.2}ms {:>7.2}ms",
            "minik8s-runtime run --rm (ns+cgroups+overlay)",
            ms(our_med),
            ms(our_p90)
        );
        println!(
            "{:<44} {:>7.2}ms {:>7.2}ms",
            "  ... until removed (background cleanup done)",
            ms(gone_med),
            ms(gone_p90)
        );
        match &runc_result {
            Ok((m, p)) => println!("{:<44} {:>7.2}ms {:>7.2}ms", "runc run", ms(*m), ms(*p)),
            Err(()) => {}
        }
        println!(
            "{:<44} {:>7.2}ms {:>7.2}ms",
            "unshare -fmuipn chroot (floor)",
            ms(floor_med),
            ms(floor_p90)
        );
        if let Ok((m, _)) = runc_result {
            println!("ours / runc  = {:.2} (goal <= 0.35)", ms(our_med) / ms(m));
            println!("ours until removed / runc = {:.2}", ms(gone_med) / ms(m));
        }
        println!(
            "ours / floor = {:.2} (goal <= 3)",
            ms(our_med) / ms(floor_med)
        );
        Ok(())
    })();
    let _ = Command::new(&ours)
        .arg("--root")
        .arg(&root)
        .args(["ps", "-q"])
        .output();
    let _ = std::fs::remove_dir_all(&state);
    let _ = std::fs::remove_dir_all(&work);
    result
}

#[allow(dead_code)]
fn exists(p: &Path) -> bool {
    p.exists()
}
