//! The apiserver benchmark: what does the API layer cost on top of etcd?
//!
//! Everything runs in one process against one private etcd (`testkit::EtcdProcess`), and the
//! figures are compared as ratios, because the build machine is small, shared and noisy:
//! an absolute "creates per second" means little there, "the apiserver reaches 0.8× of what
//! etcd itself does" means a lot. The apiserver is the real `minik8s-apiserver` binary
//! (built by cargo for this bench, with the bench profile = release), run as a separate
//! process so its CPU and memory are not mixed with the clients'.
//!
//! 1. create throughput at 16 clients: raw etcd `If(ModRevision==0) Then Put` transactions
//!    versus `POST /api/v1/namespaces/default/pods`, alternated in rounds;
//! 2. GET latency of one pod, sequential;
//! 3. watch delivery latency: 1000 HTTP watchers, 200 creates a few ms apart, the time from
//!    each POST's response to each watcher's arrival of the event;
//! 4. resident memory of the idle server, and with 1000 watchers open.
//!
//! Run: `cargo bench -p minik8s-apiserver --bench apiserver`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use futures::StreamExt;
use serde_json::{json, Value};
use testkit::EtcdProcess;

const CLIENTS: usize = 16;
const CREATES_PER_ROUND: usize = 1500;
const ROUNDS: usize = 2;
const WARMUP: usize = 300;
const GETS: usize = 2000;
const WATCHERS: usize = 1000;
const WATCH_CHANGES: usize = 200;
const WATCH_SPACING: Duration = Duration::from_millis(20);

const GOAL_CREATE_RATIO: f64 = 0.70;
const GOAL_GET_P99_MS: f64 = 5.0;
const GOAL_WATCH_P99_MS: f64 = 10.0;
const GOAL_IDLE_RSS_MB: f64 = 20.0;

/// The `minik8s-apiserver` binary as its own process, killed on drop (also on panic).
struct ServerProcess {
    child: Child,
    url: String,
    log: PathBuf,
}

impl ServerProcess {
    fn start(etcd: &EtcdProcess) -> ServerProcess {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let prefix = format!("/registry-bench-{}", uuid::Uuid::new_v4().simple());
        let log = std::env::temp_dir().join(format!(
            "minik8s-bench-apiserver-{}.log",
            std::process::id()
        ));
        let child = Command::new(env!("CARGO_BIN_EXE_minik8s-apiserver"))
            .args(["--etcd-servers", &etcd.endpoint, "--etcd-prefix", &prefix])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("server log file"))
            .spawn()
            .expect("start minik8s-apiserver");
        ServerProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    async fn wait_ready(&mut self, http: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "minik8s-apiserver exited ({status}); see {}",
                    self.log.display()
                );
            }
            if let Ok(r) = http.get(format!("{}/readyz", self.url)).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "apiserver not ready; see {}",
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `VmRSS` in MB.
    fn rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("proc status");
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS");
        kb / 1024.0
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A small but realistic Pod, as a controller would create it.
fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"app": "bench", "tier": "web", "pod-template-hash": "7d4b9c8f6d"},
            "annotations": {"bench.minik8s.io/run": "1"}
        },
        "spec": {
            "containers": [{
                "name": "web",
                "image": "docker.io/library/nginx:1.27",
                "ports": [{"containerPort": 80, "name": "http"}],
                "env": [{"name": "MODE", "value": "production"}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 80}, "periodSeconds": 5}
            }],
            "restartPolicy": "Always"
        }
    })
}

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// CPU used by etcd, the apiserver and this benchmark's clients since `start`.
#[derive(Clone, Copy)]
struct Cpu {
    etcd: f64,
    server: f64,
    clients: f64,
}

impl Cpu {
    fn now(etcd: &EtcdProcess, server: Option<&ServerProcess>) -> Cpu {
        Cpu {
            etcd: cpu_secs(etcd.pid()),
            server: server.map(|s| cpu_secs(s.child.id())).unwrap_or(0.0),
            clients: cpu_secs(std::process::id()),
        }
    }

    /// "µs of CPU per operation" since `self`, per process.
    fn per_op(&self, now: Cpu, ops: usize) -> String {
        let us = |a: f64, b: f64| (b - a) * 1e6 / ops as f64;
        format!(
            "CPU/op: etcd {:.0} µs, apiserver {:.0} µs, clients {:.0} µs",
            us(self.etcd, now.etcd),
            us(self.server, now.server),
            us(self.clients, now.clients)
        )
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "FAIL"
    }
}

/// Run `total` operations on `CLIENTS` concurrent tasks; returns the elapsed time.
async fn concurrently<F, Fut>(total: usize, op: F) -> Duration
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (next, op) = (next.clone(), op.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    op(i).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
    start.elapsed()
}

async fn raw_creates(etcd: &Client, value: Arc<Vec<u8>>, tag: &str, total: usize) -> Duration {
    let (etcd, tag) = (etcd.clone(), tag.to_string());
    concurrently(total, move |i| {
        let (mut etcd, value, key) = (
            etcd.clone(),
            value.clone(),
            format!("/bench-raw/pods/default/{tag}-{i}"),
        );
        async move {
            let txn = Txn::new()
                .when([Compare::mod_revision(key.as_str(), CompareOp::Equal, 0)])
                .and_then([TxnOp::put(key.as_str(), value.to_vec(), None)]);
            let resp = etcd.txn(txn).await.expect("etcd txn");
            assert!(resp.succeeded(), "raw key {key} existed");
        }
    })
    .await
}

async fn api_creates(http: &reqwest::Client, url: &str, tag: &str, total: usize) -> Duration {
    let (http, tag) = (http.clone(), tag.to_string());
    let endpoint = format!("{url}/api/v1/namespaces/default/pods");
    concurrently(total, move |i| {
        let (http, endpoint, body) = (
            http.clone(),
            endpoint.clone(),
            serde_json::to_vec(&pod(&format!("{tag}-{i}"))).unwrap(),
        );
        async move {
            let resp = http
                .post(&endpoint)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("POST pod");
            let status = resp.status();
            let _ = resp.bytes().await;
            assert_eq!(status, reqwest::StatusCode::CREATED, "create pod");
        }
    })
    .await
}

struct WatchFigures {
    p50: f64,
    p99: f64,
    max: f64,
    deliveries: usize,
    missing: usize,
    early: usize,
    open_secs: f64,
    rss_open: f64,
    /// CPU per change (etcd, apiserver, clients), filled in by the caller.
    cpu: String,
}

/// One watcher on a plain HTTP/1.1 connection: note when each `wb-<i>` pod arrives, report
/// once all have, then keep the connection open until told to close. The client is kept as
/// light as it can be (no HTTP client library, no JSON parsing: each event is one chunk on the
/// wire and carries its name once), so that on a 2-core machine the measured latency is the
/// server's, not the clients'.
async fn watcher(
    mut conn: tokio::net::TcpStream,
    done: tokio::sync::mpsc::Sender<Vec<(usize, Instant)>>,
    mut close: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::AsyncReadExt;
    const NEEDLE: &[u8] = b"\"name\":\"wb-";
    let mut seen = Vec::with_capacity(WATCH_CHANGES);
    let mut buf = vec![0u8; 64 * 1024];
    // Bytes kept from the previous read, so a name split across two reads is still found.
    let mut carry = 0;
    while seen.len() < WATCH_CHANGES {
        let n = tokio::select! {
            n = conn.read(&mut buf[carry..]) => n,
            _ = close.changed() => break,
        };
        let Ok(n) = n else { break };
        if n == 0 {
            break;
        }
        let at = Instant::now();
        let data = &buf[..carry + n];
        let mut from = 0;
        let mut complete = data.len();
        while let Some(pos) = data[from..].windows(NEEDLE.len()).position(|w| w == NEEDLE) {
            let digits = from + pos + NEEDLE.len();
            let len = data[digits..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if digits + len == data.len() {
                // The name may continue in the next read.
                complete = from + pos;
                break;
            }
            let i: usize = std::str::from_utf8(&data[digits..digits + len])
                .unwrap()
                .parse()
                .unwrap();
            seen.push((i, at));
            from = digits + len;
        }
        let keep_from = complete
            .min(data.len().saturating_sub(NEEDLE.len()))
            .max(from);
        buf.copy_within(keep_from..carry + n, 0);
        carry = carry + n - keep_from;
    }
    let _ = done.send(seen).await;
    let _ = close.wait_for(|c| *c).await;
    drop(conn);
}

/// Open a watch as a raw HTTP/1.1 request; returns the connection once the 200 header is read.
async fn open_watch(addr: &str, path: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect watch");
    conn.set_nodelay(true).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\n\r\n");
    conn.write_all(req.as_bytes()).await.expect("send watch");
    // Read the response head byte by byte: the body must stay in the socket for the watcher.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(
            conn.read(&mut b).await.expect("watch response"),
            1,
            "watch closed early"
        );
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 200"), "watch answered {head}");
    conn
}

async fn watch_latency(http: &reqwest::Client, server: &ServerProcess) -> WatchFigures {
    let url = &server.url;
    let list: Value = http
        .get(format!("{url}/api/v1/namespaces/default/pods?limit=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .expect("list resourceVersion")
        .to_string();
    let addr = url.trim_start_matches("http://").to_string();
    let path = format!("/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}");
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel(WATCHERS);
    let (close_tx, close_rx) = tokio::sync::watch::channel(false);
    let opened = Instant::now();
    let mut opening = futures::stream::iter(0..WATCHERS)
        .map(|_| open_watch(&addr, &path))
        .buffer_unordered(64);
    while let Some(conn) = opening.next().await {
        tokio::spawn(watcher(conn, done_tx.clone(), close_rx.clone()));
    }
    drop(opening);
    drop(done_tx);
    let open_secs = opened.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let endpoint = format!("{url}/api/v1/namespaces/default/pods");
    let mut written = Vec::with_capacity(WATCH_CHANGES);
    for i in 0..WATCH_CHANGES {
        let resp = http
            .post(&endpoint)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&pod(&format!("wb-{i}"))).unwrap())
            .send()
            .await
            .expect("POST watched pod");
        assert_eq!(resp.status(), reqwest::StatusCode::CREATED);
        let _ = resp.bytes().await;
        written.push(Instant::now());
        tokio::time::sleep(WATCH_SPACING).await;
    }

    let mut latencies = Vec::with_capacity(WATCHERS * WATCH_CHANGES);
    let mut early = 0;
    let mut reported = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while reported < WATCHERS {
        match tokio::time::timeout_at(deadline, done_rx.recv()).await {
            Ok(Some(seen)) => {
                reported += 1;
                for (i, at) in seen {
                    let Some(w) = written.get(i) else { continue };
                    // An event can reach a watcher before the POST's response reaches the writer.
                    let ms = match at.checked_duration_since(*w) {
                        Some(d) => d.as_secs_f64() * 1e3,
                        None => {
                            early += 1;
                            0.0
                        }
                    };
                    latencies.push(ms);
                }
            }
            _ => break,
        }
    }
    let rss_open = server.rss_mb();
    let _ = close_tx.send(true);
    latencies.sort_by(|a, b| a.total_cmp(b));
    WatchFigures {
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
        max: latencies.last().copied().unwrap_or(f64::NAN),
        deliveries: latencies.len(),
        missing: WATCHERS * WATCH_CHANGES - latencies.len(),
        early,
        open_secs,
        rss_open,
        cpu: String::new(),
    }
}

async fn create_only(http: &reqwest::Client, server: &ServerProcess, etcd: &EtcdProcess) {
    let raw = Client::connect([etcd.endpoint.as_str()], None)
        .await
        .expect("connect etcd");
    let value = Arc::new(serde_json::to_vec(&pod("sample")).unwrap());
    let n = CREATES_PER_ROUND * ROUNDS;
    let c0 = Cpu::now(etcd, Some(server));
    let r = raw_creates(&raw, value, "p", n).await;
    let c1 = Cpu::now(etcd, Some(server));
    let a = api_creates(http, &server.url, "p", n).await;
    let c2 = Cpu::now(etcd, Some(server));
    eprintln!(
        "raw etcd {:.0}/s, {}",
        n as f64 / r.as_secs_f64(),
        c0.per_op(c1, n)
    );
    eprintln!(
        "apiserver {:.0}/s, {}",
        n as f64 / a.as_secs_f64(),
        c1.per_op(c2, n)
    );
}

fn main() {
    // `cargo bench` passes `--bench`; any filter argument is ignored: this is one scenario.
    let etcd = EtcdProcess::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(&etcd));
}

async fn run(etcd: &EtcdProcess) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut server = ServerProcess::start(etcd);
    server.wait_ready(&http).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = server.rss_mb();
    eprintln!(
        "apiserver pid {}, idle RSS {rss_idle:.1} MB",
        server.child.id()
    );
    // `APISERVER_BENCH_ONLY=create|watch` runs one part (for profiling the server with perf).
    let only = std::env::var("APISERVER_BENCH_ONLY").unwrap_or_default();

    // 3. Watch delivery first, while the store is small and nothing else is running.
    if only == "create" {
        return create_only(&http, &server, etcd).await;
    }
    let c0 = Cpu::now(etcd, Some(&server));
    let mut w = watch_latency(&http, &server).await;
    w.cpu = c0.per_op(Cpu::now(etcd, Some(&server)), WATCH_CHANGES);
    eprintln!(
        "watch: {} deliveries, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} missing, RSS {:.1} MB with {WATCHERS} watchers, {} per change",
        w.deliveries, w.p50, w.p99, w.max, w.missing, w.rss_open, w.cpu
    );
    if only == "watch" {
        return;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 1. Create throughput, raw etcd and apiserver alternated so drift hits both alike.
    let raw = Client::connect([etcd.endpoint.as_str()], None)
        .await
        .expect("connect etcd");
    let _ = api_creates(&http, &server.url, "warm", WARMUP).await;
    let sample: Value = http
        .get(format!(
            "{}/api/v1/namespaces/default/pods/warm-0",
            server.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let value = Arc::new(serde_json::to_vec(&sample).unwrap());
    let _ = raw_creates(&raw, value.clone(), "warm", WARMUP).await;
    let (mut raw_time, mut api_time) = (Duration::ZERO, Duration::ZERO);
    let zero = Cpu {
        etcd: 0.0,
        server: 0.0,
        clients: 0.0,
    };
    let (mut raw_cpu, mut api_cpu) = (zero, zero);
    let add = |sum: &mut Cpu, a: Cpu, b: Cpu| {
        sum.etcd += b.etcd - a.etcd;
        sum.server += b.server - a.server;
        sum.clients += b.clients - a.clients;
    };
    for round in 0..ROUNDS {
        let c0 = Cpu::now(etcd, Some(&server));
        let r = raw_creates(&raw, value.clone(), &format!("r{round}"), CREATES_PER_ROUND).await;
        let c1 = Cpu::now(etcd, Some(&server));
        let a = api_creates(&http, &server.url, &format!("c{round}"), CREATES_PER_ROUND).await;
        add(&mut raw_cpu, c0, c1);
        add(&mut api_cpu, c1, Cpu::now(etcd, Some(&server)));
        eprintln!(
            "round {round}: raw etcd {:.0}/s, apiserver {:.0}/s",
            CREATES_PER_ROUND as f64 / r.as_secs_f64(),
            CREATES_PER_ROUND as f64 / a.as_secs_f64()
        );
        raw_time += r;
        api_time += a;
    }
    let n = (CREATES_PER_ROUND * ROUNDS) as f64;
    let (raw_rate, api_rate) = (n / raw_time.as_secs_f64(), n / api_time.as_secs_f64());
    let ratio = api_rate / raw_rate;

    // 2. GET latency, one client, one connection.
    let get_url = format!("{}/api/v1/namespaces/default/pods/warm-1", server.url);
    let mut get_ms = Vec::with_capacity(GETS);
    for i in 0..(GETS + 200) {
        let t = Instant::now();
        let resp = http.get(&get_url).send().await.expect("GET pod");
        assert!(resp.status().is_success());
        let _ = resp.bytes().await;
        if i >= 200 {
            get_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    get_ms.sort_by(|a, b| a.total_cmp(b));
    let (get_p50, get_p99) = (percentile(&get_ms, 50.0), percentile(&get_ms, 99.0));
    let rss_end = server.rss_mb();

    let etcd_version = Command::new("etcd")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("etcd Version: ").map(str::to_string))
        });
    println!();
    println!(
        "apiserver benchmark (etcd {} on loopback, {CLIENTS} clients, {} value bytes; apiserver = release binary in its own process)",
        etcd_version.as_deref().unwrap_or("?"),
        value.len()
    );
    println!(
        "create: raw etcd {raw_rate:.0}/s, apiserver {api_rate:.0}/s → {ratio:.2}× (goal ≥ {GOAL_CREATE_RATIO:.2}×) {}",
        verdict(ratio >= GOAL_CREATE_RATIO)
    );
    println!(
        "        raw etcd {}",
        zero.per_op(raw_cpu, CREATES_PER_ROUND * ROUNDS)
    );
    println!(
        "        apiserver {}",
        zero.per_op(api_cpu, CREATES_PER_ROUND * ROUNDS)
    );
    println!(
        "get:    p50 {get_p50:.2} ms, p99 {get_p99:.2} ms over {GETS} sequential GETs (goal p99 ≤ {GOAL_GET_P99_MS} ms) {}",
        verdict(get_p99 <= GOAL_GET_P99_MS)
    );
    println!(
        "watch:  {WATCHERS} watchers × {WATCH_CHANGES} creates {} ms apart: p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms, {} missing, {} early (goal p99 ≤ {GOAL_WATCH_P99_MS} ms) {}",
        WATCH_SPACING.as_millis(),
        w.p50,
        w.p99,
        w.max,
        w.missing,
        w.early,
        verdict(w.p99 <= GOAL_WATCH_P99_MS && w.missing == 0)
    );
    println!("        per change: {}", w.cpu);
    println!(
        "rss:    idle {rss_idle:.1} MB (goal ≤ {GOAL_IDLE_RSS_MB} MB) {}; {:.1} MB with {WATCHERS} watchers (opened in {:.2} s); {rss_end:.1} MB after {} creates",
        verdict(rss_idle <= GOAL_IDLE_RSS_MB),
        w.rss_open,
        w.open_secs,
        WARMUP + CREATES_PER_ROUND * ROUNDS + WATCH_CHANGES
    );
}
