//! `nodes/{name}/proxy/{path}` without a kubelet: what the apiserver decides itself. It is
//! listed in discovery as kube-apiserver lists it, an unknown node is a 404 `Status`, a Node
//! that reports no address a 400, and a kubelet that does not answer a 503. The relay to a
//! real kubelet (`kubectl get --raw .../proxy/stats/summary`, the `/inspect` views) is tested
//! in `kubelet/tests/kubelet.rs`, where a kubelet runs.

mod common;

use common::{assert_status, send, Cluster, ClusterHttp};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_proxy_is_in_discovery() {
    let c = Cluster::start().await;
    let (code, list) = send(c.http().get(format!("{}/api/v1", c.url()))).await;
    assert_eq!(code, 200);
    let proxy = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "nodes/proxy")
        .unwrap_or_else(|| panic!("no nodes/proxy in {list}"));
    assert_eq!(proxy["kind"], "NodeProxyOptions");
    assert_eq!(proxy["namespaced"], false);
    assert!(proxy["verbs"].as_array().unwrap().contains(&json!("get")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_to_an_unknown_unaddressed_or_silent_node_is_a_status() {
    let c = Cluster::start().await;
    let http = c.http();
    let url = |node: &str, path: &str| format!("{}/api/v1/nodes/{node}/proxy{path}", c.url());

    let got = send(http.get(url("nope", "/stats/summary"))).await;
    assert_status(&got, 404, "NotFound");
    assert_eq!(got.1["details"]["name"], "nope");
    assert_eq!(got.1["details"]["kind"], "nodes");
    // also with no path, and for other methods
    assert_status(&send(http.get(url("nope", ""))).await, 404, "NotFound");
    assert_status(&send(http.post(url("nope", "/x"))).await, 404, "NotFound");

    let node = |name: &str, status: serde_json::Value| json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "status": status});
    let nodes = format!("{}/api/v1/nodes", c.url());
    let got = send(http.post(&nodes).json(&node("bare", json!({})))).await;
    assert_eq!(got.0, 201, "{}", got.1);
    let got = send(http.get(url("bare", "/stats/summary"))).await;
    assert_status(&got, 400, "BadRequest");
    assert!(
        got.1["message"].as_str().unwrap().contains("no address"),
        "{}",
        got.1
    );

    // a Node whose kubelet port nobody listens on
    let port = testkit::free_port();
    let silent = node(
        "silent",
        json!({"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
               "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}),
    );
    let got = send(http.post(&nodes).json(&silent)).await;
    assert_eq!(got.0, 201, "{}", got.1);
    let got = send(http.get(url("silent", "/stats/summary?x=1"))).await;
    assert_status(&got, 503, "ServiceUnavailable");
}
