//! `minikctl completion bash|zsh|fish`: the shell completion script, from the command line's
//! own declaration.
//!
//! A shell completes a command's words by running a function the command ships: the script
//! printed here defines it (`_minikctl` for bash and zsh, `complete -c minikctl` lines for
//! fish). clap_complete writes it from the same clap declaration that parses the command line
//! (`cli.rs`, handed in by `commands::run`), so every subcommand and flag is there and none is stale. It needs no cluster,
//! which is why `commands::run` calls it before connecting. Load it with
//! `source <(minikctl completion bash)`, as with kubectl. Read next: `../cli.rs`.

use clap::ValueEnum;
use clap_complete::Shell;

/// The shells a script can be printed for (kubectl also knows powershell).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

impl CompletionShell {
    fn shell(self) -> Shell {
        match self {
            CompletionShell::Bash => Shell::Bash,
            CompletionShell::Zsh => Shell::Zsh,
            CompletionShell::Fish => Shell::Fish,
        }
    }
}

/// The arguments of `minikctl completion`.
#[derive(clap::Args, Debug)]
pub struct CompletionArgs {
    /// The shell: bash, zsh or fish.
    #[arg(value_name = "SHELL")]
    pub shell: String,
}

/// Prints the completion script of `command` (minikctl's whole command line, which the caller
/// hands in so that this module stays below `cli.rs`); needs no cluster. An unknown shell is
/// kubectl's one line (`error: Unsupported shell type "tcsh".`), not clap's usage block.
pub fn run(args: CompletionArgs, mut command: clap::Command) -> anyhow::Result<()> {
    let shell = CompletionShell::from_str(&args.shell, false)
        .map_err(|_| anyhow::anyhow!("Unsupported shell type {:?}.", args.shell))?;
    let mut script = Vec::new();
    clap_complete::generate(shell.shell(), &mut command, "minikctl", &mut script);
    crate::printer::emit(&String::from_utf8_lossy(&script))?;
    Ok(())
}
