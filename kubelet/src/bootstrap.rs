//! TLS bootstrapping: how a new machine becomes a node with nothing but a join command,
//! `minik8s-kubelet --server https://ADDR:6443 --bootstrap-token T --ca-cert-hash sha256:H`
//! (what `kubeadm join` does before it starts the kubelet).
//!
//! The machine starts with no credential and no idea which CA to trust. Two secrets from the
//! join command solve the two problems:
//!
//! 1. **Which apiserver is the real one?** The kubelet reads the ConfigMap
//!    `kube-public/cluster-info` (the one object anyone may read) over TLS *without*
//!    verifying the server, since it has no CA to verify with yet. Whoever answers could be an
//!    impostor, so the CA found there is accepted only if the SHA-256 of its public key
//!    (SubjectPublicKeyInfo) equals `--ca-cert-hash`: an impostor can copy the real CA
//!    certificate but not its private key, so it cannot serve a certificate signed by it, and
//!    a CA of its own hashes differently. From here on every connection verifies the server
//!    against that CA. The hash is not secret; it pins.
//! 2. **Who are we?** The bootstrap token (`abcdef.0123456789abcdef`) is a short-lived
//!    shared secret: the apiserver authenticates it as `system:bootstrap:abcdef` in
//!    `system:bootstrappers`. The controller manager approves exactly one thing for that
//!    group, a certificate signing request for a node client certificate
//!    (`CN=system:node:<name>, O=system:nodes`). So the kubelet makes a private key (it never
//!    leaves the machine), posts a CSR for it, waits for the signed certificate in
//!    `status.certificate`, and writes `<root-dir>/kubelet.conf`: the CA, the certificate and
//!    the key (mode 0600). From then on it is `system:node:<name>` and the token is no longer
//!    needed; a restarted kubelet reuses `kubelet.conf` while its certificate is valid.
//!
//! (kubeadm also checks a JWS signature on `cluster-info` made with the token, so that a
//! token alone can stand in for the hash; minik8s always requires the hash.)
//!
//! Read next: `cli/src/commands/cluster/token.rs` (the join command), the controller's
//! `certificates/` (approval and signing), `client/src/pki/` (CSRs, kubeconfigs, the hash).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::certificates::v1::{
    CertificateSigningRequest, CertificateSigningRequestSpec,
};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::ResourceExt;

use client::pki::{self, KubeconfigUser, PkiError, Usage};

/// The signer of kubelet client certificates.
pub const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The group every node's user is in.
pub const NODES_GROUP: &str = "system:nodes";
/// The namespace and name of the ConfigMap that publishes the CA.
const CLUSTER_INFO: (&str, &str) = ("kube-public", "cluster-info");
/// How often the CSR is read while waiting for its certificate.
const POLL: Duration = Duration::from_millis(500);

/// Why the node could not join.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// `--ca-cert-hash` is not `sha256:` and 64 hex digits.
    #[error("--ca-cert-hash {0:?} is not sha256:<64 hex digits>")]
    BadHash(String),
    /// `--bootstrap-token` is not of the bootstrap form.
    #[error("--bootstrap-token is not of the form [a-z0-9]{{6}}.[a-z0-9]{{16}}")]
    BadToken,
    /// `--server` is not an https URL.
    #[error("--server {0:?} must be an https:// URL to join with a bootstrap token")]
    BadServer(String),
    /// `cluster-info` could not be read.
    #[error("reading kube-public/cluster-info from {server}: {source}")]
    Discovery { server: String, source: kube::Error },
    /// `cluster-info` holds no kubeconfig with a CA.
    #[error("kube-public/cluster-info holds no usable kubeconfig: {0}")]
    ClusterInfo(String),
    /// The published CA is not the one the join command pins.
    #[error("the cluster's CA does not match --ca-cert-hash: expected {expected}, got {got}")]
    CaMismatch { expected: String, got: String },
    /// The apiserver did not accept the token (unknown, wrong secret, expired, deleted).
    #[error("the bootstrap token was refused by the apiserver (401 Unauthorized)")]
    TokenRefused,
    /// A client could not be built from a kubeconfig.
    #[error("building a client from {what}: {reason}")]
    Client { what: String, reason: String },
    /// The key and CSR could not be made, or a kubeconfig rendered.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// A request about the CSR failed.
    #[error("{step} certificate signing request: {source}")]
    Csr {
        step: &'static str,
        source: kube::Error,
    },
    /// The CSR was denied or failed instead of being signed.
    #[error("certificate signing request {name} was {condition}: {message}")]
    NotSigned {
        name: String,
        condition: String,
        message: String,
    },
    /// No certificate in time.
    #[error("no certificate for request {name} within {secs} s: is the controller manager running with --cluster-signing-cert-file?")]
    Timeout { name: String, secs: u64 },
    /// `kubelet.conf` could not be written.
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What the join command and the kubelet's flags say.
#[derive(Debug, Clone)]
pub struct JoinConfig {
    /// `--server`, `https://ADDR:PORT`.
    pub server: String,
    /// `--bootstrap-token`.
    pub token: String,
    /// `--ca-cert-hash`, `sha256:<hex>`.
    pub ca_cert_hash: String,
    /// The Node's name; the certificate is for `system:node:<name>`.
    pub node_name: String,
    /// Where the node's credential is kept: `<root-dir>/kubelet.conf`.
    pub kubeconfig: PathBuf,
    /// How long to wait for the signed certificate.
    pub timeout: Duration,
}

/// The node's client: from `kubelet.conf` if its certificate is still valid, else after
/// joining with the bootstrap token (which writes `kubelet.conf`).
pub async fn client(cfg: &JoinConfig) -> Result<kube::Client, BootstrapError> {
    match reusable(&cfg.kubeconfig) {
        Ok(text) => {
            tracing::info!(path = %cfg.kubeconfig.display(), "using the node's kept credential");
            return client_from(&text, &cfg.kubeconfig.display().to_string()).await;
        }
        Err(reason) => {
            tracing::info!(path = %cfg.kubeconfig.display(), %reason, "joining with the bootstrap token")
        }
    }
    let text = join(cfg).await?;
    client_from(&text, &cfg.kubeconfig.display().to_string()).await
}

/// `kubelet.conf`'s text if it holds a client certificate valid now, else why not.
fn reusable(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let parts = pki::read_kubeconfig(&text)?;
    let cert = parts.cert_pem.ok_or("it holds no client certificate")?;
    match pki::is_valid_now(&cert)? {
        true => Ok(text),
        false => Err("its client certificate has expired".into()),
    }
}

/// The whole join: discover and pin the CA, obtain a certificate, write `kubelet.conf`.
/// Returns the kubeconfig's text.
pub async fn join(cfg: &JoinConfig) -> Result<String, BootstrapError> {
    check_flags(cfg)?;
    let ca_pem = discover_ca(&cfg.server, &cfg.ca_cert_hash).await?;
    let bootstrap = pki::render_kubeconfig(
        &cfg.server,
        &ca_pem,
        KubeconfigUser::Token {
            user: "kubelet-bootstrap",
            token: &cfg.token,
        },
    )?;
    let client = client_from(&bootstrap, "the bootstrap token").await?;
    let user = format!("system:node:{}", cfg.node_name);
    let (csr_pem, key_pem) = pki::new_request(&user, &[NODES_GROUP])?;
    let name = post_csr(&client, &csr_pem).await?;
    tracing::info!(csr = %name, "certificate signing request posted; waiting for its certificate");
    let cert_pem = wait_for_certificate(&client, &name, cfg.timeout).await?;
    let text = pki::render_kubeconfig(
        &cfg.server,
        &ca_pem,
        KubeconfigUser::Certificate {
            user: &user,
            cert_pem: &cert_pem,
            key_pem: &key_pem,
        },
    )?;
    write_private(&cfg.kubeconfig, &text)?;
    tracing::info!(path = %cfg.kubeconfig.display(), %user, "joined: credential written");
    Ok(text)
}

/// The join command's values, checked before anything is sent.
fn check_flags(cfg: &JoinConfig) -> Result<(), BootstrapError> {
    let hex = cfg.ca_cert_hash.strip_prefix("sha256:").unwrap_or("");
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BootstrapError::BadHash(cfg.ca_cert_hash.clone()));
    }
    let shaped = |s: &str, len| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    match cfg.token.split_once('.') {
        Some((id, secret)) if shaped(id, 6) && shaped(secret, 16) => {}
        _ => return Err(BootstrapError::BadToken),
    }
    if !cfg.server.starts_with("https://") {
        return Err(BootstrapError::BadServer(cfg.server.clone()));
    }
    Ok(())
}

/// Read `cluster-info` without verifying the server, and return its CA (PEM) if it hashes
/// to `expected`.
pub async fn discover_ca(server: &str, expected: &str) -> Result<String, BootstrapError> {
    let url = server
        .parse()
        .map_err(|_| BootstrapError::BadServer(server.to_string()))?;
    let mut config = kube::Config::new(url);
    // no CA yet: whatever answers is checked by the hash below, not by TLS; and no system
    // trust store either (a minimal node image has none, and it would prove nothing here)
    config.accept_invalid_certs = true;
    config.root_cert = Some(Vec::new());
    let client = kube::Client::try_from(config).map_err(|e| BootstrapError::Client {
        what: server.to_string(),
        reason: e.to_string(),
    })?;
    let (namespace, name) = CLUSTER_INFO;
    let cm = Api::<ConfigMap>::namespaced(client, namespace)
        .get(name)
        .await
        .map_err(|source| BootstrapError::Discovery {
            server: server.to_string(),
            source,
        })?;
    let kubeconfig = cm
        .data
        .as_ref()
        .and_then(|d| d.get("kubeconfig"))
        .ok_or_else(|| BootstrapError::ClusterInfo("no data.kubeconfig".into()))?;
    let ca_pem = pki::read_kubeconfig(kubeconfig)
        .map_err(BootstrapError::ClusterInfo)?
        .ca_pem
        .ok_or_else(|| BootstrapError::ClusterInfo("no certificate-authority-data".into()))?;
    let got = pki::ca_cert_hash_of(&ca_pem).map_err(BootstrapError::ClusterInfo)?;
    if !got.eq_ignore_ascii_case(expected) {
        return Err(BootstrapError::CaMismatch {
            expected: expected.to_string(),
            got,
        });
    }
    Ok(ca_pem)
}

/// A client from a kubeconfig's text (`what` names it in errors).
async fn client_from(text: &str, what: &str) -> Result<kube::Client, BootstrapError> {
    let err = |reason: String| BootstrapError::Client {
        what: what.to_string(),
        reason,
    };
    let kc = kube::config::Kubeconfig::from_yaml(text).map_err(|e| err(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| err(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| err(e.to_string()))
}

/// Whether a request failed because its credential was refused.
fn unauthorized(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 401)
}

/// Post the node's CSR for a kubelet client certificate; returns its name.
async fn post_csr(client: &kube::Client, csr_pem: &str) -> Result<String, BootstrapError> {
    let usages = [Usage::DigitalSignature, Usage::ClientAuth];
    let csr = CertificateSigningRequest {
        metadata: ObjectMeta {
            generate_name: Some("node-csr-".into()),
            ..Default::default()
        },
        spec: CertificateSigningRequestSpec {
            request: ByteString(csr_pem.as_bytes().to_vec()),
            signer_name: KUBELET_CLIENT_SIGNER.into(),
            usages: Some(usages.iter().map(|u| u.as_api().to_string()).collect()),
            ..Default::default()
        },
        status: None,
    };
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    match api.create(&PostParams::default(), &csr).await {
        Ok(created) => Ok(created.name_any()),
        Err(e) if unauthorized(&e) => Err(BootstrapError::TokenRefused),
        Err(source) => Err(BootstrapError::Csr {
            step: "posting the",
            source,
        }),
    }
}

/// Poll the CSR until its certificate is issued, it is denied or fails, or `timeout`.
async fn wait_for_certificate(
    client: &kube::Client,
    name: &str,
    timeout: Duration,
) -> Result<String, BootstrapError> {
    let api: Api<CertificateSigningRequest> = Api::all(client.clone());
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let csr = match api.get(name).await {
            Ok(csr) => csr,
            Err(e) if unauthorized(&e) => return Err(BootstrapError::TokenRefused),
            Err(source) => {
                return Err(BootstrapError::Csr {
                    step: "reading the",
                    source,
                })
            }
        };
        let status = csr.status.unwrap_or_default();
        if let Some(cert) = status.certificate.filter(|c| !c.0.is_empty()) {
            return Ok(String::from_utf8_lossy(&cert.0).into_owned());
        }
        let refused = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| (c.type_ == "Denied" || c.type_ == "Failed") && c.status == "True");
        if let Some(c) = refused {
            return Err(BootstrapError::NotSigned {
                name: name.to_string(),
                condition: c.type_.to_lowercase(),
                message: c.message.unwrap_or_default(),
            });
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(BootstrapError::Timeout {
                name: name.to_string(),
                secs: timeout.as_secs(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Write `text` to `path`, readable by its owner only (it holds the node's private key),
/// beside it first and renamed over it, so a crash never leaves half a credential.
fn write_private(path: &Path, text: &str) -> Result<(), BootstrapError> {
    let err = |source| BootstrapError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("conf.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    file.write_all(text.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(token: &str, hash: &str, server: &str) -> JoinConfig {
        JoinConfig {
            server: server.into(),
            token: token.into(),
            ca_cert_hash: hash.into(),
            node_name: "n1".into(),
            kubeconfig: PathBuf::from("/nonexistent/kubelet.conf"),
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn the_join_flags_are_checked_before_anything_is_sent() {
        let hash = format!("sha256:{}", "ab".repeat(32));
        let token = "abcdef.0123456789abcdef";
        let server = "https://127.0.0.1:6443";
        check_flags(&cfg(token, &hash, server)).unwrap();
        let err = check_flags(&cfg(token, "sha256:abc", server)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--ca-cert-hash \"sha256:abc\" is not sha256:<64 hex digits>"
        );
        let err = check_flags(&cfg("abcdef0123456789abcdef", &hash, server)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--bootstrap-token is not of the form [a-z0-9]{6}.[a-z0-9]{16}"
        );
        let err = check_flags(&cfg(token, &hash, "http://127.0.0.1:6443")).unwrap_err();
        assert!(matches!(err, BootstrapError::BadServer(_)), "{err}");
    }

    #[test]
    fn a_kept_credential_is_reused_only_with_a_valid_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let ca = pki::Pki::create(&dir.path().join("pki"), &Default::default()).unwrap();
        let (cert, key) = ca.issue_client("system:node:n1", &[NODES_GROUP]).unwrap();
        let path = dir.path().join("kubelet.conf");
        assert!(reusable(&path).is_err(), "no file yet");
        let text = ca.kubeconfig("https://127.0.0.1:1", "system:node:n1", &cert, &key);
        write_private(&path, &text.unwrap()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(reusable(&path).is_ok());
        let no_user = pki::render_kubeconfig("https://a:1", ca.ca_cert_pem(), KubeconfigUser::None);
        write_private(&path, &no_user.unwrap()).unwrap();
        assert_eq!(
            reusable(&path).unwrap_err(),
            "it holds no client certificate"
        );
    }
}
