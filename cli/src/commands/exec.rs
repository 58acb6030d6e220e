//! `minikctl exec [-i] [-t] POD [-c C] -- CMD...`: run a command in a running container.
//!
//! `POST pods/NAME/exec?command=...` is upgraded to a WebSocket that the apiserver relays to
//! the pod's kubelet. The bytes travel in *channels*, one byte of each message naming it:
//! 0 stdin, 1 stdout, 2 stderr, 3 the final `Status` (success, or `NonZeroExitCode` with the
//! code as a cause), 4 terminal resizes; `v5.channel.k8s.io` adds 255 to close a channel, so
//! stdin can end without ending the session (kube asks for v5 and falls back to v4). With
//! `-t` the remote process gets a terminal; the local one is switched to raw mode, so keys
//! (Ctrl-C included) go to the container, not to this process, and its size follows ours.
//! The command's exit code becomes minikctl's, as with kubectl.
//! Read next: `logs.rs`.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use anyhow::Context;
use futures::SinkExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, AttachedProcess, TerminalSize};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::Ctx;

/// The arguments of `minikctl exec`.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// Pass stdin to the container.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Stdin is a TTY (with `-i`, when stdin is a terminal).
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The container; the pod's first when not given.
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Print nothing but the command's output.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// The pod (`web` or `pod/web`).
    pub pod: String,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Runs `minikctl exec`; the exit code is the command's.
pub async fn run(ctx: &Ctx, args: ExecArgs) -> anyhow::Result<ExitCode> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let name = args
        .pod
        .strip_prefix("pod/")
        .unwrap_or(&args.pod)
        .to_string();
    let pod = pods.get(&name).await?;
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if let Some(phase @ ("Succeeded" | "Failed")) = phase {
        anyhow::bail!("cannot exec into a container in a completed pod; current phase is {phase}");
    }
    let container = container(&pod, args.container.as_deref(), args.quiet)?;
    let tty = use_tty(&args);
    let ap = AttachParams::default()
        .container(container)
        .stdin(args.stdin)
        .stdout(true)
        .stderr(!tty)
        .tty(tty);
    let raw = tty.then(RawTerminal::enter).transpose()?;
    let attached = pods.exec(&name, args.command.clone(), &ap).await;
    let code = match attached {
        Ok(attached) => relay(attached, args.stdin, tty).await,
        Err(e) => Err(e.into()),
    };
    drop(raw);
    code
}

/// The container to run in: the one named (checked as the apiserver would), else the first,
/// saying so when there was a choice.
fn container(pod: &Pod, asked: Option<&str>, quiet: bool) -> anyhow::Result<String> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let spec = pod.spec.as_ref().context("the pod has no spec")?;
    let init = spec.init_containers.as_deref().unwrap_or_default();
    if let Some(asked) = asked {
        if spec.containers.iter().chain(init).any(|c| c.name == asked) {
            return Ok(asked.to_string());
        }
        let status = kube::core::Status::failure(
            &format!("container {asked} is not valid for pod {name}"),
            "BadRequest",
        )
        .with_code(400);
        return Err(kube::Error::Api(Box::new(status)).into());
    }
    let first = spec
        .containers
        .first()
        .context("the pod has no containers")?;
    if !quiet && (spec.containers.len() > 1 || !init.is_empty()) {
        let mut all: Vec<String> = spec.containers.iter().map(|c| c.name.clone()).collect();
        all.extend(init.iter().map(|c| format!("{} (init)", c.name)));
        eprintln!(
            "Defaulted container {:?} out of: {}",
            first.name,
            all.join(", ")
        );
    }
    Ok(first.name.clone())
}

/// A terminal for the remote process only with `-i -t` and a terminal on stdin (kubectl's
/// `SetupTTY`).
fn use_tty(args: &ExecArgs) -> bool {
    if !(args.tty && args.stdin) {
        return false;
    }
    let terminal = std::io::stdin().is_terminal();
    if !terminal && !args.quiet {
        eprintln!("Unable to use a TTY - input is not a terminal or the right kind of file");
    }
    terminal
}

/// Copy the streams both ways until the remote command ends; its exit code.
async fn relay(mut p: AttachedProcess, stdin: bool, tty: bool) -> anyhow::Result<ExitCode> {
    let status = p.take_status().context("no status channel")?;
    let out = p
        .stdout()
        .map(|r| tokio::spawn(copy(r, tokio::io::stdout())));
    let err = p
        .stderr()
        .map(|r| tokio::spawn(copy(r, tokio::io::stderr())));
    if let Some(w) = p.stdin().filter(|_| stdin) {
        tokio::spawn(pump_stdin(w));
    }
    if let Some(sizes) = p.terminal_size().filter(|_| tty) {
        tokio::spawn(follow_size(sizes));
    }
    for task in [out, err].into_iter().flatten() {
        let _ = task.await;
    }
    exit_code(status.await)
}

async fn copy(mut from: impl AsyncRead + Unpin, mut to: impl AsyncWrite + Unpin) {
    let _ = tokio::io::copy(&mut from, &mut to).await;
    let _ = to.flush().await;
}

/// Our stdin to the container's, read on a thread of its own: a read blocked on a terminal
/// must not keep the runtime from ending when the command does. End of input closes the
/// container's stdin.
async fn pump_stdin(mut to: impl AsyncWrite + Unpin) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        let mut input = std::io::stdin();
        while let Ok(n) = input.read(&mut buf) {
            if n == 0 || tx.blocking_send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    while let Some(chunk) = rx.recv().await {
        if to.write_all(&chunk).await.is_err() {
            return;
        }
    }
    let _ = to.shutdown().await;
}

/// Send our terminal's size now and each time it changes (SIGWINCH).
async fn follow_size(mut sizes: futures::channel::mpsc::Sender<TerminalSize>) {
    let Ok(mut winch) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
    else {
        return;
    };
    loop {
        if let Ok(ws) = rustix::termios::tcgetwinsize(std::io::stdin()) {
            let size = TerminalSize {
                width: ws.ws_col,
                height: ws.ws_row,
            };
            if sizes.send(size).await.is_err() {
                return;
            }
        }
        if winch.recv().await.is_none() {
            return;
        }
    }
}

/// The `Status` of channel 3 as an exit code: 0 on success, the code of a
/// `NonZeroExitCode` (announced on stderr as kubectl does), else an error.
fn exit_code(
    status: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>,
) -> anyhow::Result<ExitCode> {
    let Some(status) = status else {
        return Ok(ExitCode::SUCCESS);
    };
    if status.status.as_deref() == Some("Success") {
        return Ok(ExitCode::SUCCESS);
    }
    let code = status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|c| c.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
        .and_then(|c| c.message.as_deref()?.parse::<i32>().ok());
    match code {
        Some(code) if status.reason.as_deref() == Some("NonZeroExitCode") => {
            eprintln!("command terminated with exit code {code}");
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX)))
        }
        _ => anyhow::bail!("{}", status.message.unwrap_or_default()),
    }
}

/// The local terminal in raw mode (no echo, no line editing, no signals from keys) until
/// dropped, when its settings are put back.
struct RawTerminal {
    saved: rustix::termios::Termios,
}

impl RawTerminal {
    fn enter() -> anyhow::Result<RawTerminal> {
        let stdin = std::io::stdin();
        let saved = rustix::termios::tcgetattr(&stdin).context("reading the terminal's mode")?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw)
            .context("setting the terminal to raw mode")?;
        Ok(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let now = rustix::termios::OptionalActions::Now;
        let _ = rustix::termios::tcsetattr(std::io::stdin(), now, &self.saved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(
        v: serde_json::Value,
    ) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status> {
        Some(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn exit_codes_come_from_the_status() {
        assert_eq!(exit_code(None).unwrap(), ExitCode::SUCCESS);
        assert_eq!(
            exit_code(status(json!({"status": "Success"}))).unwrap(),
            ExitCode::SUCCESS
        );
        let failed = status(json!({
            "status": "Failure", "reason": "NonZeroExitCode", "message": "exit 3",
            "details": {"causes": [{"reason": "ExitCode", "message": "3"}]},
        }));
        assert_eq!(exit_code(failed).unwrap(), ExitCode::from(3));
        let broken = status(json!({"status": "Failure", "message": "no such file"}));
        assert_eq!(exit_code(broken).unwrap_err().to_string(), "no such file");
    }

    #[test]
    fn an_unknown_container_is_a_bad_request() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web"}, "spec": {"containers": [{"name": "a"}]},
        }))
        .unwrap();
        assert_eq!(container(&pod, None, false).unwrap(), "a");
        let err = container(&pod, Some("x"), false).unwrap_err();
        assert_eq!(
            crate::error::render(&err, None),
            "Error from server (BadRequest): container x is not valid for pod web"
        );
    }
}
