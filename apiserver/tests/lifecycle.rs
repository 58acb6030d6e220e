//! Object lifecycles over raw HTTP: graceful pod deletion, finalizers, binding, eviction,
//! generation, the status and scale subresources, generateName, the two Event APIs, and the
//! Table view kubectl prints.

mod common;

use common::{assert_status, pod_json, send, Cluster, ClusterHttp};
use serde_json::{json, Value};

fn ns_url(c: &Cluster, group_version: &str, resource: &str) -> String {
    let root = if group_version == "v1" {
        "api".to_string()
    } else {
        "apis".to_string()
    };
    format!(
        "{}/{root}/{group_version}/namespaces/default/{resource}",
        c.url()
    )
}

fn pods(c: &Cluster) -> String {
    ns_url(c, "v1", "pods")
}

fn deployments(c: &Cluster) -> String {
    ns_url(c, "apps/v1", "deployments")
}

async fn post(c: &Cluster, url: &str, body: Value) -> Value {
    let got = send(c.http().post(url).json(&body)).await;
    assert_eq!(got.0, 201, "POST {url}: {}", got.1);
    got.1
}

async fn get(c: &Cluster, url: &str) -> Value {
    let got = send(c.http().get(url)).await;
    assert_eq!(got.0, 200, "GET {url}: {}", got.1);
    got.1
}

async fn merge_patch(c: &Cluster, url: &str, patch: Value) -> (u16, Value) {
    send(
        c.http()
            .patch(url)
            .header("content-type", "application/merge-patch+json")
            .body(patch.to_string()),
    )
    .await
}

async fn bind(c: &Cluster, pod: &str, node: &str) -> (u16, Value) {
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": pod},
                         "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
    send(
        c.http()
            .post(format!("{}/{pod}/binding", pods(c)))
            .json(&binding),
    )
    .await
}

fn deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"team": "a"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
        }
    })
}

fn generation(obj: &Value) -> i64 {
    obj["metadata"]["generation"].as_i64().expect("generation")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_pods_are_deleted_gracefully_unbound_pods_at_once() {
    let c = Cluster::start().await;
    let http = c.http();
    post(&c, &pods(&c), pod_json("loose", json!({}))).await;
    let got = send(http.delete(format!("{}/loose", pods(&c)))).await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert_status(
        &send(http.get(format!("{}/loose", pods(&c)))).await,
        404,
        "NotFound",
    );

    post(&c, &pods(&c), pod_json("p", json!({}))).await;
    assert_eq!(bind(&c, "p", "n1").await.0, 201);
    let got = send(http.delete(format!("{}/p", pods(&c)))).await;
    assert_eq!(got.0, 200, "{}", got.1);
    let marked = get(&c, &format!("{}/p", pods(&c))).await;
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{marked}"
    );
    assert_eq!(
        marked["metadata"]["deletionGracePeriodSeconds"], 30,
        "{marked}"
    );
    assert_eq!(
        got.1["metadata"]["deletionTimestamp"],
        marked["metadata"]["deletionTimestamp"]
    );

    // A shorter grace period shortens; a longer one does not lengthen.
    send(http.delete(format!("{}/p?gracePeriodSeconds=10", pods(&c)))).await;
    let marked = get(&c, &format!("{}/p", pods(&c))).await;
    assert_eq!(
        marked["metadata"]["deletionGracePeriodSeconds"], 10,
        "{marked}"
    );
    send(http.delete(format!("{}/p?gracePeriodSeconds=60", pods(&c)))).await;
    let marked = get(&c, &format!("{}/p", pods(&c))).await;
    assert_eq!(
        marked["metadata"]["deletionGracePeriodSeconds"], 10,
        "{marked}"
    );

    // The kubelet's final delete.
    let got = send(
        http.delete(format!("{}/p", pods(&c)))
            .json(&json!({"gracePeriodSeconds": 0})),
    )
    .await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert_status(
        &send(http.get(format!("{}/p", pods(&c)))).await,
        404,
        "NotFound",
    );

    // A finished pod has nothing to stop.
    post(&c, &pods(&c), pod_json("done", json!({}))).await;
    assert_eq!(bind(&c, "done", "n1").await.0, 201);
    let mut status = get(&c, &format!("{}/done", pods(&c))).await;
    status["status"]["phase"] = json!("Succeeded");
    let got = send(http.put(format!("{}/done/status", pods(&c))).json(&status)).await;
    assert_eq!(got.0, 200, "{}", got.1);
    send(http.delete(format!("{}/done", pods(&c)))).await;
    assert_status(
        &send(http.get(format!("{}/done", pods(&c)))).await,
        404,
        "NotFound",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_hold_an_object_until_removed() {
    let c = Cluster::start().await;
    let http = c.http();
    let mut d = deployment("held");
    d["metadata"]["finalizers"] = json!(["example.com/hold"]);
    post(&c, &deployments(&c), d).await;
    let url = format!("{}/held", deployments(&c));
    let got = send(http.delete(&url)).await;
    assert_eq!(got.0, 200, "{}", got.1);
    let held = get(&c, &url).await;
    assert!(held["metadata"]["deletionTimestamp"].is_string(), "{held}");
    assert_eq!(held["metadata"]["finalizers"], json!(["example.com/hold"]));
    // Deleting again changes nothing.
    send(http.delete(&url)).await;
    let again = get(&c, &url).await;
    assert_eq!(
        again["metadata"]["resourceVersion"],
        held["metadata"]["resourceVersion"]
    );
    // No new finalizers once deletion has started.
    let got = merge_patch(
        &c,
        &url,
        json!({"metadata": {"finalizers": ["example.com/hold", "example.com/late"]}}),
    )
    .await;
    assert_status(&got, 422, "Invalid");
    assert_eq!(
        got.1["details"]["causes"][0]["field"], "metadata.finalizers",
        "{}",
        got.1
    );

    // The finalizer's owner removes it: the object is gone.
    let mut released = held.clone();
    released["metadata"]["finalizers"] = json!([]);
    let got = send(http.put(&url).json(&released)).await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert_status(&send(http.get(&url)).await, 404, "NotFound");

    // Same with a patch, and with two finalizers removed one at a time.
    let mut d = deployment("two");
    d["metadata"]["finalizers"] = json!(["a.example.com/x", "b.example.com/y"]);
    post(&c, &deployments(&c), d).await;
    let url = format!("{}/two", deployments(&c));
    send(http.delete(&url)).await;
    let got = merge_patch(
        &c,
        &url,
        json!({"metadata": {"finalizers": ["b.example.com/y"]}}),
    )
    .await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert!(get(&c, &url).await["metadata"]["deletionTimestamp"].is_string());
    let got = merge_patch(&c, &url, json!({"metadata": {"finalizers": null}})).await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert_status(&send(http.get(&url)).await, 404, "NotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_sets_the_node_once() {
    let c = Cluster::start().await;
    post(&c, &pods(&c), pod_json("p", json!({}))).await;
    let got = bind(&c, "p", "n1").await;
    assert_eq!(got.0, 201, "{}", got.1);
    assert_eq!(got.1["kind"], "Status");
    assert_eq!(got.1["status"], "Success");
    let pod = get(&c, &format!("{}/p", pods(&c))).await;
    assert_eq!(pod["spec"]["nodeName"], "n1");
    let conditions = pod["status"]["conditions"].as_array().expect("conditions");
    let scheduled = conditions
        .iter()
        .find(|c| c["type"] == "PodScheduled")
        .expect("PodScheduled");
    assert_eq!(scheduled["status"], "True");

    let got = bind(&c, "p", "n2").await;
    assert_status(&got, 409, "Conflict");
    assert_eq!(
        got.1["message"],
        "Operation cannot be fulfilled on pods/binding \"p\": pod p is already assigned to node \"n1\""
    );
    assert_eq!(
        get(&c, &format!("{}/p", pods(&c))).await["spec"]["nodeName"],
        "n1"
    );

    assert_status(&bind(&c, "missing", "n1").await, 404, "NotFound");
    let got = send(
        c.http()
            .post(format!("{}/p/binding", pods(&c)))
            .json(&json!({"target": {}})),
    )
    .await;
    assert_status(&got, 400, "BadRequest");

    // A pod being deleted cannot be scheduled.
    let mut held = pod_json("held", json!({}));
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    post(&c, &pods(&c), held).await;
    send(c.http().delete(format!("{}/held", pods(&c)))).await;
    let got = bind(&c, "held", "n1").await;
    assert_status(&got, 409, "Conflict");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_deletes_the_pod() {
    let c = Cluster::start().await;
    let evict = |name: &str| {
        let body = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": "default"}});
        c.http()
            .post(format!("{}/{name}/eviction", pods(&c)))
            .json(&body)
    };
    post(&c, &pods(&c), pod_json("idle", json!({}))).await;
    let got = send(evict("idle")).await;
    assert_eq!(got.0, 201, "{}", got.1);
    assert_eq!(got.1["kind"], "Status");
    assert_eq!(got.1["status"], "Success");
    assert_status(
        &send(c.http().get(format!("{}/idle", pods(&c)))).await,
        404,
        "NotFound",
    );

    // A running pod is evicted gracefully: marked, then the kubelet finishes the job.
    post(&c, &pods(&c), pod_json("busy", json!({}))).await;
    bind(&c, "busy", "n1").await;
    let got = send(evict("busy")).await;
    assert_eq!(got.0, 201, "{}", got.1);
    let pod = get(&c, &format!("{}/busy", pods(&c))).await;
    assert!(pod["metadata"]["deletionTimestamp"].is_string(), "{pod}");

    assert_status(&send(evict("missing")).await, 404, "NotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generation_counts_spec_changes_only() {
    let c = Cluster::start().await;
    let created = post(&c, &deployments(&c), deployment("web")).await;
    assert_eq!(generation(&created), 1);
    let url = format!("{}/web", deployments(&c));

    let (code, labelled) = merge_patch(
        &c,
        &url,
        json!({"metadata": {"labels": {"extra": "x"}, "annotations": {"a": "b"}}}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(generation(&labelled), 1, "metadata is not spec");

    let mut status = labelled.clone();
    status["status"] = json!({"replicas": 2, "observedGeneration": 1});
    let got = send(c.http().put(format!("{url}/status")).json(&status)).await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert_eq!(generation(&got.1), 1, "status is not spec");
    assert_eq!(got.1["status"]["replicas"], 2);

    let (code, scaled) = merge_patch(&c, &url, json!({"spec": {"replicas": 3}})).await;
    assert_eq!(code, 200);
    assert_eq!(generation(&scaled), 2);
    let mut replaced = scaled.clone();
    replaced["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    let got = send(c.http().put(&url).json(&replaced)).await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert_eq!(generation(&got.1), 3);
    // A PUT of the same object is a no-op.
    let same = send(c.http().put(&url).json(&got.1)).await;
    assert_eq!(generation(&same.1), 3);
    assert_eq!(
        same.1["metadata"]["resourceVersion"],
        got.1["metadata"]["resourceVersion"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_main_resource_cannot_write_each_other() {
    let c = Cluster::start().await;
    let created = post(&c, &deployments(&c), deployment("web")).await;
    let url = format!("{}/web", deployments(&c));

    // Through /status: the status changes, the spec and labels do not.
    let mut both = created.clone();
    both["spec"]["replicas"] = json!(9);
    both["metadata"]["labels"] = json!({"team": "b"});
    both["status"] = json!({"replicas": 1, "readyReplicas": 1});
    let got = send(c.http().put(format!("{url}/status")).json(&both)).await;
    assert_eq!(got.0, 200, "{}", got.1);
    let now = get(&c, &url).await;
    assert_eq!(now["spec"]["replicas"], 2);
    assert_eq!(now["metadata"]["labels"]["team"], "a");
    assert_eq!(now["status"]["readyReplicas"], 1);

    // Through the main resource: the spec changes, the status does not.
    let mut both = now.clone();
    both["spec"]["replicas"] = json!(4);
    both["status"] = json!({"replicas": 7, "readyReplicas": 7});
    let got = send(c.http().put(&url).json(&both)).await;
    assert_eq!(got.0, 200, "{}", got.1);
    let now = get(&c, &url).await;
    assert_eq!(now["spec"]["replicas"], 4);
    assert_eq!(now["status"]["readyReplicas"], 1);
    assert_eq!(now["status"]["replicas"], 1);

    // Same for patches.
    let (code, _) = merge_patch(&c, &url, json!({"status": {"readyReplicas": 5}})).await;
    assert_eq!(code, 200);
    assert_eq!(get(&c, &url).await["status"]["readyReplicas"], 1);
    let (code, _) = merge_patch(
        &c,
        &format!("{url}/status"),
        json!({"spec": {"replicas": 1}, "status": {"readyReplicas": 3}}),
    )
    .await;
    assert_eq!(code, 200);
    let now = get(&c, &url).await;
    assert_eq!(
        (
            now["spec"]["replicas"].as_i64(),
            now["status"]["readyReplicas"].as_i64()
        ),
        (Some(4), Some(3))
    );

    // GET of /status is the whole object.
    let status = get(&c, &format!("{url}/status")).await;
    assert_eq!(status["kind"], "Deployment");
    assert_eq!(status["status"]["readyReplicas"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_subresource_reads_and_writes_replicas() {
    let c = Cluster::start().await;
    post(&c, &deployments(&c), deployment("web")).await;
    let url = format!("{}/web/scale", deployments(&c));
    let scale = get(&c, &url).await;
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["metadata"]["name"], "web");
    assert_eq!(scale["spec"]["replicas"], 2);
    assert_eq!(
        scale["status"]["selector"], "app=web",
        "the selector is a string: {scale}"
    );

    let mut put = scale.clone();
    put["spec"]["replicas"] = json!(5);
    let got = send(c.http().put(&url).json(&put)).await;
    assert_eq!(got.0, 200, "{}", got.1);
    assert_eq!(got.1["spec"]["replicas"], 5);
    let d = get(&c, &format!("{}/web", deployments(&c))).await;
    assert_eq!(d["spec"]["replicas"], 5);
    assert_eq!(generation(&d), 2);
    // The old Scale's resourceVersion is stale now.
    put["spec"]["replicas"] = json!(6);
    assert_status(&send(c.http().put(&url).json(&put)).await, 409, "Conflict");

    let (code, patched) = merge_patch(&c, &url, json!({"spec": {"replicas": 1}})).await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["kind"], "Scale");
    assert_eq!(patched["spec"]["replicas"], 1);
    assert_eq!(
        get(&c, &format!("{}/web", deployments(&c))).await["spec"]["replicas"],
        1
    );
    let (code, bad) = merge_patch(&c, &url, json!({"spec": {"replicas": -1}})).await;
    assert_eq!(code, 422, "{bad}");

    // ReplicaSets have one too; a missing object is 404.
    let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "rs"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "rs"}},
                 "template": {"metadata": {"labels": {"app": "rs"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}});
    post(&c, &ns_url(&c, "apps/v1", "replicasets"), rs).await;
    let scale = get(
        &c,
        &format!("{}/rs/scale", ns_url(&c, "apps/v1", "replicasets")),
    )
    .await;
    assert_eq!(scale["status"]["selector"], "app=rs");
    assert_status(
        &send(c.http().get(format!("{}/nope/scale", deployments(&c)))).await,
        404,
        "NotFound",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_name_gives_unique_names() {
    let c = Cluster::start().await;
    let mut names = Vec::new();
    for _ in 0..3 {
        let body = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "web-"},
                          "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
        let created = post(&c, &pods(&c), body).await;
        let name = created["metadata"]["name"].as_str().unwrap().to_string();
        assert!(name.starts_with("web-") && name.len() > 4, "{name}");
        assert_eq!(created["metadata"]["generateName"], "web-");
        get(&c, &format!("{}/{name}", pods(&c))).await;
        names.push(name);
    }
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 3);
    // Neither name nor generateName: 422.
    let body = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}});
    let got = send(c.http().post(pods(&c)).json(&body)).await;
    assert_status(&got, 422, "Invalid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_served_by_both_event_apis() {
    let c = Cluster::start().await;
    let pod = post(&c, &pods(&c), pod_json("p", json!({}))).await;
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let core = ns_url(&c, "v1", "events");
    let v1 = ns_url(&c, "events.k8s.io/v1", "events");

    // Written as core/v1 (kubelet, kubectl describe), read as events.k8s.io/v1.
    post(
        &c,
        &core,
        json!({
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "p.1"},
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "p", "uid": uid},
            "reason": "Scheduled", "message": "assigned to n1", "type": "Normal",
            "source": {"component": "scheduler"}, "count": 1
        }),
    )
    .await;
    let ev = get(&c, &format!("{v1}/p.1")).await;
    assert_eq!(ev["apiVersion"], "events.k8s.io/v1");
    assert_eq!(ev["regarding"]["name"], "p");
    assert_eq!(ev["note"], "assigned to n1");
    assert_eq!(ev["deprecatedCount"], 1);
    assert!(
        ev.get("involvedObject").is_none() && ev.get("message").is_none(),
        "{ev}"
    );

    // Written as events.k8s.io/v1 (kube-rs Recorder), read as core/v1 with describe's selectors.
    post(
        &c,
        &v1,
        json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "p.2"},
            "eventTime": "2025-01-01T00:00:00.000000Z",
            "regarding": {"kind": "Pod", "namespace": "default", "name": "p", "uid": uid},
            "reportingController": "example.com/ctl", "reportingInstance": "ctl-1",
            "action": "Reconcile", "reason": "Synced", "note": "all good", "type": "Normal"
        }),
    )
    .await;
    let ev = get(&c, &format!("{core}/p.2")).await;
    assert_eq!(ev["apiVersion"], "v1");
    assert_eq!(ev["involvedObject"]["name"], "p");
    assert_eq!(ev["message"], "all good");
    assert_eq!(ev["reportingComponent"], "example.com/ctl");

    let selector = format!(
        "involvedObject.name=p,involvedObject.namespace=default,involvedObject.kind=Pod,involvedObject.uid={uid}"
    );
    let list = send(
        c.http()
            .get(&core)
            .query(&[("fieldSelector", selector.as_str())]),
    )
    .await
    .1;
    let mut names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["metadata"]["name"].as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["p.1", "p.2"], "{list}");
    let list = send(
        c.http()
            .get(&core)
            .query(&[("fieldSelector", "reason=Synced")]),
    )
    .await
    .1;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    let list = send(
        c.http()
            .get(&v1)
            .query(&[("fieldSelector", "regarding.name=p")]),
    )
    .await
    .1;
    assert_eq!(list["kind"], "EventList");
    assert_eq!(list["apiVersion"], "events.k8s.io/v1");
    assert_eq!(list["items"].as_array().unwrap().len(), 2, "{list}");
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["regarding"]["uid"] == uid.as_str()),
        "{list}"
    );
    let list = send(
        c.http()
            .get(&core)
            .query(&[("fieldSelector", "involvedObject.name=other")]),
    )
    .await
    .1;
    assert_eq!(list["items"], json!([]));

    // A watch of the events.k8s.io view selects by `regarding.*` too.
    let mut w = common::WatchStream::open(&format!(
        "{v1}?watch=true&fieldSelector=regarding.name%3Dp,regarding.kind%3DPod"
    ))
    .await;
    for _ in 0..2 {
        let ev = w.next_change().await;
        assert_eq!(ev["type"], "ADDED", "{ev}");
        assert_eq!(ev["object"]["apiVersion"], "events.k8s.io/v1", "{ev}");
        assert_eq!(ev["object"]["regarding"]["name"], "p", "{ev}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_view_has_the_real_pod_columns() {
    let c = Cluster::start().await;
    post(&c, &pods(&c), pod_json("p", json!({"app": "web"}))).await;
    bind(&c, "p", "n1").await;
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    let got = send(c.http().get(pods(&c)).header("accept", accept)).await;
    assert_eq!(got.0, 200, "{}", got.1);
    let t = got.1;
    assert_eq!(t["kind"], "Table", "{t}");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert!(
        t["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{t}"
    );
    let columns: Vec<(&str, i64)> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["priority"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        columns,
        [
            ("Name", 0),
            ("Ready", 0),
            ("Status", 0),
            ("Restarts", 0),
            ("Age", 0),
            ("IP", 1),
            ("Node", 1),
            ("Nominated Node", 1),
            ("Readiness Gates", 1)
        ]
    );
    let rows = t["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    let cells = rows[0]["cells"].as_array().unwrap();
    assert_eq!(cells.len(), columns.len());
    assert_eq!(cells[0], "p");
    assert_eq!(cells[1], "0/1");
    assert_eq!(cells[2], "Pending");
    assert_eq!(
        cells[3], "0",
        "Restarts is a string column, as in kube-apiserver"
    );
    assert_eq!(cells[6], "n1");
    assert_eq!(rows[0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(rows[0]["object"]["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(rows[0]["object"]["metadata"]["labels"]["app"], "web");

    // One object as a Table too; a plain Accept still gets the object.
    let got = send(
        c.http()
            .get(format!("{}/p", pods(&c)))
            .header("accept", accept),
    )
    .await;
    assert_eq!(got.1["kind"], "Table");
    assert_eq!(got.1["rows"][0]["cells"][0], "p");
    let got = send(
        c.http()
            .get(format!("{}/p", pods(&c)))
            .header("accept", "application/json"),
    )
    .await;
    assert_eq!(got.1["kind"], "Pod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_namespaces_refuse_new_content_and_collections_delete_by_selector() {
    let c = Cluster::start().await;
    let http = c.http();
    let namespaces = format!("{}/api/v1/namespaces", c.url());
    post(
        &c,
        &namespaces,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}),
    )
    .await;
    let team_pods = format!("{namespaces}/team/pods");
    for (name, tier) in [("a", "front"), ("b", "front"), ("c", "back")] {
        post(&c, &team_pods, pod_json(name, json!({"tier": tier}))).await;
    }
    // dryRun=All stores nothing.
    post(
        &c,
        &format!("{team_pods}?dryRun=All"),
        pod_json("dry", json!({})),
    )
    .await;
    assert_status(
        &send(http.get(format!("{team_pods}/dry"))).await,
        404,
        "NotFound",
    );

    let got = send(http.delete(format!("{team_pods}?labelSelector=tier%3Dfront"))).await;
    assert_eq!(got.0, 200, "{}", got.1);
    let left = get(&c, &team_pods).await;
    let names: Vec<&str> = left["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["c"]);

    // The namespace waits for its finalizer (the namespace controller) and refuses new objects.
    let got = send(http.delete(format!("{namespaces}/team"))).await;
    assert_eq!(got.0, 200, "{}", got.1);
    let ns = get(&c, &format!("{namespaces}/team")).await;
    assert_eq!(ns["status"]["phase"], "Terminating");
    assert!(ns["metadata"]["deletionTimestamp"].is_string());
    let got = send(http.post(&team_pods).json(&pod_json("late", json!({})))).await;
    assert_status(&got, 403, "Forbidden");
    assert_eq!(
        got.1["message"],
        "unable to create new content in namespace team because it is being terminated"
    );
    // Existing content is still readable.
    get(&c, &format!("{team_pods}/c")).await;
}
