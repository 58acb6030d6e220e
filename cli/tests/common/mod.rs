//! What the CLI's integration tests share: the `minikctl` binary run as a user runs it,
//! against a real cluster (`testkit::Cluster`: a private etcd and an in-process apiserver),
//! next to the real kubectl run the same way.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

pub use testkit::Cluster;

/// What a run of `minikctl` printed, and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Panics (with both streams) unless the run exited 0; returns stdout.
    pub fn ok(self) -> String {
        assert_eq!(
            self.code, 0,
            "minikctl failed:\n{}\n{}",
            self.stderr, self.stdout
        );
        self.stdout
    }

    /// Panics unless the run exited 1; returns stderr.
    pub fn failed(self) -> String {
        assert_eq!(
            self.code, 1,
            "minikctl should have failed:\n{}\n{}",
            self.stderr, self.stdout
        );
        self.stderr
    }
}

/// The binary under test.
pub fn minikctl_command() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_minikctl"));
    cmd.env_remove("KUBECONFIG").kill_on_drop(true);
    cmd
}

/// Run `minikctl ARGS` (no cluster flags added), with `stdin` piped in.
pub async fn raw(args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = minikctl_command();
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run minikctl");
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).await.unwrap();
    }
    drop(input);
    Run::from(child.wait_with_output().await.unwrap())
}

/// Run `minikctl --kubeconfig <the cluster's> ARGS`.
pub async fn minikctl(cluster: &Cluster, args: &[&str]) -> Run {
    minikctl_stdin(cluster, args, None).await
}

/// As [`minikctl`], with `stdin`.
pub async fn minikctl_stdin(cluster: &Cluster, args: &[&str], stdin: Option<&str>) -> Run {
    let kubeconfig = cluster.kubeconfig();
    let mut all = vec!["--kubeconfig", kubeconfig.to_str().unwrap()];
    all.extend_from_slice(args);
    raw(&all, stdin).await
}

/// The real kubectl's run, in the form `minikctl`'s runs take.
pub async fn kubectl(cluster: &Cluster, args: &[&str]) -> Run {
    Run::from(cluster.kubectl(args).await)
}

/// Both tools' runs of `args`, which must end and print the same; minikctl's run.
pub async fn same_as_kubectl(cluster: &Cluster, args: &[&str]) -> Run {
    let ours = minikctl(cluster, args).await;
    let theirs = kubectl(cluster, args).await;
    assert_eq!(
        (ours.code, &ours.stdout, &ours.stderr),
        (theirs.code, &theirs.stdout, &theirs.stderr),
        "{args:?}"
    );
    ours
}

/// `minikctl --kubeconfig <the cluster's> ARGS` left running (`get -w`, `rollout status`):
/// the process, and its stdout line by line (read them with [`next_line`]).
pub fn follow(cluster: &Cluster, args: &[&str]) -> (Child, Lines<BufReader<ChildStdout>>) {
    let kubeconfig = cluster.kubeconfig();
    let mut child = minikctl_command()
        .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// The next line a followed command prints; it must come within 20 s.
pub async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("a line within 20s")
        .unwrap()
        .expect("a line, not the end")
}

/// Write `text` to `dir/name`; returns the path as a string.
pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// The object as JSON, read with the real kubectl.
pub async fn kubectl_json(cluster: &Cluster, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["get", "-o", "json"];
    all.extend_from_slice(args);
    serde_json::from_str(&cluster.kubectl_ok(&all).await).unwrap()
}
