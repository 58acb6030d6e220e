//! `minikctl events`: list Events, oldest first, as kubectl events does.
//!
//! Not built yet: the command line is declared so that `minikctl --help` lists it.

/// The arguments of `minikctl events`.
#[derive(clap::Args, Debug)]
pub struct EventsArgs {
    /// Arguments, as kubectl takes them.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Runs `minikctl events`.
pub async fn run(_ctx: &super::Ctx, _args: EventsArgs) -> anyhow::Result<()> {
    anyhow::bail!("minikctl events is not implemented yet")
}
