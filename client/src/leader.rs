//! Leader election on a Lease, the way client-go's `leaderelection` does it.
//!
//! Several copies of a component may run for availability, but only one may act. They share a
//! `coordination.k8s.io/v1` Lease: the holder renews `spec.renewTime` every `retry_period`;
//! the others wait until the lease has not been renewed for `lease_duration` and then take it
//! over. Every write carries the resourceVersion that was read, so two candidates can never
//! both win: the apiserver's 409 decides. A leader that cannot renew within `renew_deadline`
//! stops working (the process should exit and start over as a candidate). A leader that stops
//! cleanly (SIGTERM, SIGINT) releases the lease, as client-go does with `ReleaseOnCancel`: the
//! holder is cleared and the duration set to 1 s, so the next candidate takes over at once
//! instead of waiting out `lease_duration`. Read next: `shutdown.rs`.

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

/// Give the lease up if we hold it, as client-go's `release()`: holder cleared,
/// leaseDurationSeconds 1, acquire and renew times now, leaseTransitions kept. The read
/// resourceVersion guards the write, so a lease someone else took meanwhile is left alone.
/// Returns whether the lease was released.
pub async fn release(api: &Api<Lease>, cfg: &LeaderConfig) -> Result<bool, kube::Error> {
    let Some(mut lease) = api.get_opt(&cfg.name).await? else {
        return Ok(false);
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
        return Ok(false);
    }
    spec.holder_identity = Some(String::new());
    spec.lease_duration_seconds = Some(1);
    spec.acquire_time = Some(now());
    spec.renew_time = Some(now());
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
    run_as_leader_until(client, cfg, work, std::future::pending::<()>()).await
}

/// [`run_as_leader`] until `shutdown` resolves: then `work` is dropped (it stops before the
/// lease goes) and the lease is released within the renew deadline; returns `Ok(())`.
#[doc(alias = "ReleaseOnCancel")]
pub async fn run_as_leader_until<F, Fut, S>(
    client: kube::Client,
    cfg: LeaderConfig,
    work: F,
    shutdown: S,
) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
    S: Future,
{
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    tokio::pin!(shutdown);
    tokio::select! {
        () = acquire(&api, &cfg) => {}
        _ = &mut shutdown => return Ok(()),
    }
    info!(lease = %cfg.name, identity = %cfg.identity, "became leader");
    let stopped = tokio::select! {
        r = work() => Some(r),
        lost = renew(&api, &cfg) => Some(Err(lost.into())),
        _ = &mut shutdown => None,
    };
    match stopped {
        Some(result) => result,
        None => {
            release_before_deadline(&api, &cfg).await;
            Ok(())
        }
    }
}

/// Retry until this process holds the lease.
async fn acquire(api: &Api<Lease>, cfg: &LeaderConfig) {
    loop {
        match try_acquire_or_renew(api, cfg).await {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => {
                warn!(lease = %cfg.name, error = %e, "leader election: cannot reach the lease")
            }
        }
        tokio::time::sleep(cfg.retry_period).await;
    }
}

/// Renew every retry period; returns once the lease is lost or cannot be renewed in time.
async fn renew(api: &Api<Lease>, cfg: &LeaderConfig) -> LeaderError {
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(cfg.retry_period).await;
        match try_acquire_or_renew(api, cfg).await {
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
}

/// [`release`], giving up after the renew deadline (the lease then simply expires).
async fn release_before_deadline(api: &Api<Lease>, cfg: &LeaderConfig) {
    match tokio::time::timeout(cfg.renew_deadline, release(api, cfg)).await {
        Ok(Ok(true)) => info!(lease = %cfg.name, identity = %cfg.identity, "released the lease"),
        Ok(Ok(false)) => info!(lease = %cfg.name, "the lease was no longer ours to release"),
        Ok(Err(e)) => warn!(lease = %cfg.name, error = %e, "releasing the lease failed"),
        Err(_) => {
            warn!(lease = %cfg.name, deadline = ?cfg.renew_deadline, "releasing the lease timed out")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apiserver::testing::{EtcdProcess, TestServer};

    /// A private etcd and apiserver (kept alive by the returned guards) and the Lease API.
    async fn lease_api() -> (EtcdProcess, TestServer, Api<Lease>) {
        let etcd = EtcdProcess::start();
        let server = TestServer::start(&etcd, Default::default()).await;
        let client = crate::connect::ClusterFlags::for_server(&server.url)
            .client()
            .await
            .unwrap();
        (etcd, server, Api::namespaced(client, "kube-system"))
    }

    async fn spec(api: &Api<Lease>, name: &str) -> LeaseSpec {
        api.get(name).await.unwrap().spec.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_one_candidate_holds_the_lease_and_an_expired_one_is_taken_over() {
        let (_etcd, _server, api) = lease_api().await;
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_released_lease_is_taken_at_once_and_only_its_holder_releases_it() {
        let (_etcd, _server, api) = lease_api().await;
        let a = LeaderConfig::new("test-lease", "a");
        let b = LeaderConfig::new("test-lease", "b");
        assert!(try_acquire_or_renew(&api, &a).await.unwrap());
        assert!(!release(&api, &b).await.unwrap(), "b does not hold it");
        assert_eq!(
            spec(&api, "test-lease").await.holder_identity.as_deref(),
            Some("a")
        );

        assert!(release(&api, &a).await.unwrap());
        let released = spec(&api, "test-lease").await;
        assert_eq!(released.holder_identity.as_deref(), Some(""));
        assert_eq!(released.lease_duration_seconds, Some(1));
        assert_eq!(released.lease_transitions, Some(0));
        // Well within a's 15 s lease duration.
        assert!(try_acquire_or_renew(&api, &b).await.unwrap());
        let taken = spec(&api, "test-lease").await;
        assert_eq!(taken.holder_identity.as_deref(), Some("b"));
        assert_eq!(taken.lease_duration_seconds, Some(15));
        assert_eq!(taken.lease_transitions, Some(1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_stops_the_work_and_releases_the_lease() {
        let (_etcd, _server, api) = lease_api().await;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let work_dropped = std::sync::Arc::new(tokio::sync::Notify::new());
        let guard = DropNotify(work_dropped.clone());
        let leader = tokio::spawn(run_as_leader_until(
            api.clone().into_client(),
            LeaderConfig::new("test-lease", "a"),
            move || async move {
                let _guard = guard;
                std::future::pending::<anyhow::Result<()>>().await
            },
            stopped,
        ));
        while api.get_opt("test-lease").await.unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let notified = work_dropped.notified();
        stop.send(()).unwrap();
        leader.await.unwrap().unwrap();
        tokio::time::timeout(Duration::from_secs(1), notified)
            .await
            .expect("the work was dropped");
        assert_eq!(
            spec(&api, "test-lease").await.holder_identity.as_deref(),
            Some("")
        );
    }

    /// Notifies when dropped: tells the test that the work future is gone.
    struct DropNotify(std::sync::Arc<tokio::sync::Notify>);

    impl Drop for DropNotify {
        fn drop(&mut self) {
            self.0.notify_one();
        }
    }
}
