//! `minikctl get`: the server's tables aligned as kubectl aligns them, the object formats,
//! selectors, several types at once, watching, and the messages for nothing found.

mod common;

use common::{minikctl, Cluster};

/// Two pods in `default` (`web`, `db`) and one in `other` (`cache`); none is scheduled.
async fn cluster_with_pods() -> Cluster {
    let cluster = Cluster::start().await;
    cluster.kubectl_ok(&["create", "namespace", "other"]).await;
    for (ns, name, app) in [
        ("default", "web", "web"),
        ("default", "db", "db"),
        ("other", "cache", "web"),
    ] {
        cluster
            .kubectl_ok(&[
                "-n",
                ns,
                "run",
                name,
                "--image=busybox",
                &format!("--labels=app={app}"),
            ])
            .await;
    }
    cluster
}

/// The lines with the AGE column cut out: it may tick between two runs. The column is found
/// in the header (`-o wide` has columns after it); without headers it is the last one.
fn without_age(table: &str) -> Vec<String> {
    let header = table.lines().next().unwrap_or_default();
    let age = header
        .find(" AGE ")
        .map(|i| i + 1)
        .or_else(|| header.ends_with(" AGE").then(|| header.len() - 3));
    let next = age.and_then(|a| {
        let after = &header[a + 3..];
        after.find(|c: char| c != ' ').map(|i| a + 3 + i)
    });
    table
        .lines()
        .map(|l| match (age, next) {
            (Some(a), Some(n)) if l.len() >= n => format!("{}{}", &l[..a], &l[n..]),
            (Some(a), None) if l.len() >= a => l[..a].to_string(),
            _ => l
                .rsplit_once(' ')
                .map(|(a, _)| a.to_string())
                .unwrap_or_default(),
        })
        .collect()
}

#[tokio::test]
async fn tables_match_kubectls_byte_for_byte_but_the_age() {
    let cluster = cluster_with_pods().await;
    for args in [
        &["get", "pods"][..],
        &["get", "po", "-A"],
        &["get", "pods", "-o", "wide"],
        &["get", "pods", "--no-headers"],
        &["get", "pod", "web", "db"],
        &["get", "namespaces"],
    ] {
        let ours = minikctl(&cluster, args).await.ok();
        let theirs = cluster.kubectl_ok(args).await;
        assert_eq!(
            without_age(&ours),
            without_age(&theirs),
            "{args:?}:\n{ours}\n{theirs}"
        );
    }
    let all = minikctl(&cluster, &["get", "pods", "-A"]).await.ok();
    assert!(all.starts_with("NAMESPACE "), "{all}");
    assert!(all.contains("\nother "), "{all}");
}

#[tokio::test]
async fn several_types_print_one_table_each_with_kind_prefixes() {
    let cluster = cluster_with_pods().await;
    let out = minikctl(&cluster, &["get", "po,ns", "--no-headers"])
        .await
        .ok();
    let (pods, namespaces) = out.split_once("\n\n").expect("two tables");
    assert!(pods.lines().all(|l| l.starts_with("pod/")), "{out}");
    assert!(
        namespaces
            .lines()
            .any(|l| l.starts_with("namespace/other ")),
        "{out}"
    );
    let out = minikctl(&cluster, &["get", "pod/web", "ns/other", "-o", "name"])
        .await
        .ok();
    assert_eq!(out, "pod/web\nnamespace/other\n");
}

#[tokio::test]
async fn object_formats_and_selectors() {
    let cluster = cluster_with_pods().await;
    let one: serde_json::Value = serde_json::from_str(
        &minikctl(&cluster, &["get", "pod", "web", "-o", "json"])
            .await
            .ok(),
    )
    .unwrap();
    assert_eq!(one["kind"], "Pod");
    assert_eq!(one["metadata"]["name"], "web");
    let list: serde_yaml::Value = serde_yaml::from_str(
        &minikctl(&cluster, &["get", "pods", "-o", "yaml"])
            .await
            .ok(),
    )
    .unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_sequence().unwrap().len(), 2);
    assert_eq!(list["items"][0]["apiVersion"], "v1");
    let names = minikctl(
        &cluster,
        &["get", "pods", "-l", "app=web", "-A", "-o", "name"],
    )
    .await
    .ok();
    assert_eq!(names, "pod/web\npod/cache\n");
    let names = minikctl(
        &cluster,
        &[
            "get",
            "pods",
            "--field-selector",
            "metadata.name=db",
            "-o",
            "name",
        ],
    )
    .await
    .ok();
    assert_eq!(names, "pod/db\n");
    let template =
        "jsonpath={range .items[*]}{.metadata.name}={.metadata.labels.app}{\"\\n\"}{end}";
    let out = minikctl(&cluster, &["get", "pods", "-o", template])
        .await
        .ok();
    let theirs = cluster.kubectl_ok(&["get", "pods", "-o", template]).await;
    assert_eq!(out, theirs);
    let out = minikctl(
        &cluster,
        &[
            "get",
            "pod",
            "web",
            "-o",
            "jsonpath={.spec.containers[0].image}",
        ],
    )
    .await
    .ok();
    assert_eq!(out, "busybox");
}

#[tokio::test]
async fn nothing_found_and_not_found() {
    let cluster = cluster_with_pods().await;
    let run = minikctl(&cluster, &["get", "pods", "-n", "kube-public"]).await;
    assert_eq!((run.code, run.stdout.as_str()), (0, ""));
    assert_eq!(run.stderr, "No resources found in kube-public namespace.\n");
    let run = minikctl(&cluster, &["get", "pods", "-l", "app=none", "-A"]).await;
    assert_eq!(run.stderr, "No resources found\n");
    let run = minikctl(&cluster, &["get", "pods", "web", "nope"]).await;
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.starts_with("NAME ") && run.stdout.contains("\nweb "),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stderr,
        "Error from server (NotFound): pods \"nope\" not found\n"
    );
    let err = minikctl(&cluster, &["get", "pod", "web", "-A"])
        .await
        .failed();
    assert_eq!(
        err,
        "error: a resource cannot be retrieved by name across all namespaces\n"
    );
    let err = minikctl(&cluster, &["get", "pods", "-o", "xml"]).await;
    assert_eq!(err.code, 1, "a bad -o is a usage error: {}", err.stderr);
    assert!(err.stderr.contains("\"xml\""), "{}", err.stderr);
}

#[tokio::test]
async fn watch_prints_a_row_per_change() {
    let cluster = cluster_with_pods().await;
    let (mut child, mut lines) = common::follow(&cluster, &["get", "pods", "-w"]);
    let mut next = async || common::next_line(&mut lines).await;
    assert!(next().await.starts_with("NAME "));
    let mut first = vec![next().await, next().await];
    first.sort();
    assert!(
        first[0].starts_with("db ") && first[1].starts_with("web "),
        "{first:?}"
    );
    cluster
        .kubectl_ok(&["run", "late", "--image=busybox"])
        .await;
    let row = next().await;
    assert!(row.starts_with("late ") && row.contains("Pending"), "{row}");
    cluster
        .kubectl_ok(&["delete", "pod", "late", "--wait=false"])
        .await;
    let row = next().await;
    assert!(row.starts_with("late "), "{row}");
    child.kill().await.unwrap();
}
