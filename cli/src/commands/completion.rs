//! `minikctl completion bash|zsh|fish`: the shell completion script, from the command line's
//! own declaration.
//!
//! Not built yet: the command line is declared so that `minikctl --help` lists it.

/// The arguments of `minikctl completion`.
#[derive(clap::Args, Debug)]
pub struct CompletionArgs {
    /// The shell: bash, zsh or fish.
    pub shell: String,
}

/// Prints the completion script; needs no cluster.
pub fn run(_args: CompletionArgs) -> anyhow::Result<()> {
    anyhow::bail!("minikctl completion is not implemented yet")
}
