//! The subcommands, one file each, and the context they share.
//!
//! `run` connects (flags → client), hands the command a [`Ctx`] and prints its error the way
//! kubectl would (`error.rs`). A command that reports failures one object at a time (apply,
//! delete, scale, rollout) keeps them in [`Failures`]: printed as they happen, and
//! [`Reported`] at the end, so the process still exits 1.
//! Read next: `get.rs`, the command every lab starts with.

pub mod api_resources;
pub mod apply;
pub mod cluster;
pub mod cluster_info;
pub mod completion;
pub mod create;
pub mod delete;
pub mod describe;
pub mod events;
pub mod exec;
pub mod get;
pub mod inspect;
pub mod logs;
pub mod node_maintenance;
pub mod rollout;
pub mod scale;
pub mod version;

use std::process::ExitCode;

use tokio::sync::OnceCell;

use serde_json::Value;

use crate::cli::{Cli, Command, GlobalFlags};
use crate::connect;
use crate::discovery::{Discovery, DiscoveryError, Resource};
use crate::error;
use crate::manifest::Manifest;
use crate::printer::{emit, style};

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

/// A manifest's object placed on the server: its resource and namespace.
pub struct Placed<'a> {
    pub manifest: Manifest,
    pub resource: &'a Resource,
    /// `None` for cluster-scoped resources.
    pub namespace: Option<String>,
}

impl Placed<'_> {
    /// The collection's URL (where a create POSTs).
    pub fn collection(&self) -> String {
        self.resource.url(self.namespace.as_deref())
    }

    pub fn name(&self) -> &str {
        self.manifest.name()
    }

    /// `pod/web`, as `created`/`configured` lines name it.
    pub fn display(&self) -> String {
        format!("{}/{}", self.resource.qualified_kind(), self.name())
    }
}

/// Find each manifest's resource in discovery and its namespace (the manifest's, else the
/// context's; written into the object, as kubectl does). A kind the server does not serve is
/// reported on stderr, and the result's flag says something was.
pub async fn place(ctx: &Ctx, manifests: Vec<Manifest>) -> anyhow::Result<(Vec<Placed<'_>>, bool)> {
    let discovery = ctx.discovery().await?;
    let mut placed = Vec::new();
    let mut failed = false;
    for mut manifest in manifests {
        let resource = match discovery.for_kind(manifest.api_version(), manifest.kind()) {
            Ok(r) => r,
            Err(e) => {
                style::eprint_error(&format!(
                    "error: resource mapping not found for name: {:?} namespace: {:?} from {:?}: {e}\nensure CRDs are installed first",
                    manifest.name(),
                    manifest.namespace().unwrap_or_default(),
                    manifest.source,
                ));
                failed = true;
                continue;
            }
        };
        let namespace = resource.namespaced.then(|| {
            let ns = manifest.namespace().unwrap_or(&ctx.namespace).to_string();
            manifest.object["metadata"]["namespace"] = Value::String(ns.clone());
            ns
        });
        placed.push(Placed {
            manifest,
            resource,
            namespace,
        });
    }
    Ok((placed, failed))
}

/// Send a request built with `kube::core::Request`; the answer as JSON.
pub async fn send(ctx: &Ctx, req: http::Request<Vec<u8>>) -> Result<Value, kube::Error> {
    ctx.client.request::<Value>(req).await
}

/// Print an error about one object the way `run` would, and go on with the others.
fn report(ctx: &Ctx, err: anyhow::Error) {
    style::eprint_error(&error::render(&err, Some(&ctx.server)));
}

/// Errors already printed (one per failed object); the process exits 1 without more output.
#[derive(Debug, thiserror::Error)]
#[error("errors were reported")]
pub struct Reported;

/// How a command that acts on several objects ends, as kubectl's do: an object's failure is
/// reported on stderr as it happens and the command goes on with the next one; at the end,
/// if any failed, it returns [`Reported`] and the process exits 1.
#[derive(Debug, Default)]
pub struct Failures {
    any: bool,
}

impl Failures {
    /// Starts with `reported` failures already printed (say, a kind the server does not serve).
    pub fn new(reported: bool) -> Self {
        Failures { any: reported }
    }

    /// One object's result: its value, or `None` once its error is reported.
    pub fn check<T>(&mut self, ctx: &Ctx, result: anyhow::Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(e) => {
                report(ctx, e);
                self.any = true;
                None
            }
        }
    }

    /// One object's result: its line printed on stdout, or its error reported.
    pub fn print(&mut self, ctx: &Ctx, line: anyhow::Result<String>) -> std::io::Result<()> {
        match self.check(ctx, line) {
            Some(line) => emit(&line),
            None => Ok(()),
        }
    }

    /// `Ok`, or [`Reported`] when any object failed.
    pub fn finish(self) -> anyhow::Result<()> {
        if self.any {
            return Err(Reported.into());
        }
        Ok(())
    }
}

/// Run the command line; the exit code is 0 on success, 1 after printing an error.
pub async fn run(cli: Cli) -> ExitCode {
    if let Command::Completion(args) = cli.command {
        let command = <Cli as clap::CommandFactory>::command();
        return match completion::run(args, command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => fail(&err, None),
        };
    }
    // the local lab's commands make a cluster rather than connect to one
    if let Command::Cluster(args) = cli.command {
        if args.command.is_local() {
            return match cluster::run_local(args.command, cli.global.kubeconfig.as_deref()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => fail(&err, None),
            };
        }
        return run_connected(cli.global, Command::Cluster(args)).await;
    }
    run_connected(cli.global, cli.command).await
}

async fn run_connected(global: GlobalFlags, command: Command) -> ExitCode {
    let cli = Cli { global, command };
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
        Command::Cluster(args) => match connect::config(&cli.global).await {
            Ok(config) => cluster::run(&ctx, args, &config).await,
            Err(e) => Err(e.into()),
        },
        Command::Version(args) => version::run(&ctx, args).await,
        Command::Describe(args) => describe::run(&ctx, args).await,
        Command::Logs(args) => logs::run(&ctx, args).await,
        Command::Exec(args) => match exec::run(&ctx, args).await {
            Ok(code) => return code,
            Err(err) => Err(err),
        },
        Command::Events(args) => events::run(&ctx, args).await,
        Command::Scale(args) => scale::run(&ctx, args).await,
        Command::Rollout(args) => rollout::run(&ctx, args).await,
        Command::Cordon(args) => node_maintenance::cordon(&ctx, args).await,
        Command::Uncordon(args) => node_maintenance::uncordon(&ctx, args).await,
        Command::Drain(args) => node_maintenance::drain(&ctx, args).await,
        Command::Completion(_) => unreachable!("handled before connecting"),
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
    style::eprint_error(&error::render(err, server));
    ExitCode::FAILURE
}
