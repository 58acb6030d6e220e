//! GET of one object and LIST of a collection.
//!
//! A GET or a LIST without `resourceVersion` reads etcd (a consistent read, like the real
//! apiserver); `resourceVersion=0` means "any version is fine" and is served from the watch
//! cache (kube-rs reflectors list that way). A list's `metadata.resourceVersion` is the
//! revision it was read at: the point from which a client then watches. `limit` + `continue`
//! page through a list pinned to that one revision. Any other `resourceVersion` is a minimum
//! (with `resourceVersionMatch=Exact`, the revision to read at): one the server has not
//! reached is a 504 "Too large resource version", after waiting up to 3 s for it as
//! kube-apiserver's watch cache does (an exact read is refused at once, as by its etcd store).

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use serde_json::{json, Value};

use super::{list_object, to_api, Ctx};
use crate::codec::{self, View};
use crate::error::ApiError;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::storage::StorageError;
use crate::watch_cache::WatchCache;
use crate::{object, tables};

/// How long a read waits for a resourceVersion this server has not reached yet (the watch
/// cache's `blockTimeout`).
const FRESHNESS_TIMEOUT: Duration = Duration::from_secs(3);

/// The retry hint of the 504 that follows (`resourceVersionTooHighRetrySeconds`).
const TOO_LARGE_RETRY_SECONDS: u32 = 1;

/// The `resourceVersion` a read must not be older than; `None` for "" and "0" (any state).
fn min_resource_version(ctx: &Ctx) -> Result<Option<i64>, ApiError> {
    match ctx.query.non_empty("resourceVersion") {
        None | Some("0") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::BadRequest(format!("invalid resourceVersion {v:?}"))),
    }
}

/// Wait until `cache` has applied `requested`, at most [`FRESHNESS_TIMEOUT`].
pub async fn wait_until_fresh(cache: &WatchCache, requested: i64) -> Result<(), ApiError> {
    if cache.wait_for_revision(requested, FRESHNESS_TIMEOUT).await {
        return Ok(());
    }
    Err(ApiError::TooLargeResourceVersion {
        requested,
        current: cache.revision(),
        retry_after_seconds: TOO_LARGE_RETRY_SECONDS,
    })
}

/// Make sure a consistent read from etcd is at least as new as `requested`. etcd may be
/// ahead of this resource's cache (the revision came from a write to another resource), so
/// it is asked before waiting.
async fn ensure_reached(ctx: &Ctx, requested: i64) -> Result<(), ApiError> {
    let cache = ctx.app.cache(ctx.resource());
    if cache.revision() >= requested || ctx.app.storage.current_revision().await? >= requested {
        return Ok(());
    }
    wait_until_fresh(cache, requested).await
}

/// `GET .../<resource>/<name>` (and `.../status`).
pub async fn get(ctx: &Ctx) -> Result<Response, ApiError> {
    let neg = ctx.negotiate(true)?;
    if let Some(requested) = min_resource_version(ctx)? {
        ensure_reached(ctx, requested).await?;
    }
    let stored = ctx
        .app
        .storage
        .get(&ctx.key())
        .await?
        .ok_or_else(|| ApiError::NotFound(ctx.subject()))?;
    let r = ctx.resource();
    let obj = to_api(r, stored.object);
    let body = match neg.view {
        View::Table => {
            let mut t = tables::table(
                r.plural,
                std::slice::from_ref(&obj),
                jiff::Timestamp::now(),
                include_object(ctx),
            );
            t["metadata"] = json!({"resourceVersion": stored.revision.to_string()});
            t
        }
        View::PartialMetadata => partial_metadata(&obj),
        View::Object => obj,
    };
    Ok(codec::respond(StatusCode::OK, &body, neg.format))
}

/// Parsed `labelSelector` and `fieldSelector`.
pub struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    /// Parse from the query; malformed selectors are 400.
    pub fn from_ctx(ctx: &Ctx) -> Result<Selectors, ApiError> {
        let labels = LabelSelector::parse(ctx.query.get("labelSelector").unwrap_or(""))
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let mut fs = ctx.query.get("fieldSelector").unwrap_or("").to_string();
        if ctx.resource().group == "events.k8s.io" {
            // Stored in the core/v1 shape: select by the core names of the fields.
            fs = crate::event_views::events_v1_selector_to_core(&fs);
        }
        // A watch or list addressed to one name is a metadata.name field selector.
        if let Some(n) = &ctx.info.name {
            fs = if fs.is_empty() {
                format!("metadata.name={n}")
            } else {
                format!("{fs},metadata.name={n}")
            };
        }
        let fields = FieldSelector::parse(&fs, ctx.resource().plural)
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        Ok(Selectors { labels, fields })
    }

    /// Whether `obj` (storage form) is selected.
    pub fn matches(&self, resource: &str, obj: &Value) -> bool {
        (self.labels.is_empty() || self.labels.matches(&object::labels(obj)))
            && (self.fields.is_empty() || self.fields.matches(resource, obj))
    }
}

/// A continue token: the revision the list is pinned to and the next key to read.
#[derive(serde::Serialize, serde::Deserialize)]
struct Continue {
    v: String,
    rv: i64,
    start: String,
}

fn encode_continue(rv: i64, start: &str) -> String {
    let c = Continue {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: start.into(),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&c).unwrap_or_default())
}

fn decode_continue(token: &str) -> Result<Continue, ApiError> {
    let bad = || ApiError::BadRequest("continue key is not valid: malformed token".into());
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

/// `includeObject` for tables (default Metadata, as kubectl expects).
pub fn include_object(ctx: &Ctx) -> tables::IncludeObject {
    match ctx.query.get("includeObject") {
        Some("None") => tables::IncludeObject::None,
        Some("Object") => tables::IncludeObject::Object,
        _ => tables::IncludeObject::Metadata,
    }
}

/// `PartialObjectMetadata` of an object.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"].clone()})
}

/// `GET .../<resource>`: a list, filtered by selectors, optionally paged.
pub async fn list(ctx: &Ctx) -> Result<Response, ApiError> {
    let neg = ctx.negotiate(true)?;
    let r = ctx.resource();
    let sel = Selectors::from_ctx(ctx)?;
    let limit = ctx.query.int("limit")?.unwrap_or(0).max(0);
    let cont = ctx.query.non_empty("continue");
    let prefix = ctx
        .app
        .storage
        .collection_prefix(r.storage, ctx.info.namespace.as_deref());

    let (items, revision, next): (Vec<Value>, i64, Option<String>) =
        if ctx.query.get("resourceVersion") == Some("0") && cont.is_none() {
            // Any version will do: serve the watch cache.
            let cache = ctx.app.cache(r);
            cache.wait_ready().await;
            let (objs, rev) = cache.snapshot(&prefix);
            let items = objs
                .iter()
                .filter(|o| sel.matches(r.plural, o))
                .map(|o| Arc::unwrap_or_clone(o.clone()))
                .collect();
            (items, rev, None)
        } else {
            let (mut start, mut at) = (None, 0);
            if let Some(token) = cont {
                let c = decode_continue(token)?;
                start = Some(format!("{prefix}{}", c.start));
                at = c.rv;
            } else if let Some(n) = min_resource_version(ctx)? {
                if ctx.query.get("resourceVersionMatch") == Some("Exact") {
                    // Read at exactly `n`; etcd refuses a revision it has not reached.
                    at = n;
                } else {
                    // NotOlderThan: a consistent read from `n` on.
                    ensure_reached(ctx, n).await?;
                }
            }
            list_from_etcd(ctx, &prefix, start, at, limit, &sel).await?
        };
    let items: Vec<Value> = items.into_iter().map(|o| to_api(r, o)).collect();
    let body = match neg.view {
        View::Table => {
            let mut t = tables::table(
                r.plural,
                &items,
                jiff::Timestamp::now(),
                include_object(ctx),
            );
            t["metadata"] = json!({"resourceVersion": revision.to_string()});
            if let Some(c) = &next {
                t["metadata"]["continue"] = json!(c);
            }
            t
        }
        View::PartialMetadata => {
            let items: Vec<Value> = items.iter().map(partial_metadata).collect();
            let mut l = list_object(r, items, revision, next);
            l["kind"] = json!("PartialObjectMetadataList");
            l["apiVersion"] = json!("meta.k8s.io/v1");
            l
        }
        View::Object => list_object(r, items, revision, next),
    };
    Ok(codec::respond(StatusCode::OK, &body, neg.format))
}

/// Read pages from etcd until `limit` matching items are found or the prefix is exhausted.
async fn list_from_etcd(
    ctx: &Ctx,
    prefix: &str,
    mut start: Option<String>,
    mut at: i64,
    limit: i64,
    sel: &Selectors,
) -> Result<(Vec<Value>, i64, Option<String>), ApiError> {
    let r = ctx.resource();
    let mut items = Vec::new();
    loop {
        let page_size = if limit > 0 {
            (limit - items.len() as i64).max(1)
        } else {
            0
        };
        let page = match ctx.app.storage.list(prefix, start.as_deref(), at, page_size).await {
            Ok(p) => p,
            Err(StorageError::Compacted { .. }) => {
                return Err(ApiError::Expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.".into(),
                ))
            }
            // No retry hint: etcd has no wait of its own (etcd store `listReadError`).
            Err(StorageError::FutureRevision) => {
                return Err(ApiError::TooLargeResourceVersion {
                    requested: at,
                    current: ctx.app.storage.current_revision().await?,
                    retry_after_seconds: 0,
                })
            }
            Err(e) => return Err(e.into()),
        };
        if at == 0 {
            at = page.revision;
        }
        let last_key = page.items.last().map(|s| s.key.clone());
        for s in page.items {
            if sel.matches(r.plural, &s.object) {
                items.push(s.object);
            }
        }
        match (page.more, last_key) {
            (true, Some(last)) => {
                let next = format!("{last}\0");
                if limit > 0 && items.len() as i64 >= limit {
                    let token = encode_continue(at, next.strip_prefix(prefix).unwrap_or(&next));
                    return Ok((items, at, Some(token)));
                }
                start = Some(next);
            }
            _ => return Ok((items, at, None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let t = encode_continue(42, "default/web\0");
        let c = decode_continue(&t).unwrap();
        assert_eq!((c.rv, c.start.as_str()), (42, "default/web\0"));
        assert!(decode_continue("not a token!").is_err());
    }
}
