//! A body decoded through its typed struct once (unknown fields by `fieldValidation`), the
//! warnings that go back as headers, and validation problems as 422 Invalid.

use axum::http::HeaderValue;
use axum::response::Response;
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::super::{from_api, normalize, Ctx};
use crate::admission::strict::FieldValidation;
use crate::admission::{self, strict};
use crate::error::ApiError;
use crate::resources::Resource;

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
pub(super) fn decode_typed_pod(
    ctx: &Ctx,
    obj: Value,
) -> Result<(Value, Vec<String>, Pod), ApiError> {
    let mode = field_validation(ctx)?;
    let r = ctx.resource();
    let (typed, pod) = super::super::normalize_pod_defaulted(r, &obj)?;
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
