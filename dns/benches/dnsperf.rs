//! Queries per second for Service A records: `dnsperf` against `minik8s-dns` and against
//! `dnsmasq` serving the same records, in the same run, taking turns.
//!
//! `cargo bench -p minik8s-dns --bench dnsperf [-- ROUNDS SECS SERVICES]` (3 rounds of 10 s,
//! 1000 Services by default; needs Debian's `dnsperf` and `dnsmasq-base`).
//!
//! A real etcd and apiserver (testkit) get `SERVICES` ClusterIP Services, created 32 at a time
//! through the API. Our server is the `minik8s-dns` binary of this bench's own build (the
//! `bench` profile, i.e. release), run as a separate process with `--upstream none` exactly as
//! an operator would run it, so that it and dnsmasq are measured alike: each its own process,
//! its CPU read from its own `/proc/PID/stat`, neither sharing a runtime with the bench. dnsmasq
//! (`-k`, no resolv.conf, no /etc/hosts) reads the same names and ClusterIPs from a hosts file.
//! Both listen on loopback ports; the bench waits until each answers every name with the
//! right address, then:
//!
//! - throughput: per round, one `dnsperf -l SECS` against each (the first alternating), the
//!   same query file (every name once, in a fixed shuffled order, looped), the same
//!   `-c 4 -q 100`; dnsperf's queries/s, and each server's CPU time (utime + stime) over the
//!   run divided by the queries it answered, and dnsperf's own (the bench's reaped children's
//!   cutime + cstime): server and client share the cores, so their sum per query bounds the
//!   rate the machine can give either server;
//! - latency: per round, `dnsperf -v -Q RATE -l 5` against each at a fixed rate both servers
//!   keep up with (at saturation the latency is dnsperf's queue, `-q` / qps, not the server's);
//!   p50 and p99 of the per-query latencies that `-v` prints (dnsperf 2.10 has no latency
//!   histogram option).
//!
//! Every process the bench starts is killed (by its pid, through its `Child`) when the bench
//! ends or fails; the temporary directory is removed.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde_json::json;
use testkit::{free_port, ChildGuard, Cluster};
use tokio::net::UdpSocket;

/// dnsperf's settings, the same for both servers.
const CLIENTS: &str = "4";
const OUTSTANDING: &str = "100";
/// The fixed rate of the latency runs, queries/s, and their length.
const LATENCY_QPS: &str = "10000";
const LATENCY_SECS: &str = "5";
/// How many Services are created side by side.
const CREATE_CONCURRENCY: usize = 32;

/// The temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server under test: its name, address and process.
struct Target {
    name: &'static str,
    addr: SocketAddr,
    process: ChildGuard,
}

impl Target {
    /// Its CPU time so far (utime and stime of /proc/PID/stat), in seconds.
    fn cpu_secs(&self) -> (f64, f64) {
        proc_cpu_secs(&format!("/proc/{}/stat", self.process.0.id()), 14)
    }
}

/// Fields `first` and `first + 1` (numbered from 1 as in proc(5): 14 and 15 are utime and
/// stime, 16 and 17 cutime and cstime) of a /proc stat file, in seconds.
fn proc_cpu_secs(path: &str, first: usize) -> (f64, f64) {
    let stat = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    // The command name, field 2, is in parentheses and may hold spaces: count after it, from
    // field 3.
    let rest = &stat[stat.rfind(')').expect("a stat line") + 2..];
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let hz = clock_ticks() as f64;
    (fields[first - 3] as f64 / hz, fields[first - 2] as f64 / hz)
}

/// The kernel's clock ticks per second (USER_HZ, 100 on Linux' usual builds).
fn clock_ticks() -> u64 {
    let out = Command::new("getconf").arg("CLK_TCK").output();
    out.ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

/// The CPU time of this process' reaped children (dnsperf runs), in seconds.
fn children_cpu_secs() -> f64 {
    let (user, sys) = proc_cpu_secs("/proc/self/stat", 16);
    user + sys
}

/// One A question over UDP; the address answered, if any.
async fn resolve(server: SocketAddr, name: &str) -> Option<Ipv4Addr> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.ok()?;
    let mut query = Message::query();
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(
        Name::from_ascii(format!("{name}.")).ok()?,
        RecordType::A,
    ));
    socket.send_to(&query.to_vec().ok()?, server).await.ok()?;
    let mut buf = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    let response = Message::from_vec(&buf[..n]).ok()?;
    response.answers.iter().find_map(|r| match &r.data {
        RData::A(a) => Some(a.0),
        _ => None,
    })
}

/// Wait up to `secs` until `server` answers every name with its address.
async fn wait_all_answered(target: &Target, records: &[(String, Ipv4Addr)], secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut wrong = records.len();
    while Instant::now() < deadline {
        wrong = 0;
        for (name, ip) in records {
            if resolve(target.addr, name).await != Some(*ip) {
                wrong += 1;
            }
        }
        if wrong == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "{} still answers {wrong} of {} names wrongly after {secs} s",
        target.name,
        records.len()
    );
}

/// Create `n` ClusterIP Services `svc-<i>` in `default`; their names and allocated IPs.
async fn create_services(client: &kube::Client, n: usize) -> Vec<(String, Ipv4Addr)> {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..CREATE_CONCURRENCY {
        let services: Api<Service> = Api::namespaced(client.clone(), "default");
        tasks.spawn(async move {
            let mut created = Vec::new();
            for i in (worker..n).step_by(CREATE_CONCURRENCY) {
                let service: Service = serde_json::from_value(json!({
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": format!("svc-{i}")},
                    "spec": {"selector": {"app": format!("app-{i}")},
                             "ports": [{"port": 80, "targetPort": 8080}]},
                }))
                .unwrap();
                let service = services
                    .create(&PostParams::default(), &service)
                    .await
                    .unwrap_or_else(|e| panic!("creating svc-{i}: {e}"));
                let ip = service
                    .spec
                    .and_then(|s| s.cluster_ip)
                    .expect("an allocated ClusterIP")
                    .parse()
                    .unwrap();
                created.push((i, ip));
            }
            created
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(created) = tasks.join_next().await {
        all.extend(created.unwrap());
    }
    all.sort();
    all.into_iter()
        .map(|(i, ip)| (format!("svc-{i}.default.svc.cluster.local"), ip))
        .collect()
}

/// The names in a fixed pseudo-random order (xorshift, so every run asks in the same order).
fn shuffled(records: &[(String, Ipv4Addr)]) -> Vec<&str> {
    let mut names: Vec<&str> = records.iter().map(|(n, _)| n.as_str()).collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in (1..names.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        names.swap(i, (state % (i as u64 + 1)) as usize);
    }
    names
}

/// One throughput run's figures.
struct Throughput {
    qps: f64,
    completed: u64,
    lost: u64,
    avg_latency_ms: f64,
    /// The server's CPU time per answered query, microseconds: user, system.
    server_user_us: f64,
    server_sys_us: f64,
    /// dnsperf's CPU time per answered query, microseconds.
    dnsperf_cpu_us: f64,
}

/// The number after `label` on a line of dnsperf's report.
fn stat(report: &str, label: &str) -> f64 {
    report
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in dnsperf's report:\n{report}"))
}

fn dnsperf(target: &Target, queries: &Path, extra: &[&str]) -> std::process::Output {
    let port = target.addr.port().to_string();
    let output = Command::new("dnsperf")
        .args(["-s", "127.0.0.1", "-p", &port, "-d"])
        .arg(queries)
        .args(["-c", CLIENTS, "-q", OUTSTANDING, "-t", "2"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running dnsperf (apt-get install dnsperf): {e}"));
    assert!(
        output.status.success(),
        "dnsperf against {}: {}\n{}",
        target.name,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn throughput(target: &Target, queries: &Path, secs: &str) -> Throughput {
    let (server_before, dnsperf_before) = (target.cpu_secs(), children_cpu_secs());
    let output = dnsperf(target, queries, &["-l", secs]);
    let (server_after, dnsperf_after) = (target.cpu_secs(), children_cpu_secs());
    let report = String::from_utf8_lossy(&output.stdout);
    let completed = stat(&report, "Queries completed:") as u64;
    let noerror: u64 = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Response codes:"))
        .and_then(|codes| {
            codes
                .split_whitespace()
                .skip_while(|w| *w != "NOERROR")
                .nth(1)
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert_eq!(
        noerror, completed,
        "{} answered other than NOERROR:\n{report}",
        target.name
    );
    let per_query = |secs: f64| secs * 1e6 / completed.max(1) as f64;
    Throughput {
        qps: stat(&report, "Queries per second:"),
        completed,
        lost: stat(&report, "Queries lost:") as u64,
        avg_latency_ms: stat(&report, "Average Latency (s):") * 1e3,
        server_user_us: per_query(server_after.0 - server_before.0),
        server_sys_us: per_query(server_after.1 - server_before.1),
        dnsperf_cpu_us: per_query(dnsperf_after - dnsperf_before),
    }
}

/// The per-query latencies (ms) of a `dnsperf -v` run at a fixed rate, sorted; and how many
/// queries were lost.
fn latencies(target: &Target, queries: &Path) -> (Vec<f64>, u64) {
    let output = dnsperf(
        target,
        queries,
        &["-v", "-Q", LATENCY_QPS, "-l", LATENCY_SECS],
    );
    let report = String::from_utf8_lossy(&output.stdout);
    let mut latencies: Vec<f64> = report
        .lines()
        .filter_map(|l| l.strip_prefix("> NOERROR "))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|s| s * 1e3)
        .collect();
    assert!(
        !latencies.is_empty(),
        "no latencies from {}:\n{report}",
        target.name
    );
    latencies.sort_by(f64::total_cmp);
    (latencies, stat(&report, "Queries lost:") as u64)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn start_ours(cluster: &Cluster, dir: &Path) -> Target {
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let log = std::fs::File::create(dir.join("minik8s-dns.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_minik8s-dns"))
        .args(["--server", cluster.url(), "--listen"])
        .arg(addr.to_string())
        .args(["--upstream", "none"])
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting minik8s-dns");
    Target {
        name: "minik8s-dns",
        addr,
        process: ChildGuard(child),
    }
}

fn start_dnsmasq(dir: &Path, records: &[(String, Ipv4Addr)]) -> Target {
    let hosts = dir.join("hosts");
    let text: String = records
        .iter()
        .map(|(name, ip)| format!("{ip} {name}\n"))
        .collect();
    std::fs::write(&hosts, text).unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let child = Command::new("dnsmasq")
        .args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--pid-file=",
            "--user=root",
            "--cache-size=10000",
        ])
        .arg(format!("--port={}", addr.port()))
        .arg(format!("--addn-hosts={}", hosts.display()))
        .arg(format!(
            "--log-facility={}",
            dir.join("dnsmasq.log").display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting dnsmasq (apt-get install dnsmasq-base): {e}"));
    Target {
        name: "dnsmasq",
        addr,
        process: ChildGuard(child),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // built by `cargo test --all-targets`: only `cargo bench` runs it
    }
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .map(|a| a.parse().expect("ROUNDS SECS SERVICES are numbers"))
        .collect();
    let rounds = args.first().copied().unwrap_or(3);
    let secs = args.get(1).copied().unwrap_or(10).to_string();
    let n = args.get(2).copied().unwrap_or(1000);
    for tool in ["dnsperf", "dnsmasq"] {
        let found = std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(tool).exists()));
        assert!(
            found,
            "{tool} is missing: apt-get install dnsperf dnsmasq-base"
        );
    }

    let dir = std::env::temp_dir().join(format!("minik8s-dnsperf-{}", testkit::rand_hex()));
    std::fs::create_dir_all(&dir).unwrap();
    let _dir = TempDir(dir.clone());
    let cluster = Cluster::start().await;
    let started = Instant::now();
    let records = create_services(&cluster.client(), n).await;
    println!(
        "{n} Services created in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let queries = dir.join("queries");
    let text: String = shuffled(&records)
        .into_iter()
        .map(|name| format!("{name} A\n"))
        .collect();
    std::fs::write(&queries, text).unwrap();

    let ours = start_ours(&cluster, &dir);
    let dnsmasq = start_dnsmasq(&dir, &records);
    let started = Instant::now();
    wait_all_answered(&ours, &records, 30).await;
    println!(
        "minik8s-dns answers all {n} names {:.2} s after its start",
        started.elapsed().as_secs_f64()
    );
    wait_all_answered(&dnsmasq, &records, 10).await;
    let targets = [&ours, &dnsmasq];
    println!(
        "dnsperf -c {CLIENTS} -q {OUTSTANDING} -l {secs}, {} rounds; CPU per query from /proc/PID/stat",
        rounds
    );

    let mut qps: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut cpu: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut client_cpu: HashMap<&str, Vec<f64>> = HashMap::new();
    let mut lat: HashMap<&str, Vec<f64>> = HashMap::new();
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [targets[0], targets[1]]
        } else {
            [targets[1], targets[0]]
        };
        for target in order {
            let t = throughput(target, &queries, &secs);
            println!(
                "round {round}: {:<12} {:>9.0} q/s  avg {:.3} ms  lost {}/{}  server CPU {:.2} µs/q (user {:.2} + sys {:.2})  dnsperf CPU {:.2} µs/q",
                target.name,
                t.qps,
                t.avg_latency_ms,
                t.lost,
                t.completed,
                t.server_user_us + t.server_sys_us,
                t.server_user_us,
                t.server_sys_us,
                t.dnsperf_cpu_us
            );
            qps.entry(target.name).or_default().push(t.qps);
            cpu.entry(target.name)
                .or_default()
                .push(t.server_user_us + t.server_sys_us);
            client_cpu
                .entry(target.name)
                .or_default()
                .push(t.dnsperf_cpu_us);
        }
        for target in order {
            let (sorted, lost) = latencies(target, &queries);
            println!(
                "round {round}: {:<12} at {LATENCY_QPS} q/s: p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms  ({} answers, {lost} lost)",
                target.name,
                percentile(&sorted, 50.0),
                percentile(&sorted, 99.0),
                sorted[sorted.len() - 1],
                sorted.len()
            );
            lat.entry(target.name).or_default().extend(sorted);
        }
    }

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ours_qps = median(qps.get_mut("minik8s-dns").unwrap());
    let theirs_qps = median(qps.get_mut("dnsmasq").unwrap());
    println!("--");
    for name in ["minik8s-dns", "dnsmasq"] {
        let all = lat.get_mut(name).unwrap();
        all.sort_by(f64::total_cmp);
        let (server_us, client_us) = (
            median(cpu.get_mut(name).unwrap()),
            median(client_cpu.get_mut(name).unwrap()),
        );
        println!(
            "{name:<12} median {:>9.0} q/s; at {LATENCY_QPS} q/s p50 {:.3} ms, p99 {:.3} ms (all rounds)",
            median(qps.get_mut(name).unwrap()),
            percentile(all, 50.0),
            percentile(all, 99.0),
        );
        // Both processes share the machine's cores: what one query costs them together bounds
        // the rate the machine can reach with nothing else running.
        println!(
            "{:<12} CPU per query: server {server_us:.2} + dnsperf {client_us:.2} = {:.2} µs → {cores} cores ÷ that = {:.0} q/s at most",
            "",
            server_us + client_us,
            cores as f64 * 1e6 / (server_us + client_us),
        );
    }
    println!(
        "minik8s-dns / dnsmasq: {:.2}× queries per second (goal ≥ 1.0×)",
        ours_qps / theirs_qps
    );
}
