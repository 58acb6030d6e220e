//! Bad requests over raw HTTP: every one is answered with a `Status` carrying the code and
//! reason the real kube-apiserver uses (clients branch on them), never a panic, a hung
//! connection or a bare text body. Also: etcd going silent is a quick 503, and the server
//! recovers by itself when etcd comes back.

mod common;

use std::time::{Duration, Instant};

use common::{assert_status, pod_json, send, wait_for, Cluster, ClusterHttp};
use serde_json::{json, Value};

fn pods(c: &Cluster) -> String {
    format!("{}/api/v1/namespaces/default/pods", c.url())
}

async fn create_pod(c: &Cluster, name: &str) -> Value {
    let got = send(c.http().post(pods(c)).json(&pod_json(name, json!({})))).await;
    assert_eq!(got.0, 201, "{}", got.1);
    got.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_bad_requests() {
    let c = Cluster::start().await;
    let http = c.http();
    let json_post = |body: &'static str| {
        http.post(pods(&c))
            .header("content-type", "application/json")
            .body(body)
    };

    let got = send(json_post(r#"{"metadata": {"name": "x""#)).await;
    assert_status(&got, 400, "BadRequest");
    let got = send(json_post("[1, 2]")).await;
    assert_status(&got, 400, "BadRequest");
    let got = send(json_post("")).await;
    assert_status(&got, 400, "BadRequest");
    // A field of the wrong type is a decode error, not a validation error.
    let got = send(json_post(
        r#"{"metadata":{"name":"x"},"spec":{"containers":"nope"}}"#,
    ))
    .await;
    assert_status(&got, 400, "BadRequest");

    // kind / apiVersion that do not match the URL.
    let mut wrong_kind = pod_json("x", json!({}));
    wrong_kind["kind"] = json!("Deployment");
    let got = send(http.post(pods(&c)).json(&wrong_kind)).await;
    assert_status(&got, 400, "BadRequest");
    assert!(
        got.1["message"].as_str().unwrap().contains("Deployment"),
        "{}",
        got.1
    );
    let mut wrong_version = pod_json("x", json!({}));
    wrong_version["apiVersion"] = json!("apps/v1");
    let got = send(http.post(pods(&c)).json(&wrong_version)).await;
    assert_status(&got, 400, "BadRequest");

    // The namespace in the body must match the URL's.
    let mut other_ns = pod_json("x", json!({}));
    other_ns["metadata"]["namespace"] = json!("kube-system");
    let got = send(http.post(pods(&c)).json(&other_ns)).await;
    assert_status(&got, 400, "BadRequest");

    // Nothing above was stored.
    let got = send(http.get(format!("{}/x", pods(&c)))).await;
    assert_status(&got, 404, "NotFound");
}

/// An exec that is not a WebSocket upgrade (kubectl's SPDY fallback) first meets the errors
/// of the pod and the container, as from kube-apiserver; only then the refusal of SPDY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_without_an_upgrade_checks_the_pod_and_container_first() {
    let c = Cluster::start().await;
    create_pod(&c, "x").await;
    let exec = |pod: &str, query: &str| {
        c.http()
            .post(format!("{}/{pod}/exec?command=true{query}", pods(&c)))
    };
    let got = send(exec("missing", "")).await;
    assert_status(&got, 404, "NotFound");
    assert_eq!(got.1["message"], r#"pods "missing" not found"#);
    let got = send(exec("x", "&container=nope")).await;
    assert_status(&got, 400, "BadRequest");
    assert_eq!(got.1["message"], "container nope is not valid for pod x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_is_413() {
    let c = Cluster::start().await;
    let big = format!(
        r#"{{"metadata":{{"name":"big","annotations":{{"a":"{}"}}}},"spec":{{"containers":[{{"name":"c","image":"i"}}]}}}}"#,
        "x".repeat(3 * 1024 * 1024 + 1)
    );
    let got = send(
        c.http()
            .post(pods(&c))
            .header("content-type", "application/json")
            .body(big),
    )
    .await;
    assert_status(&got, 413, "RequestEntityTooLarge");
    // The server is fine afterwards.
    let got = send(c.http().get(pods(&c))).await;
    assert_eq!(got.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_resources_and_media_types() {
    let c = Cluster::start().await;
    let http = c.http();
    let got = send(http.get(format!("{}/api/v1/namespaces/default/widgets", c.url()))).await;
    assert_status(&got, 404, "NotFound");
    let got = send(http.get(format!("{}/apis/nosuch.example.com/v1/things", c.url()))).await;
    assert_status(&got, 404, "NotFound");
    // A namespace that does not exist.
    let got = send(
        http.post(format!("{}/api/v1/namespaces/nope/pods", c.url()))
            .json(&pod_json("p", json!({}))),
    )
    .await;
    assert_status(&got, 404, "NotFound");
    assert_eq!(got.1["message"], "namespaces \"nope\" not found");

    let body = serde_json::to_string(&pod_json("x", json!({}))).unwrap();
    let got = send(
        http.post(pods(&c))
            .header("content-type", "text/plain")
            .body(body),
    )
    .await;
    assert_status(&got, 415, "UnsupportedMediaType");
    create_pod(&c, "p").await;
    // PATCH with plain JSON is not a patch type.
    let got = send(
        http.patch(format!("{}/p", pods(&c)))
            .header("content-type", "application/json")
            .body(r#"{"metadata":{}}"#),
    )
    .await;
    assert_status(&got, 415, "UnsupportedMediaType");
    // Nothing acceptable in Accept.
    let got = send(
        http.get(format!("{}/p", pods(&c)))
            .header("accept", "image/png"),
    )
    .await;
    assert_eq!(got.0, 406, "{}", got.1);

    // Malformed selectors are 400.
    let got = send(http.get(format!("{}?labelSelector=a%20in%20(", pods(&c)))).await;
    assert_status(&got, 400, "BadRequest");
    let got = send(http.get(format!("{}?fieldSelector=spec.bogus%3D1", pods(&c)))).await;
    assert_status(&got, 400, "BadRequest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_mismatch_validation_and_strict_fields() {
    let c = Cluster::start().await;
    let http = c.http();
    let created = create_pod(&c, "a").await;

    // PUT /pods/b with a body naming a.
    let got = send(http.put(format!("{}/b", pods(&c))).json(&created)).await;
    assert_status(&got, 400, "BadRequest");

    // 422 Invalid with a cause per bad field.
    let mut invalid = pod_json("Bad_Name", json!({}));
    invalid["spec"]["containers"] = json!([]);
    let got = send(http.post(pods(&c)).json(&invalid)).await;
    assert_status(&got, 422, "Invalid");
    let details = &got.1["details"];
    assert_eq!(details["name"], "Bad_Name", "{details}");
    assert_eq!(details["kind"], "Pod", "{details}");
    let fields: Vec<&str> = details["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .filter_map(|c| c["field"].as_str())
        .collect();
    assert!(fields.contains(&"metadata.name"), "{fields:?}");
    assert!(fields.contains(&"spec.containers"), "{fields:?}");
    assert!(
        got.1["message"]
            .as_str()
            .unwrap()
            .starts_with("Pod \"Bad_Name\" is invalid"),
        "{}",
        got.1
    );

    // Unknown fields: Strict refuses, the default (Warn) stores and warns.
    let mut typo = pod_json("typo", json!({}));
    typo["spec"]["bogus"] = json!(1);
    let got = send(
        http.post(format!("{}?fieldValidation=Strict", pods(&c)))
            .json(&typo),
    )
    .await;
    assert_status(&got, 400, "BadRequest");
    assert!(
        got.1["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"spec.bogus\""),
        "{}",
        got.1
    );
    let resp = http.post(pods(&c)).json(&typo).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let warning = resp
        .headers()
        .get("warning")
        .expect("a Warning header")
        .to_str()
        .unwrap()
        .to_string();
    assert!(warning.contains("spec.bogus"), "{warning}");
    let got = send(
        http.post(format!("{}?fieldValidation=Sloppy", pods(&c)))
            .json(&pod_json("z", json!({}))),
    )
    .await;
    assert_status(&got, 400, "BadRequest");

    // A strategic `$patch: delete` of something absent leaves nothing behind, not even an
    // unknown field for Strict to refuse: upstream drops it before decoding.
    let got = send(
        http.patch(format!("{}/a?fieldValidation=Strict", pods(&c)))
            .header("content-type", "application/strategic-merge-patch+json")
            .body(r#"{"spec":{"nope":{"$patch":"delete"}},"metadata":{"labels":{"gone":{"$patch":"delete"}}}}"#),
    )
    .await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert_eq!(got.1["metadata"]["labels"], created["metadata"]["labels"]);
    assert!(got.1["spec"].get("nope").is_none(), "{}", got.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_and_preconditions() {
    let c = Cluster::start().await;
    let http = c.http();
    let created = create_pod(&c, "x").await;

    let got = send(http.post(pods(&c)).json(&pod_json("x", json!({})))).await;
    assert_status(&got, 409, "AlreadyExists");
    assert_eq!(got.1["message"], "pods \"x\" already exists");
    assert_eq!(got.1["details"]["name"], "x");
    assert_eq!(got.1["details"]["kind"], "pods");

    // A PUT based on a stale resourceVersion loses.
    let mut fresh = created.clone();
    fresh["metadata"]["labels"] = json!({"round": "1"});
    let got = send(http.put(format!("{}/x", pods(&c))).json(&fresh)).await;
    assert_eq!(got.0, 200, "{}", got.1);
    let mut stale = created.clone();
    stale["metadata"]["labels"] = json!({"round": "stale"});
    let got = send(http.put(format!("{}/x", pods(&c))).json(&stale)).await;
    assert_status(&got, 409, "Conflict");
    assert_eq!(
        got.1["message"],
        "Operation cannot be fulfilled on pods \"x\": the object has been modified; please apply your changes to the latest version and try again"
    );
    let got = send(http.get(format!("{}/x", pods(&c)))).await;
    assert_eq!(got.1["metadata"]["labels"]["round"], "1");

    // A uid in a PUT body is a precondition; a patch cannot change the uid.
    let mut other_uid = got.1.clone();
    other_uid["metadata"]["uid"] = json!("6d1f6a8e-0000-4000-8000-000000000000");
    let got = send(http.put(format!("{}/x", pods(&c))).json(&other_uid)).await;
    assert_status(&got, 409, "Conflict");
    assert!(
        got.1["message"]
            .as_str()
            .unwrap()
            .contains("Precondition failed: UID in precondition"),
        "{}",
        got.1
    );
    let got = send(
        http.patch(format!("{}/x", pods(&c)))
            .header("content-type", "application/merge-patch+json")
            .body(r#"{"metadata":{"uid":"6d1f6a8e-0000-4000-8000-000000000000"}}"#),
    )
    .await;
    assert_status(&got, 422, "Invalid");
    assert_eq!(
        got.1["details"]["causes"][0]["field"], "metadata.uid",
        "{}",
        got.1
    );
    let got = send(http.get(format!("{}/x", pods(&c)))).await;
    assert_eq!(got.1["metadata"]["uid"], created["metadata"]["uid"]);

    // DELETE with preconditions that do not hold.
    let wrong_uid = json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "not-the-uid"}});
    let got = send(http.delete(format!("{}/x", pods(&c))).json(&wrong_uid)).await;
    assert_status(&got, 409, "Conflict");
    assert!(
        got.1["message"]
            .as_str()
            .unwrap()
            .contains("Precondition failed: UID in precondition"),
        "{}",
        got.1
    );
    let wrong_rv =
        json!({"preconditions": {"resourceVersion": created["metadata"]["resourceVersion"]}});
    let got = send(http.delete(format!("{}/x", pods(&c))).json(&wrong_rv)).await;
    assert_status(&got, 409, "Conflict");
    // Still there; the right UID deletes it.
    let right_uid = json!({"preconditions": {"uid": created["metadata"]["uid"]}});
    let got = send(http.delete(format!("{}/x", pods(&c))).json(&right_uid)).await;
    assert_eq!(got.0, 200, "{}", got.1);
    let got = send(http.get(format!("{}/x", pods(&c)))).await;
    assert_status(&got, 404, "NotFound");
    assert_eq!(got.1["message"], "pods \"x\" not found");
    let got = send(http.delete(format!("{}/x", pods(&c)))).await;
    assert_status(&got, 404, "NotFound");
}

/// Send `method path` as raw HTTP/1.1: reqwest's URL parser resolves `.` and `..` segments
/// before sending, and those are exactly the paths under test.
async fn raw(c: &Cluster, method: &str, path: &str, body: &str) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = c.url().trim_start_matches("http://");
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        String::from_utf8(response).expect("a UTF-8 response")
    };
    let text = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .expect("the server answers within 30 s");
    let code = text[9..12].parse().expect("an HTTP status line");
    let (_, body) = text.split_once("\r\n\r\n").expect("headers end");
    (code, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_are_not_path_segments_are_bad_requests() {
    let c = Cluster::start().await;
    create_pod(&c, "p").await;
    let body = serde_json::to_string(&pod_json("..", json!({}))).unwrap();
    let path = "/api/v1/namespaces/default/pods";
    // kube-apiserver's storage key function refuses such names before touching storage:
    // `Name parameter invalid: "..": may not be '..'`.
    let got = raw(&c, "PUT", &format!("{path}/.."), &body).await;
    assert_status(&got, 400, "BadRequest");
    assert_eq!(
        got.1["message"], r#"Name parameter invalid: "..": may not be '..'"#,
        "{}",
        got.1
    );
    let got = raw(&c, "GET", &format!("{path}/."), "").await;
    assert_status(&got, 400, "BadRequest");
    assert_eq!(
        got.1["message"],
        r#"Name parameter invalid: ".": may not be '.'"#
    );
    // The path is decoded before it is split, as Go's URL.Path is: `%2E%2E` is `..`, and an
    // encoded `%` is a `%` in the name.
    let got = raw(&c, "DELETE", &format!("{path}/%2E%2E"), "").await;
    assert_status(&got, 400, "BadRequest");
    let got = raw(&c, "GET", &format!("{path}/a%25b"), "").await;
    assert_status(&got, 400, "BadRequest");
    assert_eq!(
        got.1["message"],
        r#"Name parameter invalid: "a%b": may not contain '%'"#
    );
    let got = raw(&c, "GET", &format!("{path}/..%2Fstatus"), "").await;
    assert_status(&got, 400, "BadRequest");
    // An encoded `/` splits the segment, as upstream: `p/x` asks for an unknown subresource.
    let got = raw(&c, "GET", &format!("{path}/p%2Fx"), "").await;
    assert_status(&got, 404, "NotFound");
    let got = raw(&c, "GET", &format!("{path}/p%2Fstatus"), "").await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert_eq!(got.1["metadata"]["name"], "p");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_limit_at_or_below_zero_means_no_limit() {
    let c = Cluster::start().await;
    for name in ["a", "b", "c"] {
        create_pod(&c, name).await;
    }
    // `ListOptions.Limit <= 0` is "no limit" upstream (etcd store and watch cache alike).
    for limit in ["-1", "0", "-9223372036854775808"] {
        let got = send(c.http().get(format!("{}?limit={limit}", pods(&c)))).await;
        assert_eq!(got.0, 200, "limit={limit}: {}", got.1);
        assert_eq!(got.1["items"].as_array().unwrap().len(), 3, "limit={limit}");
        assert!(got.1["metadata"].get("continue").is_none(), "limit={limit}");
    }
    // Not an int64: the query parameter does not decode, 400.
    for limit in ["abc", "1.5", "9223372036854775808"] {
        let got = send(c.http().get(format!("{}?limit={limit}", pods(&c)))).await;
        assert_status(&got, 400, "BadRequest");
    }
}

/// The `Status` kube-apiserver answers for a resourceVersion it has not reached
/// (`storage.NewTooLargeResourceVersionError`): 504 Timeout with a `ResourceVersionTooLarge` cause.
#[track_caller]
fn assert_too_large(status: &Value, requested: i64) {
    assert_eq!(status["code"], 504, "{status}");
    assert_eq!(status["reason"], "Timeout", "{status}");
    let message = status["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "Timeout: Too large resource version: {requested}, current: "
        )),
        "{status}"
    );
    assert_eq!(
        status["details"]["causes"],
        json!([{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}]),
        "{status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_list_from_a_future_resource_version_time_out() {
    let c = Cluster::start().await;
    let p = create_pod(&c, "p").await;
    let at: i64 = p["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let ahead = at + 1_000_000;
    let http = c.http();

    // The watch cache waits up to 3 s for the revision, then gives up with a 504 that asks
    // the client to retry after a second.
    let started = Instant::now();
    let resp = http
        .get(format!("{}?resourceVersion={ahead}", pods(&c)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers().get("retry-after").unwrap(), "1");
    let got = (resp.status().as_u16(), resp.json::<Value>().await.unwrap());
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_status(&got, 504, "Timeout");
    assert_too_large(&got.1, ahead);
    assert_eq!(got.1["details"]["retryAfterSeconds"], 1, "{}", got.1);
    for query in ["resourceVersionMatch=NotOlderThan", "limit=1"] {
        let got = send(http.get(format!("{}?resourceVersion={ahead}&{query}", pods(&c)))).await;
        assert_too_large(&got.1, ahead);
    }
    let got = send(http.get(format!("{}/p?resourceVersion={ahead}", pods(&c)))).await;
    assert_too_large(&got.1, ahead);
    // An exact read of a revision etcd does not have yet is refused at once, without a retry
    // hint (etcd store: ErrFutureRev).
    let got = send(http.get(format!(
        "{}?resourceVersion={ahead}&resourceVersionMatch=Exact",
        pods(&c)
    )))
    .await;
    assert_too_large(&got.1, ahead);
    assert!(
        got.1["details"].get("retryAfterSeconds").is_none(),
        "{}",
        got.1
    );

    // Revisions already reached are served as before, without waiting.
    let started = Instant::now();
    let got = send(http.get(format!("{}?resourceVersion={at}", pods(&c)))).await;
    assert_eq!(got.0, 200, "{}", got.1);
    let got = send(http.get(format!("{}/p?resourceVersion={at}", pods(&c)))).await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// Sends SIGCONT to etcd when dropped, so a failing test never leaves it stopped.
struct Resume(u32);

impl Drop for Resume {
    fn drop(&mut self) {
        signal(self.0, nix::sys::signal::Signal::SIGCONT);
    }
}

/// kill(2): a fresh machine need not have kill(1) (procps).
fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let target = nix::unistd::Pid::from_raw(pid as i32);
    nix::sys::signal::kill(target, sig).unwrap_or_else(|e| panic!("kill {sig} {pid}: {e}"));
}

/// kill(2) returns once SIGSTOP is queued; each thread stops when it next runs. On a loaded
/// machine etcd could still answer a request sent right after, so wait until every thread of
/// the process is in state `T` (stopped).
fn wait_until_stopped(pid: u32) {
    let stopped = || {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("etcd's tasks");
        tasks.flatten().all(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            // the state follows the command's closing parenthesis
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('T'))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stopped() {
        assert!(Instant::now() < deadline, "etcd {pid} did not stop");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_unreachable_is_a_quick_503_and_the_server_recovers() {
    let c = Cluster::start().await;
    create_pod(&c, "before").await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    signal(c.etcd.pid(), nix::sys::signal::Signal::SIGSTOP);
    let resume = Resume(c.etcd.pid());
    wait_until_stopped(c.etcd.pid());
    for url in [format!("{}/before", pods(&c)), pods(&c)] {
        let start = Instant::now();
        let got = send(http.get(&url)).await;
        let took = start.elapsed();
        assert_status(&got, 503, "ServiceUnavailable");
        assert!(
            took <= Duration::from_secs(3),
            "GET {url} took {took:?} to fail"
        );
    }
    let start = Instant::now();
    let got = send(http.post(pods(&c)).json(&pod_json("during", json!({})))).await;
    assert_status(&got, 503, "ServiceUnavailable");
    assert!(
        start.elapsed() <= Duration::from_secs(3),
        "POST took {:?} to fail",
        start.elapsed()
    );

    drop(resume);
    // Same server, no restart: requests succeed again.
    wait_for(30, "GET to succeed after SIGCONT", || async {
        let got = send(http.get(format!("{}/before", pods(&c)))).await;
        (got.0 == 200).then_some(())
    })
    .await;
    let got = send(http.post(pods(&c)).json(&pod_json("after", json!({})))).await;
    assert_eq!(got.0, 201, "{}", got.1);
    let got = send(http.get(pods(&c))).await;
    let names: Vec<&str> = got.1["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    // "during" may or may not exist: a timed-out write can still commit once etcd resumes.
    assert!(
        names.contains(&"after") && names.contains(&"before"),
        "{names:?}"
    );
}
