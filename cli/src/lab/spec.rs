//! The names and addresses of a lab, all derived from its name and node count, so that `up`,
//! `down` and `status` agree without asking each other.
//!
//! The lab's wire is `10.240.0.0/24`: the switch holds `.1` (every host's default gateway,
//! as a home router would), the control plane `.2`, node *i* `.10+i`. Pods get `10.244.0.0/16`,
//! a /24 per node from the controller's node IPAM. Both ranges exist only inside the lab's
//! namespaces, so they cannot clash with the machine's own networks.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::LabError;

/// The lab's wire (the switch's subnet).
pub const WIRE_PREFIX: u8 = 24;
/// The switch's address: every host's default gateway.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 240, 0, 1);
/// The control plane's address; the apiserver listens on it.
pub const CONTROL_PLANE_IP: Ipv4Addr = Ipv4Addr::new(10, 240, 0, 2);
/// The apiserver's port inside the lab.
pub const API_PORT: u16 = 6443;
/// The pod network, a /24 per node.
pub const CLUSTER_CIDR: &str = "10.244.0.0/16";
/// Most nodes a lab may have (node addresses run from .11).
pub const MAX_NODES: u32 = 200;
/// Where labs keep their state unless `$MINIK8S_LAB_DIR` says otherwise.
pub const DEFAULT_LAB_DIR: &str = "/var/lib/minik8s/labs";

/// One machine of the lab: a network namespace with a cable to the switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The host's name; for nodes, the Node's name.
    pub name: String,
    /// Its network namespace (`ip netns` name).
    pub netns: String,
    /// Its switch port: the name of the cable's end in the switch namespace.
    pub port: String,
    /// Its address on the wire.
    pub ip: Ipv4Addr,
}

/// A lab: its name and how many nodes it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabSpec {
    pub name: String,
    pub nodes: u32,
}

impl LabSpec {
    /// A lab named `name` (lowercase letters, digits and '-', at most 20, starting with a
    /// letter: it goes into namespace, Node and cgroup names) with `nodes` nodes.
    pub fn new(name: &str, nodes: u32) -> Result<LabSpec, LabError> {
        let valid = !name.is_empty()
            && name.len() <= 20
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && !name.ends_with('-')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            return Err(LabError::Other(format!(
                "invalid lab name {name:?}: 1 to 20 lowercase letters, digits and '-', starting with a letter"
            )));
        }
        if nodes == 0 || nodes > MAX_NODES {
            return Err(LabError::Other(format!(
                "--nodes must be between 1 and {MAX_NODES}"
            )));
        }
        Ok(LabSpec {
            name: name.to_string(),
            nodes,
        })
    }

    fn netns(&self, host: &str) -> String {
        format!("minik8s-{}-{host}", self.name)
    }

    /// The switch's namespace.
    pub fn switch_netns(&self) -> String {
        self.netns("switch")
    }

    /// The control plane's host (etcd, apiserver, controller manager, scheduler).
    pub fn control_plane(&self) -> Host {
        Host {
            name: format!("{}-control-plane", self.name),
            netns: self.netns("control-plane"),
            port: "control-plane".into(),
            ip: CONTROL_PLANE_IP,
        }
    }

    /// Node `i` (1-based).
    pub fn node(&self, i: u32) -> Host {
        Host {
            name: format!("{}-node-{i}", self.name),
            netns: self.netns(&format!("node-{i}")),
            port: format!("node-{i}"),
            ip: Ipv4Addr::new(10, 240, 0, (10 + i) as u8),
        }
    }

    /// Every node, in order.
    pub fn node_hosts(&self) -> Vec<Host> {
        (1..=self.nodes).map(|i| self.node(i)).collect()
    }

    /// The cgroup under which node `host`'s pods go: one per node, so two kubelets of one
    /// machine never touch each other's cgroups.
    pub fn cgroup_root(host: &Host, lab: &str) -> String {
        format!("minik8s-{lab}-{}", host.port)
    }

    /// The kubeconfig context (and cluster and user) name: `minik8s-<lab>`.
    pub fn context(&self) -> String {
        context_name(&self.name)
    }

    /// The lab's state directory.
    pub fn state_dir(&self) -> PathBuf {
        state_dir(&self.name)
    }

    /// The apiserver's URL inside the lab.
    pub fn api_url(&self) -> String {
        format!("https://{CONTROL_PLANE_IP}:{API_PORT}")
    }
}

/// The context name of lab `name`.
pub fn context_name(name: &str) -> String {
    format!("minik8s-{name}")
}

/// The state directory of lab `name`: `$MINIK8S_LAB_DIR/<name>` (default under
/// `/var/lib/minik8s/labs`).
pub fn state_dir(name: &str) -> PathBuf {
    let base = std::env::var_os("MINIK8S_LAB_DIR").unwrap_or_else(|| DEFAULT_LAB_DIR.into());
    PathBuf::from(base).join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_derive_from_the_lab() {
        let lab = LabSpec::new("lab", 3).unwrap();
        assert_eq!(lab.switch_netns(), "minik8s-lab-switch");
        let cp = lab.control_plane();
        assert_eq!(
            (cp.name.as_str(), cp.netns.as_str(), cp.ip),
            (
                "lab-control-plane",
                "minik8s-lab-control-plane",
                CONTROL_PLANE_IP
            )
        );
        let n2 = lab.node(2);
        assert_eq!(n2.name, "lab-node-2");
        assert_eq!(n2.netns, "minik8s-lab-node-2");
        assert_eq!(n2.port, "node-2");
        assert_eq!(n2.ip, Ipv4Addr::new(10, 240, 0, 12));
        assert_eq!(LabSpec::cgroup_root(&n2, "lab"), "minik8s-lab-node-2");
        assert_eq!(lab.context(), "minik8s-lab");
        assert_eq!(lab.node_hosts().len(), 3);
    }

    #[test]
    fn bad_names_and_counts_are_refused() {
        for bad in [
            "",
            "Lab",
            "1lab",
            "lab-",
            "a/b",
            "a-very-long-lab-name-indeed",
        ] {
            assert!(LabSpec::new(bad, 2).is_err(), "{bad:?} accepted");
        }
        assert!(LabSpec::new("lab", 0).is_err());
        assert!(LabSpec::new("lab", MAX_NODES + 1).is_err());
        assert!(LabSpec::new("my-lab2", MAX_NODES).is_ok());
    }
}
