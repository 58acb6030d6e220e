//! Informer caches: a watch fills a reflector's `Store`, which is only worth reading once its
//! first list is in (client-go's `HasSynced`). A sync that runs on a half-filled cache sees
//! "no pods" where there are six, and creates six more.
//!
//! After an apiserver outage every watch reconnects and, if its resourceVersion is older than
//! what the apiserver still remembers (a restarted apiserver starts a fresh watch cache), it is
//! answered `410 Gone` and lists again. [`watch`] does both the way client-go's reflector does:
//! each watch backs off on its own, and a 410 relists at once. A resource the apiserver does
//! not serve (404) is said once per watch, not at every retry. Read next: `node_lifecycle.rs`.

use std::fmt::Debug;

use futures::{future, FutureExt, Stream, StreamExt};
use kube::api::Api;
use kube::runtime::reflector::{self, Lookup, Store};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::{Controller, WatchStreamExt};
use kube::Resource;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

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

/// The watch of `api`'s objects that fills a cache (pass it to `reflector::reflector`).
///
/// - Each watch has its own back-off (kube's `DefaultBackoff`, client-go's reflector numbers:
///   800 ms doubling to 30 s, with jitter, reset by the next event), so a short outage costs
///   about a second after the apiserver is back. A `Controller` would back off its whole
///   trigger stream on an error of any of its watches, the errors of all of them adding up
///   (a 2-3 s outage grows that shared back-off past 10 s), so errors are logged here and
///   never passed on.
/// - `410 Gone` is not a failure: the watcher has already dropped its resourceVersion and
///   lists again at once, without waiting out a back-off.
pub fn watch<K>(api: Api<K>) -> impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let resource = api.resource_url().to_string();
    // Whether this watch has already said that the apiserver does not serve its resource.
    let mut said_not_served = false;
    watcher(api, watcher::Config::default())
        .filter(|event| future::ready(!is_gone(event)))
        .default_backoff()
        .filter(move |event| {
            match event {
                Ok(_) => said_not_served = false,
                Err(error) if is_not_served(error) => {
                    if !said_not_served {
                        warn!(%resource, %error, "the apiserver does not serve this resource (yet); retrying after a back-off");
                        said_not_served = true;
                    } else {
                        debug!(%resource, "still not served; retrying after a back-off");
                    }
                }
                Err(error) => warn!(%resource, %error, "watch failed; retrying after a back-off"),
            }
            future::ready(event.is_ok())
        })
}

/// Is this the apiserver answering `404 Not Found` for the resource itself (an older
/// apiserver, or one that does not serve it yet)? Said once per watch, not at every retry.
fn is_not_served(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s)) => s.code == 404,
        watcher::Error::WatchError(s) => s.code == 404,
        _ => false,
    }
}

/// A `Controller` of `api`'s objects whose own watch is [`watch`].
pub fn controller<K>(api: Api<K>) -> Controller<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Debug + Unpin,
{
    let (reader, writer) = reflector::store();
    let objects = reflector::reflector(writer, watch(api)).applied_objects();
    Controller::for_stream(objects, reader)
}

/// Is this the apiserver saying the watch's resourceVersion is too old (`410 Gone`)?
fn is_gone<K>(event: &watcher::Result<watcher::Event<K>>) -> bool {
    let gone = matches!(event, Err(watcher::Error::WatchError(status)) if status.code == 410);
    if gone {
        debug!("watch expired (410 Gone); listing again");
    }
    gone
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

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

    #[test]
    fn only_410_means_list_again() {
        let status = |code| {
            let mut s = kube::core::Status::failure("expired", "Expired");
            s.code = code;
            Err(watcher::Error::WatchError(Box::new(s)))
        };
        assert!(is_gone::<Pod>(&status(410)));
        assert!(!is_gone::<Pod>(&status(500)));
        assert!(!is_gone::<Pod>(&Ok(watcher::Event::Init)));
    }

    #[test]
    fn a_404_means_the_resource_is_not_served() {
        let api_error = |code| {
            let mut s = kube::core::Status::failure("not found", "NotFound");
            s.code = code;
            kube::Error::Api(Box::new(s))
        };
        assert!(is_not_served(&watcher::Error::InitialListFailed(
            api_error(404)
        )));
        assert!(is_not_served(&watcher::Error::WatchStartFailed(api_error(
            404
        ))));
        assert!(!is_not_served(&watcher::Error::InitialListFailed(
            api_error(500)
        )));
    }
}
