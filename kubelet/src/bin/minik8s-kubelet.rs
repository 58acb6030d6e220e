//! `minik8s-kubelet`: the node agent. Registers the node, renews its lease, runs the pods bound
//! to it and serves its own API (logs, exec, health, metrics). The same binary is the
//! runtime's per-container shim and its single-threaded helper for exec and network probes
//! (`minik8s-kubelet --root DIR shim|exec|netns-probe ...`, internal).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Parser;
use client::connect::ClusterFlags;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kubelet::agent;
use kubelet::cri::RealRuntime;
use kubelet::dns_config::DnsSettings;
use kubelet::endpoint::{self, ApiFlags, ClientCa, KubeletApi};
use kubelet::events::Recorder;
use kubelet::node::{self, NodeConfig};
use kubelet::pod_worker::{self, Context, KubeApi};
use runtime::network::{self, Network, NetworkConfig};
use runtime::{exec, shim, Runtime};

#[derive(Parser, Debug)]
#[command(name = "minik8s-kubelet", version, about = "minik8s node agent")]
struct Cli {
    #[command(flatten)]
    cluster: ClusterFlags,
    /// Join the cluster with this bootstrap token (`abcdef.0123456789abcdef`, from
    /// `minikctl cluster token create`): the node's own credential is obtained through a CSR
    /// and kept in <root-dir>/kubelet.conf, which later starts reuse. Needs --server (https)
    /// and --ca-cert-hash.
    #[arg(long, requires_all = ["server", "ca_cert_hash"], conflicts_with = "token")]
    bootstrap_token: Option<String>,
    /// `sha256:<hex>` of the cluster CA's public key: the only CA the joining kubelet trusts.
    #[arg(long, requires = "bootstrap_token")]
    ca_cert_hash: Option<String>,
    /// Name of the Node object (default: the hostname, lowercased).
    #[arg(long)]
    node_name: Option<String>,
    /// State directory: runtime state under runtime/, pod volumes under pods/.
    #[arg(long, default_value = "/var/lib/minik8s")]
    root_dir: PathBuf,
    /// Pod IP range of this node, e.g. 10.244.1.0/24. Without it the kubelet waits for the
    /// Node's spec.podCIDR (the controller's node IPAM assigns one); until then pods get
    /// loopback only.
    #[arg(long)]
    pod_cidr: Option<String>,
    /// The pod network's bridge in the host namespace (holds the pod range's first address).
    #[arg(long, default_value = network::DEFAULT_BRIDGE)]
    bridge_name: String,
    /// MTU of the bridge and of the pods' interfaces.
    #[arg(long, default_value_t = 1500)]
    pod_mtu: u32,
    /// Let pods reach the outside: a MASQUERADE rule for the pod range (removed on SIGTERM).
    #[arg(long)]
    masquerade: bool,
    /// Remove the pod network recorded under --root-dir (veths, bridge, iptables rules), then exit.
    #[arg(long)]
    cleanup_network: bool,
    /// Reset the node, like `kubeadm reset`, then exit: SIGKILL and remove every container and
    /// pod sandbox of the runtime under --root-dir, then the pod network, the routes of
    /// --route-pod-cidrs, the cgroup root and the runtime's state on tmpfs (images stay).
    /// Idempotent; needs no apiserver.
    #[arg(long, conflicts_with = "cleanup_network")]
    cleanup: bool,
    /// Route the other nodes' pod ranges (flannel's host-gw): in the kubelet's network
    /// namespace, `<podCIDR> via <InternalIP>` for every other Node (tagged `proto 77`, removed
    /// when the Node goes or changes), and IPv4 forwarding on. For nodes on one L2 subnet,
    /// such as `minikctl cluster up`'s; it changes the routing table, so it is off by default.
    #[arg(long)]
    route_pod_cidrs: bool,
    /// The cgroup under which this node's pod cgroups go, relative to the hierarchy root.
    /// Two kubelets on one host need different ones (a lab's nodes: `minik8s-NODE`).
    #[arg(long, default_value = "minik8s", env = "MINIK8S_CGROUP_ROOT",
          value_parser = runtime::cgroups::parse_parent)]
    cgroup_root: PathBuf,
    /// InternalIP address reported for the node (default: the --listen address when it is a
    /// specific one, else the source address of the default route, see `node_ip.rs`).
    #[arg(long)]
    node_ip: Option<IpAddr>,
    /// Port of the kubelet API on the node IP, when --listen is not given.
    #[arg(long, default_value_t = endpoint::DEFAULT_PORT)]
    port: u16,
    /// Address of the kubelet API (logs, exec, healthz, metrics), e.g. 127.0.0.1:10250,
    /// instead of --port on the node IP; served even when no caller can authenticate (all but
    /// /healthz then answer 401). Without it the API is served only when callers can
    /// authenticate (--client-ca-file, --auth-token-file, or the CA of a join); see
    /// `endpoint.rs`.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// File holding the bearer token callers (the apiserver) must present to the kubelet API.
    #[arg(long)]
    auth_token_file: Option<PathBuf>,
    /// PEM CA bundle: a client certificate chaining to it authenticates callers of the kubelet
    /// API (the apiserver's `--kubelet-client-certificate`); requested, not required. Default
    /// with --bootstrap-token: the cluster CA in <root-dir>/kubelet.conf, as kubeadm sets it.
    #[arg(long)]
    client_ca_file: Option<PathBuf>,
    /// PEM certificate of the kubelet API (HTTPS). Without it (and --tls-private-key-file)
    /// the kubelet makes a self-signed one under <root-dir>/pki/.
    #[arg(long, requires = "tls_private_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// PEM private key matching --tls-cert-file.
    #[arg(long, requires = "tls_cert_file")]
    tls_private_key_file: Option<PathBuf>,
    /// Address of the cluster DNS Service (kube-dns, e.g. 10.96.0.10): the nameserver of
    /// pods with dnsPolicy ClusterFirst; repeatable or comma-separated. Without it such pods
    /// get the node's resolver (`Default`) and a MissingClusterDNS warning. See `dns_config.rs`.
    #[arg(long, value_name = "IP", value_delimiter = ',')]
    cluster_dns: Vec<IpAddr>,
    /// The cluster's DNS domain: ClusterFirst pods search `<ns>.svc.<domain>`, `svc.<domain>`
    /// and `<domain>`.
    #[arg(long, default_value = kubelet::dns_config::DEFAULT_CLUSTER_DOMAIN)]
    cluster_domain: String,
    /// The node's resolver file, the base of pods' resolv.conf (all of it for dnsPolicy
    /// Default, its search domains for ClusterFirst); "" for none.
    #[arg(long, default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
    /// How often the node Lease is renewed.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    lease_interval: Duration,
    /// First CrashLoopBackOff delay (doubles per crash, up to 5 minutes).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    backoff_base: Duration,
    /// A registry (`host[:port]`) that image pulls may reach over plain HTTP, without
    /// verifying its certificate; repeatable. Loopback registries may always be plain HTTP.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    insecure_registries: Vec<String>,
    /// PEM bundle of CA certificates trusted for registries, besides the system's.
    #[arg(long, value_name = "FILE")]
    registry_ca_file: Option<PathBuf>,
}

/// The pods' DNS settings from the flags; warns once when ClusterFirst pods will fall back.
fn dns_settings(cli: &Cli) -> DnsSettings {
    if cli.cluster_dns.is_empty() {
        tracing::warn!(
            "no --cluster-dns: pods with dnsPolicy ClusterFirst get the node's resolver (Default)"
        );
    }
    DnsSettings {
        cluster_dns: cli.cluster_dns.clone(),
        cluster_domain: cli.cluster_domain.clone(),
        resolv_conf: Some(cli.resolv_conf.clone()).filter(|p| !p.as_os_str().is_empty()),
        node_ip: cli.node_ip,
    }
}

/// How long a joining kubelet waits for its certificate to be signed.
const JOIN_TIMEOUT: Duration = Duration::from_secs(120);

/// The Node name without `--node-name`: the hostname, trimmed and lowercased as the upstream
/// kubelet's `GetHostname` does, since a Node name is a DNS subdomain (lowercase only) while a
/// hostname may have capitals.
fn default_node_name(hostname: &str) -> Result<String> {
    let name = hostname.trim();
    anyhow::ensure!(!name.is_empty(), "the hostname is empty: give --node-name");
    Ok(name.to_lowercase())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let v: f64 = n.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        _ => return Err(format!("invalid duration unit in {s:?} (ms, s, m)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// The hidden runtime entry points: `--root DIR shim ID [--status-fd N] [--attached]`,
/// `--root DIR exec ID -- CMD...`, `--root DIR netns-probe SANDBOX tcp|http PORT [PATH]`.
/// They run before any thread exists.
fn runtime_helper(args: &[String]) -> Option<i32> {
    if args.len() < 4 || args[1] != "--root" {
        return None;
    }
    let root = PathBuf::from(&args[2]);
    let rest = &args[3..];
    match rest[0].as_str() {
        "shim" => {
            let rt = Runtime::open(&root).ok()?;
            let id = rest.get(1)?;
            let mut status_fd = None;
            let mut attached = false;
            let mut i = 2;
            while i < rest.len() {
                match rest[i].as_str() {
                    "--status-fd" => {
                        status_fd = rest.get(i + 1).and_then(|s| s.parse().ok());
                        i += 1;
                    }
                    "--attached" => attached = true,
                    _ => {}
                }
                i += 1;
            }
            Some(shim::main(&rt, id, status_fd, attached))
        }
        "exec" => {
            let rt = Runtime::open(&root).ok()?;
            let id = rest.get(1)?;
            let cmd: Vec<String> = rest
                .iter()
                .skip(2)
                .skip_while(|a| *a == "--")
                .cloned()
                .collect();
            match exec::exec(&rt, id, &cmd) {
                Ok(code) => Some(code),
                Err(e) => {
                    eprintln!("{e}");
                    Some(126)
                }
            }
        }
        "pause" => Some(runtime::pause::main(std::path::Path::new(rest.get(1)?))),
        "netns-probe" => {
            let port = rest.get(3)?.parse().ok()?;
            Some(kubelet::probes::netns_probe_main(
                &root,
                rest.get(1)?,
                rest.get(2)?,
                port,
                rest.get(4).map(String::as_str).unwrap_or("/"),
            ))
        }
        _ => None,
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(code) = runtime_helper(&args) {
        std::process::exit(code);
    }
    let cli = Cli::parse();
    client::logging::init();
    // glibc gives every thread that allocates its own malloc arena (up to 8 per core); with
    // tokio's blocking pool that is several MB of mostly empty heap. Two arenas are plenty for
    // a node agent and keep its RSS flat as pods come and go.
    // SAFETY: mallopt only changes allocator tuning; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run(cli))
        .inspect_err(|e| {
            // one line, and the exit status 1, for a join (or any start) that fails
            eprintln!("{e:#}");
            std::process::exit(1);
        })
}

async fn run(mut cli: Cli) -> Result<()> {
    let node_name = match cli.node_name.clone() {
        Some(n) => n,
        None => default_node_name(&nix::unistd::gethostname()?.to_string_lossy())?,
    };
    let runtime_root = cli.root_dir.join("runtime");
    let network_dir = runtime_root.join("network");
    if cli.cleanup_network {
        network::cleanup(&network_dir).context("removing the pod network")?;
        return Ok(());
    }
    if cli.cleanup {
        let config = kubelet::reset::ResetConfig {
            root_dir: cli.root_dir.clone(),
            cgroup_root: cli.cgroup_root.clone(),
        };
        tokio::task::spawn_blocking(move || kubelet::reset::reset(&config))
            .await?
            .context("resetting the node")?;
        return Ok(());
    }
    // before anything touches the node: a join refused here leaves nothing behind
    let client = api_client(&cli, &node_name).await?;
    if cli.node_ip.is_none() {
        // the API's own address when it is a specific one (the apiserver dials the node's
        // InternalIP for logs and exec), else the default route's source address
        let listen_ip = cli.listen.map(|a| a.ip()).filter(|ip| !ip.is_unspecified());
        cli.node_ip = listen_ip.or_else(kubelet::node_ip::detect);
        match &cli.node_ip {
            Some(ip) => tracing::info!(node_ip = %ip, "node IP chosen"),
            None => tracing::warn!("no default route to take the node IP from: pass --node-ip"),
        }
    }
    // bound before the node is touched: a port in use ends the start here, in one line
    let api = KubeletApi::open(&api_flags(&cli, &node_name))?;
    let node_ip = cli.node_ip.map(|ip| ip.to_string());
    let mut runtime = Runtime::open(&runtime_root)
        .with_context(|| format!("opening the runtime under {}", runtime_root.display()))?;
    runtime.cgroup_parent = cli.cgroup_root.clone();
    runtime.shim_exe = std::fs::read_link("/proc/self/exe").context("finding our own binary")?;
    runtime.remove_orphans();

    let node_cfg = NodeConfig {
        name: node_name.clone(),
        node_ip: node_ip.clone(),
        pod_cidr: cli.pod_cidr.clone(),
        kubelet_port: api.as_ref().map_or(0, |a| a.port().into()),
        root_dir: cli.root_dir.clone(),
    };
    register_node(&client, node_cfg, cli.lease_interval).await;

    let registry = runtime::registry::PullOptions {
        insecure_registries: cli.insecure_registries.clone(),
        ca_file: cli.registry_ca_file.clone(),
        credentials: None,
        platform: None,
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        runtime: Arc::new(RealRuntime::new(runtime, registry)),
        node_name: node_name.clone(),
        node_ip,
        root_dir: cli.root_dir.clone(),
        dns: dns_settings(&cli),
        backoff_base: cli.backoff_base,
        backoff_max: Duration::from_secs(300),
        api: Arc::new(KubeApi {
            client: client.clone(),
            recorder: Recorder {
                client,
                node: node_name.clone(),
            },
        }),
        metrics: Default::default(),
        network: Default::default(),
        start_slots: pod_worker::start_slots(),
    });
    let net_config = |cidr: String| NetworkConfig {
        bridge: cli.bridge_name.clone(),
        cidr,
        mtu: cli.pod_mtu,
        masquerade: cli.masquerade,
    };
    match cli.pod_cidr.clone() {
        Some(cidr) => {
            let (dir, cfg) = (network_dir.clone(), net_config(cidr));
            let net = tokio::task::spawn_blocking(move || Network::setup(&dir, cfg))
                .await?
                .context("setting up the pod network")?;
            let _ = ctx.network.set(net);
        }
        None => {
            tokio::spawn(network_from_node(
                ctx.clone(),
                network_dir.clone(),
                net_config(String::new()),
            ));
        }
    }
    if cli.route_pod_cidrs {
        let (client, node) = (ctx.client.clone(), node_name.clone());
        tokio::spawn(kubelet::pod_routes::run(client, node, None));
    }
    if let Some(api) = api {
        api.serve(ctx.clone());
    }
    tracing::info!(node = %node_name, "kubelet started");
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = agent::run(ctx.clone()) => {}
        _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
    // pods keep running (a restarted kubelet re-adopts them), and so does their network; the
    // bridge and our firewall rules go only when no pod uses them
    let c = ctx.clone();
    let result =
        tokio::task::spawn_blocking(move || c.network.get().map(Network::shutdown)).await?;
    if let Some(Err(e)) = result {
        tracing::warn!(error = %e, "shutting the pod network down");
    }
    std::process::exit(0)
}

/// The client the kubelet talks to the apiserver with: the flags' (`--server`,
/// `--kubeconfig`), or with `--bootstrap-token` the node's own credential, obtained by joining
/// (`kubelet::bootstrap`) or kept from an earlier join in `<root-dir>/kubelet.conf`.
async fn api_client(cli: &Cli, node_name: &str) -> Result<kube::Client> {
    let Some(token) = &cli.bootstrap_token else {
        return cli.cluster.client().await;
    };
    let join = kubelet::bootstrap::JoinConfig {
        server: cli.cluster.server.clone().unwrap_or_default(),
        token: token.clone(),
        ca_cert_hash: cli.ca_cert_hash.clone().unwrap_or_default(),
        node_name: node_name.to_string(),
        kubeconfig: cli.root_dir.join("kubelet.conf"),
        timeout: JOIN_TIMEOUT,
    };
    Ok(kubelet::bootstrap::client(&join).await?)
}

/// The kubelet API's flags; a node joining with a bootstrap token takes the cluster CA of its
/// `kubelet.conf` as the client CA unless `--client-ca-file` is given (`kubelet::endpoint`).
fn api_flags(cli: &Cli, node_name: &str) -> ApiFlags {
    let kubelet_conf = cli.root_dir.join("kubelet.conf");
    let joined = cli
        .bootstrap_token
        .is_some()
        .then_some(kubelet_conf.as_path());
    ApiFlags {
        node_name: node_name.to_string(),
        node_ip: cli.node_ip,
        port: cli.port,
        listen: cli.listen,
        auth_token_file: cli.auth_token_file.clone(),
        client_ca: ClientCa::from_flags(cli.client_ca_file.as_deref(), joined),
        tls_pair: cli
            .tls_cert_file
            .clone()
            .zip(cli.tls_private_key_file.clone()),
        pki_dir: cli.root_dir.join("pki"),
    }
}

/// Registers the Node (retrying until the apiserver answers), then keeps its Lease and its
/// status fresh in the background.
async fn register_node(client: &kube::Client, node_cfg: NodeConfig, lease_interval: Duration) {
    let nodes: Api<Node> = Api::all(client.clone());
    let status = loop {
        match node::register(&nodes, &node_cfg).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(node = %node_cfg.name, error = %e, "registering; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    tokio::spawn(node::lease_loop(
        client.clone(),
        node_cfg.name.clone(),
        lease_interval,
    ));
    tokio::spawn(node::status_loop(nodes, node_cfg, status, lease_interval));
}

/// Without `--pod-cidr`: wait for the Node's spec.podCIDR (set by the controller's node IPAM),
/// then set the pod network up.
async fn network_from_node(ctx: Arc<Context>, dir: PathBuf, mut config: NetworkConfig) {
    let nodes: Api<Node> = Api::all(ctx.client.clone());
    // the node IPAM assigns a range right after registration: look again soon at first,
    // then every 2 s
    let mut pause = Duration::from_millis(50);
    loop {
        let cidr = match nodes.get(&ctx.node_name).await {
            Ok(n) => n.spec.and_then(|s| s.pod_cidr),
            Err(e) => {
                tracing::debug!(error = %e, "reading the node for its podCIDR");
                None
            }
        };
        if let Some(cidr) = cidr {
            config.cidr = cidr;
            let (d, cfg) = (dir.clone(), config.clone());
            match tokio::task::spawn_blocking(move || Network::setup(&d, cfg)).await {
                Ok(Ok(net)) => {
                    let _ = ctx.network.set(net);
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(cidr = %config.cidr, error = %e, "setting up the pod network")
                }
                Err(e) => tracing::warn!(error = %e, "setting up the pod network"),
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_node_name_is_the_trimmed_lowercased_hostname() {
        assert_eq!(
            default_node_name("Worker-1.Example.COM").unwrap(),
            "worker-1.example.com"
        );
        assert_eq!(default_node_name(" node-a\n").unwrap(), "node-a");
        assert!(default_node_name(" \n").is_err());
    }
}
