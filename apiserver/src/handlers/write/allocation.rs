//! A Service's ClusterIP and node ports for a create or update (`crate::allocator`), its
//! refusals as 422 Invalid.

use serde_json::Value;

use super::super::Ctx;
use crate::admission::{self};
use crate::allocator;
use crate::error::ApiError;
use crate::object;

/// The claims of a Service write (`crate::allocator`), the values it lacked filled into `obj`;
/// an empty plan for every other resource and for subresources.
pub(super) async fn allocate(
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
