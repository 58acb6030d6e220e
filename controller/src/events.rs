//! Events: the short notes (`SuccessfulCreate`, `ScalingReplicaSet`) that `kubectl describe`
//! shows under an object. They are ordinary core/v1 Event objects; losing one is harmless, so
//! a failed write is logged and never fails a reconcile.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, PostParams};
use kube::Resource;
use tracing::debug;

/// Writes Events on behalf of one controller (`source.component`).
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    component: String,
}

impl Recorder {
    /// A recorder that signs its Events as `component` (e.g. `replicaset-controller`).
    pub fn new(client: kube::Client, component: &str) -> Recorder {
        Recorder {
            client,
            component: component.into(),
        }
    }

    /// Record a `Normal` event about `obj`.
    pub async fn normal<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        reason: &str,
        message: String,
    ) {
        self.publish(obj.object_ref(&()), "Normal", reason, message)
            .await
    }

    /// Record a `Warning` event about `obj`.
    pub async fn warning<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        reason: &str,
        message: String,
    ) {
        self.publish(obj.object_ref(&()), "Warning", reason, message)
            .await
    }

    /// Record an event about the object `regarding` refers to.
    pub async fn publish(
        &self,
        regarding: ObjectReference,
        type_: &str,
        reason: &str,
        message: String,
    ) {
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let now = jiff::Timestamp::now();
        let name = format!(
            "{}.{:x}",
            regarding.name.as_deref().unwrap_or("object"),
            now.as_nanosecond()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            involved_object: regarding,
            reason: Some(reason.into()),
            message: Some(message),
            type_: Some(type_.into()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: None,
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(self.component.clone()),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        if let Err(e) = api.create(&PostParams::default(), &event).await {
            debug!(error = %e, reason, "could not record event");
        }
    }
}
