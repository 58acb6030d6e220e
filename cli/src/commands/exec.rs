//! `minikctl exec`: run a command in a container over the WebSocket v5 protocol, exit code passed through.
//!
//! Not built yet: the command line is declared so that `minikctl --help` lists it.

/// The arguments of `minikctl exec`.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// Arguments, as kubectl takes them.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Runs `minikctl exec`.
pub async fn run(_ctx: &super::Ctx, _args: ExecArgs) -> anyhow::Result<()> {
    anyhow::bail!("minikctl exec is not implemented yet")
}
