//! `minik8s-proxy`: the Service proxy of one node. It watches Services and EndpointSlices and
//! keeps the node's nftables table (or, `--proxy-mode iptables`, its iptables chains) equal to
//! them; at start it removes what the other mode left; with `--cleanup` it removes every rule
//! of its own, of both modes, and exits. On SIGTERM it exits and leaves the rules in place,
//! as kube-proxy does, so Services keep working while it restarts.

use std::net::Ipv4Addr;

use anyhow::Context;
use clap::Parser;
use client::connect::ClusterFlags;
use proxy::rules::RulesConfig;
use proxy::sync::{Periods, ProxyMode, Runner, Syncer};

/// Program this node's data path for Services.
#[derive(Parser, Debug)]
#[command(name = "minik8s-proxy", version)]
struct Args {
    #[command(flatten)]
    cluster: ClusterFlags,
    /// The data path: an nftables table of our own through `nft -f` (needs nftables' `nft`),
    /// or iptables chains through `iptables-restore`.
    #[arg(long, value_enum, default_value_t = ProxyMode::Nftables)]
    proxy_mode: ProxyMode,
    /// The node's address NodePorts answer on; without it, every local address.
    #[arg(long)]
    node_ip: Option<Ipv4Addr>,
    /// The pod network; traffic to a ClusterIP from outside it is masqueraded (empty: only
    /// hairpin and NodePort traffic is).
    #[arg(long, default_value = "10.244.0.0/16", value_parser = parse_cidr)]
    cluster_cidr: String,
    /// The least time between the starts of two syncs: a change after a quiet spell is synced
    /// at once, changes within this period after a sync wait for its end, as one batch.
    // The defaults are `Periods::default()`'s (the benchmark runs with those).
    #[arg(long, default_value = "100ms")]
    min_sync_period: kube::core::Duration,
    /// Check the kernel's rules at least this often: iptables mode rereads and rewrites them
    /// all; nftables mode rewrites its table if it is gone, and in full once an hour.
    #[arg(long, default_value = "30s")]
    sync_period: kube::core::Duration,
    /// Remove every chain, rule and table of the proxy, in both modes, then exit.
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
    let mut syncer = Syncer::new(Runner::here(), args.proxy_mode, config);
    if args.cleanup {
        let removed = syncer.cleanup().context("removing the proxy's rules")?;
        tracing::info!(removed, "cleanup done");
        return Ok(());
    }
    // A missing command would fail every sync, forever: say so once, at start, and before
    // removing the other mode's rules, which still serve the Services.
    let version = match args.proxy_mode {
        ProxyMode::Nftables => Runner::here().nft(&["--version"], None),
        ProxyMode::Iptables => Runner::here().iptables_version(),
    };
    let version = version.with_context(|| {
        format!(
            "--proxy-mode {} needs its command ({})",
            args.proxy_mode,
            match args.proxy_mode {
                ProxyMode::Nftables => "nft, Debian's nftables package; or --proxy-mode iptables",
                ProxyMode::Iptables => "iptables-restore, Debian's iptables package",
            }
        )
    })?;
    // What the other mode left would serve Services beside ours (whichever NAT runs first
    // wins), and go stale: remove it, as kube-proxy does at start. (A node switching modes
    // serves no Service from here to the first sync, once the caches have listed: seconds.)
    let other: Vec<ProxyMode> = ProxyMode::ALL
        .into_iter()
        .filter(|m| *m != args.proxy_mode)
        .collect();
    match proxy::sync::cleanup(&Runner::here(), &other) {
        Ok(true) => tracing::info!(mode = %other[0], "removed the other mode's rules"),
        Ok(false) => {}
        Err(error) => tracing::warn!(%error, "could not remove the other mode's rules"),
    }
    tracing::info!(mode = %args.proxy_mode, version = version.trim(), "proxy starting");
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
