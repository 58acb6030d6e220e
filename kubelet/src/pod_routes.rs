//! Routes to the other nodes' pods, flannel's *host-gw* backend. Every node holds its own pod
//! range (`spec.podCIDR`) on its pod bridge; a pod's packet to a pod of another node leaves
//! the bridge, and without a route the node would send it to its default gateway, which
//! knows nothing of pod ranges. When all nodes share one L2 subnet, the simplest answer is a
//! plain route per other node: `ip route replace <its podCIDR> via <its InternalIP>`. The
//! other node then forwards the packet from its `eth0` to its bridge, and the answer comes
//! back the same way. No encapsulation, no overlay: only routes and IPv4 forwarding.
//!
//! With `--route-pod-cidrs` the kubelet watches the Nodes and keeps these routes level-
//! triggered, in its own network namespace: each pass compares the routes the Nodes ask for
//! ([`desired_routes`], pure) with the routes the kernel holds tagged with our route protocol
//! number ([`ROUTE_PROTOCOL`]) and adds, replaces and deletes until they match. The tag is
//! what lets the kubelet find and delete exactly its own routes, never an administrator's.
//! Read `runtime/src/network/link.rs` for the netlink calls.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::runtime::{reflector, WatchStreamExt};
use runtime::network::link::{self, GatewayRoute, LinkError};
use runtime::network::Cidr;

/// The route protocol that marks the kubelet's routes (`ip route show proto 77`); see
/// [`runtime::network::POD_ROUTE_PROTOCOL`].
pub use runtime::network::POD_ROUTE_PROTOCOL as ROUTE_PROTOCOL;

/// How often the routes are checked even without a Node event (someone may have deleted one).
const RESYNC: Duration = Duration::from_secs(30);

/// Why routing the pod ranges failed.
#[derive(Debug, thiserror::Error)]
pub enum PodRoutesError {
    /// A netlink step (list, replace or delete a route, list addresses) failed.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// Turning IPv4 forwarding on failed.
    #[error("turn on IPv4 forwarding ({path}): {source}")]
    Forwarding {
        path: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Why a Node that has a pod range and an address gets no route.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Skip {
    /// Its spec.podCIDR is not an IPv4 range.
    BadPodCidr { pod_cidr: String },
    /// Its InternalIP is not an IPv4 address.
    BadInternalIp { address: String },
    /// Its InternalIP is on no subnet of ours: the kernel accepts only a gateway it can reach
    /// directly (host-gw needs all nodes on one L2 network).
    NotConnected { address: Ipv4Addr },
    /// Its InternalIP is one of our own addresses (or loopback): no next hop.
    OwnAddress { address: Ipv4Addr },
    /// Its pod range overlaps a subnet we are directly connected to (our bridge's, our
    /// `eth0`'s): routing it would take traffic away from that interface.
    Overlaps { pod_cidr: Cidr },
    /// Another Node (first by name) has the same podCIDR: one destination has one route.
    Duplicate { pod_cidr: Cidr, node: String },
}

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skip::BadPodCidr { pod_cidr } => write!(f, "podCIDR {pod_cidr:?} is not IPv4"),
            Skip::BadInternalIp { address } => write!(f, "InternalIP {address:?} is not IPv4"),
            Skip::NotConnected { address } => {
                write!(f, "InternalIP {address} is on no directly connected subnet")
            }
            Skip::OwnAddress { address } => write!(f, "InternalIP {address} is this node's"),
            Skip::Overlaps { pod_cidr } => {
                write!(f, "podCIDR {pod_cidr} overlaps a connected subnet")
            }
            Skip::Duplicate { pod_cidr, node } => {
                write!(f, "podCIDR {pod_cidr} is node {node}'s too")
            }
        }
    }
}

/// The routes the Nodes ask for, and the Nodes left out with the reason.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Desired {
    pub routes: BTreeSet<GatewayRoute>,
    pub skipped: BTreeMap<String, Skip>,
}

/// The subnet `ip/prefix` is on.
fn subnet(ip: Ipv4Addr, prefix: u8) -> Cidr {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    Cidr {
        network: Ipv4Addr::from(u32::from(ip) & mask),
        prefix,
    }
}

fn overlaps(a: Cidr, b: Cidr) -> bool {
    a.contains(b.network) || b.contains(a.network)
}

/// The route Node `node` asks for: None when it has no podCIDR or InternalIP yet (a Node
/// registers before the controller assigns its range), else the route or why it gets none.
fn route_for(node: &Node, addresses: &[(Ipv4Addr, u8)]) -> Option<Result<GatewayRoute, Skip>> {
    let pod_cidr = node.spec.as_ref()?.pod_cidr.clone()?;
    let address = node
        .status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .find(|a| a.type_ == "InternalIP")?
        .address
        .clone();
    let Ok(destination) = pod_cidr.parse::<Cidr>() else {
        return Some(Err(Skip::BadPodCidr { pod_cidr }));
    };
    let Ok(gateway) = address.parse::<Ipv4Addr>() else {
        return Some(Err(Skip::BadInternalIp { address }));
    };
    let connected = addresses
        .iter()
        .filter(|(_, prefix)| *prefix < 32)
        .map(|(ip, prefix)| subnet(*ip, *prefix));
    Some(
        if gateway.is_loopback() || addresses.iter().any(|(ip, _)| *ip == gateway) {
            Err(Skip::OwnAddress { address: gateway })
        } else if connected.clone().any(|s| overlaps(s, destination)) {
            Err(Skip::Overlaps {
                pod_cidr: destination,
            })
        } else if !connected.clone().any(|s| s.contains(gateway)) {
            Err(Skip::NotConnected { address: gateway })
        } else {
            Ok(GatewayRoute {
                destination,
                gateway,
            })
        },
    )
}

/// The routes this node (`own`, whose addresses are `addresses`) needs: for every other Node
/// with a spec.podCIDR and an InternalIP, `podCIDR via InternalIP`. Its own range is never
/// routed (its bridge holds it), nor is a range that overlaps a connected subnet; of Nodes
/// sharing a range (a misconfiguration) the first by name gets the route.
pub fn desired_routes(nodes: &[Node], own: &str, addresses: &[(Ipv4Addr, u8)]) -> Desired {
    let mut desired = Desired::default();
    let mut sorted: Vec<&Node> = nodes.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut owners: BTreeMap<Cidr, String> = BTreeMap::new();
    for node in sorted {
        let name = node.metadata.name.clone().unwrap_or_default();
        if name == own {
            continue;
        }
        match route_for(node, addresses) {
            Some(Ok(route)) => match owners.get(&route.destination) {
                Some(first) => {
                    let skip = Skip::Duplicate {
                        pod_cidr: route.destination,
                        node: first.clone(),
                    };
                    desired.skipped.insert(name, skip);
                }
                None => {
                    owners.insert(route.destination, name);
                    desired.routes.insert(route);
                }
            },
            Some(Err(skip)) => {
                desired.skipped.insert(name, skip);
            }
            None => {}
        }
    }
    desired
}

/// What one pass changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// Routes added or replaced.
    pub added: Vec<GatewayRoute>,
    /// Routes of ours deleted (node gone, its range or address changed).
    pub deleted: Vec<GatewayRoute>,
    /// Nodes given no route, with the reason.
    pub skipped: BTreeMap<String, Skip>,
}

/// One level-triggered pass in the network namespace pinned at `netns` (the kubelet's own when
/// None): IPv4 forwarding on, then our routes made to match what `nodes` ask for. Blocking (a
/// netlink thread of its own): call it from a blocking task.
pub fn reconcile(
    nodes: Vec<Node>,
    own: &str,
    netns: Option<&Path>,
) -> Result<Pass, PodRoutesError> {
    let own = own.to_string();
    let result = link::on_thread(netns, move |h| async move {
        // /proc/sys/net is the network namespace of the thread that opens it: this one's
        let forwarding = enable_forwarding();
        let addresses = link::ipv4_addresses(&h).await?;
        let desired = desired_routes(&nodes, &own, &addresses);
        let current: BTreeSet<GatewayRoute> = link::routes_of(&h, ROUTE_PROTOCOL)
            .await?
            .into_iter()
            .collect();
        let mut pass = Pass {
            skipped: desired.skipped,
            ..Pass::default()
        };
        // replace first: a changed gateway is swapped in one step, no gap in between
        for route in desired.routes.difference(&current) {
            link::replace_route(&h, *route, ROUTE_PROTOCOL).await?;
            pass.added.push(*route);
        }
        for route in current.difference(&desired.routes) {
            link::delete_route(&h, *route, ROUTE_PROTOCOL).await?;
            pass.deleted.push(*route);
        }
        Ok((forwarding, pass))
    });
    let (forwarding, pass) = result?;
    forwarding?;
    Ok(pass)
}

/// `/proc/sys/net/ipv4/ip_forward = 1`: a pod's packet to another node's pod comes in on the
/// bridge and must be forwarded out of `eth0` (and the answer the other way).
fn enable_forwarding() -> Result<(), PodRoutesError> {
    const PATH: &str = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(PATH).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(PATH, "1").map_err(|source| PodRoutesError::Forwarding { path: PATH, source })
}

/// Delete every route of ours in the namespace pinned at `netns` (the kubelet's own when None),
/// for `--cleanup`. Returns how many there were.
pub fn remove_all(netns: Option<&Path>) -> Result<usize, PodRoutesError> {
    let n = link::on_thread(netns, |h| async move {
        let routes = link::routes_of(&h, ROUTE_PROTOCOL).await?;
        for route in &routes {
            link::delete_route(&h, *route, ROUTE_PROTOCOL).await?;
        }
        Ok(routes.len())
    })?;
    Ok(n)
}

/// Watch the Nodes and keep this node's routes to the other nodes' pod ranges, in the network
/// namespace at `netns` (the kubelet's own when None), until the task is dropped. A pass runs
/// after the first list, on every Node change and every 30 s; a failed pass is retried then.
pub async fn run(client: kube::Client, own: String, netns: Option<PathBuf>) {
    let (reader, writer) = reflector::store::<Node>();
    let nodes: Api<Node> = Api::all(client);
    let mut stream = reflector(writer, watcher::watcher(nodes, watcher::Config::default()))
        .default_backoff()
        .boxed();
    let mut resync = tokio::time::interval(RESYNC);
    let mut listed = false;
    let mut warned: BTreeMap<String, Skip> = BTreeMap::new();
    loop {
        tokio::select! {
            ev = stream.next() => match ev {
                Some(Ok(Event::InitDone)) => listed = true,
                Some(Ok(Event::Apply(_) | Event::Delete(_))) => {}
                Some(Ok(Event::Init | Event::InitApply(_))) => continue,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "node watch");
                    continue;
                }
                None => return,
            },
            _ = resync.tick() => {}
        }
        if !listed {
            continue;
        }
        let snapshot: Vec<Node> = reader.state().iter().map(|n| (**n).clone()).collect();
        let (o, ns) = (own.clone(), netns.clone());
        match tokio::task::spawn_blocking(move || reconcile(snapshot, &o, ns.as_deref())).await {
            Ok(Ok(pass)) => log_pass(&pass, &mut warned),
            Ok(Err(e)) => tracing::warn!(error = %e, "routing the other nodes' pod ranges"),
            Err(e) => tracing::warn!(error = %e, "routing the other nodes' pod ranges"),
        }
    }
}

/// Log what a pass changed; a skipped node is warned about once per reason.
fn log_pass(pass: &Pass, warned: &mut BTreeMap<String, Skip>) {
    for route in &pass.added {
        tracing::info!(destination = %route.destination, gateway = %route.gateway, "pod range routed");
    }
    for route in &pass.deleted {
        tracing::info!(destination = %route.destination, gateway = %route.gateway, "pod range route deleted");
    }
    for (node, skip) in &pass.skipped {
        if warned.get(node) != Some(skip) {
            tracing::warn!(node = %node, reason = %skip, "not routing the node's pod range");
        }
    }
    warned.clone_from(&pass.skipped);
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeSpec, NodeStatus};

    fn node(name: &str, pod_cidr: Option<&str>, ip: Option<&str>) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.to_string());
        n.spec = Some(NodeSpec {
            pod_cidr: pod_cidr.map(str::to_string),
            ..NodeSpec::default()
        });
        let mut addresses = vec![NodeAddress {
            type_: "Hostname".into(),
            address: name.into(),
        }];
        addresses.extend(ip.map(|ip| NodeAddress {
            type_: "InternalIP".into(),
            address: ip.into(),
        }));
        n.status = Some(NodeStatus {
            addresses: Some(addresses),
            ..NodeStatus::default()
        });
        n
    }

    fn route(destination: &str, gateway: &str) -> GatewayRoute {
        GatewayRoute {
            destination: destination.parse().unwrap(),
            gateway: gateway.parse().unwrap(),
        }
    }

    /// Node a's view: eth0 172.31.0.11/24, its bridge 10.244.1.1/24, loopback.
    fn addresses() -> Vec<(Ipv4Addr, u8)> {
        vec![
            (Ipv4Addr::LOCALHOST, 8),
            ("172.31.0.11".parse().unwrap(), 24),
            ("10.244.1.1".parse().unwrap(), 24),
        ]
    }

    #[test]
    fn every_other_node_with_a_range_and_an_address_is_routed_via_its_internal_ip() {
        let nodes = [
            node("a", Some("10.244.1.0/24"), Some("172.31.0.11")),
            node("b", Some("10.244.2.0/24"), Some("172.31.0.12")),
            node("c", Some("10.244.3.0/24"), Some("172.31.0.13")),
        ];
        let d = desired_routes(&nodes, "a", &addresses());
        assert_eq!(
            d.routes.into_iter().collect::<Vec<_>>(),
            [
                route("10.244.2.0/24", "172.31.0.12"),
                route("10.244.3.0/24", "172.31.0.13")
            ]
        );
        assert!(d.skipped.is_empty());
    }

    #[test]
    fn a_node_without_a_range_or_an_address_yet_is_left_out_quietly() {
        let nodes = [
            node("new", None, Some("172.31.0.12")),
            node("bare", Some("10.244.3.0/24"), None),
        ];
        assert_eq!(
            desired_routes(&nodes, "a", &addresses()),
            Desired::default()
        );
    }

    #[test]
    fn unreachable_gateways_and_overlapping_ranges_are_skipped_with_the_reason() {
        let nodes = [
            node("far", Some("10.244.4.0/24"), Some("192.168.99.5")),
            node("self", Some("10.244.5.0/24"), Some("172.31.0.11")),
            node("lo", Some("10.244.6.0/24"), Some("127.0.0.1")),
            node("thief", Some("10.244.1.0/24"), Some("172.31.0.14")),
            node("v6", Some("fd00::/64"), Some("172.31.0.15")),
            node("v6ip", Some("10.244.7.0/24"), Some("fd00::7")),
        ];
        let d = desired_routes(&nodes, "a", &addresses());
        assert!(d.routes.is_empty(), "{:?}", d.routes);
        let reason = |n: &str| d.skipped.get(n).cloned();
        assert_eq!(
            reason("far"),
            Some(Skip::NotConnected {
                address: "192.168.99.5".parse().unwrap()
            })
        );
        assert!(matches!(reason("self"), Some(Skip::OwnAddress { .. })));
        assert!(matches!(reason("lo"), Some(Skip::OwnAddress { .. })));
        assert!(matches!(reason("thief"), Some(Skip::Overlaps { .. })));
        assert!(matches!(reason("v6"), Some(Skip::BadPodCidr { .. })));
        assert!(matches!(reason("v6ip"), Some(Skip::BadInternalIp { .. })));
    }

    #[test]
    fn of_two_nodes_with_one_range_the_first_by_name_is_routed() {
        let nodes = [
            node("d", Some("10.244.2.0/24"), Some("172.31.0.14")),
            node("b", Some("10.244.2.0/24"), Some("172.31.0.12")),
        ];
        let d = desired_routes(&nodes, "a", &addresses());
        assert_eq!(
            d.routes.into_iter().collect::<Vec<_>>(),
            [route("10.244.2.0/24", "172.31.0.12")]
        );
        assert_eq!(
            d.skipped.get("d"),
            Some(&Skip::Duplicate {
                pod_cidr: "10.244.2.0/24".parse().unwrap(),
                node: "b".into()
            })
        );
    }

    #[test]
    fn the_subnet_of_an_address_clears_its_host_bits() {
        let s = subnet("172.31.0.11".parse().unwrap(), 24);
        assert_eq!(s.to_string(), "172.31.0.0/24");
        assert!(overlaps(s, "172.31.0.0/16".parse().unwrap()));
        assert!(!overlaps(s, "172.31.1.0/24".parse().unwrap()));
        assert_eq!(
            subnet("10.0.0.1".parse().unwrap(), 0).to_string(),
            "0.0.0.0/0"
        );
    }
}
