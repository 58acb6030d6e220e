//! Services and cluster DNS on the local lab, end to end, the way a user meets them: a
//! Deployment of three busybox `httpd`s over two nodes, each answering its own hostname,
//! behind `kubectl expose`; a client pod reaching it by name. One lab for the whole file
//! (it takes seconds to come up), and one test walking through the stories in order:
//!
//! 1. `cluster up` starts a Service proxy and a DNS server on every node and the
//!    `kube-system/kube-dns` Service (10.96.0.10) over them, with its EndpointSlice and
//!    Endpoints; `cluster status` lists them;
//! 2. `wget http://web.default.svc.cluster.local` (and `http://web`) from a pod answers from
//!    the pods, spread over more than one, never from a pod that is not Ready;
//!    `nslookup` resolves Services; `kubectl get`/`describe` show the endpoints;
//! 3. a NodePort answers on a node's address from the other node and from a pod;
//! 4. a headless Service resolves to the Ready pods' IPs;
//! 5. `kubectl port-forward svc/web` carries a request from this namespace;
//! 6. the `kubernetes` Service (10.96.0.1:443) takes a TCP connection from a pod;
//! 7. scaled to 0 the Service refuses at once; scaled back it answers again;
//! 8. a deleted Service's rules leave the node and its ClusterIP can be asked for again;
//! 9. `down` takes the add-ons with it: their processes and namespaces, so their rules.

mod cluster;
mod labkit;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster::skip_unless_root;
use labkit::{http_get_in, pod_pid, show, Lab};
use serde_json::Value;

/// The web servers: each writes its hostname (the pod's name) as its page.
const DEPLOYMENT: &str = r#"{"apiVersion":"apps/v1","kind":"Deployment",
"metadata":{"name":"web"},
"spec":{"replicas":3,"selector":{"matchLabels":{"app":"web"}},
"template":{"metadata":{"labels":{"app":"web"}},
"spec":{"terminationGracePeriodSeconds":0,
"containers":[{"name":"httpd","image":"busybox",
"command":["sh","-c","mkdir -p /www && echo $HOSTNAME > /www/index.html && exec httpd -f -p 80 -h /www"],
"ports":[{"containerPort":80}],
"readinessProbe":{"httpGet":{"path":"/","port":80},"periodSeconds":1}}]}}}}"#;

/// A web server the Service selects whose readiness probe fails (`/ready` is a 404).
const UNREADY: &str = r#"{"apiVersion":"v1","kind":"Pod",
"metadata":{"name":"web-unready","labels":{"app":"web"}},
"spec":{"terminationGracePeriodSeconds":0,
"containers":[{"name":"httpd","image":"busybox",
"command":["sh","-c","mkdir -p /www && echo $HOSTNAME > /www/index.html && exec httpd -f -p 80 -h /www"],
"readinessProbe":{"httpGet":{"path":"/ready","port":80},"periodSeconds":1,"failureThreshold":1}}]}}"#;

/// The pod the requests come from.
const CLIENT: &str = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"client"},
"spec":{"terminationGracePeriodSeconds":0,
"containers":[{"name":"main","image":"busybox","command":["sleep","3600"]}]}}"#;

const HEADLESS: &str = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web-headless"},
"spec":{"clusterIP":"None","selector":{"app":"web"},"ports":[{"port":80}]}}"#;

/// Poll `f` every 200 ms until it is Ok, for at most `secs`; the last error on timeout.
fn poll<T>(secs: u64, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => {
                panic!("timed out after {secs} s waiting for {what}: {e}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn apply(lab: &Lab, name: &str, manifest: &str) {
    let path = lab.dir.join(format!("{name}.json"));
    std::fs::write(&path, manifest).unwrap();
    lab.kubectl(&["apply", "-f", path.to_str().unwrap()]);
}

/// `sh -c SCRIPT` in the client pod: (exit code, stdout and stderr).
fn in_client(lab: &Lab, script: &str) -> (i32, String) {
    let out = lab.kubectl_output(&["exec", "client", "--", "sh", "-c", script]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// `wget -qO- URL` in the client pod (at most 5 s; busybox's own `-T` crashes): the page.
fn wget(lab: &Lab, url: &str) -> Result<String, String> {
    match in_client(lab, &format!("timeout 5 wget -qO- {url}")) {
        (0, page) => Ok(page.trim().to_string()),
        (code, text) => Err(format!("exit {code}: {}", text.trim())),
    }
}

/// A pod's field by JSONPath.
fn pod_field(lab: &Lab, pod: &str, path: &str) -> String {
    lab.kubectl(&["get", "pod", pod, "-o", &format!("jsonpath={{{path}}}")])
}

/// The Deployment's pods: name → (IP, node).
fn web_pods(lab: &Lab) -> Vec<(String, String, String)> {
    let list: Value = serde_json::from_str(&lab.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=web,pod-template-hash",
        "-o",
        "json",
    ]))
    .unwrap();
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (
                s(&p["metadata"]["name"]),
                s(&p["status"]["podIP"]),
                s(&p["spec"]["nodeName"]),
            )
        })
        .collect()
}

/// The nat and filter rules of a lab host's namespace, whichever the proxy's mode
/// (`nft list ruleset` shows iptables-nft's tables too; `iptables-save` the legacy ones).
fn ruleset(lab: &Lab, host: &str) -> String {
    let ns = format!("minik8s-{}-{host}", lab.name);
    let mut all = String::new();
    for cmd in [&["nft", "list", "ruleset"][..], &["iptables-save"][..]] {
        let out = Command::new("ip")
            .args(["netns", "exec", &ns])
            .args(cmd)
            .output()
            .expect("run ip netns exec");
        all += &String::from_utf8_lossy(&out.stdout);
    }
    all
}

#[test]
fn services_and_cluster_dns_carry_traffic_across_the_lab() {
    if skip_unless_root("lab services") {
        return;
    }
    let started = Instant::now();
    let mut lab = Lab::new();
    let out = lab.up(2);
    assert!(out.contains("add-ons on every node"), "{out}");
    eprintln!("lab up in {:.1} s", started.elapsed().as_secs_f64());
    add_ons_run_on_every_node(&lab);

    apply(&lab, "web", DEPLOYMENT);
    apply(&lab, "unready", UNREADY);
    apply(&lab, "client", CLIENT);
    lab.kubectl(&["expose", "deployment", "web", "--port", "80"]);
    lab.kubectl(&[
        "wait",
        "--for=condition=Available",
        "deployment/web",
        "--timeout=60s",
    ]);
    lab.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/client",
        "--timeout=60s",
    ]);
    let pods = web_pods(&lab);
    let nodes: BTreeSet<&str> = pods.iter().map(|p| p.2.as_str()).collect();
    assert_eq!(
        nodes.len(),
        2,
        "the scheduler spreads the web pods: {pods:?}"
    );
    eprintln!("workload ready at {:.1} s", started.elapsed().as_secs_f64());

    by_name_spread_and_only_ready(&lab, &pods);
    endpoints_are_shown(&lab, &pods);
    node_port(&lab, &pods);
    headless(&lab, &pods);
    port_forward(&lab, &pods);
    kubernetes_service_from_a_pod(&lab);
    scale_to_zero_and_back(&lab);
    eprintln!(
        "stories 1-7 done at {:.1} s",
        started.elapsed().as_secs_f64()
    );
    deleted_service_leaves_no_rule_and_frees_its_ip(&lab);

    let out = lab.down();
    assert!(out.contains("Deleted lab"), "{out}");
    for host in ["node-1", "node-2"] {
        assert!(!lab.netns(host).exists(), "namespace {host} left");
    }
    // the proxies' rules were in the nodes' namespaces only, and went with them
    let mut root = String::new();
    for cmd in [&["nft", "list", "tables"][..], &["iptables-save"][..]] {
        let out = Command::new(cmd[0]).args(&cmd[1..]).output().unwrap();
        root += &String::from_utf8_lossy(&out.stdout);
    }
    assert!(
        !root.contains("minik8s-proxy") && !root.contains("MINIK8S-SVC-"),
        "the proxy wrote to the root namespace:\n{root}"
    );
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
}

/// Story 1: a proxy and a DNS server per node in `cluster status`; kube-dns over both nodes.
fn add_ons_run_on_every_node(lab: &Lab) {
    let status = lab.minikctl(&["cluster", "status", "--name", &lab.name]);
    assert!(status.status.success(), "{}", show(&status));
    let page = String::from_utf8_lossy(&status.stdout);
    for node in ["node-1", "node-2"] {
        for role in ["kubelet", "proxy", "dns"] {
            let host = format!("{}-{node}", lab.name);
            let line = page
                .lines()
                .find(|l| l.starts_with(&host) && l.split_whitespace().nth(1) == Some(role));
            assert!(
                line.is_some_and(|l| l.ends_with("running")),
                "{role} of {node} not running:\n{page}"
            );
        }
    }
    let svc = lab.kubectl(&[
        "get",
        "svc",
        "-n",
        "kube-system",
        "kube-dns",
        "-o",
        "jsonpath={.spec.clusterIP} {.spec.ports[*].name} {.spec.selector}",
    ]);
    assert_eq!(svc.trim(), "10.96.0.10 dns dns-tcp", "{svc}");
    let slice = lab.kubectl(&[
        "get",
        "endpointslices",
        "-n",
        "kube-system",
        "-l",
        "kubernetes.io/service-name=kube-dns,endpointslice.kubernetes.io/managed-by=minikctl",
        "-o",
        "jsonpath={.items[*].endpoints[*].addresses[0]}",
    ]);
    assert_eq!(slice.trim(), "10.240.0.11 10.240.0.12", "{slice}");
    // and the older Endpoints object, as `kubectl get endpoints` lists it
    let endpoints = lab.kubectl(&["get", "endpoints", "-n", "kube-system", "kube-dns"]);
    assert!(
        endpoints.contains("10.240.0.11:53,10.240.0.12:53"),
        "{endpoints}"
    );
}

/// Story 2: by its full and short names, from a pod; spread over several pods; the pod that
/// is not Ready is listed as such and never answers.
fn by_name_spread_and_only_ready(lab: &Lab, pods: &[(String, String, String)]) {
    let full = "http://web.default.svc.cluster.local";
    let first = poll(30, "the Service to answer by name", || wget(lab, full));
    let names: BTreeSet<&str> = pods.iter().map(|p| p.0.as_str()).collect();
    assert!(names.contains(first.as_str()), "{first:?} is no web pod");
    let script = format!("for i in $(seq 30); do timeout 5 wget -qO- {full} || echo FAILED; done");
    let (code, out) = in_client(lab, &script);
    assert_eq!(code, 0, "{out}");
    let answers: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(answers.len(), 30, "{out}");
    assert!(
        answers.iter().all(|a| names.contains(a)),
        "answers from the Ready web pods only: {answers:?}"
    );
    let distinct: BTreeSet<&&str> = answers.iter().collect();
    assert!(distinct.len() > 1, "no spread over the pods: {answers:?}");
    eprintln!("30 requests by name spread as {distinct:?}");

    let short = wget(lab, "http://web").expect("the short name, through the search list");
    assert!(names.contains(short.as_str()), "{short:?}");
    let (code, look) = in_client(lab, "nslookup web.default.svc.cluster.local");
    let cluster_ip = lab.kubectl(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    assert!(code == 0 && look.contains(cluster_ip.trim()), "{look}");
    // busybox's nslookup asks for the name as given, without the search list
    let (code, look) = in_client(lab, "nslookup kubernetes.default.svc.cluster.local");
    assert!(code == 0 && look.contains("10.96.0.1"), "{look}");

    let slices: Value = serde_json::from_str(&lab.kubectl(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
        "-o",
        "json",
    ]))
    .unwrap();
    let unready_ip = pod_field(lab, "web-unready", ".status.podIP");
    let unready = slices["items"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["endpoints"].as_array().unwrap().iter())
        .find(|e| e["addresses"][0] == unready_ip.as_str())
        .unwrap_or_else(|| panic!("{unready_ip} not in the slices: {slices}"));
    assert_eq!(unready["conditions"]["ready"], false, "{unready}");
}

/// Story 2's listing: `kubectl get svc,endpoints,endpointslices` and `describe svc`.
fn endpoints_are_shown(lab: &Lab, pods: &[(String, String, String)]) {
    let listing = lab.kubectl(&["get", "svc,endpoints,endpointslices"]);
    let endpoints = listing
        .lines()
        .find(|l| l.starts_with("endpoints/web "))
        .unwrap_or_else(|| panic!("no endpoints/web:\n{listing}"));
    for (_, ip, _) in pods {
        assert!(endpoints.contains(&format!("{ip}:80")), "{ip}: {endpoints}");
    }
    assert!(listing.contains("service/web "), "{listing}");
    assert!(
        listing.contains("endpointslice.discovery.k8s.io/web-"),
        "{listing}"
    );
    let describe = lab.kubectl(&["describe", "svc", "web"]);
    let line = describe
        .lines()
        .find(|l| l.starts_with("Endpoints:"))
        .unwrap_or_else(|| panic!("{describe}"));
    assert!(
        pods.iter().any(|(_, ip, _)| line.contains(ip.as_str())),
        "{describe}"
    );
}

/// Story 3: a NodePort on node 1's address, from node 2 and from a pod.
fn node_port(lab: &Lab, pods: &[(String, String, String)]) {
    lab.kubectl(&[
        "expose",
        "deployment",
        "web",
        "--name",
        "web-np",
        "--type",
        "NodePort",
        "--port",
        "80",
    ]);
    let port = lab.kubectl(&[
        "get",
        "svc",
        "web-np",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    let addr: SocketAddr = format!("10.240.0.11:{}", port.trim()).parse().unwrap();
    let page = poll(20, "the NodePort from node 2", || {
        http_get_in(&lab.netns("node-2"), addr)
    });
    assert!(
        pods.iter().any(|(name, _, _)| page.contains(name.as_str())),
        "{page}"
    );
    let page = poll(10, "the NodePort from a pod", || {
        wget(lab, &format!("http://{addr}"))
    });
    assert!(pods.iter().any(|(name, _, _)| page == *name), "{page}");
}

/// Story 4: a headless Service's name is the Ready pods' addresses.
fn headless(lab: &Lab, pods: &[(String, String, String)]) {
    apply(lab, "headless", HEADLESS);
    let unready_ip = pod_field(lab, "web-unready", ".status.podIP");
    let answer = poll(20, "the headless Service's addresses", || {
        let (code, out) = in_client(lab, "nslookup web-headless.default.svc.cluster.local");
        let all = pods.iter().all(|(_, ip, _)| out.contains(ip.as_str()));
        if code == 0 && all {
            Ok(out)
        } else {
            Err(out)
        }
    });
    assert!(
        !answer.contains(&format!("Address: {unready_ip}")),
        "{answer}"
    );
}

/// Story 5: `kubectl port-forward svc/web :80` from this namespace, through the API relay.
fn port_forward(lab: &Lab, pods: &[(String, String, String)]) {
    let mut child = Command::new(testkit::kubectl())
        .args(["port-forward", "svc/web", ":80"])
        .env("KUBECONFIG", &lab.kubeconfig)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl port-forward");
    let mut line = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let read = stdout.read_line(&mut line);
    // "Forwarding from 127.0.0.1:41235 -> 80"
    let port = line
        .split_whitespace()
        .nth(2)
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse::<u16>().ok());
    let result = port
        .ok_or_else(|| format!("{read:?}: {line:?}"))
        .and_then(|port| {
            let mut s =
                std::net::TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(b"GET / HTTP/1.0\r\n\r\n")
                .map_err(|e| e.to_string())?;
            let mut page = String::new();
            s.read_to_string(&mut page).map_err(|e| e.to_string())?;
            Ok(page)
        });
    // our own child, by its pid
    let _ = child.kill();
    let _ = child.wait();
    let page = result.unwrap_or_else(|e| panic!("port-forward: {e}"));
    assert!(
        page.starts_with("HTTP/1.") && page.contains(" 200 "),
        "{page}"
    );
    let served = pods
        .iter()
        .map(|p| p.0.as_str())
        .chain(["web-unready"])
        .any(|name| page.contains(name));
    assert!(served, "{page}");
}

/// Story 6: the `kubernetes` Service takes a TCP connection from a pod's namespace.
fn kubernetes_service_from_a_pod(lab: &Lab) {
    let pid = pod_pid(lab, "client");
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap();
    let connected = std::thread::spawn(move || {
        // setns(2) of a network namespace changes only this thread
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string())?;
        let addr: SocketAddr = "10.96.0.1:443".parse().unwrap();
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .join()
    .unwrap();
    connected.expect("10.96.0.1:443 from the client pod");
}

/// Story 7: no Ready endpoint, and the Service refuses at once; scaled back, it answers.
fn scale_to_zero_and_back(lab: &Lab) {
    lab.kubectl(&["scale", "deployment", "web", "--replicas", "0"]);
    poll(30, "the Service to refuse", || {
        match wget(lab, "http://web") {
            Ok(page) => Err(format!("answered by {page}")),
            Err(_) => Ok(()),
        }
    });
    let asked = Instant::now();
    let failure = wget(lab, "http://web").expect_err("no endpoint answers");
    let took = asked.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "refused in {took:?}, not at once: {failure}"
    );
    eprintln!("scaled to 0: refused in {took:?} ({failure})");
    lab.kubectl(&["scale", "deployment", "web", "--replicas", "3"]);
    let page = poll(60, "the Service to answer again", || {
        wget(lab, "http://web")
    });
    assert!(page.starts_with("web-") && page != "web-unready", "{page}");
}

/// Story 8: the Service's rules leave both nodes; its ClusterIP may be asked for again.
fn deleted_service_leaves_no_rule_and_frees_its_ip(lab: &Lab) {
    let ip = lab.kubectl(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let ip = ip.trim().to_string();
    for host in ["node-1", "node-2"] {
        assert!(
            ruleset(lab, host).contains(&ip),
            "no rule for {ip} on {host}"
        );
    }
    lab.kubectl(&["delete", "svc", "web"]);
    for host in ["node-1", "node-2"] {
        poll(20, "the rules of the deleted Service to go", || {
            let rules = ruleset(lab, host);
            if rules.contains(&ip) {
                Err(format!("{host} still has {ip}"))
            } else {
                Ok(())
            }
        });
    }
    let again = format!(
        r#"{{"apiVersion":"v1","kind":"Service","metadata":{{"name":"web-again"}},
"spec":{{"clusterIP":"{ip}","selector":{{"app":"web"}},"ports":[{{"port":80}}]}}}}"#
    );
    let path = lab.dir.join("again.json");
    std::fs::write(&path, again).unwrap();
    poll(10, "the freed ClusterIP to be given again", || {
        let out = lab.kubectl_output(&["create", "-f", path.to_str().unwrap()]);
        if out.status.success() {
            Ok(())
        } else {
            Err(show(&out))
        }
    });
    let page = poll(20, "the new Service on the old address", || {
        wget(lab, &format!("http://{ip}"))
    });
    assert!(page.starts_with("web-"), "{page}");
}
