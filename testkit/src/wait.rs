//! Waiting in tests: everything in a cluster happens eventually (a controller reconciles, a
//! kubelet reports), so a test polls for the state it expects, with a deadline that turns a
//! hang into a failure naming what never came. And tasks a test spawns (a component's loop)
//! end with it. Read next: `cluster.rs`.

use std::future::Future;
use std::time::Duration;

/// Poll `f` every 100 ms until it returns `Some`; `None` after `secs` seconds.
pub async fn poll<T, F, Fut>(secs: u64, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Poll `f` every 100 ms until it returns `Some`; panics naming `what` after `secs` seconds.
pub async fn wait_for<T, F, Fut>(secs: u64, what: &str, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll(secs, f)
        .await
        .unwrap_or_else(|| panic!("timed out after {secs} s waiting for {what}"))
}

/// A spawned task, aborted when dropped.
pub struct Task<T = ()>(pub tokio::task::JoinHandle<T>);

impl<T: Send + 'static> Task<T> {
    /// Spawn `future` on the test's runtime.
    pub fn spawn<F>(future: F) -> Task<T>
    where
        F: Future<Output = T> + Send + 'static,
    {
        Task(tokio::spawn(future))
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
