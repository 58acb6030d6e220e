//! The kubelet: the agent on every node. It registers the Node (its address from
//! [`node_ip`] unless given) and renews its Lease ([`node`]), watches the pods bound to the
//! node ([`agent`]) and runs one level-triggered worker per pod ([`pod_worker`]) that turns
//! the PodSpec into runtime calls ([`container_config`], [`volumes`], the pod's resolv.conf
//! from [`dns_config`] and its /etc/hosts from [`etc_hosts`]), restarts containers as
//! [`restart`] says, runs [`probes`] and reports [`status`] and [`events`]. [`server`] is its
//! own HTTPS API (logs, exec, health, metrics, and [`inspect`]: a pod down to the kernel),
//! with the certificate of [`serving_cert`], on the address and for the callers [`endpoint`]
//! decides (port 10250 of the node IP by default). A new machine joins with a bootstrap token
//! through [`bootstrap`] (TLS bootstrapping: the CA pinned by its hash, a CSR for the node's
//! own client certificate). With `--route-pod-cidrs`, [`pod_routes`] routes the other nodes'
//! pod ranges through their addresses (flannel's host-gw); `--cleanup` is [`reset`], the
//! node wiped as `kubeadm reset` does.
//!
//! Underneath sits the node's container runtime, the crate [`runtime`] (package
//! `minik8s-runtime`, `runtime/` in the workspace), which knows nothing of Kubernetes: the
//! kubelet talks to it through a CRI-like boundary, the trait [`cri::ContainerRuntime`] (with
//! a fake in-memory runtime beside the real one for unit tests), the way a real kubelet talks
//! to containerd.
//! Read `cri/mod.rs`, then `agent.rs`, then `pod_worker/mod.rs`.

pub mod agent;
pub mod bootstrap;
pub mod container_config;
pub mod cri;
pub mod dns_config;
pub mod endpoint;
pub mod etc_hosts;
pub mod events;
pub mod inspect;
pub mod metrics;
pub mod node;
pub mod node_ip;
pub mod pod_routes;
pub mod pod_worker;
pub mod port_forward;
pub mod probes;
pub mod reset;
pub mod restart;
pub mod server;
pub mod serving_cert;
pub mod status;
pub mod volumes;
