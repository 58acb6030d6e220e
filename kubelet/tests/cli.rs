//! The kubelet's binaries as processes: `minik8s-runtime` ends quietly when the reader of its
//! stdout goes away (`minik8s-runtime ps | head`), and `minik8s-kubelet` logs to stderr only,
//! without colours when stderr is not a terminal.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;

use client::testing::Component;
use common::{Rt, TempDir};

const KUBELET: &str = env!("CARGO_BIN_EXE_minik8s-kubelet");

#[test]
fn runtime_reports_into_a_closed_pipe_end_quietly() {
    let rt = Rt::new("closed-pipe");
    for args in [["ps"], ["images"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader); // every write now fails with EPIPE
        let out = rt
            .cmd(&args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        let quiet = out.status.code() == Some(0) || out.status.signal() == Some(libc::SIGPIPE);
        assert!(quiet, "{args:?}: {}: {stderr}", out.status);
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
        let _ = std::fs::remove_dir_all(kubelet::runtime::state_dir_for(&runtime_root));
    }
    assert!(logged, "{output}");
    assert!(stdout.is_empty(), "{output}");
    assert!(!stderr.contains(&0x1b), "{output}");
}
