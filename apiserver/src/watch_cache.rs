//! The watch cache: one etcd watch per resource, fanned out to every HTTP watcher.
//!
//! kube-apiserver does not open an etcd watch per client. Each resource has a reflector that
//! lists the etcd prefix once, then watches it, keeping (1) the current objects, for lists
//! with `resourceVersion=0` and for the initial ADDED events of a new watch, and (2) a bounded
//! history of recent events, so a client that reconnects with the last resourceVersion it saw
//! gets exactly the events after it. A resourceVersion older than that history is "too old":
//! the client gets 410 Expired and relists. `handlers/watch.rs` turns a subscription into
//! the HTTP stream.
//!
//! Writes made through this server are announced first ([`WatchCache::expect_write`]): when
//! etcd's event carries exactly the announced bytes, the cache takes the object the handler
//! already built instead of parsing etcd's copy again (kube-apiserver's cacher decodes every
//! event; here a create costs one decode less).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use etcd_client::{EventType as EtcdEventType, WatchOptions};
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

use crate::storage::{self, Storage, StorageError};

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    /// The watch event `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change to one object, as etcd reported it.
#[derive(Debug)]
pub struct CacheEvent {
    pub kind: EventType,
    /// Full etcd key; namespace filtering is a key-prefix test.
    pub key: String,
    /// The object after the change (for a delete: the last state, stamped with the delete's
    /// revision).
    pub object: Arc<Value>,
    /// The object before the change, used to turn selector transitions into ADDED/DELETED.
    pub prev: Option<Arc<Value>>,
    pub revision: i64,
    /// The event's wire line per type (ADDED, MODIFIED, DELETED) in the plain object view,
    /// encoded by the first watcher that needs it and shared by the rest: a thousand watchers
    /// cost one serialization, not a thousand (kube-apiserver's `cachingObject` does the same).
    wire: [OnceLock<Bytes>; 3],
}

impl CacheEvent {
    /// A new event; its wire lines are encoded on first use.
    pub fn new(
        kind: EventType,
        key: String,
        object: Arc<Value>,
        prev: Option<Arc<Value>>,
        revision: i64,
    ) -> CacheEvent {
        CacheEvent {
            kind,
            key,
            object,
            prev,
            revision,
            wire: Default::default(),
        }
    }

    /// The wire line of this event sent as `kind`, encoded with `encode` once.
    pub fn wire_line(&self, kind: EventType, encode: impl FnOnce() -> Bytes) -> Bytes {
        self.wire[kind as usize].get_or_init(encode).clone()
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Notification {
    Event(Arc<CacheEvent>),
    /// The cache has seen every event up to this revision (drives BOOKMARKs).
    Progress(i64),
}

/// A new watcher's starting point: the events to send first, then the live feed.
pub struct Subscription {
    pub initial: Vec<Arc<CacheEvent>>,
    pub live: broadcast::Receiver<Notification>,
    /// Events with a revision at or below this are already covered by `initial`.
    pub after: i64,
}

/// The requested resourceVersion is older than the kept history.
#[derive(Debug, thiserror::Error)]
#[error("too old resource version: {requested} ({oldest})")]
pub struct TooOld {
    pub requested: i64,
    pub oldest: i64,
}

struct State {
    objects: BTreeMap<String, Arc<Value>>,
    history: VecDeque<Arc<CacheEvent>>,
    /// Every event with a revision above `since` is in `history`.
    since: i64,
    /// Last revision applied.
    revision: i64,
    tx: broadcast::Sender<Notification>,
}

/// A write announced by a handler: the bytes it is putting at a key and their decoded form.
struct Expected {
    /// Tells this announcement from a later one for the same key (two creates racing).
    token: u64,
    bytes: Vec<u8>,
    /// The object without resourceVersion (stamped when the event arrives).
    object: Value,
}

/// The cache of one storage directory (`/registry/pods/`).
pub struct WatchCache {
    prefix: String,
    capacity: usize,
    state: Mutex<State>,
    ready: watch::Sender<bool>,
    /// Writes in flight through this server, by key (see [`WatchCache::expect_write`]).
    expected: Mutex<HashMap<String, Expected>>,
    next_token: AtomicU64,
}

const FANOUT_BUFFER: usize = 8192;

/// Announced writes kept at most; past that (a reflector that stopped taking them) they are
/// dropped, and events are simply decoded.
const MAX_EXPECTED: usize = 4096;

/// An announced write (see [`WatchCache::expect_write`]); withdrawn when dropped unless
/// [`ExpectedWrite::committed`] was called.
pub struct ExpectedWrite<'a> {
    cache: &'a WatchCache,
    key: String,
    token: u64,
}

impl ExpectedWrite<'_> {
    /// The write is in etcd: leave the object for the reflector to take with the event.
    pub fn committed(self) {
        std::mem::forget(self);
    }

    /// Withdraw the announcement and get the object back (the write lost, e.g. to an existing
    /// key); `None` if the reflector already took it.
    pub fn withdraw(self) -> Option<Value> {
        let taken = self.cache.withdraw(&self.key, self.token);
        std::mem::forget(self);
        taken
    }
}

impl Drop for ExpectedWrite<'_> {
    fn drop(&mut self) {
        self.cache.withdraw(&self.key, self.token);
    }
}

impl WatchCache {
    /// Create the cache for `prefix` and start its reflector task.
    pub fn start(storage: Storage, prefix: String, capacity: usize) -> Arc<WatchCache> {
        let (tx, _) = broadcast::channel(FANOUT_BUFFER);
        let (ready, _) = watch::channel(false);
        let cache = Arc::new(WatchCache {
            prefix,
            capacity: capacity.max(1),
            state: Mutex::new(State {
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                since: 0,
                revision: 0,
                tx,
            }),
            ready,
            expected: Mutex::new(HashMap::new()),
            next_token: AtomicU64::new(0),
        });
        tokio::spawn(reflect(cache.clone(), storage));
        cache
    }

    /// Announce that `bytes` (the encoded `object`, without resourceVersion) are about to be
    /// put at `key` by this server. Call it before sending the write: when the reflector sees
    /// a put of exactly these bytes at `key`, it stamps and keeps `object` instead of decoding
    /// the event. Byte equality is the proof, so a racing write by anyone else is decoded as
    /// usual. Keep the guard until the write's outcome is known.
    pub fn expect_write(&self, key: &str, bytes: Vec<u8>, object: Value) -> ExpectedWrite<'_> {
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let mut expected = self.expected.lock().unwrap();
        if expected.len() >= MAX_EXPECTED {
            expected.clear();
        }
        expected.insert(
            key.to_string(),
            Expected {
                token,
                bytes,
                object,
            },
        );
        ExpectedWrite {
            cache: self,
            key: key.to_string(),
            token,
        }
    }

    fn withdraw(&self, key: &str, token: u64) -> Option<Value> {
        let mut expected = self.expected.lock().unwrap();
        match expected.get(key) {
            Some(e) if e.token == token => expected.remove(key).map(|e| e.object),
            _ => None,
        }
    }

    /// The announced object for a put of `value` at `key`, if this server announced exactly it.
    fn take_expected(&self, key: &str, value: &[u8]) -> Option<Value> {
        let mut expected = self.expected.lock().unwrap();
        if expected.is_empty() {
            return None;
        }
        match expected.get(key) {
            Some(e) if e.bytes == value => expected.remove(key).map(|e| e.object),
            _ => None,
        }
    }

    /// Wait until the first list has been loaded.
    pub async fn wait_ready(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Whether the first list has been loaded.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Current objects whose key starts with `key_prefix`, and the cache revision.
    pub fn snapshot(&self, key_prefix: &str) -> (Vec<Arc<Value>>, i64) {
        let st = self.state.lock().unwrap();
        let items = st
            .objects
            .range(key_prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(key_prefix))
            .map(|(_, v)| v.clone())
            .collect();
        (items, st.revision)
    }

    /// One object by key.
    pub fn get(&self, key: &str) -> Option<Arc<Value>> {
        self.state.lock().unwrap().objects.get(key).cloned()
    }

    /// The last revision this cache has applied.
    pub fn revision(&self) -> i64 {
        self.state.lock().unwrap().revision
    }

    /// Wait until this cache has applied `revision` (at most `timeout`; false if it has not),
    /// so that a read of the cache right after a write through this server sees the write.
    pub async fn wait_for_revision(&self, revision: i64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.revision() < revision {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Start a watch. `from` = None (resourceVersion "" or "0"): ADDED events for every
    /// current object under `key_prefix`, then changes. `from` = Some(rv): every change after
    /// rv, or `TooOld` if the history does not reach back that far.
    pub fn subscribe(&self, key_prefix: &str, from: Option<i64>) -> Result<Subscription, TooOld> {
        let st = self.state.lock().unwrap();
        // Subscribing under the lock means no event falls between the replay and the feed.
        let live = st.tx.subscribe();
        match from {
            None => {
                let initial = st
                    .objects
                    .range(key_prefix.to_string()..)
                    .take_while(|(k, _)| k.starts_with(key_prefix))
                    .map(|(k, v)| {
                        Arc::new(CacheEvent::new(
                            EventType::Added,
                            k.clone(),
                            v.clone(),
                            None,
                            resource_version_of(v),
                        ))
                    })
                    .collect();
                Ok(Subscription {
                    initial,
                    live,
                    after: st.revision,
                })
            }
            Some(rv) => {
                if rv < st.since {
                    return Err(TooOld {
                        requested: rv,
                        oldest: st.since,
                    });
                }
                let initial = st
                    .history
                    .iter()
                    .filter(|e| e.revision > rv && e.key.starts_with(key_prefix))
                    .cloned()
                    .collect();
                Ok(Subscription {
                    initial,
                    live,
                    after: st.revision.max(rv),
                })
            }
        }
    }

    /// Load the whole prefix and reset history; existing watchers are ended (they reconnect).
    fn reset(&self, items: Vec<storage::Stored>, revision: i64) {
        let mut st = self.state.lock().unwrap();
        st.objects = items
            .into_iter()
            .map(|s| (s.key, Arc::new(s.object)))
            .collect();
        st.history.clear();
        st.since = revision;
        st.revision = revision;
        // Dropping the old sender closes every receiver: watchers end and re-watch.
        let (tx, _) = broadcast::channel(FANOUT_BUFFER);
        st.tx = tx;
        drop(st);
        // Announced writes older than the list are in it; newer ones arrive as events and
        // are decoded.
        self.expected.lock().unwrap().clear();
        self.ready.send_replace(true);
    }

    fn apply(&self, event: CacheEvent) {
        let mut st = self.state.lock().unwrap();
        let event = Arc::new(event);
        match event.kind {
            EventType::Deleted => {
                st.objects.remove(&event.key);
            }
            _ => {
                st.objects.insert(event.key.clone(), event.object.clone());
            }
        }
        st.revision = st.revision.max(event.revision);
        st.history.push_back(event.clone());
        while st.history.len() > self.capacity {
            if let Some(old) = st.history.pop_front() {
                st.since = old.revision;
            }
        }
        let _ = st.tx.send(Notification::Event(event));
    }

    fn progress(&self, revision: i64) {
        let mut st = self.state.lock().unwrap();
        st.revision = st.revision.max(revision);
        let rev = st.revision;
        let _ = st.tx.send(Notification::Progress(rev));
    }
}

/// `metadata.resourceVersion` as a number (0 if absent).
pub fn resource_version_of(obj: &Value) -> i64 {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The reflector: list, then watch from the list's revision; relist when etcd has compacted
/// past where we are; reconnect with back-off when etcd goes away.
async fn reflect(cache: Arc<WatchCache>, storage: Storage) {
    let mut backoff = Duration::from_millis(100);
    let mut failures = 0u32;
    loop {
        let page = match storage.list(&cache.prefix, None, 0, 0).await {
            Ok(p) => p,
            Err(e) => {
                // Say it once, then every ~minute: etcd being away is one event, not hundreds.
                if failures.is_multiple_of(30) {
                    warn!(prefix = %cache.prefix, error = %e, failures, "watch cache list failed; retrying");
                }
                failures += 1;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        if failures > 0 {
            info!(prefix = %cache.prefix, failures, "etcd is back; watch cache reloaded");
        }
        failures = 0;
        backoff = Duration::from_millis(100);
        debug!(prefix = %cache.prefix, items = page.items.len(), revision = page.revision, "watch cache loaded");
        cache.reset(page.items, page.revision);
        match watch_from(&cache, &storage, page.revision + 1).await {
            WatchEnd::Compacted => {
                info!(prefix = %cache.prefix, "etcd compacted past the cache; relisting")
            }
            WatchEnd::Broken(e) => {
                warn!(prefix = %cache.prefix, error = %e, "etcd watch broke; relisting");
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

enum WatchEnd {
    Compacted,
    Broken(String),
}

/// Follow etcd from `start`, reconnecting in place while the history is still there.
async fn watch_from(cache: &WatchCache, storage: &Storage, mut start: i64) -> WatchEnd {
    let mut client = storage.client();
    let mut failures = 0u32;
    loop {
        // No `prev_kv`: the cache already holds every key's previous state (it has applied
        // every event before this one), and asking etcd for it costs etcd a read per event.
        let opts = WatchOptions::new().with_prefix().with_start_revision(start);
        let (mut sender, mut stream) = match client.watch(cache.prefix.as_str(), Some(opts)).await {
            Ok(s) => s.split(),
            Err(e) => {
                failures += 1;
                if failures > 50 {
                    return WatchEnd::Broken(e.to_string());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        failures = 0;
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                msg = stream.message() => {
                    let resp = match msg {
                        Ok(Some(r)) => r,
                        Ok(None) => break,
                        Err(e) => {
                            if let StorageError::Compacted { .. } = storage::classify(e) {
                                return WatchEnd::Compacted;
                            }
                            break;
                        }
                    };
                    if resp.canceled() {
                        if resp.compact_revision() > 0 {
                            return WatchEnd::Compacted;
                        }
                        return WatchEnd::Broken(resp.cancel_reason().to_string());
                    }
                    let header_rev = resp.header().map(|h| h.revision()).unwrap_or(0);
                    if resp.events().is_empty() {
                        if !resp.created() && header_rev > 0 {
                            cache.progress(header_rev);
                        }
                        continue;
                    }
                    for ev in resp.events() {
                        let Some(kv) = ev.kv() else { continue };
                        let rev = kv.mod_revision();
                        let key = String::from_utf8_lossy(kv.key()).into_owned();
                        let prev = cache.get(&key);
                        let event = match ev.event_type() {
                            EtcdEventType::Put => {
                                let object = match cache.take_expected(&key, kv.value()) {
                                    Some(mut object) => {
                                        storage::set_resource_version(&mut object, rev);
                                        object
                                    }
                                    None => match storage::decode(kv.key(), kv.value(), rev) {
                                        Ok(s) => s.object,
                                        Err(_) => {
                                            warn!(%key, "undecodable value in etcd; skipped");
                                            continue;
                                        }
                                    },
                                };
                                let kind = if kv.create_revision() == rev { EventType::Added } else { EventType::Modified };
                                CacheEvent::new(kind, key, Arc::new(object), prev, rev)
                            }
                            EtcdEventType::Delete => {
                                // etcd's delete event has an empty value: the last object is the cached one.
                                let Some(prev) = prev else { continue };
                                let mut last = (*prev).clone();
                                storage::set_resource_version(&mut last, rev);
                                CacheEvent::new(EventType::Deleted, key, Arc::new(last), Some(prev), rev)
                            }
                        };
                        start = rev + 1;
                        cache.apply(event);
                    }
                }
                _ = ticker.tick() => {
                    // Ask etcd to confirm how far we are; the answer arrives as a progress
                    // notification and becomes a BOOKMARK for watchers that want them.
                    if sender.request_progress().await.is_err() {
                        break;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
