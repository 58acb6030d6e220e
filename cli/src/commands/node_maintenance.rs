//! `minikctl cordon / uncordon / drain`: mark a node unschedulable, and evict its pods (drain).
//!
//! Not built yet: the command line is declared so that `minikctl --help` lists it.

/// The arguments of `minikctl cordon / uncordon / drain`.
#[derive(clap::Args, Debug)]
pub struct NodeArgs {
    /// Arguments, as kubectl takes them.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// `minikctl cordon NODE`.
pub async fn cordon(_ctx: &super::Ctx, _args: NodeArgs) -> anyhow::Result<()> {
    anyhow::bail!("minikctl cordon is not implemented yet")
}

/// `minikctl uncordon NODE`.
pub async fn uncordon(_ctx: &super::Ctx, _args: NodeArgs) -> anyhow::Result<()> {
    anyhow::bail!("minikctl uncordon is not implemented yet")
}

/// `minikctl drain NODE`.
pub async fn drain(_ctx: &super::Ctx, _args: NodeArgs) -> anyhow::Result<()> {
    anyhow::bail!("minikctl drain is not implemented yet")
}
