//! `minikctl scale`: set a Deployment's or ReplicaSet's replicas through its scale subresource.
//!
//! Not built yet: the command line is declared so that `minikctl --help` lists it.

/// The arguments of `minikctl scale`.
#[derive(clap::Args, Debug)]
pub struct ScaleArgs {
    /// Arguments, as kubectl takes them.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Runs `minikctl scale`.
pub async fn run(_ctx: &super::Ctx, _args: ScaleArgs) -> anyhow::Result<()> {
    anyhow::bail!("minikctl scale is not implemented yet")
}
