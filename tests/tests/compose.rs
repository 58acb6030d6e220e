//! The repository's `docker-compose.yml`, run as a user runs it (issue 13): the image built
//! offline by `hack/compose-images.sh` from this build's binaries (the components' own `main`s
//! compiled as this package's `e2e-*` binaries, as the quickstart test takes them; or
//! `$MINIK8S_BIN`), `up -d` under a project name and an image tag of the test's own, three
//! nodes that join with the bootstrap token and become Ready, a 6-replica Deployment whose pods
//! run on more than one node and reach each other across nodes (a ping), and a node container
//! stopped (NotReady, its pods replaced on the other nodes) and started again (Ready). `down -v` and the image's removal run on drop, also when the test fails.
//!
//! It needs a Docker engine and Compose (`docker-compose` v1 or `docker compose` v2) and skips,
//! saying why, where either is missing. Timings (image build, `up` to three Ready nodes) are
//! printed, as the lab's documentation quotes them (docs/labs/compose.md).

mod cluster;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const NODES: [&str; 3] = ["node-1", "node-2", "node-3"];

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: spread
spec:
  replicas: 6
  selector:
    matchLabels: {app: spread}
  template:
    metadata:
      labels: {app: spread}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: sleep
          image: busybox
          command: ["sleep", "3600"]
          resources:
            requests: {cpu: 10m, memory: 8Mi}
            limits: {cpu: 100m, memory: 32Mi}
"#;

/// One compose project of the test's own; `down -v`, the image's removal and the temporary
/// directory's on drop.
struct Lab {
    /// `docker-compose`, or `docker compose`.
    tool: Vec<String>,
    project: String,
    image: String,
    api_port: u16,
    dir: tempfile::TempDir,
}

impl Lab {
    fn new(tool: Vec<String>) -> Lab {
        let suffix = testkit::rand_hex();
        Lab {
            tool,
            project: format!("minik8s-e2e-{suffix}"),
            image: format!("minik8s-e2e:{suffix}"),
            api_port: testkit::free_port(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// `hack/compose-images.sh` with this build's binaries (or `$MINIK8S_BIN`'s).
    fn build_image(&self) {
        let bin = match std::env::var_os("MINIK8S_BIN").filter(|b| !b.is_empty()) {
            Some(bin) => PathBuf::from(bin),
            None => {
                let bin = self.dir.path().join("bin");
                cluster::link_binaries(&bin);
                bin
            }
        };
        let out = Command::new("bash")
            .arg(Lab::repo().join("hack/compose-images.sh"))
            .env("MINIK8S_BIN", bin)
            .env("MINIK8S_IMAGE", &self.image)
            .stdin(Stdio::null())
            .output()
            .expect("run hack/compose-images.sh");
        assert!(
            out.status.success(),
            "hack/compose-images.sh failed:\n{}",
            text(&out)
        );
    }

    /// The compose tool on the repository's file, with the test's project name, image and port.
    fn compose(&self, args: &[&str]) -> Output {
        Command::new(&self.tool[0])
            .args(&self.tool[1..])
            .arg("-f")
            .arg(Lab::repo().join("docker-compose.yml"))
            .args(["-p", &self.project])
            .args(args)
            .env("MINIK8S_IMAGE", &self.image)
            .env("MINIK8S_API_PORT", self.api_port.to_string())
            .stdin(Stdio::null())
            .output()
            .expect("run the compose tool")
    }

    /// A compose command that must succeed.
    fn compose_ok(&self, args: &[&str]) -> String {
        let out = self.compose(args);
        if !out.status.success() {
            panic!(
                "{} {} failed:\n{}\n{}",
                self.tool.join(" "),
                args.join(" "),
                text(&out),
                self.logs()
            );
        }
        text(&out)
    }

    /// The last lines of every service's log, for failure messages.
    fn logs(&self) -> String {
        let out = self.compose(&["logs", "--no-color", "--tail", "25"]);
        format!("--- compose logs ---\n{}", text(&out))
    }

    /// The admin's kubeconfig, read out of the `pki` volume (its server is the apiserver's
    /// name on the compose network; `kubectl` below points it at the published port).
    fn copy_admin_kubeconfig(&self) {
        let out = self.compose(&["exec", "-T", "apiserver", "cat", "/pki/admin.conf"]);
        assert!(out.status.success(), "{}", text(&out));
        std::fs::write(self.kubeconfig(), &out.stdout).unwrap();
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("admin.conf")
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(testkit::kubectl())
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--server")
            .arg(format!("https://127.0.0.1:{}", self.api_port))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl")
    }

    /// `kubectl get nodes`: name → Ready condition status.
    fn node_readiness(&self) -> Vec<(String, String)> {
        let out = self.kubectl(&[
            "get",
            "nodes",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
        ]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (name, ready) = l.split_once(' ')?;
                Some((name.to_string(), ready.trim().to_string()))
            })
            .collect()
    }

    /// The Deployment's Running pods with an address and not being deleted (an evicted pod of
    /// a lost node stays Terminating until the node is back or gone): (pod, node, pod IP).
    fn running_pods(&self) -> Vec<(String, String, String)> {
        let out = self.kubectl(&[
            "get",
            "pods",
            "-l",
            "app=spread",
            "-o",
            r#"jsonpath={range .items[*]}{.status.phase} {.metadata.name} {.spec.nodeName} {.status.podIP} {.metadata.deletionTimestamp}{"\n"}{end}"#,
        ]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut w = l.strip_prefix("Running ")?.split(' ');
                let (pod, node, ip) = (w.next()?, w.next()?, w.next()?);
                let deleted = w.next().is_some_and(|t| !t.is_empty());
                (!ip.is_empty() && !deleted)
                    .then(|| (pod.to_string(), node.to_string(), ip.to_string()))
            })
            .collect()
    }

    fn node_ready(&self, node: &str) -> Option<String> {
        self.node_readiness()
            .into_iter()
            .find(|(n, _)| n == node)
            .map(|(_, r)| r)
    }

    /// Poll `check` every second for `secs`; its value, or a panic with the logs.
    fn wait<T>(&self, secs: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = check() {
                return v;
            }
            if Instant::now() > deadline {
                let nodes = self.kubectl(&["get", "nodes,pods", "-o", "wide"]);
                panic!(
                    "timed out after {secs}s waiting for {what}\n{}\n{}",
                    text(&nodes),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let out = self.compose(&["down", "-v", "--remove-orphans", "--timeout", "5"]);
        if !out.status.success() {
            eprintln!("compose down failed:\n{}", text(&out));
        }
        let _ = Command::new("docker")
            .args(["image", "rm", "-f", &self.image])
            .output();
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The compose tool to use, or why there is none.
fn compose_tool() -> Result<Vec<String>, &'static str> {
    if !succeeds("docker", &["info"]) {
        return Err("no Docker engine answers `docker info`");
    }
    if succeeds("docker-compose", &["version"]) {
        return Ok(vec!["docker-compose".into()]);
    }
    if succeeds("docker", &["compose", "version"]) {
        return Ok(vec!["docker".into(), "compose".into()]);
    }
    Err("neither docker-compose nor `docker compose` is installed")
}

#[test]
fn compose_cluster_joins_three_nodes_runs_pods_and_survives_a_node_stop() {
    let tool = match compose_tool() {
        Ok(tool) => tool,
        Err(why) => {
            eprintln!("skipping the compose test: {why}");
            return;
        }
    };
    let lab = Lab::new(tool);

    let started = Instant::now();
    lab.build_image();
    eprintln!("image {} built in {:.1?}", lab.image, started.elapsed());

    let started = Instant::now();
    lab.compose_ok(&["up", "-d"]);
    lab.copy_admin_kubeconfig();
    lab.wait(120, "three Ready nodes", || {
        let nodes = lab.node_readiness();
        let ready: BTreeSet<&str> = nodes
            .iter()
            .filter(|(_, r)| r == "True")
            .map(|(n, _)| n.as_str())
            .collect();
        (ready == BTreeSet::from(NODES)).then_some(())
    });
    eprintln!("up to three Ready nodes in {:.1?}", started.elapsed());

    // pods on several nodes: the busybox image the runtime builds from the node's busybox
    let manifest = lab.dir.path().join("spread.yaml");
    std::fs::write(&manifest, DEPLOYMENT).unwrap();
    let out = lab.kubectl(&["apply", "-f", manifest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let started = Instant::now();
    let pods = lab.wait(120, "6 Running pods on more than one node", || {
        let running = lab.running_pods();
        let nodes: BTreeSet<&str> = running.iter().map(|(_, n, _)| n.as_str()).collect();
        (running.len() == 6 && nodes.len() > 1).then_some(running)
    });
    let nodes: BTreeSet<&str> = pods.iter().map(|(_, n, _)| n.as_str()).collect();
    eprintln!("6 pods Running on {nodes:?} in {:.1?}", started.elapsed());

    // a pod reaches a pod of another node (--route-pod-cidrs: host-gw routes between nodes)
    let (from, from_node, _) = &pods[0];
    let (_, to_node, to_ip) = pods.iter().find(|(_, n, _)| n != from_node).unwrap();
    let out = lab.kubectl(&["exec", from, "--", "ping", "-c", "1", "-W", "5", to_ip]);
    assert!(
        out.status.success(),
        "ping from {from} on {from_node} to {to_ip} on {to_node}:\n{}",
        text(&out)
    );

    // a node lost: NotReady once its Lease is older than the grace period (10 s here)
    let started = Instant::now();
    lab.compose_ok(&["stop", "node-2"]);
    lab.wait(60, "node-2 NotReady", || {
        lab.node_ready("node-2").filter(|r| r != "True").map(drop)
    });
    eprintln!("node-2 NotReady {:.1?} after its stop", started.elapsed());
    // its pods are evicted once their unreachable toleration (10 s) runs out, and replaced
    lab.wait(90, "6 Running pods, none on node-2", || {
        let running = lab.running_pods();
        (running.len() == 6 && running.iter().all(|(_, n, _)| n != "node-2")).then_some(())
    });
    eprintln!(
        "node-2's pods replaced on the other nodes {:.1?} after its stop",
        started.elapsed()
    );

    // and back: the kubelet reuses its kubelet.conf (no second join) and renews its Lease
    let started = Instant::now();
    lab.compose_ok(&["start", "node-2"]);
    lab.wait(60, "node-2 Ready again", || {
        (lab.node_ready("node-2").as_deref() == Some("True")).then_some(())
    });
    eprintln!("node-2 Ready {:.1?} after its start", started.elapsed());
    let nodes = lab.node_readiness();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
}
