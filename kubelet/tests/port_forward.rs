//! `kubectl port-forward` end to end, as root: real etcd + apiserver, the real kubelet binary
//! and the real kubectl, which tunnels its SPDY session in a WebSocket through the apiserver
//! to the kubelet. A busybox `httpd` pod answers two connections through `pod/NAME` and one
//! through `svc/NAME` (kubectl finds the pod and its targetPort itself); a port with nothing
//! listening gives kubectl's error for a refused connection instead of a hang. Below that,
//! the kubelet's pieces on their own: SPDY frames through one compression context each way,
//! and a `hostNetwork` pod's port dialled on the node's localhost; and on a pod network, a
//! server bound to its pod IP only, reached from the node when localhost refuses.

mod harness;

use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harness::*;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

/// A running `kubectl port-forward`, its stderr collected as it comes.
struct PortForward {
    child: tokio::process::Child,
    stderr: Arc<Mutex<String>>,
    local: u16,
}

impl PortForward {
    /// `kubectl port-forward TARGET LOCAL:REMOTE`, once it prints that it forwards.
    async fn start(c: &Cluster, target: &str, remote: &str) -> PortForward {
        let local = free_port();
        let mut child = c
            .kubectl_command()
            .args(["port-forward", target, &format!("{local}:{remote}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl port-forward");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err_pipe.read(&mut buf).await {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let want = format!("Forwarding from 127.0.0.1:{local} ->");
        let found = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with(&want) {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(
            found == Ok(true),
            "kubectl port-forward {target} never forwarded: {}",
            stderr.lock().unwrap()
        );
        // keep reading stdout so kubectl never blocks on it
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        PortForward {
            child,
            stderr,
            local,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

/// `GET path` over HTTP/1.0 to 127.0.0.1:port: everything the server sent until it closed.
async fn get(port: u16, path: &str) -> String {
    let path = path.to_string();
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_port_forward_reaches_a_pod_and_reports_a_refused_port() {
    let c = Cluster::for_kubelets().await;
    let k = start_kubelet(&c, &[]);
    c.create_pod("web", &k.node, json!({"terminationGracePeriodSeconds": 0, "containers": [{"name": "c", "image": "busybox",
        "command": ["sh", "-c", "mkdir /www; echo hello through the tunnel > /www/index.html; exec httpd -f -p 8080 -h /www"],
        "ports": [{"containerPort": 8080, "name": "http"}],
        "readinessProbe": {"httpGet": {"path": "/index.html", "port": 8080}, "periodSeconds": 1}}]}))
        .await;
    c.wait_pod("web", 60, "Ready", |p| {
        condition(p, "Ready").as_deref() == Some("True")
    })
    .await;

    // two connections through one kubectl, each its own pair of streams
    let mut pf = PortForward::start(&c, "pod/web", "8080").await;
    for _ in 0..2 {
        let page = get(pf.local, "/index.html").await;
        assert!(
            page.lines().next().is_some_and(|l| l.ends_with(" 200 OK")),
            "{page:?}\n{}",
            pf.stderr()
        );
        assert!(page.ends_with("hello through the tunnel\n"), "{page:?}");
    }
    let _ = pf.child.kill().await;

    // svc/NAME: kubectl resolves the Service to a pod and its port to the targetPort
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}});
    let out = c
        .kubectl_stdin(&["apply", "-f", "-"], Some(&svc.to_string()))
        .await;
    assert!(out.status.success(), "{out:?}");
    let mut pf = PortForward::start(&c, "svc/web", "80").await;
    let page = get(pf.local, "/index.html").await;
    assert!(
        page.ends_with("hello through the tunnel\n"),
        "{page:?}\n{}",
        pf.stderr()
    );
    let _ = pf.child.kill().await;

    // nothing listens on 9999: the connection ends at once and kubectl says why
    let mut pf = PortForward::start(&c, "pod/web", "9999").await;
    let page = tokio::time::timeout(Duration::from_secs(30), get(pf.local, "/"))
        .await
        .expect("a refused port hung the connection");
    assert_eq!(page, "");
    let want = format!("an error occurred forwarding {} -> 9999", pf.local);
    let mut said = String::new();
    for _ in 0..100 {
        said = pf.stderr();
        if said.contains(&want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(said.contains(&want), "{said}");
    assert!(said.contains("connect: connection refused"), "{said}");
    // and, as kubectl 1.32 does after an error on the error stream, it gives up
    let exit = tokio::time::timeout(Duration::from_secs(20), pf.child.wait())
        .await
        .expect("kubectl kept running after the error")
        .unwrap();
    assert!(!exit.success());
    assert!(
        pf.stderr().contains("lost connection to pod"),
        "{}",
        pf.stderr()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_bound_to_its_pod_ip_only_is_reached_from_the_node() {
    let net = TestNet::new();
    let c = Cluster::for_kubelets().await;
    let flags = net.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let k = start_kubelet(&c, &flags);
    // localhost inside the pod refuses: only the pod IP answers
    c.create_pod("bound", &k.node, json!({"terminationGracePeriodSeconds": 0, "containers": [{"name": "c", "image": "busybox",
        "command": ["sh", "-c", "mkdir /www; echo only on $MY_IP > /www/index.html; exec httpd -f -p $MY_IP:8080 -h /www"],
        "env": [{"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}))
        .await;
    let p = c
        .wait_pod("bound", 60, "Ready", |p| {
            condition(p, "Ready").as_deref() == Some("True")
        })
        .await;
    let ip = p.status.unwrap().pod_ip.unwrap();
    let mut pf = PortForward::start(&c, "pod/bound", "8080").await;
    let page = get(pf.local, "/index.html").await;
    assert!(
        page.ends_with(&format!("only on {ip}\n")),
        "{page:?}\n{}",
        pf.stderr()
    );
    let _ = pf.child.kill().await;
}

#[tokio::test]
async fn spdy_frames_survive_a_round_trip_with_one_compression_context() {
    use kubelet::port_forward::spdy::{Frame, Reader, Writer, PROTOCOL_ERROR};
    let (client, server) = tokio::io::duplex(1 << 16);
    let mut w = Writer::new(client).unwrap();
    let mut r = Reader::new(server);
    let headers = |kind: &str| {
        vec![
            ("streamtype".to_string(), kind.to_string()),
            ("port".to_string(), "8080".to_string()),
            ("requestid".to_string(), "0".to_string()),
        ]
    };
    let frames = [
        Frame::SynStream {
            stream_id: 1,
            fin: false,
            headers: headers("error"),
        },
        Frame::SynStream {
            stream_id: 3,
            fin: true,
            headers: headers("data"),
        },
        Frame::SynReply {
            stream_id: 3,
            fin: false,
            headers: vec![],
        },
        Frame::Data {
            stream_id: 3,
            fin: true,
            data: bytes::Bytes::from_static(b"GET / HTTP/1.0\r\n\r\n"),
        },
        Frame::Ping { id: 7 },
        Frame::RstStream {
            stream_id: 1,
            status: PROTOCOL_ERROR,
        },
        Frame::GoAway {
            last_good_stream_id: 3,
            status: 0,
        },
    ];
    for f in &frames {
        w.send(f).await.unwrap();
    }
    drop(w);
    for f in &frames {
        assert_eq!(r.next().await.unwrap().as_ref(), Some(f));
    }
    assert_eq!(r.next().await.unwrap(), None);
}

#[tokio::test]
async fn a_host_network_pods_port_is_dialled_on_the_nodes_localhost() {
    use kubelet::port_forward::dial::{connect, PodNetwork};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let net = PodNetwork {
        netns: None,
        ips: vec![],
    };
    assert!(connect(&net, port).await.is_ok());
    // a port bound but not listening refuses, and no other test can take it meanwhile
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = closed.local_addr().unwrap().port();
    let err = connect(&net, port).await.unwrap_err();
    let want = format!(
        "failed to execute portforward in network namespace \"host\": \
         IPv4: dial tcp4 127.0.0.1:{port}: connect: connection refused"
    );
    assert!(err.starts_with(&want), "{err}");
}
