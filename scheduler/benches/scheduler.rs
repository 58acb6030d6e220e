//! Scheduler throughput, end to end: a real etcd and apiserver, 1000 simulated nodes (Ready,
//! 32 cpu / 256Gi / 110 pods, like kwok), 10 000 pods created concurrently, the scheduler
//! in-process. Reports pods bound per second (first creation → last binding seen by a watch)
//! and the creation → bound latency. Run: `cargo bench -p minik8s-scheduler`
//! (`NODES=`, `PODS=` override the sizes).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::json;

const GOAL_PODS_PER_SEC: f64 = 1000.0;
const CONCURRENCY: usize = 64;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let nodes = env("NODES", 1000);
    let pods = env("PODS", 10_000);
    let cluster = common::Cluster::start().await;
    let client = cluster.client.clone();

    let t = Instant::now();
    let node_api: Api<Node> = Api::all(client.clone());
    futures::stream::iter(0..nodes)
        .map(|i| {
            let api = node_api.clone();
            async move {
                let name = format!("kwok-node-{i}");
                let node: Node = serde_json::from_value(json!({"metadata": {"name": name,
                    "labels": {"type": "kwok", "kubernetes.io/hostname": name}}}))
                .unwrap();
                api.create(&PostParams::default(), &node).await.unwrap();
                let alloc = json!({"cpu": "32", "memory": "256Gi", "pods": "110"});
                let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}],
                    "capacity": alloc, "allocatable": alloc}});
                api.patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    println!("created {nodes} nodes in {:.1?}", t.elapsed());

    // Watch bindings before anything is created: pod name → when the watch saw it bound.
    let bound_at: Arc<Mutex<HashMap<String, Instant>>> = Default::default();
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let watch = tokio::spawn({
        let (api, bound_at) = (pod_api.clone(), bound_at.clone());
        async move {
            let mut stream =
                std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
            while let Ok(Some(p)) = stream.try_next().await {
                if p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_some_and(|n| !n.is_empty())
                {
                    bound_at
                        .lock()
                        .unwrap()
                        .entry(p.metadata.name.unwrap())
                        .or_insert_with(Instant::now);
                }
            }
        }
    });

    // Phase 1, the goal: pods created concurrently while the scheduler runs.
    let scheduler = tokio::spawn(scheduler::run(
        client.clone(),
        scheduler::SchedulerConfig {
            scheduler_name: "default-scheduler".into(),
            identity: "bench".into(),
        },
    ));
    tokio::time::sleep(Duration::from_secs(3)).await; // the scheduler lists the nodes
    println!(
        "== {pods} pods created concurrently ({CONCURRENCY} clients) while the scheduler runs"
    );
    let (start, created_at) = create_pods(&pod_api, "pod", pods).await;
    let throughput = report(start, &created_at, &bound_at, nodes).await;
    println!(
        "verdict: {} (goal ≥ {GOAL_PODS_PER_SEC} pods/s)",
        if throughput >= GOAL_PODS_PER_SEC {
            "PASS"
        } else {
            "MISS"
        }
    );
    scheduler.abort();

    // Phase 2, where the time goes: the same number of pods created first, with no scheduler;
    // then the scheduler alone drains the backlog (its rate without competing creations).
    let backlog = env("BACKLOG", pods);
    if backlog > 0 {
        println!("== backlog: {backlog} pending pods created first, then a fresh scheduler starts");
        let (_, _) = create_pods(&pod_api, "backlog", backlog).await;
        let start = Instant::now();
        let scheduler = tokio::spawn(scheduler::run(
            client.clone(),
            scheduler::SchedulerConfig {
                scheduler_name: "default-scheduler".into(),
                identity: "bench".into(),
            },
        ));
        let created_at: HashMap<String, Instant> = (0..backlog)
            .map(|i| (format!("backlog-{i}"), start))
            .collect();
        report(start, &created_at, &bound_at, nodes).await;
        println!(
            "(the drain includes the scheduler's initial list of {nodes} nodes and {} pods)",
            pods + backlog
        );
        scheduler.abort();
    }
    watch.abort();
    drop(cluster);
}

/// Create `n` pods named `<prefix>-<i>` with `CONCURRENCY` requests in flight; returns when the
/// first was sent and when each was.
async fn create_pods(
    api: &Api<Pod>,
    prefix: &str,
    n: usize,
) -> (Instant, HashMap<String, Instant>) {
    let created_at: Arc<Mutex<HashMap<String, Instant>>> = Default::default();
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let (api, created_at) = (api.clone(), created_at.clone());
            async move {
                let name = format!("{prefix}-{i}");
                let pod: Pod = serde_json::from_value(json!({"metadata": {"name": name},
                    "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9",
                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}))
                .unwrap();
                created_at.lock().unwrap().insert(name, Instant::now());
                api.create(&PostParams::default(), &pod).await.unwrap();
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let took = start.elapsed();
    println!(
        "created {n} pods in {took:.2?} ({:.0} creations/s)",
        n as f64 / took.as_secs_f64()
    );
    let created_at = std::mem::take(&mut *created_at.lock().unwrap());
    (start, created_at)
}

/// Wait until every pod in `created_at` is bound, print rate and latencies; returns pods/s.
async fn report(
    start: Instant,
    created_at: &HashMap<String, Instant>,
    bound_at: &Mutex<HashMap<String, Instant>>,
    nodes: usize,
) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut latencies: Vec<Duration>;
    let mut last = start;
    // Until enough bindings have been seen, only the count is checked: rescanning 10 000 names
    // every 20 ms cost the bench itself ~10% of the CPU it shares with the scheduler.
    let others = bound_at
        .lock()
        .unwrap()
        .keys()
        .filter(|n| !created_at.contains_key(*n))
        .count();
    loop {
        if bound_at.lock().unwrap().len() < others + created_at.len() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        {
            let b = bound_at.lock().unwrap();
            let done: Vec<Instant> = created_at
                .keys()
                .filter_map(|n| b.get(n).copied())
                .collect();
            if done.len() == created_at.len() || Instant::now() > deadline {
                last = done.iter().max().copied().unwrap_or(last);
                latencies = created_at
                    .iter()
                    .filter_map(|(n, c)| b.get(n).map(|t| t.saturating_duration_since(*c)))
                    .collect();
                if done.len() < created_at.len() {
                    println!(
                        "timed out: only {} of {} pods bound after 600 s",
                        done.len(),
                        created_at.len()
                    );
                }
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies.sort();
    let total = last - start;
    let throughput = latencies.len() as f64 / total.as_secs_f64();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(i).copied().unwrap_or_default().as_millis()
    };
    println!(
        "bound {} pods on {nodes} nodes in {total:.2?}: {throughput:.0} pods/s",
        latencies.len()
    );
    println!(
        "scheduling latency (creation → bound): p50 {} ms, p99 {} ms, max {} ms",
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    throughput
}
