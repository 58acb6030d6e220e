//! `minikctl cluster up --nodes 3` and `down`, timed as a user sees them: from the command's
//! start to its exit, `up` returning only once every node is Ready (issue 13's goal: up ≤ 3 s
//! once the binaries are built, down ≤ 2 s; kind takes about 30 s, k3s about 50 s).
//!
//! The baseline, in the same run: etcd alone, from its start to its first answer on loopback
//! (the floor under any cluster's start on this machine), so that a slow machine shows as a
//! slow baseline rather than as a slow lab.
//!
//! The components are the release builds beside this bench's minikctl (`target/release`):
//! `cargo build --release -p minik8s-apiserver -p minik8s-controller -p minik8s-scheduler
//! -p minik8s-kubelet -p minik8s-proxy -p minik8s-dns && cargo bench -p minik8s-cli --bench
//! lab [-- ROUNDS]` (as root; ROUNDS defaults to 5). `up` includes the add-ons: it returns
//! once the cluster DNS answers from every node.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MINIKCTL: &str = env!("CARGO_BIN_EXE_minikctl");
const NODES: &str = "3";

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("the lab benchmark needs root (network namespaces, cgroups)");
        std::process::exit(1);
    }
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let bin = Path::new(MINIKCTL).parent().unwrap().to_owned();
    for c in [
        "minik8s-apiserver",
        "minik8s-controller",
        "minik8s-scheduler",
        "minik8s-kubelet",
        "minik8s-proxy",
        "minik8s-dns",
    ] {
        if !bin.join(c).is_file() {
            eprintln!(
                "{} is missing: cargo build --release -p minik8s-apiserver -p minik8s-controller -p minik8s-scheduler -p minik8s-kubelet -p minik8s-proxy -p minik8s-dns",
                bin.join(c).display()
            );
            std::process::exit(1);
        }
    }
    let scratch = tempfile::tempdir().unwrap();
    let (mut ups, mut downs, mut etcds) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let etcd = etcd_start(scratch.path());
        let up = timed(
            &bin,
            scratch.path(),
            &["up", "--nodes", NODES, "--bin-dir", bin.to_str().unwrap()],
        );
        let down = timed(&bin, scratch.path(), &["down"]);
        println!(
            "round {round}: etcd alone {:>5} ms   up --nodes {NODES} {:>5} ms   down {:>5} ms",
            etcd.as_millis(),
            up.as_millis(),
            down.as_millis()
        );
        etcds.push(etcd);
        ups.push(up);
        downs.push(down);
    }
    let (etcd, up, down) = (median(&mut etcds), median(&mut ups), median(&mut downs));
    println!(
        "median of {rounds}: up --nodes {NODES} {:.2} s (goal ≤ 3 s, {:.1}× etcd alone's {:.2} s), down {:.2} s (goal ≤ 2 s)",
        up.as_secs_f64(),
        up.as_secs_f64() / etcd.as_secs_f64(),
        etcd.as_secs_f64(),
        down.as_secs_f64()
    );
}

/// `minikctl cluster ARGS --name bench`, which must succeed; its wall time.
fn timed(bin: &Path, scratch: &Path, args: &[&str]) -> Duration {
    let t = Instant::now();
    let out = Command::new(bin.join("minikctl"))
        .arg("cluster")
        .args(args)
        .args(["--name", "bench"])
        .env("MINIK8S_LAB_DIR", scratch.join("labs"))
        .env("KUBECONFIG", scratch.join("kubeconfig"))
        .stdin(Stdio::null())
        .output()
        .expect("run minikctl");
    let took = t.elapsed();
    if !out.status.success() {
        eprintln!(
            "minikctl cluster {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = Command::new(bin.join("minikctl"))
            .args(["cluster", "down", "--name", "bench"])
            .env("MINIK8S_LAB_DIR", scratch.join("labs"))
            .env("KUBECONFIG", scratch.join("kubeconfig"))
            .output();
        std::process::exit(1);
    }
    took
}

/// etcd on a fresh data dir and free loopback ports: the time to its first `/health` answer.
fn etcd_start(scratch: &Path) -> Duration {
    let data: PathBuf = scratch.join("etcd-baseline");
    let _ = std::fs::remove_dir_all(&data);
    let port = free_port();
    let peer = free_port();
    let t = Instant::now();
    let mut child = Command::new("etcd")
        .args(["--data-dir", data.to_str().unwrap(), "--log-level", "error"])
        .arg(format!("--listen-client-urls=http://127.0.0.1:{port}"))
        .arg(format!("--advertise-client-urls=http://127.0.0.1:{port}"))
        .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
        .arg(format!(
            "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
        ))
        .arg(format!("--initial-cluster=default=http://127.0.0.1:{peer}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start etcd");
    let took = loop {
        if health(port) {
            break t.elapsed();
        }
        assert!(t.elapsed() < Duration::from_secs(20), "etcd did not start");
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&data);
    took
}

/// Whether etcd answers `GET /health` with `"health":"true"`.
fn health(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let req = format!("GET /health HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let mut body = String::new();
    s.write_all(req.as_bytes()).is_ok()
        && s.read_to_string(&mut body).is_ok()
        && body.contains("\"health\":\"true\"")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}
