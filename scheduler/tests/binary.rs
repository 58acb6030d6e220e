//! The `minik8s-scheduler` binary as an operator runs it: `--server` wins over `$KUBECONFIG`.

mod common;

use std::time::Duration;

use client::testing::{wait_for_holder, Component};
use common::Cluster;

const BIN: &str = env!("CARGO_BIN_EXE_minik8s-scheduler");
const LEASE: &str = "minik8s-scheduler";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_flag_wins_over_a_kubeconfig_in_the_environment() {
    let c = Cluster::start().await;
    let missing = [("KUBECONFIG", "/nonexistent/kubeconfig")];
    let scheduler = Component::start(BIN, &["--server", &c.server.url], &missing);
    wait_for_holder(
        &c.client,
        LEASE,
        &scheduler.identity(),
        Duration::from_secs(30),
    )
    .await
    .unwrap_or_else(|| panic!("the scheduler never led\n{}", scheduler.output()));
}
