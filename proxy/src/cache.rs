//! The watch caches the proxy syncs from: reflectors of every Service and EndpointSlice (an
//! informer each, in client-go's words). Any event wakes the sync loop through one `Notify`;
//! the loop then reads both whole stores ([`Caches::service_ports`]), never the event, so
//! coalesced or missed events cannot leave a stale rule. Until both stores hold their first
//! full list there is no snapshot: syncing "no Services yet" would delete every rule of a
//! restarted proxy. Read next: `sync.rs`.

use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use tokio::sync::Notify;

use crate::model::{self, ServicePort};

/// The two stores and the signal that either changed.
#[derive(Clone)]
pub struct Caches {
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    /// Notified on every watch event.
    pub changed: Arc<Notify>,
}

impl Caches {
    /// The service ports of the stores' current state, or `None` before both had their
    /// first list.
    pub fn service_ports(&self) -> Option<Vec<ServicePort>> {
        if !(has_synced(&self.services) && has_synced(&self.slices)) {
            return None;
        }
        let (services, slices) = (self.services.state(), self.slices.state());
        Some(model::service_ports(
            services.iter().map(|s| s.as_ref()),
            slices.iter().map(|s| s.as_ref()),
        ))
    }
}

/// Start watching through `client`: the caches, and the future that feeds them (run it
/// beside the sync loop; it never ends).
pub fn watch(client: kube::Client) -> (Caches, impl std::future::Future<Output = ()>) {
    let (services, services_writer) = reflector::store::<Service>();
    let (slices, slices_writer) = reflector::store::<EndpointSlice>();
    let changed = Arc::new(Notify::new());
    let service_events = reflector::reflector(
        services_writer,
        watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff(),
    )
    .map(|event| event.map(|_| ()));
    let slice_events = reflector::reflector(
        slices_writer,
        watcher(
            Api::<EndpointSlice>::all(client),
            watcher::Config::default(),
        )
        .default_backoff(),
    )
    .map(|event| event.map(|_| ()));
    let notify = changed.clone();
    let feed = futures::stream::select(service_events, slice_events).for_each(move |event| {
        match event {
            Ok(()) => notify.notify_one(),
            Err(error) => tracing::warn!(%error, "watch failed; retrying after a back-off"),
        }
        futures::future::ready(())
    });
    let caches = Caches {
        services,
        slices,
        changed,
    };
    (caches, feed)
}

/// Whether `store` holds its first full list (client-go's `HasSynced`).
fn has_synced<K>(store: &Store<K>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
}
