//! What every minik8s component (scheduler, controllers, kubelet) shares to reach the cluster
//! and to run as a well-behaved process.
//!
//! - `connect.rs`: the `--kubeconfig` / `--server` / `--token` flags and the `kube::Client` they
//!   make. Components only ever talk to the apiserver through this client.
//! - `pki/`: the cluster PKI as kubeadm lays it out (the CA, the apiserver's serving and kubelet
//!   client certificates, the admin's), client certificates for joining nodes, the CA hash a
//!   joining node pins, kubeconfigs with embedded credentials.
//! - `leader.rs`: leader election on a `coordination.k8s.io/v1` Lease, so two copies of a
//!   component can run and only one acts; the Lease is released on a clean shutdown.
//! - `service_watch.rs`: the Service and EndpointSlice watch caches the node's proxy and the
//!   cluster DNS both read, with the signal that either changed.
//! - `shutdown.rs`: SIGTERM and SIGINT as a future, to stop cleanly.
//! - `logging.rs`: logs to stderr, `RUST_LOG` honoured, colours only on a terminal.
//! - `quantity.rs`: resource quantities (`500m`, `1.5Gi`), parsed exactly as Kubernetes does;
//!   the one parser of the workspace (the apiserver's defaults and validation use it too).

pub mod connect;
pub mod leader;
pub mod logging;
pub mod pki;
pub mod quantity;
pub mod service_watch;
pub mod shutdown;
