//! The EndpointSlice controller: a Service's endpoints are the pods its selector matches.
//!
//! A Service is a stable name and virtual IP in front of pods that come and go. Proxies and DNS
//! do not evaluate selectors themselves: they read *EndpointSlices* (discovery.k8s.io/v1), in
//! which this controller lists, for each Service with a selector, the matching pods' IPs, their
//! readiness, the node they run on, and the port each Service port reaches on them. It also
//! keeps the older core/v1 *Endpoints* object of the same name, which `kubectl describe svc`
//! shows (kube-controller-manager runs two controllers for the two; here one sync of a Service
//! writes both, from the same caches).
//!
//! A sync is level-triggered: from the pod, slice and Endpoints caches it computes what the
//! Service should have (`slices.rs`, `endpoints.rs`; which pods and ports in `pods.rs`) and
//! writes only what differs, so an unchanged Service costs no write. It is woken by the Service,
//! by any pod its selector matches or its slices list, and by its own slices and Endpoints
//! (someone else's edit or deletion is undone).
//!
//! Simplifications: one slice per distinct list of ports, however many endpoints (upstream
//! splits at `--max-endpoints-per-slice`, 100); IPv4 only; no topology (zone, hints) and no
//! `endpoints.kubernetes.io/last-change-trigger-time` annotation. A Service's slices are
//! deleted with it by the garbage collector (they are owned by it); its Endpoints object,
//! which has no owner, is deleted here once the Service is confirmed gone. Read next: `pods.rs`.

mod endpoints;
mod pods;
mod slices;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{EndpointSubset, Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::ResourceExt;
use tokio::sync::Notify;
use tracing::{debug, info, instrument, warn};

pub use slices::{CONTROLLER_NAME, MANAGED_BY_LABEL, SERVICE_NAME_LABEL};

use crate::cache::{self, has_synced};
use crate::conflict::{self, MaybeConflict};
use crate::expectations::Expectations;

/// How often Endpoints left behind by deleted Services are looked for, besides right after a
/// Service is deleted.
const LEFTOVER_SWEEP: Duration = Duration::from_secs(30);

/// The annotation of an Endpoints object used as a leader-election lock by old components:
/// it has no Service and must not be deleted as a leftover.
const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";

/// What can fail while syncing a Service's endpoints.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Creating an EndpointSlice failed.
    #[error("creating an endpointslice for service {service}: {source}")]
    CreateSlice {
        service: String,
        #[source]
        source: kube::Error,
    },
    /// Rewriting an EndpointSlice failed (a 409 when the cache was behind).
    #[error("updating endpointslice {slice}: {source}")]
    UpdateSlice {
        slice: String,
        #[source]
        source: kube::Error,
    },
    /// Deleting an EndpointSlice no longer needed failed.
    #[error("deleting endpointslice {slice}: {source}")]
    DeleteSlice {
        slice: String,
        #[source]
        source: kube::Error,
    },
    /// Creating or updating the Service's Endpoints object failed.
    #[error("writing the endpoints of service {service}: {source}")]
    WriteEndpoints {
        service: String,
        #[source]
        source: kube::Error,
    },
    /// Deleting the Endpoints object of a deleted Service failed.
    #[error("deleting the endpoints of deleted service {service}: {source}")]
    DeleteEndpoints {
        service: String,
        #[source]
        source: kube::Error,
    },
}

impl MaybeConflict for Error {
    /// A 409 on an update (stale resourceVersion) or on creating the Endpoints (it exists, the
    /// cache does not show it yet): the next sync, on a fresher cache, may succeed.
    fn is_conflict(&self) -> bool {
        match self {
            Error::UpdateSlice { source, .. } | Error::WriteEndpoints { source, .. } => {
                matches!(source, kube::Error::Api(s) if s.code == 409)
            }
            _ => false,
        }
    }
}

/// Shared by every sync.
pub struct Context {
    pub client: kube::Client,
    /// All pods, from the watch.
    pub pods: Store<Pod>,
    /// All EndpointSlices, from the watch.
    pub slices: Store<EndpointSlice>,
    /// All Endpoints objects, from the watch.
    pub endpoints: Store<Endpoints>,
    /// Slices created or deleted but not yet seen so by the slice cache, per Service.
    pub expectations: Expectations,
}

fn key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

/// Run the EndpointSlice controller until the future is dropped. Until the apiserver serves
/// Services, its watches log that once and retry with a back-off (`cache::watch`).
pub async fn run(client: kube::Client) {
    let (pods, pod_writer) = reflector::store::<Pod>();
    let (slices, slice_writer) = reflector::store::<EndpointSlice>();
    let (endpoints, endpoints_writer) = reflector::store::<Endpoints>();
    let (services, service_writer) = reflector::store::<Service>();
    let expectations = Expectations::default();
    let service_gone = Arc::new(Notify::new());

    let forget = (expectations.clone(), service_gone.clone());
    let service_events = reflector::reflector(
        service_writer,
        cache::watch(Api::<Service>::all(client.clone())),
    )
    .inspect(move |ev| {
        if let Ok(watcher::Event::Delete(svc)) = ev {
            forget
                .0
                .forget(&key(&svc.namespace().unwrap_or_default(), &svc.name_any()));
            forget.1.notify_one();
        }
    })
    .applied_objects();
    // Each cache is updated before the controller is triggered, so a sync woken by an event
    // sees it; deletions wake the Service too (`touched_objects`).
    let pod_events =
        reflector::reflector(pod_writer, cache::watch(Api::<Pod>::all(client.clone())))
            .touched_objects();
    let slice_events = reflector::reflector(
        slice_writer,
        cache::watch(Api::<EndpointSlice>::all(client.clone())),
    )
    .touched_objects();
    let endpoints_events = reflector::reflector(
        endpoints_writer,
        cache::watch(Api::<Endpoints>::all(client.clone())),
    )
    .touched_objects();

    let ctx = Arc::new(Context {
        client,
        pods,
        slices: slices.clone(),
        endpoints,
        expectations,
    });
    let by_pod = (services.clone(), slices);
    let controller = Controller::for_stream(service_events, services.clone())
        .watches_stream(pod_events, move |p: Pod| {
            services_of_pod(&p, &by_pod.0, &by_pod.1)
        })
        .watches_stream(slice_events, |s: EndpointSlice| service_of_slice(&s))
        .watches_stream(endpoints_events, |e: Endpoints| {
            Some(ObjectRef::new(&e.name_any()).within(&e.namespace().unwrap_or_default()))
        })
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()));
    tokio::select! {
        _ = controller => {}
        _ = sweep_leftovers(&ctx, &services, &service_gone) => {}
    }
}

/// The Services a pod event concerns: those whose selector matches the pod now, and those
/// whose slices list it (its labels may have stopped matching, or it is gone).
fn services_of_pod(
    pod: &Pod,
    services: &Store<Service>,
    slices: &Store<EndpointSlice>,
) -> Vec<ObjectRef<Service>> {
    let ns = pod.namespace().unwrap_or_default();
    let mut names: BTreeSet<String> = services
        .state()
        .iter()
        .filter(|s| s.namespace().as_deref() == Some(&ns))
        .filter(|s| pods::selector(s).is_some_and(|sel| pods::selects(sel, pod)))
        .map(|s| s.name_any())
        .collect();
    let uid = pod.uid();
    for slice in slices.state() {
        let lists_pod = slice
            .endpoints
            .iter()
            .any(|e| e.target_ref.as_ref().and_then(|r| r.uid.as_ref()) == uid.as_ref());
        if slice.namespace().as_deref() == Some(&ns) && lists_pod {
            if let Some(name) = service_of_slice(&slice) {
                names.insert(name.name);
            }
        }
    }
    names
        .into_iter()
        .map(|n| ObjectRef::new(&n).within(&ns))
        .collect()
}

/// The Service a slice of this controller belongs to.
fn service_of_slice(slice: &EndpointSlice) -> Option<ObjectRef<Service>> {
    let labels = slice.labels();
    if labels.get(MANAGED_BY_LABEL).map(String::as_str) != Some(CONTROLLER_NAME) {
        return None;
    }
    let name = labels.get(SERVICE_NAME_LABEL)?;
    Some(ObjectRef::new(name).within(&slice.namespace().unwrap_or_default()))
}

/// Requeue after a failure: at once after a conflict (the next sync reads a fresher cache),
/// else after a short delay.
pub fn error_policy(svc: Arc<Service>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!(service = %svc.name_any(), error = %err, "sync failed; retrying");
    if err.is_conflict() {
        return Action::requeue(conflict::REQUEUE);
    }
    Action::requeue(Duration::from_secs(2))
}

/// One sync of one Service:
/// 1. wait for synced pod, slice and Endpoints caches, and for the slice cache to show the
///    slices earlier syncs created and deleted;
/// 2. a Service without a selector (or ExternalName) gets no slices from us: delete ours;
/// 3. the selected pods → the slices the Service should have → create, update, delete;
/// 4. the selected pods → the Endpoints object → create or update it if it differs.
#[instrument(skip_all, fields(service = %key(&svc.namespace().unwrap_or_default(), &svc.name_any())))]
pub async fn reconcile(svc: Arc<Service>, ctx: Arc<Context>) -> Result<Action, Error> {
    // Step 1. On a half-filled slice cache, a sync would create a second set of slices.
    if !(has_synced(&ctx.pods) && has_synced(&ctx.slices) && has_synced(&ctx.endpoints)) {
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let existing: Vec<Arc<EndpointSlice>> = ctx
        .slices
        .state()
        .into_iter()
        .filter(|s| s.namespace().as_deref() == Some(&ns) && slices::managed_for(s, &name))
        .collect();
    let met = ctx.expectations.satisfied(
        &key(&ns, &name),
        |n| existing.iter().any(|s| s.name_any() == n),
        |u| existing.iter().any(|s| s.uid().as_deref() == Some(u)),
    );
    if !met {
        debug!("waiting for the slice cache to show earlier writes");
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    // Step 2.
    let Some(selector) = pods::selector(&svc) else {
        let plan = slices::Plan {
            delete: existing,
            ..Default::default()
        };
        write_slices(&ctx, &svc, plan).await?;
        return Ok(Action::await_change());
    };
    let selected: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(&ns) && pods::selects(selector, p))
        .collect();
    // Step 3.
    let plan = slices::plan(&svc, &existing, &slices::desired(&svc, &selected));
    write_slices(&ctx, &svc, plan).await?;
    // Step 4.
    write_endpoints(&ctx, &svc, endpoints::desired_subsets(&svc, &selected)).await?;
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// Step 3's writes: creations first, then updates, then deletions, so that a Service moving
/// its endpoints between slices never shows none in between.
async fn write_slices(ctx: &Context, svc: &Service, plan: slices::Plan) -> Result<(), Error> {
    if plan.is_empty() {
        return Ok(());
    }
    let ns = svc.namespace().unwrap_or_default();
    let svc_key = key(&ns, &svc.name_any());
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ns);
    let (created, updated, deleted) = (plan.create.len(), plan.update.len(), plan.delete.len());
    for slice in plan.create {
        let made = api
            .create(&PostParams::default(), &slice)
            .await
            .map_err(|source| Error::CreateSlice {
                service: svc_key.clone(),
                source,
            })?;
        ctx.expectations.expect_creation(&svc_key, &made.name_any());
    }
    for slice in plan.update {
        api.replace(&slice.name_any(), &PostParams::default(), &slice)
            .await
            .map_err(|source| Error::UpdateSlice {
                slice: key(&ns, &slice.name_any()),
                source,
            })?;
    }
    for slice in plan.delete {
        let uid = slice.uid().unwrap_or_default();
        ctx.expectations.expect_deletion(&svc_key, &uid);
        match api
            .delete(&slice.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => {
                ctx.expectations.deletion_observed(&svc_key, &uid);
                return Err(Error::DeleteSlice {
                    slice: key(&ns, &slice.name_any()),
                    source,
                });
            }
        }
    }
    info!(created, updated, deleted, "wrote endpointslices");
    Ok(())
}

/// Step 4's write: the Endpoints object named after the Service, if it differs.
async fn write_endpoints(
    ctx: &Context,
    svc: &Service,
    subsets: Vec<EndpointSubset>,
) -> Result<(), Error> {
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let current = ctx.endpoints.get(&ObjectRef::new(&name).within(&ns));
    if current
        .as_ref()
        .is_some_and(|c| endpoints::is_current(c, svc, &subsets))
    {
        return Ok(());
    }
    let new = endpoints::build(current.as_deref(), svc, subsets);
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ns);
    let written = match current {
        Some(_) => api.replace(&name, &PostParams::default(), &new).await,
        None => api.create(&PostParams::default(), &new).await,
    };
    written.map_err(|source| Error::WriteEndpoints {
        service: key(&ns, &name),
        source,
    })?;
    info!("wrote endpoints");
    Ok(())
}

/// Delete, for ever, the Endpoints objects whose Service is gone: after each Service
/// deletion and every [`LEFTOVER_SWEEP`] (which catches deletions missed while this manager
/// was not running). A Service missing from the cache is confirmed gone by a live GET first.
async fn sweep_leftovers(ctx: &Context, services: &Store<Service>, service_gone: &Notify) {
    loop {
        tokio::select! {
            _ = service_gone.notified() => {}
            _ = tokio::time::sleep(LEFTOVER_SWEEP) => {}
        }
        if !(has_synced(services) && has_synced(&ctx.endpoints)) {
            continue;
        }
        for ep in ctx.endpoints.state() {
            if ep.annotations().contains_key(LEADER_ANNOTATION) {
                continue;
            }
            let ns = ep.namespace().unwrap_or_default();
            if services
                .get(&ObjectRef::new(&ep.name_any()).within(&ns))
                .is_some()
            {
                continue;
            }
            if let Err(error) = delete_leftover(ctx, &ep).await {
                warn!(%error, "cannot delete leftover endpoints; retrying later");
            }
        }
    }
}

/// Delete `ep` if its Service is confirmed gone (and `ep` is still the object the cache saw).
async fn delete_leftover(ctx: &Context, ep: &Endpoints) -> Result<(), Error> {
    let ns = ep.namespace().unwrap_or_default();
    let name = ep.name_any();
    let failed = |source| Error::DeleteEndpoints {
        service: key(&ns, &name),
        source,
    };
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
    if services.get_opt(&name).await.map_err(failed)?.is_some() {
        return Ok(());
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: ep.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ns);
    match api.delete(&name, &params).await {
        Ok(_) => info!(endpoints = %key(&ns, &name), "deleted the endpoints of a deleted service"),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
        Err(source) => return Err(failed(source)),
    }
    Ok(())
}

#[cfg(test)]
mod tests;
