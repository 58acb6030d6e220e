//! `minikctl cluster`: the cluster itself rather than the objects in it, as `kubeadm` and
//! `kind` manage it: `token create`, the first half of joining a node (`token.rs`); `pki`,
//! a cluster's certificates and kubeconfigs written to a directory (`pki.rs`, what
//! `docker-compose.yml` starts from); and the local lab, a whole cluster of several nodes on
//! this machine (`up.rs`, `down.rs`, `status.rs`, `process.rs`, over [`crate::lab`]).
//! Read next: `token.rs`, then `crate::lab`.

pub mod down;
pub mod pki;
pub mod process;
pub mod status;
pub mod token;
pub mod up;

use super::Ctx;

/// The arguments of `minikctl cluster`.
#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

/// What `minikctl cluster` does.
#[derive(clap::Subcommand, Debug)]
pub enum ClusterCommand {
    /// Manage bootstrap tokens, with which new nodes join the cluster.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Write a cluster's PKI and kubeconfigs to a directory (kubeadm's `init phase certs`
    /// and `kubeconfig`).
    Pki(pki::PkiArgs),
    /// Bring up a local lab: etcd, the control plane and N nodes, each node in a network
    /// namespace of its own, joined through a bootstrap token.
    Up(up::UpArgs),
    /// Stop a local lab and remove everything it made.
    Down(down::DownArgs),
    /// Show a local lab's processes, nodes and addresses.
    Status(status::StatusArgs),
    /// Kill one of a local lab's processes: a node's kubelet (NODE), proxy (NODE/proxy) or
    /// DNS server (NODE/dns), or etcd, apiserver, controller or scheduler (failures, for
    /// labs and tests).
    Stop(process::ProcessArgs),
    /// Start a stopped process of a local lab again, with the same flags.
    Start(process::ProcessArgs),
    /// Relay a lab's API port from this namespace into the lab's (internal).
    #[command(hide = true)]
    Forward(ForwardArgs),
}

/// The arguments of `minikctl cluster forward`: accept on `listen` here, connect to `to`
/// from inside the namespace pinned at `netns`.
#[derive(clap::Args, Debug)]
pub struct ForwardArgs {
    #[arg(long)]
    pub listen: std::net::SocketAddr,
    #[arg(long)]
    pub netns: std::path::PathBuf,
    #[arg(long)]
    pub to: std::net::SocketAddr,
}

/// What `minikctl cluster token` does.
#[derive(clap::Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a bootstrap token (and publish the cluster's CA for joining nodes).
    Create(token::CreateArgs),
}

impl ClusterCommand {
    /// Whether the command works without an existing cluster to connect to.
    pub fn is_local(&self) -> bool {
        !matches!(self, ClusterCommand::Token(_))
    }
}

/// Run a `cluster` command that needs no connection (see [`ClusterCommand::is_local`]).
pub async fn run_local(
    command: ClusterCommand,
    kubeconfig: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Pki(args) => pki::run(args),
        ClusterCommand::Up(args) => up::run(args, kubeconfig).await,
        ClusterCommand::Down(args) => down::run(args, kubeconfig).await,
        ClusterCommand::Status(args) => status::run(args).await,
        ClusterCommand::Stop(args) => process::run(process::Action::Stop, args).await,
        ClusterCommand::Start(args) => process::run(process::Action::Start, args).await,
        ClusterCommand::Forward(args) => {
            let ForwardArgs { listen, netns, to } = args;
            tokio::task::spawn_blocking(move || crate::lab::forward::run(listen, &netns, to))
                .await?
                .map_err(Into::into)
        }
        ClusterCommand::Token(_) => unreachable!("token commands connect first"),
    }
}

/// Run `cluster` with the configuration the client was built from (`config`: its CA is
/// what joining nodes must trust).
pub async fn run(ctx: &Ctx, args: ClusterArgs, config: &kube::Config) -> anyhow::Result<()> {
    match args.command {
        ClusterCommand::Token(TokenCommand::Create(create)) => {
            token::create(ctx, create, config).await
        }
        local => run_local(local, None).await,
    }
}
