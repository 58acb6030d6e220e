//! The DNS server against a real apiserver: Services and an EndpointSlice created through the
//! API, the server run in-process on a loopback port, and real DNS queries over UDP and TCP
//! (hickory-proto messages on plain sockets) checking what a pod's resolver would get.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dns::forward::Forwarder;
use dns::server::Server;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, PTR};
use hickory_proto::rr::{Name, RData, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use testkit::{free_port, wait_for, Cluster, Component, Task};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// One question over UDP; the decoded response.
async fn ask(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let query = query(name, qtype);
    socket
        .send_to(&query.to_vec().unwrap(), server)
        .await
        .unwrap();
    let mut buf = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("no answer to {name} {qtype}"))
        .unwrap();
    let response = Message::from_vec(&buf[..n]).unwrap();
    assert_eq!(response.metadata.id, query.metadata.id);
    response
}

/// One question over TCP, framed by its length; the decoded response.
async fn ask_tcp(server: SocketAddr, name: &str, qtype: RecordType) -> Message {
    let mut stream = TcpStream::connect(server).await.unwrap();
    let bytes = query(name, qtype).to_vec().unwrap();
    stream
        .write_all(&u16::try_from(bytes.len()).unwrap().to_be_bytes())
        .await
        .unwrap();
    stream.write_all(&bytes).await.unwrap();
    let len = stream.read_u16().await.unwrap();
    let mut answer = vec![0; usize::from(len)];
    stream.read_exact(&mut answer).await.unwrap();
    Message::from_vec(&answer).unwrap()
}

fn query(name: &str, qtype: RecordType) -> Message {
    let mut query = Message::query();
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    query
}

/// The A addresses of a response's answer section, sorted.
fn addresses(response: &Message) -> Vec<Ipv4Addr> {
    let mut ips: Vec<Ipv4Addr> = response
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(A(ip)) => Some(*ip),
            _ => None,
        })
        .collect();
    ips.sort();
    ips
}

/// The SRV answers as `(port, target)`, sorted.
fn srv_targets(response: &Message) -> Vec<(u16, String)> {
    let mut targets: Vec<(u16, String)> = response
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(srv) => Some((srv.port, srv.target.to_ascii())),
            _ => None,
        })
        .collect();
    targets.sort();
    targets
}

/// A fake upstream resolver on loopback: answers every A question with 192.0.2.1.
async fn fake_upstream() -> (SocketAddr, Task) {
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = socket.local_addr().unwrap();
    let task = Task::spawn(async move {
        let mut buf = vec![0; 4096];
        loop {
            let (n, from) = socket.recv_from(&mut buf).await.unwrap();
            let request = Message::from_vec(&buf[..n]).unwrap();
            let mut response = Message::response(request.metadata.id, request.metadata.op_code);
            response.add_queries(request.queries.iter().cloned());
            let name = request.queries[0].name().clone();
            response.add_answer(hickory_proto::rr::Record::from_rdata(
                name,
                60,
                RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
            ));
            socket
                .send_to(&response.to_vec().unwrap(), from)
                .await
                .unwrap();
        }
    });
    (addr, task)
}

#[tokio::test]
async fn services_endpoints_and_pods_resolve() {
    let cluster = Cluster::start().await;
    let client = cluster.client();
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let web: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080},
                           {"name": "metrics", "port": 9090, "protocol": "UDP"}]},
    }))
    .unwrap();
    let web = services.create(&PostParams::default(), &web).await.unwrap();
    let web_ip: Ipv4Addr = web
        .spec
        .and_then(|s| s.cluster_ip)
        .expect("an allocated ClusterIP")
        .parse()
        .unwrap();
    let db: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "db"},
        "spec": {"clusterIP": "None", "ports": [{"name": "sql", "port": 5432}]},
    }))
    .unwrap();
    services.create(&PostParams::default(), &db).await.unwrap();
    let search: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "search"},
        "spec": {"type": "ExternalName", "externalName": "search.example.com"},
    }))
    .unwrap();
    services
        .create(&PostParams::default(), &search)
        .await
        .unwrap();
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let slice: EndpointSlice = serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "db-1", "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.244.0.5"], "conditions": {"ready": true}, "hostname": "db-0"},
            {"addresses": ["10.244.1.6"], "conditions": {"ready": true}},
            {"addresses": ["10.244.1.7"], "conditions": {"ready": false}},
        ],
        "ports": [{"name": "sql", "port": 5432, "protocol": "TCP"}],
    }))
    .unwrap();
    slices.create(&PostParams::default(), &slice).await.unwrap();

    let (upstream, _upstream_task) = fake_upstream().await;
    let server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        Forwarder::new(vec![upstream]),
    )
    .await
    .unwrap();
    let addr = server.local_addr();
    let _server = Task::spawn(server.serve(client.clone(), "cluster.local".into()));

    // A ClusterIP Service: its address, once the caches have synced.
    let web_name = "web.default.svc.cluster.local.";
    let response = wait_for(10, "web's A record", || async {
        let response = ask(addr, web_name, RecordType::A).await;
        (response.metadata.response_code == ResponseCode::NoError).then_some(response)
    })
    .await;
    assert!(response.metadata.authoritative);
    assert_eq!(addresses(&response), [web_ip]);
    assert_eq!(
        addresses(&ask_tcp(addr, web_name, RecordType::A).await),
        [web_ip]
    );

    // SRV of named ports, with the target's address in the additional section.
    let response = ask(
        addr,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(srv_targets(&response), [(80, web_name.to_string())]);
    assert_eq!(response.additionals.len(), 1);
    let response = ask(
        addr,
        "_metrics._udp.web.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(srv_targets(&response), [(9090, web_name.to_string())]);

    // The reverse name of the ClusterIP; an ExternalName Service is an alias.
    let [a, b, c, d] = web_ip.octets();
    let reverse = format!("{d}.{c}.{b}.{a}.in-addr.arpa.");
    let response = ask(addr, &reverse, RecordType::PTR).await;
    assert!(
        matches!(&response.answers[..], [r] if r.data == RData::PTR(PTR(Name::from_ascii(web_name).unwrap()))),
        "{response:?}"
    );
    let response = ask(addr, "search.default.svc.cluster.local.", RecordType::A).await;
    let alias = Name::from_ascii("search.example.com.").unwrap();
    assert!(
        matches!(&response.answers[..], [r] if r.data == RData::CNAME(CNAME(alias.clone()))),
        "{response:?}"
    );

    // Headless: the ready endpoints, each under its own name too.
    let response = ask(addr, "db.default.svc.cluster.local.", RecordType::A).await;
    let ready: [Ipv4Addr; 2] = [[10, 244, 0, 5].into(), [10, 244, 1, 6].into()];
    assert_eq!(addresses(&response), ready);
    let response = ask(addr, "db-0.db.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(addresses(&response), [ready[0]]);
    let response = ask(
        addr,
        "_sql._tcp.db.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(
        srv_targets(&response),
        [
            (5432, "10-244-1-6.db.default.svc.cluster.local.".to_string()),
            (5432, "db-0.db.default.svc.cluster.local.".to_string()),
        ]
    );

    // A pod's dashed address; AAAA is NODATA (no IPv6); a name that is not there, NXDOMAIN.
    let response = ask(addr, "10-244-3-4.default.pod.cluster.local.", RecordType::A).await;
    assert_eq!(addresses(&response), [Ipv4Addr::new(10, 244, 3, 4)]);
    let response = ask(addr, web_name, RecordType::AAAA).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.answers.is_empty());
    let response = ask(addr, "nope.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);

    // Other names go upstream.
    let response = ask(addr, "example.com.", RecordType::A).await;
    assert_eq!(addresses(&response), [Ipv4Addr::new(192, 0, 2, 1)]);

    // A deleted Service is gone from the answers within a second.
    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    let deleted = Instant::now();
    loop {
        let response = ask(addr, web_name, RecordType::A).await;
        if response.metadata.response_code == ResponseCode::NXDomain {
            break;
        }
        assert!(
            deleted.elapsed() < Duration::from_secs(1),
            "web still answered {:?} after a second",
            addresses(&response)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn other_names_are_refused_without_an_upstream() {
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), Forwarder::default())
        .await
        .unwrap();
    let addr = server.local_addr();
    let (_sender, snapshots) = tokio::sync::watch::channel(dns::cache::unsynced("cluster.local"));
    let _server = Task::spawn(server.serve_snapshots(snapshots));
    let response = ask(addr, "example.com.", RecordType::A).await;
    assert_eq!(response.metadata.response_code, ResponseCode::Refused);
    let response = ask_tcp(addr, "example.com.", RecordType::A).await;
    assert_eq!(response.metadata.response_code, ResponseCode::Refused);
}

#[tokio::test]
async fn names_follow_the_cluster_across_an_apiserver_restart() {
    let mut cluster = Cluster::start().await;
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), Forwarder::default())
        .await
        .unwrap();
    let addr = server.local_addr();
    let _server = Task::spawn(server.serve(cluster.client(), "cluster.local".into()));
    let name = "late.default.svc.cluster.local.";
    wait_for(10, "the caches to sync", || async {
        let response = ask(addr, name, RecordType::A).await;
        (response.metadata.response_code == ResponseCode::NXDomain).then_some(())
    })
    .await;

    cluster.stop_apiserver().await;
    // What the caches held is still answered while the apiserver is away.
    let response = ask(addr, name, RecordType::A).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);
    cluster.restart_apiserver().await;

    let services: Api<Service> = Api::namespaced(cluster.client(), "default");
    let late: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "late"},
        "spec": {"clusterIP": "10.96.0.77", "ports": [{"port": 80}]},
    }))
    .unwrap();
    services
        .create(&PostParams::default(), &late)
        .await
        .unwrap();
    wait_for(15, "the Service created after the restart", || async {
        let response = ask(addr, name, RecordType::A).await;
        (addresses(&response) == [Ipv4Addr::new(10, 96, 0, 77)]).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_binary_with_upstream_none_refuses_other_names_at_once() {
    let cluster = Cluster::start().await;
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let listen = addr.to_string();
    let server = Component::start(
        env!("CARGO_BIN_EXE_minik8s-dns"),
        &[
            "--server",
            cluster.url(),
            "--listen",
            &listen,
            "--upstream",
            "none",
        ],
        &[],
    );
    // Cluster names are answered (NXDOMAIN once synced) ...
    wait_for(10, "the binary's caches to sync", || async {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let bytes = query("nope.default.svc.cluster.local.", RecordType::A)
            .to_vec()
            .unwrap();
        socket.send_to(&bytes, addr).await.unwrap();
        let mut buf = vec![0; 4096];
        let n = tokio::time::timeout(Duration::from_millis(200), socket.recv(&mut buf))
            .await
            .ok()?
            .ok()?;
        let response = Message::from_vec(&buf[..n]).ok()?;
        (response.metadata.response_code == ResponseCode::NXDomain).then_some(())
    })
    .await;
    // ... and any other name is REFUSED at once, over UDP and TCP, never forwarded to the
    // host's resolv.conf nameservers.
    let started = Instant::now();
    let response = ask(addr, "example.com.", RecordType::A).await;
    assert_eq!(
        response.metadata.response_code,
        ResponseCode::Refused,
        "{}",
        server.output()
    );
    let response = ask_tcp(addr, "example.com.", RecordType::A).await;
    assert_eq!(response.metadata.response_code, ResponseCode::Refused);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "refusing took {:?}",
        started.elapsed()
    );
    assert!(
        String::from_utf8_lossy(&server.stderr()).contains("--upstream none"),
        "{}",
        server.output()
    );
}
