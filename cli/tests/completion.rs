//! `minikctl completion bash|zsh|fish`: scripts a shell accepts, naming the subcommands, with
//! no cluster needed; an unknown shell is one line and exit status 1, as in kubectl.

mod common;

use common::raw;

#[tokio::test]
async fn bash_script_parses_and_knows_the_subcommands() {
    let script = raw(&["completion", "bash"], None).await.ok();
    for sub in ["get", "describe", "apply", "logs", "completion"] {
        assert!(script.contains(sub), "no {sub} in:\n{script}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = common::write(dir.path(), "minikctl.bash", &script);
    let check = tokio::process::Command::new("bash")
        .args(["-n", &path])
        .output()
        .await
        .unwrap();
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[tokio::test]
async fn zsh_and_fish_scripts_start_as_their_formats_do() {
    let zsh = raw(&["completion", "zsh"], None).await.ok();
    assert!(zsh.starts_with("#compdef minikctl\n"), "{zsh}");
    let fish = raw(&["completion", "fish"], None).await.ok();
    assert!(
        fish.lines().any(|l| l.starts_with("complete -c minikctl ")),
        "{fish}"
    );
    assert!(fish.contains("describe"), "{fish}");
}

#[tokio::test]
async fn an_unknown_shell_is_one_line() {
    let err = raw(&["completion", "tcsh"], None).await.failed();
    assert_eq!(err, "error: Unsupported shell type \"tcsh\".\n");
}
