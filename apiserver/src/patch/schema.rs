//! The patch schema: for each list field of the built-in kinds, how a strategic merge patch
//! merges it. In k8s.io/api this lives in struct tags (`patchStrategy:"merge"`,
//! `patchMergeKey:"name"`); any list without such a tag is atomic and a patch replaces it whole,
//! and maps merge key by key. Read `strategic.rs` next, which walks an object with this schema.

/// How a patch combines a list field with the stored list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListStrategy {
    /// No patch tags: the patch's list replaces the stored one.
    Atomic,
    /// `patchStrategy:"merge"` with `patchMergeKey`: items are objects matched by this key.
    MergeByKey(&'static str),
    /// `patchStrategy:"merge"` on a list of primitives: a set union (e.g. `metadata.finalizers`).
    MergeSet,
}

/// The Go type a JSON value stands for, as far as merging is concerned. Everything not listed
/// is `Opaque`: its maps merge, its lists are atomic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schema {
    /// A type with no merging lists below it.
    Opaque,
    /// A top-level object of the given kind (the root of a patch).
    Pod,
    /// `apps/v1 Deployment` and `ReplicaSet`: a spec with a pod template.
    Workload,
    /// `v1 Node`.
    Node,
    /// `v1 Namespace`.
    Namespace,
    /// `v1 Service`.
    Service,
    /// `ServiceSpec`: ports merge by `port`.
    ServiceSpec,
    /// Any other kind: only `metadata` is known.
    OtherKind,
    /// `ObjectMeta`.
    ObjectMeta,
    /// `DeploymentSpec` / `ReplicaSetSpec`.
    WorkloadSpec,
    /// `DeploymentStatus` / `ReplicaSetStatus` / `NamespaceStatus`: conditions by type.
    ConditionsStatus,
    /// `PodTemplateSpec`.
    PodTemplateSpec,
    /// `PodSpec`.
    PodSpec,
    /// `Container` and `EphemeralContainer`.
    Container,
    /// `PodStatus`.
    PodStatus,
    /// `NodeSpec`.
    NodeSpec,
    /// `NodeStatus`.
    NodeStatus,
}

/// What the schema says about one field of a type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// How the field merges if it is a list.
    pub list: ListStrategy,
    /// The type of the field (of its items, for a list).
    pub schema: Schema,
}

const fn field(list: ListStrategy, schema: Schema) -> Field {
    Field { list, schema }
}

const OPAQUE: Field = field(ListStrategy::Atomic, Schema::Opaque);

fn by_key(key: &'static str) -> Field {
    field(ListStrategy::MergeByKey(key), Schema::Opaque)
}

impl Schema {
    /// The schema at the root of an object of this `kind`.
    pub fn for_kind(kind: &str) -> Schema {
        match kind {
            "Pod" => Schema::Pod,
            "Deployment" | "ReplicaSet" => Schema::Workload,
            "Node" => Schema::Node,
            "Namespace" => Schema::Namespace,
            "Service" => Schema::Service,
            _ => Schema::OtherKind,
        }
    }

    /// The merge behaviour and type of field `name` of this type.
    pub fn field(self, name: &str) -> Field {
        use ListStrategy::*;
        use Schema::*;
        match (self, name) {
            (
                Pod | Workload | Node | Namespace | Service | OtherKind | PodTemplateSpec,
                "metadata",
            ) => field(Atomic, ObjectMeta),
            (ObjectMeta, "finalizers") => field(MergeSet, Opaque),
            (ObjectMeta, "ownerReferences") => by_key("uid"),

            (Pod | PodTemplateSpec, "spec") => field(Atomic, PodSpec),
            (Pod, "status") => field(Atomic, PodStatus),
            (Workload, "spec") => field(Atomic, WorkloadSpec),
            (Workload | Namespace | Service, "status") => field(Atomic, ConditionsStatus),
            // `ServicePort` is tagged `patchMergeKey:"port"` (its list-map keys for
            // server-side apply are port and protocol).
            (Service, "spec") => field(Atomic, ServiceSpec),
            (ServiceSpec, "ports") => by_key("port"),
            (WorkloadSpec, "template") => field(Atomic, PodTemplateSpec),
            (ConditionsStatus, "conditions") => by_key("type"),

            (PodSpec, "containers" | "initContainers" | "ephemeralContainers") => {
                field(MergeByKey("name"), Container)
            }
            (PodSpec, "volumes" | "imagePullSecrets" | "schedulingGates" | "resourceClaims") => {
                by_key("name")
            }
            (PodSpec, "hostAliases") => by_key("ip"),
            (PodSpec, "topologySpreadConstraints") => by_key("topologyKey"),
            (Container, "ports") => by_key("containerPort"),
            (Container, "env") => by_key("name"),
            (Container, "volumeMounts") => by_key("mountPath"),
            (Container, "volumeDevices") => by_key("devicePath"),
            (PodStatus, "conditions") => by_key("type"),
            (PodStatus, "podIPs" | "hostIPs") => by_key("ip"),
            (PodStatus, "resourceClaimStatuses") => by_key("name"),

            // NodeSpec.taints carries no patch tags upstream: it is atomic.
            (Node, "spec") => field(Atomic, NodeSpec),
            (Node, "status") => field(Atomic, NodeStatus),
            (NodeSpec, "podCIDRs") => field(MergeSet, Opaque),
            (NodeStatus, "conditions" | "addresses") => by_key("type"),
            _ => OPAQUE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_template_containers_merge_by_name() {
        let spec = Schema::for_kind("Deployment").field("spec").schema;
        let pod_spec = spec.field("template").schema.field("spec").schema;
        let containers = pod_spec.field("containers");
        assert_eq!(containers.list, ListStrategy::MergeByKey("name"));
        assert_eq!(
            containers.schema.field("ports").list,
            ListStrategy::MergeByKey("containerPort")
        );
        assert_eq!(
            containers.schema.field("volumeMounts").list,
            ListStrategy::MergeByKey("mountPath")
        );
    }

    #[test]
    fn service_ports_merge_by_port() {
        let spec = Schema::for_kind("Service").field("spec").schema;
        assert_eq!(spec.field("ports").list, ListStrategy::MergeByKey("port"));
        assert_eq!(spec.field("clusterIPs").list, ListStrategy::Atomic);
    }

    #[test]
    fn untagged_lists_are_atomic() {
        let pod_spec = Schema::for_kind("Pod").field("spec").schema;
        assert_eq!(pod_spec.field("tolerations").list, ListStrategy::Atomic);
        assert_eq!(
            Schema::for_kind("Node")
                .field("spec")
                .schema
                .field("taints")
                .list,
            ListStrategy::Atomic
        );
        assert_eq!(
            Schema::for_kind("Lease").field("spec").schema,
            Schema::Opaque
        );
    }

    #[test]
    fn metadata_is_known_on_every_kind() {
        let meta = Schema::for_kind("Lease").field("metadata").schema;
        assert_eq!(meta.field("finalizers").list, ListStrategy::MergeSet);
        assert_eq!(
            meta.field("ownerReferences").list,
            ListStrategy::MergeByKey("uid")
        );
    }
}
