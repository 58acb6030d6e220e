//! The watch caches behind the answers: reflectors of every Service and EndpointSlice (an
//! informer each, in client-go's words), and the [`Index`] rebuilt from both stores whenever
//! either changes.
//!
//! A rebuild reads the whole stores (level-triggered: the event that woke it is never read)
//! and is published as one immutable [`Snapshot`] on a `tokio::sync::watch` channel, which the
//! query path reads without waiting on any lock held across a rebuild. Changes that arrive
//! during a rebuild are folded into the next one. Until both caches hold their first full
//! list the snapshot is not `synced`, and the server answers cluster names SERVFAIL rather
//! than NXDOMAIN for names it simply has not seen yet. Read next: `server.rs`.

use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use tokio::sync::{watch, Notify};

use crate::records::Index;

/// What the server answers from, replaced whole on every change.
#[derive(Debug)]
pub struct Snapshot {
    /// The records of the cluster domain.
    pub index: Index,
    /// Whether both watch caches had their first full list when the index was built.
    pub synced: bool,
}

/// A snapshot of `zone` before anything is known.
pub fn unsynced(zone: &str) -> Arc<Snapshot> {
    Arc::new(Snapshot {
        index: Index::empty(zone),
        synced: false,
    })
}

/// Watch Services and EndpointSlices through `client` and publish a fresh snapshot of `zone`
/// on `snapshots` after every change. Runs until the task is dropped.
pub async fn run(client: kube::Client, zone: String, snapshots: watch::Sender<Arc<Snapshot>>) {
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
    let watches = futures::stream::select(service_events, slice_events).for_each(move |event| {
        match event {
            Ok(()) => notify.notify_one(),
            Err(error) => tracing::warn!(%error, "watch failed; retrying after a back-off"),
        }
        futures::future::ready(())
    });

    let rebuild = async {
        loop {
            changed.notified().await;
            // Before the first full lists, an index would say NXDOMAIN for Services not yet
            // listed; wait for both (the next event after that comes with InitDone).
            if !(has_synced(&services) && has_synced(&slices)) {
                continue;
            }
            let (service_list, slice_list) = (services.state(), slices.state());
            let index = Index::build(
                &zone,
                service_list.iter().map(|s| s.as_ref()),
                slice_list.iter().map(|s| s.as_ref()),
            );
            tracing::debug!(
                services = service_list.len(),
                slices = slice_list.len(),
                "index rebuilt"
            );
            snapshots.send_replace(Arc::new(Snapshot {
                index,
                synced: true,
            }));
        }
    };
    tokio::join!(watches, rebuild);
}

/// Whether `store` holds its first full list (client-go's `HasSynced`).
fn has_synced<K>(store: &Store<K>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
}
