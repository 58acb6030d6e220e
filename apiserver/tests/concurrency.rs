//! Optimistic concurrency under real contention: many clients writing one object at once.
//! A read-modify-write that carries the resourceVersion it read either wins or gets 409 and
//! retries, so no increment is ever lost; a PATCH without a precondition is retried by the
//! server itself, so concurrent patches of different fields all land.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{pod_json, send, Cluster, ClusterHttp};
use serde_json::{json, Value};

const CLIENTS: usize = 8;
const ROUNDS: usize = 10;

fn counter(obj: &Value) -> usize {
    obj["metadata"]["annotations"]["counter"]
        .as_str()
        .expect("counter annotation")
        .parse()
        .expect("a number")
}

async fn counted_pod(c: &Cluster, name: &str) -> String {
    let mut pod = pod_json(name, json!({}));
    pod["metadata"]["annotations"] = json!({"counter": "0"});
    let got = send(
        c.http()
            .post(format!("{}/api/v1/namespaces/default/pods", c.url()))
            .json(&pod),
    )
    .await;
    assert_eq!(got.0, 201, "{}", got.1);
    format!("{}/api/v1/namespaces/default/pods/{name}", c.url())
}

/// Run `CLIENTS` tasks of `ROUNDS` increments each; `attempt` returns true when its write
/// won and false when it lost a race (and must re-read and try again).
async fn contend<F, Fut>(attempt: F) -> usize
where
    F: Fn(reqwest::Client) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let attempt = Arc::new(attempt);
    let lost = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (attempt, lost) = (attempt.clone(), lost.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for _ in 0..ROUNDS {
                    let mut tries = 0;
                    while !attempt(http.clone()).await {
                        lost.fetch_add(1, Ordering::Relaxed);
                        tries += 1;
                        assert!(tries < 1000, "an increment that never wins");
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
    lost.load(Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn put_with_retry_on_conflict_loses_no_update() {
    let c = Cluster::start().await;
    let url = counted_pod(&c, "counter").await;
    let target = url.clone();
    let lost = contend(move |http| {
        let url = target.clone();
        async move {
            let (code, mut obj) = send(http.get(&url)).await;
            assert_eq!(code, 200, "{obj}");
            let n = counter(&obj);
            obj["metadata"]["annotations"]["counter"] = json!((n + 1).to_string());
            let (code, body) = send(http.put(&url).json(&obj)).await;
            match code {
                200 => true,
                409 => {
                    assert_eq!(body["reason"], "Conflict", "{body}");
                    false
                }
                _ => panic!("PUT answered {code}: {body}"),
            }
        }
    })
    .await;
    let (_, obj) = send(c.http().get(&url)).await;
    assert_eq!(
        counter(&obj),
        CLIENTS * ROUNDS,
        "{lost} writes lost a race and were retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn patches_with_preconditions_lose_no_update() {
    let c = Cluster::start().await;
    let url = counted_pod(&c, "counter").await;

    // A merge patch pinned to the resourceVersion it read: 409 when stale.
    let target = url.clone();
    contend(move |http| {
        let url = target.clone();
        async move {
            let (_, obj) = send(http.get(&url)).await;
            let patch = json!({"metadata": {
                "resourceVersion": obj["metadata"]["resourceVersion"],
                "annotations": {"counter": (counter(&obj) + 1).to_string()}}});
            let req = http
                .patch(&url)
                .header("content-type", "application/merge-patch+json")
                .body(patch.to_string());
            let (code, body) = send(req).await;
            match code {
                200 => true,
                409 => false,
                _ => panic!("PATCH answered {code}: {body}"),
            }
        }
    })
    .await;
    let (_, obj) = send(c.http().get(&url)).await;
    assert_eq!(counter(&obj), CLIENTS * ROUNDS);

    // A JSON patch whose `test` op guards the value it read: fails (422) when stale. The
    // server applies it to a fresh read on every internal retry, so it is atomic.
    let target = url.clone();
    contend(move |http| {
        let url = target.clone();
        async move {
            let (_, obj) = send(http.get(&url)).await;
            let n = counter(&obj);
            let patch = json!([
                {"op": "test", "path": "/metadata/annotations/counter", "value": n.to_string()},
                {"op": "replace", "path": "/metadata/annotations/counter", "value": (n + 1).to_string()}
            ]);
            let req = http.patch(&url).header("content-type", "application/json-patch+json").body(patch.to_string());
            let (code, body) = send(req).await;
            match code {
                200 => true,
                422 | 409 => false,
                _ => panic!("PATCH answered {code}: {body}"),
            }
        }
    })
    .await;
    let (_, obj) = send(c.http().get(&url)).await;
    assert_eq!(counter(&obj), 2 * CLIENTS * ROUNDS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_patches_of_different_fields_all_land() {
    let c = Cluster::start().await;
    let url = counted_pod(&c, "shared").await;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for k in 0..ROUNDS {
                    let patch =
                        json!({"metadata": {"annotations": {format!("client-{i}-{k}"): "x"}}});
                    let req = http
                        .patch(&url)
                        .header("content-type", "application/merge-patch+json")
                        .body(patch.to_string());
                    let (code, body) = send(req).await;
                    assert_eq!(
                        code, 200,
                        "a patch without a precondition is retried by the server: {body}"
                    );
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
    let (_, obj) = send(c.http().get(&url)).await;
    let annotations = obj["metadata"]["annotations"].as_object().unwrap();
    for i in 0..CLIENTS {
        for k in 0..ROUNDS {
            assert!(
                annotations.contains_key(&format!("client-{i}-{k}")),
                "client-{i}-{k} lost"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_name_have_one_winner() {
    let c = Cluster::start().await;
    let url = format!("{}/api/v1/namespaces/default/pods", c.url());
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                let mut pod = pod_json("only", json!({}));
                pod["metadata"]["annotations"] = json!({"writer": i.to_string()});
                send(reqwest::Client::new().post(&url).json(&pod)).await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (code, body) = t.await.unwrap();
        match code {
            201 => winners.push(body["metadata"]["annotations"]["writer"].clone()),
            409 => assert_eq!(body["reason"], "AlreadyExists", "{body}"),
            _ => panic!("create answered {code}: {body}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let (_, stored) = send(reqwest::Client::new().get(format!("{url}/only"))).await;
    assert_eq!(stored["metadata"]["annotations"]["writer"], winners[0]);
}
