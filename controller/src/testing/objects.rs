//! Small builders for the objects of the reconcilers' unit tests. Each starts from the smallest
//! object that works (namespace `default`, labels and selector `app=web`, uid `uid-<name>`,
//! generation 1, image `nginx:1`) and says only what a test changes.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, ReplicaSet, ReplicaSetSpec, ReplicaSetStatus,
    RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Pod, PodCondition, PodSpec, PodStatus, PodTemplateSpec, Service,
    ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;

/// The namespace every test object lives in.
pub const NS: &str = "default";

/// A point in time, `second` seconds after the epoch.
pub fn at(second: i64) -> Time {
    Time(jiff::Timestamp::from_second(second).expect("a valid second"))
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some(NS.into()),
        uid: Some(format!("uid-{name}")),
        generation: Some(1),
        resource_version: Some("1".into()),
        labels: Some(labels(&[("app", "web")])),
        creation_timestamp: Some(at(0)),
        ..Default::default()
    }
}

/// The ownerReference a controller puts on what it controls.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into(),
        kind: K::kind(&()).into(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(&[("app", "web")])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

/// A pending, unscheduled pod labelled `app=web`.
pub fn pod(name: &str) -> PodBuilder {
    PodBuilder(Pod {
        metadata: meta(name),
        spec: Some(PodSpec::default()),
        status: Some(PodStatus {
            phase: Some("Pending".into()),
            ..Default::default()
        }),
    })
}

/// See [`pod`].
pub struct PodBuilder(Pod);

impl PodBuilder {
    /// Replace the labels.
    pub fn labels(mut self, pairs: &[(&str, &str)]) -> Self {
        self.0.metadata.labels = Some(labels(pairs));
        self
    }

    /// Controlled by `owner`.
    pub fn owned_by<K: Resource<DynamicType = ()>>(mut self, owner: &K) -> Self {
        self.0.metadata.owner_references = Some(vec![controller_ref(owner)]);
        self
    }

    /// Bound to `node` and Running.
    pub fn running_on(mut self, node: &str) -> Self {
        self.0.spec.as_mut().expect("a spec").node_name = Some(node.into());
        self.0.status.as_mut().expect("a status").phase = Some("Running".into());
        self
    }

    /// Ready since `second`.
    pub fn ready_since(mut self, second: i64) -> Self {
        self.0.status.as_mut().expect("a status").conditions = Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: Some(at(second)),
            ..Default::default()
        }]);
        self
    }

    /// Created at `second`.
    pub fn created_at(mut self, second: i64) -> Self {
        self.0.metadata.creation_timestamp = Some(at(second));
        self
    }

    /// Given the IP `ip` (`status.podIP` and `podIPs`), as the kubelet reports it.
    pub fn ip(mut self, ip: &str) -> Self {
        let status = self.0.status.as_mut().expect("a status");
        status.pod_ip = Some(ip.into());
        status.pod_ips = Some(vec![k8s_openapi::api::core::v1::PodIP { ip: ip.into() }]);
        self
    }

    /// Being deleted (`deletionTimestamp` set, within its grace period).
    pub fn terminating(mut self) -> Self {
        self.0.metadata.deletion_timestamp = Some(at(1000));
        self
    }

    /// A container `c` exposing the TCP port `name` = `number` (added to those it has).
    pub fn container_port(mut self, name: &str, number: i32) -> Self {
        let spec = self.0.spec.as_mut().expect("a spec");
        if spec.containers.is_empty() {
            spec.containers.push(Container {
                name: "c".into(),
                image: Some("nginx:1".into()),
                ..Default::default()
            });
        }
        spec.containers[0]
            .ports
            .get_or_insert_with(Vec::new)
            .push(ContainerPort {
                name: Some(name.into()),
                container_port: number,
                protocol: Some("TCP".into()),
                ..Default::default()
            });
        self
    }

    pub fn build(self) -> Pod {
        self.0
    }
}

/// A ReplicaSet of `replicas` pods selecting `app=web`, with no status yet.
pub fn replica_set(name: &str, replicas: i32) -> ReplicaSetBuilder {
    ReplicaSetBuilder(ReplicaSet {
        metadata: meta(name),
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", "web")])),
                ..Default::default()
            },
            template: Some(template("nginx:1")),
            min_ready_seconds: None,
        }),
        status: None,
    })
}

/// See [`replica_set`].
pub struct ReplicaSetBuilder(ReplicaSet);

impl ReplicaSetBuilder {
    /// `spec.minReadySeconds`.
    pub fn min_ready_seconds(mut self, seconds: i32) -> Self {
        self.0.spec.as_mut().expect("a spec").min_ready_seconds = Some(seconds);
        self
    }

    /// `metadata.generation`.
    pub fn generation(mut self, generation: i64) -> Self {
        self.0.metadata.generation = Some(generation);
        self
    }

    /// A status as the ReplicaSet controller writes it.
    pub fn status(mut self, status: ReplicaSetStatus) -> Self {
        self.0.status = Some(status);
        self
    }

    pub fn build(self) -> ReplicaSet {
        self.0
    }
}

/// A RollingUpdate Deployment of `replicas` pods selecting `app=web` and running `nginx:1`.
pub fn deployment(name: &str, replicas: i32) -> DeploymentBuilder {
    DeploymentBuilder(Deployment {
        metadata: meta(name),
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", "web")])),
                ..Default::default()
            },
            template: template("nginx:1"),
            ..Default::default()
        }),
        status: None,
    })
}

/// See [`deployment`].
pub struct DeploymentBuilder(Deployment);

impl DeploymentBuilder {
    fn spec(&mut self) -> &mut DeploymentSpec {
        self.0.spec.as_mut().expect("a spec")
    }

    /// The pod template's image.
    pub fn image(mut self, image: &str) -> Self {
        self.spec().template = template(image);
        self
    }

    /// RollingUpdate with these maxSurge and maxUnavailable.
    pub fn rolling(mut self, max_surge: i32, max_unavailable: i32) -> Self {
        self.spec().strategy = Some(DeploymentStrategy {
            type_: Some("RollingUpdate".into()),
            rolling_update: Some(RollingUpdateDeployment {
                max_surge: Some(IntOrString::Int(max_surge)),
                max_unavailable: Some(IntOrString::Int(max_unavailable)),
            }),
        });
        self
    }

    /// The Recreate strategy.
    pub fn recreate(mut self) -> Self {
        self.spec().strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
        self
    }

    /// `spec.paused`.
    pub fn paused(mut self) -> Self {
        self.spec().paused = Some(true);
        self
    }

    /// `spec.revisionHistoryLimit`.
    pub fn history_limit(mut self, limit: i32) -> Self {
        self.spec().revision_history_limit = Some(limit);
        self
    }

    /// `spec.progressDeadlineSeconds`.
    pub fn progress_deadline(mut self, seconds: i32) -> Self {
        self.spec().progress_deadline_seconds = Some(seconds);
        self
    }

    /// An annotation on the Deployment.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.0
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(key.into(), value.into());
        self
    }

    pub fn build(self) -> Deployment {
        self.0
    }
}

/// A ClusterIP Service (`10.96.0.10`) selecting `app=web`, with the TCP port `http` 80 → 8080.
pub fn service(name: &str) -> ServiceBuilder {
    let mut metadata = meta(name);
    metadata.labels = None;
    ServiceBuilder(Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: Some("10.96.0.10".into()),
            selector: Some(labels(&[("app", "web")])),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                protocol: Some("TCP".into()),
                target_port: Some(IntOrString::Int(8080)),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    })
}

/// See [`service`].
pub struct ServiceBuilder(Service);

impl ServiceBuilder {
    fn spec(&mut self) -> &mut ServiceSpec {
        self.0.spec.as_mut().expect("a spec")
    }

    /// Replace the selector.
    pub fn selector(mut self, pairs: &[(&str, &str)]) -> Self {
        self.spec().selector = Some(labels(pairs));
        self
    }

    /// Add the TCP port `name` = `port` whose targetPort is the container port named `target`.
    pub fn named_port(mut self, name: &str, port: i32, target: &str) -> Self {
        self.spec()
            .ports
            .get_or_insert_with(Vec::new)
            .push(ServicePort {
                name: Some(name.into()),
                port,
                protocol: Some("TCP".into()),
                target_port: Some(IntOrString::String(target.into())),
                ..Default::default()
            });
        self
    }

    /// `type: ExternalName` for `host`: a DNS alias, no selector, no cluster IP.
    pub fn external_name(mut self, host: &str) -> Self {
        let spec = self.spec();
        spec.type_ = Some("ExternalName".into());
        spec.external_name = Some(host.into());
        spec.cluster_ip = None;
        self
    }

    /// A label on the Service.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(key.into(), value.into());
        self
    }

    pub fn build(self) -> Service {
        self.0
    }
}
