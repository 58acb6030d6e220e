//! Running the built `minikctl` against a test [`Cluster`], and beside it the real kubectl:
//! a whole-cluster test of a command runs both on the same objects and compares what they
//! print and how they exit, so minikctl is held to kubectl's wording rather than to a copy of
//! it in the test. Read next: `tests/minikctl_workloads.rs`, which uses this.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use super::{Cluster, MINIKCTL};

/// What a command did: its exit code and its output.
#[derive(Debug, PartialEq, Eq)]
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<std::process::Output> for Ran {
    fn from(out: std::process::Output) -> Ran {
        Ran {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// The built `minikctl` aimed at the cluster's kubeconfig; add stdio and run it.
pub fn minikctl_command(c: &Cluster, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(MINIKCTL);
    cmd.arg("--kubeconfig")
        .arg(c.kubeconfig())
        .args(args)
        .env_remove("KUBECONFIG")
        .kill_on_drop(true);
    cmd
}

/// Run `minikctl ARGS`, `stdin` piped in (else an empty one).
pub async fn minikctl_stdin(c: &Cluster, args: &[&str], stdin: Option<&str>) -> Ran {
    let mut cmd = minikctl_command(c, args);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run minikctl");
    let mut input = child.stdin.take().expect("stdin piped");
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).await.expect("write stdin");
    }
    drop(input);
    child.wait_with_output().await.expect("minikctl ran").into()
}

/// Run `minikctl ARGS` with an empty stdin.
pub async fn minikctl(c: &Cluster, args: &[&str]) -> Ran {
    minikctl_stdin(c, args, None).await
}

/// `minikctl ARGS` that must succeed; its stdout.
pub async fn minikctl_ok(c: &Cluster, args: &[&str]) -> String {
    let ran = minikctl(c, args).await;
    assert_eq!(ran.code, Some(0), "minikctl {args:?}: {ran:?}");
    ran.stdout
}

/// `minikctl ARGS` and `kubectl ARGS`, `stdin` given to both: the same exit code, stdout and
/// stderr. minikctl's result.
pub async fn same_as_kubectl(c: &Cluster, args: &[&str], stdin: Option<&str>) -> Ran {
    let ours = minikctl_stdin(c, args, stdin).await;
    let theirs: Ran = c.kubectl_stdin(args, stdin).await.into();
    assert_eq!(
        ours, theirs,
        "minikctl (left) and kubectl (right) differ on {args:?}"
    );
    ours
}
