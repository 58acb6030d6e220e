//! `minikctl cluster`: the cluster itself rather than the objects in it, as `kubeadm` and
//! `kind` manage it. Today one subcommand: `token create`, the first half of joining a node
//! (`token.rs`); bringing a local lab up and down comes next (issue 13).
//! Read next: `token.rs`.

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
}

/// What `minikctl cluster token` does.
#[derive(clap::Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a bootstrap token (and publish the cluster's CA for joining nodes).
    Create(token::CreateArgs),
}

/// Run `cluster` with the configuration the client was built from (`config`: its CA is
/// what joining nodes must trust).
pub async fn run(ctx: &Ctx, args: ClusterArgs, config: &kube::Config) -> anyhow::Result<()> {
    match args.command {
        ClusterCommand::Token(TokenCommand::Create(create)) => {
            token::create(ctx, create, config).await
        }
    }
}
