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

/// What a kubelet started with `extra` flags (and no `--node-ip`) logs as its node IP.
async fn chosen_node_ip(extra: &[&str]) -> String {
    let root = TempDir::new("kubelet-node-ip");
    let root_dir = root.path().to_str().unwrap();
    let mut args = vec![
        "--server",
        "http://127.0.0.1:1",
        "--node-name",
        "ip",
        "--root-dir",
        root_dir,
    ];
    args.extend_from_slice(extra);
    let kubelet = Component::start(KUBELET, &args, &[]);
    let logged = kubelet
        .wait_for_stderr("node IP chosen", Duration::from_secs(20))
        .await;
    let output = kubelet.output();
    drop(kubelet);
    let runtime_root = root.path().join("runtime");
    if runtime_root.exists() {
        let _ = std::fs::remove_dir_all(runtime::state_dir_for(&runtime_root));
    }
    assert!(logged, "{output}");
    let field = output
        .split_whitespace()
        .find_map(|w| w.strip_prefix("node_ip="))
        .unwrap_or_else(|| panic!("no node_ip field in:\n{output}"));
    // the field may be coloured or quoted by the formatter: keep the address's characters
    field
        .chars()
        .filter(|c| c.is_ascii_hexdigit() || *c == '.' || *c == ':')
        .collect()
}

#[tokio::test]
async fn the_node_ip_is_the_api_address_or_the_default_routes_source() {
    let port = testkit::free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    assert_eq!(chosen_node_ip(&["--listen", &listen]).await, "127.0.0.1");

    // without a specific API address: what `ip route get <default gateway>` names as source
    let run = |args: &[&str]| {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let default = run(&["-4", "route", "show", "default"]);
    let Some(gateway) = default
        .split_whitespace()
        .skip_while(|w| *w != "via")
        .nth(1)
    else {
        eprintln!("skipped the default-route half: this machine has no IPv4 default route");
        return;
    };
    let route = run(&["-4", "route", "get", gateway]);
    let source = route
        .split_whitespace()
        .skip_while(|w| *w != "src")
        .nth(1)
        .unwrap();
    assert_eq!(chosen_node_ip(&[]).await, source);
}
