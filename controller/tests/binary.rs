//! The `minik8s-controller` binary as an operator runs it: SIGTERM or SIGINT hands its Lease to
//! the next controller manager at once, and it logs to stderr only, without colours when stderr
//! is not a terminal.

mod common;

use std::time::Duration;

use common::Cluster;
use testkit::{lease_holder, wait_for_holder, Component};

const BIN: &str = env!("CARGO_BIN_EXE_minik8s-controller");
const LEASE: &str = "minik8s-controller";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_release_the_lease_so_the_next_manager_leads_at_once() {
    let c = Cluster::start().await;
    let client = c.client();
    let start = || Component::start(BIN, &["--server", &c.server.url], &[]);
    let mut leader = start();
    wait_for_holder(&client, LEASE, &leader.identity(), Duration::from_secs(30))
        .await
        .unwrap_or_else(|| {
            panic!(
                "the first controller manager never led\n{}",
                leader.output()
            )
        });
    for signal in ["TERM", "INT"] {
        leader.signal(signal);
        let exit = leader.wait_exit(Duration::from_secs(5)).await;
        let next = start();
        // Without the release this takes the rest of the 15 s lease duration.
        let took = wait_for_holder(&client, LEASE, &next.identity(), Duration::from_secs(3)).await;
        assert!(
            took.is_some(),
            "after SIG{signal} the next manager did not lead within 3 s; holder {:?}\n{}",
            lease_holder(&client, LEASE).await,
            leader.output()
        );
        let exit = exit.unwrap_or_else(|| panic!("no exit within 5 s of SIG{signal}"));
        assert!(exit.success(), "SIG{signal}: {exit}\n{}", leader.output());
        leader = next;
    }
}

#[tokio::test]
async fn logs_go_to_stderr_without_colours() {
    // Nothing listens on port 1: the manager logs that it cannot reach its Lease.
    let manager = Component::start(BIN, &["--server", "http://127.0.0.1:1"], &[]);
    let logged = manager
        .wait_for_stderr("cannot reach the lease", Duration::from_secs(20))
        .await;
    assert!(logged, "{}", manager.output());
    assert!(manager.stdout().is_empty(), "{}", manager.output());
    assert!(!manager.stderr().contains(&0x1b), "{}", manager.output());
}
