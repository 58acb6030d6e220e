//! The namespace controller: empty a Terminating namespace, then let it go.
//!
//! `kubectl delete namespace x` only marks the namespace (deletionTimestamp, phase Terminating);
//! its `spec.finalizers` holds `kubernetes`, which is this controller's promise to delete every
//! object inside first. When the namespace is empty we `PUT namespaces/x/finalize` without that
//! finalizer and the apiserver removes the namespace. The resources to empty come from discovery.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, PostParams, PropagationPolicy,
};
use kube::discovery::{verbs, Discovery, Scope};
use kube::runtime::controller::Action;
use kube::ResourceExt;
use tracing::{info, instrument, warn};

use crate::conflict::{self, MaybeConflict};

/// The finalizer this controller owns on every namespace.
pub const FINALIZER: &str = "kubernetes";

/// What can fail while emptying a namespace.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Discovery of the served resources failed.
    #[error("discovering resources: {0}")]
    Discovery(#[source] kube::Error),
    /// Deleting or listing the objects of one resource failed.
    #[error("deleting {resource} in namespace {namespace}: {source}")]
    DeleteCollection {
        resource: String,
        namespace: String,
        #[source]
        source: kube::Error,
    },
    /// The finalize call failed.
    #[error("finalizing namespace {namespace}: {source}")]
    Finalize {
        namespace: String,
        #[source]
        source: kube::Error,
    },
}

/// Shared by every sync.
pub struct Context {
    pub client: kube::Client,
}

/// Run the namespace controller until the future is dropped.
pub async fn run(client: kube::Client) {
    crate::cache::controller(Api::<Namespace>::all(client.clone()))
        .run(reconcile, error_policy, Arc::new(Context { client }))
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// Requeue after a failure: at once after a conflict, else with a short delay.
pub fn error_policy(ns: Arc<Namespace>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!(namespace = %ns.name_any(), error = %err, "sync failed; retrying");
    if err.is_conflict() {
        return Action::requeue(conflict::REQUEUE);
    }
    Action::requeue(Duration::from_secs(2))
}

impl MaybeConflict for Error {
    fn is_conflict(&self) -> bool {
        matches!(self, Error::Finalize { source, .. } if conflict::is_conflict(source))
    }
}

/// Namespaced resources that can be listed and deleted as a collection.
async fn namespaced_resources(client: &kube::Client) -> Result<Vec<ApiResource>, Error> {
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .map_err(Error::Discovery)?;
    let mut out = Vec::new();
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if caps.scope == Scope::Namespaced
                && caps.supports_operation(verbs::DELETE_COLLECTION)
                && caps.supports_operation(verbs::LIST)
            {
                out.push(ar);
            }
        }
    }
    // Owners first, so their controllers do not recreate what we just deleted.
    out.sort_by_key(|ar| match ar.plural.as_str() {
        "deployments" => 0,
        "replicasets" => 1,
        "pods" => 2,
        _ => 3,
    });
    Ok(out)
}

/// One sync of one namespace. The finalize call names the resourceVersion we read; if our copy
/// was stale (409), the namespace is read again and the sync runs again at once.
#[instrument(skip_all, fields(namespace = %ns.name_any()))]
pub async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action, Error> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    conflict::retry_on_conflict(&api, ns, |ns| empty_and_finalize(ns, ctx.clone())).await
}

/// Delete everything in a Terminating namespace, then drop our finalizer.
async fn empty_and_finalize(ns: Arc<Namespace>, ctx: Arc<Context>) -> Result<Action, Error> {
    let name = ns.name_any();
    let ours = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER));
    if ns.metadata.deletion_timestamp.is_none() || !ours {
        return Ok(Action::await_change());
    }
    let mut remaining = 0;
    for ar in namespaced_resources(&ctx.client).await? {
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &name, &ar);
        let fail = |source| Error::DeleteCollection {
            resource: ar.plural.clone(),
            namespace: name.clone(),
            source,
        };
        let left = api
            .list_metadata(&ListParams::default())
            .await
            .map_err(fail)?;
        if left.items.is_empty() {
            continue;
        }
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        api.delete_collection(&dp, &ListParams::default())
            .await
            .map_err(fail)?;
        let left = api
            .list_metadata(&ListParams::default())
            .await
            .map_err(fail)?;
        remaining += left.items.len();
    }
    if remaining > 0 {
        info!(remaining, "waiting for objects to go");
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let mut finalized = (*ns).clone();
    if let Some(spec) = finalized.spec.as_mut() {
        spec.finalizers = Some(
            spec.finalizers
                .take()
                .unwrap_or_default()
                .into_iter()
                .filter(|f| f != FINALIZER)
                .collect(),
        );
    }
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    match api
        .replace_subresource("finalize", &name, &PostParams::default(), &finalized)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(source) => {
            return Err(Error::Finalize {
                namespace: name,
                source,
            })
        }
    }
    info!("namespace emptied and finalized");
    Ok(Action::await_change())
}
