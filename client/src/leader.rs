//! Leader election on a Lease, the way client-go's `leaderelection` does it.
//!
//! Several copies of a component may run for availability, but only one may act. They share a
//! `coordination.k8s.io/v1` Lease: the holder renews `spec.renewTime` every `retry_period`;
//! the others wait until the lease has not been renewed for `lease_duration` and then take it
//! over. Every write carries the resourceVersion that was read, so two candidates can never
//! both win: the apiserver's 409 decides. A leader that cannot renew within `renew_deadline`
//! stops working (the process should exit and start over as a candidate).

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use tracing::{info, warn};

/// Leader election settings (client-go's defaults: 15 s / 10 s / 2 s).
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    /// Namespace of the Lease (kube-system).
    pub namespace: String,
    /// Lease name, one per component (`minik8s-scheduler`).
    pub name: String,
    /// This candidate's identity (hostname + random suffix).
    pub identity: String,
    /// How long a lease stays valid without renewal.
    pub lease_duration: Duration,
    /// How long a leader keeps trying to renew before it gives up.
    pub renew_deadline: Duration,
    /// How often to renew (leader) or retry (candidate).
    pub retry_period: Duration,
}

impl LeaderConfig {
    /// Defaults for lease `name` held by `identity`.
    pub fn new(name: &str, identity: &str) -> LeaderConfig {
        LeaderConfig {
            namespace: "kube-system".into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// A unique identity for this process: `<hostname>_<pid>`.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}_{}", host.trim(), std::process::id())
}

/// Errors of the election itself.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The leader could not renew within the renew deadline.
    #[error("lost the lease {name}: could not renew within {deadline:?}")]
    Lost { name: String, deadline: Duration },
}

fn now() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

/// One election round: acquire, renew or observe. Returns whether we hold the lease now.
pub async fn try_acquire_or_renew(
    api: &Api<Lease>,
    cfg: &LeaderConfig,
) -> Result<bool, kube::Error> {
    let duration_secs = cfg.lease_duration.as_secs().max(1) as i32;
    let Some(mut lease) = api.get_opt(&cfg.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(cfg.name.clone()),
                ..Default::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(cfg.identity.clone()),
                lease_duration_seconds: Some(duration_secs),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..Default::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder != cfg.identity {
        let held_for = spec.lease_duration_seconds.unwrap_or(duration_secs).max(1) as i64;
        let renewed = spec
            .renew_time
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let expired = jiff::Timestamp::now().as_second() > renewed.as_second() + held_for;
        if !holder.is_empty() && !expired {
            return Ok(false);
        }
        spec.holder_identity = Some(cfg.identity.clone());
        spec.acquire_time = Some(now());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.renew_time = Some(now());
    spec.lease_duration_seconds = Some(duration_secs);
    // The read resourceVersion travels with the object: a racing candidate gets 409.
    match api.replace(&cfg.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Block until this process holds the lease, then run `work` while renewing it. Returns
/// `work`'s result, or `LeaderError::Lost` if renewal failed for longer than the deadline.
pub async fn run_as_leader<F, Fut>(
    client: kube::Client,
    cfg: LeaderConfig,
    work: F,
) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    loop {
        match try_acquire_or_renew(&api, &cfg).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                warn!(lease = %cfg.name, error = %e, "leader election: cannot reach the lease")
            }
        }
        tokio::time::sleep(cfg.retry_period).await;
    }
    info!(lease = %cfg.name, identity = %cfg.identity, "became leader");
    let renew = async {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(cfg.retry_period).await;
            match try_acquire_or_renew(&api, &cfg).await {
                Ok(true) => last_ok = tokio::time::Instant::now(),
                Ok(false) => break,
                Err(e) => warn!(lease = %cfg.name, error = %e, "leader election: renew failed"),
            }
            if last_ok.elapsed() > cfg.renew_deadline {
                break;
            }
        }
        LeaderError::Lost {
            name: cfg.name.clone(),
            deadline: cfg.renew_deadline,
        }
    };
    tokio::select! {
        r = work() => r,
        lost = renew => Err(lost.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apiserver::testing::{EtcdProcess, TestServer};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_one_candidate_holds_the_lease_and_an_expired_one_is_taken_over() {
        let etcd = EtcdProcess::start();
        let server = TestServer::start(&etcd, Default::default()).await;
        let client = crate::connect::ClusterFlags::for_server(&server.url)
            .client()
            .await
            .unwrap();
        let api: Api<Lease> = Api::namespaced(client, "kube-system");
        let mut a = LeaderConfig::new("test-lease", "a");
        a.lease_duration = Duration::from_secs(1);
        let mut b = a.clone();
        b.identity = "b".into();
        assert!(try_acquire_or_renew(&api, &a).await.unwrap());
        assert!(
            !try_acquire_or_renew(&api, &b).await.unwrap(),
            "b must not steal a live lease"
        );
        assert!(try_acquire_or_renew(&api, &a).await.unwrap(), "a renews");
        // a stops renewing; after the lease duration b takes over.
        tokio::time::sleep(Duration::from_millis(2200)).await;
        assert!(try_acquire_or_renew(&api, &b).await.unwrap());
        assert!(!try_acquire_or_renew(&api, &a).await.unwrap());
        let lease = api.get("test-lease").await.unwrap();
        let spec = lease.spec.unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("b"));
        assert_eq!(spec.lease_transitions, Some(1));
    }
}
