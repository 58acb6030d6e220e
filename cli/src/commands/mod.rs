//! The subcommands, one file each, and the context they share.
//!
//! `run` connects (flags → client), hands the command a [`Ctx`] and prints its error the way
//! kubectl would (`error.rs`). A command that reports failures one object at a time (apply,
//! delete) prints them as it goes and returns [`Reported`], so the process still exits 1.
//! Read next: `get.rs`, the command every lab starts with.

pub mod api_resources;
pub mod apply;
pub mod cluster_info;
pub mod create;
pub mod delete;
pub mod get;
pub mod inspect;
pub mod version;

use std::process::ExitCode;

use tokio::sync::OnceCell;

use crate::cli::{Cli, Command};
use crate::connect;
use crate::discovery::{Discovery, DiscoveryError};
use crate::error;

/// What every command gets: the client, the namespace, and discovery (fetched once, lazily).
pub struct Ctx {
    pub client: kube::Client,
    /// `-n`, else the kubeconfig context's namespace, else `default`.
    pub namespace: String,
    /// `-A`.
    pub all_namespaces: bool,
    /// The apiserver's URL.
    pub server: http::Uri,
    discovery: OnceCell<Discovery>,
}

impl Ctx {
    /// The server's resources; asked for at most once per command.
    pub async fn discovery(&self) -> Result<&Discovery, DiscoveryError> {
        self.discovery
            .get_or_try_init(|| Discovery::load(&self.client))
            .await
    }

    /// The namespace to list in: `None` with `-A` (every namespace).
    pub fn list_namespace(&self) -> Option<&str> {
        (!self.all_namespaces).then_some(self.namespace.as_str())
    }
}

/// Errors already printed (one per failed object); the process exits 1 without more output.
#[derive(Debug, thiserror::Error)]
#[error("errors were reported")]
pub struct Reported;

/// Run the command line; the exit code is 0 on success, 1 after printing an error.
pub async fn run(cli: Cli) -> ExitCode {
    let conn = match connect::connect(&cli.global).await {
        Ok(conn) => conn,
        Err(err) => return fail(&err.into(), None),
    };
    let ctx = Ctx {
        client: conn.client,
        namespace: conn.namespace,
        all_namespaces: cli.global.all_namespaces,
        server: conn.server,
        discovery: OnceCell::new(),
    };
    let result = match cli.command {
        Command::Get(args) => get::run(&ctx, args).await,
        Command::Inspect(args) => inspect::run(&ctx, args).await,
        Command::Apply(args) => apply::run(&ctx, args).await,
        Command::Create(args) => create::run(&ctx, args).await,
        Command::Delete(args) => delete::run(&ctx, args).await,
        Command::ApiResources(args) => api_resources::run(&ctx, args).await,
        Command::ClusterInfo => cluster_info::run(&ctx).await,
        Command::Version(args) => version::run(&ctx, args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err, Some(&ctx.server)),
    }
}

fn fail(err: &anyhow::Error, server: Option<&http::Uri>) -> ExitCode {
    if err.is::<Reported>() {
        return ExitCode::FAILURE;
    }
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        if io.kind() == std::io::ErrorKind::BrokenPipe {
            return ExitCode::SUCCESS;
        }
    }
    eprintln!("{}", error::render(err, server));
    ExitCode::FAILURE
}
