//! A pod network of a test's own. A kubelet with pod networking puts a bridge on the host and
//! hands each pod an address from the node's pod CIDR; two nodes on one host (or two parallel
//! tests) must not share either, or their pods would reach each other's addresses.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A bridge name and a /24 of the test's own (`10.244.200.0/24` and up, not used on this host),
/// so parallel tests never share either. Dropping it removes the bridge and our iptables
/// chains for it, even if the test failed half-way.
pub struct TestNet {
    pub bridge: String,
    pub cidr: String,
    /// The third octet: the range is 10.244.<n>.0/24.
    pub octet: u8,
}

static NEXT_NET: AtomicU32 = AtomicU32::new(0);

impl TestNet {
    #[allow(clippy::new_without_default)]
    pub fn new() -> TestNet {
        let used = String::from_utf8_lossy(
            &Command::new("ip")
                .args(["-4", "-o", "addr"])
                .output()
                .expect("ip addr")
                .stdout,
        )
        .into_owned();
        for _ in 0..50 {
            let n = NEXT_NET.fetch_add(1, Ordering::Relaxed);
            let octet = 200 + ((std::process::id() + n * 7) % 50) as u8;
            if used.contains(&format!("10.244.{octet}.")) {
                continue;
            }
            return TestNet {
                bridge: format!("mkt{}", crate::rand_hex()),
                cidr: format!("10.244.{octet}.0/24"),
                octet,
            };
        }
        panic!("no free 10.244.200-249.0/24 range on this host");
    }

    /// Kubelet flags for this network.
    pub fn flags(&self) -> Vec<String> {
        vec![
            "--pod-cidr".into(),
            self.cidr.clone(),
            "--bridge-name".into(),
            self.bridge.clone(),
        ]
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        use runtime::network::{iptables, link};
        iptables::teardown(&self.bridge);
        let b = self.bridge.clone();
        let _ = link::on_thread(None, move |h| async move { link::delete(&h, &b).await });
    }
}

/// A random /24 in 10.200.0.0 to 10.239.255.0, for a node whose bridge its kubelet removes.
pub fn random_pod_cidr() -> String {
    let b = u32::from_str_radix(&runtime::random_hex(2), 16).unwrap();
    format!("10.{}.{}.0/24", 200 + (b >> 8) % 40, b & 0xff)
}

/// Whether a network interface of that name exists in the host namespace.
pub fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", "dev", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
