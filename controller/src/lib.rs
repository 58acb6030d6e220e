//! minik8s-controller: the controller manager.
//!
//! Every controller here is a *reconciler*: it watches objects, keeps a cache of them, and for
//! each object repeatedly drives the cluster toward `spec` from what the cache says now
//! (level-triggered), never from the event that woke it. Each file holds one reconciler; start
//! with `replicaset/`, then `deployment/`, `garbage_collector.rs`, `namespace.rs`,
//! `node_lifecycle.rs` and `taint_eviction.rs`, `pod_gc.rs`, `node_ipam.rs`, `certificates/` (TLS bootstrapping) and
//! `endpointslice/` (a Service's endpoints). `manager.rs` runs them all with the
//! settings of `config.rs`; `cache.rs` and `conflict.rs` hold what they share: watches that
//! recover quickly after an apiserver outage, and writes that retry at once on a stale copy.
//! The reconcilers' unit tests run them against a fake apiserver, `testing/`.

pub mod cache;
pub mod certificates;
pub mod config;
pub mod conflict;
pub mod deployment;
pub mod endpointslice;
pub mod events;
pub mod expectations;
pub mod garbage_collector;
pub mod manager;
pub mod namespace;
pub mod node_ipam;
pub mod node_lifecycle;
pub mod pod;
pub mod pod_gc;
pub mod replicaset;
pub mod taint_eviction;
#[cfg(test)]
mod testing;
