//! What every minik8s component (scheduler, controllers, kubelet) shares to reach the cluster.
//!
//! - `connect.rs`: the `--kubeconfig` / `--server` / `--token` flags and the `kube::Client` they
//!   make. Components only ever talk to the apiserver through this client.
//! - `leader.rs`: leader election on a `coordination.k8s.io/v1` Lease, so two copies of a
//!   component can run and only one acts.
//! - `testing.rs`: fixtures for the components' binary tests.

pub mod connect;
pub mod leader;
pub mod testing;
