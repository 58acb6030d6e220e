//! Harness for the kubelet tests: `testkit`'s cluster (a private etcd + apiserver, in-process)
//! and nodes, with this crate's `minik8s-kubelet` binary as the node's process. Dropping a
//! `Kubelet` kills the process and removes every container, sandbox and pod network it left,
//! then its root dir; `TestNet` gives a test a bridge and a /24 of its own.
// Each test binary includes this module and uses a part of it (and of what it re-exports).
#![allow(dead_code, unused_imports)]

mod netns;

use std::ffi::OsString;

pub use netns::{ip, Netns};

pub use testkit::objects::{condition, container_status, phase};
pub use testkit::{
    container_pid, free_port, link_exists, rand_hex, Cluster, EtcdProcess, Kubelet, ServerConfig,
    TestNet, TestServer,
};

pub const BIN: &str = env!("CARGO_BIN_EXE_minik8s-kubelet");

/// The kubelet the tests run: this crate's, or `MINIK8S_KUBELET_BIN` (a benchmark may compare
/// another build of the kubelet, and so of its shim).
pub fn bin() -> OsString {
    std::env::var_os("MINIK8S_KUBELET_BIN").unwrap_or_else(|| BIN.into())
}

/// Start a kubelet for a fresh node `node-<hex>` against `cluster`, with `extra` flags.
pub fn start_kubelet(cluster: &Cluster, extra: &[&str]) -> Kubelet {
    Kubelet::start(bin(), cluster, &format!("node-{}", rand_hex()), extra)
}
