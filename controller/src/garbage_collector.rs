//! The garbage collector: deleting an owner deletes (or orphans) what it owns.
//!
//! Ownership is `metadata.ownerReferences` on the dependent. The apiserver records *how* the
//! owner is being deleted: `Background` removes the owner at once and we delete dependents
//! whose owners are all gone; `Foreground` leaves the owner with `deletionTimestamp` and the
//! `foregroundDeletion` finalizer until we have deleted its blocking dependents; `Orphan` leaves
//! the `orphan` finalizer until we have removed the ownerReferences from its dependents.
//! The graph is rebuilt from watch caches on every sweep: level-triggered.

use std::collections::HashMap;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PropagationPolicy,
};
use kube::runtime::reflector::{self, store::Writer, Store};
use kube::runtime::WatchStreamExt;
use kube::ResourceExt;
use serde_json::json;
use tracing::{debug, info, instrument, warn};

/// What can fail in one step of a sweep (logged; the next sweep retries).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Deleting a dependent failed.
    #[error("deleting {kind} {name}: {source}")]
    DeleteDependent {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    /// Removing an ownerReference or a finalizer failed.
    #[error("updating {kind} {name}: {source}")]
    Update {
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// The kinds whose ownership the collector follows (owners and dependents). A Service owns
/// the EndpointSlices the endpointslice controller writes for it.
fn kinds() -> Vec<ApiResource> {
    use k8s_openapi::api::{apps::v1 as apps, core::v1 as core, discovery::v1 as discovery};
    vec![
        ApiResource::erase::<core::Pod>(&()),
        ApiResource::erase::<apps::ReplicaSet>(&()),
        ApiResource::erase::<apps::Deployment>(&()),
        ApiResource::erase::<core::Service>(&()),
        ApiResource::erase::<discovery::EndpointSlice>(&()),
    ]
}

/// One object in the graph.
struct Node {
    ar: ApiResource,
    obj: std::sync::Arc<DynamicObject>,
}

/// Run the garbage collector until the future is dropped.
pub async fn run(client: kube::Client) {
    let mut stores: Vec<(ApiResource, Store<DynamicObject>)> = Vec::new();
    let mut streams = Vec::new();
    for ar in kinds() {
        let writer = Writer::new(ar.clone());
        stores.push((ar.clone(), writer.as_reader()));
        let api = Api::<DynamicObject>::all_with(client.clone(), &ar);
        streams.push(
            reflector::reflector(writer, crate::cache::watch(api))
                .touched_objects()
                .map(|_| ())
                .boxed(),
        );
    }
    let mut events = futures::stream::select_all(streams);
    // No waiting for full caches: a dependent whose owner is missing from a half-filled cache
    // is only collected after a live GET confirms the owner is gone.
    loop {
        // Wait for a change (or a periodic resync), then take every change already queued.
        tokio::select! {
            _ = events.next() => {}
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
        while let Some(Some(_)) = events.next().now_or_never() {}
        sweep(&client, &stores).await;
    }
}

fn api_for(client: &kube::Client, ar: &ApiResource, ns: Option<&str>) -> Api<DynamicObject> {
    match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

/// One pass over the ownership graph.
#[instrument(skip_all)]
async fn sweep(client: &kube::Client, stores: &[(ApiResource, Store<DynamicObject>)]) {
    let mut by_uid: HashMap<String, Node> = HashMap::new();
    for (ar, store) in stores {
        for obj in store.state() {
            by_uid.insert(
                obj.uid().unwrap_or_default(),
                Node {
                    ar: ar.clone(),
                    obj,
                },
            );
        }
    }
    let mut dependents: HashMap<&str, Vec<&Node>> = HashMap::new();
    for n in by_uid.values() {
        for r in n.obj.owner_references() {
            dependents.entry(r.uid.as_str()).or_default().push(n);
        }
    }
    for owner in by_uid
        .values()
        .filter(|n| n.obj.metadata.deletion_timestamp.is_some())
    {
        let deps = dependents
            .get(owner.obj.uid().unwrap_or_default().as_str())
            .cloned()
            .unwrap_or_default();
        let finalizers = owner.obj.finalizers();
        let result = if finalizers.iter().any(|f| f == "orphan") {
            orphan(client, owner, &deps).await
        } else if finalizers.iter().any(|f| f == "foregroundDeletion") {
            foreground(client, owner, &deps).await
        } else {
            Ok(())
        };
        if let Err(e) = result {
            warn!(error = %e, "garbage collection step failed");
        }
    }
    // Background: dependents all of whose owners are gone.
    for n in by_uid.values() {
        let refs = n.obj.owner_references();
        if refs.is_empty() || n.obj.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if refs.iter().any(|r| by_uid.contains_key(&r.uid)) {
            continue;
        }
        if let Err(e) = delete_if_dangling(client, n).await {
            warn!(error = %e, "garbage collection step failed");
        }
    }
}

/// The cache says every owner is gone; confirm with the apiserver (the owner may be too new for
/// our cache) before deleting.
async fn delete_if_dangling(client: &kube::Client, n: &Node) -> Result<(), Error> {
    let ns = n.obj.namespace();
    for r in n.obj.owner_references() {
        let Some(ar) = kinds()
            .into_iter()
            .find(|ar| ar.kind == r.kind && ar.api_version == r.api_version)
        else {
            // An owner kind we do not follow: assume it exists.
            return Ok(());
        };
        match api_for(client, &ar, ns.as_deref()).get_opt(&r.name).await {
            Ok(Some(o)) if o.uid().as_deref() == Some(r.uid.as_str()) => return Ok(()),
            Ok(_) => {}
            Err(e) => {
                debug!(error = %e, "cannot confirm owner; not collecting");
                return Ok(());
            }
        }
    }
    info!(kind = %n.ar.kind, name = %n.obj.name_any(), "deleting dependent whose owners are gone");
    delete(client, n, PropagationPolicy::Background).await
}

async fn delete(client: &kube::Client, n: &Node, policy: PropagationPolicy) -> Result<(), Error> {
    let api = api_for(client, &n.ar, n.obj.namespace().as_deref());
    let dp = DeleteParams {
        propagation_policy: Some(policy),
        preconditions: None,
        ..Default::default()
    };
    match api.delete(&n.obj.name_any(), &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(source) => Err(Error::DeleteDependent {
            kind: n.ar.kind.clone(),
            name: n.obj.name_any(),
            source,
        }),
    }
}

/// Foreground: delete the dependents (themselves in the foreground, so the chain unwinds bottom
/// up); once no dependent with `blockOwnerDeletion` is left, drop the finalizer.
async fn foreground(client: &kube::Client, owner: &Node, deps: &[&Node]) -> Result<(), Error> {
    let uid = owner.obj.uid().unwrap_or_default();
    let mut blocking = 0;
    for d in deps {
        let blocks = d
            .obj
            .owner_references()
            .iter()
            .any(|r| r.uid == uid && r.block_owner_deletion == Some(true));
        if blocks {
            blocking += 1;
        }
        if d.obj.metadata.deletion_timestamp.is_none() {
            delete(client, d, PropagationPolicy::Foreground).await?;
        }
    }
    if blocking == 0 {
        info!(kind = %owner.ar.kind, name = %owner.obj.name_any(), "dependents gone; finishing foreground deletion");
        remove_finalizer(client, owner, "foregroundDeletion").await?;
    }
    Ok(())
}

/// Orphan: take the owner's reference off every dependent, then drop the finalizer.
async fn orphan(client: &kube::Client, owner: &Node, deps: &[&Node]) -> Result<(), Error> {
    let uid = owner.obj.uid().unwrap_or_default();
    for d in deps {
        let refs: Vec<_> = d
            .obj
            .owner_references()
            .iter()
            .filter(|r| r.uid != uid)
            .cloned()
            .collect();
        let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": d.obj.resource_version()}});
        let api = api_for(client, &d.ar, d.obj.namespace().as_deref());
        match api
            .patch(
                &d.obj.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => {
                return Err(Error::Update {
                    kind: d.ar.kind.clone(),
                    name: d.obj.name_any(),
                    source,
                })
            }
        }
    }
    info!(kind = %owner.ar.kind, name = %owner.obj.name_any(), orphaned = deps.len(), "dependents orphaned");
    remove_finalizer(client, owner, "orphan").await
}

async fn remove_finalizer(client: &kube::Client, n: &Node, finalizer: &str) -> Result<(), Error> {
    let rest: Vec<String> = n
        .obj
        .finalizers()
        .iter()
        .filter(|f| *f != finalizer)
        .cloned()
        .collect();
    let patch =
        json!({"metadata": {"finalizers": rest, "resourceVersion": n.obj.resource_version()}});
    let api = api_for(client, &n.ar, n.obj.namespace().as_deref());
    match api
        .patch(
            &n.obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(source) => Err(Error::Update {
            kind: n.ar.kind.clone(),
            name: n.obj.name_any(),
            source,
        }),
    }
}
