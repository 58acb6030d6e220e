//! The EndpointSlice controller against a real apiserver: a Service and its pods created
//! through the API, and the Service's EndpointSlice and Endpoints following the pods as they
//! get IPs, become ready, stop being ready and go, and following the Service as it changes and
//! when it is deleted.

mod common;

use common::*;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::{json, Value};

/// A Service `web` selecting `app=web`, port `http` 80 to the pods' port named `http`.
fn web_service() -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "labels": {"tier": "front"}},
        "spec": {
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }))
    .unwrap()
}

/// A pod labelled `app=web` serving its port `http` on 8080.
fn web_pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "main", "image": "busybox",
                                 "ports": [{"name": "http", "containerPort": 8080}]}]},
    }))
    .unwrap()
}

/// What a kubelet reports once the pod's sandbox has an address.
async fn give_ip(pods: &Api<Pod>, name: &str, ip: &str) {
    let status = json!({"status": {"podIP": ip, "podIPs": [{"ip": ip}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
}

/// The Service's slices, as JSON.
async fn slices(client: &kube::Client) -> Vec<Value> {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let list = api
        .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
        .await
        .unwrap();
    list.items
        .iter()
        .map(|s| serde_json::to_value(s).unwrap())
        .collect()
}

/// The one slice of the Service once `check` holds for it.
async fn wait_slice(client: &kube::Client, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    wait_for(30, what, || async {
        match slices(client).await.as_slice() {
            [one] if check(one) => Some(one.clone()),
            _ => None,
        }
    })
    .await
}

/// (address, ready) of each endpoint of a slice, in order.
fn endpoints_of(slice: &Value) -> Vec<(String, bool)> {
    slice["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let ip = e["addresses"][0].as_str().unwrap().to_string();
            (ip, e["conditions"]["ready"].as_bool().unwrap())
        })
        .collect()
}

/// The Endpoints object's (ready, not ready) addresses once `check` holds for them.
async fn wait_endpoints(
    client: &kube::Client,
    what: &str,
    check: impl Fn(&[String], &[String]) -> bool,
) -> Endpoints {
    let api: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    wait_for(30, what, || async {
        let ep = api.get_opt("web").await.unwrap()?;
        let ips = |ready: bool| -> Vec<String> {
            ep.subsets
                .iter()
                .flatten()
                .flat_map(|s| {
                    let list = if ready {
                        &s.addresses
                    } else {
                        &s.not_ready_addresses
                    };
                    list.iter()
                        .flatten()
                        .map(|a| a.ip.clone())
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        check(&ips(true), &ips(false)).then_some(ep.clone())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slice_and_the_endpoints_follow_the_pods_and_the_service() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let _ctrl = cluster.start_controllers(fast_config());
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let svc = services
        .create(&PostParams::default(), &web_service())
        .await
        .unwrap();
    for name in ["web-a", "web-b"] {
        pods.create(&PostParams::default(), &web_pod(name))
            .await
            .unwrap();
    }

    // Pods without an IP are no endpoints: one empty slice, owned by the Service.
    let slice = wait_slice(&client, "an empty slice", |s| s["endpoints"] == json!([])).await;
    assert!(slice["metadata"]["name"]
        .as_str()
        .unwrap()
        .starts_with("web-"));
    assert_eq!(slice["addressType"], "IPv4");
    let labels = &slice["metadata"]["labels"];
    assert_eq!(
        labels["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(labels["tier"], "front", "the Service's labels are copied");
    let owner = &slice["metadata"]["ownerReferences"][0];
    assert_eq!(
        (&owner["kind"], &owner["uid"], &owner["controller"]),
        (&json!("Service"), &json!(svc.uid().unwrap()), &json!(true))
    );

    // Addresses and readiness: both pods ready behind port 8080 (the name resolved).
    give_ip(&pods, "web-a", "10.244.0.2").await;
    give_ip(&pods, "web-b", "10.244.0.3").await;
    for p in live_pods(&client, "default", "app=web").await {
        mark_ready(&client, &p).await;
    }
    let slice = wait_slice(&client, "two ready endpoints", |s| {
        endpoints_of(s)
            == [
                ("10.244.0.2".to_string(), true),
                ("10.244.0.3".to_string(), true),
            ]
    })
    .await;
    assert_eq!(
        slice["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );
    assert_eq!(slice["endpoints"][0]["targetRef"]["name"], "web-a");
    let ep = wait_endpoints(&client, "two ready addresses", |ready, not_ready| {
        ready == ["10.244.0.2", "10.244.0.3"] && not_ready.is_empty()
    })
    .await;
    let port = &ep.subsets.as_ref().unwrap()[0].ports.as_ref().unwrap()[0];
    assert_eq!((port.name.as_deref(), port.port), (Some("http"), 8080));

    // A pod change that does not touch its endpoint wakes a sync that writes nothing: what
    // the apiserver stored compares equal to what the controller computes.
    let note = json!({"metadata": {"annotations": {"note": "unrelated"}}});
    pods.patch("web-a", &PatchParams::default(), &Patch::Merge(note))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let again = wait_slice(&client, "the same slice", |_| true).await;
    assert_eq!(
        again["metadata"]["resourceVersion"], slice["metadata"]["resourceVersion"],
        "an unchanged slice was rewritten"
    );
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    assert_eq!(
        endpoints.get("web").await.unwrap().resource_version(),
        ep.resource_version(),
        "unchanged Endpoints were rewritten"
    );

    // web-b stops being ready: it stays, not ready.
    let not_ready = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}});
    pods.patch_status("web-b", &PatchParams::default(), &Patch::Merge(not_ready))
        .await
        .unwrap();
    wait_slice(&client, "web-b not ready", |s| {
        endpoints_of(s)
            == [
                ("10.244.0.2".to_string(), true),
                ("10.244.0.3".to_string(), false),
            ]
    })
    .await;
    wait_endpoints(
        &client,
        "web-b among the not-ready addresses",
        |ready, not_ready| ready == ["10.244.0.2"] && not_ready == ["10.244.0.3"],
    )
    .await;

    // web-a goes.
    pods.delete("web-a", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    wait_slice(&client, "web-a gone", |s| {
        endpoints_of(s) == [("10.244.0.3".to_string(), false)]
    })
    .await;

    // The Service changes: a numeric targetPort.
    let ports = json!({"spec": {"ports": [{"name": "http", "port": 80, "targetPort": 9999}]}});
    services
        .patch("web", &PatchParams::default(), &Patch::Merge(ports))
        .await
        .unwrap();
    wait_slice(&client, "port 9999", |s| s["ports"][0]["port"] == 9999).await;

    // The Service goes: its slice (garbage collected) and its Endpoints go too.
    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    wait_for(30, "no slice left", || async {
        slices(&client).await.is_empty().then_some(())
    })
    .await;
    wait_for(30, "no Endpoints left", || async {
        endpoints
            .get_opt("web")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_selecting_nothing_has_an_empty_slice_and_no_addresses() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let _ctrl = cluster.start_controllers(fast_config());
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut svc = web_service();
    svc.spec.as_mut().unwrap().selector = Some([("app".into(), "nothing".into())].into());
    services.create(&PostParams::default(), &svc).await.unwrap();
    pods.create(&PostParams::default(), &web_pod("web-a"))
        .await
        .unwrap();
    give_ip(&pods, "web-a", "10.244.0.2").await;
    let slice = wait_slice(&client, "an empty slice", |s| s["endpoints"] == json!([])).await;
    assert_eq!(slice["ports"], json!([]));
    wait_endpoints(&client, "no addresses", |ready, not_ready| {
        ready.is_empty() && not_ready.is_empty()
    })
    .await;
}
