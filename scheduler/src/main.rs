//! `minik8s-scheduler`: the scheduler binary, with leader election on the Lease
//! `kube-system/minik8s-scheduler` so that only one of several copies schedules. On SIGTERM or
//! SIGINT it stops scheduling and releases the Lease, so a successor takes over at once.

use anyhow::Context;
use clap::Parser;
use client::connect::ClusterFlags;
use client::leader::{default_identity, run_as_leader_until, LeaderConfig};
use scheduler::SchedulerConfig;

/// Assign pending pods to nodes.
#[derive(Parser, Debug)]
#[command(name = "minik8s-scheduler", version)]
struct Args {
    #[command(flatten)]
    cluster: ClusterFlags,
    /// Elect a leader among several schedulers before scheduling.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Schedule the pods whose spec.schedulerName is this (or empty).
    #[arg(long, default_value = "default-scheduler")]
    scheduler_name: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    client::logging::init();
    let args = Args::parse();
    let shutdown = client::shutdown::on_signal().context("listening for SIGTERM")?;
    let client = args.cluster.client().await?;
    let identity = default_identity();
    let config = SchedulerConfig {
        scheduler_name: args.scheduler_name,
        identity: identity.clone(),
    };
    let work = || async {
        scheduler::run(client.clone(), config)
            .await
            .context("scheduler stopped")
    };
    if !args.leader_elect {
        return tokio::select! {
            r = work() => r,
            _ = shutdown => Ok(()),
        };
    }
    let lease = LeaderConfig::new("minik8s-scheduler", &identity);
    run_as_leader_until(client.clone(), lease, work, shutdown).await
}
