//! A cluster served the way kubeadm sets one up (issue 13): the apiserver *binary* over HTTPS
//! on a fresh `client::pki` PKI, trusting the cluster CA for client certificates, with the
//! admin's `admin.conf` beside it. What a TLS test then proves (a handshake refused, a 401
//! `Status`, a node joining with a bootstrap token) is what an operator's cluster would do,
//! since nothing in the path is in-process or `--insecure-skip-tls-verify`.
//!
//! [`TempPki`] is the PKI alone, in a directory removed on drop; [`SecureCluster`] adds etcd and
//! the apiserver process, built by [`SecureClusterBuilder`] for the authenticators that differ
//! between tests (bootstrap tokens, a static token file). The binary's path comes from the
//! caller: each crate's tests have their own `CARGO_BIN_EXE_*`. Read next: `component.rs`,
//! which runs the binary, and `apiserver/tests/client_certs.rs`, which uses all of this.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use apiserver::kubelet_client::ClientCert;
use client::pki::{Credential, Pki, Sans};

use crate::{free_port, Component, EtcdProcess};

/// A `client::pki` PKI under `<tempdir>/pki`; the temporary dir also holds what a test
/// writes beside it (kubeconfigs, kubectl's cache) and is removed on drop.
pub struct TempPki {
    pki: Pki,
    dir: tempfile::TempDir,
}

impl TempPki {
    /// A fresh CA with the apiserver's serving certificate (for 127.0.0.1 and the default
    /// names), its kubelet client certificate and the admin's.
    pub fn create() -> TempPki {
        let dir = tempfile::tempdir().expect("a temporary dir");
        let pki = Pki::create(&dir.path().join("pki"), &Sans::default()).expect("a fresh PKI");
        TempPki { pki, dir }
    }

    /// The PKI, to issue certificates and hash the CA with.
    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    /// The temporary dir (the PKI is its `pki/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate's path (`ca.crt`), for `--cacert`, `--certificate-authority` or a
    /// kubelet's `--client-ca-file`.
    pub fn ca(&self) -> PathBuf {
        self.pki.cert_path(Credential::Ca)
    }

    /// The apiserver's client certificate towards kubelets (`apiserver-kubelet-client`), as
    /// `--kubelet-client-certificate` and `--kubelet-client-key` would load it.
    pub fn kubelet_client_cert(&self) -> ClientCert {
        let (cert, key) = self
            .pki
            .read_pair(Credential::ApiserverKubeletClient)
            .expect("the PKI's kubelet client certificate");
        ClientCert {
            cert_pem: cert.into_bytes(),
            key_pem: key.into_bytes(),
        }
    }
}

/// Which apiserver flags a [`SecureCluster`] starts with beyond the TLS ones.
pub struct SecureClusterBuilder {
    apiserver: String,
    bootstrap_token_auth: bool,
    token_auth_file: Option<String>,
}

impl SecureClusterBuilder {
    /// `--enable-bootstrap-token-auth`: token Secrets in `kube-system` authenticate joiners.
    pub fn bootstrap_token_auth(mut self) -> Self {
        self.bootstrap_token_auth = true;
        self
    }

    /// `--token-auth-file` with `csv` as its content (`token,user,uid,"group"` lines).
    pub fn token_auth_file(mut self, csv: &str) -> Self {
        self.token_auth_file = Some(csv.to_string());
        self
    }

    /// Start etcd and the apiserver, write `admin.conf`, and wait until `/readyz` answers
    /// `ok` over HTTPS verified against the CA, without a credential (it needs none).
    pub async fn start(self) -> SecureCluster {
        let etcd = EtcdProcess::start();
        let pki = TempPki::create();
        let listen = format!("127.0.0.1:{}", free_port());
        let shown = |path: PathBuf| path.display().to_string();
        let (cert, key, ca) = (
            shown(pki.pki.cert_path(Credential::Apiserver)),
            shown(pki.pki.key_path(Credential::Apiserver)),
            shown(pki.ca()),
        );
        let mut args = vec![
            "--etcd-servers",
            &etcd.endpoint,
            "--listen",
            &listen,
            "--tls-cert-file",
            &cert,
            "--tls-private-key-file",
            &key,
            "--client-ca-file",
            &ca,
        ];
        if self.bootstrap_token_auth {
            args.push("--enable-bootstrap-token-auth");
        }
        let tokens = pki.dir().join("tokens.csv");
        let tokens_arg = tokens.display().to_string();
        if let Some(csv) = &self.token_auth_file {
            std::fs::write(&tokens, csv).expect("write the token file");
            args.extend(["--token-auth-file", &tokens_arg]);
        }
        let server = Component::start(&self.apiserver, &args, &[]);
        let url = format!("https://{listen}");
        let admin = pki.dir().join("admin.conf");
        let kubeconfig = pki
            .pki
            .admin_kubeconfig(&url)
            .expect("the admin's kubeconfig");
        std::fs::write(&admin, kubeconfig).expect("write admin.conf");
        let cluster = SecureCluster {
            server,
            _etcd: etcd,
            pki,
            url,
            admin,
        };
        cluster.wait_ready().await;
        cluster
    }
}

/// etcd and the apiserver binary serving HTTPS on a [`TempPki`]; the apiserver, then etcd,
/// then the directory go on drop.
pub struct SecureCluster {
    server: Component,
    _etcd: EtcdProcess,
    pki: TempPki,
    url: String,
    admin: PathBuf,
}

impl SecureCluster {
    /// A cluster of the apiserver binary at `apiserver` (the caller's `CARGO_BIN_EXE_*`),
    /// with `--tls-cert-file`, `--tls-private-key-file` and `--client-ca-file` from the PKI.
    pub fn builder(apiserver: &str) -> SecureClusterBuilder {
        SecureClusterBuilder {
            apiserver: apiserver.to_string(),
            bootstrap_token_auth: false,
            token_auth_file: None,
        }
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The cluster's PKI.
    pub fn pki(&self) -> &Pki {
        self.pki.pki()
    }

    /// The temporary dir holding the PKI (`pki/`), `admin.conf` and kubectl's cache.
    pub fn dir(&self) -> &Path {
        self.pki.dir()
    }

    /// The CA certificate's path.
    pub fn ca(&self) -> PathBuf {
        self.pki.ca()
    }

    /// The admin's kubeconfig (kubeadm's `admin.conf`): kubernetes-admin in `system:masters`
    /// by client certificate.
    pub fn admin(&self) -> &Path {
        &self.admin
    }

    /// The apiserver process (its output, for assertion messages).
    pub fn apiserver(&self) -> &Component {
        &self.server
    }

    /// Write `dir/<name>`, a kubeconfig for `user` authenticating with the `cert` and `key`
    /// PEM pair, trusting this cluster's CA.
    pub fn kubeconfig(&self, name: &str, user: &str, cert: &str, key: &str) -> PathBuf {
        let path = self.dir().join(name);
        let text = self.pki().kubeconfig(&self.url, user, cert, key);
        std::fs::write(&path, text.expect("a kubeconfig")).expect("write the kubeconfig");
        path
    }

    /// `curl` verifying the server against the CA, with `extra` arguments (a header):
    /// (HTTP code, body); code 0 when curl got no answer.
    pub fn curl(&self, extra: &[&str], path: &str) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-s", "--cacert"])
            .arg(self.ca())
            .args(extra)
            .args(["-w", "\n%{http_code}", &format!("{}{path}", self.url)])
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.parse().unwrap_or(0), body.to_string())
    }

    /// The real kubectl with `args`, reading no kubeconfig but what `args` name, with a cache
    /// dir of its own.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(crate::kubectl())
            .arg("--cache-dir")
            .arg(self.dir().join("kube-cache"))
            .args(args)
            .env("KUBECONFIG", "/dev/null")
            .output()
            .expect("run kubectl")
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (code, body) = self.curl(&[], "/readyz");
            if code == 200 && body == "ok" {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the apiserver is not ready: {code} {body}\n{}",
                self.server.output()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A `kube::Client` from the kubeconfig at `path`, as a component given `--kubeconfig` builds
/// one (and never the user's own).
pub async fn kube_client(path: &Path) -> kube::Client {
    let text = std::fs::read_to_string(path).expect("read the kubeconfig");
    kube_client_from_yaml(&text).await
}

/// A `kube::Client` from kubeconfig YAML.
pub async fn kube_client_from_yaml(text: &str) -> kube::Client {
    let kc = kube::config::Kubeconfig::from_yaml(text).expect("a kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("a client configuration");
    kube::Client::try_from(config).expect("a client")
}
