//! The watch caches a Service consumer needs: reflectors of every Service and EndpointSlice
//! (an informer each, in client-go's words) and one `Notify` woken by any event of either.
//! The node's proxy (`minik8s-proxy`) and cluster DNS (`minik8s-dns`) both read them the
//! same way: level-triggered, the whole of both stores at once ([`ServiceCaches::state`]),
//! never the event that woke them, so coalesced or missed events cannot leave anything stale.
//! Until both stores hold their first full list there is no state: acting on "no Services
//! yet" would delete a restarted proxy's rules or answer NXDOMAIN for names not yet listed.

use std::future::Future;
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use tokio::sync::Notify;

/// The two stores and the signal that either changed.
#[derive(Clone)]
pub struct ServiceCaches {
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    /// Notified on every watch event.
    pub changed: Arc<Notify>,
}

/// Every Service and every EndpointSlice, as the stores held them at one moment.
pub type ServiceState = (Vec<Arc<Service>>, Vec<Arc<EndpointSlice>>);

impl ServiceCaches {
    /// Both stores' current objects, or `None` before both had their first full list.
    pub fn state(&self) -> Option<ServiceState> {
        if !(has_synced(&self.services) && has_synced(&self.slices)) {
            return None;
        }
        Some((self.services.state(), self.slices.state()))
    }
}

/// Start watching through `client`: the caches, and the future that feeds them (run it beside
/// the consumer; it never ends, and a failed watch is retried with a back-off).
pub fn watch(client: kube::Client) -> (ServiceCaches, impl Future<Output = ()>) {
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
    let caches = ServiceCaches {
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
