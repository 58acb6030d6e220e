//! The data path at 1000 Services × 10 endpoints, both modes in one run (issue 14's goal: one
//! endpoint change in effect within 50 ms p99 of the EndpointSlice write, a full resync
//! within 1 s). `cargo bench -p minik8s-proxy --bench dataplane -- [SERVICES] [ENDPOINTS]
//! [CHANGES]` (as root; default 1000 10 200).
//!
//! A real etcd and apiserver (`testkit::Cluster`) hold the Services (ClusterIPs allocated by
//! the apiserver) and one EndpointSlice each. For each mode, in a network namespace of the
//! bench's own, the proxy's own pieces run in-process: its watch caches, its `Syncer` and its
//! sync loop with the flags' defaults (`Periods::default()`). The endpoints are local
//! addresses of that namespace (one `local` route for 10.200.0.0/14 on `lo`: every address
//! in it is the namespace's own, 10 000 of them without 10 000 `ip addr add`; this VM's
//! kernel has no `dummy` link type), and one listener on 0.0.0.0:8080 answers every
//! connection with the local address it was accepted on: which endpoint the DNAT chose.
//!
//! 1. Full sync: the `Syncer` told to start from scratch (`resync`) and run on the caches'
//!    snapshot, a few rounds (the first onto an empty kernel); median and max.
//! 2. Endpoint changes: one endpoint of a random Service replaced by a never-used address,
//!    with a merge patch of its EndpointSlice through the API. The clock starts before the
//!    PATCH is sent and stops at the start of the first connection to `clusterIP:80` that
//!    lands on the new address: apiserver and etcd, the watch, the caches, the loop, the
//!    render, `nft`/`iptables-restore`, the kernel. The prober connects back to back from the
//!    moment the proxy's loop has taken a snapshot holding the change (no connection can land
//!    on the new endpoint before; connecting meanwhile would only take CPU from the apiserver
//!    and the watch), one every 200 µs (back to back, the prober and the listener would
//!    take a whole core of the two); the new endpoint is 1 of 10, so it takes a few
//!    connections after the rules are in: ~2 ms on average, ~9 ms at the 99th percentile,
//!    counted in the figure (the mean number of connections is printed). The figure is
//!    split at that snapshot: write → snapshot, snapshot → connection. Before the API
//!    changes, a few changes are handed straight to the `Syncer` (its own cost, with the pure
//!    render and diff and the model timed apart). Changes are spaced by the loop's
//!    `--min-sync-period`, so each is an isolated change, not a wait for the rate limit. The
//!    periodic check runs at its default too: in the iptables mode a full rewrite every
//!    30 s, which a change may have to wait for.
//!
//! Prints per mode: full sync median/max, change p50/p99/max; then nftables ÷ iptables, and
//! the load average before and after (the VM is shared: the figures move with it). The
//! figures are in the README's Performance table, their history in `docs/perf-log.md`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::Netns;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams, PostParams};
use proxy::rules::RulesConfig;
use proxy::sync::{Periods, ProxyMode, Syncer};
use serde_json::json;
use testkit::{Cluster, Task};

/// The endpoints' addresses: the k-th is 10.200.0.0 + k + 1 (all local in the namespace).
const ENDPOINT_BASE: u32 = u32::from_be_bytes([10, 200, 0, 0]);
const ENDPOINT_ROUTE: &str = "10.200.0.0/14";
const TARGET_PORT: u16 = 8080;
const FULL_ROUNDS: usize = 3;
/// One connection per this long while waiting for a change to take effect.
const PROBE_PACE: Duration = Duration::from_micros(200);
/// Changes handed straight to the syncer, per mode.
const DIRECT_CHANGES: usize = 30;

fn endpoint_ip(k: u32) -> Ipv4Addr {
    Ipv4Addr::from(ENDPOINT_BASE + k + 1)
}

fn slice_body(service: &str, ips: &[Ipv4Addr]) -> serde_json::Value {
    let endpoints: Vec<_> = ips
        .iter()
        .map(|ip| json!({"addresses": [ip.to_string()], "conditions": {"ready": true}}))
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-x"),
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"port": TARGET_PORT, "protocol": "TCP"}]
    })
}

/// Where the proxy is with the change being measured: the address the new endpoint has, and
/// when the proxy's loop first took a snapshot of the caches that holds it.
#[derive(Default)]
struct Seen {
    want: Option<Ipv4Addr>,
    at: Option<Instant>,
}

type SeenSlot = Arc<Mutex<Seen>>;

/// A thread inside the namespace that connects to an address until a connection lands on the
/// wanted endpoint: (when that connection started, connections made) or `None` on timeout.
/// It starts connecting once the proxy has seen the change (`Seen::at`): no connection can
/// land on the new endpoint before, and connecting back to back meanwhile would only take
/// CPU from the apiserver, the watch and the proxy under test.
struct Prober {
    ask: mpsc::Sender<(SocketAddrV4, Ipv4Addr)>,
    answer: mpsc::Receiver<Option<(Instant, u32)>>,
}

impl Prober {
    fn start(ns: &Netns, seen: SeenSlot) -> Prober {
        let (ask, asks) = mpsc::channel::<(SocketAddrV4, Ipv4Addr)>();
        let (tell, answer) = mpsc::channel();
        ns.spawn(move || {
            for (addr, want) in asks {
                let deadline = Instant::now() + Duration::from_secs(20);
                let mut tries = 0;
                while seen.lock().unwrap().at.is_none() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_micros(100));
                }
                let found = loop {
                    let start = Instant::now();
                    tries += 1;
                    if landed_on(addr) == Some(want) {
                        break Some((start, tries));
                    }
                    if start > deadline {
                        break None;
                    }
                    // Paced: back to back, the prober and the listener would take a whole
                    // core from the 2 the proxy, the apiserver and `nft` share.
                    std::thread::sleep(PROBE_PACE.saturating_sub(start.elapsed()));
                };
                if tell.send(found).is_err() {
                    return;
                }
            }
        });
        Prober { ask, answer }
    }

    fn until(&self, addr: SocketAddrV4, want: Ipv4Addr) -> Option<(Instant, u32)> {
        self.ask.send((addr, want)).unwrap();
        self.answer.recv().unwrap()
    }
}

/// The endpoint address one connection to `addr` was accepted on.
fn landed_on(addr: SocketAddrV4) -> Option<Ipv4Addr> {
    let mut conn =
        TcpStream::connect_timeout(&SocketAddr::V4(addr), Duration::from_millis(500)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    let mut octets = [0u8; 4];
    conn.read_exact(&mut octets).ok()?;
    Some(Ipv4Addr::from(octets))
}

/// The bench's namespace: every 10.200.0.0/14 address local, a route to the Service range
/// from 10.244.0.1 (inside --cluster-cidr: a pod's view, nothing masqueraded), and the
/// listener that tells which address it accepted on.
fn namespace(mode: ProxyMode) -> Netns {
    let ns = Netns::new(&format!("bench-{mode}"));
    ns.ip(&["addr", "add", "10.244.0.1/32", "dev", "lo"]);
    ns.ip(&["route", "add", "local", ENDPOINT_ROUTE, "dev", "lo"]);
    ns.ip(&[
        "route",
        "add",
        "10.96.0.0/12",
        "dev",
        "lo",
        "src",
        "10.244.0.1",
    ]);
    let (ready_tx, ready_rx) = mpsc::channel();
    ns.spawn(move || {
        let listener = TcpListener::bind(("0.0.0.0", TARGET_PORT)).unwrap();
        ready_tx.send(()).unwrap();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            if let Ok(SocketAddr::V4(local)) = conn.local_addr() {
                let _ = conn.write_all(&local.ip().octets());
            }
        }
    });
    ready_rx.recv().unwrap();
    ns
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Figures {
    full_median: Duration,
    full_max: Duration,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn summary(v: &mut [Duration]) -> String {
    v.sort();
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(pct(v, 0.5)),
        ms(pct(v, 0.99)),
        ms(v[v.len() - 1])
    )
}

#[allow(clippy::too_many_arguments)]
async fn run_mode(
    mode: ProxyMode,
    client: &kube::Client,
    cluster_ips: &[Ipv4Addr],
    endpoints: &mut [Vec<Ipv4Addr>],
    next_ip: &mut u32,
    changes: usize,
    rng: &mut u64,
) -> Figures {
    let ns = namespace(mode);
    let seen: SeenSlot = Arc::default();
    // Until the changes, the prober must not wait for the proxy.
    seen.lock().unwrap().at = Some(Instant::now());
    let prober = Prober::start(&ns, seen.clone());
    let config = RulesConfig {
        node_ip: None,
        cluster_cidr: Some("10.244.0.0/16".into()),
    };
    let (caches, feed) = proxy::cache::watch(client.clone());
    let _feed = Task::spawn(feed);
    let total = cluster_ips.len() + 1; // and the apiserver's own `kubernetes` Service
    let snapshot = loop {
        if let Some(ports) = caches.service_ports().filter(|p| p.len() >= total) {
            break ports;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // 1. Full syncs from scratch (the first onto an empty kernel).
    let mut syncer = Syncer::new(ns.runner(), mode, config);
    let mut full = Vec::new();
    for round in 0..FULL_ROUNDS {
        syncer.resync();
        let ports = snapshot.clone();
        let (back, stats) = tokio::task::spawn_blocking(move || {
            let stats = syncer.sync(&ports);
            (syncer, stats)
        })
        .await
        .unwrap();
        syncer = back;
        let stats = stats.unwrap_or_else(|e| panic!("{mode} full sync: {e}"));
        assert!(stats.full);
        println!(
            "{mode}: full sync {round}: {:.0} ms ({} lines, {} service ports)",
            ms(stats.took),
            stats.lines,
            stats.service_ports
        );
        full.push(stats.took);
    }
    full.sort();
    // Every Service answers from one of its endpoints.
    for s in [0, cluster_ips.len() / 2, cluster_ips.len() - 1] {
        let addr = SocketAddrV4::new(cluster_ips[s], 80);
        let want = endpoints[s][0];
        let found = tokio::task::block_in_place(|| prober.until(addr, want));
        assert!(found.is_some(), "{mode}: service {s} never reached {want}");
    }

    // 1b. Single-endpoint changes handed straight to the syncer: its own cost (render, diff,
    //     the command), without the API, the watch or probing.
    let mut direct = Vec::new();
    let mut rendering = Vec::new();
    let mut ports = snapshot.clone();
    for k in 0..DIRECT_CHANGES {
        let i = (next_random(rng) % ports.len() as u64) as usize;
        if ports[i].endpoints.is_empty() {
            continue;
        }
        let e = (next_random(rng) % ports[i].endpoints.len() as u64) as usize;
        let port = ports[i].endpoints[e].port();
        ports[i].endpoints[e] = SocketAddrV4::new(endpoint_ip(200_000 + k as u32), port);
        ports[i].endpoints.sort();
        let render_start = Instant::now();
        match mode {
            ProxyMode::Nftables => {
                let wanted = proxy::nftables::render(&ports, &RulesConfig::default());
                std::hint::black_box(proxy::nftables::transaction(&wanted, Some(&wanted)));
            }
            ProxyMode::Iptables => {
                let first =
                    proxy::rules::render(&ports, &RulesConfig::default(), &Default::default());
                std::hint::black_box(proxy::rules::render(
                    &ports,
                    &RulesConfig::default(),
                    &first.after,
                ));
            }
        }
        rendering.push(render_start.elapsed());
        let input = ports.clone();
        let (back, stats) = tokio::task::spawn_blocking(move || {
            let stats = syncer.sync(&input);
            (syncer, stats)
        })
        .await
        .unwrap();
        syncer = back;
        let stats = stats.unwrap_or_else(|e| panic!("{mode} change: {e}"));
        assert!(!stats.full);
        direct.push(stats.took);
    }
    let mut modelling: Vec<Duration> = (0..DIRECT_CHANGES)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(caches.service_ports());
            start.elapsed()
        })
        .collect();
    println!(
        "{mode}: one endpoint changed, handed to the syncer → transaction applied: {} \
         (the pure render and diff alone: {}; before it, the caches read as service ports: {})",
        summary(&mut direct),
        summary(&mut rendering),
        summary(&mut modelling)
    );
    // Back to what the API holds.
    let input = snapshot.clone();
    let (back, stats) = tokio::task::spawn_blocking(move || {
        let stats = syncer.sync(&input);
        (syncer, stats)
    })
    .await
    .unwrap();
    syncer = back;
    stats.unwrap();

    // 2. Endpoint changes through the API, the proxy's loop at its defaults.
    let periods = Periods::default();
    let changed = caches.changed.clone();
    let loop_caches = caches.clone();
    let loop_seen = seen.clone();
    let _sync = Task::spawn(proxy::sync::run(
        syncer,
        changed,
        move || {
            let ports = loop_caches.service_ports();
            let mut seen = loop_seen.lock().unwrap();
            if let (Some(want), None, Some(ports)) = (seen.want, seen.at, &ports) {
                if ports
                    .iter()
                    .any(|p| p.endpoints.iter().any(|e| *e.ip() == want))
                {
                    seen.at = Some(Instant::now());
                }
            }
            ports
        },
        periods,
    ));
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let mut latencies = Vec::new();
    let (mut to_seen, mut to_effect) = (Vec::new(), Vec::new());
    let mut tries = 0u64;
    let mut missed = 0;
    let probe_start = Instant::now();
    for _ in 0..changes {
        tokio::time::sleep(periods.min_sync + Duration::from_millis(5)).await;
        let s = (next_random(rng) % cluster_ips.len() as u64) as usize;
        let e = (next_random(rng) % endpoints[s].len() as u64) as usize;
        let new_ip = endpoint_ip(*next_ip);
        *next_ip += 1;
        endpoints[s][e] = new_ip;
        let service = format!("svc-{s}");
        let body = slice_body(&service, &endpoints[s]);
        *seen.lock().unwrap() = Seen {
            want: Some(new_ip),
            at: None,
        };
        let written = Instant::now();
        slices
            .patch(
                &format!("{service}-x"),
                &PatchParams::default(),
                &Patch::Merge(&body),
            )
            .await
            .unwrap();
        let addr = SocketAddrV4::new(cluster_ips[s], 80);
        match tokio::task::block_in_place(|| prober.until(addr, new_ip)) {
            Some((at, n)) => {
                latencies.push(at.saturating_duration_since(written));
                let seen_at = seen.lock().unwrap().at.unwrap_or(written);
                to_seen.push(seen_at.saturating_duration_since(written));
                to_effect.push(at.saturating_duration_since(seen_at));
                tries += u64::from(n);
            }
            None => missed += 1,
        }
    }
    let probing = probe_start.elapsed();
    assert!(!latencies.is_empty(), "{mode}: no change ever took effect");
    latencies.sort();
    let figures = Figures {
        full_median: full[full.len() / 2],
        full_max: full[full.len() - 1],
        p50: pct(&latencies, 0.5),
        p99: pct(&latencies, 0.99),
        max: latencies[latencies.len() - 1],
    };
    println!(
        "{mode}: full sync median {:.0} ms, max {:.0} ms ({FULL_ROUNDS} rounds)",
        ms(figures.full_median),
        ms(figures.full_max)
    );
    println!(
        "{mode}: endpoint change, EndpointSlice PATCH → a new connection reaches the new endpoint: \
         p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} changes, {missed} never seen; \
         {:.1} connections per change on average once the proxy had it; {:.0} s)",
        ms(figures.p50),
        ms(figures.p99),
        ms(figures.max),
        latencies.len(),
        tries as f64 / latencies.len() as f64,
        probing.as_secs_f64()
    );
    println!(
        "{mode}:   of which PATCH → the proxy's snapshot holds it (apiserver, etcd, watch, loop): {}",
        summary(&mut to_seen)
    );
    println!(
        "{mode}:   and that snapshot → a connection lands on it (render, {}, kernel, probing): {}",
        match mode {
            ProxyMode::Iptables => "iptables-restore",
            ProxyMode::Nftables => "nft",
        },
        summary(&mut to_effect)
    );
    figures
}

/// xorshift64: the bench's changes differ from run to run only by the seed (the clock).
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Whether the effective uid is 0 (`/proc/self/status`: `Uid: real effective ...`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        .unwrap_or(false)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // built by `cargo test --all-targets`: only `cargo bench` runs it
    }
    if !is_root() {
        println!("dataplane: skipped, needs root (network namespaces, netfilter)");
        return;
    }
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .filter_map(|a| a.parse().ok())
        .collect();
    let services = args.first().copied().unwrap_or(1000);
    let per_service = args.get(1).copied().unwrap_or(10);
    let changes = args.get(2).copied().unwrap_or(200);
    let started = Instant::now();
    println!(
        "dataplane: {services} Services × {per_service} endpoints, {changes} endpoint changes per mode; load {}",
        load_average()
    );

    let cluster = Cluster::start().await;
    let client = cluster.client();
    let service_api: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let created = futures::stream::iter(0..services)
        .map(|s| {
            let service_api = service_api.clone();
            async move {
                let svc: Service = serde_json::from_value(json!({
                    "metadata": {"name": format!("svc-{s}")},
                    "spec": {"ports": [{"port": 80, "targetPort": TARGET_PORT}]}
                }))
                .unwrap();
                let svc = service_api
                    .create(&PostParams::default(), &svc)
                    .await
                    .unwrap();
                let ip: Ipv4Addr = svc.spec.unwrap().cluster_ip.unwrap().parse().unwrap();
                (s, ip)
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let mut cluster_ips = vec![Ipv4Addr::UNSPECIFIED; services];
    for (s, ip) in created {
        cluster_ips[s] = ip;
    }
    let mut endpoints: Vec<Vec<Ipv4Addr>> = (0..services)
        .map(|s| {
            (0..per_service)
                .map(|e| endpoint_ip((s * per_service + e) as u32))
                .collect()
        })
        .collect();
    futures::stream::iter(0..services)
        .map(|s| {
            let slices = slices.clone();
            let body = slice_body(&format!("svc-{s}"), &endpoints[s]);
            async move {
                let slice: EndpointSlice = serde_json::from_value(body).unwrap();
                slices.create(&PostParams::default(), &slice).await.unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    println!(
        "dataplane: {} objects written through the API in {:.1} s",
        2 * services,
        started.elapsed().as_secs_f64()
    );

    let mut next_ip = (services * per_service) as u32;
    let mut rng = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos(),
    ) | 1;
    let mut figures = Vec::new();
    for mode in [ProxyMode::Iptables, ProxyMode::Nftables] {
        let f = run_mode(
            mode,
            &client,
            &cluster_ips,
            &mut endpoints,
            &mut next_ip,
            changes,
            &mut rng,
        )
        .await;
        figures.push((mode, f));
    }
    let (ipt, nft) = (&figures[0].1, &figures[1].1);
    let ratio = |n: Duration, i: Duration| n.as_secs_f64() / i.as_secs_f64();
    println!(
        "dataplane: nftables ÷ iptables: full sync median {:.3}×, change p50 {:.3}×, p99 {:.3}× \
         (goal: change p99 ≤ 50 ms, full sync ≤ 1 s; nftables {:.1} ms, {:.0} ms)",
        ratio(nft.full_median, ipt.full_median),
        ratio(nft.p50, ipt.p50),
        ratio(nft.p99, ipt.p99),
        ms(nft.p99),
        ms(nft.full_max),
    );
    println!(
        "dataplane: done in {:.0} s; load {}",
        started.elapsed().as_secs_f64(),
        load_average()
    );
}
