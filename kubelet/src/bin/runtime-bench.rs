//! Times a trivial container (`/bin/true` in busybox) three ways, N iterations each:
//! `minik8s-runtime run --rm` (pid, net, ipc, uts, mount, cgroup namespaces, cgroup limits,
//! overlay, pivot_root), `runc run` on an OCI bundle of the same rootfs, and the floor
//! `unshare -fmuipn chroot ROOTFS /bin/true`. Prints median and p90 and the ratios.
//!
//! Usage: `runtime-bench [ITERATIONS]` as root (build with --release for meaningful figures).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

fn time(n: usize, mut f: impl FnMut(usize) -> Result<()>) -> Result<(Duration, Duration)> {
    f(usize::MAX)?; // warm-up
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        f(i)?;
        v.push(t.elapsed());
    }
    v.sort();
    Ok((v[n / 2], v[(n * 9 / 10).min(n - 1)]))
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
    let result = (|| -> Result<()> {
        std::fs::create_dir_all(&root)?;
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
        let (our_med, our_p90) = time(n, run)?;

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
        let runc_result = time(n, runc);

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
        let (floor_med, floor_p90) = time(n, floor)?;

        println!("{n} iterations, /bin/true in busybox");
        println!("{:<44} {:>9} {:>9}", "", "median", "p90");
        println!(
            "{:<44} {:>7.2}ms {:>7.2}ms",
            "minik8s-runtime run --rm (ns+cgroups+overlay)",
            ms(our_med),
            ms(our_p90)
        );
        match &runc_result {
            Ok((m, p)) => println!("{:<44} {:>7.2}ms {:>7.2}ms", "runc run", ms(*m), ms(*p)),
            Err(e) => println!("runc run failed: {e:#}"),
        }
        println!(
            "{:<44} {:>7.2}ms {:>7.2}ms",
            "unshare -fmuipn chroot (floor)",
            ms(floor_med),
            ms(floor_p90)
        );
        if let Ok((m, _)) = runc_result {
            println!("ours / runc  = {:.2} (goal <= 0.35)", ms(our_med) / ms(m));
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
    let _ = std::fs::remove_dir_all(&work);
    result
}

#[allow(dead_code)]
fn exists(p: &Path) -> bool {
    p.exists()
}
