//! The watch caches behind the answers (`client::service_watch`: reflectors of every Service
//! and EndpointSlice), and the [`Index`] rebuilt from both stores whenever either changes.
//!
//! A rebuild reads the whole stores (level-triggered: the event that woke it is never read)
//! and is published as one immutable [`Snapshot`] on a `tokio::sync::watch` channel, which the
//! query path reads without waiting on any lock held across a rebuild. A snapshot carries the
//! responses to the commonest queries, encoded as it is made (`prepared.rs`). Changes that arrive
//! during a rebuild are folded into the next one. Until both caches hold their first full
//! list the snapshot is not `synced`, and the server answers cluster names SERVFAIL rather
//! than NXDOMAIN for names it simply has not seen yet. Read next: `server.rs`.

use std::sync::Arc;

use client::service_watch;
use tokio::sync::watch;

use crate::prepared::Prepared;
use crate::records::Index;

/// What the server answers from, replaced whole on every change.
#[derive(Debug)]
pub struct Snapshot {
    /// The records of the cluster domain.
    pub index: Index,
    /// Whether both watch caches had their first full list when the index was built.
    pub synced: bool,
    /// The responses to the commonest queries, encoded in advance from the two above.
    pub prepared: Prepared,
}

impl Snapshot {
    /// A snapshot answering from `index`, with its prepared responses.
    pub fn new(index: Index, synced: bool) -> Snapshot {
        Snapshot::following(index, synced, None)
    }

    /// The snapshot after `previous`: the prepared responses of names whose records did not
    /// change are taken from it rather than encoded again.
    pub fn following(index: Index, synced: bool, previous: Option<&Snapshot>) -> Snapshot {
        let previous = previous
            .filter(|p| p.synced)
            .map(|p| (&p.index, &p.prepared));
        let prepared = Prepared::build(&index, synced, previous);
        Snapshot {
            index,
            synced,
            prepared,
        }
    }
}

/// A snapshot of `zone` before anything is known.
pub fn unsynced(zone: &str) -> Arc<Snapshot> {
    Arc::new(Snapshot::new(Index::empty(zone), false))
}

/// Watch Services and EndpointSlices through `client` and publish a fresh snapshot of `zone`
/// on `snapshots` after every change. Runs until the task is dropped.
pub async fn run(client: kube::Client, zone: String, snapshots: watch::Sender<Arc<Snapshot>>) {
    let (caches, watches) = service_watch::watch(client);
    let rebuild = async {
        loop {
            caches.changed.notified().await;
            // Before the first full lists, an index would say NXDOMAIN for Services not yet
            // listed; wait for both (the next event after that comes with InitDone).
            let Some((service_list, slice_list)) = caches.state() else {
                continue;
            };
            let index = Index::build(
                &zone,
                service_list.iter().map(|s| s.as_ref()),
                slice_list.iter().map(|s| s.as_ref()),
            );
            let previous = snapshots.borrow().clone();
            let snapshot = Snapshot::following(index, true, Some(&previous));
            tracing::debug!(
                services = service_list.len(),
                slices = slice_list.len(),
                prepared = snapshot.prepared.len(),
                "index rebuilt"
            );
            snapshots.send_replace(Arc::new(snapshot));
        }
    };
    tokio::join!(watches, rebuild);
}
