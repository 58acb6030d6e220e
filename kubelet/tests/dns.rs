//! Pods' `/etc/resolv.conf` end to end, as root: real etcd + apiserver, the real kubelet
//! binary, busybox pods that `cat /etc/resolv.conf`, read back with `kubectl logs`. One pod
//! per dnsPolicy (`ClusterFirst`, `Default`, `None` with `dnsConfig`, `hostNetwork` with
//! `ClusterFirst` and with `ClusterFirstWithHostNet`), and a kubelet without `--cluster-dns`
//! falling back to `Default` with a `MissingClusterDNS` warning. The node's resolver is a file
//! of the test's own (`--resolv-conf`), so the expected text does not depend on the host.
//! And the other file a pod's names come from: `/etc/hosts`, naming the pod's address (on a
//! pod network of the test's own) and its hostAliases.

mod harness;

use std::time::{Duration, Instant};

use harness::*;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::{json, Value};

/// The node's resolver as the test writes it: a loopback stub the pods cannot reach, a real
/// server, search domains (one with a trailing dot) and options.
const NODE_RESOLV_CONF: &str = "# the test's node\nnameserver 127.0.0.53\nnameserver 192.0.2.53\n\
                                search lab.example. corp.example\noptions timeout:2 edns0\n";

/// What `Default` gives a pod on that node (the loopback stub dropped).
const NODE_DEFAULT: &str =
    "search lab.example corp.example\nnameserver 192.0.2.53\noptions timeout:2 edns0\n";

/// `--resolv-conf`: the node's file, in a directory removed with the guard.
struct NodeFile(std::path::PathBuf);

impl NodeFile {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("minik8s-dns-test-{}", rand_hex()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("resolv.conf"), NODE_RESOLV_CONF).unwrap();
        Self(dir)
    }

    fn path(&self) -> String {
        self.0.join("resolv.conf").display().to_string()
    }
}

impl Drop for NodeFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A pod that prints its resolv.conf and exits, with `extra` merged into its spec.
async fn cat_resolv_conf(c: &Cluster, node: &str, name: &str, extra: Value) {
    let mut spec = json!({"restartPolicy": "Never", "containers": [
        {"name": "c", "image": "busybox", "command": ["cat", "/etc/resolv.conf"]}]});
    for (k, v) in extra.as_object().unwrap() {
        spec[k] = v.clone();
    }
    c.create_pod(name, node, spec).await;
}

/// The pod's output once it has succeeded.
async fn printed(c: &Cluster, name: &str) -> String {
    c.wait_pod(name, 60, "Succeeded", |p| phase(p) == "Succeeded")
        .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = c.kubectl(&["logs", name]).await;
        let s = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() && !s.is_empty() {
            return s;
        }
        assert!(Instant::now() < deadline, "kubectl logs {name}: {out:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_dns_policy_writes_the_kubelets_resolv_conf() {
    let c = Cluster::for_kubelets().await;
    let file = NodeFile::new();
    let resolv = file.path();
    let k = start_kubelet(
        &c,
        &[
            "--cluster-dns",
            "10.96.0.10,10.96.0.11",
            "--cluster-domain",
            "cluster.local",
            "--resolv-conf",
            &resolv,
        ],
    );
    let cluster_first = "search default.svc.cluster.local svc.cluster.local cluster.local \
                         lab.example corp.example\n\
                         nameserver 10.96.0.10\nnameserver 10.96.0.11\noptions ndots:5\n";
    let pods = [
        ("cluster-first", json!({}), cluster_first.to_string()),
        (
            "default",
            json!({"dnsPolicy": "Default"}),
            NODE_DEFAULT.to_string(),
        ),
        (
            "none",
            json!({"dnsPolicy": "None", "dnsConfig": {
                "nameservers": ["1.2.3.4"],
                "searches": ["ns1.svc.cluster-domain.example", "my.dns.search.suffix"],
                "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}),
            "search ns1.svc.cluster-domain.example my.dns.search.suffix\n\
             nameserver 1.2.3.4\noptions ndots:2 edns0\n"
                .to_string(),
        ),
        (
            "merged",
            json!({"dnsConfig": {"nameservers": ["192.0.2.1"], "searches": ["svc.cluster.local", "x.example"],
                "options": [{"name": "ndots", "value": "1"}]}}),
            "search default.svc.cluster.local svc.cluster.local cluster.local lab.example \
             corp.example x.example\n\
             nameserver 10.96.0.10\nnameserver 10.96.0.11\nnameserver 192.0.2.1\noptions ndots:1\n"
                .to_string(),
        ),
        // the node's network: ClusterFirst means the node's resolver, loopback stub included
        (
            "host-network",
            json!({"hostNetwork": true}),
            "search lab.example corp.example\nnameserver 127.0.0.53\nnameserver 192.0.2.53\n\
             options timeout:2 edns0\n"
                .to_string(),
        ),
        (
            "host-network-cluster",
            json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}),
            cluster_first.to_string(),
        ),
    ];
    for (name, extra, _) in &pods {
        cat_resolv_conf(&c, &k.node, name, extra.clone()).await;
    }
    for (name, _, want) in &pods {
        assert_eq!(printed(&c, name).await, *want, "pod {name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_cluster_dns_cluster_first_falls_back_to_default_with_a_warning() {
    let c = Cluster::for_kubelets().await;
    let file = NodeFile::new();
    let resolv = file.path();
    let k = start_kubelet(&c, &["--resolv-conf", &resolv]);
    cat_resolv_conf(&c, &k.node, "fallback", json!({})).await;
    assert_eq!(printed(&c, "fallback").await, NODE_DEFAULT);
    let events: Api<Event> = Api::namespaced(c.client(), "default");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = events.list(&ListParams::default()).await.unwrap();
        let missing = list.items.iter().find(|e| {
            e.reason.as_deref() == Some("MissingClusterDNS")
                && e.involved_object.name.as_deref() == Some("fallback")
        });
        if let Some(e) = missing {
            assert_eq!(e.type_.as_deref(), Some("Warning"));
            let msg = e.message.as_deref().unwrap_or_default();
            assert!(
                msg.ends_with(
                    "kubelet does not have ClusterDNS IP configured and cannot create Pod using \
                     \"ClusterFirst\" policy. Falling back to \"Default\" policy."
                ),
                "{msg}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no MissingClusterDNS in {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pods_hosts_file_names_its_address_and_its_host_aliases() {
    let net = TestNet::new();
    let c = Cluster::for_kubelets().await;
    let flags = net.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let k = start_kubelet(&c, &flags);
    c.create_pod(
        "hosts",
        &k.node,
        json!({"restartPolicy": "Never",
        "hostname": "db-0", "subdomain": "db",
        "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]}],
        "containers": [{"name": "c", "image": "busybox", "command": ["cat", "/etc/hosts"]}]}),
    )
    .await;
    let hosts = printed(&c, "hosts").await;
    let pod = c
        .wait_pod("hosts", 10, "a podIP", |p| {
            p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some()
        })
        .await;
    let ip = pod.status.unwrap().pod_ip.unwrap();
    assert_eq!(
        hosts,
        format!(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
             fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n\
             {ip}\tdb-0.db.default.svc.cluster.local\tdb-0\n\n\
             # Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n"
        )
    );
}
