//! Create, update (PUT) and patch: the write path every object takes.
//!
//! A write is: decode → check the type header → field validation (unknown fields) → typed
//! round trip → server-set metadata (uid, creationTimestamp, generation...) → defaults →
//! validation → an etcd transaction compared on the object's revision. A PUT carrying a stale
//! `resourceVersion` loses the compare and gets 409 Conflict; a PATCH re-reads and re-applies
//! itself instead (the patch, not the whole object, is the client's intent).

use axum::http::{HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::response::Response;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use serde_json::{json, Value};

use super::{check_namespace_open, check_type_meta, from_api, normalize, to_api, Ctx};
use crate::admission::strict::FieldValidation;
use crate::admission::{self, defaults, strict, validation};
use crate::allocator;
use crate::codec;
use crate::error::ApiError;
use crate::object;
use crate::patch::{self, PatchType};
use crate::resources::Resource;
use crate::storage::{Claims, StorageError, Stored};
use crate::watch_cache::resource_version_of;

/// How many times a PATCH or unconditional PUT re-reads after losing a race. kube-apiserver's
/// GuaranteedUpdate retries without limit: every lost compare means another write committed,
/// so the loop always makes progress; under heavy contention (many controllers patching one
/// object) a small cap would turn a patch of unrelated fields into a spurious 409.
const MAX_RETRIES: usize = 10_000;

/// `POST .../<resource>`.
pub async fn create(ctx: &Ctx, body: &[u8]) -> Result<Response, ApiError> {
    let neg = ctx.negotiate(false)?;
    let mut obj = codec::decode_body(&ctx.headers, body)?;
    check_type_meta(ctx.resource(), &mut obj)?;
    let (created, warnings) = create_object(ctx, obj).await?;
    let mut resp = created.respond(ctx.resource(), neg.format);
    add_warnings(&mut resp, &warnings);
    Ok(resp)
}

/// A new object, as the create path leaves it.
pub enum Created {
    /// Written: the stored JSON (without resourceVersion) and the create's revision.
    Stored { bytes: Vec<u8>, revision: i64 },
    /// `dryRun=All`: the object that would have been stored.
    DryRun(Value),
}

impl Created {
    /// The 201 response. A plain JSON answer is the stored bytes with the resourceVersion
    /// spliced in: no decode and no second encode of the object.
    pub fn respond(self, r: &Resource, format: codec::Format) -> Response {
        let object = match self {
            Created::DryRun(object) => object,
            Created::Stored { bytes, revision } => {
                if format == codec::Format::Json && r.group != "events.k8s.io" {
                    if let Some(body) = crate::storage::stamp_encoded(&bytes, revision) {
                        return codec::json_bytes(StatusCode::CREATED, body);
                    }
                }
                match serde_json::from_slice::<Value>(&bytes) {
                    Ok(mut object) => {
                        crate::storage::set_resource_version(&mut object, revision);
                        object
                    }
                    Err(e) => {
                        return ApiError::Internal(format!("stored object: {e}")).into_response()
                    }
                }
            }
        };
        codec::respond(StatusCode::CREATED, &to_api(r, object), format)
    }
}

/// Create `obj` (API form, type header checked): the shared path of POST and of server-side
/// apply to an absent object. Returns the new object and field warnings.
pub async fn create_object(ctx: &Ctx, obj: Value) -> Result<(Created, Vec<String>), ApiError> {
    let r = ctx.resource();
    // Pods, the hottest create, are defaulted inside the one typed decode (their defaults do
    // not read metadata, which stamp_new changes) and validated on that typed object; other
    // kinds are defaulted after stamping and validated from JSON.
    let (mut obj, warnings, mut pod) = if r.plural == "pods" {
        let (obj, warnings, pod) = decode_typed_pod(ctx, obj)?;
        (obj, warnings, Some(pod))
    } else {
        let (obj, warnings) = decode_typed(ctx, obj)?;
        (obj, warnings, None)
    };
    if !object::meta_str(&obj, "resourceVersion").is_empty() {
        return Err(ApiError::BadRequest(
            "resourceVersion should not be set on objects to be created".into(),
        ));
    }
    let generated =
        object::name(&obj).is_empty() && !object::meta_str(&obj, "generateName").is_empty();
    stamp_new(r, &mut obj, ctx.info.namespace.as_deref())?;
    if pod.is_none() {
        defaults::apply_defaults(r.plural, &mut obj);
    }
    if r.plural == admission::certificates::RESOURCE {
        admission::certificates::prepare_create(&mut obj, ctx.user.as_ref());
    }
    if r.plural == "pods" {
        obj["status"] = json!({"phase": "Pending"});
    }
    let name = object::name(&obj).to_string();
    let causes = match pod.as_mut() {
        Some(pod) => {
            // The spec is the stamped object's (stamping touches metadata and status only).
            pod.metadata = validation::object_meta(&obj);
            pod.status = Some(PodStatus {
                phase: Some("Pending".into()),
                ..Default::default()
            });
            validation::validate_pod_create(pod)
        }
        None => validation::validate_create(r.plural, &obj),
    };
    drop(pod);
    validate(r, &name, causes)?;
    if let Some(ns) = ctx.info.namespace.as_deref() {
        check_namespace_open(&ctx.app, ns).await?;
    }
    // A Service's ClusterIP and node ports: claimed in the create's own transaction.
    let unallocated_spec = match r.plural {
        "services" => obj.get("spec").cloned(),
        _ => None,
    };
    let mut plan = allocate(ctx, None, &mut obj).await?;
    if ctx.dry_run() {
        return Ok((Created::DryRun(obj), warnings));
    }
    let cache = ctx.app.cache(r);
    let mut lost_picks = 0;
    for attempt in 0.. {
        let key = ctx
            .app
            .storage
            .key(r.storage, ctx.info.namespace.as_deref(), object::name(&obj));
        let bytes = crate::storage::encode(&obj);
        // The watch cache takes this object with etcd's event instead of decoding it again.
        let expected = cache.expect_write(&key, bytes.clone(), obj);
        match ctx
            .app
            .storage
            .create_claiming(&key, bytes.clone(), &plan.claims)
            .await
        {
            Ok(revision) => {
                expected.committed();
                return Ok((Created::Stored { bytes, revision }, warnings));
            }
            Err(e) => {
                obj = match expected.withdraw() {
                    Some(obj) => obj,
                    // Taken by the reflector: the put did happen (a timeout after the commit).
                    None => serde_json::from_slice(&bytes).map_err(|e| {
                        ApiError::Internal(format!("re-reading an encoded object: {e}"))
                    })?,
                };
                match e {
                    StorageError::AlreadyExists { .. } if generated && attempt < 8 => {
                        let prefix = object::meta_str(&obj, "generateName").to_string();
                        object::meta_mut(&mut obj)
                            .insert("name".into(), json!(object::generate_name(&prefix)));
                    }
                    StorageError::AlreadyExists { .. } => {
                        return Err(ApiError::AlreadyExists(r.subject(object::name(&obj))))
                    }
                    StorageError::Claimed { key } => {
                        if let Some(cause) = plan.refusal(&key) {
                            validate(r, object::name(&obj), vec![cause])?;
                        }
                        // A value picked automatically was taken meanwhile: pick again.
                        lost_picks += 1;
                        if lost_picks > MAX_PICKS {
                            return Err(ApiError::Internal(format!(
                                "allocation kept losing races ({key})"
                            )));
                        }
                        if let Some(spec) = unallocated_spec.clone() {
                            obj["spec"] = spec;
                        }
                        plan = allocate(ctx, None, &mut obj).await?;
                    }
                    e => return Err(e.into()),
                }
            }
        }
    }
    unreachable!("the loop returns")
}

/// How many times a create or update picks a ClusterIP or node port again after another
/// writer took the one picked.
const MAX_PICKS: usize = 64;

/// The claims of a Service write (`crate::allocator`), the values it lacked filled into `obj`;
/// an empty plan for every other resource and for subresources.
async fn allocate(
    ctx: &Ctx,
    old: Option<&Value>,
    obj: &mut Value,
) -> Result<allocator::Plan, ApiError> {
    if ctx.resource().plural != "services" || ctx.info.subresource.is_some() {
        return Ok(allocator::Plan::default());
    }
    allocator::plan(&ctx.app.storage, &ctx.app.config.service_ranges, old, obj)
        .await
        .map_err(|e| match e {
            allocator::AllocatorError::Invalid(causes) => {
                let r = ctx.resource();
                let name = object::name(obj);
                ApiError::Invalid {
                    subject: Box::new(r.subject(name)),
                    message: admission::invalid_message(r.kind, r.group, name, &causes),
                    causes: causes.iter().map(|c| c.to_status_cause()).collect(),
                }
            }
            allocator::AllocatorError::Storage(e) => e.into(),
            e => ApiError::Internal(e.to_string()),
        })
}

/// Server-set metadata of a new object: namespace from the URL, name from generateName, uid,
/// creationTimestamp, generation; client attempts at system fields are dropped.
pub fn stamp_new(
    r: &Resource,
    obj: &mut Value,
    url_namespace: Option<&str>,
) -> Result<(), ApiError> {
    let m = object::meta_mut(obj);
    if r.namespaced {
        let ns = url_namespace.unwrap_or("");
        match m.get("namespace").and_then(Value::as_str) {
            Some(body_ns) if !body_ns.is_empty() && body_ns != ns => {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ))
            }
            _ => {
                m.insert("namespace".into(), json!(ns));
            }
        }
    } else {
        m.remove("namespace");
    }
    let name = m
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        let prefix = m
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !prefix.is_empty() {
            m.insert("name".into(), json!(object::generate_name(&prefix)));
        }
    }
    m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("creationTimestamp".into(), json!(object::now()));
    for f in [
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "managedFields",
    ] {
        m.remove(f);
    }
    if r.has_generation() {
        m.insert("generation".into(), json!(1));
    } else {
        m.remove("generation");
    }
    Ok(())
}

/// Decode a body (API form, type header checked) through its typed struct, once: returns the
/// canonical storage form and the unknown-field warnings. Unknown fields follow
/// `fieldValidation`: Strict → 400, Warn → `Warning` headers, Ignore → dropped silently. The
/// server default is Warn, as in kube-apiserver ≥ 1.27.
pub fn decode_typed(ctx: &Ctx, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
    let mode = field_validation(ctx)?;
    let r = ctx.resource();
    if r.group == "events.k8s.io" {
        // Stored as core/v1 Events; the view conversion keeps only known fields anyway.
        return Ok((normalize(r, &from_api(r, obj))?, vec![]));
    }
    let mut typed = normalize(r, &obj)?;
    let warnings = unknown_field_warnings(r, mode, &obj, &typed)?;
    if r.plural == "secrets" {
        // Conversion, as kube-apiserver's decoder does it: stringData is never stored.
        admission::config_data::fold_string_data(&mut typed);
    }
    Ok((typed, warnings))
}

/// [`decode_typed`] for a new Pod, with its defaults applied to the typed object in the same
/// pass (defaults only add fields, so the unknown-field check is unchanged); the typed Pod is
/// returned too, for validation without decoding the object again.
fn decode_typed_pod(ctx: &Ctx, obj: Value) -> Result<(Value, Vec<String>, Pod), ApiError> {
    let mode = field_validation(ctx)?;
    let r = ctx.resource();
    let (typed, pod) = super::normalize_pod_defaulted(r, &obj)?;
    let warnings = unknown_field_warnings(r, mode, &obj, &typed)?;
    Ok((typed, warnings, pod))
}

/// The `fieldValidation` query parameter (default `Warn`); any other value is a 400.
fn field_validation(ctx: &Ctx) -> Result<FieldValidation, ApiError> {
    FieldValidation::from_query(ctx.query.get("fieldValidation"))
        .map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// The fields of `obj` missing from its typed round trip `typed`: 400 under `Strict`, warnings
/// under `Warn`, nothing under `Ignore`.
fn unknown_field_warnings(
    r: &Resource,
    mode: FieldValidation,
    obj: &Value,
    typed: &Value,
) -> Result<Vec<String>, ApiError> {
    if mode == FieldValidation::Ignore {
        return Ok(vec![]);
    }
    let unknown = strict::unknown_in(obj, typed);
    if unknown.is_empty() {
        return Ok(vec![]);
    }
    if mode == FieldValidation::Strict {
        return Err(ApiError::BadRequest(format!(
            "{} in version \"{}\" cannot be handled as a {}: {}",
            r.kind,
            r.version,
            r.kind,
            strict::strict_error_message(&unknown)
        )));
    }
    Ok(unknown.iter().map(|f| strict::warning_for(f)).collect())
}

/// Attach `Warning` headers (kubectl prints them).
pub fn add_warnings(resp: &mut Response, warnings: &[String]) {
    for w in warnings {
        let text = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(v) = HeaderValue::from_str(&text) {
            resp.headers_mut().append("warning", v);
        }
    }
}

/// 422 Invalid when validation found problems.
pub fn validate(r: &Resource, name: &str, causes: Vec<admission::Cause>) -> Result<(), ApiError> {
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::Invalid {
        subject: Box::new(r.subject(name)),
        message: admission::invalid_message(r.kind, r.group, name, &causes),
        causes: causes.iter().map(|c| c.to_status_cause()).collect(),
    })
}

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

/// Validate and store `new` over `current` (compare on `current.revision`). A deleted object
/// whose last finalizer is gone is removed.
pub async fn commit_update(ctx: &Ctx, current: &Stored, new: Value) -> Result<Value, StorageError> {
    commit_update_claiming(ctx, current, new, &Claims::default()).await
}

/// [`commit_update`] that also claims and releases `claims` (a Service's values); the
/// removal of a finished deletion releases whatever the object held.
pub async fn commit_update_claiming(
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
        match commit_update_claiming(ctx, &current, new, &plan.claims).await {
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

/// `PATCH .../<resource>/<name>` (and `/status`): JSON patch, merge patch, strategic merge
/// patch, or server-side apply (which creates an absent object).
pub async fn patch(ctx: &Ctx, body: &[u8]) -> Result<Response, ApiError> {
    let neg = ctx.negotiate(false)?;
    let r = ctx.resource();
    let ct = codec::content_type(&ctx.headers);
    let patch_type = PatchType::from_content_type(&ct).ok_or_else(|| {
        ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format ({ct}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"
        ))
    })?;
    let patch_body = match patch_type {
        PatchType::Apply => codec::parse_yaml(body)?,
        _ => codec::parse_json(body)?,
    };
    if patch_type == PatchType::Apply {
        if ctx.query.non_empty("fieldManager").is_none() {
            // kube-apiserver's ValidatePatchOptions: a 422 about PatchOptions, not the object.
            let causes = vec![admission::Cause::required(
                "fieldManager",
                "is required for apply patch",
            )];
            return Err(ApiError::Invalid {
                subject: Box::new(crate::error::Subject {
                    qualified_resource: "patchoptions.meta.k8s.io".into(),
                    kind: "PatchOptions".into(),
                    name: String::new(),
                    group: "meta.k8s.io".into(),
                }),
                message: admission::invalid_message("PatchOptions", "meta.k8s.io", "", &causes),
                causes: causes.iter().map(|c| c.to_status_cause()).collect(),
            });
        }
        let exists = ctx.app.storage.get(&ctx.key()).await?.is_some();
        if !exists && ctx.info.subresource.is_none() {
            let mut obj = patch_body.clone();
            check_type_meta(r, &mut obj)?;
            if object::name(&obj) != ctx.name() {
                return Err(ApiError::BadRequest(format!(
                    "the name of the object ({}) does not match the name on the URL ({})",
                    object::name(&obj),
                    ctx.name()
                )));
            }
            let (created, warnings) = create_object(ctx, obj).await?;
            let mut resp = created.respond(r, neg.format);
            add_warnings(&mut resp, &warnings);
            return Ok(resp);
        }
    }
    let mut warnings = Vec::new();
    let saved = write_with_retries(ctx, 0, |current| {
        let base = to_api(r, current.object.clone());
        let mut patched =
            patch::apply_patch(&base, patch_type, &patch_body).map_err(patch_error)?;
        check_type_meta(r, &mut patched)?;
        if object::name(&patched) != ctx.name() {
            return Err(ApiError::BadRequest(
                "metadata.name cannot be changed by a patch".into(),
            ));
        }
        let (mut obj, w) = decode_typed(ctx, patched)?;
        warnings = w;
        let uid = object::meta_str(&obj, "uid");
        if !uid.is_empty() && uid != object::meta_str(&current.object, "uid") {
            validate(
                r,
                ctx.name(),
                vec![admission::Cause::invalid(
                    "metadata.uid",
                    uid,
                    "field is immutable",
                )],
            )?;
        }
        // The patch result carries the current revision unless the patch set another one.
        if patch_sets_resource_version(&patch_body) {
            return Ok(obj);
        }
        crate::storage::set_resource_version(&mut obj, current.revision);
        Ok(obj)
    })
    .await?;
    let mut resp = codec::respond(StatusCode::OK, &to_api(r, saved), neg.format);
    add_warnings(&mut resp, &warnings);
    Ok(resp)
}

fn patch_sets_resource_version(patch: &Value) -> bool {
    match patch {
        Value::Object(_) => patch
            .pointer("/metadata/resourceVersion")
            .is_some_and(|v| v.is_string()),
        Value::Array(ops) => ops
            .iter()
            .any(|op| op["path"] == "/metadata/resourceVersion"),
        _ => false,
    }
}

/// Map a patch failure to the Status kube-apiserver answers: 400 for a malformed patch, 422
/// for a well-formed one that cannot be applied.
pub fn patch_error(e: patch::PatchError) -> ApiError {
    if e.is_bad_request() {
        ApiError::BadRequest(e.to_string())
    } else {
        ApiError::Invalid {
            subject: Default::default(),
            message: e.to_string(),
            causes: vec![],
        }
    }
}
