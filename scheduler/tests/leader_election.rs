//! Two schedulers behind one Lease: only the holder binds, and the other takes over.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use client::leader::{run_as_leader, LeaderConfig};
use common::{poll, Cluster, TaskGuard};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::json;

fn candidate(c: &Cluster, identity: &str) -> TaskGuard<anyhow::Result<()>> {
    let mut lease = LeaderConfig::new("minik8s-scheduler", identity);
    lease.lease_duration = Duration::from_secs(3);
    lease.renew_deadline = Duration::from_secs(2);
    lease.retry_period = Duration::from_millis(500);
    let client = c.client.clone();
    let config = scheduler::SchedulerConfig {
        scheduler_name: "default-scheduler".into(),
        identity: identity.into(),
    };
    TaskGuard::spawn(run_as_leader(client.clone(), lease, move || async move {
        scheduler::run(client, config)
            .await
            .map_err(anyhow::Error::from)
    }))
}

async fn holder(c: &Cluster) -> String {
    let api: Api<Lease> = Api::namespaced(c.client.clone(), "kube-system");
    api.get("minik8s-scheduler")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .unwrap()
}

/// Who scheduled each pod, from the Scheduled events: pod → reporting instances.
async fn schedulers_of(c: &Cluster) -> HashMap<String, Vec<String>> {
    let api: Api<Event> = Api::namespaced(c.client.clone(), "default");
    let mut by_pod: HashMap<String, Vec<String>> = HashMap::new();
    for e in api.list(&ListParams::default()).await.unwrap().items {
        if e.reason.as_deref() == Some("Scheduled") {
            by_pod
                .entry(e.involved_object.name.unwrap())
                .or_default()
                .push(e.reporting_instance.unwrap_or_default());
        }
    }
    by_pod
}

async fn create_and_wait(c: &Cluster, names: &[String]) {
    for n in names {
        c.pod(n, json!({})).await;
    }
    for n in names {
        c.wait_bound(n).await;
    }
    // The Scheduled event follows the binding.
    poll(60, || async {
        let s = schedulers_of(c).await;
        names.iter().all(|n| s.contains_key(n)).then_some(())
    })
    .await
    .expect("a Scheduled event for every pod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_binds_and_the_other_takes_over() {
    let c = Cluster::start().await;
    for i in 0..2 {
        c.node(
            &format!("n{i}"),
            true,
            json!({"cpu": "8", "memory": "8Gi", "pods": "110"}),
            json!({}),
        )
        .await;
    }
    let mut a = Some(candidate(&c, "sched-a"));
    let mut b = Some(candidate(&c, "sched-b"));

    let first: Vec<String> = (0..20).map(|i| format!("first-{i}")).collect();
    create_and_wait(&c, &first).await;
    let leader = holder(&c).await;
    let by_pod = schedulers_of(&c).await;
    for n in &first {
        assert_eq!(
            by_pod[n],
            vec![leader.clone()],
            "{n} bound once, by the leader"
        );
    }

    // The leader dies; after the lease expires the other candidate schedules.
    if leader == "sched-a" {
        a.take()
    } else {
        b.take()
    };
    let second: Vec<String> = (0..10).map(|i| format!("second-{i}")).collect();
    create_and_wait(&c, &second).await;
    let new_leader = holder(&c).await;
    assert_ne!(new_leader, leader);
    let by_pod = schedulers_of(&c).await;
    for n in &second {
        assert_eq!(
            by_pod[n],
            vec![new_leader.clone()],
            "{n} bound once, by the new leader"
        );
    }
    for n in &first {
        assert_eq!(by_pod[n].len(), 1, "{n} was not bound again");
    }
    drop((a, b));
}
