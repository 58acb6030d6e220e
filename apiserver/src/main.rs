//! `minik8s-apiserver`: parse flags, connect to etcd, serve the API.

use std::process::ExitCode;

use anyhow::Context;
use apiserver::auth::{
    Authentication, Authenticator, BootstrapTokenAuth, ClientCertAuth, TokenAuth,
};
use apiserver::config::Flags;
use apiserver::server::app;
use apiserver::state::App;
use apiserver::storage::Storage;
use clap::Parser;

fn main() -> ExitCode {
    let flags = Flags::parse();
    client::logging::init();
    if let Err(msg) = flags.check_exposure() {
        eprintln!("minik8s-apiserver: {msg}");
        return ExitCode::from(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(flags)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("minik8s-apiserver: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The authenticators the flags ask for, client certificates first, then the token file, then
/// bootstrap tokens (as kube-apiserver).
fn authentication(flags: &Flags) -> anyhow::Result<Authentication> {
    let mut authenticators = Vec::new();
    if let Some(path) = &flags.client_ca_file {
        let certs = ClientCertAuth::load(path).context("loading --client-ca-file")?;
        authenticators.push(Authenticator::ClientCert(certs));
    }
    if let Some(path) = &flags.token_auth_file {
        let tokens = TokenAuth::load(path).context("loading --token-auth-file")?;
        authenticators.push(Authenticator::Token(tokens));
    }
    if flags.enable_bootstrap_token_auth {
        authenticators.push(Authenticator::BootstrapToken(BootstrapTokenAuth));
    }
    Ok(Authentication::new(authenticators))
}

async fn run(flags: Flags) -> anyhow::Result<()> {
    let authentication = authentication(&flags)?;
    let tls = match (&flags.tls_cert_file, &flags.tls_private_key_file) {
        (Some(cert), Some(key)) => Some(
            apiserver::tls::server_config(cert, key, authentication.client_certs())
                .context("loading TLS certificate and key")?,
        ),
        _ => None,
    };
    let storage = Storage::connect(&flags.etcd_servers, &flags.etcd_prefix)
        .await
        .with_context(|| format!("connecting to etcd at {}", flags.etcd_servers.join(",")))?;
    let mut config = flags.server_config(authentication);
    if let Some(f) = &flags.kubelet_token_file {
        let token = std::fs::read_to_string(f)
            .with_context(|| format!("reading --kubelet-token-file {}", f.display()))?;
        config.kubelet_token = Some(token.trim().to_string());
    }
    if let Some(f) = &flags.kubelet_certificate_authority {
        let pem = std::fs::read(f)
            .with_context(|| format!("reading --kubelet-certificate-authority {}", f.display()))?;
        config.kubelet_ca_pem = Some(pem);
    }
    if let (Some(cert), Some(key)) = (&flags.kubelet_client_certificate, &flags.kubelet_client_key)
    {
        let read = |f: &std::path::PathBuf, flag: &str| {
            std::fs::read(f).with_context(|| format!("reading {flag} {}", f.display()))
        };
        config.kubelet_client_cert = Some(apiserver::kubelet_client::ClientCert {
            cert_pem: read(cert, "--kubelet-client-certificate")?,
            key_pem: read(key, "--kubelet-client-key")?,
        });
    }
    config
        .kubelet_tls()
        .context("kubelet client TLS settings")?;
    apiserver::admission::defaults::set_default_toleration_seconds(
        flags.default_not_ready_toleration_seconds,
        flags.default_unreachable_toleration_seconds,
    );
    let state = App::new(storage, config);
    state.bootstrap().await;
    let router = app(state);
    let handle = axum_server::Handle::new();
    let shutdown = handle.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        shutdown.graceful_shutdown(Some(std::time::Duration::from_secs(1)));
    });
    tracing::info!(
        listen = %flags.listen,
        tls = tls.is_some(),
        client_ca = flags.client_ca_file.is_some(),
        bootstrap_tokens = flags.enable_bootstrap_token_auth,
        "serving"
    );
    // Watch events and small responses go out at once, not after the peer's delayed ACK
    // (Nagle), as Go's net package does for kube-apiserver.
    use axum_server::accept::NoDelayAcceptor;
    match tls {
        Some(tls) => {
            // axum-server's acceptor records each connection's client certificate (`TlsInfo`)
            // in its requests, where `auth/x509.rs` reads it.
            let acceptor =
                axum_server::tls_rustls::RustlsAcceptor::new(tls).acceptor(NoDelayAcceptor::new());
            axum_server::bind(flags.listen)
                .acceptor(acceptor)
                .handle(handle)
                .serve(router.into_make_service())
                .await
                .with_context(|| format!("serving on {}", flags.listen))?;
        }
        None => {
            axum_server::bind(flags.listen)
                .acceptor(NoDelayAcceptor::new())
                .handle(handle)
                .serve(router.into_make_service())
                .await
                .with_context(|| format!("serving on {}", flags.listen))?;
        }
    }
    Ok(())
}
