//! Services, Endpoints and EndpointSlices (issue 14) with the real kubectl on a real etcd:
//! `kubectl create service` and `expose`, the `get svc,ep,endpointslices` tables, server-side
//! defaults and the 422s of validation; ClusterIP and NodePort allocation (explicit and
//! automatic, refused when taken or out of range, freed on delete, race-free across two
//! apiservers) and the `kubernetes` Service at 10.96.0.1.

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

/// The `db-abc12` EndpointSlice's `metadata.generation`.
async fn slice_generation(c: &Cluster) -> String {
    c.kubectl_ok(&[
        "get",
        "endpointslices",
        "db-abc12",
        "-o",
        "jsonpath={.metadata.generation}",
    ])
    .await
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
    // an EndpointSlice's generation counts its changes (labels too), not other metadata
    assert_eq!(slice_generation(&c).await, "1");
    c.kubectl_ok(&["annotate", "endpointslices", "db-abc12", "a=b"])
        .await;
    assert_eq!(slice_generation(&c).await, "1");
    c.kubectl_ok(&["label", "endpointslices", "db-abc12", "x=y"])
        .await;
    assert_eq!(slice_generation(&c).await, "2");
    c.kubectl_ok(&[
        "patch",
        "endpointslices",
        "db-abc12",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/endpoints/1/conditions/ready","value":true}]"#,
    ])
    .await;
    assert_eq!(slice_generation(&c).await, "3");

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

/// The `kubernetes` Service has the range's first address and points at this apiserver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_service_has_the_first_address_and_points_at_the_apiserver() {
    let c = Cluster::start().await;
    let ip = c
        .kubectl_ok(&[
            "get",
            "svc",
            "kubernetes",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ])
        .await;
    assert_eq!(ip, "10.96.0.1");
    let table = c.kubectl_ok(&["get", "svc"]).await;
    assert_eq!(
        without_ages(&table),
        "NAME         TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)   AGE\n\
         kubernetes   ClusterIP   10.96.0.1    <none>        443/TCP   AGE",
        "{table}"
    );
    let port = c.url().rsplit(':').next().unwrap().to_string();
    let ep = c
        .kubectl_ok(&[
            "get",
            "ep",
            "kubernetes",
            "-o",
            "jsonpath={.subsets[0].addresses[0].ip}:{.subsets[0].ports[0].port}",
        ])
        .await;
    assert_eq!(ep, format!("127.0.0.1:{port}"));
    let slice = c
        .kubectl_ok(&["get", "endpointslices", "kubernetes", "-o", "jsonpath={.addressType} {.endpoints[0].addresses[0]} {.ports[0].name} {.metadata.labels.kubernetes\\.io/service-name}"])
        .await;
    assert_eq!(slice, "IPv4 127.0.0.1 https kubernetes");
    // its address is taken: nobody else gets it
    let (ok, text) = c
        .kubectl_text(&[
            "create",
            "service",
            "clusterip",
            "x",
            "--tcp=80",
            "--clusterip=10.96.0.1",
        ])
        .await;
    assert!(!ok);
    assert!(
        text.contains("spec.clusterIPs: Invalid value: []string{\"10.96.0.1\"}: failed to allocate IP 10.96.0.1: provided IP is already allocated"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_creates_cluster_ip_headless_and_node_port_services() {
    let c = Cluster::start().await;
    let out = c
        .kubectl_ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"])
        .await;
    assert_eq!(out, "service/web created\n");
    let ip = c
        .kubectl_ok(&[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.spec.clusterIP} {.spec.clusterIPs[0]} {.spec.ports[0].targetPort}",
        ])
        .await;
    let (ip, rest) = ip.split_once(' ').unwrap();
    assert_eq!(rest, format!("{ip} 8080"));
    let parsed: std::net::Ipv4Addr = ip.parse().unwrap();
    let o = parsed.octets();
    assert!(
        o[0] == 10 && (96..112).contains(&o[1]) && !(o[1] == 96 && o[2] == 0),
        "{ip}: in 10.96.0.0/12, above the static band 10.96.0.0-255"
    );
    let wide = c.kubectl_ok(&["get", "svc", "web", "-o", "wide"]).await;
    let lines: Vec<Vec<&str>> = wide
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE",
            "SELECTOR"
        ],
        "{wide}"
    );
    assert_eq!(
        [lines[1][..5].to_vec(), lines[1][6..].to_vec()].concat(),
        ["web", "ClusterIP", ip, "<none>", "80/TCP", "app=web"],
        "{wide}"
    );

    // headless
    c.kubectl_ok(&[
        "create",
        "service",
        "clusterip",
        "db",
        "--clusterip=None",
        "--tcp=5432",
    ])
    .await;
    let db = c
        .kubectl_ok(&["get", "svc", "db", "-o", "jsonpath={.spec.clusterIP}"])
        .await;
    assert_eq!(db, "None");

    // NodePort: an explicit port and an automatic one
    c.kubectl_ok(&[
        "create",
        "service",
        "nodeport",
        "np",
        "--tcp=80:8080",
        "--node-port=30080",
    ])
    .await;
    let table = c.kubectl_ok(&["get", "svc", "np"]).await;
    assert!(
        table.contains("NodePort") && table.contains("80:30080/TCP"),
        "{table}"
    );
    c.kubectl_ok(&["create", "service", "nodeport", "np2", "--tcp=81"])
        .await;
    let auto: i64 = c
        .kubectl_ok(&[
            "get",
            "svc",
            "np2",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ])
        .await
        .parse()
        .unwrap();
    assert!(
        (30086..=32767).contains(&auto),
        "{auto}: the upper band first"
    );
    let policy = c
        .kubectl_ok(&[
            "get",
            "svc",
            "np2",
            "-o",
            "jsonpath={.spec.externalTrafficPolicy}",
        ])
        .await;
    assert_eq!(policy, "Cluster");

    // the port is taken, a port out of range, an IP out of range
    let refused = [
        (
            vec!["create", "service", "nodeport", "np3", "--tcp=82", "--node-port=30080"],
            "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated",
        ),
        (
            vec!["create", "service", "nodeport", "np3", "--tcp=82", "--node-port=8080"],
            "spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767",
        ),
        (
            vec!["create", "service", "clusterip", "out", "--tcp=80", "--clusterip=10.0.0.5"],
            "spec.clusterIPs: Invalid value: []string{\"10.0.0.5\"}: failed to allocate IP 10.0.0.5: the provided IP (10.0.0.5) is not in the valid range. The range of valid IPs is 10.96.0.0/12",
        ),
    ];
    for (args, message) in refused {
        let (ok, text) = c.kubectl_text(&args).await;
        assert!(!ok && text.contains(message), "{args:?}: {text}");
    }

    // kubectl expose reads the Deployment's selector; no controller needed
    c.kubectl_ok(&["create", "deployment", "api", "--image=nginx"])
        .await;
    let out = c
        .kubectl_ok(&[
            "expose",
            "deployment",
            "api",
            "--port=80",
            "--target-port=8080",
        ])
        .await;
    assert_eq!(out, "service/api exposed\n");
    let sel = c
        .kubectl_ok(&[
            "get",
            "svc",
            "api",
            "-o",
            "jsonpath={.spec.selector.app} {.spec.ports[0].targetPort}",
        ])
        .await;
    assert_eq!(sel, "api 8080");
    // describe reads the Service, its Endpoints and its Events
    let describe = c.kubectl_ok(&["describe", "svc", "np"]).await;
    for line in [
        "Name:                     np",
        "Type:                     NodePort",
        "NodePort:                 80-8080  30080/TCP",
        "External Traffic Policy:  Cluster",
    ] {
        assert!(describe.contains(line), "{line:?} in\n{describe}");
    }
    let all = c.kubectl_ok(&["get", "svc", "-o", "name"]).await;
    assert_eq!(
        all,
        "service/api\nservice/db\nservice/kubernetes\nservice/np\nservice/np2\nservice/web\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_frees_and_the_cluster_ip_is_immutable() {
    let c = Cluster::start().await;
    c.kubectl_ok(&[
        "create",
        "service",
        "clusterip",
        "a",
        "--tcp=80",
        "--clusterip=10.96.0.50",
    ])
    .await;
    let (ok, text) = c
        .kubectl_text(&[
            "create",
            "service",
            "clusterip",
            "b",
            "--tcp=80",
            "--clusterip=10.96.0.50",
        ])
        .await;
    assert!(!ok);
    assert!(
        text.contains("Service \"b\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.96.0.50\"}: failed to allocate IP 10.96.0.50: provided IP is already allocated"),
        "{text}"
    );
    let (ok, text) = c
        .kubectl_text(&[
            "patch",
            "svc",
            "a",
            "-p",
            r#"{"spec":{"clusterIP":"10.96.0.51"}}"#,
        ])
        .await;
    assert!(!ok);
    assert!(
        text.contains(
            "spec.clusterIPs[0]: Invalid value: []string{\"10.96.0.51\"}: may not change once set"
        ),
        "{text}"
    );
    // a replace without the clusterIP keeps it
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/namespaces/default/services/a", c.url());
    let (_, mut svc) = send(http.get(&url)).await;
    svc["spec"].as_object_mut().unwrap().remove("clusterIP");
    svc["spec"].as_object_mut().unwrap().remove("clusterIPs");
    svc["metadata"]["labels"] = json!({"x": "y"});
    let (code, after) = send(http.put(&url).json(&svc)).await;
    assert_eq!(code, 200, "{after}");
    assert_eq!(after["spec"]["clusterIPs"], json!(["10.96.0.50"]));

    c.kubectl_ok(&["delete", "svc", "a"]).await;
    c.kubectl_ok(&[
        "create",
        "service",
        "clusterip",
        "b",
        "--tcp=80",
        "--clusterip=10.96.0.50",
    ])
    .await;

    // a NodePort turned ClusterIP frees its port
    c.kubectl_ok(&[
        "create",
        "service",
        "nodeport",
        "np",
        "--tcp=80",
        "--node-port=30100",
    ])
    .await;
    c.kubectl_ok(&[
        "patch",
        "svc",
        "np",
        "-p",
        r#"{"spec":{"type":"ClusterIP"}}"#,
    ])
    .await;
    let ports = c
        .kubectl_ok(&[
            "get",
            "svc",
            "np",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ])
        .await;
    assert_eq!(ports, "");
    c.kubectl_ok(&[
        "create",
        "service",
        "nodeport",
        "np2",
        "--tcp=80",
        "--node-port=30100",
    ])
    .await;
    // a Service turned ExternalName frees its ClusterIP
    c.kubectl_ok(&[
        "create",
        "service",
        "clusterip",
        "ext",
        "--tcp=80",
        "--clusterip=10.96.0.60",
    ])
    .await;
    c.kubectl_ok(&[
        "patch",
        "svc",
        "ext",
        "-p",
        r#"{"spec":{"type":"ExternalName","externalName":"example.com"}}"#,
    ])
    .await;
    let table = c.kubectl_ok(&["get", "svc", "ext"]).await;
    assert!(
        table.contains("ExternalName   <none>       example.com"),
        "{table}"
    );
    c.kubectl_ok(&[
        "create",
        "service",
        "clusterip",
        "ext2",
        "--tcp=80",
        "--clusterip=10.96.0.60",
    ])
    .await;
    // deleting a namespace's Services (deletecollection) frees theirs too
    c.kubectl_ok(&["delete", "svc", "--all"]).await;
    c.kubectl_ok(&[
        "create",
        "service",
        "nodeport",
        "np3",
        "--tcp=80",
        "--node-port=30100",
    ])
    .await;
}

/// Two apiservers on one etcd, each asked for the same address at the same moment: exactly
/// one Service gets it, the other is refused with a 422; automatic picks never collide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_on_two_apiservers_never_share_an_address() {
    let c = Cluster::start().await;
    let (second, _client) = c.second_apiserver().await;
    let http = reqwest::Client::new();
    let urls = [
        format!("{}/api/v1/namespaces/default/services", c.url()),
        format!("{}/api/v1/namespaces/default/services", second.url),
    ];
    let service = |name: String, ip: Option<String>| {
        let mut spec = json!({"ports": [{"port": 80}]});
        if let Some(ip) = ip {
            spec["clusterIP"] = json!(ip);
        }
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
    };
    for round in 0..10 {
        let ip = format!("10.96.1.{}", round + 10);
        let (a, b) = tokio::join!(
            send(
                http.post(&urls[0])
                    .json(&service(format!("a{round}"), Some(ip.clone())))
            ),
            send(
                http.post(&urls[1])
                    .json(&service(format!("b{round}"), Some(ip.clone())))
            ),
        );
        let mut codes = [a.0, b.0];
        codes.sort();
        assert_eq!(codes, [201, 422], "round {round}: {} / {}", a.1, b.1);
        let refused = if a.0 == 422 { &a } else { &b };
        assert_status(refused, 422, "Invalid");
        assert_eq!(
            refused.1["details"]["causes"][0]["message"],
            format!("Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated")
        );
    }
    // automatic picks from both servers at once: all different
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (http, url) = (http.clone(), urls[i % 2].clone());
        let body = service(format!("auto{i}"), None);
        tasks.push(tokio::spawn(async move {
            send(http.post(&url).json(&body)).await
        }));
    }
    let mut ips = std::collections::BTreeSet::new();
    for t in tasks {
        let (code, svc) = t.await.unwrap();
        assert_eq!(code, 201, "{svc}");
        assert!(ips.insert(svc["spec"]["clusterIP"].as_str().unwrap().to_string()));
    }
    assert_eq!(ips.len(), 20);
}
