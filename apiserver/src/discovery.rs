//! Discovery: how clients learn which resources exist before they touch any.
//!
//! kubectl turns `kubectl get deploy` into a URL by reading `/api`, `/apis` and one
//! `APIResourceList` per group version (short names, verbs, subresources, namespaced or
//! not). Newer clients ask for *aggregated* discovery (`APIGroupDiscoveryList`, everything in
//! two requests) through `Accept`; we answer both forms from the table in `resources.rs`.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::codec;
use crate::resources::{self, Resource, RESOURCES};
use crate::state::App;

const AGGREGATED_CT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// `GET /version`.
pub async fn version() -> Response {
    codec::json(
        StatusCode::OK,
        &json!({
            "major": "1",
            "minor": "32",
            "gitVersion": "v1.32.0-minik8s",
            "gitCommit": env!("CARGO_PKG_VERSION"),
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "rust",
            "compiler": "rustc",
            "platform": "linux/amd64"
        }),
    )
}

fn wants_aggregated(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split(',').next())
        .is_some_and(|first| {
            first.contains("as=APIGroupDiscoveryList")
                && first.contains("v=v2")
                && !first.contains("v2beta1")
        })
}

fn aggregated(body: Value) -> Response {
    let mut resp = (
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
    )
        .into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(AGGREGATED_CT),
    );
    resp
}

/// `GET /api`: the legacy group's versions (or its aggregated discovery).
pub async fn api_versions(State(_app): State<App>, headers: HeaderMap) -> Response {
    if wants_aggregated(&headers) {
        return aggregated(json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": [group_discovery("")],
        }));
    }
    codec::json(
        StatusCode::OK,
        &json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]
        }),
    )
}

/// `GET /apis`: every named group (or their aggregated discovery).
pub async fn api_group_list(State(_app): State<App>, headers: HeaderMap) -> Response {
    if wants_aggregated(&headers) {
        let items: Vec<Value> = resources::groups()
            .into_iter()
            .map(|(g, _)| group_discovery(g))
            .collect();
        return aggregated(json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        }));
    }
    let groups: Vec<Value> = resources::groups()
        .into_iter()
        .map(|(g, v)| api_group(g, v))
        .collect();
    codec::json(
        StatusCode::OK,
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
    )
}

/// One `APIGroup`.
pub fn api_group(group: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

/// `GET /apis/<group>`.
pub fn group_response(group: &str) -> Option<Response> {
    let (_, v) = resources::groups().into_iter().find(|(g, _)| *g == group)?;
    Some(codec::json(StatusCode::OK, &api_group(group, v)))
}

/// A subresource's kind and verbs, as discovery lists them.
fn subresource_info(r: &Resource, sub: &str) -> (String, String, String, Vec<&'static str>) {
    let own = (
        r.group.to_string(),
        r.version.to_string(),
        r.kind.to_string(),
    );
    let ((g, v, k), verbs) = match sub {
        "status" | "approval" => (own, vec!["get", "patch", "update"]),
        "scale" => (
            ("autoscaling".into(), "v1".into(), "Scale".into()),
            vec!["get", "patch", "update"],
        ),
        "binding" => (("".into(), "v1".into(), "Binding".into()), vec!["create"]),
        "eviction" => (
            ("policy".into(), "v1".into(), "Eviction".into()),
            vec!["create"],
        ),
        "log" => (own, vec!["get"]),
        "exec" => (
            (String::new(), "v1".into(), "PodExecOptions".into()),
            vec!["create", "get"],
        ),
        "finalize" => (own, vec!["update"]),
        // kube-apiserver's verbs for `nodes/proxy`, which relays any method to the kubelet
        "proxy" => (
            (String::new(), "v1".into(), "NodeProxyOptions".into()),
            vec!["create", "delete", "get", "patch", "update"],
        ),
        _ => (own, vec![]),
    };
    (g, v, k, verbs)
}

/// `GET /api/v1` or `/apis/<g>/<v>`: the `APIResourceList`.
pub fn resource_list(group: &str, version: &str) -> Value {
    let mut list = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        list.push(json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": resources::verbs(),
            "shortNames": r.short_names,
            "categories": r.categories,
        }));
        for sub in r.subresources {
            let (g, v, k, verbs) = subresource_info(r, sub);
            let mut entry = json!({
                "name": format!("{}/{}", r.plural, sub),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": k,
                "verbs": verbs,
            });
            if g != r.group || v != r.version {
                entry["group"] = json!(g);
                entry["version"] = json!(v);
            }
            list.push(entry);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list})
}

/// One group's aggregated discovery (`APIGroupDiscovery`).
fn group_discovery(group: &str) -> Value {
    let mut versions: Vec<&str> = Vec::new();
    for r in RESOURCES.iter().filter(|r| r.group == group) {
        if !versions.contains(&r.version) {
            versions.push(r.version);
        }
    }
    let versions: Vec<Value> = versions
        .into_iter()
        .map(|v| {
            let resources: Vec<Value> = RESOURCES
                .iter()
                .filter(|r| r.group == group && r.version == v)
                .map(|r| {
                    let subs: Vec<Value> = r
                        .subresources
                        .iter()
                        .map(|s| {
                            let (g, sv, k, verbs) = subresource_info(r, s);
                            json!({"subresource": s, "responseKind": {"group": g, "version": sv, "kind": k}, "verbs": verbs})
                        })
                        .collect();
                    json!({
                        "resource": r.plural,
                        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": r.singular,
                        "verbs": resources::verbs(),
                        "shortNames": r.short_names,
                        "categories": r.categories,
                        "subresources": subs,
                    })
                })
                .collect();
            json!({"version": v, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": group}, "versions": versions})
}

/// The response for a group-version path (`/api/v1`).
pub fn group_version_response(group: &str, version: &str) -> Response {
    codec::json(StatusCode::OK, &resource_list(group, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_list_has_subresources_with_their_kinds() {
        let l = resource_list("", "v1");
        let res = l["resources"].as_array().unwrap();
        let eviction = res.iter().find(|r| r["name"] == "pods/eviction").unwrap();
        assert_eq!(eviction["group"], "policy");
        assert_eq!(eviction["kind"], "Eviction");
        let pods = res.iter().find(|r| r["name"] == "pods").unwrap();
        assert_eq!(pods["shortNames"][0], "po");
        let scale = resource_list("apps", "v1")["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .cloned()
            .unwrap();
        assert_eq!(scale["group"], "autoscaling");
    }

    #[test]
    fn aggregated_discovery_covers_every_group() {
        let g = group_discovery("apps");
        assert_eq!(g["versions"][0]["resources"].as_array().unwrap().len(), 2);
        assert_eq!(g["versions"][0]["resources"][0]["scope"], "Namespaced");
    }
}
