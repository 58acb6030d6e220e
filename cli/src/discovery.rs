//! Discovery: what the server serves, and which resource a name the user typed means.
//!
//! Every apiserver describes its resources at `/api` (the core group, `v1`) and `/apis` (the
//! named groups). *Aggregated* discovery returns all of it in two requests, each resource with
//! its kind, plural (`pods`, used in URLs), singular, short names (`po`), scope (namespaced or
//! cluster-wide) and verbs. kubectl resolves `po`, `pod`, `pods`, `Pod` and `pods.v1.` the same
//! way, from this list and nothing else; so do we. Read next: `commands/get.rs`.

use kube::core::discovery::v2::{APIGroupDiscovery, APIGroupDiscoveryList};
use kube::discovery::ApiResource;

/// Why a name did not resolve.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// Nothing the server serves has this name (plural, singular, short name or kind).
    #[error("the server doesn't have a resource type \"{0}\"")]
    UnknownName(String),
    /// No resource has this apiVersion and kind (a manifest's `kind:`).
    #[error("no matches for kind \"{kind}\" in version \"{api_version}\"")]
    UnknownKind { api_version: String, kind: String },
    /// Asking the server failed.
    #[error(transparent)]
    Request(#[from] kube::Error),
}

/// One served resource, as discovery describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// API group; empty for the core group.
    pub group: String,
    pub version: String,
    /// `Pod`.
    pub kind: String,
    /// `pods`: the URL segment.
    pub plural: String,
    /// `pod`.
    pub singular: String,
    /// `po`.
    pub short_names: Vec<String>,
    pub namespaced: bool,
    pub verbs: Vec<String>,
}

impl Resource {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods`, `deployments.apps`: how kubectl names the resource in messages.
    pub fn qualified_plural(&self) -> String {
        qualify(&self.plural, &self.group)
    }

    /// `pod`, `deployment.apps`: the prefix of `-o name` and of `pod/web created`.
    pub fn qualified_kind(&self) -> String {
        qualify(&self.kind.to_lowercase(), &self.group)
    }

    /// The resource as `kube`'s dynamic API wants it.
    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: self.api_version(),
            kind: self.kind.clone(),
            plural: self.plural.clone(),
        }
    }

    /// The URL of the collection: `/api/v1/namespaces/NS/pods` or `/apis/apps/v1/deployments`.
    /// `namespace` is ignored for cluster-scoped resources; `None` lists every namespace.
    pub fn url(&self, namespace: Option<&str>) -> String {
        let root = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace {
            Some(ns) if self.namespaced => format!("{root}/namespaces/{ns}/{}", self.plural),
            _ => format!("{root}/{}", self.plural),
        }
    }

    /// Does a name the user typed (`po`, `pod`, `pods`, `Pod`) mean this resource?
    fn is_named(&self, name: &str) -> bool {
        name == self.plural
            || name == self.singular
            || name.eq_ignore_ascii_case(&self.kind)
            || self.short_names.iter().any(|s| s == name)
    }
}

fn qualify(name: &str, group: &str) -> String {
    if group.is_empty() {
        name.to_string()
    } else {
        format!("{name}.{group}")
    }
}

/// Everything the server serves, in discovery's order (core group first).
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    pub resources: Vec<Resource>,
}

impl Discovery {
    /// Ask the server (two requests: `/api` and `/apis`, aggregated).
    pub async fn load(client: &kube::Client) -> Result<Discovery, DiscoveryError> {
        let (core, groups) = futures::try_join!(
            client.list_core_api_versions_aggregated(),
            client.list_api_groups_aggregated()
        )?;
        Ok(Discovery::from_lists([core, groups]))
    }

    /// The resource table of aggregated discovery lists; the first version of each group is
    /// its preferred one.
    pub fn from_lists(lists: impl IntoIterator<Item = APIGroupDiscoveryList>) -> Discovery {
        let resources = lists
            .into_iter()
            .flat_map(|l| l.items)
            .flat_map(|g| group_resources(&g))
            .collect();
        Discovery { resources }
    }

    /// The resource a user's name means: `pods`, `pod`, `po`, `Pod`, `deployments.apps`,
    /// `deploy.apps`, `deployments.v1.apps`.
    pub fn resolve(&self, name: &str) -> Result<&Resource, DiscoveryError> {
        let unknown = || DiscoveryError::UnknownName(name.to_string());
        if let Some(r) = self.resources.iter().find(|r| r.is_named(name)) {
            return Ok(r);
        }
        let (short, group) = name.split_once('.').ok_or_else(unknown)?;
        let (version, group) = match group.split_once('.') {
            Some((v, g))
                if self
                    .resources
                    .iter()
                    .any(|r| r.version == v && r.group == g) =>
            {
                (Some(v), g)
            }
            _ => (None, group),
        };
        self.resources
            .iter()
            .find(|r| {
                r.group == group && version.is_none_or(|v| r.version == v) && r.is_named(short)
            })
            .ok_or_else(unknown)
    }

    /// The resource of a manifest's `apiVersion` and `kind`.
    pub fn for_kind(&self, api_version: &str, kind: &str) -> Result<&Resource, DiscoveryError> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
            .ok_or_else(|| DiscoveryError::UnknownKind {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
            })
    }
}

/// The resources of one group's preferred (first) version; subresources are not resources.
fn group_resources(group: &APIGroupDiscovery) -> Vec<Resource> {
    let name = group
        .metadata
        .as_ref()
        .and_then(|m| m.name.clone())
        .unwrap_or_default();
    let Some(version) = group.versions.first() else {
        return Vec::new();
    };
    let v = version.version.clone().unwrap_or_default();
    version
        .resources
        .iter()
        .map(|r| Resource {
            group: name.clone(),
            version: v.clone(),
            kind: r
                .response_kind
                .as_ref()
                .and_then(|k| k.kind.clone())
                .unwrap_or_default(),
            plural: r.resource.clone().unwrap_or_default(),
            singular: r.singular_resource.clone().unwrap_or_default(),
            short_names: r.short_names.clone(),
            namespaced: r.scope.as_deref() == Some("Namespaced"),
            verbs: r.verbs.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(group: &str, kind: &str, plural: &str, short: &[&str]) -> Resource {
        Resource {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            short_names: short.iter().map(|s| s.to_string()).collect(),
            namespaced: true,
            verbs: vec![],
        }
    }

    fn table() -> Discovery {
        Discovery {
            resources: vec![
                res("", "Pod", "pods", &["po"]),
                res("apps", "Deployment", "deployments", &["deploy"]),
                res("events.k8s.io", "Event", "events", &[]),
            ],
        }
    }

    #[test]
    fn plurals_singulars_kinds_and_short_names_resolve() {
        let d = table();
        for name in ["pods", "pod", "po", "Pod", "POD"] {
            assert_eq!(d.resolve(name).unwrap().plural, "pods", "{name}");
        }
        for name in [
            "deploy",
            "deployments.apps",
            "deploy.apps",
            "deployment.v1.apps",
        ] {
            assert_eq!(d.resolve(name).unwrap().kind, "Deployment", "{name}");
        }
        assert_eq!(
            d.resolve("events.events.k8s.io").unwrap().group,
            "events.k8s.io"
        );
        assert_eq!(
            d.resolve("nope").unwrap_err().to_string(),
            "the server doesn't have a resource type \"nope\""
        );
    }

    #[test]
    fn kinds_resolve_by_api_version() {
        let d = table();
        assert_eq!(
            d.for_kind("apps/v1", "Deployment").unwrap().plural,
            "deployments"
        );
        assert!(d.for_kind("v1", "Deployment").is_err());
    }

    #[test]
    fn urls_and_names() {
        let d = table();
        let deploy = d.resolve("deploy").unwrap();
        assert_eq!(
            deploy.url(Some("ns")),
            "/apis/apps/v1/namespaces/ns/deployments"
        );
        assert_eq!(deploy.url(None), "/apis/apps/v1/deployments");
        assert_eq!(deploy.qualified_kind(), "deployment.apps");
        assert_eq!(
            d.resolve("po").unwrap().url(Some("a")),
            "/api/v1/namespaces/a/pods"
        );
    }
}
