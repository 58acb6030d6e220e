//! Services, Endpoints and EndpointSlices (issue 14) with the real kubectl on a real etcd:
//! `kubectl create service`, the `get svc,ep,endpointslices` tables, server-side defaults and
//! the 422s of validation.

mod common;

use common::{assert_status, send, Cluster};
use serde_json::json;

/// Every AGE cell (`12s`) replaced by `AGE`, wherever its column is (not last with `-o wide`);
/// ages of a few seconds are as wide as the header, so no other column moves.
fn without_ages(table: &str) -> String {
    table
        .lines()
        .map(|line| {
            let cells: Vec<&str> = line.split("   ").collect();
            cells
                .iter()
                .map(|c| {
                    let t = c.trim();
                    let n = t.trim_end_matches('s');
                    if t.ends_with('s') && !n.is_empty() && n.parse::<u32>().is_ok() {
                        c.replace(t, "AGE")
                    } else {
                        c.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("   ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const ENDPOINTS: &str = r#"
apiVersion: v1
kind: Endpoints
metadata:
  name: db
subsets:
- addresses:
  - ip: 10.244.1.5
  - ip: 10.244.2.7
  ports:
  - port: 5432
"#;

const SLICE: &str = r#"
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: db-abc12
  labels:
    kubernetes.io/service-name: db
addressType: IPv4
endpoints:
- addresses: ["10.244.1.5"]
  conditions: {ready: true}
- addresses: ["10.244.2.7"]
  conditions: {ready: false}
ports:
- name: pg
  port: 5432
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_creates_and_lists_endpoints_and_endpoint_slices() {
    let c = Cluster::start().await;
    let out = c
        .kubectl_stdin(&["apply", "-f", "-"], Some(ENDPOINTS))
        .await;
    assert!(out.status.success(), "{out:?}");
    let out = c.kubectl_stdin(&["create", "-f", "-"], Some(SLICE)).await;
    assert!(out.status.success(), "{out:?}");
    let ep = c.kubectl_ok(&["get", "ep", "db"]).await;
    assert_eq!(
        without_ages(&ep),
        "NAME   ENDPOINTS                         AGE\n\
         db     10.244.1.5:5432,10.244.2.7:5432   AGE",
        "{ep}"
    );
    let slices = c.kubectl_ok(&["get", "endpointslices", "db-abc12"]).await;
    assert_eq!(
        without_ages(&slices),
        "NAME       ADDRESSTYPE   PORTS   ENDPOINTS               AGE\n\
         db-abc12   IPv4          5432    10.244.1.5,10.244.2.7   AGE",
        "{slices}"
    );
    // defaults: a port's protocol is TCP
    let protocol = c
        .kubectl_ok(&[
            "get",
            "ep",
            "db",
            "-o",
            "jsonpath={.subsets[0].ports[0].protocol}",
        ])
        .await;
    assert_eq!(protocol, "TCP");
    let out = c
        .kubectl_ok(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=db",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(out, "endpointslice.discovery.k8s.io/db-abc12\n");

    // validation: addresses of the slice's type, a known address type
    let http = reqwest::Client::new();
    let url = format!(
        "{}/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
        c.url()
    );
    let bad = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "bad"}, "addressType": "IPv4",
        "endpoints": [{"addresses": ["fe80::1"]}]});
    let got = send(http.post(&url).json(&bad)).await;
    assert_status(&got, 422, "Invalid");
    assert_eq!(
        got.1["message"],
        "EndpointSlice.discovery.k8s.io \"bad\" is invalid: endpoints[0].addresses[0]: Invalid value: \"fe80::1\": must be a valid IPv4 address"
    );
    let url = format!("{}/api/v1/namespaces/default/endpoints", c.url());
    let bad = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "bad"},
        "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": 80}]}]});
    let got = send(http.post(&url).json(&bad)).await;
    assert_status(&got, 422, "Invalid");
    assert_eq!(
        got.1["details"]["causes"][0]["field"],
        "subsets[0].addresses[0].ip"
    );
    let out = c.kubectl_ok(&["delete", "ep", "db"]).await;
    assert_eq!(out, "endpoints \"db\" deleted\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_defaulted_and_validated() {
    let c = Cluster::start().await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/namespaces/default/services", c.url());
    let headless = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
        "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]}});
    let (code, svc) = send(http.post(&url).json(&headless)).await;
    assert_eq!(code, 201, "{svc}");
    assert_eq!(
        svc["spec"],
        json!({"clusterIP": "None", "clusterIPs": ["None"], "type": "ClusterIP",
            "sessionAffinity": "None", "selector": {"app": "db"},
            "ports": [{"port": 5432, "protocol": "TCP", "targetPort": 5432}],
            "internalTrafficPolicy": "Cluster", "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack"})
    );
    let table = c.kubectl_ok(&["get", "svc", "db"]).await;
    assert_eq!(
        without_ages(&table),
        "NAME   TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)    AGE\n\
         db     ClusterIP   None         <none>        5432/TCP   AGE",
        "{table}"
    );

    let cases = [
        (
            json!({"metadata": {"name": "1web"}, "spec": {"ports": [{"port": 80}]}}),
            "Service \"1web\" is invalid: metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
        ),
        (
            json!({"metadata": {"name": "web"}, "spec": {"ports": [{"port": 70000, "name": "a"}, {"port": 81}]}}),
            "Service \"web\" is invalid: [spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive, spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive, spec.ports[1].name: Required value]",
        ),
        (
            json!({"metadata": {"name": "web"}, "spec": {"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]}}),
            "Service \"web\" is invalid: spec.clusterIPs[0]: Invalid value: \"None\": may not be set to 'None' for NodePort services",
        ),
        (
            json!({"metadata": {"name": "web"}, "spec": {"type": "Cluster", "ports": [{"port": 80, "protocol": "HTTP"}]}}),
            "Service \"web\" is invalid: [spec.ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\", spec.type: Unsupported value: \"Cluster\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"]",
        ),
    ];
    for (body, message) in cases {
        let got = send(http.post(&url).json(&body)).await;
        assert_status(&got, 422, "Invalid");
        assert_eq!(got.1["message"], message);
    }
}
