//! Shared by the controller's integration tests: what `testkit` gives every crate (a real etcd
//! and apiserver, kubectl, polling, small object helpers), the controller manager as an
//! in-process task, and the node timings that make node lifecycle tests fast.
// Each test binary includes this module and uses a part of it (and of what it re-exports).
#![allow(dead_code, unused_imports)]

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
pub use testkit::objects::{live_pods, mark_ready, namespace, ready};
pub use testkit::{wait_for, Cluster, EtcdProcess, Task, TestServer};

/// The controller manager against a test cluster.
pub trait StartControllers {
    /// Start the controller manager in-process; it stops when the guard drops.
    fn start_controllers(&self, config: controller::manager::Config) -> Task;
}

impl StartControllers for Cluster {
    fn start_controllers(&self, config: controller::manager::Config) -> Task {
        Task::spawn(controller::manager::run(self.client(), config))
    }
}

/// Is the pod Ready (per its status)?
pub fn is_ready(p: &Pod) -> bool {
    controller::pod::is_ready(p)
}

/// Short node timings for tests.
pub fn fast_config() -> controller::manager::Config {
    controller::manager::Config {
        node_monitor_grace_period: Duration::from_secs(3),
        pod_eviction_timeout: Duration::from_secs(2),
        cluster_cidr: "10.244.0.0/16".into(),
        pod_gc_quarantine: Duration::from_secs(2),
        cluster_signing: None,
    }
}
