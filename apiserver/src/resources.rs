//! The resources this apiserver serves: one row per (group, version, resource).
//!
//! A Kubernetes URL names a *resource* (plural, lowercase: `deployments`), which holds objects
//! of one *kind* (`Deployment`). This table is the single source for routing, discovery,
//! OpenAPI, storage keys and error messages; adding a resource starts here. Services and
//! Endpoints are stored where kube-apiserver keeps them, `/registry/services/{specs,endpoints}/`.

/// One served resource.
#[derive(Debug)]
pub struct Resource {
    /// API group, empty for the core ("legacy") group served under `/api`.
    pub group: &'static str,
    pub version: &'static str,
    /// Plural name used in URLs (`pods`).
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    /// Namespaced resources live under `/namespaces/{ns}/`.
    pub namespaced: bool,
    /// Short names for kubectl (`po`, `deploy`).
    pub short_names: &'static [&'static str],
    /// Directory under the etcd prefix (`/registry/<storage>/...`); nodes are `minions`.
    pub storage: &'static str,
    /// Subresources served (`status`, `scale`, `binding`, ...).
    pub subresources: &'static [&'static str],
    /// Categories (`all` makes `kubectl get all` include it).
    pub categories: &'static [&'static str],
}

impl Resource {
    /// `apiVersion` of objects of this resource (`v1`, `apps/v1`).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Name used in messages: `pods`, `deployments.apps`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// Whether the resource has a `status` subresource (main updates then ignore status).
    pub fn has_status(&self) -> bool {
        self.subresources.contains(&"status")
    }

    /// Whether objects carry `metadata.generation`, bumped on every spec change (controllers
    /// compare it with `status.observedGeneration`; an EndpointSlice's on any change).
    pub fn has_generation(&self) -> bool {
        matches!(
            self.plural,
            "pods" | "deployments" | "replicasets" | "endpointslices"
        )
    }

    /// A `Subject` for error messages about object `name`.
    pub fn subject(&self, name: &str) -> crate::error::Subject {
        crate::error::Subject {
            qualified_resource: self.qualified(),
            kind: self.kind.to_string(),
            name: name.to_string(),
            group: self.group.to_string(),
        }
    }
}

const VERBS_NAMESPACED: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Verbs every resource supports.
pub fn verbs() -> &'static [&'static str] {
    VERBS_NAMESPACED
}

/// Every resource served, in discovery order.
pub static RESOURCES: &[Resource] = &[
    Resource {
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        storage: "namespaces",
        subresources: &["status", "finalize"],
        categories: &[],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
        storage: "pods",
        subresources: &["status", "binding", "eviction", "log", "exec"],
        categories: &["all"],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "nodes",
        singular: "node",
        kind: "Node",
        namespaced: false,
        short_names: &["no"],
        storage: "minions",
        subresources: &["status", "proxy"],
        categories: &[],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        storage: "events",
        subresources: &[],
        categories: &[],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        storage: "configmaps",
        subresources: &[],
        categories: &[],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: &[],
        storage: "secrets",
        subresources: &[],
        categories: &[],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "services",
        singular: "service",
        kind: "Service",
        namespaced: true,
        short_names: &["svc"],
        // kube-apiserver's layout: Services and Endpoints share the `services/` directory.
        storage: "services/specs",
        subresources: &["status"],
        categories: &["all"],
    },
    Resource {
        group: "",
        version: "v1",
        plural: "endpoints",
        singular: "endpoints",
        kind: "Endpoints",
        namespaced: true,
        short_names: &["ep"],
        storage: "services/endpoints",
        subresources: &[],
        categories: &[],
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "deployments",
        singular: "deployment",
        kind: "Deployment",
        namespaced: true,
        short_names: &["deploy"],
        storage: "deployments",
        subresources: &["status", "scale"],
        categories: &["all"],
    },
    Resource {
        group: "apps",
        version: "v1",
        plural: "replicasets",
        singular: "replicaset",
        kind: "ReplicaSet",
        namespaced: true,
        short_names: &["rs"],
        storage: "replicasets",
        subresources: &["status", "scale"],
        categories: &["all"],
    },
    Resource {
        group: "certificates.k8s.io",
        version: "v1",
        plural: "certificatesigningrequests",
        singular: "certificatesigningrequest",
        kind: "CertificateSigningRequest",
        namespaced: false,
        short_names: &["csr"],
        storage: "certificatesigningrequests",
        subresources: &["status", "approval"],
        categories: &[],
    },
    Resource {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        singular: "lease",
        kind: "Lease",
        namespaced: true,
        short_names: &[],
        storage: "leases",
        subresources: &[],
        categories: &[],
    },
    Resource {
        group: "discovery.k8s.io",
        version: "v1",
        plural: "endpointslices",
        singular: "endpointslice",
        kind: "EndpointSlice",
        namespaced: true,
        short_names: &[],
        storage: "endpointslices",
        subresources: &[],
        categories: &[],
    },
    Resource {
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        storage: "events",
        subresources: &[],
        categories: &[],
    },
];

/// The API groups (besides core) in discovery order, with their single served version.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if !out.iter().any(|(g, _)| *g == r.group) {
            out.push((r.group, r.version));
        }
    }
    out
}

/// Look up a resource by group, version and plural.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Whether `group/version` is served at all (for 404s on unknown groups).
pub fn serves_group_version(group: &str, version: &str) -> bool {
    RESOURCES
        .iter()
        .any(|r| r.group == group && r.version == version)
}

/// Distinct storage directories, each backed by one watch cache.
pub fn storage_dirs() -> Vec<&'static str> {
    let mut out: Vec<&str> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&r.storage) {
            out.push(r.storage);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_stored_as_minions_and_events_share_storage() {
        assert_eq!(find("", "v1", "nodes").unwrap().storage, "minions");
        assert_eq!(
            find("events.k8s.io", "v1", "events").unwrap().storage,
            find("", "v1", "events").unwrap().storage
        );
        assert_eq!(storage_dirs().len(), RESOURCES.len() - 1);
    }

    #[test]
    fn qualified_names() {
        let d = find("apps", "v1", "deployments").unwrap();
        assert_eq!(d.qualified(), "deployments.apps");
        assert_eq!(d.api_version(), "apps/v1");
    }
}
