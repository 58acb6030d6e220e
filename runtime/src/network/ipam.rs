//! IP address management: which address of the node's pod range (its *podCIDR*) each sandbox
//! holds. Like the `host-local` CNI plugin, every allocation is a file named after the address
//! and holding the owner's id, created with `O_EXCL`: two sandboxes set up at once can never get
//! the same address, and the allocations survive a kubelet restart. The first address of the
//! range is the gateway (the bridge's own address); the network and broadcast addresses are
//! never handed out. An index `owners/<id>`, a symlink to the owner's address, finds a
//! sandbox's address in one `readlink` instead of reading every allocation (host-local scans
//! them all, which a node starting a hundred pods pays a hundred times over). Read next:
//! `link.rs`, which puts the address on the pod's `eth0`.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Why an address could not be allocated or released.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// The range is not `a.b.c.d/n` with room for a gateway and a pod.
    #[error("invalid pod CIDR {value:?}: {reason}")]
    InvalidCidr { value: String, reason: &'static str },
    /// Every address of the range is taken.
    #[error("no free address left in {cidr}")]
    Exhausted { cidr: Cidr },
    /// An owner id must be usable as a file name.
    #[error("invalid owner id {owner:?}")]
    InvalidOwner { owner: String },
    /// Reading or writing an allocation file failed.
    #[error("{step} {path:?}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// An IPv4 range, e.g. `10.244.1.0/24` (host bits are cleared on parse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    fn mask(self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    /// The first usable address: the bridge's, the pods' default gateway.
    pub fn gateway(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// The last address of the range (never a host).
    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !self.mask())
    }

    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network)
    }

    /// Addresses pods may get: after the gateway, before the broadcast address.
    pub fn pod_addresses(self) -> impl Iterator<Item = Ipv4Addr> {
        (u32::from(self.network) + 2..u32::from(self.broadcast())).map(Ipv4Addr::from)
    }
}

impl FromStr for Cidr {
    type Err = IpamError;

    fn from_str(s: &str) -> Result<Self, IpamError> {
        let invalid = |reason| IpamError::InvalidCidr {
            value: s.to_string(),
            reason,
        };
        let (ip, prefix) = s
            .split_once('/')
            .ok_or_else(|| invalid("expected a.b.c.d/n"))?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| invalid("not an IPv4 address"))?;
        let prefix: u8 = prefix.parse().map_err(|_| invalid("bad prefix length"))?;
        if !(8..=30).contains(&prefix) {
            return Err(invalid("prefix length must be between 8 and 30"));
        }
        let mut cidr = Cidr {
            network: ip,
            prefix,
        };
        cidr.network = Ipv4Addr::from(u32::from(ip) & cidr.mask());
        Ok(cidr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The allocations of one range: `dir/<ip>` holds the owning sandbox id.
#[derive(Debug, Clone)]
pub struct Allocator {
    dir: PathBuf,
    cidr: Cidr,
}

/// Where the last search ended, so addresses are reused as late as possible.
const LAST: &str = "last_reserved_ip";

/// The owner index: `owners/<owner>` is a symlink whose target is the owner's address. The
/// address file stays the record (its `O_EXCL` creation is the allocation); a link that
/// disagrees with its address file is ignored.
const OWNERS: &str = "owners";

fn valid_owner(owner: &str) -> bool {
    !owner.is_empty() && owner != "." && owner != ".." && !owner.contains('/')
}

impl Allocator {
    /// Open (and create) the allocation directory and its owner index.
    pub fn open(dir: &Path, cidr: Cidr) -> Result<Self, IpamError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| IpamError::Io {
                step: "create",
                path,
                source,
            }
        };
        let owners = dir.join(OWNERS);
        fs::create_dir_all(&owners).map_err(io(&owners))?;
        Ok(Self {
            dir: dir.to_owned(),
            cidr,
        })
    }

    pub fn cidr(&self) -> Cidr {
        self.cidr
    }

    /// Every allocation: (address, owner), sorted by address.
    pub fn allocations(&self) -> Vec<(Ipv4Addr, String)> {
        allocations(&self.dir)
    }

    /// The address `owner` holds, if any (from the owner index, checked against the record).
    pub fn lookup(&self, owner: &str) -> Option<Ipv4Addr> {
        if !valid_owner(owner) {
            return None;
        }
        let link = fs::read_link(self.dir.join(OWNERS).join(owner)).ok()?;
        let ip: Ipv4Addr = link.to_str()?.parse().ok()?;
        let holder = fs::read_to_string(self.dir.join(ip.to_string())).ok()?;
        (holder.trim() == owner).then_some(ip)
    }

    /// The address of `owner`: the one it already holds, or the next free one after the last
    /// address handed out (round robin, so a just-released address is not reused at once).
    pub fn allocate(&self, owner: &str) -> Result<Ipv4Addr, IpamError> {
        if !valid_owner(owner) {
            return Err(IpamError::InvalidOwner {
                owner: owner.to_string(),
            });
        }
        if let Some(ip) = self.lookup(owner) {
            return Ok(ip);
        }
        let all: Vec<Ipv4Addr> = self.cidr.pod_addresses().collect();
        let last: Option<Ipv4Addr> = fs::read_to_string(self.dir.join(LAST))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let start = last
            .and_then(|l| all.iter().position(|ip| *ip == l))
            .map_or(0, |i| i + 1);
        for ip in all.iter().cycle().skip(start).take(all.len()) {
            let path = self.dir.join(ip.to_string());
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(owner.as_bytes())
                        .map_err(|source| IpamError::Io {
                            step: "write",
                            path: path.clone(),
                            source,
                        })?;
                    let _ = fs::write(self.dir.join(LAST), ip.to_string());
                    let link = self.dir.join(OWNERS).join(owner);
                    let _ = fs::remove_file(&link);
                    if let Err(source) = std::os::unix::fs::symlink(ip.to_string(), &link) {
                        let _ = fs::remove_file(&path);
                        return Err(IpamError::Io {
                            step: "index",
                            path: link,
                            source,
                        });
                    }
                    return Ok(*ip);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => {
                    return Err(IpamError::Io {
                        step: "create",
                        path,
                        source,
                    })
                }
            }
        }
        Err(IpamError::Exhausted { cidr: self.cidr })
    }

    /// Give back every address `owner` holds; returns them.
    pub fn release(&self, owner: &str) -> Vec<Ipv4Addr> {
        release(&self.dir, owner)
    }
}

/// Every allocation recorded in `dir`, whatever range it came from.
pub fn allocations(dir: &Path) -> Vec<(Ipv4Addr, String)> {
    let mut out: Vec<(Ipv4Addr, String)> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let ip: Ipv4Addr = e.file_name().to_str()?.parse().ok()?;
                    let owner = fs::read_to_string(e.path()).ok()?;
                    Some((ip, owner.trim().to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Remove the allocations of `owner` from `dir`; returns the released addresses.
pub fn release(dir: &Path, owner: &str) -> Vec<Ipv4Addr> {
    let mut released = Vec::new();
    for (ip, o) in allocations(dir) {
        if o == owner && fs::remove_file(dir.join(ip.to_string())).is_ok() {
            released.push(ip);
        }
    }
    if valid_owner(owner) {
        let _ = fs::remove_file(dir.join(OWNERS).join(owner));
    }
    released
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new() -> Self {
            let p = std::env::temp_dir().join(format!("minik8s-ipam-{}", crate::random_hex(6)));
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn cidr_parses_and_clears_host_bits() {
        let c: Cidr = "10.244.3.17/24".parse().unwrap();
        assert_eq!(c.to_string(), "10.244.3.0/24");
        assert_eq!(c.gateway(), Ipv4Addr::new(10, 244, 3, 1));
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 244, 3, 255));
        assert!(c.contains(Ipv4Addr::new(10, 244, 3, 200)));
        assert!(!c.contains(Ipv4Addr::new(10, 244, 4, 1)));
        assert_eq!(c.pod_addresses().count(), 253);
        for bad in [
            "10.244.0.0",
            "10.244.0/24",
            "10.244.0.0/31",
            "10.244.0.0/x",
            "::1/64",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn allocates_in_order_skipping_gateway_and_reuses_per_owner() {
        let d = TempDir::new();
        let a = Allocator::open(&d.0, "10.244.7.0/24".parse().unwrap()).unwrap();
        assert_eq!(a.allocate("pod-a").unwrap(), Ipv4Addr::new(10, 244, 7, 2));
        assert_eq!(a.allocate("pod-b").unwrap(), Ipv4Addr::new(10, 244, 7, 3));
        // the same owner keeps its address
        assert_eq!(a.allocate("pod-a").unwrap(), Ipv4Addr::new(10, 244, 7, 2));
        assert_eq!(a.lookup("pod-b"), Some(Ipv4Addr::new(10, 244, 7, 3)));
        assert_eq!(a.lookup("pod-c"), None);
    }

    #[test]
    fn allocations_survive_a_restart_and_release_frees_them() {
        let d = TempDir::new();
        let cidr: Cidr = "10.244.8.0/24".parse().unwrap();
        let a = Allocator::open(&d.0, cidr).unwrap();
        let ip = a.allocate("pod-a").unwrap();
        a.allocate("pod-b").unwrap();
        // a new allocator (a restarted kubelet) sees the same allocations
        let b = Allocator::open(&d.0, cidr).unwrap();
        assert_eq!(b.lookup("pod-a"), Some(ip));
        assert_eq!(b.allocations().len(), 2);
        assert_eq!(b.release("pod-a"), vec![ip]);
        assert_eq!(b.release("pod-a"), Vec::<Ipv4Addr>::new());
        assert_eq!(b.allocations().len(), 1);
        // round robin: the released address is not handed out again at once
        assert_eq!(b.allocate("pod-c").unwrap(), Ipv4Addr::new(10, 244, 8, 4));
    }

    #[test]
    fn the_owner_index_is_checked_against_the_record() {
        let d = TempDir::new();
        let cidr: Cidr = "10.244.11.0/24".parse().unwrap();
        let a = Allocator::open(&d.0, cidr).unwrap();
        let ip = a.allocate("pod-a").unwrap();
        assert_eq!(
            fs::read_link(d.0.join("owners/pod-a")).unwrap(),
            PathBuf::from(ip.to_string())
        );
        // the record wins over a link that disagrees with it
        fs::write(d.0.join(ip.to_string()), "someone-else").unwrap();
        assert_eq!(a.lookup("pod-a"), None);
        fs::write(d.0.join(ip.to_string()), "pod-a").unwrap();
        assert_eq!(a.release("pod-a"), vec![ip]);
        assert!(!d.0.join("owners/pod-a").exists());
        assert_eq!(a.lookup("pod-a"), None);
        assert!(matches!(
            a.allocate("../x"),
            Err(IpamError::InvalidOwner { .. })
        ));
        assert_eq!(a.lookup("../x"), None);
    }

    #[test]
    fn a_full_range_is_an_error_until_an_address_is_released() {
        let d = TempDir::new();
        // a /29: .0 network, .1 gateway, .2-.6 pods, .7 broadcast
        let a = Allocator::open(&d.0, "10.244.9.0/29".parse().unwrap()).unwrap();
        let ips: Vec<Ipv4Addr> = (0..5)
            .map(|i| a.allocate(&format!("p{i}")).unwrap())
            .collect();
        assert_eq!(ips.first(), Some(&Ipv4Addr::new(10, 244, 9, 2)));
        assert_eq!(ips.last(), Some(&Ipv4Addr::new(10, 244, 9, 6)));
        assert!(matches!(a.allocate("p5"), Err(IpamError::Exhausted { .. })));
        a.release("p2");
        assert_eq!(a.allocate("p5").unwrap(), Ipv4Addr::new(10, 244, 9, 4));
    }

    #[test]
    fn concurrent_allocations_never_collide() {
        let d = TempDir::new();
        let a = Allocator::open(&d.0, "10.244.10.0/24".parse().unwrap()).unwrap();
        let ips: Vec<Ipv4Addr> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|i| {
                    let a = a.clone();
                    s.spawn(move || a.allocate(&format!("pod-{i}")).unwrap())
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut unique = ips.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 8, "{ips:?}");
    }
}
