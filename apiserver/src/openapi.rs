//! A minimal OpenAPI v3 document, enough for `kubectl apply` / `create` with their default
//! `--validate=strict`.
//!
//! kubectl downloads `/openapi/v3` and, per group version, looks for a path whose `patch`
//! operation names the object's group/version/kind (`x-kubernetes-group-version-kind`) and
//! takes a `fieldValidation` query parameter. Finding it, kubectl leaves validation to the
//! server (`?fieldValidation=Strict`, see `admission/strict.rs`). We publish no schemas, so
//! kubectl uses its compiled-in types for strategic merge patches.

use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::codec;
use crate::error::ApiError;
use crate::resources::RESOURCES;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `GET /openapi/v3`: the index of group-version documents.
pub async fn index() -> Response {
    let mut paths = Map::new();
    for r in RESOURCES {
        let p = gv_path(r.group, r.version);
        paths.entry(p.clone()).or_insert_with(|| {
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", env!("CARGO_PKG_VERSION").replace('.', ""))})
        });
    }
    codec::json(StatusCode::OK, &json!({ "paths": paths }))
}

/// `GET /openapi/v3/<api/v1 | apis/g/v>`.
pub async fn group_version(Path(path): Path<String>, _q: RawQuery) -> Response {
    let path = path.trim_matches('/');
    let mut paths = Map::new();
    for r in RESOURCES
        .iter()
        .filter(|r| gv_path(r.group, r.version) == path)
    {
        let url = if r.namespaced {
            format!("/{}/namespaces/{{namespace}}/{}/{{name}}", path, r.plural)
        } else {
            format!("/{}/{}/{{name}}", path, r.plural)
        };
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        paths.insert(
            url,
            json!({
                "patch": {
                    "x-kubernetes-group-version-kind": gvk,
                    "x-kubernetes-action": "patch",
                    "parameters": [
                        {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                        {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                        {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}}
                    ],
                    "requestBody": {"content": {
                        "application/json-patch+json": {"schema": {"type": "object"}},
                        "application/merge-patch+json": {"schema": {"type": "object"}},
                        "application/apply-patch+yaml": {"schema": {"type": "object"}}
                    }},
                    "responses": {"200": {"description": "OK"}}
                }
            }),
        );
    }
    if paths.is_empty() {
        return ApiError::UnknownResource.into_response();
    }
    let doc: Value = json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (minik8s)", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}}
    });
    codec::json(StatusCode::OK, &doc)
}

/// `GET /openapi/v2`: an empty Swagger document (clients that fall back to v2 find no
/// schemas and use their compiled-in types).
pub async fn v2() -> Response {
    codec::json(
        StatusCode::OK,
        &json!({"swagger": "2.0", "info": {"title": "Kubernetes (minik8s)", "version": "v1.32.0"}, "paths": {}, "definitions": {}}),
    )
}
