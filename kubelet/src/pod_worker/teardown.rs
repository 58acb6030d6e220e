//! Removing a pod from the node. Graceful deletion, as the real kubelet does it: the pod
//! object got a deletionTimestamp (`kubectl delete`), so the worker stops every running
//! container (SIGTERM, then SIGKILL after the grace period, all containers at once), removes
//! them, the pod network address, the sandbox and the volume directories, and only then
//! deletes the pod object for good (gracePeriodSeconds=0, with its UID as precondition so a
//! new pod of the same name is safe). A pod that vanished from the API (a forced delete) is
//! torn down the same way, with a short grace. Read `tests.rs` next.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use super::{grace, Lifecycle, PodWorker, Record};
use crate::cri::Status;
use crate::events::PodEvent;
use crate::volumes;

impl PodWorker {
    /// Stop everything of the pod (grace for running containers) and remove it from the node.
    pub(super) fn teardown(&mut self, pod: Option<&Pod>) -> Vec<PodEvent> {
        let rt = self.ctx.runtime.clone();
        let grace = pod.map(grace).unwrap_or(Duration::from_secs(2));
        let running: Vec<Record> = self
            .records
            .iter()
            .filter(|r| {
                rt.container_state(&r.id)
                    .is_ok_and(|s| s.status != Status::Stopped)
            })
            .cloned()
            .collect();
        let events = running
            .iter()
            .map(|r| {
                PodEvent::normal(
                    "Killing",
                    Some(&r.container),
                    format!("Stopping container {}", r.container),
                )
            })
            .collect();
        std::thread::scope(|s| {
            for r in &running {
                let rt = &rt;
                s.spawn(move || rt.stop_container(&r.id, grace));
            }
        });
        for r in &self.records {
            let _ = rt.remove_container(&r.id);
        }
        self.records.clear();
        if let Some(net) = self.ctx.network.get() {
            if let Err(e) = net.detach(&self.uid) {
                tracing::warn!(uid = %self.uid, error = %e, "detaching from the pod network");
            }
        }
        if let Err(e) = rt.remove_sandbox(&self.uid) {
            tracing::warn!(uid = %self.uid, error = %e, "removing sandbox");
        }
        volumes::teardown(&self.ctx.root_dir, &self.uid);
        self.lifecycle = Lifecycle::New;
        events
    }

    /// Graceful deletion: stop, remove, then delete the pod object for good.
    pub(super) async fn terminate(&mut self, pod: Arc<Pod>) {
        let p = pod.clone();
        let events = self.blocking_mut(move |w| w.teardown(Some(&p))).await;
        self.ctx.api.post_events(&pod, events);
        for attempt in 0..30u32 {
            match self.ctx.api.delete(&pod).await {
                Ok(()) => return,
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => return,
                Err(e) => {
                    tracing::warn!(error = %e, "deleting pod");
                    tokio::time::sleep(Duration::from_millis(200 * (attempt as u64 + 1))).await;
                }
            }
        }
    }
}
