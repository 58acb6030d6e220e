//! A whole cluster for end-to-end tests: `testkit`'s private etcd and apiserver, the controller
//! manager and the scheduler (both in-process, as tasks on the test's runtime) and real kubelets
//! (the `e2e-kubelet` binary, i.e. the kubelet's own `main`, as child processes with their own
//! node name, root dir and pod bridge), plus the real kubectl through a kubeconfig.
//!
//! Everything is torn down on drop, also when a test panics: a `Kubelet` is SIGKILLed and every
//! container, sandbox and pod network under its root is force-removed (processes, sandbox
//! mounts, cgroups, bridge); then the `Cluster` stops the controllers and the scheduler, the
//! apiserver and etcd. [`assert_nothing_left`] checks afterwards that the kernel holds nothing
//! of the test.
// Each test binary includes this module and uses a part of it (and of what it re-exports).
#![allow(dead_code, unused_imports)]

/// minikctl and kubectl side by side: `run::same_as_kubectl`.
pub mod run;

pub use testkit::node::random_pod_cidr;
pub use testkit::objects::{has_taint, node_of, phase, ready, running, uid};
pub use testkit::{assert_nothing_left, rand_hex, wait_for, Cluster, Kubelet};

/// The kubelet binary built from `kubelet/src/bin/minik8s-kubelet.rs` by this package.
pub const KUBELET: &str = env!("CARGO_BIN_EXE_e2e-kubelet");

/// `minikctl`, built from `cli/src/main.rs` by this package.
pub const MINIKCTL: &str = env!("CARGO_BIN_EXE_e2e-minikctl");

/// This package's builds of the components' `main`s, under the names `hack/quickstart.sh`,
/// `hack/compose-images.sh` and `minikctl cluster up` look for.
pub const BINARIES: [(&str, &str); 8] = [
    ("minik8s-apiserver", env!("CARGO_BIN_EXE_e2e-apiserver")),
    ("minik8s-controller", env!("CARGO_BIN_EXE_e2e-controller")),
    ("minik8s-scheduler", env!("CARGO_BIN_EXE_e2e-scheduler")),
    ("minik8s-kubelet", env!("CARGO_BIN_EXE_e2e-kubelet")),
    ("minik8s-proxy", env!("CARGO_BIN_EXE_e2e-proxy")),
    ("minik8s-dns", env!("CARGO_BIN_EXE_e2e-dns")),
    ("minik8s-runtime", env!("CARGO_BIN_EXE_e2e-runtime")),
    ("minikctl", MINIKCTL),
];

/// Link [`BINARIES`] into `dir` (made if missing) under their own names: a `MINIK8S_BIN` or
/// `--bin-dir` of this build.
pub fn link_binaries(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, path) in BINARIES {
        std::os::unix::fs::symlink(path, dir.join(name)).unwrap();
    }
}

/// The tests need root (namespaces, cgroups, mounts): say so and skip otherwise.
pub fn skip_unless_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return false;
    }
    eprintln!("skipping {test}: end-to-end tests run containers and need root");
    true
}

/// Controller and scheduler logs go to the test's captured output (shown on failure).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube_client=warn,kube_runtime=warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// etcd + apiserver + controller manager + scheduler, everything but the kubelets;
/// `controllers` carries the node-lifecycle timings. The components stop before the apiserver,
/// the apiserver before etcd.
pub async fn start_cluster(controllers: controller::manager::Config) -> Cluster {
    init_logs();
    let mut cluster = Cluster::for_kubelets().await.kubectl_reads_kubeconfig();
    let client = cluster.client();
    cluster.spawn(controller::manager::run(client.clone(), controllers));
    cluster.spawn(async move {
        if let Err(e) = scheduler::run(client, scheduler::SchedulerConfig::default()).await {
            tracing::error!(error = %e, "scheduler stopped");
        }
    });
    cluster
}

/// Start a kubelet for node `node` against `cluster`, renewing its Lease every second, with a
/// pod bridge and a /24 of its own: two kubelets on one host need distinct ones.
pub fn start_kubelet(cluster: &Cluster, node: &str) -> Kubelet {
    let bridge = format!("e2e{}", rand_hex());
    let cidr = random_pod_cidr();
    let flags = ["--bridge-name", &bridge, "--pod-cidr", &cidr];
    Kubelet::start(KUBELET, cluster, node, &flags)
}
