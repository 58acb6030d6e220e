//! A component binary (scheduler, controller manager, kubelet, apiserver) running for a test,
//! started the way an operator would, with its stdout and stderr captured, its leader-election
//! identity, signals, and the holder of its Lease. Read next: `process.rs`.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;

/// A component binary running for a test; killed (SIGKILL) when dropped.
pub struct Component {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Component {
    /// Start `bin` with `args` and the environment the test runs in, minus what changes how a
    /// component connects and logs (`KUBECONFIG`, `RUST_LOG`, `NO_COLOR`), plus `env`.
    pub fn start(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Component {
        let mut child = Command::new(bin)
            .args(args)
            .env_remove("KUBECONFIG")
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
        let stdout = drain(child.stdout.take().expect("piped stdout"));
        let stderr = drain(child.stderr.take().expect("piped stderr"));
        Component {
            child,
            stdout,
            stderr,
        }
    }

    /// The identity it runs leader election under: `leader::default_identity()` in its process.
    pub fn identity(&self) -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}_{}", host.trim(), self.child.id())
    }

    /// Send it a signal by name (`TERM`, `INT`), as kill(1) does (through kill(2): a fresh
    /// machine need not have kill(1), which is procps').
    pub fn signal(&self, name: &str) {
        use nix::sys::signal::{kill, Signal};
        let sig: Signal = format!("SIG{name}").parse().expect("a signal name");
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        kill(pid, sig).unwrap_or_else(|e| panic!("kill -s {name}: {e}"));
    }

    /// Wait up to `timeout` for it to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("waiting for the component") {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Everything it wrote to stdout so far.
    pub fn stdout(&self) -> Vec<u8> {
        self.stdout.lock().unwrap().clone()
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr(&self) -> Vec<u8> {
        self.stderr.lock().unwrap().clone()
    }

    /// Wait up to `timeout` until its stderr contains `text`.
    pub async fn wait_for_stderr(&self, text: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if String::from_utf8_lossy(&self.stderr()).contains(text) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Its stdout and stderr so far, for assertion messages.
    pub fn output(&self) -> String {
        format!(
            "stdout: {:?}\nstderr: {}",
            String::from_utf8_lossy(&self.stdout()),
            String::from_utf8_lossy(&self.stderr())
        )
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Read `from` to its end on a thread of its own, so the child never blocks on a full pipe.
fn drain(mut from: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let into = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = from.read(&mut chunk) {
            into.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    buf
}

/// The holder of Lease `kube-system/<name>` ("" when released, None when there is no Lease).
pub async fn lease_holder(client: &kube::Client, name: &str) -> Option<String> {
    let api: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
    let lease = api.get_opt(name).await.ok()??;
    Some(lease.spec?.holder_identity.unwrap_or_default())
}

/// Poll every 50 ms, up to `timeout`, until `identity` holds Lease `kube-system/<name>`;
/// returns how long that took.
pub async fn wait_for_holder(
    client: &kube::Client,
    name: &str,
    identity: &str,
    timeout: Duration,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if lease_holder(client, name).await.as_deref() == Some(identity) {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}
