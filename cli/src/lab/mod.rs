//! The local lab: a whole cluster of several nodes on one machine, each node a network
//! namespace of its own, as `kind` makes each node a container. `minikctl cluster up`,
//! `down` and `status` (`commands/cluster/`) drive it.
//!
//! ```text
//!   root namespace            lab namespaces (ip netns list: minik8s-<lab>-...)
//!   ──────────────            ───────────────────────────────────────────────────────
//!   kubectl ──▶ 127.0.0.1:P   ┌ switch ─────────────────────────────────────────────┐
//!   (minik8s-<lab> context)   │ bridge switch0 10.240.0.1/24                          │
//!        │ forward.rs          └──┬───────────────┬────────────────┬───────────────┘
//!        │ (a socket in each      │ veth          │ veth           │ veth
//!        │  namespace)      ┌─────┴──────┐  ┌─────┴──────┐   ┌─────┴──────┐
//!        └────────────────▶ │ control-   │  │ node-1     │   │ node-2     │
//!                           │ plane      │  │ eth0 .11   │   │ eth0 .12   │
//!                           │ eth0 .2    │  │ kubelet    │   │ kubelet    │
//!                           │ etcd, api- │  │ proxy      │   │ proxy      │
//!                           │ server,    │  │ dns :53    │   │ dns :53    │
//!                           │ controller,│  │ minik8s0   │   │ minik8s0   │
//!                           │ scheduler  │  │ 10.244.0.1 │   │ 10.244.1.1 │
//!                           └────────────┘  │ pods ...   │   │ pods ...   │
//!                                           └────────────┘   └────────────┘
//! ```
//!
//! Nothing is added to the root namespace: no route, bridge, address or firewall rule. The
//! user reaches the apiserver through a small relay (`forward.rs`) that accepts on the root
//! namespace's loopback and connects from inside the lab. Each node's kubelet joins as a real
//! machine would, with a bootstrap token and the CA hash (`kubelet/src/bootstrap.rs`), serves
//! its API on its own address, puts its pods under a cgroup root of its own, and routes the
//! other nodes' pod ranges through their addresses (`--route-pod-cidrs`, flannel's host-gw),
//! so that a pod reaches a pod on another node across the switch. Each node also runs the
//! add-ons (`addons.rs`): a Service proxy, whose NAT rules live in the node's namespace and
//! die with it, and a DNS server on the node's address, port 53, which the `kube-dns`
//! Service (10.96.0.10) reaches.
//!
//! - `binaries.rs`: the components' programs and etcd, found and checked.
//! - `netns.rs`: named network namespaces, as `ip netns add|del` make them; spawning into one.
//! - `wire.rs`: the switch's bridge and each namespace's cable to it (veth, address, route).
//! - `daemon.rs`: the lab's processes, started detached and stopped by pid (only ours).
//! - `spec.rs`: names and addresses of a lab; `state.rs`: what `up` records for `down`.
//! - `addons.rs`: the cluster DNS Service and its endpoints, the DNS readiness check.
//! - `kubeconfig.rs`: the `minik8s-<lab>` context merged into the user's kubeconfig.
//! - `forward.rs`: the API relay.
//!
//! The steps that use these are the commands' (`commands/cluster/up.rs`, `down.rs`,
//! `status.rs`). Read next: `commands/cluster/up.rs`, the steps in order.

pub mod addons;
pub mod binaries;
pub mod daemon;
pub mod forward;
pub mod kubeconfig;
pub mod netns;
pub mod spec;
pub mod state;
pub mod wire;

use std::path::PathBuf;

/// Why a lab step failed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A file or directory step failed.
    #[error("{step} {path}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A namespace step failed.
    #[error("network namespace {name}: {step}: {errno}")]
    Netns {
        name: String,
        step: &'static str,
        errno: nix::Error,
    },
    /// A link, address or route step failed.
    #[error(transparent)]
    Link(#[from] runtime::network::LinkError),
    /// Starting a process failed.
    #[error("starting {what}: {source}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The lab's PKI could not be made.
    #[error(transparent)]
    Pki(#[from] client::pki::PkiError),
    /// Anything else, said in one line.
    #[error("{0}")]
    Other(String),
}

pub(crate) fn io_err(
    step: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> LabError {
    let path = path.into();
    move |source| LabError::Io { step, path, source }
}

/// Write `content` to `path`, readable by its owner only (credentials: kubeconfigs).
pub fn write_private(path: &std::path::Path, content: &[u8]) -> Result<(), LabError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(content))
        .map_err(io_err("write", path))
}
