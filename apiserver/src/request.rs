//! Turning a URL into "who wants to do what to which object" (`RequestInfo`).
//!
//! Kubernetes URLs have a fixed grammar: `/api/v1/...` for the core group,
//! `/apis/<group>/<version>/...` for the others, then optionally `namespaces/<ns>/`, then
//! `<resource>[/<name>[/<subresource>]]`. The HTTP method plus the presence of a name (and
//! `?watch=true`) gives the Kubernetes *verb*: get, list, watch, create, update, patch, delete,
//! deletecollection. This mirrors `RequestInfoFactory` in k8s.io/apiserver, which splits the
//! decoded path (`%2F` separates segments too), and the storage key functions, which refuse a
//! name that cannot be one path segment (`.`, `..`, a `%`) with 400 BadRequest.

use std::collections::HashMap;

use axum::http::Method;

use crate::error::ApiError;
use crate::resources::{self, Resource};

/// The Kubernetes verb of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    /// Lowercase verb name, as in RBAC and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// A parsed resource request.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    pub verb: Verb,
    pub resource: &'static Resource,
    /// `None` for cluster-scoped resources and for all-namespace lists/watches.
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

impl RequestInfo {
    /// The `{verb, resource}` labels of the request metrics (`pods/status` for a subresource).
    pub fn metric_labels(&self) -> MetricLabels {
        let resource = match &self.subresource {
            Some(s) => format!("{}/{s}", self.resource.plural),
            None => self.resource.plural.to_string(),
        };
        MetricLabels {
            verb: self.verb.as_str().to_string(),
            resource,
        }
    }
}

/// Metric labels a handled request leaves in its response's extensions, so the metrics
/// middleware need not parse the URL a second time.
#[derive(Debug, Clone)]
pub struct MetricLabels {
    pub verb: String,
    pub resource: String,
}

/// What a path under `/api` or `/apis` addresses.
#[derive(Debug)]
pub enum Target {
    /// `/api/v1` or `/apis/<g>/<v>`: the APIResourceList of a group version.
    GroupVersion { group: String, version: String },
    /// `/apis/<g>`: one APIGroup.
    Group { group: String },
    /// A resource request.
    Resource(RequestInfo),
}

/// Subresources of a namespace object (`/api/v1/namespaces/<ns>/status`), which are not
/// resources inside the namespace.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// Parse `path` (without query, still percent-encoded) and the method into a target.
pub fn parse(method: &Method, path: &str, query: &Query) -> Result<Target, ApiError> {
    let path = percent_decode(path);
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let (group, version, rest): (&str, &str, &[&str]) = match parts.as_slice() {
        ["api", v, rest @ ..] => ("", v, rest),
        ["apis", g] => {
            return Ok(Target::Group {
                group: g.to_string(),
            })
        }
        ["apis", g, v, rest @ ..] => (g, v, rest),
        _ => return Err(ApiError::UnknownResource),
    };
    if !resources::serves_group_version(group, version) {
        return Err(ApiError::UnknownResource);
    }
    let mut rest = rest;
    // The deprecated `/api/v1/watch/...` form.
    let mut watch_path = false;
    if rest.first() == Some(&"watch") {
        watch_path = true;
        rest = &rest[1..];
    }
    if rest.is_empty() {
        return Ok(Target::GroupVersion {
            group: group.into(),
            version: version.into(),
        });
    }
    let mut namespace = None;
    if rest[0] == "namespaces" && rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
        namespace = Some(rest[1].to_string());
        rest = &rest[2..];
    }
    let (plural, name, sub) = match rest {
        [r] => (*r, None, None),
        [r, n] => (*r, Some(n.to_string()), None),
        [r, n, s] => (*r, Some(n.to_string()), Some(s.to_string())),
        _ => return Err(ApiError::UnknownResource),
    };
    let resource = resources::find(group, version, plural).ok_or(ApiError::UnknownResource)?;
    if let Some(s) = &sub {
        if !resource.subresources.contains(&s.as_str()) {
            return Err(ApiError::UnknownResource);
        }
    }
    if resource.namespaced && name.is_some() && namespace.is_none() {
        // A namespaced object must be addressed inside its namespace.
        return Err(ApiError::UnknownResource);
    }
    if !resource.namespaced && namespace.is_some() {
        return Err(ApiError::UnknownResource);
    }
    // Across all namespaces a namespaced resource can only be read (list/watch).
    if resource.namespaced && namespace.is_none() && *method != Method::GET {
        return Err(ApiError::MethodNotAllowed);
    }
    let watching = watch_path || query.flag("watch");
    let verb = match (method.clone(), name.is_some()) {
        (Method::GET, true) if watching => Verb::Watch,
        (Method::GET, true) => Verb::Get,
        (Method::GET, false) if watching => Verb::Watch,
        (Method::GET, false) => Verb::List,
        (Method::POST, false) => Verb::Create,
        (Method::POST, true) if sub.is_some() => Verb::Create,
        (Method::PUT, true) => Verb::Update,
        (Method::PATCH, true) => Verb::Patch,
        (Method::DELETE, true) => Verb::Delete,
        (Method::DELETE, false) => Verb::DeleteCollection,
        _ => return Err(ApiError::MethodNotAllowed),
    };
    // A named watch is a field selector upstream, not a storage key: any name will do.
    if let Some(name) = name.as_deref().filter(|_| verb != Verb::Watch) {
        check_path_segment_name(name)?;
    }
    Ok(Target::Resource(RequestInfo {
        verb,
        resource,
        namespace,
        name,
        subresource: sub,
    }))
}

/// Refuse a name that cannot be one segment of a URL or an etcd key, with the message of
/// kube-apiserver's key functions (`IsValidPathSegmentName`). A `/` cannot reach here: it
/// separates segments.
fn check_path_segment_name(name: &str) -> Result<(), ApiError> {
    let problem = match name {
        "." | ".." => format!("may not be '{name}'"),
        _ if name.contains('%') => "may not contain '%'".to_string(),
        _ => return Ok(()),
    };
    Err(ApiError::BadRequest(format!(
        "Name parameter invalid: {name:?}: {problem}"
    )))
}

/// Decode `%XX` escapes, as Go does for `URL.Path` before kube-apiserver reads it. A `%` not
/// followed by two hex digits stays as it is.
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let hex = |i: usize| bytes.get(i).and_then(|b| char::from(*b).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Query parameters. kube-rs starts query strings with `?&`: empty pairs are skipped.
#[derive(Debug, Default, Clone)]
pub struct Query(HashMap<String, String>);

impl Query {
    /// Parse a raw query string.
    pub fn parse(raw: Option<&str>) -> Query {
        let mut map = HashMap::new();
        if let Some(raw) = raw {
            for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
                if !k.is_empty() {
                    map.insert(k.into_owned(), v.into_owned());
                }
            }
        }
        Query(map)
    }

    /// A parameter's value, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// A non-empty parameter's value.
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// A boolean flag (`watch=true`, `watch=1`).
    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true") | Some("1"))
    }

    /// An integer parameter; a malformed one is a 400.
    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.non_empty(key) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::BadRequest(format!("invalid value for {key}: {v:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: Method, path: &str, q: &str) -> RequestInfo {
        match parse(&method, path, &Query::parse(Some(q))).unwrap() {
            Target::Resource(i) => i,
            other => panic!("not a resource: {other:?}"),
        }
    }

    #[test]
    fn namespaced_object_and_subresource() {
        let i = info(
            Method::POST,
            "/api/v1/namespaces/default/pods/web/binding",
            "",
        );
        assert_eq!(i.resource.plural, "pods");
        assert_eq!(i.namespace.as_deref(), Some("default"));
        assert_eq!(i.name.as_deref(), Some("web"));
        assert_eq!(i.subresource.as_deref(), Some("binding"));
        assert_eq!(i.verb, Verb::Create);
    }

    #[test]
    fn namespace_itself_and_its_status() {
        let i = info(Method::GET, "/api/v1/namespaces/kube-system", "");
        assert_eq!(i.resource.plural, "namespaces");
        assert_eq!(i.name.as_deref(), Some("kube-system"));
        let i = info(Method::PUT, "/api/v1/namespaces/x/finalize", "");
        assert_eq!(i.subresource.as_deref(), Some("finalize"));
        assert_eq!(i.namespace, None);
    }

    #[test]
    fn watch_verbs_and_kube_rs_query() {
        let i = info(
            Method::GET,
            "/apis/apps/v1/deployments",
            "&watch=true&resourceVersion=5",
        );
        assert_eq!(i.verb, Verb::Watch);
        assert_eq!(i.namespace, None);
        let i = info(Method::GET, "/api/v1/watch/namespaces/default/pods", "");
        assert_eq!(i.verb, Verb::Watch);
    }

    #[test]
    fn names_that_are_not_path_segments_are_bad_requests() {
        let q = Query::default();
        let refused = |method: Method, path: &str| match parse(&method, path, &q) {
            Err(ApiError::BadRequest(message)) => message,
            other => panic!("{path}: {other:?}"),
        };
        let pods = "/api/v1/namespaces/default/pods";
        assert_eq!(
            refused(Method::PUT, &format!("{pods}/..")),
            r#"Name parameter invalid: "..": may not be '..'"#
        );
        assert_eq!(
            refused(Method::GET, &format!("{pods}/./status")),
            r#"Name parameter invalid: ".": may not be '.'"#
        );
        assert_eq!(
            refused(Method::DELETE, &format!("{pods}/%2e%2E")),
            r#"Name parameter invalid: "..": may not be '..'"#
        );
        assert_eq!(
            refused(Method::GET, "/api/v1/nodes/a%25b"),
            r#"Name parameter invalid: "a%b": may not contain '%'"#
        );
        assert_eq!(
            refused(Method::PUT, "/api/v1/namespaces/.."),
            r#"Name parameter invalid: "..": may not be '..'"#
        );
        // A named watch is a field selector upstream, not a storage key: not refused.
        assert_eq!(
            info(Method::GET, &format!("{pods}/.."), "watch=1").verb,
            Verb::Watch
        );
    }

    #[test]
    fn the_path_is_percent_decoded_before_it_is_split() {
        let pods = "/api/v1/namespaces/default/pods";
        let i = info(Method::GET, &format!("{pods}/web%2Fstatus"), "");
        assert_eq!(i.name.as_deref(), Some("web"));
        assert_eq!(i.subresource.as_deref(), Some("status"));
        let i = info(Method::GET, &format!("{pods}/my%2dpod"), "");
        assert_eq!(i.name.as_deref(), Some("my-pod"));
        assert_eq!(
            percent_decode("a%zz%4"),
            "a%zz%4",
            "invalid escapes stay as they are"
        );
        assert_eq!(percent_decode("%C3%A9t%C3%A9"), "été");
    }

    #[test]
    fn unknown_things_are_404() {
        let q = Query::default();
        assert!(parse(&Method::GET, "/api/v1/serviceaccounts", &q).is_err());
        assert!(parse(&Method::GET, "/apis/batch/v1/jobs", &q).is_err());
        assert!(parse(
            &Method::GET,
            "/api/v1/namespaces/default/pods/web/scale",
            &q
        )
        .is_err());
        assert!(matches!(
            parse(&Method::POST, "/api/v1/pods", &q),
            Err(ApiError::MethodNotAllowed)
        ));
    }
}
