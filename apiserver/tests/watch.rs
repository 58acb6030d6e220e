//! Watch over raw HTTP, line by line, the way client-go and kube-rs read it: initial ADDED
//! events, exact replay from a resourceVersion, selector transitions, 410 Expired as an ERROR
//! event, bookmarks, timeouts, and DELETED carrying the last object.

mod common;

use std::time::Duration;

use common::{pod_json, send, Cluster, ClusterHttp, ServerConfig, WatchStream};
use serde_json::{json, Value};

fn pods(c: &Cluster) -> String {
    format!("{}/api/v1/namespaces/default/pods", c.url())
}

fn rv(obj: &Value) -> i64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .expect("resourceVersion")
        .parse()
        .expect("numeric resourceVersion")
}

async fn create(c: &Cluster, body: Value) -> Value {
    let got = send(c.http().post(pods(c)).json(&body)).await;
    assert_eq!(got.0, 201, "{}", got.1);
    got.1
}

async fn merge_patch(c: &Cluster, name: &str, patch: Value) -> Value {
    let got = send(
        c.http()
            .patch(format!("{}/{name}", pods(c)))
            .header("content-type", "application/merge-patch+json")
            .body(patch.to_string()),
    )
    .await;
    assert_eq!(got.0, 200, "{}", got.1);
    got.1
}

async fn delete(c: &Cluster, name: &str, query: &str) -> Value {
    let got = send(c.http().delete(format!("{}/{name}{query}", pods(c)))).await;
    assert_eq!(got.0, 200, "{}", got.1);
    got.1
}

#[track_caller]
fn assert_event(ev: &Value, kind: &str, name: &str) {
    assert_eq!(ev["type"], kind, "{ev}");
    assert_eq!(ev["object"]["metadata"]["name"], name, "{ev}");
    assert_eq!(ev["object"]["kind"], "Pod", "{ev}");
    assert!(rv(&ev["object"]) > 0, "{ev}");
}

async fn list_and_follow(c: &Cluster, start: &str) {
    let a = create(c, pod_json("a", json!({"app": "web"}))).await;
    create(c, pod_json("b", json!({}))).await;
    let mut w = WatchStream::open(&format!("{}?watch=true{start}", pods(c))).await;
    assert_eq!(w.code, 200);
    let mut initial = [w.next_change().await, w.next_change().await];
    initial.sort_by_key(|e| {
        e["object"]["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string()
    });
    assert_event(&initial[0], "ADDED", "a");
    assert_eq!(
        initial[0]["object"], a,
        "the initial event carries the stored object"
    );
    assert_event(&initial[1], "ADDED", "b");

    let c_obj = create(c, pod_json("c", json!({}))).await;
    let ev = w.next_change().await;
    assert_event(&ev, "ADDED", "c");
    assert_eq!(rv(&ev["object"]), rv(&c_obj));
    let patched = merge_patch(c, "a", json!({"metadata": {"labels": {"app": "db"}}})).await;
    let ev = w.next_change().await;
    assert_event(&ev, "MODIFIED", "a");
    assert_eq!(ev["object"], patched);
    let deleted = delete(c, "b", "").await;
    let ev = w.next_change().await;
    assert_event(&ev, "DELETED", "b");
    assert_eq!(
        rv(&ev["object"]),
        rv(&deleted),
        "DELETED carries the delete's resourceVersion"
    );
    assert_eq!(ev["object"]["metadata"]["uid"], deleted["metadata"]["uid"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_without_resource_version_sends_existing_objects_then_changes() {
    let c = Cluster::start().await;
    list_and_follow(&c, "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_zero_sends_existing_objects_then_changes() {
    let c = Cluster::start().await;
    list_and_follow(&c, "&resourceVersion=0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_a_resource_version_replays_exactly_what_followed() {
    let c = Cluster::start().await;
    let a = create(&c, pod_json("a", json!({}))).await;
    let modified = merge_patch(&c, "a", json!({"metadata": {"labels": {"v": "2"}}})).await;
    let b = create(&c, pod_json("b", json!({}))).await;
    let deleted = delete(&c, "a", "").await;
    // The other namespace's pod is not under this watch's URL.
    let got = send(
        c.http()
            .post(format!("{}/api/v1/namespaces/kube-system/pods", c.url()))
            .json(&pod_json("sys", json!({}))),
    )
    .await;
    assert_eq!(got.0, 201);

    let mut w = WatchStream::open(&format!(
        "{}?watch=true&resourceVersion={}",
        pods(&c),
        rv(&a)
    ))
    .await;
    assert_eq!(w.code, 200);
    let ev = w.next_change().await;
    assert_event(&ev, "MODIFIED", "a");
    assert_eq!(rv(&ev["object"]), rv(&modified));
    let ev = w.next_change().await;
    assert_event(&ev, "ADDED", "b");
    assert_eq!(rv(&ev["object"]), rv(&b));
    let ev = w.next_change().await;
    assert_event(&ev, "DELETED", "a");
    assert_eq!(rv(&ev["object"]), rv(&deleted));
    // Nothing else was replayed: the next event is the next change.
    let d = create(&c, pod_json("d", json!({}))).await;
    let ev = w.next_change().await;
    assert_event(&ev, "ADDED", "d");
    assert_eq!(rv(&ev["object"]), rv(&d));

    // From a list's resourceVersion: only what happened after the list.
    let list = send(c.http().get(pods(&c))).await.1;
    let list_rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut w = WatchStream::open(&format!(
        "{}?watch=true&resourceVersion={list_rv}",
        pods(&c)
    ))
    .await;
    merge_patch(&c, "b", json!({"metadata": {"labels": {"after": "list"}}})).await;
    let ev = w.next_change().await;
    assert_event(&ev, "MODIFIED", "b");
    assert_eq!(ev["object"]["metadata"]["labels"]["after"], "list");

    // All namespaces: the kube-system pod is there too.
    let mut w = WatchStream::open(&format!("{}/api/v1/pods?watch=true", c.url())).await;
    let mut names = Vec::new();
    for _ in 0..3 {
        names.push(
            w.next_change().await["object"]["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    names.sort();
    assert_eq!(names, ["b", "d", "sys"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selector_watches_turn_transitions_into_added_and_deleted() {
    let c = Cluster::start().await;
    let list = send(c.http().get(pods(&c))).await.1;
    let from = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut on_n1 = WatchStream::open(&format!(
        "{}?watch=true&resourceVersion={from}&fieldSelector=spec.nodeName%3Dn1",
        pods(&c)
    ))
    .await;
    let mut web = WatchStream::open(&format!(
        "{}?watch=true&resourceVersion={from}&labelSelector=app%3Dweb",
        pods(&c)
    ))
    .await;

    create(&c, pod_json("p", json!({"app": "web"}))).await;
    let ev = web.next_change().await;
    assert_event(&ev, "ADDED", "p");

    // Bound to n1: the kubelet's watch sees the pod appear.
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
                         "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}});
    let got = send(
        c.http()
            .post(format!("{}/p/binding", pods(&c)))
            .json(&binding),
    )
    .await;
    assert_eq!(got.0, 201, "{}", got.1);
    let ev = on_n1.next_change().await;
    assert_event(&ev, "ADDED", "p");
    assert_eq!(ev["object"]["spec"]["nodeName"], "n1");
    let ev = web.next_change().await;
    assert_event(&ev, "MODIFIED", "p");

    // Stops matching the label selector: DELETED; matches again: ADDED.
    merge_patch(&c, "p", json!({"metadata": {"labels": {"app": "db"}}})).await;
    let ev = web.next_change().await;
    assert_event(&ev, "DELETED", "p");
    assert_eq!(
        ev["object"]["metadata"]["labels"]["app"], "db",
        "the object as it is now"
    );
    let ev = on_n1.next_change().await;
    assert_event(&ev, "MODIFIED", "p");
    merge_patch(&c, "p", json!({"metadata": {"labels": {"app": "web"}}})).await;
    let ev = web.next_change().await;
    assert_event(&ev, "ADDED", "p");
    on_n1.next_change().await;

    // A pod never on n1 is invisible to the node's watch; a real delete is DELETED.
    create(&c, pod_json("elsewhere", json!({}))).await;
    delete(&c, "p", "?gracePeriodSeconds=0").await;
    let ev = on_n1.next_change().await;
    assert_event(&ev, "DELETED", "p");
    let ev = web.next_change().await;
    assert_event(&ev, "DELETED", "p");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_old_resource_version_is_an_expired_error_event() {
    let c = Cluster::with_config(ServerConfig {
        watch_cache_size: 2,
        ..Default::default()
    })
    .await;
    let first = create(&c, pod_json("p0", json!({}))).await;
    let mut last = first.clone();
    for i in 1..6 {
        last = create(&c, pod_json(&format!("p{i}"), json!({}))).await;
    }
    // The cache applies etcd's events asynchronously: wait until it has seen them all (a list
    // at resourceVersion=0 is served from it), so its short history has moved past p0.
    common::wait_for(30, "the watch cache to catch up", || async {
        let list = send(c.http().get(format!("{}?resourceVersion=0", pods(&c))))
            .await
            .1;
        let at: i64 = list["metadata"]["resourceVersion"].as_str()?.parse().ok()?;
        (at >= rv(&last)).then_some(())
    })
    .await;
    let mut w = WatchStream::open(&format!(
        "{}?watch=true&resourceVersion={}",
        pods(&c),
        rv(&first)
    ))
    .await;
    assert_eq!(
        w.code, 200,
        "the error comes inside the stream, not as an HTTP 410"
    );
    let ev = w.next().await;
    assert_eq!(ev["type"], "ERROR", "{ev}");
    let status = &ev["object"];
    assert_eq!(status["kind"], "Status", "{ev}");
    assert_eq!(status["apiVersion"], "v1", "{ev}");
    assert_eq!(status["status"], "Failure", "{ev}");
    assert_eq!(status["code"], 410, "{ev}");
    assert_eq!(status["reason"], "Expired", "{ev}");
    assert!(
        w.next_within(30).await.is_none(),
        "the stream ends after the error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_carry_type_and_resource_version() {
    let c = Cluster::with_config(ServerConfig {
        bookmark_interval: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let p = create(&c, pod_json("p", json!({}))).await;
    let mut w = WatchStream::open(&format!(
        "{}?watch=true&resourceVersion={}&allowWatchBookmarks=true",
        pods(&c),
        rv(&p)
    ))
    .await;
    let bookmark = loop {
        let ev = w.next().await;
        if ev["type"] == "BOOKMARK" {
            break ev;
        }
    };
    let obj = &bookmark["object"];
    assert_eq!(obj["apiVersion"], "v1", "{bookmark}");
    assert_eq!(obj["kind"], "Pod", "{bookmark}");
    assert!(rv(obj) >= rv(&p), "{bookmark}");
    // Bookmarks keep up with writes.
    let q = create(&c, pod_json("q", json!({}))).await;
    assert_event(&w.next_change().await, "ADDED", "q");
    loop {
        let ev = w.next().await;
        if ev["type"] == "BOOKMARK" && rv(&ev["object"]) >= rv(&q) {
            break;
        }
    }

    // Without allowWatchBookmarks there are none.
    let mut w = WatchStream::open(&format!(
        "{}?watch=true&resourceVersion={}&timeoutSeconds=2",
        pods(&c),
        rv(&q)
    ))
    .await;
    while let Some(ev) = w.next_within(30).await {
        assert_ne!(ev["type"], "BOOKMARK", "{ev}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_seconds_ends_the_stream() {
    let c = Cluster::start().await;
    let mut w = WatchStream::open(&format!("{}?watch=true&timeoutSeconds=1", pods(&c))).await;
    assert_eq!(w.code, 200);
    assert!(
        w.next_within(30).await.is_none(),
        "no objects and no changes: the stream just ends"
    );
    // kube-rs's query shape (`?&...`) works too.
    let mut w = WatchStream::open(&format!(
        "{}?&watch=true&timeoutSeconds=1&allowWatchBookmarks=true",
        pods(&c)
    ))
    .await;
    assert_eq!(w.code, 200);
    while w.next_within(30).await.is_some() {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_a_future_resource_version_waits_for_it() {
    let c = Cluster::start().await;
    let list = send(c.http().get(pods(&c))).await.1;
    let at = rv(&list);
    // kube-apiserver opens such a watch and stays quiet until the revision comes (the
    // watch cache only waits and errors for `sendInitialEvents`): no error, no timeout.
    let mut w = WatchStream::open(&format!(
        "{}?watch=true&resourceVersion={}&timeoutSeconds=30",
        pods(&c),
        at + 2
    ))
    .await;
    assert_eq!(w.code, 200);
    for name in ["p1", "p2", "p3"] {
        create(&c, pod_json(name, json!({}))).await;
    }
    let ev = w.next_change().await;
    assert_event(&ev, "ADDED", "p3");
    assert!(rv(&ev["object"]) > at + 2, "{ev}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_list_from_a_future_resource_version_is_a_too_large_error_event() {
    let c = Cluster::start().await;
    let p = create(&c, pod_json("p", json!({}))).await;
    let ahead = rv(&p) + 1_000_000;
    // WatchList (`sendInitialEvents=true`) promises a state not older than the
    // resourceVersion: the cache waits up to 3 s for it, then the stream carries one ERROR
    // event with the 504 Timeout Status of a too large resource version.
    let started = std::time::Instant::now();
    let mut w = WatchStream::open(&format!(
        "{}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan\
         &allowWatchBookmarks=true&resourceVersion={ahead}",
        pods(&c)
    ))
    .await;
    assert_eq!(w.code, 200, "the error comes inside the stream");
    let ev = w.next().await;
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(ev["type"], "ERROR", "{ev}");
    let status = &ev["object"];
    assert_eq!(status["kind"], "Status", "{ev}");
    assert_eq!(status["code"], 504, "{ev}");
    assert_eq!(status["reason"], "Timeout", "{ev}");
    assert_eq!(
        status["details"]["causes"][0]["reason"], "ResourceVersionTooLarge",
        "{ev}"
    );
    assert!(
        w.next_within(30).await.is_none(),
        "the stream ends after the error"
    );

    // A resourceVersion the cache has reached is served: the current objects, then the
    // bookmark that ends the initial events.
    let mut w = WatchStream::open(&format!(
        "{}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan\
         &allowWatchBookmarks=true&resourceVersion={}",
        pods(&c),
        rv(&p)
    ))
    .await;
    assert_event(&w.next().await, "ADDED", "p");
    let end = w.next().await;
    assert_eq!(end["type"], "BOOKMARK", "{end}");
    assert!(rv(&end["object"]) >= rv(&p), "{end}");
}
