//! Small pieces for tests that start processes of their own: a child killed when the test
//! ends, a free loopback port to give it, and a random suffix for names a test must not share
//! with a parallel one. Read next: `component.rs`, a process whose output a test reads.

use std::process::Child;

/// A child process killed (SIGKILL) and reaped when dropped, also when the test panics.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port (bound and released: a parallel test may take it in between).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Eight random hex digits, for node, bridge and directory names.
pub fn rand_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}
