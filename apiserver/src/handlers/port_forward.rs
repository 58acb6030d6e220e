//! `pods/{p}/portforward`: `kubectl port-forward` through the apiserver. kubectl 1.31+ speaks
//! SPDY/3.1 (two streams per forwarded connection, see the kubelet's `port_forward/`)
//! tunnelled in a WebSocket whose subprotocol is `SPDY/3.1+portforward.k8s.io`; the
//! apiserver finds the pod's kubelet as for exec (`proxy.rs`) and relays the binary messages
//! both ways to the kubelet's `/portForward/{ns}/{pod}`, without reading the SPDY inside.
//! (kube-apiserver unwraps the tunnel and sends the kubelet an `Upgrade: SPDY/3.1` request
//! instead; our kubelet takes the tunnelled form itself.) The pod is checked before the
//! upgrade, so that a missing pod is a 404 `Status`, as for exec.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};

use super::proxy;
use crate::error::ApiError;
use crate::state::App;

/// The WebSocket subprotocol of a tunnelled port-forward session.
const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// `pods/{p}/portforward` (its own route, because it needs the connection upgrade).
pub async fn port_forward(
    State(app): State<App>,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let kubelet = match pod_kubelet(&app, &namespace, &name).await {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let Ok(ws) = ws else {
        return ApiError::BadRequest(format!(
            "port-forward needs a WebSocket upgrade ({TUNNEL_PROTOCOL}); SPDY is not supported"
        ))
        .into_response();
    };
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    let url = format!("wss://{kubelet}/portForward/{namespace}/{name}{query}");
    let token = app.config.kubelet_token.clone();
    let tls = match app.config.kubelet_tls() {
        Ok(t) => t,
        Err(e) => return proxy::upstream(e).into_response(),
    };
    ws.protocols([TUNNEL_PROTOCOL])
        .on_upgrade(move |socket| async move {
            if let Err(e) = proxy::relay(socket, &url, &kubelet, tls, token.as_deref()).await {
                tracing::warn!(namespace = %namespace, pod = %name, error = %e, "port-forward relay failed");
            }
        })
}

/// The kubelet of the node the pod is bound to; a missing pod is a 404, an unbound one a 400.
async fn pod_kubelet(app: &App, namespace: &str, name: &str) -> Result<String, ApiError> {
    let pod = proxy::stored_pod(app, namespace, name).await?;
    proxy::pod_kubelet(app, &pod, name).await
}
