//! Shared by the integration tests: a real etcd + apiserver, the controllers as an in-process
//! task, polling helpers, and a stand-in for the kubelet that marks pods Ready.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

pub use apiserver::testing::{EtcdProcess, TestServer};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::ResourceExt;
use serde_json::json;

/// An etcd plus an apiserver; both stop when dropped.
pub struct Cluster {
    pub server: TestServer,
    pub etcd: EtcdProcess,
    /// The etcd key prefix the apiserver stores under (a restarted one reuses it).
    prefix: String,
    kube_cache: tempfile::TempDir,
}

impl Cluster {
    pub async fn start() -> Cluster {
        let etcd = EtcdProcess::start();
        let prefix = format!(
            "/registry-{}-{}",
            std::process::id(),
            jiff::Timestamp::now().as_nanosecond()
        );
        let server = TestServer::start_on(
            &etcd,
            &prefix,
            "127.0.0.1:0".parse().unwrap(),
            Default::default(),
        )
        .await;
        Cluster {
            server,
            etcd,
            prefix,
            kube_cache: tempfile::tempdir().unwrap(),
        }
    }

    /// Stop the apiserver (open watches are cut) and wait until its port refuses connections.
    pub async fn stop_apiserver(&self) {
        self.server.shutdown();
        let addr = self.server.addr;
        wait_for(30, "the apiserver's port to close", || async {
            std::net::TcpStream::connect(addr).is_err().then_some(())
        })
        .await;
    }

    /// Start the apiserver again on the same address and etcd data.
    pub async fn restart_apiserver(&mut self) {
        let addr = self.server.addr;
        self.server =
            TestServer::start_on(&self.etcd, &self.prefix, addr, Default::default()).await;
    }

    /// A second apiserver on the same etcd data, on a fresh port: another writer that can change
    /// objects while the first apiserver is down.
    pub async fn second_apiserver(&self) -> (TestServer, kube::Client) {
        let server = TestServer::start_on(
            &self.etcd,
            &self.prefix,
            "127.0.0.1:0".parse().unwrap(),
            Default::default(),
        )
        .await;
        let client =
            kube::Client::try_from(kube::Config::new(server.url.parse().unwrap())).unwrap();
        (server, client)
    }

    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(kube::Config::new(self.server.url.parse().unwrap())).unwrap()
    }

    /// Run the real kubectl against this server; returns (success, stdout + stderr).
    pub async fn kubectl(&self, args: &[&str]) -> (bool, String) {
        let out = tokio::process::Command::new(apiserver::testing::kubectl())
            .arg("--server")
            .arg(&self.server.url)
            .arg("--cache-dir")
            .arg(self.kube_cache.path())
            .env("KUBECONFIG", "/dev/null")
            .args(args)
            .kill_on_drop(true)
            .output()
            .await
            .expect("run kubectl");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Start the controller manager in-process; it stops when the guard drops.
    pub fn start_controllers(&self, config: controller::manager::Config) -> Task {
        Task(tokio::spawn(controller::manager::run(
            self.client(),
            config,
        )))
    }
}

/// A spawned task, aborted on drop.
pub struct Task(pub tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Poll `check` until it returns Some, or panic after `secs` seconds with `what`.
pub async fn wait_for<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Pods in `ns` matching `selector`, without those being deleted.
pub async fn live_pods(client: &kube::Client, ns: &str, selector: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let list = api
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap();
    list.items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

/// What a kubelet would report for a started, ready pod.
pub async fn mark_ready(client: &kube::Client, pod: &Pod) {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap());
    let now = jiff::Timestamp::now().to_string();
    let status = json!({"status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
    }});
    let _ = api
        .patch_status(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(status),
        )
        .await;
}

/// Is the pod Ready (per its status)?
pub fn is_ready(p: &Pod) -> bool {
    controller::pod::is_ready(p)
}

/// Short node timings for tests.
pub fn fast_config() -> controller::manager::Config {
    controller::manager::Config {
        node_monitor_grace_period: Duration::from_secs(3),
        pod_eviction_timeout: Duration::from_secs(2),
        cluster_cidr: "10.244.0.0/16".into(),
        pod_gc_quarantine: Duration::from_secs(2),
    }
}

/// A namespace for one test.
pub async fn namespace(client: &kube::Client, name: &str) {
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    api.create(&Default::default(), &ns).await.unwrap();
}
