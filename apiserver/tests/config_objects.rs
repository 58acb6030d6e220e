//! ConfigMaps and Secrets (issue 13: a joining node's bootstrap token is a Secret) through
//! kube-rs, raw HTTP and the real kubectl, on a real etcd: `kubectl create configmap|secret`
//! (protobuf bodies), the `get cm,secrets` tables as kubectl prints them against
//! kube-apiserver, base64 `data` and Go's error for a value that is not base64, `stringData`
//! folded into `data` and never stored, `type: Opaque` by default, `immutable: true`, config
//! keys, watch and delete, `describe`, and `apply` of `stringData` twice.

mod common;

use std::collections::BTreeMap;

use common::{assert_status, send, Cluster, WatchStream};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

/// The AGE cell at the end of each table row, replaced by `AGE` (ages of a few seconds are
/// as wide as the header, so no other column moves).
fn without_ages(table: &str) -> String {
    table
        .lines()
        .map(|line| match line.rsplit_once("   ") {
            Some((rest, age))
                if age.ends_with('s') && age[..age.len() - 1].parse::<u32>().is_ok() =>
            {
                format!("{rest}   AGE")
            }
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_creates_config_maps_and_secrets_and_prints_their_tables() {
    let c = Cluster::start().await;
    let out = c
        .kubectl_ok(&["create", "configmap", "x", "--from-literal=a=b"])
        .await;
    assert_eq!(out, "configmap/x created\n");
    let out = c
        .kubectl_ok(&["create", "secret", "generic", "s", "--from-literal=k=v"])
        .await;
    assert_eq!(out, "secret/s created\n");
    let k = c
        .kubectl_ok(&["get", "secret", "s", "-o", "jsonpath={.data.k}"])
        .await;
    assert_eq!(k, "dg==", "base64 of \"v\"");
    let a = c
        .kubectl_ok(&["get", "cm", "x", "-o", "jsonpath={.data.a}"])
        .await;
    assert_eq!(a, "b");

    // kubectl's own layout against kube-apiserver: one table per kind, a blank line between
    let table = c.kubectl_ok(&["get", "cm,secrets"]).await;
    assert_eq!(
        without_ages(&table),
        "NAME          DATA   AGE\n\
         configmap/x   1      AGE\n\
         \n\
         NAME       TYPE     DATA   AGE\n\
         secret/s   Opaque   1      AGE",
        "{table}"
    );
    let table = c.kubectl_ok(&["get", "secrets"]).await;
    assert_eq!(
        without_ages(&table),
        "NAME   TYPE     DATA   AGE\ns      Opaque   1      AGE",
        "{table}"
    );
    let out = c
        .kubectl_ok(&[
            "get",
            "secrets",
            "--field-selector",
            "type=Opaque",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(out, "secret/s\n");
    let described = c.kubectl_ok(&["describe", "secret", "s"]).await;
    assert!(described.contains("Type:  Opaque"), "{described}");
    assert!(described.contains("k:  1 bytes"), "{described}");
    let described = c.kubectl_ok(&["describe", "cm", "x"]).await;
    assert!(
        described.contains("Data\n====\na:\n----\nb\n"),
        "{described}"
    );

    // apply with stringData: stored as data, and applying again changes nothing
    let applied = "apiVersion: v1\nkind: Secret\nmetadata: {name: applied}\nstringData: {password: hunter2}\n";
    for _ in 0..2 {
        let out = c.kubectl_stdin(&["apply", "-f", "-"], Some(applied)).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let got = c
        .kubectl_ok(&[
            "get",
            "secret",
            "applied",
            "-o",
            "jsonpath={.data.password} {.stringData}",
        ])
        .await;
    assert_eq!(got, "aHVudGVyMg== ");

    // immutable: kubectl shows the 422 as kube-apiserver words it
    let imm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: frozen}\ndata: {a: \"1\"}\nimmutable: true\n";
    let out = c.kubectl_stdin(&["create", "-f", "-"], Some(imm)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, text) = c
        .kubectl_text(&["patch", "cm", "frozen", "-p", r#"{"data":{"a":"2"}}"#])
        .await;
    assert!(!ok);
    assert_eq!(
        text,
        "The ConfigMap \"frozen\" is invalid: data: Forbidden: field is immutable when `immutable` is set\n"
    );
    c.kubectl_ok(&["label", "cm", "frozen", "tier=ops"]).await;

    let out = c.kubectl_ok(&["delete", "cm", "x"]).await;
    assert_eq!(out, "configmap \"x\" deleted\n");
    let (ok, text) = c.kubectl_text(&["get", "cm", "x"]).await;
    assert!(!ok);
    assert!(text.contains("configmaps \"x\" not found"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_store_base64_data_and_fold_string_data() {
    let c = Cluster::start().await;
    let secrets: Api<Secret> = Api::default_namespaced(c.client());
    let s: Secret = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "data": {"user": "YWRtaW4="},
        "stringData": {"password": "hunter2", "user": "root"}
    }))
    .unwrap();
    let created = secrets.create(&PostParams::default(), &s).await.unwrap();
    assert_eq!(created.type_.as_deref(), Some("Opaque"), "the default type");
    assert!(created.string_data.is_none(), "stringData is never stored");
    let data = created.data.clone().unwrap();
    assert_eq!(data["password"], ByteString(b"hunter2".to_vec()));
    assert_eq!(
        data["user"],
        ByteString(b"root".to_vec()),
        "stringData wins"
    );

    // a merge patch with stringData updates data; a read shows no stringData
    let patch = json!({"stringData": {"password": "s3cret"}});
    secrets
        .patch("db", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let got = secrets.get("db").await.unwrap();
    assert_eq!(
        got.data.unwrap()["password"],
        ByteString(b"s3cret".to_vec())
    );
    assert!(got.string_data.is_none());

    // a value that is not base64 is Go's 400
    let url = format!("{}/api/v1/namespaces/default/secrets", c.url());
    let bad = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bad"},
        "data": {"k": "admin"}});
    let got = send(reqwest::Client::new().post(&url).json(&bad)).await;
    assert_status(&got, 400, "BadRequest");
    assert_eq!(
        got.1["message"],
        "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 4"
    );

    // immutable: data (and stringData) may not change, metadata may
    let frozen: Secret = serde_json::from_value(json!({
        "metadata": {"name": "frozen"}, "stringData": {"k": "v"}, "immutable": true
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &frozen)
        .await
        .unwrap();
    for patch in [
        json!({"stringData": {"k": "w"}}),
        json!({"data": {"k": "dw=="}}),
        json!({"immutable": false}),
    ] {
        let err = secrets
            .patch("frozen", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_err();
        match err {
            kube::Error::Api(s) => {
                assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{patch}");
                assert!(
                    s.message.starts_with("Secret \"frozen\" is invalid: "),
                    "{}",
                    s.message
                );
                assert!(s
                    .message
                    .contains("field is immutable when `immutable` is set"));
            }
            e => panic!("{e:?}"),
        }
    }
    let labels = json!({"metadata": {"labels": {"a": "b"}}});
    secrets
        .patch("frozen", &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .unwrap();
    let err = secrets
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(&json!({"type": "kubernetes.io/tls"})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 422 && s.message.contains("type: Invalid value: \"kubernetes.io/tls\": field is immutable")),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_maps_validate_keys_and_are_watched() {
    let c = Cluster::start().await;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.client());
    let url = format!("{}/api/v1/namespaces/default/configmaps", c.url());
    let list = cms.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut watch = WatchStream::open(&format!("{url}?watch=true&resourceVersion={rv}")).await;

    let bad: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "bad"}, "data": {"a b": "x", "..": "y"}
    }))
    .unwrap();
    match cms.create(&PostParams::default(), &bad).await.unwrap_err() {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"));
            assert_eq!(
                s.message,
                "ConfigMap \"bad\" is invalid: [data[..]: Invalid value: \"..\": must not be '..', data[a b]: Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')]"
            );
        }
        e => panic!("{e:?}"),
    }

    let cm = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some("app".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("app.properties".into(), "x=1".into())])),
        binary_data: Some(BTreeMap::from([(
            "logo".into(),
            ByteString(vec![0, 1, 255]),
        )])),
        ..Default::default()
    };
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let ev = watch.next_change().await;
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["binaryData"]["logo"], "AAH/");
    let mut changed = cms.get("app").await.unwrap();
    changed
        .data
        .as_mut()
        .unwrap()
        .insert("b".into(), "2".into());
    cms.replace("app", &PostParams::default(), &changed)
        .await
        .unwrap();
    let ev = watch.next_change().await;
    assert_eq!(ev["type"], "MODIFIED");
    assert_eq!(ev["object"]["data"]["b"], "2");
    cms.delete("app", &DeleteParams::default()).await.unwrap();
    let ev = watch.next_change().await;
    assert_eq!(ev["type"], "DELETED");

    let bad = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"},
        "binaryData": {"k": "YQ="}});
    let got = send(reqwest::Client::new().post(&url).json(&bad)).await;
    assert_status(&got, 400, "BadRequest");
    assert_eq!(
        got.1["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: illegal base64 data at input byte 3"
    );
}
