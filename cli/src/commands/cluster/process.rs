//! `minikctl cluster stop|start WHAT [--name LAB]`: one of a lab's processes killed and
//! started again, the failures the lessons start from. WHAT is a node (its kubelet), a
//! node's add-on (`NODE/proxy`, `NODE/dns`) or a control-plane component (`etcd`,
//! `apiserver`, `controller`, `scheduler`).
//!
//! `stop` SIGKILLs the process alone, as a crash would. A node's pods keep running, its Lease
//! stops being renewed, the node goes NotReady after the controller's grace period and its
//! pods are evicted and replaced elsewhere; with etcd or the apiserver gone, every component
//! keeps retrying. `start` starts the same process again with the same flags: a kubelet reuses
//! its credential (`kubelet.conf`), re-adopts what still should run and removes the containers
//! of the pods that were deleted meanwhile; etcd comes back with its data.

use anyhow::{bail, Context};
use nix::sys::signal::Signal;

use crate::lab::daemon::Role;
use crate::lab::spec;
use crate::lab::state::LabState;
use crate::printer::emit;

/// The arguments of `minikctl cluster stop|start`.
#[derive(clap::Args, Debug)]
pub struct ProcessArgs {
    /// A node (its kubelet), NODE/proxy, NODE/dns, or etcd, apiserver, controller or
    /// scheduler.
    pub what: String,
    /// The lab's name.
    #[arg(long, default_value = "lab")]
    pub name: String,
}

/// Stop (SIGKILL) or start again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Stop,
    Start,
}

pub async fn run(action: Action, args: ProcessArgs) -> anyhow::Result<()> {
    let dir = spec::state_dir(&args.name);
    let Some(mut state) = LabState::load(&dir)? else {
        bail!("no lab {:?} is up", args.name);
    };
    let node = &args.what;
    let Some(i) = state.daemons.iter().position(|d| match d.role {
        Role::Kubelet => &d.host == node,
        Role::Proxy | Role::Dns => format!("{}/{}", d.host, d.role.as_str()) == *node,
        Role::Forward => false,
        role => role.as_str() == node,
    }) else {
        let nodes: Vec<&str> = state.nodes.iter().map(|n| n.name.as_str()).collect();
        bail!(
            "lab {:?} has no node or component {node:?} (nodes: {}, each with NODE/proxy and NODE/dns; components: etcd, apiserver, controller, scheduler)",
            args.name,
            nodes.join(", ")
        );
    };
    let daemon = state.daemons[i].clone();
    let what = match daemon.role {
        Role::Kubelet => format!("the kubelet of {node}"),
        Role::Proxy | Role::Dns => format!("the {} of {}", daemon.role.as_str(), daemon.host),
        role => role.as_str().to_string(),
    };
    match action {
        Action::Stop => {
            if !daemon.is_running() {
                bail!("{what} is not running");
            }
            daemon.signal(Signal::SIGKILL);
            let note = if daemon.role == Role::Kubelet {
                "; its pods keep running"
            } else {
                ""
            };
            emit(&format!("Killed {what} (pid {}){note}\n", daemon.pid))?;
        }
        Action::Start => {
            if daemon.is_running() {
                bail!("{what} is running already (pid {})", daemon.pid);
            }
            let started = daemon
                .restart()
                .with_context(|| format!("starting {what}"))?;
            emit(&format!("Started {what} (pid {})\n", started.pid))?;
            state.daemons[i] = started;
            state.save(&dir)?;
        }
    }
    Ok(())
}
