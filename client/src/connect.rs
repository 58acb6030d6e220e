//! Client bootstrap: how a component finds and authenticates to the apiserver.
//!
//! `--server URL` (+ `--token`) is the short form for labs and tests and, as in kubectl, it wins:
//! no kubeconfig is read then, so a `$KUBECONFIG` naming a missing file or another cluster does
//! not matter. `--kubeconfig FILE` reads that kubeconfig. Without either, the usual search
//! applies (`$KUBECONFIG`, `~/.kube/config`, in-cluster). Read next: `leader.rs`.

use std::path::Path;

use anyhow::Context;

/// Flags shared by every component's command line (`#[command(flatten)]`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClusterFlags {
    /// kubeconfig file to read the apiserver address and credentials from (without it and
    /// --server: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, conflicts_with = "server")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// apiserver URL (e.g. http://127.0.0.1:6443); no kubeconfig is read then.
    #[arg(long)]
    pub server: Option<String>,
    /// Bearer token for --server.
    #[arg(long, requires = "server")]
    pub token: Option<String>,
    /// Accept any TLS certificate from --server (labs only).
    #[arg(long = "insecure-skip-tls-verify")]
    pub insecure_skip_tls_verify: bool,
}

/// Where the client's configuration comes from, in order of precedence.
#[derive(Debug, PartialEq, Eq)]
pub enum ConfigSource<'a> {
    /// `--server` (+ `--token`, `--insecure-skip-tls-verify`): the flags alone.
    Server(&'a str),
    /// `--kubeconfig FILE`.
    Kubeconfig(&'a Path),
    /// Neither flag: `$KUBECONFIG`, `~/.kube/config`, then the in-cluster service account.
    Infer,
}

impl ClusterFlags {
    /// Flags pointing at `server` (tests).
    pub fn for_server(server: &str) -> ClusterFlags {
        ClusterFlags {
            server: Some(server.to_string()),
            ..Default::default()
        }
    }

    /// Which configuration the flags select.
    pub fn source(&self) -> ConfigSource<'_> {
        match (&self.server, &self.kubeconfig) {
            (Some(server), _) => ConfigSource::Server(server),
            (None, Some(path)) => ConfigSource::Kubeconfig(path),
            (None, None) => ConfigSource::Infer,
        }
    }

    /// Build the client the flags describe.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let config = match self.source() {
            ConfigSource::Server(server) => self.server_config(server)?,
            ConfigSource::Kubeconfig(path) => kubeconfig_config(path).await?,
            ConfigSource::Infer => kube::Config::infer()
                .await
                .context("no --server or --kubeconfig, and no kubeconfig found")?,
        };
        kube::Client::try_from(config).context("building the Kubernetes client")
    }

    fn server_config(&self, server: &str) -> anyhow::Result<kube::Config> {
        let url = server
            .parse()
            .with_context(|| format!("--server {server:?} is not a URL"))?;
        let mut config = kube::Config::new(url);
        config.accept_invalid_certs = self.insecure_skip_tls_verify;
        if let Some(t) = &self.token {
            config.auth_info.token = Some(t.clone().into());
        }
        Ok(config)
    }
}

async fn kubeconfig_config(path: &Path) -> anyhow::Result<kube::Config> {
    let kc = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .with_context(|| format!("using kubeconfig {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        cluster: ClusterFlags,
    }

    fn parse(args: &[&str]) -> Result<ClusterFlags, clap::Error> {
        Cli::try_parse_from(std::iter::once("component").chain(args.iter().copied()))
            .map(|c| c.cluster)
    }

    #[test]
    fn server_selects_the_flags_alone() {
        let flags = parse(&["--server", "http://127.0.0.1:6443", "--token", "t"]).unwrap();
        assert_eq!(
            flags.source(),
            ConfigSource::Server("http://127.0.0.1:6443")
        );
    }

    #[test]
    fn kubeconfig_flag_selects_that_file_and_nothing_infers() {
        let flags = parse(&["--kubeconfig", "/etc/kube.conf"]).unwrap();
        assert_eq!(
            flags.source(),
            ConfigSource::Kubeconfig(Path::new("/etc/kube.conf"))
        );
        assert_eq!(parse(&[]).unwrap().source(), ConfigSource::Infer);
    }

    #[test]
    fn explicit_kubeconfig_and_server_conflict_and_token_needs_server() {
        let both = parse(&["--server", "http://a", "--kubeconfig", "/k"]).unwrap_err();
        assert_eq!(both.kind(), clap::error::ErrorKind::ArgumentConflict);
        let token = parse(&["--token", "t"]).unwrap_err();
        assert_eq!(
            token.kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
    }

    #[tokio::test]
    async fn server_builds_a_client_without_reading_any_kubeconfig() {
        let mut flags = parse(&["--server", "https://127.0.0.1:1", "--token", "t"]).unwrap();
        flags.insecure_skip_tls_verify = true;
        flags.client().await.unwrap();
        let Err(err) = ClusterFlags::for_server("not a url").client().await else {
            panic!("a --server that is not a URL must be refused");
        };
        assert!(format!("{err:#}").contains("is not a URL"), "{err:#}");
    }
}
