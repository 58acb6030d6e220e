//! A credential as a kubeconfig, the file kubectl and kube-rs read: a cluster (the server's
//! URL and the CA that must have signed its certificate), a user (a client certificate and its
//! key) and a context joining them, made current. Everything is embedded base64
//! (`certificate-authority-data`, `client-certificate-data`, `client-key-data`), as kubeadm's
//! `admin.conf`, so the one file is the whole credential and can be copied to another machine.
//!
//! Read next: `mod.rs` (`Pki::kubeconfig`, `Pki::admin_kubeconfig`).

use base64::Engine;
use serde_json::json;

use super::PkiError;

/// The cluster's name in the kubeconfigs written here.
pub const CLUSTER_NAME: &str = "minik8s";

/// What a kubeconfig holds.
pub(super) struct Credentials<'a> {
    pub server_url: &'a str,
    pub user: &'a str,
    pub ca_pem: &'a str,
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
}

/// The kubeconfig YAML, with the context `<user>@minik8s` current.
pub(super) fn render(c: &Credentials<'_>) -> Result<String, PkiError> {
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    let context = format!("{}@{CLUSTER_NAME}", c.user);
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": CLUSTER_NAME,
            "cluster": {
                "server": c.server_url,
                "certificate-authority-data": b64(c.ca_pem),
            },
        }],
        "users": [{
            "name": c.user,
            "user": {
                "client-certificate-data": b64(c.cert_pem),
                "client-key-data": b64(c.key_pem),
            },
        }],
        "contexts": [{
            "name": context,
            "context": {"cluster": CLUSTER_NAME, "user": c.user},
        }],
        "current-context": context,
        "preferences": {},
    });
    serde_yaml::to_string(&config).map_err(PkiError::Kubeconfig)
}
