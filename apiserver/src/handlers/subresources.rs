//! Subresources: narrow doors into an object for one job.
//!
//! - `pods/binding`: the scheduler's write, setting `spec.nodeName` exactly once.
//! - `pods/eviction`: a delete that disruption budgets may refuse (we have none, so it
//!   deletes, honouring the embedded DeleteOptions); `kubectl drain` uses it.
//! - `deployments|replicasets/scale`: an `autoscaling/v1 Scale` view of `spec.replicas`, what
//!   `kubectl scale` and autoscalers read and write.
//! - `namespaces/finalize`: the namespace controller's write of `spec.finalizers`.
//!
//! `status` is handled by the main write path with `subresource = status`.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::delete::{delete_object, DeleteOptions};
use super::write::{add_warnings, patch_error, write_with_retries};
use super::Ctx;
use crate::codec;
use crate::error::{success_status, ApiError};
use crate::object;
use crate::patch::{self, PatchType};
use crate::selectors::LabelSelector;
use crate::watch_cache::resource_version_of;

/// `POST pods/<name>/binding`.
pub async fn bind(ctx: &Ctx, body: &[u8]) -> Result<Response, ApiError> {
    let binding = codec::decode_body(&ctx.headers, body)?;
    let target = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if target.is_empty() {
        return Err(ApiError::BadRequest(
            "binding target.name is required".into(),
        ));
    }
    let kind = binding
        .pointer("/target/kind")
        .and_then(Value::as_str)
        .unwrap_or("Node");
    if !kind.is_empty() && kind != "Node" {
        return Err(ApiError::BadRequest(format!(
            "binding target must be a Node, not {kind}"
        )));
    }
    let name = ctx.name().to_string();
    // Conflicts name the subresource, as kube-apiserver's: `pods/binding "p"`.
    let mut subject = ctx.subject();
    subject.qualified_resource = "pods/binding".into();
    write_with_retries(ctx, 0, |current| {
        let mut pod = current.object.clone();
        let assigned = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !assigned.is_empty() {
            return Err(ApiError::Conflict(
                subject.clone(),
                format!("pod {name} is already assigned to node \"{assigned}\""),
            ));
        }
        if object::is_deleting(&pod) {
            return Err(ApiError::Conflict(
                subject.clone(),
                format!("pod {name} is being deleted, cannot be assigned to a host"),
            ));
        }
        pod["spec"]["nodeName"] = json!(target);
        set_condition(&mut pod, "PodScheduled", "True");
        Ok(pod)
    })
    .await
    .map(|_| ())?;
    Ok(codec::json(StatusCode::CREATED, &success_status(201)))
}

/// Set (or replace) a pod condition.
fn set_condition(pod: &mut Value, kind: &str, status: &str) {
    if !pod.get("status").is_some_and(Value::is_object) {
        pod["status"] = json!({});
    }
    let conds = pod["status"]
        .as_object_mut()
        .expect("status is an object")
        .entry("conditions")
        .or_insert(json!([]));
    if let Some(list) = conds.as_array_mut() {
        list.retain(|c| c["type"] != kind);
        list.push(json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": object::now()}));
    }
}

/// `POST pods/<name>/eviction`.
pub async fn evict(ctx: &Ctx, body: &[u8]) -> Result<Response, ApiError> {
    let eviction = codec::decode_body(&ctx.headers, body)?;
    let mut opts = DeleteOptions::default();
    if let Some(d) = eviction.get("deleteOptions") {
        opts.merge_body(d)?;
    }
    delete_object(ctx, &ctx.key(), ctx.name(), &opts).await?;
    Ok(codec::json(StatusCode::CREATED, &success_status(201)))
}

/// The `autoscaling/v1 Scale` view of a deployment or replicaset.
fn scale_of(obj: &Value) -> Value {
    let selector = obj
        .pointer("/spec/selector")
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .and_then(|s| LabelSelector::from_label_selector(&s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default();
    let m = &obj["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)},
        "status": {
            "replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
            "selector": selector
        }
    })
}

/// `GET .../scale`.
pub async fn get_scale(ctx: &Ctx) -> Result<Response, ApiError> {
    let stored = ctx
        .app
        .storage
        .get(&ctx.key())
        .await?
        .ok_or_else(|| ApiError::NotFound(ctx.subject()))?;
    Ok(codec::json(StatusCode::OK, &scale_of(&stored.object)))
}

fn replicas_from_scale(scale: &Value) -> Result<i64, ApiError> {
    let n = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if n < 0 {
        return Err(ApiError::Invalid {
            subject: Default::default(),
            message: format!("Scale.autoscaling \"\" is invalid: spec.replicas: Invalid value: {n}: must be greater than or equal to 0"),
            causes: vec![json!({"reason": "FieldValueInvalid", "message": format!("Invalid value: {n}: must be greater than or equal to 0"), "field": "spec.replicas"})],
        });
    }
    Ok(n)
}

/// Write `spec.replicas` through the scale view; `precondition` from the Scale's metadata.
async fn write_scale(
    ctx: &Ctx,
    precondition: i64,
    replicas: impl Fn(&Value) -> Result<i64, ApiError>,
) -> Result<Response, ApiError> {
    let saved = write_with_retries(ctx, precondition, |current| {
        let mut obj = current.object.clone();
        obj["spec"]["replicas"] = json!(replicas(&current.object)?);
        Ok(obj)
    })
    .await?;
    Ok(codec::json(StatusCode::OK, &scale_of(&saved)))
}

/// `PUT .../scale`.
pub async fn update_scale(ctx: &Ctx, body: &[u8]) -> Result<Response, ApiError> {
    let scale = codec::decode_body(&ctx.headers, body)?;
    let n = replicas_from_scale(&scale)?;
    write_scale(ctx, resource_version_of(&scale), |_| Ok(n)).await
}

/// `PATCH .../scale` (kubectl scale sends a merge patch `{"spec":{"replicas":N}}`).
pub async fn patch_scale(ctx: &Ctx, body: &[u8]) -> Result<Response, ApiError> {
    let ct = codec::content_type(&ctx.headers);
    let pt = PatchType::from_content_type(&ct)
        .ok_or_else(|| ApiError::UnsupportedMediaType(format!("unsupported patch type {ct}")))?;
    let p = if pt == PatchType::Apply {
        codec::parse_yaml(body)?
    } else {
        codec::parse_json(body)?
    };
    let mut resp = write_scale(ctx, 0, |current| {
        let patched = patch::apply_patch(&scale_of(current), pt, &p).map_err(patch_error)?;
        replicas_from_scale(&patched)
    })
    .await?;
    add_warnings(&mut resp, &[]);
    Ok(resp)
}

/// `PUT namespaces/<name>/finalize`: replace `spec.finalizers`; a terminating namespace with
/// none left is deleted.
pub async fn finalize(ctx: &Ctx, body: &[u8]) -> Result<Response, ApiError> {
    let ns = codec::decode_body(&ctx.headers, body)?;
    let finalizers = ns.pointer("/spec/finalizers").cloned().unwrap_or(json!([]));
    let saved = write_with_retries(ctx, 0, |current| {
        let mut obj = current.object.clone();
        obj["spec"]["finalizers"] = finalizers.clone();
        Ok(obj)
    })
    .await?;
    Ok(codec::json(StatusCode::OK, &saved))
}
