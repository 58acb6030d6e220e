//! PATCH: JSON patch, merge patch, strategic merge patch and server-side apply, re-applied to
//! the current object on every retry (the patch, not the whole object, is the client's intent).

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::super::{check_type_meta, to_api, Ctx};
use super::create::create_object;
use super::decode::{add_warnings, decode_typed, validate};
use super::update::write_with_retries;
use crate::admission::{self};
use crate::codec;
use crate::error::ApiError;
use crate::object;
use crate::patch::{self, PatchType};

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
