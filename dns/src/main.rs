//! `minik8s-dns`: the cluster DNS server. It watches Services and EndpointSlices, answers for
//! the cluster domain on `--listen` (UDP and TCP), and forwards other names to `--upstream`, or
//! to the host's `/etc/resolv.conf` nameservers other than itself.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use clap::Parser;
use client::connect::ClusterFlags;
use dns::forward::Forwarder;
use dns::server::Server;

/// Serve DNS for Services and pods of the cluster.
#[derive(Parser, Debug)]
#[command(name = "minik8s-dns", version)]
struct Args {
    #[command(flatten)]
    cluster: ClusterFlags,
    /// The cluster's DNS domain (the kubelet's --cluster-domain).
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Address to serve DNS on, UDP and TCP.
    #[arg(long, default_value = "0.0.0.0:53")]
    listen: SocketAddr,
    /// Resolver for names outside the cluster domain, IP or IP:port (repeatable or
    /// comma-separated); without it, the nameservers of /etc/resolv.conf.
    #[arg(long, value_delimiter = ',', value_parser = parse_upstream)]
    upstream: Vec<SocketAddr>,
}

fn parse_upstream(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>()
        .or_else(|_| {
            s.parse::<std::net::IpAddr>()
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .map_err(|_| format!("{s:?} is not an IP or IP:port"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    client::logging::init();
    let args = Args::parse();
    let shutdown = client::shutdown::on_signal().context("listening for SIGTERM")?;
    let forwarder = if args.upstream.is_empty() {
        Forwarder::from_resolv_conf(Path::new("/etc/resolv.conf"), args.listen).unwrap_or_else(
            |error| {
                tracing::warn!(error = %anyhow::Error::from(error), "no upstream resolver: other names are refused");
                Forwarder::default()
            },
        )
    } else {
        Forwarder::new(args.upstream)
    };
    if forwarder.upstreams().is_empty() {
        tracing::warn!("no upstream resolver: names outside the cluster domain are refused");
    }
    let client = args.cluster.client().await?;
    let server = Server::bind(args.listen, forwarder).await?;
    tokio::select! {
        () = server.serve(client, args.cluster_domain) => Ok(()),
        _ = shutdown => Ok(()),
    }
}
