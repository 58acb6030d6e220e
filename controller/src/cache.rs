//! Informer caches: a reflector's `Store` is only worth reading once its first list is in
//! (client-go's `HasSynced`). A sync that runs on a half-filled cache sees "no pods" where
//! there are six, and creates six more.

use futures::FutureExt;
use kube::runtime::reflector::{Lookup, Store};

/// Whether `store` holds its first full list. Syncs call this and requeue shortly when it does
/// not, rather than `await` `Store::wait_until_ready`: that future keeps the waker of only the
/// last of several concurrent waiters (a oneshot channel underneath), so when two syncs wait
/// side by side, the first is never woken and its object is never synced again.
pub fn has_synced<K>(store: &Store<K>) -> bool
where
    K: Lookup + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use kube::runtime::watcher;

    #[test]
    fn a_store_has_synced_after_its_first_list() {
        let (store, mut writer) = kube::runtime::reflector::store::<Pod>();
        assert!(!has_synced(&store));
        writer.apply_watcher_event(&watcher::Event::Init);
        assert!(
            !has_synced(&store),
            "a list in progress is not a synced cache"
        );
        writer.apply_watcher_event(&watcher::Event::InitDone);
        assert!(has_synced(&store));
        assert!(has_synced(&store), "and stays synced");
    }
}
