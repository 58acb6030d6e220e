//! From flags to a client: where the apiserver is and who we are.
//!
//! kubectl's rules, in order: `--server` (with `--token`) names the server outright, and then
//! no kubeconfig is read at all, so a `$KUBECONFIG` pointing elsewhere (or nowhere) does not
//! matter. Otherwise `--kubeconfig FILE` is read, or else the usual search (`kube::Config`'s
//! `infer`: the `$KUBECONFIG` list merged, then `~/.kube/config`, then the pod's service
//! account when running in a cluster); `--context` picks a context of that configuration.
//! The namespace comes from `-n`, else the context's, else `default`.
//! Read next: `discovery.rs`.

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::cli::GlobalFlags;

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// `--server` is not a URL.
    #[error("invalid --server {server:?}: {reason}")]
    BadServer { server: String, reason: String },
    /// The kubeconfig named by `--kubeconfig` could not be read.
    #[error("reading kubeconfig {path}: {source}")]
    ReadKubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The kubeconfig (or `--context`) does not describe a usable cluster.
    #[error("{0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// No configuration at all: no kubeconfig found and not inside a cluster.
    #[error("no configuration has been provided, try setting --server or KUBECONFIG ({0})")]
    NoConfig(#[from] kube::config::InClusterError),
    /// The client could not be built from the configuration (TLS setup, proxy).
    #[error("building the client: {0}")]
    Client(#[from] kube::Error),
}

/// A connected client with what the commands need to know about it.
pub struct Connection {
    pub client: kube::Client,
    /// The namespace commands act in when none is given (`-n`, the context's, `default`).
    pub namespace: String,
    /// The server's URL, for `cluster-info` and for error messages.
    pub server: http::Uri,
}

/// Build the configuration the flags describe.
pub async fn config(flags: &GlobalFlags) -> Result<kube::Config, ConnectError> {
    let options = KubeConfigOptions {
        context: flags.context.clone(),
        ..Default::default()
    };
    let mut config = match (&flags.server, &flags.kubeconfig) {
        (Some(server), _) => server_config(server)?,
        (None, Some(path)) => kube::Config::from_custom_kubeconfig(read(path)?, &options).await?,
        (None, None) => match found_kubeconfig()? {
            Some(kc) => kube::Config::from_custom_kubeconfig(kc, &options).await?,
            None => kube::Config::incluster()?,
        },
    };
    if let Some(token) = &flags.token {
        config.auth_info.token = Some(token.clone().into());
    }
    if flags.insecure_skip_tls_verify {
        config.accept_invalid_certs = true;
    }
    if let Some(ns) = &flags.namespace {
        config.default_namespace = ns.clone();
    }
    Ok(config)
}

/// Connect as the flags say.
pub async fn connect(flags: &GlobalFlags) -> Result<Connection, ConnectError> {
    let config = config(flags).await?;
    let namespace = config.default_namespace.clone();
    let server = config.cluster_url.clone();
    let client = kube::Client::try_from(config)?;
    Ok(Connection {
        client,
        namespace,
        server,
    })
}

/// The kubeconfig kubectl would use without flags: the files of the `$KUBECONFIG` list
/// merged (the first to set a value wins; missing files are skipped, as kubectl skips them),
/// else `~/.kube/config` if it exists. `None`: look for an in-cluster service account.
fn found_kubeconfig() -> Result<Option<Kubeconfig>, ConnectError> {
    let paths: Vec<PathBuf> = match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        Some(list) => std::env::split_paths(&list).collect(),
        None => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".kube/config"))
            .into_iter()
            .collect(),
    };
    let mut merged: Option<Kubeconfig> = None;
    for path in paths.iter().filter(|p| p.is_file()) {
        let kc = read(path)?;
        merged = Some(match merged {
            Some(m) => m.merge(kc)?,
            None => kc,
        });
    }
    Ok(merged)
}

fn read(path: &Path) -> Result<Kubeconfig, ConnectError> {
    Kubeconfig::read_from(path).map_err(|source| ConnectError::ReadKubeconfig {
        path: path.display().to_string(),
        source,
    })
}

/// `--server` alone; kubectl accepts `host:port` without a scheme and assumes https.
fn server_config(server: &str) -> Result<kube::Config, ConnectError> {
    let with_scheme = if server.contains("://") {
        server.to_string()
    } else {
        format!("https://{server}")
    };
    let url = with_scheme
        .parse()
        .map_err(|e: http::uri::InvalidUri| ConnectError::BadServer {
            server: server.to_string(),
            reason: e.to_string(),
        })?;
    Ok(kube::Config::new(url))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(server: Option<&str>) -> GlobalFlags {
        GlobalFlags {
            server: server.map(str::to_string),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn server_wins_and_takes_token_and_namespace() {
        let mut f = flags(Some("http://127.0.0.1:6443"));
        f.token = Some("t".into());
        f.namespace = Some("demo".into());
        let c = config(&f).await.unwrap();
        assert_eq!(c.cluster_url.to_string(), "http://127.0.0.1:6443/");
        assert_eq!(c.default_namespace, "demo");
        assert!(c.auth_info.token.is_some());
    }

    #[tokio::test]
    async fn server_without_scheme_is_https() {
        let c = config(&flags(Some("10.0.0.1:6443"))).await.unwrap();
        assert_eq!(c.cluster_url.scheme_str(), Some("https"));
    }

    #[tokio::test]
    async fn a_missing_kubeconfig_file_is_named() {
        let mut f = flags(None);
        f.kubeconfig = Some("/nonexistent/kubeconfig".into());
        let err = config(&f).await.err().unwrap();
        assert!(err.to_string().contains("/nonexistent/kubeconfig"), "{err}");
    }
}
