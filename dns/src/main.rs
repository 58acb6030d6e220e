//! `minik8s-dns`: the cluster DNS server. It watches Services and EndpointSlices, answers for
//! the cluster domain on `--listen` (UDP and TCP), and forwards other names to `--upstream`, or
//! to the host's `/etc/resolv.conf` nameservers other than itself.
//!
//! `--upstream none` forwards nothing: every name outside the cluster domain is answered
//! REFUSED at once and `/etc/resolv.conf` is not read. That is for an isolated lab or a
//! benchmark, where the host's nameservers are unreachable and a forwarded query would only
//! wait out the upstream timeout before its SERVFAIL.

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
    /// comma-separated); without it, the nameservers of /etc/resolv.conf. `none`: no
    /// upstream at all, other names are refused at once (isolated labs, benchmarks).
    #[arg(long, value_delimiter = ',', value_parser = parse_upstream)]
    upstream: Vec<Upstream>,
}

/// One `--upstream` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Upstream {
    /// `none`: forward nothing.
    None,
    /// A resolver's address.
    Addr(SocketAddr),
}

fn parse_upstream(s: &str) -> Result<Upstream, String> {
    if s == "none" {
        return Ok(Upstream::None);
    }
    s.parse::<SocketAddr>()
        .or_else(|_| {
            s.parse::<std::net::IpAddr>()
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .map(Upstream::Addr)
        .map_err(|_| format!("{s:?} is not an IP, IP:port or `none`"))
}

/// The forwarder `--upstream` asks for: `none` alone, addresses, or (no flag) the host's
/// resolv.conf at `resolv_conf` less our own `listen` address.
fn forwarder(
    upstream: &[Upstream],
    resolv_conf: &Path,
    listen: SocketAddr,
) -> anyhow::Result<Forwarder> {
    if upstream.contains(&Upstream::None) {
        anyhow::ensure!(
            upstream.len() == 1,
            "--upstream none cannot be combined with upstream addresses"
        );
        tracing::info!("--upstream none: names outside the cluster domain are refused");
        return Ok(Forwarder::default());
    }
    let forwarder = if upstream.is_empty() {
        Forwarder::from_resolv_conf(resolv_conf, listen).unwrap_or_else(|error| {
            tracing::warn!(error = %anyhow::Error::from(error), "no upstream resolver: other names are refused");
            Forwarder::default()
        })
    } else {
        let addrs = upstream.iter().filter_map(|u| match u {
            Upstream::Addr(addr) => Some(*addr),
            Upstream::None => None,
        });
        Forwarder::new(addrs.collect())
    };
    if forwarder.upstreams().is_empty() {
        tracing::warn!("no upstream resolver: names outside the cluster domain are refused");
    }
    Ok(forwarder)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    client::logging::init();
    let args = Args::parse();
    let shutdown = client::shutdown::on_signal().context("listening for SIGTERM")?;
    let forwarder = forwarder(&args.upstream, Path::new("/etc/resolv.conf"), args.listen)?;
    let client = args.cluster.client().await?;
    let server = Server::bind(args.listen, forwarder).await?;
    tokio::select! {
        () = server.serve(client, args.cluster_domain) => Ok(()),
        _ = shutdown => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstreams(args: &[&str]) -> Result<Vec<Upstream>, clap::Error> {
        Args::try_parse_from(["minik8s-dns"].iter().chain(args)).map(|a| a.upstream)
    }

    #[test]
    fn upstream_addresses_default_to_port_53() {
        assert_eq!(
            upstreams(&["--upstream", "10.0.0.2,1.1.1.1:5353"]).unwrap(),
            [
                Upstream::Addr("10.0.0.2:53".parse().unwrap()),
                Upstream::Addr("1.1.1.1:5353".parse().unwrap())
            ]
        );
        assert!(upstreams(&["--upstream", "resolver.example"]).is_err());
    }

    #[test]
    fn upstream_none_forwards_nothing_and_reads_no_resolv_conf() {
        let parsed = upstreams(&["--upstream", "none"]).unwrap();
        assert_eq!(parsed, [Upstream::None]);
        // A resolv.conf that would give an upstream is not read.
        let dir = std::env::temp_dir().join(format!("dns-main-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let resolv_conf = dir.join("resolv.conf");
        std::fs::write(&resolv_conf, "nameserver 10.0.0.2\n").unwrap();
        let listen = "127.0.0.1:5353".parse().unwrap();
        assert!(forwarder(&parsed, &resolv_conf, listen)
            .unwrap()
            .upstreams()
            .is_empty());
        assert_eq!(
            forwarder(&[], &resolv_conf, listen).unwrap().upstreams(),
            ["10.0.0.2:53".parse().unwrap()]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn upstream_none_is_not_mixed_with_addresses() {
        let parsed = upstreams(&["--upstream", "none,10.0.0.2"]).unwrap();
        let error = forwarder(
            &parsed,
            Path::new("/nonexistent"),
            "127.0.0.1:53".parse().unwrap(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("--upstream none"), "{error}");
    }
}
