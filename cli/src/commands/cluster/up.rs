//! `minikctl cluster up [--name NAME] [--nodes N] [--proxy-mode MODE]`: a whole cluster on
//! this machine, as `kind create cluster` makes one, with every node joining the way a real
//! machine does. The steps, in order (the machinery is [`crate::lab`]):
//!
//! 1. the PKI (kubeadm's layout, `client::pki`) in the lab's state directory;
//! 2. the network namespaces (switch, control plane, one per node) and their cables;
//! 3. etcd and the apiserver on the control plane (HTTPS, client certificates, bootstrap
//!    tokens), and the relay that publishes the API on this namespace's loopback;
//! 4. the controller manager (which approves and signs the nodes' CSRs) and the scheduler;
//! 5. a bootstrap token, then one kubelet per node, each in its namespace, joining with the
//!    token and the CA hash, as `minikctl cluster token create --print-join-command` says,
//!    and pointing its pods' resolv.conf at the cluster DNS (`--cluster-dns 10.96.0.10`);
//! 6. the add-ons ([`crate::lab::addons`]): the `kube-system/kube-dns` Service and its
//!    EndpointSlice (created before the kubelets start), then on every node the Service
//!    proxy (in `--proxy-mode`, as kube-proxy's `mode`) and a DNS server on the node's
//!    address;
//! 7. wait until every node is Ready; route the nodes' pod ranges on the control plane too
//!    (`wire::route_pod_ranges`); wait until the cluster DNS answers through its ClusterIP
//!    from every node; merge the `minik8s-NAME` context into the kubeconfig.
//!
//! Each step is recorded in `lab.json` as it is taken, so `down` undoes a half-made lab too;
//! a failed `up` undoes itself unless `--retain`.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;

use crate::lab::addons::{self, ProxyMode};
use crate::lab::binaries::Binaries;
use crate::lab::daemon::{self, Launch, Role};
use crate::lab::spec::{self, Host, LabSpec, API_PORT, CONTROL_PLANE_IP};
use crate::lab::state::{LabState, NodeRecord};
use crate::lab::{kubeconfig, netns, wire};
use crate::printer::emit;

use super::{down, token};

/// The arguments of `minikctl cluster up`.
#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// The lab's name: its context is `minik8s-NAME`, its nodes `NAME-node-1`, ...
    #[arg(long, default_value = "lab")]
    pub name: String,
    /// How many nodes (each a kubelet in a network namespace of its own).
    #[arg(long, default_value_t = 2)]
    pub nodes: u32,
    /// Directory holding minik8s-apiserver, -controller, -scheduler, -kubelet, -proxy and
    /// -dns (default: minikctl's own).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Port of the API on this machine's loopback (default: a free one).
    #[arg(long)]
    pub api_port: Option<u16>,
    /// Keep what a failed `up` made, to look at it (then `minikctl cluster down`).
    #[arg(long)]
    pub retain: bool,
    /// How long to wait for every node to be Ready and the cluster DNS to answer (Go
    /// duration).
    #[arg(long, default_value = "60s")]
    pub wait: kube::core::Duration,
    /// The Service proxies' data path, passed to every node's `minik8s-proxy --proxy-mode`:
    /// an nftables table, or iptables chains.
    #[arg(long, value_enum, default_value_t)]
    pub proxy_mode: ProxyMode,
}

/// A lab being brought up: its spec, directory, programs and record.
struct Build<'a> {
    spec: &'a LabSpec,
    dir: &'a Path,
    bins: &'a Binaries,
    state: LabState,
}

pub async fn run(args: UpArgs, kubeconfig_flag: Option<&Path>) -> anyhow::Result<()> {
    let started = Instant::now();
    let spec = LabSpec::new(&args.name, args.nodes)?;
    if !nix::unistd::geteuid().is_root() {
        bail!("minikctl cluster up needs root (network namespaces, cgroups, mounts)");
    }
    let dir = spec.state_dir();
    if LabState::load(&dir)?.is_some() {
        bail!(
            "lab {:?} is already up (or was not taken down): minikctl cluster down --name {}",
            spec.name,
            spec.name
        );
    }
    let bins = Binaries::find(args.bin_dir.as_deref())?;
    let kubeconfig_path = kubeconfig::target(kubeconfig_flag)?;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let mut build = Build {
        spec: &spec,
        dir: &dir,
        bins: &bins,
        state: LabState {
            name: spec.name.clone(),
            bin_dir: bins
                .kubelet
                .parent()
                .map(Path::to_owned)
                .unwrap_or_default(),
            ..Default::default()
        },
    };
    build.state.save(&dir)?;
    emit(&format!(
        "Creating lab {:?} ({} node{}) in {}\n",
        spec.name,
        spec.nodes,
        if spec.nodes == 1 { "" } else { "s" },
        dir.display()
    ))?;
    let user_kubeconfig = match build.bring_up(&args).await {
        Ok(yaml) => yaml,
        Err(e) if args.retain => {
            return Err(e.context(format!(
                "lab {:?} is kept as it is (--retain): minikctl cluster down --name {}",
                spec.name, spec.name
            )))
        }
        Err(e) => {
            for problem in down::teardown(&build.state, &dir) {
                tracing::warn!(%problem, "undoing the failed up");
            }
            return Err(e);
        }
    };
    kubeconfig::merge(&kubeconfig_path, &spec.context(), &user_kubeconfig)?;
    emit(&format!(
        "Set kubectl context to {:?} (in {})\nReady in {:.1} s. Try: minikctl get nodes -o wide\n",
        spec.context(),
        kubeconfig_path.display(),
        started.elapsed().as_secs_f64()
    ))?;
    Ok(())
}

impl Build<'_> {
    /// Steps 1 to 7; returns the user's kubeconfig (the API through the relay).
    async fn bring_up(&mut self, args: &UpArgs) -> anyhow::Result<String> {
        let pki = self.pki()?;
        self.network()?;
        emit(" ✓ PKI, network namespaces and the switch\n")?;
        let api_port = self.control_plane(args.api_port)?;
        let user_kubeconfig = pki.admin_kubeconfig(&format!("https://127.0.0.1:{api_port}"))?;
        let client = client_for(&user_kubeconfig).await?;
        self.wait_api_ready(&client).await?;
        self.controllers(&pki)?;
        emit(&format!(
            " ✓ control plane on {} ({CONTROL_PLANE_IP}): etcd, apiserver, controller, scheduler\n",
            self.spec.control_plane().name
        ))?;
        addons::create_dns_objects(&client, &self.spec.node_hosts())
            .await
            .context("creating the kube-dns Service and its endpoints")?;
        let ca_pem = pki.ca_cert_pem().to_string();
        let token = token::create_token(&client, &self.spec.api_url(), &ca_pem, None).await?;
        let join = Join {
            token: token.to_string(),
            ca_hash: pki.ca_cert_hash(),
        };
        for host in self.spec.node_hosts() {
            self.kubelet(&host, &join)?;
            self.node_addons(&host, args.proxy_mode)?;
        }
        let deadline = Instant::now() + Duration::from(args.wait);
        self.wait_nodes_ready(&client, Duration::from(args.wait))
            .await?;
        let names: Vec<String> = self
            .spec
            .node_hosts()
            .iter()
            .map(|h| format!("{} ({})", h.name, h.ip))
            .collect();
        emit(&format!(
            " ✓ nodes joined and Ready: {}\n",
            names.join(", ")
        ))?;
        self.control_plane_routes(&client).await?;
        self.wait_dns(deadline).await?;
        emit(&format!(
            " ✓ add-ons on every node: Service proxy, DNS (kube-system/kube-dns at {}, domain {})\n",
            addons::DNS_SERVICE_IP,
            addons::CLUSTER_DOMAIN
        ))?;
        Ok(user_kubeconfig)
    }

    /// Step 1: the PKI; the serving certificate is valid for the control plane's address.
    fn pki(&self) -> anyhow::Result<client::pki::Pki> {
        let sans = client::pki::Sans {
            ips: vec![CONTROL_PLANE_IP.into()],
            dns_names: vec![self.spec.control_plane().name],
        };
        Ok(client::pki::Pki::create(&self.dir.join("pki"), &sans)?)
    }

    /// Step 2: the namespaces, the switch and every host's cable, each recorded as made.
    fn network(&mut self) -> anyhow::Result<()> {
        let switch = self.make_netns(&self.spec.switch_netns())?;
        wire::switch(&switch)?;
        let mut hosts = vec![self.spec.control_plane()];
        hosts.extend(self.spec.node_hosts());
        for host in &hosts {
            let ns = self.make_netns(&host.netns)?;
            wire::plug(&switch, &ns, host)?;
        }
        Ok(())
    }

    fn make_netns(&mut self, name: &str) -> anyhow::Result<PathBuf> {
        let path = netns::create(name)?;
        self.state.netns.push(name.to_string());
        self.state.save(self.dir)?;
        Ok(path)
    }

    /// Start a process and record it.
    fn start(
        &mut self,
        role: Role,
        host: &Host,
        program: &Path,
        args: Vec<OsString>,
    ) -> anyhow::Result<()> {
        let ns = netns::path(&host.netns);
        let log = self
            .dir
            .join("logs")
            .join(format!("{}-{}.log", host.name, role.as_str()));
        let d = daemon::start(Launch {
            role,
            host: &host.name,
            program,
            args,
            netns: Some(&ns),
            log,
        })?;
        self.state.daemons.push(d);
        self.state.save(self.dir)?;
        Ok(())
    }
}

/// What a node needs to join.
struct Join {
    token: String,
    ca_hash: String,
}

fn args<const N: usize>(list: [&dyn AsRef<std::ffi::OsStr>; N]) -> Vec<OsString> {
    list.iter().map(|a| a.as_ref().to_owned()).collect()
}

impl Build<'_> {
    /// Step 3: etcd, the apiserver and the relay; returns the API's port on loopback.
    fn control_plane(&mut self, api_port: Option<u16>) -> anyhow::Result<u16> {
        let cp = self.spec.control_plane();
        let etcd_dir = self.dir.join("etcd");
        let etcd = self.bins.etcd.clone();
        #[rustfmt::skip]
        let argv = args([
            &"--name", &cp.name, &"--data-dir", &etcd_dir,
            &"--listen-client-urls", &"http://127.0.0.1:2379",
            &"--advertise-client-urls", &"http://127.0.0.1:2379",
            &"--listen-peer-urls", &"http://127.0.0.1:2380",
            &"--initial-advertise-peer-urls", &"http://127.0.0.1:2380",
            &"--initial-cluster", &format!("{}=http://127.0.0.1:2380", cp.name),
            &"--log-level", &"error",
        ]);
        self.start(Role::Etcd, &cp, &etcd, argv)?;
        self.wait_listening(&cp, SocketAddr::from(([127, 0, 0, 1], 2379)), "etcd")?;
        let pki = self.dir.join("pki");
        let apiserver = self.bins.apiserver.clone();
        #[rustfmt::skip]
        let argv = args([
            &"--etcd-servers", &"http://127.0.0.1:2379",
            &"--listen", &format!("{CONTROL_PLANE_IP}:{API_PORT}"),
            &"--tls-cert-file", &pki.join("apiserver.crt"),
            &"--tls-private-key-file", &pki.join("apiserver.key"),
            &"--client-ca-file", &pki.join("ca.crt"),
            &"--enable-bootstrap-token-auth",
            &"--kubelet-client-certificate", &pki.join("apiserver-kubelet-client.crt"),
            &"--kubelet-client-key", &pki.join("apiserver-kubelet-client.key"),
            // labs show node failure in seconds, not minutes
            &"--default-not-ready-toleration-seconds", &"10",
            &"--default-unreachable-toleration-seconds", &"10",
        ]);
        self.start(Role::Apiserver, &cp, &apiserver, argv)?;
        let port = match api_port {
            Some(p) => p,
            None => free_port()?,
        };
        self.state.api_port = port;
        let root = Host {
            name: "root".into(),
            netns: String::new(),
            port: String::new(),
            ip: std::net::Ipv4Addr::LOCALHOST,
        };
        let log = self.dir.join("logs").join("root-forward.log");
        let cp_ns = netns::path(&cp.netns);
        let d = daemon::start(Launch {
            role: Role::Forward,
            host: &root.name,
            program: &self.bins.minikctl,
            args: args([
                &"cluster",
                &"forward",
                &"--listen",
                &format!("127.0.0.1:{port}"),
                &"--netns",
                &cp_ns,
                &"--to",
                &format!("{CONTROL_PLANE_IP}:{API_PORT}"),
            ]),
            netns: None,
            log,
        })?;
        self.state.daemons.push(d);
        self.state.save(self.dir)?;
        Ok(port)
    }

    /// Wait until `addr` accepts connections inside `host`'s namespace.
    fn wait_listening(&self, host: &Host, addr: SocketAddr, what: &str) -> anyhow::Result<()> {
        let ns = netns::path(&host.netns);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !netns::can_connect(&ns, addr) {
            self.check_alive()?;
            if Instant::now() > deadline {
                bail!("{what} did not listen on {addr} within 20 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Fail at once, naming its log, when a started process has died.
    fn check_alive(&self) -> anyhow::Result<()> {
        if let Some(dead) = self.state.daemons.iter().find(|d| !d.is_running()) {
            bail!(
                "{} on {} exited: see {}{}",
                dead.role.as_str(),
                dead.host,
                dead.log.display(),
                last_line(&dead.log)
            );
        }
        Ok(())
    }

    async fn wait_api_ready(&self, client: &kube::Client) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let req = http::Request::get("/readyz").body(Vec::new())?;
            if client.request_text(req).await.is_ok() {
                return Ok(());
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                bail!("the apiserver was not ready within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Step 4: the controller manager (signing the nodes' CSRs with the cluster CA) and
    /// the scheduler, with the administrator's credential for the in-lab address.
    fn controllers(&mut self, pki: &client::pki::Pki) -> anyhow::Result<()> {
        let conf = self.dir.join("control-plane.conf");
        let yaml = pki.admin_kubeconfig(&self.spec.api_url())?;
        crate::lab::write_private(&conf, yaml.as_bytes())?;
        let cp = self.spec.control_plane();
        let pki_dir = self.dir.join("pki");
        let controller = self.bins.controller.clone();
        #[rustfmt::skip]
        let argv = args([
            &"--kubeconfig", &conf,
            &"--cluster-signing-cert-file", &pki_dir.join("ca.crt"),
            &"--cluster-signing-key-file", &pki_dir.join("ca.key"),
            &"--cluster-cidr", &spec::CLUSTER_CIDR,
            &"--node-monitor-grace-period", &"8s",
        ]);
        self.start(Role::Controller, &cp, &controller, argv)?;
        let scheduler = self.bins.scheduler.clone();
        self.start(
            Role::Scheduler,
            &cp,
            &scheduler,
            args([&"--kubeconfig", &conf]),
        )
    }

    /// Step 5, one node: its kubelet joins with the token, serves its API on its address.
    fn kubelet(&mut self, host: &Host, join: &Join) -> anyhow::Result<()> {
        let root_dir = self.dir.join("nodes").join(&host.name);
        let cgroup_root = LabSpec::cgroup_root(host, &self.spec.name);
        self.state.nodes.push(NodeRecord {
            name: host.name.clone(),
            netns: host.netns.clone(),
            ip: host.ip.to_string(),
            root_dir: root_dir.clone(),
            cgroup_root: cgroup_root.clone(),
        });
        let kubelet = self.bins.kubelet.clone();
        // The join command as `token create --print-join-command` prints it, and no more:
        // the kubelet finds its address from its default route, serves its API there on
        // 10250 and trusts the cluster CA it pinned for the apiserver's client certificate,
        // as a real machine joining would.
        #[rustfmt::skip]
        let argv = args([
            &"--server", &self.spec.api_url(),
            &"--bootstrap-token", &join.token,
            &"--ca-cert-hash", &join.ca_hash,
            &"--node-name", &host.name,
            &"--root-dir", &root_dir,
            &"--cgroup-root", &cgroup_root,
            &"--lease-interval", &"2s",
            // the other nodes' pod ranges via their addresses, across the switch (host-gw)
            &"--route-pod-cidrs",
            &"--cluster-dns", &addons::DNS_SERVICE_IP.to_string(),
            &"--cluster-domain", &addons::CLUSTER_DOMAIN,
        ]);
        self.start(Role::Kubelet, host, &kubelet, argv)
    }

    /// Step 6, one node: its Service proxy (in `mode`) and its DNS server, with the control
    /// plane's credential (a real cluster gives each its own ServiceAccount).
    fn node_addons(&mut self, host: &Host, mode: ProxyMode) -> anyhow::Result<()> {
        let conf = self.dir.join("control-plane.conf");
        let proxy = self.bins.proxy.clone();
        #[rustfmt::skip]
        let argv = args([
            &"--kubeconfig", &conf,
            &"--proxy-mode", &mode.as_str(),
            &"--node-ip", &host.ip.to_string(),
            &"--cluster-cidr", &spec::CLUSTER_CIDR,
        ]);
        self.start(Role::Proxy, host, &proxy, argv)?;
        let dns = self.bins.dns.clone();
        #[rustfmt::skip]
        let argv = args([
            &"--kubeconfig", &conf,
            &"--listen", &SocketAddr::from((host.ip, addons::DNS_PORT)).to_string(),
            &"--cluster-domain", &addons::CLUSTER_DOMAIN,
            // the lab is cut off from the outside: other names are refused at once
            &"--upstream", &"none",
        ]);
        self.start(Role::Dns, host, &dns, argv)
    }

    /// Step 7: the control plane routes each node's pod range through the node's address, as
    /// the nodes do (`wire::route_pod_ranges`).
    async fn control_plane_routes(&self, client: &kube::Client) -> anyhow::Result<()> {
        let nodes = Api::<Node>::all(client.clone())
            .list(&Default::default())
            .await?;
        let routes = wire::pod_range_routes(&self.spec.node_hosts(), &nodes.items);
        wire::route_pod_ranges(&netns::path(&self.spec.control_plane().netns), routes)?;
        Ok(())
    }

    /// Step 7's end: from every node's namespace, the DNS Service's ClusterIP (the
    /// proxy's rules, then one of the DNS servers) answers for the Service's own name.
    async fn wait_dns(&self, deadline: Instant) -> anyhow::Result<()> {
        let server = SocketAddr::from((addons::DNS_SERVICE_IP, addons::DNS_PORT));
        let name = addons::probe_name();
        for host in self.spec.node_hosts() {
            let ns = netns::path(&host.netns);
            loop {
                let (ns2, name2) = (ns.clone(), name.clone());
                let answered =
                    tokio::task::spawn_blocking(move || addons::dns_answers(&ns2, server, &name2))
                        .await?;
                if answered {
                    break;
                }
                self.check_alive()?;
                if Instant::now() > deadline {
                    bail!(
                        "the cluster DNS ({server}) did not answer from {} (see {})",
                        host.name,
                        self.dir.join("logs").display()
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Step 7's first half: every node Ready, with its pod network (`wire::pod_network_ready`).
    async fn wait_nodes_ready(
        &self,
        client: &kube::Client,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let nodes: Api<Node> = Api::all(client.clone());
        let want: Vec<String> = self.spec.node_hosts().into_iter().map(|h| h.name).collect();
        let deadline = Instant::now() + timeout;
        loop {
            let list = nodes.list(&Default::default()).await?;
            let ready: Vec<&str> = list
                .items
                .iter()
                .filter(|n| is_ready(n))
                .filter_map(|n| n.metadata.name.as_deref())
                .collect();
            let peers = self.spec.node_hosts().len() - 1;
            let missing: Vec<&String> = want
                .iter()
                .zip(self.spec.node_hosts())
                .filter(|(w, host)| {
                    !ready.contains(&w.as_str())
                        || !wire::pod_network_ready(&netns::path(&host.netns), peers)
                })
                .map(|(w, _)| w)
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                bail!(
                    "not Ready after {} s: {} (see {})",
                    timeout.as_secs(),
                    missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    self.dir.join("logs").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The last line of a log, for an error message (empty when there is none).
fn last_line(log: &Path) -> String {
    std::fs::read_to_string(log)
        .ok()
        .and_then(|s| {
            s.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_owned)
        })
        .map(|l| format!(": {l}"))
        .unwrap_or_default()
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// A client for a kubeconfig given as YAML.
async fn client_for(yaml: &str) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::from_yaml(yaml)?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await?;
    Ok(kube::Client::try_from(config)?)
}
