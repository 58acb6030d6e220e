//! minikctl against the real kubectl, in the same run on the same apiserver: the wall time of
//! `get pods` over 1000 pods and of `apply -f` of a 100-object file, as a user types them.
//!
//! Both binaries run as fresh processes, alternating round by round so that the machine's noise
//! falls on both. kubectl keeps discovery (and the OpenAPI schema apply asks for) in a cache
//! dir: it runs once with a fresh one each time, as a first-time user's (or a CI job's) does,
//! and once with a warm one. minikctl has no cache: discovery is two requests (aggregated
//! `/api` and `/apis`), so it runs the same way every time. The goal (issue 12) is at most
//! 0.5× kubectl's wall time for each. A `testkit::Cluster` (etcd + the apiserver, in-process)
//! is all it needs: the pods are created directly through the API and never run.
//!
//! `cargo bench -p minik8s-cli --bench kubectl_ab [-- ROUNDS]` (as root, like every test here;
//! ROUNDS defaults to 7).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::json;

const MINIKCTL: &str = env!("CARGO_BIN_EXE_minikctl");
const PODS: usize = 1000;
const OBJECTS: usize = 100;

/// Which client a timing is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tool {
    Minikctl,
    /// kubectl with an empty cache dir: discovery (and OpenAPI for apply) fetched anew.
    KubectlFresh,
    /// kubectl with the cache a previous run left.
    KubectlWarm,
}

const TOOLS: [Tool; 3] = [Tool::Minikctl, Tool::KubectlFresh, Tool::KubectlWarm];

/// What the bench runs commands with: the server, kubectl, a scratch dir for caches and files.
struct Bench {
    url: String,
    kubectl: PathBuf,
    dir: tempfile::TempDir,
    warm_cache: PathBuf,
    runs: usize,
}

impl Bench {
    /// The command line of `tool` aimed at the server, in namespace `ns`, with `args`.
    fn command(&self, tool: Tool, ns: &str, args: &[&str]) -> tokio::process::Command {
        let mut cmd = match tool {
            Tool::Minikctl => tokio::process::Command::new(MINIKCTL),
            Tool::KubectlFresh | Tool::KubectlWarm => {
                let cache = match tool {
                    Tool::KubectlWarm => self.warm_cache.clone(),
                    _ => self
                        .dir
                        .path()
                        .join(format!("cache-{}", testkit::rand_hex())),
                };
                let mut cmd = tokio::process::Command::new(&self.kubectl);
                cmd.arg("--cache-dir").arg(cache);
                cmd
            }
        };
        cmd.args(["--server", &self.url, "-n", ns])
            .args(args)
            .env("KUBECONFIG", "/dev/null")
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Run `tool ARGS` in `ns`; its wall time and stdout. Panics (with stderr) if it fails.
    async fn timed(&self, tool: Tool, ns: &str, args: &[&str]) -> (Duration, String) {
        let mut cmd = self.command(tool, ns, args);
        let start = Instant::now();
        let out = cmd.output().await.expect("run the client");
        let took = start.elapsed();
        assert!(
            out.status.success(),
            "{tool:?} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (took, String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Create `n` pods in `ns` through the API, 16 at a time.
async fn create_pods(client: &kube::Client, ns: &str, n: usize) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    stream::iter(0..n)
        .map(|i| {
            let pods = pods.clone();
            async move {
                let pod = testkit::objects::pod_json(&format!("pod-{i:04}"), json!({"app": "ab"}));
                let pod: Pod = serde_json::from_value(pod).unwrap();
                pods.create(&PostParams::default(), &pod).await.unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

/// A manifest of `OBJECTS` objects, half Pods, half Deployments, no namespace: `-n` picks it.
fn manifest(dir: &Path) -> PathBuf {
    let mut docs = Vec::new();
    for i in 0..OBJECTS / 2 {
        docs.push(format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p{i}\n  labels: {{app: p{i}}}\n\
             spec:\n  containers:\n  - name: main\n    image: busybox\n    command: [sleep, \"3600\"]\n"
        ));
        docs.push(format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d{i}\n\
             spec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: d{i}}}\n\
             \x20 template:\n    metadata:\n      labels: {{app: d{i}}}\n\
             \x20   spec:\n      containers:\n      - name: web\n        image: busybox\n"
        ));
    }
    let path = dir.join("objects.yaml");
    std::fs::write(&path, docs.join("---\n")).unwrap();
    path
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `get pods` over the 1000 pods, every tool `runs` times, alternating; the medians.
async fn get_pods(b: &Bench) -> Vec<(Tool, Duration)> {
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); TOOLS.len()];
    for round in 0..b.runs {
        for (i, tool) in TOOLS.iter().enumerate().cycle().skip(round).take(3) {
            let (took, out) = b.timed(*tool, "ab", &["get", "pods"]).await;
            assert_eq!(out.lines().count(), PODS + 1, "{tool:?}: header and rows");
            times[i].push(took);
        }
    }
    TOOLS
        .iter()
        .copied()
        .zip(times.into_iter().map(median))
        .collect()
}

/// `apply -f` of the 100-object file into a new namespace per run; the medians.
async fn apply(b: &Bench, client: &kube::Client, file: &Path) -> Vec<(Tool, Duration)> {
    let file = file.to_str().unwrap();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); TOOLS.len()];
    for round in 0..b.runs {
        for (i, tool) in TOOLS.iter().enumerate().cycle().skip(round).take(3) {
            let ns = format!("apply-{i}-{round}");
            testkit::objects::namespace(client, &ns).await;
            let (took, out) = b.timed(*tool, &ns, &["apply", "-f", file]).await;
            let created = out.lines().filter(|l| l.ends_with(" created")).count();
            assert_eq!(created, OBJECTS, "{tool:?}: {out}");
            times[i].push(took);
        }
    }
    TOOLS
        .iter()
        .copied()
        .zip(times.into_iter().map(median))
        .collect()
}

/// One line per client: its median and, for kubectl, minikctl's time over it.
fn report(what: &str, medians: &[(Tool, Duration)]) {
    let ours = medians[0].1;
    println!("{what}:");
    for (tool, t) in medians {
        let ms = t.as_secs_f64() * 1e3;
        match tool {
            Tool::Minikctl => println!("  minikctl                    {ms:8.1} ms"),
            _ => println!(
                "  {:<27} {ms:8.1} ms   minikctl/kubectl = {:.2}x",
                match tool {
                    Tool::KubectlFresh => "kubectl, fresh cache dir",
                    _ => "kubectl, warm cache dir",
                },
                ours.as_secs_f64() / t.as_secs_f64()
            ),
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(7);
    let cluster = testkit::Cluster::start().await;
    let client = cluster.client();
    let dir = tempfile::Builder::new()
        .prefix("minik8s-kubectl-ab-")
        .tempdir()
        .unwrap();
    let b = Bench {
        url: cluster.url().to_string(),
        kubectl: testkit::kubectl(),
        warm_cache: dir.path().join("warm-cache"),
        dir,
        runs,
    };
    testkit::objects::namespace(&client, "ab").await;
    let start = Instant::now();
    create_pods(&client, "ab", PODS).await;
    println!(
        "{PODS} pods created through the API in {:?}; {runs} runs each, alternating\n",
        start.elapsed()
    );
    // the warm cache: what kubectl keeps after a first get and a first apply
    b.timed(Tool::KubectlWarm, "ab", &["get", "pods"]).await;
    let file = manifest(b.dir.path());
    testkit::objects::namespace(&client, "warm-up").await;
    let warm_up = file.to_str().unwrap();
    b.timed(Tool::KubectlWarm, "warm-up", &["apply", "-f", warm_up])
        .await;

    report(&format!("get pods ({PODS} pods)"), &get_pods(&b).await);
    report(
        &format!("apply -f ({OBJECTS} objects, new namespace)"),
        &apply(&b, &client, &file).await,
    );
}
