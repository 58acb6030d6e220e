//! `minik8s-controller`: the controller manager binary. With leader election (the default) it
//! runs the controllers only while holding the Lease `kube-system/minik8s-controller`; on
//! SIGTERM or SIGINT it stops them and releases the Lease, so a successor takes over at once.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use client::connect::ClusterFlags;
use client::leader::{default_identity, run_as_leader_until, LeaderConfig};

/// Run the minik8s controllers (ReplicaSet, Deployment, EndpointSlice, garbage collector,
/// namespace, node lifecycle, node IPAM, pod GC; CSR approval and signing with a signing CA)
/// against an apiserver.
#[derive(Parser, Debug)]
#[command(name = "minik8s-controller", version)]
struct Flags {
    #[command(flatten)]
    cluster: ClusterFlags,
    /// Run only while holding the kube-system/minik8s-controller Lease.
    #[arg(long = "leader-elect", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Seconds without a node Lease renewal before the node is marked NotReady (Unknown).
    #[arg(long = "node-monitor-grace-period", default_value = "50s", value_parser = parse_duration)]
    node_monitor_grace_period: Duration,
    /// Eviction delay for pods with no toleration of the unreachable (or not-ready) taint at
    /// all; any other NoExecute taint evicts such pods at once. Pods normally have one: the
    /// apiserver adds it (its --default-unreachable-toleration-seconds, 300 by default, is the
    /// knob labs turn down).
    #[arg(long = "pod-eviction-timeout", default_value = "300s", value_parser = parse_duration)]
    pod_eviction_timeout: Duration,
    /// The pod network; each node gets a /24 of it.
    #[arg(long = "cluster-cidr", default_value = "10.244.0.0/16")]
    cluster_cidr: String,
    /// How long a node must be missing (and then confirmed gone) before the pods bound to it
    /// are marked Failed and deleted (upstream podgc's fixed quarantineTime).
    #[arg(long = "pod-gc-quarantine", default_value = "40s", value_parser = parse_duration)]
    pod_gc_quarantine: Duration,
    /// PEM CA certificate that signs CertificateSigningRequests (kubelet TLS bootstrapping);
    /// with --cluster-signing-key-file it enables the CSR approver and signer.
    #[arg(
        long = "cluster-signing-cert-file",
        requires = "cluster_signing_key_file"
    )]
    cluster_signing_cert_file: Option<PathBuf>,
    /// PEM private key of --cluster-signing-cert-file.
    #[arg(
        long = "cluster-signing-key-file",
        requires = "cluster_signing_cert_file"
    )]
    cluster_signing_key_file: Option<PathBuf>,
}

/// `50s`, `5m`, `300` (seconds), `500ms`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 50s"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    client::logging::init();
    let flags = Flags::parse();
    let shutdown = client::shutdown::on_signal().context("listening for SIGTERM")?;
    let client = flags.cluster.client().await?;
    controller::node_ipam::parse_cidr(&flags.cluster_cidr)
        .with_context(|| format!("--cluster-cidr {}", flags.cluster_cidr))?;
    let cluster_signing = match (
        &flags.cluster_signing_cert_file,
        &flags.cluster_signing_key_file,
    ) {
        (Some(cert), Some(key)) => Some(Arc::new(
            client::pki::Pki::load_ca(cert, key).context("loading the cluster signing CA")?,
        )),
        _ => None,
    };
    let config = controller::manager::Config {
        node_monitor_grace_period: flags.node_monitor_grace_period,
        pod_eviction_timeout: flags.pod_eviction_timeout,
        cluster_cidr: flags.cluster_cidr,
        pod_gc_quarantine: flags.pod_gc_quarantine,
        cluster_signing,
    };
    let work = || async {
        controller::manager::run(client.clone(), config).await;
        Ok(())
    };
    if !flags.leader_elect {
        return tokio::select! {
            r = work() => r,
            _ = shutdown => Ok(()),
        };
    }
    let lease = LeaderConfig::new("minik8s-controller", &default_identity());
    run_as_leader_until(client.clone(), lease, work, shutdown).await
}
