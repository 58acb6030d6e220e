//! The EndpointSlice reconciler against a fake apiserver (`crate::testing`): each test fills
//! the pod, slice and Endpoints caches, runs one sync of a Service and checks every write.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::controller::Action;
use serde_json::{json, Value};

use super::{error_policy, reconcile, Context};
use crate::conflict::{self, MaybeConflict};
use crate::testing::objects::{controller_ref, pod, service};
use crate::testing::{self, FakeApi};

const SLICES: &str = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";
const ENDPOINTS: &str = "/api/v1/namespaces/default/endpoints";

/// A context over synced caches holding these objects, and the fake apiserver behind it.
fn context(
    pods: Vec<Pod>,
    slices: Vec<EndpointSlice>,
    endpoints: Vec<Endpoints>,
) -> (Arc<Context>, FakeApi) {
    let (client, api) = testing::client();
    let ctx = Context {
        client,
        pods: testing::store(pods),
        slices: testing::store(slices),
        endpoints: testing::store(endpoints),
        expectations: Default::default(),
    };
    (Arc::new(ctx), api)
}

/// Run one sync in a task, as the controller's runner does.
fn sync(
    svc: &Service,
    ctx: &Arc<Context>,
) -> tokio::task::JoinHandle<Result<Action, super::Error>> {
    tokio::spawn(reconcile(Arc::new(svc.clone()), ctx.clone()))
}

/// An object as the apiserver stored it: the answer to a write, with a resourceVersion.
fn stored<K: serde::de::DeserializeOwned>(mut written: Value) -> K {
    written["metadata"]["resourceVersion"] = "7".into();
    written["metadata"]["uid"] = written["metadata"]["name"]
        .as_str()
        .map(|n| format!("uid-{n}"))
        .into();
    serde_json::from_value(written).expect("a valid object")
}

fn endpoint(ip: &str, pod: &str, node: Option<&str>, conditions: [bool; 3]) -> Value {
    let [ready, serving, terminating] = conditions;
    let mut e = json!({
        "addresses": [ip],
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
        "targetRef": {"kind": "Pod", "namespace": "default", "name": pod, "uid": format!("uid-{pod}")},
    });
    if let Some(node) = node {
        e["nodeName"] = node.into();
    }
    e
}

fn address(ip: &str, pod: &str) -> Value {
    json!({"ip": ip, "nodeName": "n",
           "targetRef": {"kind": "Pod", "namespace": "default", "name": pod, "uid": format!("uid-{pod}")}})
}

#[tokio::test]
async fn ready_not_ready_and_terminating_pods_with_an_ip_become_endpoints() {
    let svc = service("web").build();
    let pods = vec![
        pod("web-ready")
            .running_on("n")
            .ip("10.244.0.2")
            .ready_since(1)
            .build(),
        pod("web-starting").running_on("n").ip("10.244.0.3").build(),
        pod("web-leaving")
            .running_on("n")
            .ip("10.244.0.4")
            .ready_since(1)
            .terminating()
            .build(),
        pod("web-no-ip").running_on("n").build(),
        pod("db")
            .labels(&[("app", "db")])
            .running_on("n")
            .ip("10.244.0.9")
            .build(),
    ];
    let (ctx, mut api) = context(pods, vec![], vec![]);
    let synced = sync(&svc, &ctx);

    let create = api.expect(Method::POST, SLICES).await;
    let slice = &create.body;
    assert_eq!(slice["metadata"]["generateName"], "web-");
    assert_eq!(
        slice["metadata"]["labels"],
        json!({"kubernetes.io/service-name": "web",
               "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"})
    );
    assert_eq!(
        slice["metadata"]["ownerReferences"],
        json!([controller_ref(&svc)])
    );
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(
        slice["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        slice["endpoints"],
        json!([
            endpoint("10.244.0.2", "web-ready", Some("n"), [true, true, false]),
            endpoint(
                "10.244.0.3",
                "web-starting",
                Some("n"),
                [false, false, false]
            ),
            // Still serving while it drains, but never "ready" once terminating.
            endpoint("10.244.0.4", "web-leaving", Some("n"), [false, true, true]),
        ])
    );
    create.created_as("web-abcde");

    // The Endpoints object leaves the terminating pod out.
    let create = api.expect(Method::POST, ENDPOINTS).await;
    assert_eq!(create.body["metadata"]["name"], "web");
    assert_eq!(
        create.body["subsets"],
        json!([{
            "addresses": [address("10.244.0.2", "web-ready")],
            "notReadyAddresses": [address("10.244.0.3", "web-starting")],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        }])
    );
    create.created_as("web");
    let done = api.finish(synced).await.unwrap();
    assert_eq!(done, Action::requeue(Duration::from_secs(300)));
}

#[tokio::test]
async fn a_named_target_port_is_resolved_per_pod_and_a_pod_without_it_is_left_out_of_it() {
    let svc = service("web")
        .named_port("metrics", 9090, "metrics")
        .build();
    let pods = vec![
        pod("web-a")
            .running_on("n")
            .ip("10.244.0.2")
            .ready_since(1)
            .container_port("metrics", 9100)
            .build(),
        pod("web-b")
            .running_on("n")
            .ip("10.244.0.3")
            .ready_since(1)
            .build(),
    ];
    let (ctx, mut api) = context(pods, vec![], vec![]);
    let synced = sync(&svc, &ctx);

    // One slice per list of ports: web-b serves only http.
    let first = api.expect(Method::POST, SLICES).await;
    assert_eq!(
        first.body["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );
    assert_eq!(first.body["endpoints"][0]["targetRef"]["name"], "web-b");
    assert_eq!(first.body["endpoints"].as_array().unwrap().len(), 1);
    first.created_as("web-b1");
    let second = api.expect(Method::POST, SLICES).await;
    assert_eq!(
        second.body["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"},
               {"name": "metrics", "port": 9100, "protocol": "TCP"}])
    );
    assert_eq!(second.body["endpoints"][0]["targetRef"]["name"], "web-a");
    assert_eq!(second.body["endpoints"].as_array().unwrap().len(), 1);
    second.created_as("web-a1");

    // Endpoints: the addresses offering the same ports form one subset.
    let create = api.expect(Method::POST, ENDPOINTS).await;
    assert_eq!(
        create.body["subsets"],
        json!([
            {"addresses": [address("10.244.0.2", "web-a")],
             "ports": [{"name": "metrics", "port": 9100, "protocol": "TCP"}]},
            {"addresses": [address("10.244.0.2", "web-a"), address("10.244.0.3", "web-b")],
             "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]},
        ])
    );
    create.created_as("web");
    api.finish(synced).await.unwrap();
}

#[tokio::test]
async fn a_target_port_name_no_container_has_leaves_the_pods_out_of_that_port() {
    let svc = service("web").named_port("grpc", 9000, "grpc").build();
    let pods = vec![pod("web-a")
        .running_on("n")
        .ip("10.244.0.2")
        .ready_since(1)
        .build()];
    let (ctx, mut api) = context(pods, vec![], vec![]);
    let synced = sync(&svc, &ctx);
    let create = api.expect(Method::POST, SLICES).await;
    assert_eq!(
        create.body["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        create.body["endpoints"][0]["addresses"],
        json!(["10.244.0.2"])
    );
    create.created_as("web-abcde");
    let create = api.expect(Method::POST, ENDPOINTS).await;
    assert_eq!(
        create.body["subsets"][0]["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );
    create.created_as("web");
    api.finish(synced).await.unwrap();
}

#[tokio::test]
async fn a_service_selecting_nothing_gets_an_empty_slice_not_an_error() {
    let svc = service("web").selector(&[("app", "nothing")]).build();
    let pods = vec![pod("web-a")
        .running_on("n")
        .ip("10.244.0.2")
        .ready_since(1)
        .build()];
    let (ctx, mut api) = context(pods, vec![], vec![]);
    let synced = sync(&svc, &ctx);
    let create = api.expect(Method::POST, SLICES).await;
    assert_eq!(create.body["endpoints"], json!([]));
    assert_eq!(create.body["ports"], json!([]));
    create.created_as("web-abcde");
    let create = api.expect(Method::POST, ENDPOINTS).await;
    assert_eq!(create.body["subsets"], json!([]));
    create.created_as("web");
    assert!(api.finish(synced).await.is_ok());
}

#[tokio::test]
async fn nothing_is_written_when_nothing_changed_and_a_readiness_change_is_updated_in_place() {
    let svc = service("web").label("tier", "front").build();
    let ready = pod("web-a").running_on("n").ip("10.244.0.2").ready_since(1);
    let (ctx, mut api) = context(vec![ready.build()], vec![], vec![]);
    let synced = sync(&svc, &ctx);
    let slice: EndpointSlice = stored(
        api.expect(Method::POST, SLICES)
            .await
            .created_as("web-abcde"),
    );
    let endpoints: Endpoints = stored(api.expect(Method::POST, ENDPOINTS).await.created_as("web"));
    api.finish(synced).await.unwrap();
    assert_eq!(slice.metadata.labels.as_ref().unwrap()["tier"], "front");

    // The caches show what was written: the next sync writes nothing.
    let (ctx, mut api) = context(
        vec![pod("web-a")
            .running_on("n")
            .ip("10.244.0.2")
            .ready_since(1)
            .build()],
        vec![slice.clone()],
        vec![endpoints.clone()],
    );
    api.finish(sync(&svc, &ctx)).await.unwrap();

    // The pod stops being ready: the same slice and Endpoints are rewritten, guarded by
    // their resourceVersions.
    let (ctx, mut api) = context(
        vec![pod("web-a").running_on("n").ip("10.244.0.2").build()],
        vec![slice],
        vec![endpoints],
    );
    let synced = sync(&svc, &ctx);
    let update = api
        .expect(Method::PUT, &format!("{SLICES}/web-abcde"))
        .await;
    assert_eq!(update.body["metadata"]["resourceVersion"], "7");
    assert_eq!(update.body["endpoints"][0]["conditions"]["ready"], false);
    let body = update.body.clone();
    update.ok(&body);
    let update = api.expect(Method::PUT, &format!("{ENDPOINTS}/web")).await;
    assert_eq!(update.body["metadata"]["resourceVersion"], "7");
    assert_eq!(
        update.body["subsets"][0]["notReadyAddresses"][0]["ip"],
        "10.244.0.2"
    );
    assert!(update.body["subsets"][0].get("addresses").is_none());
    let body = update.body.clone();
    update.ok(&body);
    api.finish(synced).await.unwrap();
}

#[tokio::test]
async fn a_stale_slice_update_is_retried_at_once() {
    let svc = service("web").build();
    let mut slice = super::slices::new_slice(
        &svc,
        &super::slices::Group {
            ports: vec![],
            endpoints: vec![],
        },
    );
    slice.metadata.name = Some("web-abcde".into());
    slice.metadata.resource_version = Some("3".into());
    let pods = vec![pod("web-a")
        .running_on("n")
        .ip("10.244.0.2")
        .ready_since(1)
        .build()];
    let (ctx, mut api) = context(pods, vec![slice], vec![]);
    let synced = sync(&svc, &ctx);
    api.expect(Method::PUT, &format!("{SLICES}/web-abcde"))
        .await
        .fail(409, "Conflict");
    let err = api.finish(synced).await.unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert_eq!(
        error_policy(Arc::new(svc), &err, ctx),
        Action::requeue(conflict::REQUEUE)
    );
}

#[tokio::test]
async fn an_external_name_service_gets_no_endpoints_and_loses_our_slices() {
    let selecting = service("web").build();
    let mut slice = super::slices::new_slice(
        &selecting,
        &super::slices::Group {
            ports: vec![],
            endpoints: vec![],
        },
    );
    slice.metadata.name = Some("web-abcde".into());
    slice.metadata.uid = Some("uid-web-abcde".into());
    let svc = service("web").external_name("example.com").build();
    let pods = vec![pod("web-a").running_on("n").ip("10.244.0.2").build()];
    let (ctx, mut api) = context(pods, vec![slice.clone()], vec![]);
    let synced = sync(&svc, &ctx);
    api.expect(Method::DELETE, &format!("{SLICES}/web-abcde"))
        .await
        .ok(&slice);
    let done = api.finish(synced).await.unwrap();
    assert_eq!(done, Action::await_change());
}

#[tokio::test]
async fn a_service_without_a_selector_keeps_the_slices_someone_else_manages() {
    // kube-dns in a lab: a Service without a selector whose slice `minikctl` writes, beside
    // a slice of ours left from when the Service had a selector
    use kube::ResourceExt;
    let selecting = service("web").build();
    let group = super::slices::Group {
        ports: vec![],
        endpoints: vec![],
    };
    let mut ours = super::slices::new_slice(&selecting, &group);
    ours.metadata.name = Some("web-abcde".into());
    ours.metadata.uid = Some("uid-web-abcde".into());
    let mut theirs = ours.clone();
    theirs.metadata.name = Some("web-by-hand".into());
    theirs.metadata.uid = Some("uid-web-by-hand".into());
    theirs.metadata.owner_references = None;
    theirs
        .labels_mut()
        .insert(super::MANAGED_BY_LABEL.into(), "minikctl".into());
    let svc = service("web").selector(&[]).build();
    let pods = vec![pod("web-a").running_on("n").ip("10.244.0.2").build()];
    let (ctx, mut api) = context(pods, vec![ours.clone(), theirs], vec![]);
    let synced = sync(&svc, &ctx);
    api.expect(Method::DELETE, &format!("{SLICES}/web-abcde"))
        .await
        .ok(&ours);
    // no other write: neither their slice nor an Endpoints object
    let done = api.finish(synced).await.unwrap();
    assert_eq!(done, Action::await_change());
}
