//! `minikctl cluster status [--name NAME]`: a lab's record checked against the machine:
//! each process with its pid and whether it still runs, each node with its address and
//! namespace, and where the API is published.

use std::fmt::Write;

use anyhow::bail;

use crate::lab::netns;
use crate::lab::spec;
use crate::lab::state::LabState;
use crate::printer::emit;

/// The arguments of `minikctl cluster status`.
#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// The lab's name.
    #[arg(long, default_value = "lab")]
    pub name: String,
}

pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let dir = spec::state_dir(&args.name);
    let Some(state) = LabState::load(&dir)? else {
        bail!(
            "no lab {:?} is up (minikctl cluster up --name {})",
            args.name,
            args.name
        );
    };
    emit(&render(&state))?;
    if state.daemons.iter().any(|d| !d.is_running()) {
        bail!(
            "lab {:?} is degraded: a process has stopped (see its log)",
            args.name
        );
    }
    Ok(())
}

/// The status page of a lab.
pub fn render(state: &LabState) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Lab {:?}: API https://127.0.0.1:{} (context {}), state in {}\n",
        state.name,
        state.api_port,
        spec::context_name(&state.name),
        spec::state_dir(&state.name).display()
    );
    let _ = writeln!(out, "{:<28} {:<11} {:>8}  STATUS", "HOST", "PROCESS", "PID");
    for d in &state.daemons {
        let status = if d.is_running() { "running" } else { "stopped" };
        let _ = writeln!(
            out,
            "{:<28} {:<11} {:>8}  {status}",
            d.host,
            d.role.as_str(),
            d.pid
        );
    }
    let _ = writeln!(out, "\n{:<28} {:<15} NETWORK NAMESPACE", "NODE", "ADDRESS");
    for n in &state.nodes {
        let ns = if netns::exists(&n.netns) {
            n.netns.clone()
        } else {
            format!("{} (missing)", n.netns)
        };
        let _ = writeln!(out, "{:<28} {:<15} {ns}", n.name, n.ip);
    }
    out
}
