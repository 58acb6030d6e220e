//! `minikctl cluster down [--name NAME]`: stop a lab and remove everything it made, from its
//! record (`lab.json`), in the order that frees each thing before what holds it:
//!
//! 1. the node processes: kubelets (SIGTERM; they leave their pods running, as a kubelet
//!    restart would), Service proxies and DNS servers (the proxy leaves its rules, which go
//!    with the node's namespace in step 4);
//! 2. each node reset by its own kubelet binary, inside the node's namespace
//!    (`minik8s-kubelet --cleanup`: containers, sandboxes, pod network, routes, the node's
//!    cgroup root, the runtime's state), all nodes at once;
//! 3. the control plane and the relay;
//! 4. the namespaces (their cables and bridges go with them), the state directory, and the
//!    lab's entries in the kubeconfig.
//!
//! Only recorded processes are signalled, and only while pid and start time still match.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::bail;

use crate::lab::daemon;
use crate::lab::spec;
use crate::lab::state::{LabState, NodeRecord};
use crate::lab::{kubeconfig, netns};
use crate::printer::emit;

/// The arguments of `minikctl cluster down`.
#[derive(clap::Args, Debug)]
pub struct DownArgs {
    /// The lab's name.
    #[arg(long, default_value = "lab")]
    pub name: String,
}

pub async fn run(args: DownArgs, kubeconfig_flag: Option<&Path>) -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("minikctl cluster down needs root");
    }
    let dir = spec::state_dir(&args.name);
    let kubeconfig_path = kubeconfig::target(kubeconfig_flag)?;
    let Some(state) = crate::lab::state::LabState::load(&dir)? else {
        kubeconfig::remove(&kubeconfig_path, &spec::context_name(&args.name))?;
        emit(&format!("No lab {:?} is up\n", args.name))?;
        return Ok(());
    };
    let started = std::time::Instant::now();
    let problems = tokio::task::spawn_blocking(move || teardown(&state, &dir)).await?;
    kubeconfig::remove(&kubeconfig_path, &spec::context_name(&args.name))?;
    if !problems.is_empty() {
        bail!(
            "lab {:?} was not wholly removed: {}",
            args.name,
            problems.join("; ")
        );
    }
    emit(&format!(
        "Deleted lab {:?} in {:.1} s\n",
        args.name,
        started.elapsed().as_secs_f64()
    ))?;
    Ok(())
}

/// Undo everything `state` records; returns what could not be undone (empty: all gone).
pub fn teardown(state: &LabState, dir: &Path) -> Vec<String> {
    let (on_nodes, others): (Vec<_>, Vec<_>) = state
        .daemons
        .iter()
        .cloned()
        .partition(|d| d.role.is_per_node());
    daemon::stop_all(&on_nodes, Duration::from_secs(1));
    let mut problems = reset_nodes(&state.nodes, &kubelet_binary(state));
    daemon::stop_all(&others, Duration::from_secs(1));
    for d in state.daemons.iter().filter(|d| d.is_running()) {
        problems.push(format!(
            "{} (pid {}) is still running",
            d.role.as_str(),
            d.pid
        ));
    }
    for name in state.netns.iter().rev() {
        if let Err(e) = netns::delete(name) {
            problems.push(e.to_string());
        }
    }
    if problems.is_empty() {
        if let Err(e) = std::fs::remove_dir_all(dir) {
            problems.push(format!("removing {}: {e}", dir.display()));
        }
    }
    problems
}

fn kubelet_binary(state: &LabState) -> PathBuf {
    state.bin_dir.join("minik8s-kubelet")
}

/// `minik8s-kubelet --cleanup` for every node at once, each inside its own namespace.
fn reset_nodes(nodes: &[NodeRecord], kubelet: &Path) -> Vec<String> {
    let mut children = Vec::new();
    let mut problems = Vec::new();
    for node in nodes {
        if !netns::exists(&node.netns) {
            continue;
        }
        let mut cmd = Command::new(kubelet);
        cmd.arg("--root-dir")
            .arg(&node.root_dir)
            .arg("--cgroup-root")
            .arg(&node.cgroup_root)
            .arg("--cleanup")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        match netns::spawn_in(&netns::path(&node.netns), cmd) {
            Ok(child) => children.push((node.name.clone(), child)),
            Err(e) => problems.push(format!("resetting {}: {e}", node.name)),
        }
    }
    for (name, child) in children {
        match child.wait_with_output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => problems.push(format!(
                "resetting {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
            Err(e) => problems.push(format!("resetting {name}: {e}")),
        }
    }
    problems
}
