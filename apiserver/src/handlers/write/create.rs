//! Create (POST, and server-side apply of an absent object): server-set metadata, defaults,
//! validation, a Service's allocations claimed in the same etcd transaction, and a retry with
//! a new name for `generateName` or a new pick when an allocated value was taken meanwhile.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use k8s_openapi::api::core::v1::PodStatus;
use serde_json::{json, Value};

use super::super::{check_namespace_open, check_type_meta, to_api, Ctx};
use super::allocation::allocate;
use super::decode::{add_warnings, decode_typed, decode_typed_pod, validate};
use crate::admission::{self, defaults, validation};
use crate::codec;
use crate::error::ApiError;
use crate::object;
use crate::resources::Resource;
use crate::storage::StorageError;

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
