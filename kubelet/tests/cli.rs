//! The kubelet's binaries as processes: `minik8s-kubelet` logs to stderr only, without colours
//! when stderr is not a terminal.

mod common;

use std::time::Duration;

use client::testing::Component;
use common::TempDir;

const KUBELET: &str = env!("CARGO_BIN_EXE_minik8s-kubelet");

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
        let _ = std::fs::remove_dir_all(kubelet::runtime::state_dir_for(&runtime_root));
    }
    assert!(logged, "{output}");
    assert!(stdout.is_empty(), "{output}");
    assert!(!stderr.contains(&0x1b), "{output}");
}
