//! What every crate's integration tests (and benchmarks) share: a real cluster, small.
//!
//! minik8s tests never mock the API: each test starts its own etcd, an apiserver on a loopback
//! port with a key prefix of its own, and talks to it the way a component or a user would, with
//! a `kube::Client` or the real `kubectl`. Everything a test starts stops when its guard drops,
//! also when the test panics. A test that needs the whole picture reads like this:
//!
//! ```no_run
//! # async fn example() {
//! use testkit::{wait_for, Cluster};
//! let cluster = Cluster::start().await; // etcd + apiserver, both gone on drop
//! cluster.kubectl_ok(&["create", "namespace", "demo"]).await;
//! wait_for(30, "namespace demo", || async {
//!     cluster.kubectl_text(&["get", "ns", "demo"]).await.0.then_some(())
//! })
//! .await;
//! # }
//! ```
//!
//! - `cluster.rs`: [`Cluster`], a private etcd and an in-process apiserver (restartable), with
//!   its client and kubectl; `kubectl.rs` finds the kubectl binary (`KUBECTL`, else `PATH`).
//! - `component.rs`: [`Component`], a component binary as a process, its output captured, and
//!   the holder of a leader-election Lease; `process.rs`: any child killed on drop.
//! - `secure.rs`: [`SecureCluster`], the apiserver binary over HTTPS on a fresh `client::pki`
//!   PKI ([`TempPki`]) with the admin's kubeconfig, as kubeadm leaves a cluster.
//! - `node/` (feature `node`): [`Kubelet`], a real kubelet process with its own node name, root
//!   dir and pod network, everything it leaves behind removed on drop; [`assert_nothing_left`].
//! - `wait.rs`: [`wait_for`] a condition with a deadline, [`Task`]s aborted on drop;
//!   `objects.rs`: small builders and accessors for the objects tests create and read.
//!
//! The etcd process and the in-process server themselves ([`EtcdProcess`], [`TestServer`])
//! live in `apiserver::testing`, beside the internals they start, and are re-exported here.
//! Read next: `apiserver/tests/common/mod.rs` or `tests/tests/cluster/mod.rs`, which build
//! their crate's own fixtures on these.

pub mod cluster;
pub mod component;
pub mod kubectl;
#[cfg(feature = "node")]
pub mod node;
pub mod objects;
pub mod process;
pub mod secure;
pub mod wait;

pub use apiserver::testing::{EtcdProcess, TestServer};
pub use cluster::{Cluster, ServerConfig};
pub use component::{lease_holder, wait_for_holder, Component};
pub use kubectl::kubectl;
#[cfg(feature = "node")]
pub use node::{assert_nothing_left, cgroup_root, container_pid, link_exists, Kubelet, TestNet};
pub use process::{free_port, rand_hex, ChildGuard};
pub use secure::{SecureCluster, TempPki};
pub use wait::{poll, wait_for, Task};
