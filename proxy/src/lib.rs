//! The node's Service proxy (`minik8s-proxy`, kube-proxy's job): a Service's ClusterIP is an
//! address no interface has. It works because every node rewrites, in its kernel, the first
//! packet of each connection to `clusterIP:port` (or to the node's own address on a
//! `nodePort`) so that it goes to one ready endpoint, `podIP:targetPort`, picked at random;
//! conntrack rewrites the rest of the connection the same way. The proxy never touches a
//! packet itself: it watches Services and EndpointSlices and keeps the node's netfilter rules
//! equal to them, as an nftables table of its own (the default) or as iptables chains
//! (`--proxy-mode`).
//!
//! Read in this order:
//! - [`model`]: Services + EndpointSlices → service ports with their ready endpoints (pure);
//! - [`nftables`]: service ports → our nftables table, and the `nft -f` transaction that
//!   turns the last one into it (pure);
//! - [`rules`]: service ports → one `iptables-restore` transaction of our own chains (pure);
//! - [`sync`]: running that transaction once per batch of changes, why nftables is the
//!   default, and `--cleanup`;
//! - [`cache`]: the watch caches that wake the sync.

pub mod cache;
pub mod model;
pub mod nftables;
pub mod rules;
pub mod sync;
