//! Links, addresses and routes over rtnetlink (what `ip link|addr|route` do, without running
//! `ip`). The node side is a Linux *bridge*, a virtual switch holding the gateway address of
//! the pod range; each pod gets a *veth pair*, two interfaces joined by a virtual cable: one
//! end stays on the host and is plugged into the bridge, the other is created right inside
//! the pod's network namespace as `eth0`. Routes through a gateway ([`GatewayRoute`]) carry a
//! route protocol number of the caller's (`ip route ... proto N`), so that it lists and
//! deletes exactly its own: the kubelet's routes to other nodes' pod ranges (host-gw).
//!
//! A netlink socket talks to the network namespace it was *created* in. So every call runs on
//! a short-lived OS thread of its own with a one-thread tokio runtime (the kubelet's runtime
//! and threads are never touched); for the pod side that thread first joins the pod's network
//! namespace with setns(2), which affects only the calling thread, then opens its socket.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteProtocol};
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use super::ipam::Cidr;

/// Why a netlink step failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Opening the netlink socket or its runtime failed.
    #[error("open netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    /// The kernel refused a request.
    #[error("{step} {name}: {source}")]
    Netlink {
        step: &'static str,
        name: String,
        #[source]
        source: rtnetlink::Error,
    },
    /// There is no interface of that name.
    #[error("no interface {name}")]
    NotFound { name: String },
    /// Opening or joining the pod's network namespace failed.
    #[error("join network namespace {path:?}: {source}")]
    Netns {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The netlink thread panicked.
    #[error("netlink thread died")]
    Thread,
}

/// The errno of a netlink refusal (positive), if it is one.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(-m.raw_code()),
        _ => None,
    }
}

fn nl<'a>(step: &'static str, name: &'a str) -> impl FnOnce(rtnetlink::Error) -> LinkError + 'a {
    move |source| LinkError::Netlink {
        step,
        name: name.to_string(),
        source,
    }
}

/// Run `f` with a netlink handle on a new thread, in the network namespace pinned at `netns`
/// (the host's when None).
pub fn on_thread<T, F, Fut>(netns: Option<&Path>, f: F) -> Result<T, LinkError>
where
    T: Send + 'static,
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, LinkError>>,
{
    let netns = netns.map(Path::to_owned);
    std::thread::spawn(move || {
        if let Some(path) = &netns {
            let file = std::fs::File::open(path).map_err(|source| LinkError::Netns {
                path: path.clone(),
                source,
            })?;
            // setns(2) of a network namespace changes only this thread, which ends below
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|errno| {
                tracing::debug!(?path, ?errno, "setns failed");
                LinkError::Netns {
                    path: path.clone(),
                    source: errno.into(),
                }
            })?;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(LinkError::Socket)?;
        rt.block_on(async move {
            let (conn, handle, _) = rtnetlink::new_connection().map_err(LinkError::Socket)?;
            tokio::spawn(conn);
            f(handle).await
        })
    })
    .join()
    .map_err(|_| LinkError::Thread)?
}

/// The index of interface `name`, None if there is none.
pub async fn index(h: &Handle, name: &str) -> Result<Option<u32>, LinkError> {
    match h.link().get().match_name(name).execute().try_next().await {
        Ok(link) => Ok(link.map(|l| l.header.index)),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(nl("get link", name)(e)),
    }
}

async fn must_index(h: &Handle, name: &str) -> Result<u32, LinkError> {
    index(h, name).await?.ok_or_else(|| LinkError::NotFound {
        name: name.to_string(),
    })
}

/// Create the bridge if missing (`ip link add NAME type bridge address MAC`), set its MTU, put
/// `gateway/prefix` on it and bring it up. Idempotent.
///
/// The MAC is set, not left to the kernel: a bridge without one takes the lowest MAC of its
/// ports, so it changed whenever a pod's veth came or went, and every pod's ARP entry for the
/// gateway went stale: replies to other nodes were lost for seconds (a rolling update's pods
/// timed out). A set address stays (`NET_ADDR_SET`), as the CNI bridge plugin's does; it is
/// `02:42` and the gateway's IPv4 address, locally administered and unique per node.
pub async fn ensure_bridge(
    h: &Handle,
    name: &str,
    gateway: Ipv4Addr,
    prefix: u8,
    mtu: u32,
) -> Result<(), LinkError> {
    if index(h, name).await?.is_none() {
        match h
            .link()
            .add(
                LinkBridge::new(name)
                    .mtu(mtu)
                    .address(bridge_mac(gateway).to_vec())
                    .build(),
            )
            .execute()
            .await
        {
            Err(e) if errno(&e) != Some(libc::EEXIST) => return Err(nl("add bridge", name)(e)),
            _ => {}
        }
    }
    let idx = must_index(h, name).await?;
    match h
        .address()
        .add(idx, IpAddr::V4(gateway), prefix)
        .execute()
        .await
    {
        Err(e) if errno(&e) != Some(libc::EEXIST) => return Err(nl("add address", name)(e)),
        _ => {}
    }
    h.link()
        .set(LinkUnspec::new_with_index(idx).up().build())
        .execute()
        .await
        .map_err(nl("set up", name))
}

/// The bridge's MAC address: `02:42:` then the gateway's four bytes.
fn bridge_mac(gateway: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = gateway.octets();
    [0x02, 0x42, a, b, c, d]
}

/// Delete interface `name` if it exists (`ip link del`); deleting one end of a veth pair
/// deletes both.
pub async fn delete(h: &Handle, name: &str) -> Result<(), LinkError> {
    let Some(idx) = index(h, name).await? else {
        return Ok(());
    };
    match h.link().del(idx).execute().await {
        Err(e) if errno(&e) != Some(libc::ENODEV) => Err(nl("delete link", name)(e)),
        _ => Ok(()),
    }
}

/// The veth pair of a pod in one request (`ip link add HOST mtu M master BRIDGE up type veth
/// peer name eth0 mtu M netns NS`): the host end plugged into `bridge` and up, the pod end
/// created directly inside the namespace pinned at `netns`, already named `eth0`. Creating
/// the peer in place rather than moving it there afterwards matters under a burst: a move
/// (dev_change_net_namespace) waits for an RCU grace period while holding the kernel's
/// global rtnl lock, about 25 ms per pod on a 2-core VM, and every pod queues behind it.
pub async fn add_veth(
    h: &Handle,
    bridge: &str,
    host: &str,
    netns: &Path,
    mtu: u32,
) -> Result<(), LinkError> {
    let bridge_idx = must_index(h, bridge).await?;
    // a leftover of an attach that died half-way goes first (both ends go with it)
    delete(h, host).await?;
    let ns = std::fs::File::open(netns).map_err(|source| LinkError::Netns {
        path: netns.to_owned(),
        source,
    })?;
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(POD_IFNAME.to_string())
        .mtu(mtu)
        .setns_by_fd(ns.as_raw_fd())
        .build();
    let veth = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(host.to_string())
        .mtu(mtu)
        .controller(bridge_idx)
        .up()
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    h.link()
        .add(veth)
        .execute()
        .await
        .map_err(nl("add veth", host))
}

/// The name of the pod's end of its veth pair, inside the pod's namespace.
pub const POD_IFNAME: &str = "eth0";

/// Pod side (run inside the pod's namespace): address `ip/prefix` on `eth0`, bring it up and
/// route everything via `gateway`.
pub async fn configure_pod_side(
    h: &Handle,
    ip: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
) -> Result<(), LinkError> {
    let idx = must_index(h, POD_IFNAME).await?;
    match h.address().add(idx, IpAddr::V4(ip), prefix).execute().await {
        Err(e) if errno(&e) != Some(libc::EEXIST) => return Err(nl("add address", "eth0")(e)),
        _ => {}
    }
    h.link()
        .set(LinkUnspec::new_with_index(idx).up().build())
        .execute()
        .await
        .map_err(nl("set up", "eth0"))?;
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gateway)
        .output_interface(idx)
        .build();
    match h.route().add(route).execute().await {
        Err(e) if errno(&e) != Some(libc::EEXIST) => Err(nl("add default route", "eth0")(e)),
        _ => Ok(()),
    }
}

/// An IPv4 route to a range through a gateway on a directly connected subnet (`ip route
/// replace DESTINATION via GATEWAY`): what a host-gw pod network puts in a node's main table
/// for each other node's pod range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GatewayRoute {
    pub destination: Cidr,
    pub gateway: Ipv4Addr,
}

impl std::fmt::Display for GatewayRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} via {}", self.destination, self.gateway)
    }
}

/// Add `route` to the main table, or replace the route to its destination (`ip route replace
/// DEST via GW proto PROTOCOL`). The protocol number tags the route as ours (rtnetlink(7)'s
/// `rtm_protocol`, shown by `ip route` as `proto N`), so [`routes_of`] finds exactly ours.
/// The kernel picks the interface towards the gateway and refuses (ENETUNREACH) a gateway that
/// is on no directly connected subnet.
pub async fn replace_route(h: &Handle, route: GatewayRoute, protocol: u8) -> Result<(), LinkError> {
    let message = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(route.destination.network, route.destination.prefix)
        .gateway(route.gateway)
        .protocol(RouteProtocol::from(protocol))
        .build();
    h.route()
        .add(message)
        .replace()
        .execute()
        .await
        .map_err(|source| LinkError::Netlink {
            step: "replace route",
            name: route.to_string(),
            source,
        })
}

/// The IPv4 routes of the main table tagged with `protocol` that go through a gateway (`ip
/// route show proto PROTOCOL`).
pub async fn routes_of(h: &Handle, protocol: u8) -> Result<Vec<GatewayRoute>, LinkError> {
    let dump = RouteMessageBuilder::<Ipv4Addr>::new().build();
    let mut routes = h.route().get(dump).execute();
    let mut ours = Vec::new();
    while let Some(m) = routes.try_next().await.map_err(nl("list routes", "ipv4"))? {
        let main = m.header.table == RouteHeader::RT_TABLE_MAIN
            || m.attributes
                .iter()
                .any(|a| *a == RouteAttribute::Table(RouteHeader::RT_TABLE_MAIN.into()));
        if !main || u8::from(m.header.protocol) != protocol {
            continue;
        }
        let (mut destination, mut gateway) = (Ipv4Addr::UNSPECIFIED, None);
        for a in &m.attributes {
            match a {
                RouteAttribute::Destination(RouteAddress::Inet(ip)) => destination = *ip,
                RouteAttribute::Gateway(RouteAddress::Inet(ip)) => gateway = Some(*ip),
                _ => {}
            }
        }
        if let Some(gateway) = gateway {
            let destination = Cidr {
                network: destination,
                prefix: m.header.destination_prefix_length,
            };
            ours.push(GatewayRoute {
                destination,
                gateway,
            });
        }
    }
    Ok(ours)
}

/// Delete `route` (tagged `protocol`) from the main table (`ip route del DEST via GW proto
/// PROTOCOL`); a route already gone is no error.
pub async fn delete_route(h: &Handle, route: GatewayRoute, protocol: u8) -> Result<(), LinkError> {
    let message = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(route.destination.network, route.destination.prefix)
        .gateway(route.gateway)
        .protocol(RouteProtocol::from(protocol))
        .build();
    match h.route().del(message).execute().await {
        Err(e) if errno(&e) != Some(libc::ESRCH) => Err(LinkError::Netlink {
            step: "delete route",
            name: route.to_string(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// The IPv4 addresses of the namespace's interfaces with their prefix lengths (`ip -4 addr`):
/// each names a directly connected subnet.
pub async fn ipv4_addresses(h: &Handle) -> Result<Vec<(Ipv4Addr, u8)>, LinkError> {
    let mut addresses = h.address().get().execute();
    let mut found = Vec::new();
    while let Some(m) = addresses
        .try_next()
        .await
        .map_err(nl("list addresses", "ipv4"))?
    {
        for a in &m.attributes {
            if let AddressAttribute::Address(IpAddr::V4(ip)) = a {
                found.push((*ip, m.header.prefix_len));
            }
        }
    }
    Ok(found)
}

/// What the kernel tells of one interface (`ip -d link show NAME`), read over netlink in the
/// caller's network namespace: sysfs (`/sys/class/net`) shows the namespace it was *mounted*
/// in, which is not the caller's after a bare setns(2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkFacts {
    /// Its interface index (sysfs's `ifindex`).
    pub index: u32,
    /// The interface it is linked to, as sysfs's `iflink`: a veth's peer (whose index counts
    /// in the peer's namespace), else its own index.
    pub link_index: u32,
    /// The bridge it is plugged into (sysfs's `master`).
    pub master: Option<String>,
}

/// The facts of interface `name`, None if there is none.
pub async fn link_facts(h: &Handle, name: &str) -> Result<Option<LinkFacts>, LinkError> {
    let link = match h.link().get().match_name(name).execute().try_next().await {
        Ok(Some(link)) => link,
        Ok(None) => return Ok(None),
        Err(e) if errno(&e) == Some(libc::ENODEV) => return Ok(None),
        Err(e) => return Err(nl("get link", name)(e)),
    };
    let index = link.header.index;
    let (mut link_index, mut master) = (index, None);
    for a in &link.attributes {
        match a {
            // sent only when it differs from the interface's own index
            LinkAttribute::Link(i) => link_index = *i,
            LinkAttribute::Controller(i) => master = Some(*i),
            _ => {}
        }
    }
    let master = match master {
        Some(i) => link_name(h, i).await?,
        None => None,
    };
    Ok(Some(LinkFacts {
        index,
        link_index,
        master,
    }))
}

/// The name of the interface with index `index`, None if there is none.
async fn link_name(h: &Handle, index: u32) -> Result<Option<String>, LinkError> {
    let link = match h.link().get().match_index(index).execute().try_next().await {
        Ok(link) => link,
        Err(e) if errno(&e) == Some(libc::ENODEV) => None,
        Err(e) => return Err(nl("get link", &index.to_string())(e)),
    };
    Ok(link.and_then(|l| {
        l.attributes.into_iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n),
            _ => None,
        })
    }))
}
