//! The agent: watches the pods bound to this node (`fieldSelector=spec.nodeName=<node>`) and
//! hands each one, by UID, to its [`PodWorker`]. On start it re-adopts what the runtime
//! already runs (containers are named `<pod uid>_<container>_<attempt>`), so a restarted
//! kubelet neither restarts containers nor loses restart counts; once the first list is
//! complete, containers and sandboxes of pods that no longer exist are removed.
//! Read `pod_worker/mod.rs` next.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use tokio::sync::watch;

use crate::container_config::parse_runtime_name;
use crate::cri::{ContainerRuntime, Status};
use crate::pod_worker::{Context, PodWorker, Record};
use crate::volumes;

/// The runtime's containers grouped by pod UID (from their names).
pub fn inventory(rt: &dyn ContainerRuntime) -> HashMap<String, Vec<Record>> {
    let mut out: HashMap<String, Vec<Record>> = HashMap::new();
    for id in rt.list_containers() {
        let Ok(info) = rt.container_info(&id) else {
            continue;
        };
        if let Some((uid, container, attempt)) = parse_runtime_name(&info.name) {
            out.entry(uid).or_default().push(Record {
                id,
                container,
                attempt,
            });
        }
    }
    out
}

/// Remove containers, sandboxes and volume dirs of pods not in `live`.
fn remove_orphans(ctx: &Context, orphans: HashMap<String, Vec<Record>>, live: &HashSet<String>) {
    for (uid, records) in orphans {
        tracing::info!(uid = %uid, "removing containers of a pod that no longer exists");
        for r in records {
            let _ = ctx.runtime.stop_container(&r.id, Duration::from_secs(2));
            let _ = ctx.runtime.remove_container(&r.id);
        }
    }
    for sb in ctx.runtime.list_sandboxes() {
        if !live.contains(&sb) {
            tracing::info!(uid = %sb, "removing sandbox of a pod that no longer exists");
            if let Some(net) = ctx.network.get() {
                let _ = net.detach(&sb);
            }
            let _ = ctx.runtime.remove_sandbox(&sb);
            volumes::teardown(&ctx.root_dir, &sb);
        }
    }
    // addresses whose sandbox is gone (removed behind our back, e.g. by `sandbox rm`)
    if let Some(net) = ctx.network.get() {
        let sandboxes = ctx.runtime.list_sandboxes();
        for (ip, owner) in net.allocations() {
            if !sandboxes.contains(&owner) {
                tracing::info!(%ip, sandbox = %owner, "releasing the address of a sandbox that no longer exists");
                let _ = net.detach(&owner);
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(ctx.root_dir.join("pods")) {
        for e in rd.flatten() {
            let uid = e.file_name().to_string_lossy().into_owned();
            if !live.contains(&uid) {
                volumes::teardown(&ctx.root_dir, &uid);
            }
        }
    }
}

/// Count running containers for the gauge.
fn count_running(ctx: &Context) -> u64 {
    ctx.runtime
        .list_containers()
        .iter()
        .filter(|id| {
            ctx.runtime
                .container_state(id)
                .is_ok_and(|s| s.status == Status::Running)
        })
        .count() as u64
}

/// Watch this node's pods and keep one worker per pod until the watch ends (never, normally).
pub async fn run(ctx: Arc<Context>) {
    let c = ctx.clone();
    let mut adopt = tokio::task::spawn_blocking(move || inventory(c.runtime.as_ref()))
        .await
        .unwrap_or_default();
    let adopted: usize = adopt.values().map(Vec::len).sum();
    tracing::info!(node = %ctx.node_name, containers = adopted, "re-adopting runtime containers");

    let c = ctx.clone();
    tokio::spawn(async move {
        loop {
            let c2 = c.clone();
            if let Ok(n) = tokio::task::spawn_blocking(move || count_running(&c2)).await {
                c.metrics.running_containers.store(n, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    });

    let api: Api<Pod> = Api::all(ctx.client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node_name));
    let mut stream = watcher::watcher(api, cfg).default_backoff().boxed();
    let mut workers: HashMap<String, watch::Sender<Option<Arc<Pod>>>> = HashMap::new();
    let mut listing: Option<HashSet<String>> = None;
    let mut first_list_done = false;
    while let Some(ev) = stream.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(node = %ctx.node_name, error = %e, "pod watch");
                continue;
            }
        };
        match ev {
            Event::Init => listing = Some(HashSet::new()),
            Event::InitApply(pod) => {
                if let (Some(l), Some(uid)) = (listing.as_mut(), pod.metadata.uid.clone()) {
                    l.insert(uid);
                }
                dispatch(&ctx, &mut workers, &mut adopt, pod);
            }
            Event::Apply(pod) => dispatch(&ctx, &mut workers, &mut adopt, pod),
            Event::Delete(pod) => {
                if let Some(tx) = pod.metadata.uid.as_ref().and_then(|u| workers.remove(u)) {
                    let _ = tx.send(None);
                }
            }
            Event::InitDone => {
                let live = listing.take().unwrap_or_default();
                // pods that disappeared while the watch was down
                let gone: Vec<String> = workers
                    .keys()
                    .filter(|u| !live.contains(*u))
                    .cloned()
                    .collect();
                for uid in gone {
                    if let Some(tx) = workers.remove(&uid) {
                        let _ = tx.send(None);
                    }
                }
                if !first_list_done {
                    first_list_done = true;
                    let orphans = std::mem::take(&mut adopt);
                    let c = ctx.clone();
                    let live: HashSet<String> = live.clone();
                    tokio::task::spawn_blocking(move || remove_orphans(&c, orphans, &live));
                }
            }
        }
    }
}

fn dispatch(
    ctx: &Arc<Context>,
    workers: &mut HashMap<String, watch::Sender<Option<Arc<Pod>>>>,
    adopt: &mut HashMap<String, Vec<Record>>,
    pod: Pod,
) {
    let Some(uid) = pod.metadata.uid.clone() else {
        return;
    };
    let pod = Arc::new(pod);
    if let Some(tx) = workers.get(&uid) {
        tx.send_replace(Some(pod));
        return;
    }
    let (tx, rx) = watch::channel(Some(pod));
    let records = adopt.remove(&uid).unwrap_or_default();
    let worker = PodWorker::new(ctx.clone(), uid.clone(), records);
    tokio::spawn(worker.run(rx));
    workers.insert(uid, tx);
}
