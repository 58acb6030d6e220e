//! The DNS server: UDP and TCP on one address (`--listen`, port 53 by default), every query
//! answered from the latest [`Snapshot`] of the watch caches, or forwarded upstream when its
//! name is outside the cluster domain.
//!
//! A cluster question is answered inline on the receiving task (an index lookup and an
//! encoding, no await), so the common case costs no task spawn; only a forwarded query, which
//! waits on the network, gets a task of its own. Over UDP the commonest questions (a stub
//! resolver's A and AAAA of a name the index holds) are answered from the snapshot's
//! prepared responses, a hash lookup and a copy (`prepared.rs`), and datagrams are received
//! and answered in batches, one system call each way for all the queries waiting
//! (`batch.rs`). Over TCP each message is framed by a two-byte
//! length (RFC 1035 4.2.2) and a connection may carry several queries; an idle one is closed
//! after [`TCP_IDLE`]. Read next: `cache.rs`, `response.rs`, `batch.rs`, `forward.rs`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::batch::{Datagrams, Replies};
use crate::cache::{self, Snapshot};
use crate::forward::{ForwardError, Forwarder};
use crate::response::{self, Reply, Transport};

/// How long a TCP connection may sit without a query before we close it.
pub const TCP_IDLE: Duration = Duration::from_secs(10);

/// How many tasks read the UDP socket side by side (one per core of a small node).
const UDP_READERS: usize = 2;

/// A failure to start serving.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The UDP socket could not be bound.
    #[error("binding UDP {addr}")]
    BindUdp {
        /// The address asked for.
        addr: SocketAddr,
        /// Why it failed (in use, or port 53 without privilege).
        #[source]
        source: std::io::Error,
    },
    /// The TCP listener could not be bound.
    #[error("binding TCP {addr}")]
    BindTcp {
        /// The address asked for.
        addr: SocketAddr,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

/// Bound sockets, not yet serving.
pub struct Server {
    udp: Arc<UdpSocket>,
    tcp: TcpListener,
    forwarder: Arc<Forwarder>,
}

impl Server {
    /// Bind UDP and TCP on `listen` (port 0: a free port, the same for both).
    pub async fn bind(listen: SocketAddr, forwarder: Forwarder) -> Result<Server, ServerError> {
        let udp = UdpSocket::bind(listen)
            .await
            .map_err(|source| ServerError::BindUdp {
                addr: listen,
                source,
            })?;
        let addr = udp.local_addr().map_err(|source| ServerError::BindUdp {
            addr: listen,
            source,
        })?;
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::BindTcp { addr, source })?;
        Ok(Server {
            udp: Arc::new(udp),
            tcp,
            forwarder: Arc::new(forwarder),
        })
    }

    /// The address both sockets are bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.udp
            .local_addr()
            .expect("a bound socket has an address")
    }

    /// Watch the cluster through `client` and answer queries for `zone` until dropped.
    pub async fn serve(self, client: kube::Client, zone: String) {
        let (sender, snapshots) = watch::channel(cache::unsynced(&zone));
        info!(addr = %self.local_addr(), %zone, upstreams = ?self.forwarder.upstreams(), "serving DNS");
        let watches = tokio::spawn(cache::run(client, zone, sender));
        let _abort_watches = AbortOnDrop(watches);
        self.serve_snapshots(snapshots).await;
    }

    /// Answer queries from whatever `snapshots` holds at the time of each query.
    pub async fn serve_snapshots(self, snapshots: watch::Receiver<Arc<Snapshot>>) {
        let mut readers = Vec::new();
        for _ in 0..UDP_READERS {
            let (udp, forwarder, snapshots) =
                (self.udp.clone(), self.forwarder.clone(), snapshots.clone());
            readers.push(AbortOnDrop(tokio::spawn(serve_udp(
                udp, forwarder, snapshots,
            ))));
        }
        serve_tcp(self.tcp, self.forwarder, snapshots).await;
    }
}

/// Read datagrams, a batch at a time, and answer each to its sender.
async fn serve_udp(
    udp: Arc<UdpSocket>,
    forwarder: Arc<Forwarder>,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
) {
    let (mut datagrams, mut replies) = (Datagrams::default(), Replies::default());
    // The snapshot answered from, taken again only when a newer one is published: checking
    // the channel's version is one atomic load, where a borrow takes its lock.
    let mut snapshot = snapshots.borrow_and_update().clone();
    loop {
        let n = match datagrams.recv(&udp).await {
            Ok(n) => n,
            Err(error) => {
                // An ICMP error of an earlier send surfaces here on Linux; keep serving.
                debug!(%error, "receiving datagrams");
                continue;
            }
        };
        // A closed channel (the watches ended) leaves the last snapshot in force.
        if snapshots.has_changed().unwrap_or(false) {
            snapshot = snapshots.borrow_and_update().clone();
        }
        replies.clear();
        for i in 0..n {
            let query = datagrams.payload(i);
            if snapshot.prepared.answer(query, replies.slot()) {
                replies.commit(i);
                continue;
            }
            match response::reply(query, &snapshot.index, snapshot.synced, Transport::Udp) {
                Reply::Message(bytes) => {
                    *replies.slot() = bytes;
                    replies.commit(i);
                }
                Reply::Drop => {}
                Reply::Forward => {
                    let Some(client) = datagrams.sender(i) else {
                        continue;
                    };
                    let (udp, forwarder, query) = (udp.clone(), forwarder.clone(), query.to_vec());
                    tokio::spawn(async move {
                        if let Some(bytes) = forwarded(&forwarder, &query, Transport::Udp).await {
                            send(&udp, &bytes, client).await;
                        }
                    });
                }
            }
        }
        datagrams.send(&udp, &replies).await;
    }
}

async fn send(udp: &UdpSocket, bytes: &[u8], client: SocketAddr) {
    if let Err(error) = udp.send_to(bytes, client).await {
        debug!(%client, %error, "sending a response");
    }
}

/// Accept TCP connections, each served by a task of its own.
async fn serve_tcp(
    tcp: TcpListener,
    forwarder: Arc<Forwarder>,
    snapshots: watch::Receiver<Arc<Snapshot>>,
) {
    loop {
        let (stream, client) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "accepting a TCP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (forwarder, snapshots) = (forwarder.clone(), snapshots.clone());
        tokio::spawn(async move {
            if let Err(error) = serve_connection(stream, &forwarder, &snapshots).await {
                debug!(%client, %error, "TCP connection ended");
            }
        });
    }
}

/// Answer the length-framed queries of one connection until it closes or idles.
async fn serve_connection(
    mut stream: TcpStream,
    forwarder: &Forwarder,
    snapshots: &watch::Receiver<Arc<Snapshot>>,
) -> std::io::Result<()> {
    loop {
        let len = match tokio::time::timeout(TCP_IDLE, stream.read_u16()).await {
            Ok(Ok(len)) => len,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        };
        let mut query = vec![0; usize::from(len)];
        stream.read_exact(&mut query).await?;
        let snapshot = snapshots.borrow().clone();
        let bytes = match response::reply(&query, &snapshot.index, snapshot.synced, Transport::Tcp)
        {
            Reply::Message(bytes) => bytes,
            Reply::Drop => continue,
            Reply::Forward => match forwarded(forwarder, &query, Transport::Tcp).await {
                Some(bytes) => bytes,
                None => continue,
            },
        };
        let Ok(len) = u16::try_from(bytes.len()) else {
            continue;
        };
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&bytes);
        stream.write_all(&framed).await?;
    }
}

/// The upstream's answer to `query`, or REFUSED when there is no upstream and SERVFAIL when
/// none answered.
async fn forwarded(forwarder: &Forwarder, query: &[u8], transport: Transport) -> Option<Vec<u8>> {
    match forwarder.forward(query, transport == Transport::Tcp).await {
        Ok(bytes) => Some(bytes),
        Err(ForwardError::NoUpstream) => response::error(query, ResponseCode::Refused),
        Err(error) => {
            debug!(%error, "forwarding");
            response::error(query, ResponseCode::ServFail)
        }
    }
}

/// A spawned task that ends when this guard drops.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
