//! The kubelet's binary as a process: `minik8s-kubelet` logs to stderr only, without colours
//! when stderr is not a terminal. (The runtime CLI's own: `runtime/tests/cli.rs`.)

use std::path::{Path, PathBuf};
use std::time::Duration;

use testkit::Component;

const KUBELET: &str = env!("CARGO_BIN_EXE_minik8s-kubelet");

/// A temp dir removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> Self {
        let p = std::env::temp_dir().join(format!("minik8s-{what}-{}", runtime::random_hex(6)));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn kubelet_logs_to_stderr_without_colours() {
    let root = TempDir::new("kubelet-logs");
    let root_dir = root.path().to_str().unwrap();
    // Nothing listens on port 1: the kubelet logs that it cannot register its Node.
    let args = [
        "--server",
        "http://127.0.0.1:1",
        "--node-name",
        "logs",
        "--root-dir",
        root_dir,
    ];
    let kubelet = Component::start(KUBELET, &args, &[]);
    let logged = kubelet
        .wait_for_stderr("registering", Duration::from_secs(20))
        .await;
    let (stdout, stderr, output) = (kubelet.stdout(), kubelet.stderr(), kubelet.output());
    drop(kubelet);
    let runtime_root = root.path().join("runtime");
    if runtime_root.exists() {
        let _ = std::fs::remove_dir_all(runtime::state_dir_for(&runtime_root));
    }
    assert!(logged, "{output}");
    assert!(stdout.is_empty(), "{output}");
    assert!(!stderr.contains(&0x1b), "{output}");
}
