//! The watch caches the proxy syncs from: `client::service_watch`'s reflectors of every
//! Service and EndpointSlice, read as service ports. Any event wakes the sync loop through
//! their one `Notify`; the loop then reads both whole stores ([`Caches::service_ports`]),
//! never the event, so coalesced or missed events cannot leave a stale rule. Until both
//! stores hold their first full list there is no snapshot: syncing "no Services yet" would
//! delete every rule of a restarted proxy. Read next: `sync.rs`.

use std::sync::Arc;

use client::service_watch::{self, ServiceCaches};
use tokio::sync::Notify;

use crate::model::{self, ServicePort};

/// The two stores and the signal that either changed.
#[derive(Clone)]
pub struct Caches {
    caches: ServiceCaches,
    /// Notified on every watch event.
    pub changed: Arc<Notify>,
}

impl Caches {
    /// The service ports of the stores' current state, or `None` before both had their
    /// first list.
    pub fn service_ports(&self) -> Option<Vec<ServicePort>> {
        let (services, slices) = self.caches.state()?;
        Some(model::service_ports(
            services.iter().map(|s| s.as_ref()),
            slices.iter().map(|s| s.as_ref()),
        ))
    }
}

/// Start watching through `client`: the caches, and the future that feeds them (run it
/// beside the sync loop; it never ends).
pub fn watch(client: kube::Client) -> (Caches, impl std::future::Future<Output = ()>) {
    let (caches, feed) = service_watch::watch(client);
    let changed = caches.changed.clone();
    (Caches { caches, changed }, feed)
}
