//! Cluster DNS (`minik8s-dns`, kube-dns' and CoreDNS' job): every Service gets a name,
//! `<svc>.<ns>.svc.<cluster-domain>`, that pods can resolve instead of remembering its
//! ClusterIP; a headless Service's name resolves to its ready pods; named ports are found with
//! SRV records; any other name is forwarded to the node's own resolvers. Pods reach the server
//! through the Service `kube-system/kube-dns` (10.96.0.10), which the kubelet writes into
//! their `/etc/resolv.conf`.
//!
//! The server is a client of the API like any controller: it watches Services and
//! EndpointSlices and never writes. Read in this order:
//! - [`records`]: the rules, from objects to answers (pure, unit-tested);
//! - [`cache`]: the watch caches and the index rebuilt from them;
//! - [`response`]: one query's bytes to one response's bytes;
//! - [`prepared`]: the commonest responses, encoded once per snapshot;
//! - [`server`]: the UDP and TCP sockets;
//! - [`batch`]: datagrams received and sent a batch per system call;
//! - [`forward`]: names outside the cluster domain, sent upstream.

pub mod batch;
pub mod cache;
pub mod forward;
pub mod prepared;
pub mod records;
pub mod response;
pub mod server;
