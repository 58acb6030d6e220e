//! Client bootstrap: how a component finds and authenticates to the apiserver.
//!
//! `--kubeconfig FILE` reads a kubeconfig like kubectl does; `--server URL` (+ `--token`) is
//! the short form for labs and tests. Without either, the usual kubeconfig search applies
//! (`$KUBECONFIG`, `~/.kube/config`, in-cluster).

use anyhow::Context;

/// Flags shared by every component's command line (`#[command(flatten)]`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClusterFlags {
    /// kubeconfig file to read the apiserver address and credentials from.
    #[arg(long, env = "KUBECONFIG", conflicts_with = "server")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// apiserver URL (e.g. http://127.0.0.1:6443), instead of a kubeconfig.
    #[arg(long)]
    pub server: Option<String>,
    /// Bearer token for --server.
    #[arg(long, requires = "server")]
    pub token: Option<String>,
    /// Accept any TLS certificate from --server (labs only).
    #[arg(long = "insecure-skip-tls-verify")]
    pub insecure_skip_tls_verify: bool,
}

impl ClusterFlags {
    /// Flags pointing at `server` (tests).
    pub fn for_server(server: &str) -> ClusterFlags {
        ClusterFlags {
            server: Some(server.to_string()),
            ..Default::default()
        }
    }

    /// Build the client the flags describe.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let config = if let Some(server) = &self.server {
            let mut c = kube::Config::new(
                server
                    .parse()
                    .with_context(|| format!("--server {server:?} is not a URL"))?,
            );
            c.accept_invalid_certs = self.insecure_skip_tls_verify;
            if let Some(t) = &self.token {
                c.auth_info.token = Some(t.clone().into());
            }
            c
        } else if let Some(path) = &self.kubeconfig {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .with_context(|| format!("using kubeconfig {}", path.display()))?
        } else {
            kube::Config::infer()
                .await
                .context("no --server or --kubeconfig, and no kubeconfig found")?
        };
        kube::Client::try_from(config).context("building the Kubernetes client")
    }
}
