//! The kubelet endpoint: where the node's kubelet API listens, whom it lets in, and the port
//! the Node reports for it.
//!
//! The apiserver reaches a node's kubelet (`kubectl logs`, `exec`, `nodes/{n}/proxy`) at the
//! Node's `InternalIP` and the port in `status.daemonEndpoints.kubeletEndpoint.Port`, so a
//! real kubelet listens by default on port 10250 (`--port`) of its node address. That API
//! runs commands in containers, so it is served by default only when its callers can
//! authenticate:
//! - a client certificate chaining to `--client-ca-file` (the apiserver presents
//!   `apiserver-kubelet-client`, signed by the cluster CA; kubeadm sets the kubelet's
//!   `authentication.x509.clientCAFile` to that CA);
//! - the bearer token of `--auth-token-file`;
//! - a node that joined with `--bootstrap-token` knows the cluster CA from its
//!   `<root-dir>/kubelet.conf`, pinned by `--ca-cert-hash`: that CA is its client CA unless
//!   `--client-ca-file` names another, as kubeadm configures it.
//!
//! Without any of them nothing is served (one warning says why). `--listen ADDR:PORT`
//! overrides address and port and always serves: whoever cannot authenticate gets 401, but
//! for `/healthz`. The socket is bound before the node is touched, so a port in use ends the
//! start with one line and exit status 1, as the real kubelet's does.
//!
//! Read next: `server.rs` (the API itself), `serving_cert.rs` (its certificate), `node.rs`
//! (the port reported).

use std::fmt;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::pod_worker::Context;
use crate::serving_cert::{CertError, ServingCert};

/// The default port of the kubelet API, upstream's `--port`.
pub const DEFAULT_PORT: u16 = 10250;

/// Why the kubelet API could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The address is taken (another kubelet?) or not ours.
    #[error("the kubelet API cannot listen on {addr} (--listen, or --node-ip and --port)")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The client CA file could not be read.
    #[error("reading the kubelet API's client CA {path}")]
    ReadClientCa {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The node's `kubelet.conf` holds no usable cluster CA.
    #[error("taking the cluster CA from {path} as the kubelet API's client CA: {reason}")]
    KubeconfigCa { path: PathBuf, reason: String },
    /// `--auth-token-file` could not be read.
    #[error("reading the kubelet API's token file {path}")]
    ReadToken {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The serving certificate could not be read or made.
    #[error("the kubelet API's serving certificate")]
    ServingCert(#[source] CertError),
    /// The TLS settings were refused (a client CA without a certificate, a bad key).
    #[error("the kubelet API's TLS settings")]
    Tls(#[source] std::io::Error),
}

/// The kubelet API's flags, as the binary was given them.
#[derive(Debug, Clone)]
pub struct ApiFlags {
    /// The Node's name, in a self-signed serving certificate.
    pub node_name: String,
    /// `--node-ip` (or the detected node IP).
    pub node_ip: Option<IpAddr>,
    /// `--port`.
    pub port: u16,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--auth-token-file`.
    pub auth_token_file: Option<PathBuf>,
    /// `--client-ca-file`, else the source [`ClientCa::from_flags`] picks.
    pub client_ca: Option<ClientCa>,
    /// `--tls-cert-file` and `--tls-private-key-file`.
    pub tls_pair: Option<(PathBuf, PathBuf)>,
    /// Where a self-signed serving certificate is kept: `<root-dir>/pki`.
    pub pki_dir: PathBuf,
}

/// The kubelet API with its socket bound, to be served once the pods' context exists.
pub struct KubeletApi {
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    token: Option<String>,
}

impl KubeletApi {
    /// Bind the API's address and load its credentials: the given certificate or a
    /// self-signed one for the node's names, the client CA, the bearer token. `None`, after
    /// one warning, when it is not served.
    pub fn open(flags: &ApiFlags) -> Result<Option<KubeletApi>, EndpointError> {
        let token =
            match &flags.auth_token_file {
                Some(path) => Some(std::fs::read_to_string(path).map_err(|source| {
                    EndpointError::ReadToken {
                        path: path.clone(),
                        source,
                    }
                })?),
                None => None,
            };
        // an empty token file means no token (`server::router`)
        let token = token
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        let auth = Authentication {
            client_ca: flags.client_ca.is_some(),
            token: token.is_some(),
        };
        let addr = match choose(flags.listen, flags.node_ip, flags.port, auth) {
            Ok(addr) => addr,
            Err(reason) => {
                tracing::warn!(%reason, "kubelet API not served");
                return Ok(None);
            }
        };
        let listener = bind(addr)?;
        // with port 0 the kernel picks one: that is the port to log and report
        let addr = listener.local_addr().unwrap_or(addr);
        let cert = match &flags.tls_pair {
            Some((cert, key)) => ServingCert::from_files(cert, key),
            None => {
                let mut names = vec![flags.node_name.clone(), addr.ip().to_string()];
                names.extend(flags.node_ip.map(|ip| ip.to_string()));
                names.sort();
                names.dedup();
                ServingCert::self_signed(&flags.pki_dir, &names)
            }
        }
        .map_err(EndpointError::ServingCert)?;
        let client_ca_pem = flags.client_ca.as_ref().map(ClientCa::read).transpose()?;
        let tls = crate::server::tls_config(&cert, client_ca_pem.as_deref())
            .map_err(EndpointError::Tls)?;
        let client_ca = flags.client_ca.as_ref().map(ToString::to_string);
        tracing::info!(%addr, client_ca, token = token.is_some(), "kubelet API listening (HTTPS)");
        Ok(Some(KubeletApi {
            listener,
            tls,
            token,
        }))
    }

    /// The port the Node reports (`daemonEndpoints.kubeletEndpoint.Port`): the bound one.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map_or(0, |a| a.port())
    }

    /// Serve the API in the background ([`crate::server::serve`]).
    pub fn serve(self, ctx: Arc<Context>) {
        tokio::spawn(async move {
            let served = crate::server::serve(self.listener, self.tls, ctx, self.token);
            if let Err(e) = served.await {
                tracing::error!(error = %e, "kubelet API");
            }
        });
    }
}

/// How callers of the kubelet API can authenticate, as the flags say.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Authentication {
    /// A client CA: `--client-ca-file`, or the cluster CA of a join.
    pub client_ca: bool,
    /// A bearer token: `--auth-token-file`.
    pub token: bool,
}

/// Why the kubelet API is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotServed {
    /// No client CA and no token: nobody could call it.
    NoAuthentication,
    /// No node IP to listen on (no `--node-ip`, no default route).
    NoNodeIp,
}

impl fmt::Display for NotServed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NotServed::NoAuthentication => {
                "no caller could authenticate: give --client-ca-file or --auth-token-file, \
                 join with --bootstrap-token, or --listen to serve anyway"
            }
            NotServed::NoNodeIp => "no node IP to listen on: give --node-ip or --listen",
        })
    }
}

/// Where the kubelet API listens: `--listen` if given, else `--port` of the node IP when a
/// caller can authenticate.
pub fn choose(
    listen: Option<SocketAddr>,
    node_ip: Option<IpAddr>,
    port: u16,
    auth: Authentication,
) -> Result<SocketAddr, NotServed> {
    if let Some(addr) = listen {
        return Ok(addr);
    }
    if !auth.client_ca && !auth.token {
        return Err(NotServed::NoAuthentication);
    }
    node_ip
        .map(|ip| SocketAddr::new(ip, port))
        .ok_or(NotServed::NoNodeIp)
}

/// Where the kubelet API's client CA comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCa {
    /// `--client-ca-file`: a PEM bundle.
    File(PathBuf),
    /// The cluster CA in the node's `kubelet.conf`, written by a join.
    JoinedCluster(PathBuf),
}

impl ClientCa {
    /// `--client-ca-file`, else the cluster CA of `kubelet_conf` when the node joins with a
    /// bootstrap token.
    pub fn from_flags(client_ca_file: Option<&Path>, kubelet_conf: Option<&Path>) -> Option<Self> {
        client_ca_file
            .map(|p| ClientCa::File(p.to_path_buf()))
            .or_else(|| kubelet_conf.map(|p| ClientCa::JoinedCluster(p.to_path_buf())))
    }

    /// The CA bundle, PEM.
    pub fn read(&self) -> Result<Vec<u8>, EndpointError> {
        match self {
            ClientCa::File(path) => {
                std::fs::read(path).map_err(|source| EndpointError::ReadClientCa {
                    path: path.clone(),
                    source,
                })
            }
            ClientCa::JoinedCluster(path) => {
                let failed = |reason: String| EndpointError::KubeconfigCa {
                    path: path.clone(),
                    reason,
                };
                let text = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
                let parts = client::pki::read_kubeconfig(&text).map_err(failed)?;
                parts
                    .ca_pem
                    .map(String::into_bytes)
                    .ok_or_else(|| failed("it embeds no certificate-authority-data".into()))
            }
        }
    }
}

impl fmt::Display for ClientCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientCa::File(p) => write!(f, "{}", p.display()),
            ClientCa::JoinedCluster(p) => write!(f, "the cluster CA in {}", p.display()),
        }
    }
}

/// Bind the kubelet API's socket (`bind(2)`, `listen(2)`): the step another process can make
/// fail, done before the node is touched.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, EndpointError> {
    TcpListener::bind(addr).map_err(|source| EndpointError::Listen { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE_IP: &str = "192.168.56.11";

    fn ip() -> Option<IpAddr> {
        Some(NODE_IP.parse().unwrap())
    }

    #[test]
    fn the_default_is_the_port_of_the_node_ip_when_callers_can_authenticate() {
        let by_ca = Authentication {
            client_ca: true,
            token: false,
        };
        let by_token = Authentication {
            client_ca: false,
            token: true,
        };
        let want: SocketAddr = format!("{NODE_IP}:{DEFAULT_PORT}").parse().unwrap();
        assert_eq!(choose(None, ip(), DEFAULT_PORT, by_ca), Ok(want));
        assert_eq!(choose(None, ip(), DEFAULT_PORT, by_token), Ok(want));
        let other: SocketAddr = format!("{NODE_IP}:10300").parse().unwrap();
        assert_eq!(choose(None, ip(), 10300, by_ca), Ok(other));
        assert_eq!(
            choose(None, None, DEFAULT_PORT, by_ca),
            Err(NotServed::NoNodeIp)
        );
        let v6 = "fd00::11".parse().ok();
        assert_eq!(
            choose(None, v6, DEFAULT_PORT, by_ca).unwrap().to_string(),
            "[fd00::11]:10250"
        );
    }

    #[test]
    fn nothing_is_served_by_default_when_nobody_could_authenticate() {
        let none = Authentication::default();
        assert_eq!(
            choose(None, ip(), DEFAULT_PORT, none),
            Err(NotServed::NoAuthentication)
        );
        let why = NotServed::NoAuthentication.to_string();
        assert!(
            why.contains("--client-ca-file") && why.contains("--listen"),
            "{why}"
        );
    }

    #[test]
    fn listen_overrides_node_ip_and_port_and_always_serves() {
        let listen: SocketAddr = "0.0.0.0:10255".parse().unwrap();
        for auth in [
            Authentication::default(),
            Authentication {
                client_ca: true,
                token: true,
            },
        ] {
            assert_eq!(choose(Some(listen), ip(), DEFAULT_PORT, auth), Ok(listen));
            assert_eq!(choose(Some(listen), None, DEFAULT_PORT, auth), Ok(listen));
        }
    }

    #[test]
    fn the_client_ca_is_the_flags_file_else_the_joined_clusters() {
        let (file, conf) = (Path::new("/etc/ca.crt"), Path::new("/var/lib/kubelet.conf"));
        assert_eq!(
            ClientCa::from_flags(Some(file), Some(conf)),
            Some(ClientCa::File(file.into()))
        );
        assert_eq!(
            ClientCa::from_flags(None, Some(conf)),
            Some(ClientCa::JoinedCluster(conf.into()))
        );
        assert_eq!(ClientCa::from_flags(None, None), None);
    }

    #[test]
    fn the_joined_clusters_ca_is_read_from_kubelet_conf() {
        let dir = tempfile::tempdir().unwrap();
        let pki = client::pki::Pki::create(&dir.path().join("pki"), &Default::default()).unwrap();
        let (ca_pem, _) = pki.read_pair(client::pki::Credential::Ca).unwrap();
        let conf = dir.path().join("kubelet.conf");
        let text = client::pki::render_kubeconfig(
            "https://10.0.0.1:6443",
            &ca_pem,
            client::pki::KubeconfigUser::None,
        )
        .unwrap();
        std::fs::write(&conf, text).unwrap();
        let ca = ClientCa::JoinedCluster(conf.clone());
        assert_eq!(ca.read().unwrap(), ca_pem.into_bytes());
        assert!(ca.to_string().contains("kubelet.conf"), "{ca}");

        // a kubeconfig without the CA, and none at all, are errors naming the file
        let bare = dir.path().join("bare.conf");
        std::fs::write(
            &bare,
            "clusters:\n- cluster:\n    server: https://10.0.0.1:6443\n",
        )
        .unwrap();
        let err = ClientCa::JoinedCluster(bare).read().unwrap_err();
        assert!(
            err.to_string().contains("certificate-authority-data"),
            "{err}"
        );
        let missing = ClientCa::JoinedCluster(dir.path().join("none.conf"));
        assert!(missing
            .read()
            .unwrap_err()
            .to_string()
            .contains("none.conf"));
        let err = ClientCa::File(dir.path().join("ca.pem"))
            .read()
            .unwrap_err();
        assert!(err.to_string().contains("ca.pem"), "{err}");
    }

    fn flags(dir: &Path) -> ApiFlags {
        ApiFlags {
            node_name: "n1".into(),
            node_ip: Some("127.0.0.1".parse().unwrap()),
            port: 0,
            listen: None,
            auth_token_file: None,
            client_ca: None,
            tls_pair: None,
            pki_dir: dir.join("pki"),
        }
    }

    #[test]
    fn open_binds_only_when_a_caller_can_authenticate() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "\n").unwrap();
        let mut f = flags(dir.path());
        assert!(KubeletApi::open(&f).unwrap().is_none());
        // an empty token file is no token
        f.auth_token_file = Some(token.clone());
        assert!(KubeletApi::open(&f).unwrap().is_none());
        assert!(
            !dir.path().join("pki").exists(),
            "nothing made when not served"
        );
        std::fs::write(&token, "secret\n").unwrap();
        let api = KubeletApi::open(&f).unwrap().expect("served with a token");
        assert_ne!(api.port(), 0, "the bound port is the one reported");
        assert_eq!(api.token.as_deref(), Some("secret"));
        assert!(dir.path().join("pki/kubelet.crt").exists());

        // a client CA that is not there stops the start
        f.auth_token_file = None;
        f.client_ca = Some(ClientCa::File(dir.path().join("ca.crt")));
        let err = KubeletApi::open(&f).err().expect("no CA file");
        assert!(err.to_string().contains("ca.crt"), "{err}");
    }

    #[test]
    fn a_port_in_use_is_one_error_naming_the_address() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = bind(addr).unwrap_err();
        let line = format!("{:#}", anyhow::Error::from(err));
        assert!(line.contains(&addr.to_string()), "{line}");
        assert!(line.contains("in use"), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }
}
