//! The server's shared state: what every handler reaches through axum's `State<App>`.
//!
//! One `App` per running apiserver holds the etcd `Storage`, one `WatchCache` per storage
//! directory, the request metrics and the tunables (`ServerConfig`). It is a cheap `Arc`
//! handle, cloned into every request. This module sits below everything that serves requests
//! (`handlers/`, `discovery.rs`, `server.rs`) and imports none of them. Read next: `server.rs`,
//! the route table that hands this state to the handlers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::Authentication;
use crate::metrics::Metrics;
use crate::resources::{self, Resource};
use crate::storage::Storage;
use crate::watch_cache::WatchCache;

/// Tunables of a running server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Events kept per resource for watch resumption.
    pub watch_cache_size: usize,
    /// Watches without `timeoutSeconds` end after a random time in [t, 2t] (kube-apiserver's
    /// `--min-request-timeout`), so clients re-watch and load spreads.
    pub min_request_timeout: Duration,
    /// How often a watcher that allows bookmarks gets one.
    pub bookmark_interval: Duration,
    /// Who may call the API: client certificates, bearer tokens; none configured = anonymous
    /// access.
    pub authentication: Authentication,
    /// Bearer token presented to kubelets when proxying `pods/{p}/log` and `exec`.
    pub kubelet_token: Option<String>,
    /// PEM CA that kubelet serving certificates must chain to; `None` = not verified.
    pub kubelet_ca_pem: Option<Vec<u8>>,
    /// Client certificate presented to kubelets; `None` = none (the bearer token only).
    pub kubelet_client_cert: Option<crate::kubelet_client::ClientCert>,
    /// Where Services' ClusterIPs and node ports come from.
    pub service_ranges: crate::allocator::ServiceRanges,
    /// The address clients reach this apiserver at: the `kubernetes` Service's endpoint
    /// (`None`: its Endpoints and EndpointSlice are not written).
    pub advertise_address: Option<std::net::SocketAddr>,
}

impl ServerConfig {
    /// TLS client settings for dialing kubelets (see [`crate::kubelet_client`]).
    pub fn kubelet_tls(&self) -> std::io::Result<Arc<rustls::ClientConfig>> {
        crate::kubelet_client::tls_config(
            self.kubelet_ca_pem.as_deref(),
            self.kubelet_client_cert.as_ref(),
        )
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            watch_cache_size: 10_000,
            min_request_timeout: Duration::from_secs(1800),
            bookmark_interval: Duration::from_secs(60),
            authentication: Authentication::default(),
            kubelet_token: None,
            kubelet_ca_pem: None,
            kubelet_client_cert: None,
            service_ranges: Default::default(),
            advertise_address: None,
        }
    }
}

/// State shared by every handler.
pub struct Inner {
    pub storage: Storage,
    pub config: ServerConfig,
    pub metrics: Metrics,
    caches: HashMap<&'static str, Arc<WatchCache>>,
}

/// A cheap handle on the server state.
#[derive(Clone)]
pub struct App(pub Arc<Inner>);

impl std::ops::Deref for App {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl App {
    /// Start one watch cache per storage directory.
    pub fn new(storage: Storage, config: ServerConfig) -> App {
        let caches = resources::storage_dirs()
            .into_iter()
            .map(|dir| {
                let prefix = storage.collection_prefix(dir, None);
                (
                    dir,
                    WatchCache::start(storage.clone(), prefix, config.watch_cache_size),
                )
            })
            .collect();
        App(Arc::new(Inner {
            storage,
            config,
            metrics: Metrics::new(),
            caches,
        }))
    }

    /// The watch cache backing `resource`.
    pub fn cache(&self, resource: &Resource) -> &Arc<WatchCache> {
        &self.caches[resource.storage]
    }

    /// Whether every cache has loaded (readiness).
    pub fn caches_ready(&self) -> bool {
        self.caches.values().all(|c| c.is_ready())
    }

    /// Wait for every cache's first list.
    pub async fn wait_ready(&self) {
        for c in self.caches.values() {
            c.wait_ready().await;
        }
    }
}
