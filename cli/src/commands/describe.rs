//! `minikctl describe`: show the details of a resource, with its Events, as kubectl describe does.
//!
//! Not built yet: the command line is declared so that `minikctl --help` lists it.

/// The arguments of `minikctl describe`.
#[derive(clap::Args, Debug)]
pub struct DescribeArgs {
    /// Arguments, as kubectl takes them.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Runs `minikctl describe`.
pub async fn run(_ctx: &super::Ctx, _args: DescribeArgs) -> anyhow::Result<()> {
    anyhow::bail!("minikctl describe is not implemented yet")
}
