//! The kubelet's binary as a process: `minik8s-kubelet` logs to stderr only, without colours
//! when stderr is not a terminal; its node IP; its API's default endpoint (`endpoint.rs`):
//! `--port` of the node IP when callers can authenticate, reported in the Node, nothing
//! without a way to authenticate, a port in use one line and exit status 1. (The runtime
//! CLI's own: `runtime/tests/cli.rs`.)

mod harness;

use std::path::{Path, PathBuf};
use std::time::Duration;

use apiserver::kubelet_client::ClientCert;
use harness::{get_with_cert, Cluster, ServerConfig};
use testkit::{free_port, rand_hex, wait_for, Component, TempPki};

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

/// A kubelet process with a root dir and a cgroup root of its own and no pods: dropping it
/// kills it and removes its runtime's state on tmpfs, its cgroup root and its root dir.
struct Node {
    kubelet: Option<Component>,
    root: TempDir,
}

impl Node {
    /// `minik8s-kubelet --root-dir <fresh dir> ARGS`.
    fn start(args: &[&str]) -> Node {
        Node::start_in(TempDir::new("kubelet-node"), args)
    }

    /// `minik8s-kubelet --root-dir ROOT ARGS`.
    fn start_in(root: TempDir, args: &[&str]) -> Node {
        let mut all = vec!["--root-dir", root.path().to_str().unwrap()];
        all.extend_from_slice(args);
        let cgroup_root = Node::cgroup_root(&root);
        let kubelet = Component::start(KUBELET, &all, &[("MINIK8S_CGROUP_ROOT", &cgroup_root)]);
        Node {
            kubelet: Some(kubelet),
            root,
        }
    }

    fn cgroup_root(root: &TempDir) -> String {
        root.path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    fn kubelet(&self) -> &Component {
        self.kubelet.as_ref().unwrap()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.kubelet().stderr()).into_owned()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        drop(self.kubelet.take());
        if let Ok(mut rt) = runtime::Runtime::open(&self.root.path().join("runtime")) {
            rt.cgroup_parent = Node::cgroup_root(&self.root).into();
            let _ = std::fs::remove_dir_all(&rt.state);
            rt.cgroups.remove_if_empty(&rt.cgroup_parent);
        }
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

/// A PKI and a cluster whose apiserver calls kubelets with the PKI's
/// `apiserver-kubelet-client` certificate (kube-apiserver's `--kubelet-client-certificate`).
async fn cluster_with_pki() -> (TempPki, ClientCert, Cluster) {
    let pki = TempPki::create();
    let cert = pki.kubelet_client_cert();
    let c = Cluster::with_config(ServerConfig {
        kubelet_client_cert: Some(cert.clone()),
        ..Default::default()
    })
    .await;
    (pki, cert, c)
}

/// The kubelet of `node` serves HTTPS on 127.0.0.1:`port`, to `cert` (a client certificate
/// of its client CA) and not to anonymous callers; its Node reports the port, by which the
/// apiserver reaches it.
async fn assert_served_at(c: &Cluster, k: &Node, node: &str, port: u16, cert: &ClientCert) {
    let listening = k
        .kubelet()
        .wait_for_stderr("kubelet API listening", Duration::from_secs(30))
        .await;
    assert!(listening, "{}", k.kubelet().output());
    assert!(
        k.stderr().contains(&format!("127.0.0.1:{port}")),
        "{}",
        k.stderr()
    );

    let base = format!("https://127.0.0.1:{port}");
    let status = |path: &str, cert| {
        let url = format!("{base}{path}");
        async move { get_with_cert(&url, cert).await.unwrap() }
    };
    assert_eq!(status("/healthz", None).await, 200);
    assert_eq!(status("/metrics", None).await, 401);
    assert_eq!(status("/metrics", Some(cert)).await, 200);

    let nodes = c.nodes();
    let reported = wait_for(30, "the Node's kubelet port", || async {
        let n = nodes.get_opt(node).await.ok()??;
        n.status?.daemon_endpoints?.kubelet_endpoint.map(|e| e.port)
    })
    .await;
    assert_eq!(reported, i32::from(port));
    let proxied = format!("/api/v1/nodes/{node}/proxy/metrics");
    let (ok, out) = c.kubectl_text(&["get", "--raw", &proxied]).await;
    assert!(ok, "{out}\n{}", k.stderr());
    assert!(out.contains("kubelet_"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_listen_the_api_is_on_the_port_of_the_node_ip_and_the_node_reports_it() {
    let (pki, cert, c) = cluster_with_pki().await;
    let ca = pki.ca();
    let (node, port) = (format!("port-{}", rand_hex()), free_port());
    let port_arg = port.to_string();
    let k = Node::start(&[
        "--server",
        c.url(),
        "--node-name",
        &node,
        "--node-ip",
        "127.0.0.1",
        "--port",
        &port_arg,
        "--client-ca-file",
        ca.to_str().unwrap(),
    ]);
    assert_served_at(&c, &k, &node, port, &cert).await;
}

/// A node that joined with a bootstrap token trusts the cluster CA of its `kubelet.conf` for
/// client certificates, as kubeadm configures it: no `--client-ca-file` needed.
#[tokio::test(flavor = "multi_thread")]
async fn a_joined_node_takes_the_cluster_ca_as_its_client_ca() {
    let (pki, cert, c) = cluster_with_pki().await;
    let pki = pki.pki();
    // the credential an earlier join kept: reused, so no join (nor --server) is needed here
    let root = TempDir::new("kubelet-joined");
    let conf = pki.admin_kubeconfig(c.url()).unwrap();
    std::fs::write(root.path().join("kubelet.conf"), conf).unwrap();
    let (node, port) = (format!("joined-{}", rand_hex()), free_port());
    let port_arg = port.to_string();
    let hash = pki.ca_cert_hash();
    let k = Node::start_in(
        root,
        &[
            "--server",
            "https://127.0.0.1:1",
            "--bootstrap-token",
            "abcdef.0123456789abcdef",
            "--ca-cert-hash",
            &hash,
            "--node-name",
            &node,
            "--node-ip",
            "127.0.0.1",
            "--port",
            &port_arg,
        ],
    );
    assert_served_at(&c, &k, &node, port, &cert).await;
    assert!(k.stderr().contains("the cluster CA in"), "{}", k.stderr());
}

#[tokio::test]
async fn without_a_way_to_authenticate_no_api_is_served() {
    let port = free_port();
    let port_arg = port.to_string();
    // nothing listens on port 1: the kubelet logs that it cannot register its Node
    let k = Node::start(&[
        "--server",
        "http://127.0.0.1:1",
        "--node-name",
        "unauthenticated",
        "--node-ip",
        "127.0.0.1",
        "--port",
        &port_arg,
    ]);
    let went_on = k
        .kubelet()
        .wait_for_stderr("registering", Duration::from_secs(20))
        .await;
    let stderr = k.stderr();
    assert!(went_on, "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("kubelet API not served"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("--client-ca-file"), "{stderr}");
    assert!(!stderr.contains("kubelet API listening"), "{stderr}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[tokio::test]
async fn a_port_in_use_ends_the_start_in_one_line_with_status_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = TempDir::new("kubelet-port-in-use");
    let token = dir.path().join("token");
    std::fs::write(&token, "secret").unwrap();
    let root = dir.path().join("node");
    let args = [
        "--server",
        "http://127.0.0.1:1",
        "--node-name",
        "busy",
        "--root-dir",
        root.to_str().unwrap(),
        "--node-ip",
        "127.0.0.1",
        "--port",
        &port,
        "--auth-token-file",
        token.to_str().unwrap(),
    ];
    let mut kubelet = Component::start(KUBELET, &args, &[]);
    let status = kubelet.wait_exit(Duration::from_secs(20)).await;
    // the pipe is drained on a thread of its own: give it the last line
    let want = format!("the kubelet API cannot listen on 127.0.0.1:{port} ");
    kubelet.wait_for_stderr(&want, Duration::from_secs(5)).await;
    let stderr = String::from_utf8_lossy(&kubelet.stderr()).into_owned();
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with(&want), "{stderr}");
    assert!(last.contains("in use"), "{stderr}");
    assert!(
        !root.exists(),
        "the node was touched before the port was taken: {stderr}"
    );
    drop(taken);
}
