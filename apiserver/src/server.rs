//! The HTTP server: the route table, the middleware every request passes (authentication by
//! client certificate, bearer token or bootstrap token, metrics, a tracing span) and the
//! namespaces and the `kubernetes` Service created at startup.
//!
//! Fixed paths (discovery, OpenAPI, health, metrics) have their own routes; everything under
//! `/api` and `/apis` goes to `handlers::dispatch`, which parses the URL into a `RequestInfo`
//! the way kube-apiserver does. `app()` returns a plain `Router`, so tests can drive it
//! in-process as well as over TCP. This is the top layer of the crate: it uses the handlers and
//! discovery, which use the shared state (`state.rs`: `App`, `ServerConfig`) below them.

use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tracing::Instrument;

use crate::error::ApiError;
use crate::request::MetricLabels;
use crate::{discovery, handlers, openapi};

/// The state a router serves, re-exported for callers that build one (`main.rs`, the test
/// fixtures).
pub use crate::state::{App, ServerConfig};

impl App {
    /// Create the namespaces every cluster has (default, kube-system, kube-public,
    /// kube-node-lease) and the `kubernetes` Service; retried until etcd answers. Defined here, not in `state.rs`, because
    /// it writes through the handlers, which the state sits below.
    pub async fn bootstrap(&self) {
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let mut attempts = 0u32;
            loop {
                match handlers::ensure_namespace(self, ns).await {
                    Ok(()) => break,
                    Err(e) => {
                        if attempts.is_multiple_of(20) {
                            tracing::warn!(namespace = ns, error = %e, "bootstrap: waiting for etcd");
                        }
                        attempts += 1;
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        }
        // The `kubernetes` Service (the first Service address) and its endpoints: this server.
        let mut attempts = 0u32;
        while let Err(e) = handlers::bootstrap::ensure_kubernetes_service(self).await {
            if attempts.is_multiple_of(20) {
                tracing::warn!(error = %e, "bootstrap: writing the kubernetes Service");
            }
            attempts += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// The route table.
pub fn app(state: App) -> Router {
    Router::new()
        .route("/version", get(discovery::version))
        .route("/api", get(discovery::api_versions))
        .route("/apis", get(discovery::api_group_list))
        .route("/openapi/v3", get(openapi::index))
        .route("/openapi/v3/{*path}", get(openapi::group_version))
        .route("/openapi/v2", get(openapi::v2))
        .route("/healthz", get(health))
        .route("/livez", get(health))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/exec",
            axum::routing::any(handlers::proxy::exec),
        )
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/portforward",
            axum::routing::any(handlers::port_forward::port_forward),
        )
        .route(
            "/api/v1/nodes/{name}/proxy",
            axum::routing::any(handlers::proxy::node),
        )
        .route(
            "/api/v1/nodes/{name}/proxy/{*path}",
            axum::routing::any(handlers::proxy::node),
        )
        .fallback(handlers::dispatch)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn health() -> &'static str {
    "ok"
}

async fn ready(State(app): State<App>) -> Response {
    if app.caches_ready() {
        "ok".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "watch caches not ready").into_response()
    }
}

async fn metrics(State(app): State<App>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
}

/// Authentication, a `request{method,path}` span and the request metrics.
async fn observe(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let public = matches!(
        path.as_str(),
        "/healthz" | "/livez" | "/readyz" | "/version"
    );
    let authentication = &app.config.authentication;
    if !public && authentication.is_required() {
        let user = authentication
            .authenticate(req.headers(), req.extensions(), &app.storage)
            .await;
        match user {
            Some(user) => {
                req.extensions_mut().insert(user);
            }
            // kubeadm's one anonymous read: a joining node fetches `cluster-info` (auth/mod.rs)
            None if !crate::auth::presents_credential(req.headers(), req.extensions())
                && crate::auth::anonymous_allowed(&method, &path, req.uri().query()) =>
            {
                req.extensions_mut().insert(crate::auth::User::anonymous());
            }
            None => return ApiError::Unauthorized.into_response(),
        }
    }
    let span = tracing::info_span!("request", %method, %path);
    let query = req.uri().query().map(str::to_string);
    let resp = next.run(req).instrument(span.clone()).await;
    let secs = start.elapsed().as_secs_f64();
    // Resource requests carry their labels from `handlers::dispatch`; only the other routes
    // (discovery, exec, early errors) are parsed here.
    let labels = match resp.extensions().get::<MetricLabels>() {
        Some(l) => l.clone(),
        None => metric_labels(&method, &path, query.as_deref()),
    };
    app.metrics
        .observe(&labels.verb, &labels.resource, resp.status().as_u16(), secs);
    span.in_scope(|| tracing::debug!(status = resp.status().as_u16(), ms = secs * 1e3, "done"));
    resp
}

fn metric_labels(method: &axum::http::Method, path: &str, query: Option<&str>) -> MetricLabels {
    let q = crate::request::Query::parse(query);
    match crate::request::parse(method, path, &q) {
        Ok(crate::request::Target::Resource(i)) => i.metric_labels(),
        _ => MetricLabels {
            verb: method.as_str().to_ascii_lowercase(),
            resource: String::new(),
        },
    }
}
