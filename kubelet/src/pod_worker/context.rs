//! What every pod worker shares: the node's runtime (through [`ContainerRuntime`]), its pod
//! network, settings, metrics, the start slots, and [`PodApi`], the seam through which a worker
//! writes to the apiserver (its pod's status, Events, the final DELETE). The real `PodApi` is
//! [`KubeApi`] over `kube`; unit tests put a recording one in its place (`tests.rs`), as they
//! put the fake runtime in the runtime's. Read `mod.rs` next.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use runtime::network::Network;

use crate::cri::ContainerRuntime;
use crate::dns_config::DnsSettings;
use crate::events::{PodEvent, Recorder};
use crate::metrics::Metrics;

/// What every pod worker shares.
pub struct Context {
    /// For the agent's watch and the kubelet API's pod lookups; workers write through `api`.
    pub client: kube::Client,
    /// Where workers write their pods' status, Events and final DELETE.
    pub api: Arc<dyn PodApi>,
    pub runtime: Arc<dyn ContainerRuntime>,
    pub node_name: String,
    pub node_ip: Option<String>,
    /// `--root-dir`: pods' volumes live under `pods/<uid>/`.
    pub root_dir: PathBuf,
    /// `--cluster-dns`, `--cluster-domain`, `--resolv-conf`: each sandbox's resolv.conf.
    pub dns: DnsSettings,
    /// First CrashLoopBackOff delay (doubles per crash up to `backoff_max`).
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub metrics: Metrics,
    /// The pod network, once the node's pod range is known (`--pod-cidr` or the Node's
    /// spec.podCIDR); until then sandboxes get loopback only.
    pub network: OnceLock<Network>,
    /// Passes of pods that are still starting run at most this many at a time, first come
    /// first served ([`start_slots`]): on a small node a burst of pods then starts one after
    /// the other instead of all of them sharing the CPUs (and the kernel's rtnl lock) and
    /// finishing together at the end of the burst.
    pub start_slots: tokio::sync::Semaphore,
}

/// How many starting pods sync at once: two per CPU, so that one waiting on its container's
/// init (rootfs, exec) leaves the CPU to another.
pub fn start_slots() -> tokio::sync::Semaphore {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    tokio::sync::Semaphore::new(2 * cpus)
}

/// What a pod worker writes to the apiserver.
pub trait PodApi: Send + Sync {
    /// Merge-patch `pods/{name}/status` with `status` (and the pod's UID, so that a pod
    /// recreated under the same name is not patched).
    fn patch_status<'a>(
        &'a self,
        pod: &'a Pod,
        status: &'a PodStatus,
    ) -> BoxFuture<'a, Result<(), kube::Error>>;

    /// Delete the pod for good: gracePeriodSeconds=0, with its UID as precondition.
    fn delete<'a>(&'a self, pod: &'a Pod) -> BoxFuture<'a, Result<(), kube::Error>>;

    /// Post Events about the pod, in the background (fire and forget).
    fn post_events(&self, pod: &Pod, events: Vec<PodEvent>);
}

/// [`PodApi`] over the apiserver.
pub struct KubeApi {
    pub client: kube::Client,
    pub recorder: Recorder,
}

impl KubeApi {
    fn pods(&self, pod: &Pod) -> Api<Pod> {
        Api::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        )
    }
}

impl PodApi for KubeApi {
    fn patch_status<'a>(
        &'a self,
        pod: &'a Pod,
        status: &'a PodStatus,
    ) -> BoxFuture<'a, Result<(), kube::Error>> {
        async move {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let patch =
                serde_json::json!({"metadata": {"uid": pod.metadata.uid}, "status": status});
            self.pods(pod)
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            Ok(())
        }
        .boxed()
    }

    fn delete<'a>(&'a self, pod: &'a Pod) -> BoxFuture<'a, Result<(), kube::Error>> {
        async move {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let dp = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions {
                    uid: pod.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..Default::default()
            };
            self.pods(pod).delete(&name, &dp).await?;
            Ok(())
        }
        .boxed()
    }

    fn post_events(&self, pod: &Pod, events: Vec<PodEvent>) {
        self.recorder.post(pod, events);
    }
}
