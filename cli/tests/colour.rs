//! Colour only on a terminal: under a pseudo-terminal (`script` from util-linux gives the
//! command one) an error's prefix is red and describe's keys are bold; piped, or with
//! `NO_COLOR` set, the bytes are the plain text. The error needs no cluster: `completion
//! tcsh` fails the same way everywhere.

mod common;

use std::process::Stdio;

use common::{minikctl, Cluster};

/// Run `minikctl ARGS` under a pseudo-terminal; what the terminal received.
async fn on_a_terminal(args: &str, no_color: bool) -> String {
    let bin = env!("CARGO_BIN_EXE_minikctl");
    let mut cmd = tokio::process::Command::new("script");
    cmd.args(["-qec", &format!("{bin} {args}"), "/dev/null"])
        .env("TERM", "xterm")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("CLICOLOR")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if no_color {
        cmd.env("NO_COLOR", "1");
    }
    let out = cmd.output().await.expect("run script(1)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn errors_are_red_on_a_terminal_only() {
    let tty = on_a_terminal("completion tcsh", false).await;
    assert!(
        tty.contains("\x1b[") && tty.contains("error:") && tty.contains("Unsupported shell type"),
        "{tty:?}"
    );
    let piped = common::raw(&["completion", "tcsh"], None).await.failed();
    assert_eq!(piped, "error: Unsupported shell type \"tcsh\".\n");
    let no_color = on_a_terminal("completion tcsh", true).await;
    assert!(!no_color.contains('\x1b'), "{no_color:?}");
    assert_eq!(
        no_color.trim_end(),
        "error: Unsupported shell type \"tcsh\"."
    );
}

#[tokio::test]
async fn describe_keys_are_bold_on_a_terminal_only() {
    let cluster = Cluster::start().await;
    let kubeconfig = cluster.kubeconfig();
    let args = format!("--kubeconfig {} describe ns default", kubeconfig.display());
    let tty = on_a_terminal(&args, false).await;
    assert!(tty.contains("\x1b[1mName:\x1b[0m"), "{tty:?}");
    assert!(tty.contains("\x1b[1mStatus:\x1b[0m"), "{tty:?}");
    let piped = minikctl(&cluster, &["describe", "ns", "default"])
        .await
        .ok();
    assert!(!piped.contains('\x1b'), "{piped:?}");
    assert_eq!(
        piped,
        cluster.kubectl_ok(&["describe", "ns", "default"]).await
    );
    let no_color = on_a_terminal(&args, true).await;
    assert!(!no_color.contains('\x1b'), "{no_color:?}");
}
