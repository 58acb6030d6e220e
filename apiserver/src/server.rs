//! The HTTP server: shared state, the route table, and the middleware every request passes
//! (bearer-token authentication, metrics, a tracing span).
//!
//! Fixed paths (discovery, OpenAPI, health, metrics) have their own routes; everything under
//! `/api` and `/apis` goes to `handlers::dispatch`, which parses the URL into a `RequestInfo`
//! the way kube-apiserver does. `app()` returns a plain `Router`, so tests can drive it
//! in-process as well as over TCP.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tracing::Instrument;

use crate::auth::TokenAuth;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::request::MetricLabels;
use crate::resources::{self, Resource};
use crate::storage::Storage;
use crate::watch_cache::WatchCache;
use crate::{discovery, handlers, openapi};

/// Tunables of a running server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Events kept per resource for watch resumption.
    pub watch_cache_size: usize,
    /// Watches without `timeoutSeconds` end after a random time in [t, 2t] (kube-apiserver's
    /// `--min-request-timeout`), so clients re-watch and load spreads.
    pub min_request_timeout: Duration,
    /// How often a watcher that allows bookmarks gets one.
    pub bookmark_interval: Duration,
    /// Bearer tokens; `None` = anonymous access.
    pub tokens: Option<TokenAuth>,
    /// Bearer token presented to kubelets when proxying `pods/{p}/log` and `exec`.
    pub kubelet_token: Option<String>,
    /// PEM CA that kubelet serving certificates must chain to; `None` = not verified.
    pub kubelet_ca_pem: Option<Vec<u8>>,
}

impl ServerConfig {
    /// TLS client settings for dialing kubelets (see [`crate::kubelet_client`]).
    pub fn kubelet_tls(&self) -> std::io::Result<std::sync::Arc<rustls::ClientConfig>> {
        crate::kubelet_client::tls_config(self.kubelet_ca_pem.as_deref())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            watch_cache_size: 10_000,
            min_request_timeout: Duration::from_secs(1800),
            bookmark_interval: Duration::from_secs(60),
            tokens: None,
            kubelet_token: None,
            kubelet_ca_pem: None,
        }
    }
}

/// State shared by every handler.
pub struct Inner {
    pub storage: Storage,
    pub config: ServerConfig,
    pub metrics: Metrics,
    caches: HashMap<&'static str, Arc<WatchCache>>,
}

/// A cheap handle on the server state.
#[derive(Clone)]
pub struct App(pub Arc<Inner>);

impl std::ops::Deref for App {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl App {
    /// Start one watch cache per storage directory.
    pub fn new(storage: Storage, config: ServerConfig) -> App {
        let caches = resources::storage_dirs()
            .into_iter()
            .map(|dir| {
                let prefix = storage.collection_prefix(dir, None);
                (
                    dir,
                    WatchCache::start(storage.clone(), prefix, config.watch_cache_size),
                )
            })
            .collect();
        App(Arc::new(Inner {
            storage,
            config,
            metrics: Metrics::new(),
            caches,
        }))
    }

    /// The watch cache backing `resource`.
    pub fn cache(&self, resource: &Resource) -> &Arc<WatchCache> {
        &self.caches[resource.storage]
    }

    /// Whether every cache has loaded (readiness).
    pub fn caches_ready(&self) -> bool {
        self.caches.values().all(|c| c.is_ready())
    }

    /// Wait for every cache's first list.
    pub async fn wait_ready(&self) {
        for c in self.caches.values() {
            c.wait_ready().await;
        }
    }

    /// Create the namespaces every cluster has (default, kube-system, kube-public,
    /// kube-node-lease); retried until etcd answers.
    pub async fn bootstrap(&self) {
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let mut attempts = 0u32;
            loop {
                match handlers::ensure_namespace(self, ns).await {
                    Ok(()) => break,
                    Err(e) => {
                        if attempts % 20 == 0 {
                            tracing::warn!(namespace = ns, error = %e, "bootstrap: waiting for etcd");
                        }
                        attempts += 1;
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
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
async fn observe(State(app): State<App>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let public = matches!(
        path.as_str(),
        "/healthz" | "/livez" | "/readyz" | "/version"
    );
    if let Some(tokens) = &app.config.tokens {
        if !public && tokens.authenticate(req.headers()).is_none() {
            return ApiError::Unauthorized.into_response();
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
