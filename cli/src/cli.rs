//! The command line, declared with clap's derive API: the global flags kubectl users know
//! (`--kubeconfig`, `--context`, `--server`, `--token`, `-n`, `-A`) and one subcommand per
//! file in `commands/`, each owning its own arguments. Read next: `connect.rs`, which turns
//! the global flags into a client.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::commands::{
    apply, completion, create, delete, describe, events, exec, get, logs, node_maintenance,
    rollout, scale,
};

/// minikctl controls a minik8s (or any Kubernetes) cluster, the way kubectl does.
#[derive(Parser, Debug)]
#[command(name = "minikctl", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalFlags,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand accepts, named as kubectl names them.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct GlobalFlags {
    /// Path to the kubeconfig file to use (else $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The name of the kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The address and port of the Kubernetes API server; no kubeconfig is read then.
    #[arg(short = 's', long, global = true)]
    pub server: Option<String>,
    /// Bearer token for authentication to the API server.
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// Do not check the server's certificate (labs only).
    #[arg(long = "insecure-skip-tls-verify", global = true)]
    pub insecure_skip_tls_verify: bool,
    /// If present, the namespace scope for this request.
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// List or act on objects across all namespaces.
    #[arg(short = 'A', long = "all-namespaces", global = true)]
    pub all_namespaces: bool,
}

/// The subcommands; each lives in its own file under `commands/`.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Display one or many resources.
    Get(get::GetArgs),
    /// Apply a configuration to resources from files, directories or stdin.
    Apply(apply::ApplyArgs),
    /// Create resources from files, directories or stdin.
    Create(create::CreateArgs),
    /// Delete resources by file, by type and name, by label selector, or all of a type.
    Delete(delete::DeleteArgs),
    /// Print the supported API resources on the server.
    ApiResources(crate::commands::api_resources::ApiResourcesArgs),
    /// Display the address of the control plane.
    ClusterInfo,
    /// Manage the cluster: bootstrap tokens with which nodes join.
    Cluster(crate::commands::cluster::ClusterArgs),
    /// Print the client and server version information.
    Version(crate::commands::version::VersionArgs),
    /// Show a pod or a node down to the kernel (namespaces, cgroups, layers), from its kubelet.
    Inspect(crate::commands::inspect::InspectArgs),
    /// Show details of a specific resource or group of resources, with its Events.
    Describe(describe::DescribeArgs),
    /// Print the logs for a container in a pod.
    Logs(logs::LogsArgs),
    /// Execute a command in a container.
    Exec(exec::ExecArgs),
    /// List events.
    Events(events::EventsArgs),
    /// Set a new size for a Deployment or ReplicaSet.
    Scale(scale::ScaleArgs),
    /// Manage the rollout of a Deployment.
    Rollout(rollout::RolloutArgs),
    /// Mark a node as unschedulable.
    Cordon(node_maintenance::NodeArgs),
    /// Mark a node as schedulable.
    Uncordon(node_maintenance::NodeArgs),
    /// Drain a node in preparation for maintenance.
    Drain(node_maintenance::DrainArgs),
    /// Output shell completion code for bash, zsh or fish.
    Completion(completion::CompletionArgs),
}
