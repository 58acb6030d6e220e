//! WATCH: a long-lived HTTP response streaming one JSON event per line.
//!
//! `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":{...}}\n`, flushed per event.
//! The events come from the resource's watch cache (`watch_cache.rs`). Selectors are applied
//! to the object *before and after* each change, so an object that starts matching arrives as
//! ADDED and one that stops matching as DELETED: a kubelet watching
//! `spec.nodeName=n1` sees a pod appear the moment it is bound to n1. A resourceVersion older
//! than the cache's history is answered with HTTP 200 and a single ERROR event carrying a 410
//! Expired Status, which tells informers to relist. One the cache has not reached yet is
//! simply waited for, as kube-apiserver does, except by a WatchList (`sendInitialEvents`),
//! whose initial state must be at least that new: it waits up to 3 s, then gets an ERROR
//! event with the 504 "Too large resource version" Status.

use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::broadcast::{self, error::RecvError};

use super::read::{include_object, partial_metadata, wait_until_fresh, Selectors};
use super::{to_api, Ctx};
use crate::codec::{Format, View};
use crate::error::ApiError;
use crate::resources::Resource;
use crate::state::App;
use crate::tables;
use crate::watch_cache::{CacheEvent, EventType, Notification};

/// Per-watcher state that turns cache notifications into wire events.
struct Watcher {
    app: App,
    resource: &'static Resource,
    prefix: String,
    selectors: Selectors,
    view: View,
    include: tables::IncludeObject,
    bookmarks: bool,
    last_bookmark: Instant,
    bookmark_interval: Duration,
}

impl Watcher {
    /// Encode one cache event for this watcher, or `None` if it does not concern it.
    fn encode(&self, ev: &CacheEvent) -> Option<Bytes> {
        if !ev.key.starts_with(&self.prefix) {
            return None;
        }
        let plural = self.resource.plural;
        let now = self.selectors.matches(plural, &ev.object);
        let before = ev
            .prev
            .as_deref()
            .is_some_and(|p| self.selectors.matches(plural, p));
        let kind = match ev.kind {
            EventType::Added if now => EventType::Added,
            EventType::Modified if now && before => EventType::Modified,
            EventType::Modified if now => EventType::Added,
            EventType::Modified if before => EventType::Deleted,
            EventType::Deleted if before || now => EventType::Deleted,
            _ => return None,
        };
        // Plain-object watchers all send the same bytes (`to_api` is the identity except for
        // the events.k8s.io view of core Events): encode them once per event.
        if self.view == View::Object && self.resource.group != "events.k8s.io" {
            return Some(ev.wire_line(kind, || self.line(kind.as_str(), (*ev.object).clone())));
        }
        Some(self.line(kind.as_str(), (*ev.object).clone()))
    }

    fn line(&self, kind: &str, obj: Value) -> Bytes {
        let obj = to_api(self.resource, obj);
        let object = match self.view {
            View::Table => tables::table(
                self.resource.plural,
                std::slice::from_ref(&obj),
                jiff::Timestamp::now(),
                self.include,
            ),
            View::PartialMetadata => partial_metadata(&obj),
            View::Object => obj,
        };
        let mut bytes =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        bytes.push(b'\n');
        Bytes::from(bytes)
    }

    fn bookmark(&mut self, revision: i64) -> Option<Bytes> {
        if !self.bookmarks || self.last_bookmark.elapsed() < self.bookmark_interval {
            return None;
        }
        self.last_bookmark = Instant::now();
        let r = self.resource;
        let obj = json!({"kind": r.kind, "apiVersion": r.api_version(), "metadata": {"resourceVersion": revision.to_string()}});
        let mut bytes =
            serde_json::to_vec(&json!({"type": "BOOKMARK", "object": obj})).unwrap_or_default();
        bytes.push(b'\n');
        Some(Bytes::from(bytes))
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.app.metrics.watchers_add(-1);
    }
}

/// A stream of one ERROR event carrying `error` as a Status: once a watch is accepted,
/// errors travel inside it (clients relist on 410, retry on 504), never as the HTTP status.
fn error_stream(error: ApiError) -> Response {
    let mut bytes = serde_json::to_vec(&json!({"type": "ERROR", "object": error.to_status()}))
        .unwrap_or_default();
    bytes.push(b'\n');
    let once = futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(bytes)) });
    stream_response(Body::from_stream(once))
}

fn stream_response(body: Body) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache, private"),
    );
    resp
}

/// `GET ...?watch=true`.
pub async fn watch(ctx: &Ctx) -> Result<Response, ApiError> {
    let neg = ctx.negotiate(true)?;
    if neg.format != Format::Json {
        return Err(ApiError::NotAcceptable);
    }
    let r = ctx.resource();
    let selectors = Selectors::from_ctx(ctx)?;
    let from = start_revision(ctx)?;
    let send_initial = ctx.query.flag("sendInitialEvents");
    let timeout = watch_timeout(ctx)?;
    let prefix = ctx
        .app
        .storage
        .collection_prefix(r.storage, ctx.info.namespace.as_deref());
    let cache = ctx.app.cache(r).clone();
    cache.wait_ready().await;
    // A WatchList's initial state must be at least as new as the resourceVersion.
    if let Some(requested) = from.filter(|_| send_initial) {
        if let Err(too_large) = wait_until_fresh(&cache, requested).await {
            return Ok(error_stream(too_large));
        }
    }
    let sub = match cache.subscribe(&prefix, if send_initial { None } else { from }) {
        Ok(s) => s,
        Err(too_old) => {
            let message = format!("too old resource version: {}", too_old.requested);
            return Ok(error_stream(ApiError::Expired(message)));
        }
    };
    ctx.app.metrics.watchers_add(1);
    let watcher = Watcher {
        app: ctx.app.clone(),
        resource: r,
        prefix,
        selectors,
        view: neg.view,
        include: include_object(ctx),
        bookmarks: ctx.query.flag("allowWatchBookmarks"),
        last_bookmark: Instant::now(),
        bookmark_interval: ctx.app.config.bookmark_interval,
    };
    let mut initial: Vec<Bytes> = sub
        .initial
        .iter()
        .filter_map(|e| watcher.encode(e))
        .collect();
    if send_initial {
        initial.push(initial_events_end(r, sub.after));
    }
    let live = live_events(sub.live, watcher, sub.after, timeout);
    let stream =
        futures::stream::iter(initial.into_iter().map(Ok::<_, std::io::Error>)).chain(live);
    Ok(stream_response(Body::from_stream(stream)))
}

/// `resourceVersion` to watch from: `None` for "now" (absent or `0`).
fn start_revision(ctx: &Ctx) -> Result<Option<i64>, ApiError> {
    match ctx.query.non_empty("resourceVersion") {
        None | Some("0") => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ApiError::BadRequest(format!("invalid resourceVersion {v:?}"))),
    }
}

/// `timeoutSeconds`, else kube-apiserver's default: a random time between
/// `--min-request-timeout` and twice it, so that watches do not all end at once.
fn watch_timeout(ctx: &Ctx) -> Result<Duration, ApiError> {
    Ok(match ctx.query.int("timeoutSeconds")? {
        Some(s) if s > 0 => Duration::from_secs(s as u64),
        _ => {
            let base = ctx.app.config.min_request_timeout;
            base + base.mul_f64(rand::rng().random::<f64>())
        }
    })
}

/// The end of a WatchList's initial events: a bookmark annotated as such.
fn initial_events_end(r: &Resource, after: i64) -> Bytes {
    let obj = json!({"kind": r.kind, "apiVersion": r.api_version(), "metadata": {
        "resourceVersion": after.to_string(),
        "annotations": {"k8s.io/initial-events-end": "true"}}});
    let mut b = serde_json::to_vec(&json!({"type": "BOOKMARK", "object": obj})).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

/// The live part of a watch: the cache's events after `after` (and progress bookmarks),
/// encoded for this watcher, until `timeout` or until the watcher falls behind.
fn live_events(
    rx: broadcast::Receiver<Notification>,
    watcher: Watcher,
    after: i64,
    timeout: Duration,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let deadline = tokio::time::Instant::now() + timeout;
    // One timer per watch, armed once (not one per event: that is a timer-wheel insert and
    // removal for every event and every watcher).
    let timer = Box::pin(tokio::time::sleep_until(deadline));
    futures::stream::unfold(
        (rx, watcher, timer),
        move |(mut rx, mut w, mut timer)| async move {
            loop {
                let msg = tokio::select! {
                    m = rx.recv() => m,
                    _ = &mut timer => return None,
                };
                match msg {
                    Ok(Notification::Event(ev)) => {
                        if ev.revision <= after {
                            continue;
                        }
                        if let Some(b) = w.encode(&ev) {
                            return Some((Ok::<_, std::io::Error>(b), (rx, w, timer)));
                        }
                    }
                    Ok(Notification::Progress(rev)) => {
                        if let Some(b) = w.bookmark(rev.max(after)) {
                            return Some((Ok(b), (rx, w, timer)));
                        }
                    }
                    // A watcher too slow to keep up is closed; it resumes from its last
                    // resourceVersion, like kube-apiserver's terminated slow watchers.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return None,
                }
            }
        },
    )
}
