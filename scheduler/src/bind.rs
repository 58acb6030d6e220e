//! Binding: telling the apiserver which node a pod runs on.
//!
//! The scheduler never writes `spec.nodeName` itself: it POSTs a `Binding` to the pod's
//! `binding` subresource, and the apiserver sets the node exactly once (a second binding gets
//! 409 Conflict, so two schedulers can never move a pod). Bindings run concurrently, a bounded
//! number at a time, while the scheduling loop goes on thanks to the assumed pods in the cache.

use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};

/// How many bindings may be in flight at once.
pub const MAX_IN_FLIGHT: usize = 256;

/// Errors of a binding.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The apiserver refused or failed the `pods/{name}/binding` POST.
    #[error("binding {pod} to {node}")]
    Post {
        pod: String,
        node: String,
        #[source]
        source: kube::Error,
    },
}

impl BindError {
    /// The pod is gone or already bound elsewhere: retrying cannot help.
    pub fn is_final(&self) -> bool {
        let BindError::Post { source, .. } = self;
        matches!(source, kube::Error::Api(e) if e.code == 404 || e.code == 409)
    }
}

/// POST a Binding of `pod` to `node`.
pub async fn bind(client: &kube::Client, pod: &Pod, node: &str) -> Result<(), BindError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.into()),
            ..Default::default()
        },
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    api.create_subresource::<_, serde_json::Value>(
        "binding",
        name,
        &PostParams::default(),
        &binding,
    )
    .await
    .map(|_| ())
    .map_err(|source| BindError::Post {
        pod: format!("{ns}/{name}"),
        node: node.into(),
        source,
    })
}
