//! Clean shutdown: a component stops on SIGTERM (what `kill`, systemd and a pod's termination
//! send) or SIGINT (Ctrl-C), so that a leader can hand its Lease over (`leader.rs`) before the
//! process exits. SIGKILL cannot be caught: then the successor waits out the lease duration.

use std::future::Future;

use tokio::signal::unix::{signal, SignalKind};

/// Start listening for SIGTERM and SIGINT now; the returned future resolves, naming the
/// signal, when the first of them arrives. From this call on the signals no longer kill the
/// process, so it must come before anything that needs cleaning up, such as a lease.
/// Needs a running tokio runtime.
pub fn on_signal() -> std::io::Result<impl Future<Output = &'static str>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down");
        name
    })
}
