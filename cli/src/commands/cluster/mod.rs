//! `minikctl cluster`: the cluster itself rather than the objects in it, as `kubeadm` and
//! `kind` manage it: `token create`, the first half of joining a node (`token.rs`); `pki`,
//! a cluster's certificates and kubeconfigs written to a directory (`pki.rs`, what
//! `docker-compose.yml` starts from); and the local lab, a whole cluster of several nodes on
//! this machine (`up`, `down`, `status`, over [`crate::lab`]).
//! Read next: `token.rs`, then `crate::lab`.

pub mod lab;
pub mod pki;
pub mod token;

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
    Up(lab::UpArgs),
    /// Stop a local lab and remove everything it made.
    Down(lab::DownArgs),
    /// Show a local lab's processes, nodes and addresses.
    Status(lab::StatusArgs),
    /// Relay a lab's API port from this namespace into the lab's (internal).
    #[command(hide = true)]
    Forward(lab::ForwardArgs),
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
pub async fn run_local(command: ClusterCommand) -> anyhow::Result<()> {
    match command {
        ClusterCommand::Pki(args) => pki::run(args),
        ClusterCommand::Up(args) => lab::up(args).await,
        ClusterCommand::Down(args) => lab::down(args).await,
        ClusterCommand::Status(args) => lab::status(args).await,
        ClusterCommand::Forward(args) => lab::forward(args).await,
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
        local => run_local(local).await,
    }
}
