//! Forwarding: a name outside the cluster domain (`example.com`, the node's own names) is not
//! ours to answer, so the query goes, as the client sent it, to the node's upstream resolvers
//! (CoreDNS' `forward . /etc/resolv.conf`), and their answer comes back unchanged.
//!
//! The upstreams are `--upstream` addresses (`--upstream none`: no upstream at all), else the
//! `nameserver` lines of the host's `/etc/resolv.conf`, leaving out our own listen address (a host whose resolv.conf names us
//! would otherwise make every unknown name loop through us forever). With no upstream at all a
//! forwarded question is answered REFUSED at once, never left to time out. Each query goes over
//! a fresh UDP socket (a random source port, RFC 5452), upstreams tried in order with a
//! timeout each; a truncated UDP answer is asked again over TCP. Read next: `server.rs`.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

/// How long one upstream has to answer before the next is tried.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// The largest UDP answer we read from an upstream (EDNS payloads stay well under it).
const MAX_UDP_ANSWER: usize = 4096;

/// A failed forward.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// There is no upstream resolver to ask.
    #[error("no upstream resolver")]
    NoUpstream,
    /// Every upstream failed or timed out; the last failure is kept.
    #[error("no upstream answered")]
    NoAnswer(#[source] std::io::Error),
    /// An upstream name could not be read from resolv.conf.
    #[error("reading {path}")]
    ReadResolvConf {
        /// The file read.
        path: String,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
}

/// The upstream resolvers, asked in order.
#[derive(Clone, Debug, Default)]
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
}

impl Forwarder {
    /// A forwarder to `upstreams`.
    pub fn new(upstreams: Vec<SocketAddr>) -> Forwarder {
        Forwarder { upstreams }
    }

    /// A forwarder to the nameservers of the resolv.conf at `path`, except `listen` (ourselves).
    pub fn from_resolv_conf(path: &Path, listen: SocketAddr) -> Result<Forwarder, ForwardError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ForwardError::ReadResolvConf {
                path: path.display().to_string(),
                source,
            })?;
        let upstreams = nameservers(&text)
            .into_iter()
            .map(|ip| SocketAddr::new(ip, 53))
            .filter(|upstream| !is_self(*upstream, listen))
            .collect();
        Ok(Forwarder { upstreams })
    }

    /// The upstreams, in the order they are asked.
    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// Send `query` (a whole DNS message) upstream and return the first answer, over TCP when
    /// `tcp` (the client asked over TCP) or when a UDP answer came back truncated.
    pub async fn forward(&self, query: &[u8], tcp: bool) -> Result<Vec<u8>, ForwardError> {
        let mut last = None;
        for &upstream in &self.upstreams {
            let attempt = async {
                let answer = if tcp {
                    ask_tcp(upstream, query).await?
                } else {
                    ask_udp(upstream, query).await?
                };
                if !tcp && is_truncated(&answer) {
                    return ask_tcp(upstream, query).await;
                }
                Ok(answer)
            };
            match timeout(UPSTREAM_TIMEOUT, attempt).await {
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(e)) => last = Some(e),
                Err(_) => last = Some(std::io::ErrorKind::TimedOut.into()),
            }
            tracing::debug!(%upstream, error = ?last, "upstream did not answer");
        }
        Err(last.map_or(ForwardError::NoUpstream, ForwardError::NoAnswer))
    }
}

/// One question over UDP: the answer whose ID matches (others are stray and skipped).
async fn ask_udp(upstream: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let bind: SocketAddr = match upstream {
        SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(bind).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buf = vec![0; MAX_UDP_ANSWER];
    loop {
        let n = socket.recv(&mut buf).await?;
        if n >= 2 && query.len() >= 2 && buf[..2] == query[..2] {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

/// One question over TCP, framed by its two-byte length (RFC 1035 4.2.2).
async fn ask_tcp(upstream: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream).await?;
    let len = u16::try_from(query.len()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    let len = stream.read_u16().await?;
    let mut answer = vec![0; usize::from(len)];
    stream.read_exact(&mut answer).await?;
    Ok(answer)
}

/// Whether a DNS message has its TC (truncated) bit set.
fn is_truncated(message: &[u8]) -> bool {
    message.get(2).is_some_and(|flags| flags & 0x02 != 0)
}

/// The `nameserver` addresses of a resolv.conf, in order.
fn nameservers(resolv_conf: &str) -> Vec<IpAddr> {
    resolv_conf
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next())?
        })
        .filter_map(|word| word.parse().ok())
        .collect()
}

/// Whether `upstream` is our own listen address (an unspecified listen IP is every local
/// address: a loopback upstream on our port is then us).
fn is_self(upstream: SocketAddr, listen: SocketAddr) -> bool {
    if upstream.port() != listen.port() {
        return false;
    }
    upstream.ip() == listen.ip() || (listen.ip().is_unspecified() && upstream.ip().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_are_read_in_order() {
        let conf = "# generated\nsearch example.com\nnameserver 10.0.0.2\nnameserver  1.1.1.1 \n\
                    nameserver not-an-ip\noptions ndots:5\n";
        assert_eq!(
            nameservers(conf),
            vec![
                "10.0.0.2".parse::<IpAddr>().unwrap(),
                "1.1.1.1".parse().unwrap()
            ]
        );
    }

    #[test]
    fn our_own_address_is_not_an_upstream() {
        let any: SocketAddr = "0.0.0.0:53".parse().unwrap();
        let loopback: SocketAddr = "127.0.0.1:53".parse().unwrap();
        assert!(is_self(loopback, any));
        assert!(is_self(loopback, loopback));
        assert!(!is_self("10.0.0.2:53".parse().unwrap(), any));
        assert!(!is_self(loopback, "127.0.0.1:5353".parse().unwrap()));
    }

    #[test]
    fn resolv_conf_naming_only_us_leaves_no_upstream() {
        let dir = std::env::temp_dir().join(format!("dns-forward-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("resolv.conf");
        std::fs::write(&path, "nameserver 127.0.0.1\nnameserver 10.0.0.2\n").unwrap();
        let forwarder = Forwarder::from_resolv_conf(&path, "0.0.0.0:53".parse().unwrap()).unwrap();
        assert_eq!(forwarder.upstreams(), ["10.0.0.2:53".parse().unwrap()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn no_upstream_is_refused_at_once() {
        let error = Forwarder::default().forward(&[0; 12], false).await;
        assert!(matches!(error, Err(ForwardError::NoUpstream)));
    }

    #[tokio::test]
    async fn the_answer_with_the_query_id_comes_back() {
        // A fake upstream on loopback: echoes the query with the QR bit set.
        let upstream = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0; 512];
            let (n, from) = upstream.recv_from(&mut buf).await.unwrap();
            buf[2] |= 0x80;
            upstream.send_to(&buf[..n], from).await.unwrap();
        });
        let query = [0xab, 0xcd, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let answer = Forwarder::new(vec![addr])
            .forward(&query, false)
            .await
            .unwrap();
        assert_eq!(answer[..2], [0xab, 0xcd]);
        assert_eq!(answer[2], 0x81);
    }
}
