//! The README's first command, `hack/quickstart.sh`, run the way a user runs it, against this
//! build's binaries (`MINIK8S_BIN`: the components' own `main`s compiled as this package's
//! `e2e-*` binaries), with a lab name, state root and kubeconfig of the test's own.
//!
//! It checks what a new user sees: `minikctl cluster up` brings up a two-node lab, `minikctl`
//! applies the sample workload, which comes up spread over both nodes with every pod at
//! RESTARTS 0, a pod reaches the sample's Service by its DNS name, and the closing `minikctl
//! inspect pod` names the pod's etcd key, its process and namespaces as `/proc` has them; the
//! logs carry no colour codes, `down` removes the lab's data so that a second `quickstart.sh`
//! starts empty, and afterwards the kernel holds nothing of the lab (processes, network
//! namespaces, mounts, the nodes' cgroup roots).

mod cluster;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use cluster::{rand_hex, skip_unless_root};

/// One quickstart lab of the test's own; `down` on drop, also when the test panics.
struct Quickstart {
    dir: PathBuf,
    lab: String,
}

impl Quickstart {
    fn new() -> Quickstart {
        let dir = std::env::temp_dir().join(format!("minik8s-quickstart-{}", rand_hex()));
        cluster::link_binaries(&dir.join("bin"));
        Quickstart {
            dir,
            lab: format!("q{}", &rand_hex()[..6]),
        }
    }

    /// The lab's state directory.
    fn state(&self) -> PathBuf {
        self.dir.join("labs").join(&self.lab)
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// `hack/quickstart.sh ARGS`, with its output kept for the assertion messages.
    fn run(&self, args: &[&str]) -> Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack/quickstart.sh");
        Command::new("bash")
            .arg(script)
            .args(args)
            .env("MINIK8S_LAB", &self.lab)
            .env("MINIK8S_BIN", self.dir.join("bin"))
            .env("MINIK8S_LAB_DIR", self.dir.join("labs"))
            .env("KUBECONFIG", self.kubeconfig())
            .env("KUBECTL", testkit::kubectl())
            .stdin(Stdio::null())
            .output()
            .expect("run hack/quickstart.sh")
    }

    /// `quickstart.sh`, which must succeed; its output.
    fn up(&self) -> String {
        let out = self.run(&[]);
        assert!(
            out.status.success(),
            "quickstart.sh failed:\n{}",
            text(&out)
        );
        assert!(text(&out).contains("minik8s is up"), "{}", text(&out));
        text(&out)
    }

    fn down(&self) {
        let out = self.run(&["down"]);
        assert!(
            out.status.success(),
            "quickstart.sh down failed:\n{}",
            text(&out)
        );
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(testkit::kubectl())
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .output()
            .expect("run kubectl")
    }
}

impl Drop for Quickstart {
    fn drop(&mut self) {
        if self.state().exists() {
            let _ = self.run(&["down"]);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `name restartCount...` per pod, the pods' UIDs and the nodes they run on.
type Pods = (Vec<(String, Vec<u32>)>, BTreeSet<String>, BTreeSet<String>);

fn pods(q: &Quickstart) -> Pods {
    let out = q.kubectl(&[
        "get",
        "pods",
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.name} {.metadata.uid} {.spec.nodeName} {.status.containerStatuses[*].restartCount}{"\n"}{end}"#,
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let mut restarts = Vec::new();
    let (mut uids, mut nodes) = (BTreeSet::new(), BTreeSet::new());
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut words = line.split_whitespace();
        let (Some(name), Some(uid), Some(node)) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        uids.insert(uid.to_string());
        nodes.insert(node.to_string());
        restarts.push((
            name.to_string(),
            words.map(|n| n.parse().unwrap()).collect(),
        ));
    }
    (restarts, uids, nodes)
}

/// The sample applied with minikctl, and its closing `inspect pod hello` true to the kernel:
/// the pod's etcd key, the host pid of its container and that process's namespace inodes.
fn check_minikctl_output(out: &str) {
    for want in [
        "+ minikctl apply -f manifests/hello-deployment.yaml",
        "deployment.apps/hello created",
        "pod/hello created",
        "service/web created",
        // the Service's name, resolved by the cluster DNS, reaches a pod of the Deployment
        "hello from hello-",
        "+ minikctl inspect pod hello",
        "/registry/pods/default/hello (resourceVersion ",
        "Container main",
        "shared with the pod",
        "  cgroup:",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
    // `  process:        host pid 1234: sh -c while true; ...`
    let pid: i64 = out
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("process:"))
        .and_then(|l| l.trim().strip_prefix("host pid "))
        .and_then(|l| l.split(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no host pid in the inspect output:\n{out}"));
    for kind in ["net", "pid", "mnt"] {
        use std::os::unix::fs::MetadataExt;
        let inode = fs::metadata(format!("/proc/{pid}/ns/{kind}"))
            .unwrap()
            .ino();
        let want = format!("{kind}:[{inode}]");
        assert!(out.contains(&want), "{want} missing from:\n{out}");
    }
}

#[test]
fn quickstart_runs_the_sample_and_down_leaves_nothing() {
    if skip_unless_root("quickstart_runs_the_sample_and_down_leaves_nothing") {
        return;
    }
    let q = Quickstart::new();
    let out = q.up();
    check_minikctl_output(&out);
    assert!(out.contains("nodes joined and Ready"), "{out}");

    let (restarts, mut uids, nodes) = pods(&q);
    assert_eq!(
        restarts.len(),
        4,
        "the Deployment's 3 pods and the pod: {restarts:?}"
    );
    assert!(
        restarts.iter().all(|(_, r)| r.iter().all(|n| *n == 0)),
        "every pod at RESTARTS 0: {restarts:?}"
    );
    let want: BTreeSet<String> = (1..=2).map(|i| format!("{}-node-{i}", q.lab)).collect();
    assert_eq!(nodes, want, "the pods spread over both nodes");
    for log in [
        "control-plane-apiserver",
        "control-plane-controller",
        "control-plane-scheduler",
        "node-1-kubelet",
    ] {
        let bytes = fs::read(q.state().join(format!("logs/{}-{log}.log", q.lab))).unwrap();
        assert!(
            !bytes.is_empty(),
            "{log}.log is empty: components log to stderr"
        );
        assert!(!bytes.contains(&0x1b), "{log}.log has colour codes");
    }
    let out = q.kubectl(&["create", "namespace", "leftover"]);
    assert!(out.status.success(), "{}", text(&out));

    q.down();
    assert!(!q.state().exists(), "down removes the lab's data");

    q.up();
    let out = q.kubectl(&["get", "namespace", "leftover"]);
    assert!(
        !out.status.success(),
        "a quickstart after down starts empty"
    );
    uids.extend(pods(&q).1);
    q.down();
    assert_nothing_left(&q, &uids);
}

/// No process, namespace, mount or cgroup of the lab is left.
fn assert_nothing_left(q: &Quickstart, uids: &BTreeSet<String>) {
    let prefix = format!("minik8s-{}-", q.lab);
    let namespaces: Vec<_> = fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_else(|_| Vec::new());
    assert!(
        !namespaces.iter().any(|n| n.starts_with(&prefix)),
        "namespaces left: {namespaces:?}"
    );
    let state = q.dir.display().to_string();
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mounts: Vec<&str> = mountinfo
        .lines()
        .filter(|l| l.contains(&state) || l.contains(&prefix))
        .collect();
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    let mut procs = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let cmd = fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cgroup = fs::read_to_string(e.path().join("cgroup")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(&state) || uids.iter().any(|u| cgroup.contains(u.as_str())) {
            procs.push(cmd);
        }
    }
    assert!(procs.is_empty(), "processes left: {procs:?}");
    let cgroups = runtime::cgroups::Hierarchy::host();
    let left: Vec<_> = (1..=2)
        .flat_map(|i| cgroups.dirs(Path::new(&format!("{prefix}node-{i}"))))
        .filter(|d| d.exists())
        .collect();
    assert!(left.is_empty(), "cgroups left: {left:?}");
}
