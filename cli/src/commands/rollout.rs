//! `minikctl rollout`: a Deployment's rollout: status, history, undo, restart, pause, resume.
//!
//! Not built yet: the command line is declared so that `minikctl --help` lists it.

/// The arguments of `minikctl rollout`.
#[derive(clap::Args, Debug)]
pub struct RolloutArgs {
    /// Arguments, as kubectl takes them.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Runs `minikctl rollout`.
pub async fn run(_ctx: &super::Ctx, _args: RolloutArgs) -> anyhow::Result<()> {
    anyhow::bail!("minikctl rollout is not implemented yet")
}
