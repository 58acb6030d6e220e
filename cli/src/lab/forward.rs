//! The lab's API relay (`minikctl cluster forward`, started by `up`): the user's kubectl
//! runs in the root network namespace, the apiserver inside the lab, and nothing may be
//! routed between the two. A socket, though, stays in the namespace it was made in. So the
//! relay binds its listener here first, then moves its one thread into the lab's namespace,
//! where every connection it opens lives: each accepted connection is copied both ways to
//! the apiserver, bytes only (TLS stays end to end), as Docker's `docker-proxy` does for a
//! published port.

use std::fs::File;
use std::net::SocketAddr;
use std::path::Path;

use nix::sched::{setns, CloneFlags};
use tokio::net::{TcpListener, TcpStream};

use super::{io_err, LabError};

/// Relay `listen` (in this namespace) to `to` (in the one pinned at `netns`) until killed.
/// Blocks: call it from a thread of its own.
pub fn run(listen: SocketAddr, netns: &Path, to: SocketAddr) -> Result<(), LabError> {
    let listener = std::net::TcpListener::bind(listen)
        .map_err(|e| LabError::Other(format!("listening on {listen}: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| LabError::Other(format!("listening on {listen}: {e}")))?;
    let ns = File::open(netns).map_err(io_err("open", netns))?;
    let name = netns.display().to_string();
    std::thread::spawn(move || -> Result<(), LabError> {
        // only this thread changes namespace; the listener above stays where it was made
        setns(&ns, CloneFlags::CLONE_NEWNET).map_err(|errno| LabError::Netns {
            name,
            step: "enter",
            errno,
        })?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| LabError::Other(format!("starting the relay: {e}")))?;
        rt.block_on(relay(listener, to))
    })
    .join()
    .unwrap_or_else(|_| Err(LabError::Other("the relay thread panicked".into())))
}

async fn relay(listener: std::net::TcpListener, to: SocketAddr) -> Result<(), LabError> {
    let listener = TcpListener::from_std(listener)
        .map_err(|e| LabError::Other(format!("relay listener: {e}")))?;
    loop {
        let (mut client, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        tokio::spawn(async move {
            let mut server = match TcpStream::connect(to).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(%peer, %to, error = %e, "connecting to the apiserver failed");
                    return;
                }
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
    }
}
