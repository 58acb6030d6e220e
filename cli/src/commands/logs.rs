//! `minikctl logs`: print a container's logs (follow, tail, previous, timestamps).
//!
//! Not built yet: the command line is declared so that `minikctl --help` lists it.

/// The arguments of `minikctl logs`.
#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// Arguments, as kubectl takes them.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Runs `minikctl logs`.
pub async fn run(_ctx: &super::Ctx, _args: LogsArgs) -> anyhow::Result<()> {
    anyhow::bail!("minikctl logs is not implemented yet")
}
