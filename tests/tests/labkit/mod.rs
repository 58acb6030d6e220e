//! A local lab of the test's own (`minikctl cluster up`), run the way a user runs it: the
//! components are this build's (`e2e-*` binaries, linked under the names `up` looks for), the
//! lab has a name of its own, and its kubeconfig entry goes to a file of the test's own.
//! `down` runs on drop, also when the test panics.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use testkit::rand_hex;

/// A lab of the test's own.
pub struct Lab {
    pub name: String,
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub lab_dir: PathBuf,
    up: bool,
}

impl Lab {
    /// A lab not yet up, named `t<random>`.
    pub fn new() -> Lab {
        let dir = std::env::temp_dir().join(format!("minik8s-lab-test-{}", rand_hex()));
        super::cluster::link_binaries(&dir.join("bin"));
        Lab {
            name: format!("t{}", &rand_hex()[..6]),
            kubeconfig: dir.join("kubeconfig"),
            lab_dir: dir.join("labs"),
            dir,
            up: false,
        }
    }

    /// `minikctl ARGS` with the lab's kubeconfig and state root.
    pub fn minikctl(&self, args: &[&str]) -> Output {
        Command::new(self.dir.join("bin/minikctl"))
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("MINIK8S_LAB_DIR", &self.lab_dir)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run minikctl")
    }

    /// `minikctl cluster up --nodes N`, which must succeed; its stdout.
    pub fn up(&mut self, nodes: u32) -> String {
        self.up_with(nodes, &[])
    }

    /// `minikctl cluster up --nodes N EXTRA...`, which must succeed; its stdout.
    pub fn up_with(&mut self, nodes: u32, extra: &[&str]) -> String {
        let bin = self.dir.join("bin");
        let n = nodes.to_string();
        let mut args = vec![
            "cluster",
            "up",
            "--name",
            &self.name,
            "--nodes",
            &n,
            "--bin-dir",
            bin.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.up = true;
        let out = self.minikctl(&args);
        assert!(out.status.success(), "cluster up failed: {}", show(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `minikctl cluster down`, which must succeed; its stdout.
    pub fn down(&mut self) -> String {
        self.up = false;
        let out = self.minikctl(&["cluster", "down", "--name", &self.name]);
        assert!(out.status.success(), "cluster down failed: {}", show(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The lab's state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.lab_dir.join(&self.name)
    }

    /// The real kubectl on the lab's context, which must succeed; its stdout.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new(testkit::kubectl())
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            show(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The real kubectl on the lab's context, which may fail: its output (for the failures a
    /// test expects, and for polling).
    pub fn kubectl_output(&self, args: &[&str]) -> Output {
        Command::new(testkit::kubectl())
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl")
    }

    /// The network namespace of a host of the lab (`switch`, `control-plane`, `node-1`, ...).
    pub fn netns(&self, host: &str) -> PathBuf {
        Path::new("/run/netns").join(format!("minik8s-{}-{host}", self.name))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.up {
            let out = self.minikctl(&["cluster", "down", "--name", &self.name]);
            if !out.status.success() {
                eprintln!("cluster down on drop failed: {}", show(&out));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An output for an assertion message.
pub fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The host pid of pod `pod`'s first container, from `minikctl inspect pod`.
pub fn pod_pid(lab: &Lab, pod: &str) -> i32 {
    let out = lab.minikctl(&["inspect", "pod", pod]);
    assert!(out.status.success(), "inspect pod {pod}: {}", show(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix("process:"))
        .and_then(|l| l.trim().strip_prefix("host pid "))
        .and_then(|l| l.split(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no host pid in:\n{text}"))
}

/// `GET /` on `addr` from inside the network namespace of process `pid` (a pod's view of
/// the network); the response's body, or why it failed.
pub fn http_get_from(pid: i32, addr: std::net::SocketAddr) -> Result<String, String> {
    http_get_in(Path::new(&format!("/proc/{pid}/ns/net")), addr)
}

/// `GET /` on `addr` from inside the network namespace at `netns` (a `/proc/PID/ns/net` or a
/// lab host's `/run/netns/...`); the response's body, or why it failed.
pub fn http_get_in(netns: &Path, addr: std::net::SocketAddr) -> Result<String, String> {
    use std::io::{Read, Write};
    let ns = std::fs::File::open(netns).map_err(|e| format!("{}: {e}", netns.display()))?;
    std::thread::spawn(move || {
        // setns(2) of a network namespace changes only this thread
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string())?;
        let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2))
            .map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        s.write_all(b"GET / HTTP/1.0\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut body = String::new();
        s.read_to_string(&mut body)
            .map_err(|e| format!("read {addr}: {e}"))?;
        if body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200") {
            Ok(body)
        } else {
            Err(format!(
                "{addr}: {}",
                body.lines().next().unwrap_or("empty answer")
            ))
        }
    })
    .join()
    .unwrap_or_else(|_| Err("thread panicked".into()))
}
