//! Update (PUT, and the read-modify-write loop PATCH and subresources share): system metadata
//! kept, status and spec guarded by subresource, generation bumped on a spec change, stored
//! with a compare on the revision read; a stale `resourceVersion` is 409 Conflict.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::super::{check_type_meta, to_api, Ctx};
use super::allocation::allocate;
use super::decode::{add_warnings, decode_typed, validate};
use crate::admission::{self, defaults, validation};
use crate::allocator;
use crate::codec;
use crate::error::ApiError;
use crate::object;
use crate::resources::Resource;
use crate::storage::{Claims, StorageError, Stored};
use crate::watch_cache::resource_version_of;

/// How many times a PATCH or unconditional PUT re-reads after losing a race. kube-apiserver's
/// GuaranteedUpdate retries without limit: every lost compare means another write committed,
/// so the loop always makes progress; under heavy contention (many controllers patching one
/// object) a small cap would turn a patch of unrelated fields into a spurious 409.
const MAX_RETRIES: usize = 10_000;

/// Merge a client's new version of an object with the stored one: system metadata is
/// preserved, the main resource cannot change status and a status write cannot change
/// anything else; a spec change bumps `generation`.
pub fn prepare_update(
    r: &Resource,
    subresource: Option<&str>,
    old: &Value,
    mut new: Value,
) -> Value {
    if r.plural == admission::certificates::RESOURCE {
        // metadata as for every kind, then the CSR's own doors (status, approval)
        if subresource.is_none() {
            keep_system_metadata(old, &mut new);
        }
        return admission::certificates::prepare_update(subresource, old, new);
    }
    if subresource == Some("status") {
        let mut out = old.clone();
        out["status"] = new.get("status").cloned().unwrap_or(Value::Null);
        if out["status"].is_null() {
            out.as_object_mut().map(|o| o.remove("status"));
        }
        return out;
    }
    keep_system_metadata(old, &mut new);
    // Only the main resource is barred from status; binding/scale/finalize are server code.
    if r.has_status() && subresource.is_none() {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                new.as_object_mut().map(|o| o.remove("status"));
            }
        }
    }
    if r.has_generation() && generation_changes(r, old, &new) {
        let g = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        object::meta_mut(&mut new).insert("generation".into(), json!(g));
    }
    new
}

/// Whether an update is a new generation: a change of `spec`; for an EndpointSlice, which has
/// none, of anything but metadata, or of its labels (its strategy's rule: the EndpointSlice
/// controller compares generations to tell a stale cache from its own last write).
fn generation_changes(r: &Resource, old: &Value, new: &Value) -> bool {
    if r.plural == "endpointslices" {
        return ["addressType", "endpoints", "ports"]
            .iter()
            .any(|f| new.get(f) != old.get(f))
            || new.pointer("/metadata/labels") != old.pointer("/metadata/labels");
    }
    new.get("spec") != old.get("spec")
}

/// System metadata (uid, creationTimestamp, deletion, generation, name, namespace) stays as
/// stored whatever an update sends; managedFields are not kept.
fn keep_system_metadata(old: &Value, new: &mut Value) {
    let old_meta = old.get("metadata").cloned().unwrap_or(json!({}));
    let m = object::meta_mut(new);
    for f in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "name",
        "namespace",
    ] {
        match old_meta.get(f) {
            Some(v) => {
                m.insert(f.into(), v.clone());
            }
            None => {
                m.remove(f);
            }
        }
    }
    m.remove("managedFields");
}

/// Whether an object being deleted has nothing left to wait for.
pub fn deletion_complete(obj: &Value) -> bool {
    object::is_deleting(obj)
        && object::finalizers(obj).is_empty()
        && obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            == 0
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|a| a.is_empty())
}

/// Validate and store `new` over `current` (compare on `current.revision`), claiming and
/// releasing `claims` (a Service's values). A deleted object whose last finalizer is gone is
/// removed, releasing whatever it held.
async fn commit_update(
    ctx: &Ctx,
    current: &Stored,
    new: Value,
    claims: &Claims,
) -> Result<Value, StorageError> {
    if ctx.dry_run() {
        return Ok(new);
    }
    let storage = &ctx.app.storage;
    let stored = storage
        .update_claiming(&current.key, &new, current.revision, claims)
        .await?;
    if deletion_complete(&stored.object) {
        let held = allocator::held_keys(storage, ctx.resource().plural, &stored.object);
        return Ok(storage
            .delete_releasing(&stored.key, stored.revision, &held)
            .await?
            .object);
    }
    Ok(stored.object)
}

/// `PUT .../<resource>/<name>` (and `/status`).
pub async fn update(ctx: &Ctx, body: &[u8]) -> Result<Response, ApiError> {
    let neg = ctx.negotiate(false)?;
    let r = ctx.resource();
    let mut obj = codec::decode_body(&ctx.headers, body)?;
    check_type_meta(r, &mut obj)?;
    let body_name = object::name(&obj).to_string();
    if body_name != ctx.name() {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({})",
            ctx.name()
        )));
    }
    let body_ns = object::namespace(&obj);
    if r.namespaced && !body_ns.is_empty() && Some(body_ns) != ctx.info.namespace.as_deref() {
        return Err(ApiError::BadRequest(
            "the namespace of the provided object does not match the namespace sent on the request"
                .into(),
        ));
    }
    let (obj, warnings) = decode_typed(ctx, obj)?;
    let precondition = resource_version_of(&obj);
    let body_uid = object::meta_str(&obj, "uid").to_string();
    let saved = write_with_retries(ctx, precondition, |current| {
        // A uid in the body is a precondition, as kube-apiserver's: a PUT meant for an object
        // that was deleted and recreated under the same name must not overwrite the new one.
        let uid = object::meta_str(&current.object, "uid");
        if !body_uid.is_empty() && body_uid != uid {
            return Err(ApiError::Conflict(
                ctx.subject(),
                format!("Precondition failed: UID in precondition: {body_uid}, UID in object meta: {uid}"),
            ));
        }
        Ok(obj.clone())
    })
    .await?;
    let mut resp = codec::respond(StatusCode::OK, &to_api(r, saved), neg.format);
    add_warnings(&mut resp, &warnings);
    Ok(resp)
}

/// Read-modify-write loop shared by PUT, PATCH and subresources. `precondition` > 0 pins the
/// revision the client saw (a mismatch is 409); otherwise losing a race re-reads and retries.
pub async fn write_with_retries(
    ctx: &Ctx,
    precondition: i64,
    mut change: impl FnMut(&Stored) -> Result<Value, ApiError>,
) -> Result<Value, ApiError> {
    let r = ctx.resource();
    let key = ctx.key();
    let conflict = || {
        ApiError::Conflict(
            ctx.subject(),
            "the object has been modified; please apply your changes to the latest version and try again".into(),
        )
    };
    for _ in 0..MAX_RETRIES {
        let current = ctx
            .app
            .storage
            .get(&key)
            .await?
            .ok_or_else(|| ApiError::NotFound(ctx.subject()))?;
        if precondition > 0 && precondition != current.revision {
            return Err(conflict());
        }
        let wanted = change(&current)?;
        let wanted_rv = resource_version_of(&wanted);
        if precondition == 0 && wanted_rv > 0 && wanted_rv != current.revision {
            // A patch that carries a resourceVersion is a precondition too.
            return Err(conflict());
        }
        let mut new = prepare_update(r, ctx.info.subresource.as_deref(), &current.object, wanted);
        if ctx.info.subresource.is_none() {
            defaults::apply_defaults(r.plural, &mut new);
            if r.plural == "services" {
                admission::services::keep_allocated_json(&mut new, &current.object);
            }
        }
        let causes = match ctx.info.subresource.as_deref() {
            None => validation::validate_update(r.plural, &new, &current.object),
            Some(sub) => {
                validation::validate_subresource_update(r.plural, sub, &new, &current.object)
            }
        };
        validate(r, ctx.name(), causes)?;
        let plan = allocate(ctx, Some(&current.object), &mut new).await?;
        if new == current.object {
            // Nothing changed: no write, no new revision (as kube-apiserver).
            return Ok(current.object);
        }
        match commit_update(ctx, &current, new, &plan.claims).await {
            Ok(v) => return Ok(v),
            Err(StorageError::Claimed { key }) => match plan.refusal(&key) {
                Some(cause) => validate(r, ctx.name(), vec![cause])?,
                // A picked value was taken meanwhile: read again and pick again.
                None => continue,
            },
            Err(StorageError::Conflict { .. }) if precondition == 0 => continue,
            Err(StorageError::Conflict { .. }) => return Err(conflict()),
            Err(StorageError::NotFound { .. }) => return Err(ApiError::NotFound(ctx.subject())),
            Err(e) => return Err(e.into()),
        }
    }
    Err(conflict())
}
