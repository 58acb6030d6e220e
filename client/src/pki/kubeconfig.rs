//! A credential as a kubeconfig, the file kubectl and kube-rs read: a cluster (the server's
//! URL and the CA that must have signed its certificate), a user (a client certificate and its
//! key, or a bearer token) and a context joining them, made current. Everything is embedded
//! base64 (`certificate-authority-data`, `client-certificate-data`, `client-key-data`), as
//! kubeadm's `admin.conf`, so the one file is the whole credential and can be copied to
//! another machine.
//!
//! A kubeconfig without a user is what kubeadm publishes as `kube-public/cluster-info`: the
//! server and the CA, which a joining node reads anonymously and pins by the CA's hash
//! ([`read`] takes them back out).
//!
//! Read next: `mod.rs` (`Pki::kubeconfig`, `Pki::admin_kubeconfig`).

use base64::Engine;
use serde_json::{json, Value};

use super::PkiError;

/// The cluster's name in the kubeconfigs written here.
pub const CLUSTER_NAME: &str = "minik8s";

/// Who the kubeconfig authenticates as.
#[derive(Debug, Clone, Copy)]
pub enum KubeconfigUser<'a> {
    /// Nobody: the cluster alone (kubeadm's `cluster-info`).
    None,
    /// `user` with a bearer token (a joining kubelet's bootstrap token).
    Token { user: &'a str, token: &'a str },
    /// `user` with a client certificate and its key, PEM.
    Certificate {
        user: &'a str,
        cert_pem: &'a str,
        key_pem: &'a str,
    },
}

/// What a kubeconfig says about its first cluster and user, PEM decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeconfigParts {
    /// The first cluster's `server`.
    pub server: String,
    /// Its `certificate-authority-data`, PEM, if embedded.
    pub ca_pem: Option<String>,
    /// The first user's `client-certificate-data`, PEM, if embedded.
    pub cert_pem: Option<String>,
}

fn b64(pem: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(pem)
}

/// The kubeconfig YAML for `server_url` trusting `ca_pem`, authenticating as `user`; with a
/// user, the context `<user>@minik8s` is current.
pub fn render(
    server_url: &str,
    ca_pem: &str,
    user: KubeconfigUser<'_>,
) -> Result<String, PkiError> {
    let cluster = json!([{
        "name": CLUSTER_NAME,
        "cluster": {"server": server_url, "certificate-authority-data": b64(ca_pem)},
    }]);
    let (name, credential) = match user {
        KubeconfigUser::None => {
            let config = json!({"apiVersion": "v1", "kind": "Config", "clusters": cluster,
                "contexts": [], "current-context": "", "users": [], "preferences": {}});
            return serde_yaml::to_string(&config).map_err(PkiError::Kubeconfig);
        }
        KubeconfigUser::Token { user, token } => (user, json!({"token": token})),
        KubeconfigUser::Certificate {
            user,
            cert_pem,
            key_pem,
        } => (
            user,
            json!({"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)}),
        ),
    };
    let context = format!("{name}@{CLUSTER_NAME}");
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": cluster,
        "users": [{"name": name, "user": credential}],
        "contexts": [{
            "name": context,
            "context": {"cluster": CLUSTER_NAME, "user": name},
        }],
        "current-context": context,
        "preferences": {},
    });
    serde_yaml::to_string(&config).map_err(PkiError::Kubeconfig)
}

/// The server, CA and client certificate of a kubeconfig's first cluster and user (embedded
/// data only; file references are not followed). `Err` says what is wrong with it.
pub fn read(yaml: &str) -> Result<KubeconfigParts, String> {
    let config: Value = serde_yaml::from_str(yaml).map_err(|e| format!("not YAML: {e}"))?;
    let cluster = &config["clusters"][0]["cluster"];
    let server = cluster["server"]
        .as_str()
        .ok_or("it names no cluster with a server")?
        .to_string();
    let decode = |v: &Value, what: &str| -> Result<Option<String>, String> {
        let Some(text) = v.as_str() else {
            return Ok(None);
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| format!("{what} is not base64: {e}"))?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| format!("{what} is not PEM text"))
    };
    Ok(KubeconfigParts {
        server,
        ca_pem: decode(
            &cluster["certificate-authority-data"],
            "certificate-authority-data",
        )?,
        cert_pem: decode(
            &config["users"][0]["user"]["client-certificate-data"],
            "client-certificate-data",
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_rendered_reads_back() {
        let text = render("https://10.0.0.1:6443", "CA PEM", KubeconfigUser::None).unwrap();
        let parts = read(&text).unwrap();
        assert_eq!(parts.server, "https://10.0.0.1:6443");
        assert_eq!(parts.ca_pem.as_deref(), Some("CA PEM"));
        assert_eq!(parts.cert_pem, None);
        let user = KubeconfigUser::Certificate {
            user: "system:node:n1",
            cert_pem: "CERT",
            key_pem: "KEY",
        };
        let text = render("https://a:1", "CA", user).unwrap();
        assert_eq!(read(&text).unwrap().cert_pem.as_deref(), Some("CERT"));
        let token = KubeconfigUser::Token {
            user: "joiner",
            token: "abcdef.0123456789abcdef",
        };
        let text = render("https://a:1", "CA", token).unwrap();
        let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(kc.current_context.as_deref(), Some("joiner@minik8s"));
        assert!(read("clusters: []").is_err());
    }
}
