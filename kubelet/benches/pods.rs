//! Pod start benchmark: N pods (busybox `sleep`) bound to one kubelet, created back to back
//! or paced; prints create → Running latency as seen by a watch (p50, p99) and the
//! kubelet's RSS with 50 and with N pods running. The node has a pod network (bridge, a veth
//! and an address per pod), as a real node does; `BENCH_NO_NET=1` runs without one.
//! `cargo bench -p minik8s-kubelet --bench pods -- [N] [pace_ms]` (as root; default 100 0).
//! The kubelet's log is kept in `/tmp/minik8s-bench-pods-kubelet.log` (one `pod running` line
//! per pod with where its start went: start-slot wait, sandbox, network, containers, patch).
//!
//! `MINIK8S_KUBELET_BIN=PATH` runs another build of the kubelet (an A/B in one session).
//! It also prints the whole machine's busy CPU per pod from the first create to the last
//! Running (`/proc/stat`), which varies far less from run to run than the latencies.
//!
//! Back-to-back runs are CPU-bound on a small machine: leave 30 s between them, or the previous
//! run's network namespace teardown is still running. Today's figures are in the README's
//! Performance table, their history in `docs/perf-log.md`.

#[path = "../tests/harness/mod.rs"]
mod harness;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use harness::*;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::{self, Event};

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Busy and total CPU time of the whole machine so far, in clock ticks (`/proc/stat`).
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    let total: u64 = v.iter().take(8).sum();
    (total - idle, total)
}

fn pct(v: &[Duration], p: f64) -> Duration {
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // built by `cargo test --all-targets`: only `cargo bench` runs it
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(100);
    let pace = Duration::from_millis(args.get(1).and_then(|a| a.parse().ok()).unwrap_or(0));
    let c = Cluster::for_kubelets().await;
    let net = (std::env::var_os("BENCH_NO_NET").is_none()).then(TestNet::new);
    let flags = net.as_ref().map(TestNet::flags).unwrap_or_default();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let k = start_kubelet(&c, &flags);
    let pid = k.pid().expect("kubelet runs");
    // wait for the node
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(c.client());
    while nodes.get_opt(&k.node).await.unwrap().is_none() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // warm the image store
    c.create_pod("warm", &k.node, serde_json::json!({"terminationGracePeriodSeconds": 0, "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]})).await;
    c.wait_pod("warm", 60, "Running", |p| phase(p) == "Running")
        .await;
    let idle_rss = rss_kib(pid);

    let api: kube::Api<Pod> = c.pods();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let watch = tokio::spawn(async move {
        let mut s = watcher::watcher(api, watcher::Config::default()).boxed();
        while let Some(Ok(ev)) = s.next().await {
            if let Event::Apply(p) | Event::InitApply(p) = ev {
                if phase(&p) == "Running" {
                    let _ = tx.send((p.metadata.name.clone().unwrap_or_default(), Instant::now()));
                }
            }
        }
    });
    let mut created: HashMap<String, Instant> = HashMap::new();
    let mut running: HashMap<String, Instant> = HashMap::new();
    let mut rss50 = 0;
    let (busy0, total0) = cpu_ticks();
    let t0 = Instant::now();
    for i in 0..n {
        let name = format!("bench-{i}");
        created.insert(name.clone(), Instant::now());
        c.create_pod(&name, &k.node, serde_json::json!({"terminationGracePeriodSeconds": 0, "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]})).await;
        if !pace.is_zero() {
            tokio::time::sleep(pace).await;
        }
        while let Ok((name, t)) = rx.try_recv() {
            running.entry(name).or_insert(t);
        }
        if rss50 == 0 && running.len() >= 50.min(n) {
            rss50 = rss_kib(pid);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while running.keys().filter(|k| created.contains_key(*k)).count() < n
        && Instant::now() < deadline
    {
        if let Ok(Some((name, t))) = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
            running.entry(name).or_insert(t);
        }
        if rss50 == 0 && running.len() >= 50.min(n) {
            rss50 = rss_kib(pid);
        }
    }
    let (busy1, total1) = cpu_ticks();
    let burst = t0.elapsed();
    let rss_n = rss_kib(pid);
    watch.abort();
    // a container that had to start again would be a bug the latencies above do not show
    let restarts: i32 = c
        .pods()
        .list(&Default::default())
        .await
        .map(|l| {
            l.items
                .iter()
                .flat_map(|p| {
                    p.status
                        .iter()
                        .flat_map(|s| s.container_statuses.iter().flatten())
                })
                .map(|cs| cs.restart_count)
                .sum()
        })
        .unwrap_or(-1);
    let mut lat: Vec<Duration> = created
        .iter()
        .filter_map(|(name, t)| running.get(name).map(|r| r.saturating_duration_since(*t)))
        .collect();
    lat.sort();
    println!(
        "pods: {n} created {}, running: {}",
        if pace.is_zero() {
            "back to back".to_string()
        } else {
            format!("every {pace:?}")
        },
        lat.len()
    );
    if !lat.is_empty() {
        println!(
            "create -> Running (watch): p50 {:?}  p99 {:?}  max {:?}   (goals 120 ms / 300 ms)",
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            lat[lat.len() - 1]
        );
    }
    // what the whole machine spent (kubelet, shims, apiserver, etcd, kernel threads) per pod
    let tick_ms = 1000.0 / 100.0; // USER_HZ
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    println!(
        "machine CPU from the first create to the last Running: {:.1} ms per pod ({:.0}% of {cpus} CPUs busy for {burst:.0?})",
        (busy1 - busy0) as f64 * tick_ms / n as f64,
        100.0 * (busy1 - busy0) as f64 / (total1 - total0).max(1) as f64,
    );
    println!("container restarts: {restarts}   (expected 0)");
    println!("kubelet RSS: idle (1 pod) {idle_rss} KiB, with 50 pods {rss50} KiB, with {n} pods {rss_n} KiB   (goal <= 20 MB at 50)");
    let _ = std::fs::write("/tmp/minik8s-bench-pods-kubelet.log", k.log());
    drop(k);
    drop(net);
}
