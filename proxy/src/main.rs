//! `minik8s-proxy`: the Service proxy of one node. It watches Services and EndpointSlices and
//! keeps the node's iptables rules equal to them; with `--cleanup` it removes every rule of
//! its own and exits. On SIGTERM it exits and leaves the rules in place, as kube-proxy does,
//! so Services keep working while it restarts.

use std::net::Ipv4Addr;

use anyhow::Context;
use clap::Parser;
use client::connect::ClusterFlags;
use proxy::rules::RulesConfig;
use proxy::sync::{Iptables, Periods, Syncer};

/// Program this node's data path for Services.
#[derive(Parser, Debug)]
#[command(name = "minik8s-proxy", version)]
struct Args {
    #[command(flatten)]
    cluster: ClusterFlags,
    /// The node's address NodePorts answer on; without it, every local address.
    #[arg(long)]
    node_ip: Option<Ipv4Addr>,
    /// The pod network; traffic to a ClusterIP from outside it is masqueraded (empty: only
    /// hairpin and NodePort traffic is).
    #[arg(long, default_value = "10.244.0.0/16", value_parser = parse_cidr)]
    cluster_cidr: String,
    /// After a change, wait this long for more before syncing (one transaction per batch).
    #[arg(long, default_value = "20ms")]
    min_sync_period: kube::core::Duration,
    /// Read the kernel's rules and rewrite them all at least this often.
    #[arg(long, default_value = "30s")]
    sync_period: kube::core::Duration,
    /// Remove every chain and rule of the proxy, then exit.
    #[arg(long)]
    cleanup: bool,
}

fn parse_cidr(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Ok(String::new());
    }
    let valid = s.split_once('/').is_some_and(|(ip, len)| {
        ip.parse::<Ipv4Addr>().is_ok() && len.parse::<u8>().is_ok_and(|l| l <= 32)
    });
    if valid {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?} is not an IPv4 CIDR such as 10.244.0.0/16"))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    client::logging::init();
    let args = Args::parse();
    let config = RulesConfig {
        node_ip: args.node_ip,
        cluster_cidr: Some(args.cluster_cidr).filter(|c| !c.is_empty()),
    };
    let mut syncer = Syncer::new(Iptables::here(), config);
    if args.cleanup {
        let removed = syncer.cleanup().context("removing the proxy's rules")?;
        tracing::info!(removed, "cleanup done");
        return Ok(());
    }
    let shutdown = client::shutdown::on_signal().context("listening for SIGTERM")?;
    let client = args.cluster.client().await?;
    let (caches, feed) = proxy::cache::watch(client);
    let periods = Periods {
        min_sync: args.min_sync_period.into(),
        resync: args.sync_period.into(),
    };
    let changed = caches.changed.clone();
    let sync = proxy::sync::run(syncer, changed, move || caches.service_ports(), periods);
    tokio::select! {
        () = feed => Ok(()),
        () = sync => Ok(()),
        _ = shutdown => Ok(()),
    }
}
