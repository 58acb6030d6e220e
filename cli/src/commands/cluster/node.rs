//! `minikctl cluster node stop|start NODE [--name LAB]`: a lab node's kubelet killed and
//! started again, the failure every node-lifecycle lesson starts from. `stop` SIGKILLs the
//! kubelet alone, as a crash would: its pods keep running, its Lease stops being renewed, the
//! node goes NotReady after the controller's grace period and its pods are evicted and
//! replaced elsewhere. `start` starts the same kubelet again with the same flags: it reuses
//! its credential (`kubelet.conf`), re-adopts what still should run and removes the
//! containers of the pods that were deleted meanwhile.

use anyhow::{bail, Context};
use nix::sys::signal::Signal;

use crate::lab::daemon::Role;
use crate::lab::spec;
use crate::lab::state::LabState;
use crate::printer::emit;

/// The arguments of `minikctl cluster node`.
#[derive(clap::Args, Debug)]
pub struct NodeArgs {
    #[command(subcommand)]
    pub action: NodeAction,
    /// The lab's name.
    #[arg(long, default_value = "lab", global = true)]
    pub name: String,
}

/// What `minikctl cluster node` does.
#[derive(clap::Subcommand, Debug)]
pub enum NodeAction {
    /// Kill a node's kubelet (SIGKILL), leaving its pods running.
    Stop { node: String },
    /// Start a stopped node's kubelet again.
    Start { node: String },
}

pub async fn run(args: NodeArgs) -> anyhow::Result<()> {
    let dir = spec::state_dir(&args.name);
    let Some(mut state) = LabState::load(&dir)? else {
        bail!("no lab {:?} is up", args.name);
    };
    let (NodeAction::Stop { node } | NodeAction::Start { node }) = &args.action;
    let Some(i) = state
        .daemons
        .iter()
        .position(|d| d.role == Role::Kubelet && &d.host == node)
    else {
        let nodes: Vec<&str> = state.nodes.iter().map(|n| n.name.as_str()).collect();
        bail!(
            "lab {:?} has no node {node:?} (its nodes: {})",
            args.name,
            nodes.join(", ")
        );
    };
    let kubelet = state.daemons[i].clone();
    match args.action {
        NodeAction::Stop { .. } => {
            if !kubelet.is_running() {
                bail!("the kubelet of {node} is not running");
            }
            kubelet.signal(Signal::SIGKILL);
            emit(&format!(
                "Killed the kubelet of {node} (pid {}); its pods keep running\n",
                kubelet.pid
            ))?;
        }
        NodeAction::Start { .. } => {
            if kubelet.is_running() {
                bail!(
                    "the kubelet of {node} is running already (pid {})",
                    kubelet.pid
                );
            }
            let started = kubelet
                .restart()
                .with_context(|| format!("starting the kubelet of {node}"))?;
            emit(&format!(
                "Started the kubelet of {node} (pid {})\n",
                started.pid
            ))?;
            state.daemons[i] = started;
            state.save(&dir)?;
        }
    }
    Ok(())
}
