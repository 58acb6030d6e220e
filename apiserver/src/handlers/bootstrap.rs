//! The `kubernetes` Service in `default`: how pods find the apiserver. Every cluster has it
//! (kube-apiserver's bootstrap controller writes it): a ClusterIP Service on port 443 named
//! `https`, holding the *first* address of the Service range (`10.96.0.1` by default, which
//! kubeadm also puts in the serving certificate), with no selector: its Endpoints and
//! EndpointSlice are written here, pointing at this apiserver's advertised address, not by
//! the EndpointSlice controller.
//!
//! Each apiserver writes its own address at start-up (kube-apiserver's reconciler with a
//! master count of one); the lease-based reconciler that lists every live apiserver is not
//! built. Read next: `crate::allocator`, which gives the Service its address.

use std::net::SocketAddr;

use serde_json::{json, Value};

use super::write::stamp_new;
use crate::admission::defaults::apply_defaults;
use crate::allocator;
use crate::error::ApiError;
use crate::resources;
use crate::state::App;
use crate::storage::StorageError;

/// The Service's name and namespace.
const NAME: &str = "kubernetes";
const NAMESPACE: &str = "default";

/// Create the `kubernetes` Service if it is missing, then make its Endpoints and
/// EndpointSlice point at `advertise` (when known).
pub async fn ensure_kubernetes_service(app: &App) -> Result<(), ApiError> {
    let port = app.config.advertise_address.map_or(6443, |a| a.port());
    ensure_service(app, port).await?;
    if let Some(address) = app.config.advertise_address {
        ensure_endpoints(app, address).await?;
        ensure_endpoint_slice(app, address).await?;
    }
    Ok(())
}

async fn ensure_service(app: &App, target_port: u16) -> Result<(), ApiError> {
    let r = resources::find("", "v1", "services").expect("services are served");
    let key = app.storage.key(r.storage, Some(NAMESPACE), NAME);
    if app.storage.get(&key).await?.is_some() {
        return Ok(());
    }
    let first = app.config.service_ranges.cluster_ip.first().to_string();
    let mut svc = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": NAME, "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": first,
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": target_port}],
        },
    });
    stamp_new(r, &mut svc, Some(NAMESPACE))?;
    apply_defaults(r.plural, &mut svc);
    let plan = allocator::plan(&app.storage, &app.config.service_ranges, None, &mut svc)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let bytes = crate::storage::encode(&svc);
    match app.storage.create_claiming(&key, bytes, &plan.claims).await {
        Ok(_) | Err(StorageError::AlreadyExists { .. }) => Ok(()),
        Err(StorageError::Claimed { key }) => {
            tracing::warn!(%key, "bootstrap: the first Service address is held by another Service");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Create `name` of `resource` as `desired` (metadata added), or bring a stored one's
/// `fields` to `desired`'s; another apiserver's concurrent write wins.
async fn ensure(
    app: &App,
    resource: &'static resources::Resource,
    desired: Value,
    fields: &[&str],
) -> Result<(), ApiError> {
    let key = app.storage.key(resource.storage, Some(NAMESPACE), NAME);
    match app.storage.get(&key).await? {
        None => {
            let mut obj = desired;
            stamp_new(resource, &mut obj, Some(NAMESPACE))?;
            apply_defaults(resource.plural, &mut obj);
            match app.storage.create(&key, &obj).await {
                Ok(_) | Err(StorageError::AlreadyExists { .. }) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        Some(current) => {
            let mut obj = current.object.clone();
            for f in fields {
                obj[*f] = desired[*f].clone();
            }
            apply_defaults(resource.plural, &mut obj);
            if obj == current.object {
                return Ok(());
            }
            match app.storage.update(&key, &obj, current.revision).await {
                Ok(_) | Err(StorageError::Conflict { .. } | StorageError::NotFound { .. }) => {
                    Ok(())
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

async fn ensure_endpoints(app: &App, address: SocketAddr) -> Result<(), ApiError> {
    let r = resources::find("", "v1", "endpoints").expect("endpoints are served");
    let desired = json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": NAME, "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{
            "addresses": [{"ip": address.ip().to_string()}],
            "ports": [{"name": "https", "port": address.port(), "protocol": "TCP"}],
        }],
    });
    ensure(app, r, desired, &["subsets"]).await
}

async fn ensure_endpoint_slice(app: &App, address: SocketAddr) -> Result<(), ApiError> {
    let r = resources::find("discovery.k8s.io", "v1", "endpointslices")
        .expect("endpointslices are served");
    let desired = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": NAME, "labels": {"kubernetes.io/service-name": NAME}},
        "addressType": if address.is_ipv4() { "IPv4" } else { "IPv6" },
        "endpoints": [{"addresses": [address.ip().to_string()], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": address.port(), "protocol": "TCP"}],
    });
    ensure(app, r, desired, &["addressType", "endpoints", "ports"]).await
}
