//! The `minik8s-scheduler` binary as an operator runs it: SIGTERM hands its Lease to the next
//! scheduler at once, `--server` wins over `$KUBECONFIG`, and it logs to stderr only, without
//! colours when stderr is not a terminal.

mod common;

use std::time::Duration;

use common::Cluster;
use testkit::{lease_holder, wait_for_holder, Component};

const BIN: &str = env!("CARGO_BIN_EXE_minik8s-scheduler");
const LEASE: &str = "minik8s-scheduler";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_releases_the_lease_so_the_next_scheduler_leads_at_once() {
    let c = Cluster::start().await;
    let mut first = Component::start(BIN, &["--server", &c.kit.server.url], &[]);
    wait_for_holder(&c.client, LEASE, &first.identity(), Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("the first scheduler never led\n{}", first.output()));

    first.signal("TERM");
    let exit = first.wait_exit(Duration::from_secs(5)).await;
    let second = Component::start(BIN, &["--server", &c.kit.server.url], &[]);
    // Without the release this takes the rest of the 15 s lease duration.
    let took = wait_for_holder(&c.client, LEASE, &second.identity(), Duration::from_secs(3)).await;
    assert!(
        took.is_some(),
        "the second scheduler did not lead within 3 s; holder {:?}\nfirst: {}",
        lease_holder(&c.client, LEASE).await,
        first.output()
    );
    let exit = exit.expect("the first scheduler exits within 5 s of SIGTERM");
    assert!(exit.success(), "{exit}\n{}", first.output());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_flag_wins_over_a_kubeconfig_in_the_environment() {
    let c = Cluster::start().await;
    let missing = [("KUBECONFIG", "/nonexistent/kubeconfig")];
    let scheduler = Component::start(BIN, &["--server", &c.kit.server.url], &missing);
    wait_for_holder(
        &c.client,
        LEASE,
        &scheduler.identity(),
        Duration::from_secs(30),
    )
    .await
    .unwrap_or_else(|| panic!("the scheduler never led\n{}", scheduler.output()));
}

#[tokio::test]
async fn logs_go_to_stderr_without_colours() {
    // Nothing listens on port 1: the scheduler logs that it cannot reach its Lease.
    let scheduler = Component::start(BIN, &["--server", "http://127.0.0.1:1"], &[]);
    let logged = scheduler
        .wait_for_stderr("cannot reach the lease", Duration::from_secs(20))
        .await;
    assert!(logged, "{}", scheduler.output());
    assert!(scheduler.stdout().is_empty(), "{}", scheduler.output());
    assert!(
        !scheduler.stderr().contains(&0x1b),
        "{}",
        scheduler.output()
    );
}
