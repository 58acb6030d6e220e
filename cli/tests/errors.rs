//! The errors a user meets first, each one line on stderr and exit status 1, as kubectl
//! prints them: a missing file, bad YAML (file and line), an unknown kind, an object that is
//! not there, a server that is not there.

mod common;

use common::{minikctl, raw, write, Cluster};

#[tokio::test]
async fn a_missing_file_is_named() {
    let cluster = Cluster::start().await;
    for verb in ["apply", "create", "delete"] {
        let err = minikctl(&cluster, &[verb, "-f", "/nonexistent/pod.yaml"])
            .await
            .failed();
        assert_eq!(
            err, "error: the path \"/nonexistent/pod.yaml\" does not exist\n",
            "{verb}"
        );
    }
}

#[tokio::test]
async fn bad_yaml_names_the_file_and_the_line() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "bad.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n  labels: {a: b\nspec: {}\n",
    );
    let err = minikctl(&cluster, &["apply", "-f", &file]).await.failed();
    let prefix = format!("error: error parsing {file}: error converting YAML to JSON: yaml: line ");
    assert!(err.starts_with(&prefix), "{err}");
    let line: usize = err[prefix.len()..]
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((5..=6).contains(&line), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let incomplete = write(dir.path(), "incomplete.yaml", "metadata: {name: x}\n");
    let err = minikctl(&cluster, &["create", "-f", &incomplete])
        .await
        .failed();
    assert_eq!(
        err,
        format!("error: error validating \"{incomplete}\": error validating data: [apiVersion not set, kind not set]\n")
    );
}

#[tokio::test]
async fn an_unknown_kind_is_named_and_the_rest_applied() {
    let cluster = Cluster::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "mixed.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n---\n\
         apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: fine}\n",
    );
    let run = minikctl(&cluster, &["apply", "-f", &file]).await;
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout, "lease.coordination.k8s.io/fine created\n");
    assert_eq!(
        run.stderr,
        format!(
            "error: resource mapping not found for name: \"w\" namespace: \"\" from \"{file}\": \
             no matches for kind \"Widget\" in version \"example.com/v1\"\nensure CRDs are installed first\n"
        )
    );
    minikctl(&cluster, &["delete", "lease", "fine"]).await.ok();
}

#[tokio::test]
async fn not_found_is_the_servers_status() {
    let cluster = Cluster::start().await;
    let err = minikctl(&cluster, &["get", "pod", "x"]).await.failed();
    assert_eq!(err, "Error from server (NotFound): pods \"x\" not found\n");
    let err = minikctl(
        &cluster,
        &["get", "deploy", "x", "-n", "nowhere", "-o", "yaml"],
    )
    .await
    .failed();
    assert_eq!(
        err,
        "Error from server (NotFound): deployments.apps \"x\" not found\n"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_one_line_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "l.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
    );
    let refused =
        "The connection to the server 127.0.0.1:1 was refused - did you specify the right host or port?\n";
    for args in [
        &["get", "pods"][..],
        &["apply", "-f", &file],
        &["create", "-f", &file],
        &["delete", "pod", "x"],
        &["api-resources"],
        &["cluster-info"],
        &["version"],
    ] {
        let mut all = vec!["--server", "http://127.0.0.1:1"];
        all.extend_from_slice(args);
        let run = raw(&all, None).await;
        assert_eq!((run.code, run.stderr.as_str()), (1, refused), "{args:?}");
    }
}
