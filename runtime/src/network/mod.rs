//! Pod networking, the job a CNI plugin (`bridge` + `host-local`) does for a real kubelet.
//! Every sandbox has its own network namespace, an isolated copy of the network stack whose
//! loopback starts *down*; bringing `lo` up (below) lets the containers of one pod talk over
//! `localhost`. With a pod range configured ([`Network`]), the node also gets a bridge holding
//! the range's first address (the pods' gateway), and each sandbox a veth pair: `eth0` in the
//! pod with an address of the range (`ipam.rs`), a default route via the gateway, and the host
//! end plugged into the bridge (`link.rs`). Pods reach each other and the node reaches them
//! through the bridge; the outside only through NAT, if asked for (`iptables.rs`). Nothing is
//! routed through the host's real interfaces, unless the kubelet is asked to route the other
//! nodes' pod ranges (`link.rs`'s gateway routes, the kubelet's `--route-pod-cidrs`).
//!
//! State under the network directory: `config.json` (bridge, range, MTU, masquerade) and
//! `ips/<address>` holding the owning sandbox id, so a restarted kubelet finds everything.

pub mod ipam;
pub mod iptables;
pub mod link;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use ipam::{Cidr, IpamError};
pub use iptables::IptablesError;
pub use link::LinkError;

use std::ffi::CStr;

/// The node's pod bridge unless the kubelet is told otherwise (`--bridge-name`).
pub const DEFAULT_BRIDGE: &str = "minik8s0";

/// The rtnetlink route protocol (`rtm_protocol`, `ip route ... proto 77`) that marks a route
/// to another node's pod range as the kubelet's (`--route-pod-cidrs`): 0x4d, ASCII `M` for
/// minik8s. The kernel's own numbers end at 4 (static) and routing daemons use 8 to 192
/// (`/etc/iproute2/rt_protos`: bird 12, babel 42, bgp 186); 77 is none of theirs.
/// `ip route show proto 77` lists what the kubelet added.
pub const POD_ROUTE_PROTOCOL: u8 = 0x4d;

/// Why the network setup failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// socket(2) for the interface ioctls failed.
    #[error("open control socket: {errno}")]
    Socket { errno: nix::Error },
    /// SIOCGIFFLAGS/SIOCSIFFLAGS on an interface failed.
    #[error("set {interface} up: {errno}")]
    SetUp {
        interface: String,
        errno: nix::Error,
    },
    /// Allocating or releasing a pod address failed.
    #[error(transparent)]
    Ipam(#[from] IpamError),
    /// A link, address or route step failed.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// Installing firewall rules failed.
    #[error(transparent)]
    Iptables(#[from] IptablesError),
    /// The bridge name is not a valid interface name.
    #[error("invalid bridge name {name:?}: 1 to 15 characters, no '/' or whitespace")]
    BridgeName { name: String },
    /// Reading or writing the network state failed.
    #[error("{step} {path:?}: {source}")]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Bring an interface of the current network namespace up (`ip link set lo up`).
pub fn set_up(interface: &CStr) -> Result<(), NetworkError> {
    // SAFETY: plain socket(2) call; the returned fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(NetworkError::Socket {
            errno: nix::Error::last(),
        });
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = interface.to_bytes();
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.iter().take(libc::IFNAMSIZ - 1))
    {
        *dst = *src as libc::c_char;
    }
    let fail = |errno| NetworkError::SetUp {
        interface: interface.to_string_lossy().into_owned(),
        errno,
    };
    // SAFETY: fd is a valid socket and req a properly initialised ifreq (netdevice(7)).
    let result = unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) < 0 {
            Err(fail(nix::Error::last()))
        } else {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) < 0 {
                Err(fail(nix::Error::last()))
            } else {
                Ok(())
            }
        }
    };
    // SAFETY: fd was returned by socket(2) above and is not used afterwards.
    unsafe { libc::close(fd) };
    result
}

/// Bring the loopback interface up.
pub fn loopback_up() -> Result<(), NetworkError> {
    set_up(c"lo")
}

/// How the node's pod network is laid out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// The bridge in the host namespace, e.g. `minik8s0`.
    pub bridge: String,
    /// The node's pod range (spec.podCIDR); its first address is the bridge's.
    pub cidr: String,
    /// MTU of the bridge and of both ends of every veth.
    pub mtu: u32,
    /// Let pods reach the outside through a MASQUERADE rule.
    pub masquerade: bool,
}

/// The node's pod network: set up once, then pods attach and detach.
#[derive(Debug)]
pub struct Network {
    pub config: NetworkConfig,
    cidr: Cidr,
    dir: PathBuf,
    ipam: ipam::Allocator,
}

/// The host end of the veth pair of sandbox `id`: `vm` + 8 hex characters, taken from the id
/// when it is a pod UID (so `ip link` output can be matched to pods), hashed otherwise.
pub fn veth_name(id: &str) -> String {
    let hex: String = id.chars().filter(|c| *c != '-').take(8).collect();
    if hex.len() == 8 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return format!("vm{}", hex.to_ascii_lowercase());
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(id.as_bytes());
    format!("vm{}", &super::layer::hex(&digest)[..8])
}

fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && !name.contains('/')
        && !name.chars().any(char::is_whitespace)
        && name != "."
        && name != ".."
}

fn io_err<'a>(
    step: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> NetworkError + 'a {
    move |source| NetworkError::Io {
        step,
        path: path.to_owned(),
        source,
    }
}

impl Network {
    /// Set the node up: the bridge with the gateway address, our firewall chains, the state
    /// under `dir`. Idempotent: a restarted kubelet calls it again and keeps its pods.
    pub fn setup(dir: &Path, config: NetworkConfig) -> Result<Network, NetworkError> {
        let cidr: Cidr = config.cidr.parse()?;
        if !valid_ifname(&config.bridge) {
            return Err(NetworkError::BridgeName {
                name: config.bridge.clone(),
            });
        }
        std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        let path = dir.join("config.json");
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(&config).expect("serializable"),
        )
        .map_err(io_err("write", &path))?;
        let ipam = ipam::Allocator::open(&dir.join("ips"), cidr)?;
        let (bridge, mtu) = (config.bridge.clone(), config.mtu);
        link::on_thread(None, move |h| async move {
            link::ensure_bridge(&h, &bridge, cidr.gateway(), cidr.prefix, mtu).await
        })?;
        iptables::setup(&config.bridge, cidr, config.masquerade)?;
        if config.masquerade {
            // routing pod traffic out needs forwarding on (Docker turns it on too)
            let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1");
        }
        tracing::info!(bridge = %config.bridge, %cidr, masquerade = config.masquerade, "pod network ready");
        Ok(Network {
            config,
            cidr,
            dir: dir.to_owned(),
            ipam,
        })
    }

    pub fn cidr(&self) -> Cidr {
        self.cidr
    }

    /// Connect sandbox `id`, whose network namespace is pinned at `netns`: an address, a veth
    /// pair, `eth0` configured inside. Returns the pod's address. Safe to call again after a
    /// half-done attempt; on error the address is released again.
    pub fn attach(&self, id: &str, netns: &Path) -> Result<Ipv4Addr, NetworkError> {
        let ip = self.ipam.allocate(id)?;
        let result = self.connect(id, netns, ip);
        if let Err(e) = &result {
            tracing::warn!(sandbox = %id, %ip, error = %e, "attaching to the pod network failed");
            let _ = self.detach(id);
        }
        result.map(|()| ip)
    }

    fn connect(&self, id: &str, netns: &Path, ip: Ipv4Addr) -> Result<(), NetworkError> {
        let (bridge, host, mtu) = (self.config.bridge.clone(), veth_name(id), self.config.mtu);
        let ns = netns.to_owned();
        link::on_thread(None, move |h| async move {
            link::add_veth(&h, &bridge, &host, &ns, mtu).await
        })?;
        let (prefix, gateway) = (self.cidr.prefix, self.cidr.gateway());
        link::on_thread(Some(netns), move |h| async move {
            link::configure_pod_side(&h, ip, prefix, gateway).await
        })?;
        Ok(())
    }

    /// The address of sandbox `id` if it is attached (its address is allocated and its veth
    /// exists), as a restarted kubelet finds it.
    pub fn attached(&self, id: &str) -> Option<Ipv4Addr> {
        let ip = self.ipam.lookup(id)?;
        let host = veth_name(id);
        let exists = link::on_thread(None, move |h| async move { link::index(&h, &host).await })
            .ok()
            .flatten()
            .is_some();
        exists.then_some(ip)
    }

    /// Disconnect sandbox `id`: delete its veth pair and release its address. Idempotent.
    pub fn detach(&self, id: &str) -> Result<(), NetworkError> {
        detach(&self.dir, id)
    }

    /// Every attached sandbox: (address, sandbox id).
    pub fn allocations(&self) -> Vec<(Ipv4Addr, String)> {
        self.ipam.allocations()
    }

    /// What the kubelet does on SIGTERM: when no pod is attached any more, remove the firewall
    /// rules and the bridge; pods that outlive the kubelet keep both (a restarted kubelet
    /// re-adopts them), and `cleanup` removes everything.
    pub fn shutdown(&self) -> Result<(), NetworkError> {
        // Pods outlive the kubelet: while any is attached, its forwarding rules must stay,
        // or its traffic would be dropped until the kubelet comes back.
        if self.allocations().is_empty() {
            iptables::teardown(&self.config.bridge);
            let bridge = self.config.bridge.clone();
            link::on_thread(
                None,
                move |h| async move { link::delete(&h, &bridge).await },
            )?;
            let _ = std::fs::remove_file(self.dir.join("config.json"));
        }
        tracing::info!(bridge = %self.config.bridge, "pod network shut down");
        Ok(())
    }
}

/// Disconnect sandbox `id` using the state under `dir` alone (no configuration needed).
pub fn detach(dir: &Path, id: &str) -> Result<(), NetworkError> {
    let host = veth_name(id);
    link::on_thread(None, move |h| async move { link::delete(&h, &host).await })?;
    ipam::release(&dir.join("ips"), id);
    Ok(())
}

/// Remove everything the network recorded under `dir` set up: every veth, every address
/// allocation, the firewall rules and the bridge. For tests and `hack/quickstart.sh down`;
/// nothing to do when `dir` has no `config.json`.
pub fn cleanup(dir: &Path) -> Result<(), NetworkError> {
    let path = dir.join("config.json");
    let Ok(raw) = std::fs::read(&path) else {
        return Ok(());
    };
    let config: NetworkConfig = serde_json::from_slice(&raw).map_err(|e| NetworkError::Io {
        step: "parse",
        path: path.clone(),
        source: e.into(),
    })?;
    for (_, owner) in ipam::allocations(&dir.join("ips")) {
        detach(dir, &owner)?;
    }
    iptables::teardown(&config.bridge);
    let bridge = config.bridge.clone();
    link::on_thread(
        None,
        move |h| async move { link::delete(&h, &bridge).await },
    )?;
    let _ = std::fs::remove_file(&path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_come_from_the_uid_and_fit_ifnamsiz() {
        assert_eq!(
            veth_name("1A2b3c4d-0000-1111-2222-333344445555"),
            "vm1a2b3c4d"
        );
        let other = veth_name("my-pod");
        assert_eq!(other.len(), 10);
        assert_ne!(other, veth_name("my-pod2"));
        assert!(valid_ifname("minik8s0"));
        assert!(!valid_ifname("a-name-that-is-too-long"));
        assert!(!valid_ifname(""));
    }
}
