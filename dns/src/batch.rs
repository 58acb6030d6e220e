//! Datagrams in batches: one `recvmmsg(2)` takes every query waiting on the socket (up to
//! [`BATCH`]) and one `sendmmsg(2)` sends their responses, where `recv_from` and `send_to`
//! cost two system calls per query. Under load most of a query's CPU is the kernel's, and a
//! good part of that is the crossing into it and the wake-ups each send causes; a busy server
//! crosses once per batch. An idle one still answers at once: the receive returns as soon as
//! one datagram is there (it never waits to fill a batch).
//!
//! The sockets stay tokio's: readiness comes from its reactor (`UdpSocket::async_io`), so a
//! reader task waits like any other. Linux only, as minik8s is. Read next: `server.rs`.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use tokio::io::Interest;
use tokio::net::UdpSocket;

/// The most datagrams taken or sent by one system call.
pub const BATCH: usize = 32;

/// The largest query read (big enough for any query with EDNS; longer ones are cut and then
/// fail to parse).
const MAX_QUERY: usize = 4096;

/// The datagrams of one receive and their senders.
pub struct Datagrams {
    bufs: Box<[[u8; MAX_QUERY]]>,
    addrs: Box<[libc::sockaddr_storage]>,
    lens: [usize; BATCH],
    addr_lens: [libc::socklen_t; BATCH],
    count: usize,
}

impl Default for Datagrams {
    fn default() -> Datagrams {
        // SAFETY: sockaddr_storage is plain old data, for which all zeroes is a valid value
        // (an unspecified address family).
        let zero: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        Datagrams {
            bufs: vec![[0; MAX_QUERY]; BATCH].into_boxed_slice(),
            addrs: vec![zero; BATCH].into_boxed_slice(),
            lens: [0; BATCH],
            addr_lens: [0; BATCH],
            count: 0,
        }
    }
}

impl Datagrams {
    /// Wait until `udp` has a datagram, then take all that are there, up to [`BATCH`]; how
    /// many.
    pub async fn recv(&mut self, udp: &UdpSocket) -> io::Result<usize> {
        let fd = udp.as_raw_fd();
        self.count = 0;
        let count = udp
            .async_io(Interest::READABLE, || self.recvmmsg(fd))
            .await?;
        self.count = count;
        Ok(count)
    }

    fn recvmmsg(&mut self, fd: std::os::fd::RawFd) -> io::Result<usize> {
        // SAFETY: iovec and mmsghdr are plain old data; all zeroes is a valid value of each
        // (null pointers, zero lengths), and every pointer the call reads is set below.
        let mut iovecs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (i, (iovec, msg)) in iovecs.iter_mut().zip(msgs.iter_mut()).enumerate() {
            iovec.iov_base = self.bufs[i].as_mut_ptr().cast();
            iovec.iov_len = MAX_QUERY;
            msg.msg_hdr.msg_name = std::ptr::from_mut(&mut self.addrs[i]).cast();
            msg.msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            msg.msg_hdr.msg_iov = iovec;
            msg.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: `msgs` holds BATCH headers, each naming one buffer of MAX_QUERY bytes and
        // one sockaddr_storage, all owned by `self` or this frame and alive across the call;
        // the kernel writes at most those lengths. MSG_DONTWAIT: the socket never blocks us.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        for (i, msg) in msgs.iter().enumerate().take(n) {
            self.lens[i] = (msg.msg_len as usize).min(MAX_QUERY);
            self.addr_lens[i] = msg.msg_hdr.msg_namelen;
        }
        Ok(n)
    }

    /// The `i`th datagram's bytes.
    pub fn payload(&self, i: usize) -> &[u8] {
        &self.bufs[i][..self.lens[i]]
    }

    /// The `i`th datagram's sender.
    pub fn sender(&self, i: usize) -> Option<SocketAddr> {
        let storage = &self.addrs[i];
        let len = self.addr_lens[i] as usize;
        match i32::from(storage.ss_family) {
            libc::AF_INET if len >= size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says the storage holds a sockaddr_in, which it is large
                // and aligned enough for (that is sockaddr_storage's purpose).
                let sin = unsafe { &*std::ptr::from_ref(storage).cast::<libc::sockaddr_in>() };
                let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Some(SocketAddrV4::new(ip, u16::from_be(sin.sin_port)).into())
            }
            libc::AF_INET6 if len >= size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for sockaddr_in6.
                let sin6 = unsafe { &*std::ptr::from_ref(storage).cast::<libc::sockaddr_in6>() };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                let port = u16::from_be(sin6.sin6_port);
                Some(SocketAddrV6::new(ip, port, sin6.sin6_flowinfo, sin6.sin6_scope_id).into())
            }
            _ => None,
        }
    }

    /// Send each of `replies` to the sender of the datagram it answers, in as few system
    /// calls as the socket allows. A reply the kernel refuses (the sender's port gone, say) is
    /// skipped.
    pub async fn send(&mut self, udp: &UdpSocket, replies: &Replies) {
        let fd = udp.as_raw_fd();
        let total = replies.used;
        let mut sent = 0;
        while sent < total {
            let result = udp
                .async_io(Interest::WRITABLE, || {
                    self.sendmmsg(fd, &replies.bufs[sent..total], &replies.to[sent..total])
                })
                .await;
            match result {
                Ok(n) => sent += n.max(1),
                Err(error) => {
                    // sendmmsg fails only when its first message does: drop that one.
                    tracing::debug!(client = ?self.sender(replies.to[sent]), %error, "sending a response");
                    sent += 1;
                }
            }
        }
    }

    fn sendmmsg(
        &mut self,
        fd: std::os::fd::RawFd,
        bufs: &[Vec<u8>],
        to: &[usize],
    ) -> io::Result<usize> {
        // SAFETY: plain old data, all zeroes valid; every pointer the call reads is set below.
        let mut iovecs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let n = bufs.len().min(BATCH);
        for i in 0..n {
            iovecs[i].iov_base = bufs[i].as_ptr().cast_mut().cast();
            iovecs[i].iov_len = bufs[i].len();
            let hdr = &mut msgs[i].msg_hdr;
            hdr.msg_name = std::ptr::from_mut(&mut self.addrs[to[i]]).cast();
            hdr.msg_namelen = self.addr_lens[to[i]];
            hdr.msg_iov = &mut iovecs[i];
            hdr.msg_iovlen = 1;
        }
        // SAFETY: the first `n` headers each name one reply buffer (only read by the kernel:
        // the cast to *mut is iovec's signature, not a write) and one sender address filled
        // by recvmmsg, all alive across the call. MSG_DONTWAIT: the socket never blocks us.
        let sent =
            unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT) };
        usize::try_from(sent).map_err(|_| io::Error::last_os_error())
    }
}

/// The responses to one batch of datagrams, each with the index of the datagram it answers.
pub struct Replies {
    bufs: Vec<Vec<u8>>,
    to: Vec<usize>,
    used: usize,
}

impl Default for Replies {
    fn default() -> Replies {
        Replies {
            bufs: (0..BATCH).map(|_| Vec::with_capacity(512)).collect(),
            to: vec![0; BATCH],
            used: 0,
        }
    }
}

impl Replies {
    /// Forget the replies of the last batch.
    pub fn clear(&mut self) {
        self.used = 0;
    }

    /// The buffer of the next reply, to write it into; it counts once [`Replies::commit`]ted.
    pub fn slot(&mut self) -> &mut Vec<u8> {
        &mut self.bufs[self.used]
    }

    /// Keep the buffer [`Replies::slot`] gave as the reply to datagram `to`.
    pub fn commit(&mut self, to: usize) {
        self.to[self.used] = to;
        self.used += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_batch_is_received_and_answered_to_each_sender() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let mut clients = Vec::new();
        for i in 0..3u8 {
            let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            client.send_to(&[i; 5], addr).await.unwrap();
            clients.push(client);
        }
        let (mut datagrams, mut replies) = (Datagrams::default(), Replies::default());
        let mut got = 0;
        while got < 3 {
            let n = datagrams.recv(&server).await.unwrap();
            replies.clear();
            for i in 0..n {
                let payload = datagrams.payload(i).to_vec();
                let sender = datagrams.sender(i).unwrap();
                let client = clients
                    .iter()
                    .position(|c| c.local_addr().unwrap() == sender);
                assert_eq!(client, Some(usize::from(payload[0])));
                let buf = replies.slot();
                buf.clear();
                buf.extend_from_slice(&payload);
                buf.push(0xff);
                replies.commit(i);
            }
            datagrams.send(&server, &replies).await;
            got += n;
        }
        assert_eq!(got, 3);
        for (i, client) in clients.iter().enumerate() {
            let mut buf = [0; 16];
            let n = client.recv(&mut buf).await.unwrap();
            assert_eq!(
                buf[..n],
                [i as u8, i as u8, i as u8, i as u8, i as u8, 0xff]
            );
        }
    }
}
