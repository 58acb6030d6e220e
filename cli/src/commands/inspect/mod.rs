//! `minikctl inspect pod NAME [-c C] [-o json]` and `minikctl inspect node NAME`: what no
//! other Kubernetes tool shows, a pod down to the kernel of its node.
//!
//! A container is an ordinary process: its *namespaces* (one inode each, `net:[4026532…]`;
//! the pod's containers share net, ipc and uts, pinned by the sandbox, and have their own pid,
//! mnt and cgroup namespaces) limit what it sees, its *cgroup*'s files (`cpu.max` or
//! `cpu.cfs_quota_us`, `memory.max` or `memory.limit_in_bytes`, `pids.max`) limit what it
//! uses, and its root is an *overlay* of the image's read-only layers under a writable upper
//! dir, where every change lands (a deletion as a whiteout). Only the pod's node can show
//! these, so the facts come from its kubelet (`/inspect/{ns}/{pod}`), reached through the
//! apiserver's `nodes/{node}/proxy` subresource like `kubectl get --raw
//! /api/v1/nodes/N/proxy/stats/summary`; the pod itself (its etcd key and resourceVersion), the
//! Node, its Lease come from the API.
//!
//! This file holds the arguments and what both views share; `pod.rs` and `node.rs` each
//! fetch and print one. Read next: `pod.rs`, then `kubelet/src/inspect.rs`, which answers.

mod node;
mod pod;

use anyhow::Context as _;
use serde_json::Value;

use crate::printer::table::{grow, line};

use super::Ctx;

/// `inspect`'s arguments: what to inspect.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    #[command(subcommand)]
    pub target: InspectTarget,
}

/// What `inspect` looks at.
#[derive(clap::Subcommand, Debug)]
pub enum InspectTarget {
    /// A pod's containers on their node: processes, namespaces, cgroup, rootfs, volumes, network.
    #[command(visible_alias = "po")]
    Pod {
        name: String,
        /// Only this container.
        #[arg(short = 'c', long)]
        container: Option<String>,
        /// Output format: json (default: a readable text view).
        #[arg(short = 'o', long = "output", value_enum)]
        output: Option<Format>,
    },
    /// A node: its pods' requests against allocatable, Lease age, conditions, taints, images.
    #[command(visible_alias = "no")]
    Node {
        name: String,
        /// Output format: json (default: a readable text view).
        #[arg(short = 'o', long = "output", value_enum)]
        output: Option<Format>,
    },
}

/// `-o`: the only format besides the text view.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
}

pub async fn run(ctx: &Ctx, args: InspectArgs) -> anyhow::Result<()> {
    match args.target {
        InspectTarget::Pod {
            name,
            container,
            output,
        } => pod::run(ctx, &name, container.as_deref(), output).await,
        InspectTarget::Node { name, output } => node::run(ctx, &name, output).await,
    }
}

/// `GET /api/v1/nodes/{node}/proxy{path}` as JSON.
async fn kubelet_get(ctx: &Ctx, node: &str, path: &str) -> anyhow::Result<Value> {
    let url = format!("/api/v1/nodes/{node}/proxy{path}");
    let req = http::Request::get(&url).body(Vec::new())?;
    let text = ctx
        .client
        .request_text(req)
        .await
        .with_context(|| format!("asking the kubelet of node {node}"))?;
    serde_json::from_str(&text).with_context(|| format!("the kubelet's answer to {url}"))
}

/// `Label:` padded, then the value.
fn field(label: &str, value: &str) -> String {
    format!("{:<18}{value}\n", format!("{label}:"))
}

/// Rows with aligned columns.
fn aligned(rows: &[Vec<String>]) -> String {
    let mut widths = Vec::new();
    for r in rows {
        grow(&mut widths, r);
    }
    rows.iter().map(|r| line(r, &widths)).collect()
}

/// `67108864` → `64Mi`: binary units, one decimal where needed.
fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["", "Ki", "Mi", "Gi", "Ti"];
    let mut v = n as f64;
    let mut unit = 0;
    while v.abs() >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if v.fract() == 0.0 {
        format!("{v}{}", UNITS[unit])
    } else {
        format!("{v:.1}{}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_in_binary_units() {
        assert_eq!(bytes(67108864), "64Mi");
        assert_eq!(bytes(1536), "1.5Ki");
        assert_eq!(bytes(12), "12");
    }
}
