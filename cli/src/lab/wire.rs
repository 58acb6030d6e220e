//! The lab's cabling, as one would wire machines to a switch: the switch namespace holds a
//! Linux bridge (`switch0`, with the gateway address), and every host gets a veth pair, one
//! end plugged into the bridge under the host's port name, the other end created right
//! inside the host's namespace as `eth0` with the host's address and a default route via the
//! switch. The netlink steps are the runtime's (`runtime::network::link`), the same that give
//! a pod its `eth0` on the node's bridge: a lab host is wired exactly like a pod, one level up.
//!
//! The control plane is on the pod network too, as a kubeadm control-plane machine running
//! the CNI is: it routes each node's pod range through the node's address
//! ([`route_pod_ranges`]), the routes each kubelet keeps with `--route-pod-cidrs`. A pod that
//! reaches the apiserver through the `kubernetes` Service keeps its own address as the
//! source (the proxy's DNAT changes only the destination), so the answer needs that route.

use std::path::Path;

use k8s_openapi::api::core::v1::Node;
use rtnetlink::LinkUnspec;
use runtime::network::link::GatewayRoute;
use runtime::network::{link, Cidr, DEFAULT_BRIDGE, POD_ROUTE_PROTOCOL};

use super::spec::{Host, GATEWAY, WIRE_PREFIX};
use super::LabError;

/// The switch's bridge.
pub const SWITCH_BRIDGE: &str = "switch0";
/// MTU of the lab's wire.
const MTU: u32 = 1500;
/// The loopback interface's index, in every network namespace.
const LOOPBACK_INDEX: u32 = 1;

/// Set the switch up inside its namespace: the bridge, holding the gateway address.
pub fn switch(switch_ns: &Path) -> Result<(), LabError> {
    link::on_thread(Some(switch_ns), |h| async move {
        link::ensure_bridge(&h, SWITCH_BRIDGE, GATEWAY, WIRE_PREFIX, MTU).await
    })?;
    Ok(())
}

/// Cable `host` (its namespace pinned at `host_ns`) to the switch: `eth0` with its address,
/// up, a default route via the switch, and its loopback up.
pub fn plug(switch_ns: &Path, host_ns: &Path, host: &Host) -> Result<(), LabError> {
    let (port, ns) = (host.port.clone(), host_ns.to_owned());
    link::on_thread(Some(switch_ns), move |h| async move {
        link::add_veth(&h, SWITCH_BRIDGE, &port, &ns, MTU).await
    })?;
    let ip = host.ip;
    link::on_thread(Some(host_ns), move |h| async move {
        link::configure_pod_side(&h, ip, WIRE_PREFIX, GATEWAY).await?;
        h.link()
            .set(LinkUnspec::new_with_index(LOOPBACK_INDEX).up().build())
            .execute()
            .await
            .map_err(|source| link::LinkError::Netlink {
                step: "set up",
                name: "lo".into(),
                source,
            })
    })?;
    Ok(())
}

/// Whether the node whose namespace is pinned at `node_ns` has its pod network: its pod
/// bridge, and a route to each of its `peers` other nodes' pod ranges. A node is Ready before
/// that (the kubelet learns its range from the Node, then sets the bridge up), so `up` waits
/// for both: the first pods then always get an address and reach every node.
pub fn pod_network_ready(node_ns: &Path, peers: usize) -> bool {
    link::on_thread(Some(node_ns), move |h| async move {
        let bridge = link::index(&h, DEFAULT_BRIDGE).await?.is_some();
        let routes = link::routes_of(&h, POD_ROUTE_PROTOCOL).await?.len();
        Ok(bridge && routes >= peers)
    })
    .unwrap_or(false)
}

/// The routes to the pod ranges of `hosts`: each host's Node's `spec.podCIDR` via the host's
/// address (a host whose Node has no range yet is left out).
pub fn pod_range_routes(hosts: &[Host], nodes: &[Node]) -> Vec<GatewayRoute> {
    hosts
        .iter()
        .filter_map(|host| {
            let node = nodes
                .iter()
                .find(|n| n.metadata.name.as_deref() == Some(&host.name))?;
            let cidr = node.spec.as_ref()?.pod_cidr.as_deref()?;
            Some(GatewayRoute {
                destination: cidr.parse::<Cidr>().ok()?,
                gateway: host.ip,
            })
        })
        .collect()
}

/// Put `routes` into the main table of the namespace pinned at `ns`, tagged as pod routes
/// (`ip route show proto 77`).
pub fn route_pod_ranges(ns: &Path, routes: Vec<GatewayRoute>) -> Result<(), LabError> {
    link::on_thread(Some(ns), move |h| async move {
        for route in routes {
            link::replace_route(&h, route, POD_ROUTE_PROTOCOL).await?;
        }
        Ok(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::spec::LabSpec;

    #[test]
    fn each_nodes_pod_range_goes_through_its_address() {
        let lab = LabSpec::new("lab", 3).unwrap();
        let node = |name: &str, cidr: Option<&str>| -> Node {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name},
                "spec": {"podCIDR": cidr},
            }))
            .unwrap()
        };
        let nodes = [
            node("lab-node-2", Some("10.244.0.0/24")),
            node("lab-node-1", Some("10.244.1.0/24")),
            node("lab-node-3", None),
        ];
        let routes: Vec<String> = pod_range_routes(&lab.node_hosts(), &nodes)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            routes,
            [
                "10.244.1.0/24 via 10.240.0.11",
                "10.244.0.0/24 via 10.240.0.12"
            ]
        );
    }
}
