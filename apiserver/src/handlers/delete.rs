//! DELETE, with graceful deletion and finalizers.
//!
//! Deleting is not always immediate. An object with `metadata.finalizers` only gets a
//! `deletionTimestamp`; whoever owns each finalizer removes it when done, and the last removal
//! deletes the object (see `write::deletion_complete`). A pod running on a node is deleted
//! *gracefully*: it gets `deletionTimestamp` + `deletionGracePeriodSeconds`, the kubelet stops
//! its containers (SIGTERM, the grace period, SIGKILL) and then deletes it with grace 0. An
//! unscheduled or finished pod has nothing to stop and goes at once. `propagationPolicy`
//! Foreground/Orphan become the finalizers the garbage collector acts on.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::read::Selectors;
use super::write::deletion_complete;
use super::{list_object, to_api, Ctx};
use crate::allocator;
use crate::codec;
use crate::error::{ApiError, Subject};
use crate::object;
use crate::resources::Resource;
use crate::storage::{StorageError, Stored};

/// The parts of `DeleteOptions` we act on.
#[derive(Debug, Default, Clone)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    pub propagation_policy: Option<String>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Query parameters first, then the body's fields over them (as kube-apiserver).
    pub fn from_request(ctx: &Ctx, body: &[u8]) -> Result<DeleteOptions, ApiError> {
        let mut o = DeleteOptions {
            grace_period_seconds: ctx.query.int("gracePeriodSeconds")?,
            propagation_policy: ctx.query.non_empty("propagationPolicy").map(String::from),
            dry_run: ctx.dry_run(),
            ..Default::default()
        };
        if ctx.query.get("orphanDependents") == Some("true") && o.propagation_policy.is_none() {
            o.propagation_policy = Some("Orphan".into());
        }
        if !body.iter().all(u8::is_ascii_whitespace) {
            let v = codec::decode_body(&ctx.headers, body)?;
            o.merge_body(&v)?;
        }
        Ok(o)
    }

    /// Apply a DeleteOptions object (from a DELETE body or an Eviction).
    pub fn merge_body(&mut self, v: &Value) -> Result<(), ApiError> {
        if let Some(g) = v.get("gracePeriodSeconds").and_then(Value::as_i64) {
            self.grace_period_seconds = Some(g);
        }
        if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
            self.propagation_policy = Some(p.into());
        }
        if v.get("orphanDependents").and_then(Value::as_bool) == Some(true)
            && self.propagation_policy.is_none()
        {
            self.propagation_policy = Some("Orphan".into());
        }
        if let Some(u) = v.pointer("/preconditions/uid").and_then(Value::as_str) {
            self.precondition_uid = Some(u.into());
        }
        if let Some(rv) = v
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
        {
            self.precondition_rv = Some(rv.into());
        }
        if v.get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x == "All"))
        {
            self.dry_run = true;
        }
        match self.propagation_policy.as_deref() {
            None | Some("Background" | "Foreground" | "Orphan") => Ok(()),
            Some(p) => Err(ApiError::BadRequest(format!(
                "propagationPolicy {p:?} is not supported: use Background, Foreground or Orphan"
            ))),
        }
    }
}

/// `DELETE .../<resource>/<name>`.
pub async fn delete(ctx: &Ctx, body: &[u8]) -> Result<Response, ApiError> {
    let neg = ctx.negotiate(false)?;
    let opts = DeleteOptions::from_request(ctx, body)?;
    let obj = delete_object(ctx, &ctx.key(), ctx.name(), &opts).await?;
    Ok(codec::respond(
        StatusCode::OK,
        &to_api(ctx.resource(), obj),
        neg.format,
    ))
}

/// How long a pod gets to stop, if it needs any time at all.
fn pod_grace(obj: &Value, opts: &DeleteOptions) -> i64 {
    let bound = !obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty();
    let phase = obj
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !bound || matches!(phase, "Succeeded" | "Failed") {
        return 0;
    }
    opts.grace_period_seconds
        .or_else(|| {
            obj.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(30)
        .max(0)
}

/// Delete one object by key, honouring preconditions, grace and finalizers. Returns the object
/// as it is after the call (deleted, or marked for deletion).
pub async fn delete_object(
    ctx: &Ctx,
    key: &str,
    name: &str,
    opts: &DeleteOptions,
) -> Result<Value, ApiError> {
    let r: &Resource = ctx.resource();
    let subject = r.subject(name);
    for _ in 0..16 {
        let current = ctx
            .app
            .storage
            .get(key)
            .await?
            .ok_or_else(|| ApiError::NotFound(subject.clone()))?;
        check_preconditions(opts, &current, &subject)?;
        let obj = &current.object;
        let grace = if r.plural == "pods" {
            pod_grace(obj, opts)
        } else {
            0
        };
        let finalizers = finalizers_to_keep(obj, opts);
        let waits_for_namespace_finalizers = r.plural == "namespaces"
            && obj
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
        let deferred = grace > 0 || !finalizers.is_empty() || waits_for_namespace_finalizers;
        let written = if !deferred {
            if opts.dry_run {
                return Ok(current.object);
            }
            remove_now(ctx, key, &current, &subject).await?
        } else {
            // Deferred: mark the object; its owners (kubelet, finalizer holders) finish the job.
            let marked = mark_deleting(r, obj, grace, finalizers);
            if marked == current.object {
                return Ok(current.object);
            }
            if opts.dry_run {
                return Ok(marked);
            }
            write_mark(ctx, key, &marked, &current, &subject).await?
        };
        if let Some(obj) = written {
            return Ok(obj);
        }
    }
    Err(ApiError::Conflict(
        subject,
        "the object keeps changing; try again".into(),
    ))
}

/// `preconditions.uid` and `preconditions.resourceVersion` must match the stored object (409).
fn check_preconditions(
    opts: &DeleteOptions,
    current: &Stored,
    subject: &Subject,
) -> Result<(), ApiError> {
    let uid = object::meta_str(&current.object, "uid");
    if let Some(want) = opts.precondition_uid.as_ref().filter(|want| *want != uid) {
        return Err(ApiError::Conflict(
            subject.clone(),
            format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
        ));
    }
    let rv = current.revision.to_string();
    if let Some(want) = opts.precondition_rv.as_ref().filter(|want| **want != rv) {
        return Err(ApiError::Conflict(
            subject.clone(),
            format!("Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {rv}"),
        ));
    }
    Ok(())
}

/// The object's finalizers, plus the one its propagation policy asks for (`foregroundDeletion`
/// or `orphan`) unless the deletion has already begun.
fn finalizers_to_keep(obj: &Value, opts: &DeleteOptions) -> Vec<String> {
    let mut finalizers = object::finalizers(obj);
    let propagation_finalizer = match opts.propagation_policy.as_deref() {
        Some("Foreground") => Some("foregroundDeletion"),
        Some("Orphan") => Some("orphan"),
        _ => None,
    };
    if let Some(f) = propagation_finalizer {
        if !object::is_deleting(obj) && !finalizers.iter().any(|x| x == f) {
            finalizers.push(f.into());
        }
    }
    finalizers
}

/// `obj` marked for deletion: `deletionTimestamp` now + `grace` (a shorter grace than an
/// earlier DELETE's wins), its finalizers, and a namespace's phase `Terminating`.
fn mark_deleting(r: &Resource, obj: &Value, grace: i64, finalizers: Vec<String>) -> Value {
    let mut marked = obj.clone();
    let m = object::meta_mut(&mut marked);
    let already = m.get("deletionTimestamp").is_some_and(|v| !v.is_null());
    let old_grace = m.get("deletionGracePeriodSeconds").and_then(Value::as_i64);
    if !already || old_grace.is_some_and(|g| grace < g) {
        m.insert("deletionTimestamp".into(), json!(object::now_plus(grace)));
        m.insert("deletionGracePeriodSeconds".into(), json!(grace));
    }
    if !finalizers.is_empty() {
        m.insert("finalizers".into(), json!(finalizers));
    }
    if r.plural == "namespaces" {
        marked["status"]["phase"] = json!("Terminating");
    }
    marked
}

/// Deletes the key at the revision read: the deleted object, or `None` when a write came in
/// between (read again and retry).
async fn remove_now(
    ctx: &Ctx,
    key: &str,
    current: &Stored,
    subject: &Subject,
) -> Result<Option<Value>, ApiError> {
    // A Service's ClusterIP and node ports are freed in the delete's own transaction.
    let held = allocator::held_keys(&ctx.app.storage, ctx.resource().plural, &current.object);
    match ctx
        .app
        .storage
        .delete_releasing(key, current.revision, &held)
        .await
    {
        Ok(s) => {
            settle_namespace(ctx, s.revision).await;
            Ok(Some(s.object))
        }
        Err(StorageError::Conflict { .. }) => Ok(None),
        Err(StorageError::NotFound { .. }) => Err(ApiError::NotFound(subject.clone())),
        Err(e) => Err(e.into()),
    }
}

/// Writes the marked object at the revision read (and deletes it at once if nothing is left
/// to wait for): the object, or `None` when a write came in between.
async fn write_mark(
    ctx: &Ctx,
    key: &str,
    marked: &Value,
    current: &Stored,
    subject: &Subject,
) -> Result<Option<Value>, ApiError> {
    match ctx.app.storage.update(key, marked, current.revision).await {
        Ok(s) if deletion_complete(&s.object) => {
            let held = allocator::held_keys(&ctx.app.storage, ctx.resource().plural, &s.object);
            let deleted = ctx
                .app
                .storage
                .delete_releasing(key, s.revision, &held)
                .await?;
            Ok(Some(deleted.object))
        }
        Ok(s) => {
            settle_namespace(ctx, s.revision).await;
            Ok(Some(s.object))
        }
        Err(StorageError::Conflict { .. }) => Ok(None),
        Err(StorageError::NotFound { .. }) => Err(ApiError::NotFound(subject.clone())),
        Err(e) => Err(e.into()),
    }
}

/// After deleting (or marking) a namespace, wait until this server's namespace cache shows it:
/// creates check the namespace there, and one sent right after the DELETE answered must be
/// refused (kube-apiserver's NamespaceLifecycle forces a live lookup for the same reason).
async fn settle_namespace(ctx: &Ctx, revision: i64) {
    let r = ctx.resource();
    if r.plural == "namespaces" {
        ctx.app
            .cache(r)
            .wait_for_revision(revision, std::time::Duration::from_secs(5))
            .await;
    }
}

/// `DELETE .../<resource>`: every object matching the selectors.
pub async fn delete_collection(ctx: &Ctx, body: &[u8]) -> Result<Response, ApiError> {
    let neg = ctx.negotiate(false)?;
    let r = ctx.resource();
    let opts = DeleteOptions::from_request(ctx, body)?;
    let sel = Selectors::from_ctx(ctx)?;
    let prefix = ctx
        .app
        .storage
        .collection_prefix(r.storage, ctx.info.namespace.as_deref());
    let page = ctx.app.storage.list(&prefix, None, 0, 0).await?;
    let mut deleted = Vec::new();
    for s in page
        .items
        .into_iter()
        .filter(|s| sel.matches(r.plural, &s.object))
    {
        let name = object::name(&s.object).to_string();
        match delete_object(ctx, &s.key, &name, &opts).await {
            Ok(o) => deleted.push(to_api(r, o)),
            Err(ApiError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(codec::respond(
        StatusCode::OK,
        &list_object(r, deleted, page.revision, None),
        neg.format,
    ))
}
