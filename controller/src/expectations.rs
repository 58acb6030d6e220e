//! Expectations: what a controller has asked for but not yet seen in its watch cache.
//!
//! A ReplicaSet controller that creates 3 pods and is woken again before its cache shows them
//! would count 0 pods and create 3 more. So before each write it records the pod names it
//! created and the pod uids it deleted, and does not sync that ReplicaSet again until the
//! cache shows every created pod and none of the deleted ones (or the expectation times out,
//! in case a watch event was lost). This is client-go's `ControllerExpectations`, kept
//! level-based: satisfaction is checked against the cache, not counted from events.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an unmet expectation blocks syncing (upstream: 5 minutes).
pub const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
struct Pending {
    /// Names of pods created but not yet seen in the cache.
    adds: HashSet<String>,
    /// Uids of pods deleted but still in the cache (without deletionTimestamp).
    dels: HashSet<String>,
    since: Option<Instant>,
}

/// Pending creations and deletions per controller key (`namespace/name`). Cheap to clone.
#[derive(Debug, Default, Clone)]
pub struct Expectations {
    inner: Arc<Mutex<HashMap<String, Pending>>>,
}

impl Expectations {
    /// Remember that pod `name` is being created for `key`.
    pub fn expect_creation(&self, key: &str, name: &str) {
        let mut m = self.inner.lock().unwrap();
        let p = m.entry(key.to_string()).or_default();
        p.adds.insert(name.to_string());
        p.since.get_or_insert_with(Instant::now);
    }

    /// A creation failed (or was observed gone): stop waiting for it.
    pub fn creation_observed(&self, key: &str, name: &str) {
        if let Some(p) = self.inner.lock().unwrap().get_mut(key) {
            p.adds.remove(name);
        }
    }

    /// Remember that the pod with `uid` is being deleted for `key`.
    pub fn expect_deletion(&self, key: &str, uid: &str) {
        let mut m = self.inner.lock().unwrap();
        let p = m.entry(key.to_string()).or_default();
        p.dels.insert(uid.to_string());
        p.since.get_or_insert_with(Instant::now);
    }

    /// A deletion failed: stop waiting for it.
    pub fn deletion_observed(&self, key: &str, uid: &str) {
        if let Some(p) = self.inner.lock().unwrap().get_mut(key) {
            p.dels.remove(uid);
        }
    }

    /// Check `key`'s expectations against the cache: `seen(name)` says whether a created pod
    /// is in the cache, `alive(uid)` whether a deleted pod is still there and not terminating.
    /// Returns true when the controller may sync (nothing pending, or timed out).
    pub fn satisfied(
        &self,
        key: &str,
        seen: impl Fn(&str) -> bool,
        alive: impl Fn(&str) -> bool,
    ) -> bool {
        let mut m = self.inner.lock().unwrap();
        let Some(p) = m.get_mut(key) else { return true };
        p.adds.retain(|n| !seen(n));
        p.dels.retain(|u| alive(u));
        let expired = p.since.is_some_and(|s| s.elapsed() > EXPECTATION_TIMEOUT);
        if (p.adds.is_empty() && p.dels.is_empty()) || expired {
            m.remove(key);
            return true;
        }
        false
    }

    /// Forget everything about `key` (the owner is gone).
    pub fn forget(&self, key: &str) {
        self.inner.lock().unwrap().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unseen_creations_and_unfinished_deletions_block_syncing() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/rs", |_| false, |_| true));
        e.expect_creation("ns/rs", "rs-a");
        e.expect_deletion("ns/rs", "uid-1");
        assert!(!e.satisfied("ns/rs", |_| false, |_| true));
        assert!(
            !e.satisfied("ns/rs", |n| n == "rs-a", |_| true),
            "the deletion is still pending"
        );
        assert!(
            e.satisfied("ns/rs", |_| false, |_| false),
            "the creation was seen before"
        );
        e.expect_creation("ns/rs", "rs-b");
        e.creation_observed("ns/rs", "rs-b");
        assert!(e.satisfied("ns/rs", |_| false, |_| true));
    }
}
