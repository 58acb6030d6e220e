//! Resource requests: from a parsed URL to storage and back.
//!
//! `dispatch` is the fallback route for everything under `/api` and `/apis`. It parses the
//! URL (`request.rs`), reads the body (3 MiB limit), and calls the handler for the verb and
//! subresource: `read.rs` (get, list), `watch.rs`, `write/` (create, update, patch),
//! `delete.rs`, `subresources.rs` (binding, eviction, scale, finalize). A CSR's `approval`
//! is a narrower `status` write (`admission/certificates.rs` says which fields each keeps). Handlers return
//! `Result<Response, ApiError>`; errors become `Status` objects.

pub mod bootstrap;
pub mod delete;
pub mod port_forward;
pub mod proxy;
pub mod read;
pub mod subresources;
pub mod watch;
pub mod write;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Value};

use crate::auth::User;
use crate::codec::{self, Negotiated};
use crate::error::{ApiError, Subject};
use crate::request::{self, Query, RequestInfo, Target, Verb};
use crate::resources::{self, Resource};
use crate::state::App;
use crate::{discovery, event_views, object};

/// Everything a handler needs about the request it serves.
pub struct Ctx {
    pub app: App,
    pub info: RequestInfo,
    pub query: Query,
    pub headers: HeaderMap,
    /// Who sent the request, when authentication is configured (the middleware in
    /// `server.rs` puts the user into the request's extensions).
    pub user: Option<User>,
}

impl Ctx {
    /// The resource addressed.
    pub fn resource(&self) -> &'static Resource {
        self.info.resource
    }

    /// The object name from the URL ("" for collections).
    pub fn name(&self) -> &str {
        self.info.name.as_deref().unwrap_or("")
    }

    /// etcd key of the addressed object.
    pub fn key(&self) -> String {
        self.app.storage.key(
            self.resource().storage,
            self.info.namespace.as_deref(),
            self.name(),
        )
    }

    /// Error subject for the addressed object.
    pub fn subject(&self) -> Subject {
        self.resource().subject(self.name())
    }

    /// Negotiate the response format (`views`: whether Table etc. are allowed).
    pub fn negotiate(&self, views: bool) -> Result<Negotiated, ApiError> {
        codec::negotiate(&self.headers, views)
    }

    /// `dryRun=All`: run everything but the write.
    pub fn dry_run(&self) -> bool {
        self.query.get("dryRun") == Some("All")
    }
}

/// Fallback route: every `/api/...` and `/apis/...` request.
pub async fn dispatch(State(app): State<App>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let query = Query::parse(parts.uri.query());
    let target = match request::parse(&parts.method, parts.uri.path(), &query) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let info = match target {
        Target::Group { group } if parts.method == Method::GET => {
            return discovery::group_response(&group)
                .unwrap_or_else(|| ApiError::UnknownResource.into_response())
        }
        Target::GroupVersion { group, version } if parts.method == Method::GET => {
            return discovery::group_version_response(&group, &version)
        }
        Target::Resource(info) => info,
        _ => return ApiError::MethodNotAllowed.into_response(),
    };
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    // No span of its own: the `request{method,path}` span (server.rs) names the object, and
    // at the default `info` level every span costs a formatted allocation per request.
    let labels = info.metric_labels();
    let ctx = Ctx {
        app,
        info,
        query,
        headers: parts.headers,
        user: parts.extensions.get::<User>().cloned(),
    };
    let mut resp = route(&ctx, body)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    resp.extensions_mut().insert(labels);
    resp
}

async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, codec::MAX_BODY)
        .await
        .map_err(|_| ApiError::TooLarge(codec::MAX_BODY))
}

async fn route(ctx: &Ctx, body: Bytes) -> Result<Response, ApiError> {
    match (ctx.info.verb, ctx.info.subresource.as_deref()) {
        (Verb::Get, None | Some("status" | "approval")) => read::get(ctx).await,
        (Verb::Get, Some("scale")) => subresources::get_scale(ctx).await,
        (Verb::List, None) => read::list(ctx).await,
        (Verb::Watch, None) => watch::watch(ctx).await,
        (Verb::Create, None) => write::create(ctx, &body).await,
        (Verb::Create, Some("binding")) => subresources::bind(ctx, &body).await,
        (Verb::Create, Some("eviction")) => subresources::evict(ctx, &body).await,
        (Verb::Update, None | Some("status" | "approval")) => write::update(ctx, &body).await,
        (Verb::Update, Some("scale")) => subresources::update_scale(ctx, &body).await,
        (Verb::Update, Some("finalize")) => subresources::finalize(ctx, &body).await,
        (Verb::Patch, None | Some("status" | "approval")) => write::patch(ctx, &body).await,
        (Verb::Patch, Some("scale")) => subresources::patch_scale(ctx, &body).await,
        (Verb::Delete, None) => delete::delete(ctx, &body).await,
        (Verb::DeleteCollection, None) => delete::delete_collection(ctx, &body).await,
        (Verb::Get, Some("log")) => proxy::log(ctx).await,
        (_, Some("log" | "exec")) => Err(ApiError::BadRequest(format!(
            "pod {:?}: exec needs a WebSocket upgrade (v5.channel.k8s.io); logs a GET",
            ctx.name()
        ))),
        _ => Err(ApiError::MethodNotAllowed),
    }
}

/// Storage form → what clients of `resource` see. Objects are stored in one form per storage
/// directory; `events.k8s.io/v1` Events are a different view of core/v1 Events.
pub fn to_api(resource: &Resource, obj: Value) -> Value {
    if resource.group == "events.k8s.io" {
        event_views::core_to_events_v1(&obj)
    } else {
        obj
    }
}

/// What a client of `resource` sent → storage form.
pub fn from_api(resource: &Resource, obj: Value) -> Value {
    if resource.group == "events.k8s.io" {
        event_views::events_v1_to_core(&obj)
    } else {
        obj
    }
}

/// Fill in `apiVersion`/`kind` when missing (the Python client omits them) and refuse a body
/// whose type does not match the URL.
pub fn check_type_meta(resource: &Resource, obj: &mut Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::BadRequest(
            "the request body must be a JSON or YAML object".into(),
        ));
    }
    let want_av = resource.api_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => obj["apiVersion"] = json!(want_av),
        Some(av) if av == want_av => {}
        Some(av) => {
            return Err(ApiError::BadRequest(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )))
        }
    }
    match obj.get("kind").and_then(Value::as_str) {
        None | Some("") => obj["kind"] = json!(resource.kind),
        Some(k) if k == resource.kind => {}
        Some(k) => {
            return Err(ApiError::BadRequest(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                resource.kind
            )))
        }
    }
    Ok(())
}

fn roundtrip<T: DeserializeOwned + Serialize>(obj: &Value) -> Result<Value, serde_json::Error> {
    let typed = T::deserialize(obj)?;
    serde_json::to_value(typed)
}

/// Decode into the kind's k8s-openapi type and back: malformed fields become a 400 and the
/// stored JSON is canonical (unknown fields dropped, like the real decoder).
pub fn normalize(resource: &Resource, obj: &Value) -> Result<Value, ApiError> {
    use k8s_openapi::api::certificates::v1 as certificates;
    use k8s_openapi::api::discovery::v1 as discovery;
    use k8s_openapi::api::{apps::v1 as apps, coordination::v1 as coord, core::v1 as core};
    let r = match resource.storage {
        "pods" => roundtrip::<core::Pod>(obj),
        "minions" => roundtrip::<core::Node>(obj),
        "namespaces" => roundtrip::<core::Namespace>(obj),
        "events" => roundtrip::<core::Event>(obj),
        "deployments" => roundtrip::<apps::Deployment>(obj),
        "replicasets" => roundtrip::<apps::ReplicaSet>(obj),
        "leases" => roundtrip::<coord::Lease>(obj),
        "services/specs" => roundtrip::<core::Service>(obj),
        "services/endpoints" => roundtrip::<core::Endpoints>(obj),
        "endpointslices" => roundtrip::<discovery::EndpointSlice>(obj),
        "certificatesigningrequests" => roundtrip::<certificates::CertificateSigningRequest>(obj),
        "configmaps" => return normalize_bytes::<core::ConfigMap>(resource, obj, "binaryData"),
        "secrets" => return normalize_bytes::<core::Secret>(resource, obj, "data"),
        _ => Ok(obj.clone()),
    };
    r.map_err(|e| cannot_handle(resource, e))
}

/// The 400 of a body that does not decode into the kind's type.
fn cannot_handle(resource: &Resource, e: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!(
        "{} in version \"{}\" cannot be handled as a {}: {e}",
        resource.kind, resource.version, resource.kind
    ))
}

/// [`normalize`] for a kind whose map `field` holds base64 bytes (Secret `data`, ConfigMap
/// `binaryData`): Go's base64 rules and error text first (`admission::config_data`).
fn normalize_bytes<T: DeserializeOwned + Serialize>(
    resource: &Resource,
    obj: &Value,
    field: &str,
) -> Result<Value, ApiError> {
    let mut obj = obj.clone();
    crate::admission::config_data::check_base64(&mut obj, field)
        .map_err(|e| cannot_handle(resource, e))?;
    roundtrip::<T>(&obj).map_err(|e| cannot_handle(resource, e))
}

/// [`normalize`] for a Pod, with its defaults applied to the typed object in between: one
/// decode and one encode instead of two of each. The typed Pod is returned too.
pub fn normalize_pod_defaulted(
    resource: &Resource,
    obj: &Value,
) -> Result<(Value, k8s_openapi::api::core::v1::Pod), ApiError> {
    let decode_error = |e: serde_json::Error| {
        ApiError::BadRequest(format!(
            "{} in version \"{}\" cannot be handled as a {}: {e}",
            resource.kind, resource.version, resource.kind
        ))
    };
    let mut pod = <k8s_openapi::api::core::v1::Pod as serde::Deserialize>::deserialize(obj)
        .map_err(decode_error)?;
    crate::admission::defaults::default_pod(&mut pod);
    let value = serde_json::to_value(&pod).map_err(decode_error)?;
    Ok((value, pod))
}

/// Create a namespace if it does not exist (bootstrap).
pub async fn ensure_namespace(app: &App, name: &str) -> Result<(), ApiError> {
    let r = resources::find("", "v1", "namespaces").expect("namespaces are served");
    let key = app.storage.key(r.storage, None, name);
    if app.storage.get(&key).await?.is_some() {
        return Ok(());
    }
    let mut obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    write::stamp_new(r, &mut obj, None)?;
    crate::admission::defaults::apply_defaults("namespaces", &mut obj);
    match app.storage.create(&key, &obj).await {
        Ok(_) | Err(crate::storage::StorageError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The namespace an object must live in: 404 if missing, 403 if it is being deleted. The
/// watch cache answers; a miss is confirmed in etcd, since a namespace created a moment ago
/// may not have reached the cache yet.
pub async fn check_namespace_open(app: &App, namespace: &str) -> Result<(), ApiError> {
    let r = resources::find("", "v1", "namespaces").expect("namespaces are served");
    let key = app.storage.key(r.storage, None, namespace);
    let ns = match app.cache(r).get(&key) {
        Some(ns) => Some(ns),
        None => app
            .storage
            .get(&key)
            .await?
            .map(|s| std::sync::Arc::new(s.object)),
    };
    match ns {
        None => Err(ApiError::NotFound(r.subject(namespace))),
        Some(ns) if object::is_deleting(&ns) => Err(ApiError::Forbidden {
            subject: r.subject(namespace),
            message: format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            ),
        }),
        Some(_) => Ok(()),
    }
}

/// A `List` object for `resource` (`PodList`), items in API form.
pub fn list_object(
    resource: &Resource,
    items: Vec<Value>,
    revision: i64,
    cont: Option<String>,
) -> Value {
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if let Some(c) = cont {
        metadata["continue"] = json!(c);
    }
    json!({
        "kind": format!("{}List", resource.kind),
        "apiVersion": resource.api_version(),
        "metadata": metadata,
        "items": items,
    })
}
