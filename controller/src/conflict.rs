//! Optimistic concurrency: every object carries a `resourceVersion`, and a write that names one
//! (a patch with `metadata.resourceVersion`, a PUT) fails with `409 Conflict` when someone else
//! wrote first. The copy the sync computed from is stale, usually because the watch cache is
//! behind, and waiting does not make it fresher. So the object is read again live and the
//! sync runs again at once, a few times (client-go's `retry.RetryOnConflict`); a sync that
//! still conflicts, or conflicts on another object (a pod it claims), is requeued at once.
//! Read next: `node_lifecycle.rs`, which uses both.

use std::fmt::{Debug, Display};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kube::api::Api;
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::debug;

/// How many times a conflicting sync is re-run on a freshly read object.
pub const RETRIES: usize = 3;

/// How soon a sync that still ends in a conflict runs again (not a back-off: the next run
/// reads the object live or finds the cache caught up).
pub const REQUEUE: Duration = Duration::from_millis(100);

/// Is this the apiserver refusing a write made on a stale copy?
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict")
}

/// An error that may be a 409 Conflict on a stale copy.
pub trait MaybeConflict {
    /// Whether re-reading the object and syncing again may succeed.
    fn is_conflict(&self) -> bool;
}

/// Run `sync` on `obj`; while it fails with a conflict, read the object live from `api` and
/// run it again, at most [`RETRIES`] times. If the object cannot be read, the conflict is
/// returned (the error policy requeues it).
pub async fn retry_on_conflict<K, T, E, F, Fut>(
    api: &Api<K>,
    obj: Arc<K>,
    mut sync: F,
) -> Result<T, E>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    F: FnMut(Arc<K>) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: MaybeConflict + Display,
{
    let mut obj = obj;
    let mut attempt = 0;
    loop {
        match sync(obj.clone()).await {
            Err(e) if e.is_conflict() && attempt < RETRIES => {
                attempt += 1;
                debug!(object = %obj.name_any(), attempt, error = %e, "conflict on a stale copy; reading it again");
                obj = read_again(api, &obj.name_any(), e).await?;
            }
            done => return done,
        }
    }
}

/// The object as the apiserver has it now; `conflict` if it cannot be read.
async fn read_again<K, E>(api: &Api<K>, name: &str, conflict: E) -> Result<Arc<K>, E>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    match api.get(name).await {
        Ok(fresh) => Ok(Arc::new(fresh)),
        Err(error) => {
            debug!(object = %name, %error, "cannot read the object again");
            Err(conflict)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, reason: &str) -> kube::Error {
        let mut s = kube::core::Status::failure("x", reason);
        s.code = code;
        kube::Error::Api(Box::new(s))
    }

    #[test]
    fn a_conflict_is_409_conflict_not_already_exists() {
        assert!(is_conflict(&status(409, "Conflict")));
        assert!(!is_conflict(&status(409, "AlreadyExists")));
        assert!(!is_conflict(&status(404, "NotFound")));
    }
}
