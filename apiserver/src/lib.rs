//! minik8s-apiserver: the Kubernetes REST API on etcd.
//!
//! Every other component (scheduler, controllers, kubelets, kubectl) talks only to this
//! server. A request flows: `server.rs` (routes, auth, metrics) → `request.rs` (URL →
//! verb/resource/namespace/name) → `handlers/` (get, list, watch, create, update, patch,
//! delete, subresources) → `admission/` (defaults, validation) → `storage.rs` (etcd) and
//! `watch_cache.rs` (one etcd watch per resource fanned out to all watchers); the shared state
//! every handler gets (`App`) is `state.rs`. Start reading at `server.rs`;
//! `docs/ARCHITECTURE.md` has the map.

pub mod admission;
pub mod allocator;
pub mod auth;
pub mod codec;
pub mod config;
pub mod discovery;
pub mod error;
pub mod event_views;
pub mod handlers;
pub mod kubelet_client;
pub mod metrics;
pub mod object;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod request;
pub mod resources;
pub mod selectors;
pub mod server;
pub mod state;
pub mod storage;
pub mod tables;
pub mod testing;
pub mod tls;
pub mod watch_cache;
