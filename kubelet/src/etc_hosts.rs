//! A pod's `/etc/hosts`, as the real kubelet writes it (`managedHostsFileContent` in
//! `pkg/kubelet/kubelet_pods.go`). hosts(5) maps addresses to names before any DNS query: a
//! pod's file names localhost and the usual IPv6 multicast names, then the pod's own address
//! with its hostname (preceded by its fully qualified name
//! `<hostname>.<subdomain>.<namespace>.svc.<cluster-domain>` when the pod sets `subdomain`, as
//! a headless Service's DNS records name it), then one line per `spec.hostAliases` entry, the
//! pod's way to add names of its own. A `hostNetwork` pod shares the node's network, so it
//! gets the node's file (with its hostAliases appended) instead.
//!
//! The kubelet writes the file once the pod has its address (the sandbox's network is set up
//! after the sandbox exists), as `<root-dir>/pods/<uid>/etc-hosts`, and hands it to each
//! container as a bind mount over `/etc/hosts` ([`mount`]), as a real kubelet hands it to
//! containerd in the container's mounts; the runtime, which knows nothing of pods, binds what
//! it is given. A pod without an address yet, or a container that mounts a volume of its own
//! at `/etc/hosts`, keeps the runtime's sandbox file. [`pod_hosts`] is the pure part.
//! Read `dns_config.rs` for the pod's resolv.conf, and `pod_worker/containers.rs` for the
//! caller.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::volumes;

/// Where a container sees the file.
pub const ETC_HOSTS: &str = "/etc/hosts";
/// The node's own file, a `hostNetwork` pod's base.
pub const NODE_HOSTS: &str = "/etc/hosts";
/// The file's name in the pod's directory (`getEtcHostsPath`).
pub const FILE_NAME: &str = "etc-hosts";

/// The first line of a file the kubelet made from the pod's addresses.
const MANAGED_HEADER: &str = "# Kubernetes-managed hosts file.\n";
/// The first line of a `hostNetwork` pod's copy of the node's file.
const HOST_NETWORK_HEADER: &str = "# Kubernetes-managed hosts file (host network).\n";
/// What every managed file maps: loopback and the IPv6 names of Debian's default file.
const LOCAL_ENTRIES: &str = "127.0.0.1\tlocalhost\n\
                             ::1\tlocalhost ip6-localhost ip6-loopback\n\
                             fe00::0\tip6-localnet\n\
                             fe00::0\tip6-mcastprefix\n\
                             fe00::1\tip6-allnodes\n\
                             fe00::2\tip6-allrouters\n";

/// Why the pod's hosts file could not be made (the container then waits in
/// `CreateContainerConfigError`, as a real kubelet's does).
#[derive(Debug, thiserror::Error)]
pub enum HostsFileError {
    /// The node's file, which a `hostNetwork` pod copies, could not be read.
    #[error("reading the node's hosts file {path:?}: {source}")]
    ReadNodeHosts {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The pod's file could not be written in the pod's directory.
    #[error("writing the pod's hosts file {path:?}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Which network the pod is on, and so what its file starts from.
#[derive(Debug, Clone, Copy)]
pub enum PodNetwork<'a> {
    /// Its own network namespace: the kubelet's file, naming these addresses.
    Pod { ips: &'a [IpAddr] },
    /// `hostNetwork`: the node's network, and the node's file (its text).
    Host { node_hosts: &'a str },
}

/// The pod's hostname, as its sandbox's UTS namespace has it: `spec.hostname`, else the pod's
/// name, cut to a DNS label's 63 characters.
pub fn hostname(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .unwrap_or_else(|| pod.metadata.name.clone().unwrap_or_default())
        .chars()
        .take(63)
        .collect()
}

/// The pod's domain when it sets `spec.subdomain`: `<subdomain>.<namespace>.svc.<domain>`
/// (`GeneratePodHostNameAndDomain`).
pub fn host_domain(pod: &Pod, cluster_domain: &str) -> Option<String> {
    let subdomain = pod
        .spec
        .as_ref()
        .and_then(|s| s.subdomain.as_deref())
        .filter(|s| !s.is_empty())?;
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    Some(format!("{subdomain}.{namespace}.svc.{cluster_domain}"))
}

/// The text of the pod's `/etc/hosts`.
pub fn pod_hosts(pod: &Pod, network: PodNetwork, cluster_domain: &str) -> String {
    let mut text = String::new();
    match network {
        PodNetwork::Host { node_hosts } => {
            text += HOST_NETWORK_HEADER;
            text += node_hosts;
        }
        PodNetwork::Pod { ips } => {
            text += MANAGED_HEADER;
            text += LOCAL_ENTRIES;
            let hostname = hostname(pod);
            let names = match host_domain(pod, cluster_domain) {
                Some(domain) => format!("{hostname}.{domain}\t{hostname}"),
                None => hostname,
            };
            for ip in ips {
                text += &format!("{ip}\t{names}\n");
            }
        }
    }
    text += &host_aliases(pod);
    text
}

/// `spec.hostAliases`, one line per address with all its names, after a blank line and a
/// comment; nothing when there are none.
fn host_aliases(pod: &Pod) -> String {
    let aliases = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_aliases.as_deref())
        .unwrap_or_default();
    if aliases.is_empty() {
        return String::new();
    }
    let mut text = String::from("\n# Entries added by HostAliases.\n");
    for alias in aliases {
        let names = alias.hostnames.as_deref().unwrap_or_default().join("\t");
        text += &format!("{}\t{names}\n", alias.ip);
    }
    text
}

/// Does container `c` get the kubelet's file (`shouldMountHostsFile`)? Once the pod has an
/// address (a `hostNetwork` pod has the node's), and unless it mounts a volume there itself.
pub fn mounts_hosts_file(pod: &Pod, c: &Container, has_pod_ip: bool) -> bool {
    let host_network = pod.spec.as_ref().and_then(|s| s.host_network) == Some(true);
    let own_mount = c
        .volume_mounts
        .iter()
        .flatten()
        .any(|m| m.mount_path.trim_end_matches('/') == ETC_HOSTS);
    (has_pod_ip || host_network) && !own_mount
}

/// Write the pod's file for container `c` (`makeHostsMount`) and return the bind that puts it
/// at `/etc/hosts` (`HOST:CTR`, as [`volumes::binds`] gives), or `None` when `c` keeps the
/// runtime's file. Written in place, and only when it changed: running containers of the pod
/// have this very inode bound.
pub fn mount(
    root_dir: &Path,
    pod: &Pod,
    c: &Container,
    pod_ip: Option<IpAddr>,
    cluster_domain: &str,
) -> Result<Option<String>, HostsFileError> {
    if !mounts_hosts_file(pod, c, pod_ip.is_some()) {
        return Ok(None);
    }
    let host_network = pod.spec.as_ref().and_then(|s| s.host_network) == Some(true);
    let node_hosts = if host_network {
        fs::read_to_string(NODE_HOSTS).map_err(|source| HostsFileError::ReadNodeHosts {
            path: NODE_HOSTS.into(),
            source,
        })?
    } else {
        String::new()
    };
    let ips: Vec<IpAddr> = pod_ip.into_iter().collect();
    let network = if host_network {
        PodNetwork::Host {
            node_hosts: &node_hosts,
        }
    } else {
        PodNetwork::Pod { ips: &ips }
    };
    let text = pod_hosts(pod, network, cluster_domain);
    let dir = volumes::pod_dir(root_dir, pod.metadata.uid.as_deref().unwrap_or_default());
    let path = dir.join(FILE_NAME);
    let write_err = |source| HostsFileError::Write {
        path: path.clone(),
        source,
    };
    if fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
        fs::create_dir_all(&dir).map_err(write_err)?;
        fs::write(&path, &text).map_err(write_err)?;
    }
    Ok(Some(format!("{}:{ETC_HOSTS}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        spec["containers"] = json!([{"name": "c", "image": "busybox"}]);
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
            "spec": spec,
        }))
        .unwrap()
    }

    const LOCAL: &str = "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n\
                         ::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
                         fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n";

    fn ips() -> Vec<IpAddr> {
        vec!["10.244.1.7".parse().unwrap()]
    }

    #[test]
    fn a_pod_is_named_by_its_address() {
        let text = pod_hosts(
            &pod(json!({})),
            PodNetwork::Pod { ips: &ips() },
            "cluster.local",
        );
        assert_eq!(text, format!("{LOCAL}10.244.1.7\tweb\n"));
        let named = pod(json!({"hostname": "db-0"}));
        let text = pod_hosts(&named, PodNetwork::Pod { ips: &ips() }, "cluster.local");
        assert!(text.ends_with("\n10.244.1.7\tdb-0\n"), "{text}");
    }

    #[test]
    fn a_subdomain_puts_the_fully_qualified_name_first() {
        let p = pod(json!({"hostname": "db-0", "subdomain": "db"}));
        let text = pod_hosts(&p, PodNetwork::Pod { ips: &ips() }, "example.org");
        assert_eq!(
            text,
            format!("{LOCAL}10.244.1.7\tdb-0.db.shop.svc.example.org\tdb-0\n")
        );
    }

    #[test]
    fn host_aliases_follow_one_line_per_address() {
        let p = pod(json!({"hostAliases": [
            {"ip": "127.0.0.1", "hostnames": ["foo.local", "bar.local"]},
            {"ip": "10.1.2.3", "hostnames": ["foo.remote"]}]}));
        let text = pod_hosts(&p, PodNetwork::Pod { ips: &ips() }, "cluster.local");
        assert_eq!(
            text,
            format!(
                "{LOCAL}10.244.1.7\tweb\n\n# Entries added by HostAliases.\n\
                 127.0.0.1\tfoo.local\tbar.local\n10.1.2.3\tfoo.remote\n"
            )
        );
    }

    #[test]
    fn without_an_address_only_the_local_names() {
        let text = pod_hosts(&pod(json!({})), PodNetwork::Pod { ips: &[] }, "x");
        assert_eq!(text, LOCAL);
    }

    #[test]
    fn a_host_network_pod_gets_the_nodes_file_and_its_aliases() {
        let p = pod(json!({"hostNetwork": true,
            "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo"]}]}));
        let node = "127.0.0.1 localhost\n192.0.2.1 node-a\n";
        let text = pod_hosts(&p, PodNetwork::Host { node_hosts: node }, "x");
        assert_eq!(
            text,
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n\
             192.0.2.1 node-a\n\n# Entries added by HostAliases.\n10.1.2.3\tfoo\n"
        );
    }

    #[test]
    fn the_file_is_mounted_once_there_is_an_address_and_no_mount_of_the_pods() {
        let p = pod(json!({}));
        let c = &p.spec.as_ref().unwrap().containers[0];
        assert!(mounts_hosts_file(&p, c, true));
        assert!(!mounts_hosts_file(&p, c, false));
        let host = pod(json!({"hostNetwork": true}));
        assert!(mounts_hosts_file(&host, c, false));
        let own: Container = serde_json::from_value(json!({"name": "c",
            "volumeMounts": [{"name": "h", "mountPath": "/etc/hosts"}]}))
        .unwrap();
        assert!(!mounts_hosts_file(&p, &own, true));
    }

    #[test]
    fn mount_writes_the_file_in_the_pods_directory() {
        let root = std::env::temp_dir().join(format!("minik8s-hosts-{}", std::process::id()));
        let p = pod(json!({}));
        let c = &p.spec.as_ref().unwrap().containers[0];
        let ip = Some(ips()[0]);
        let bind = mount(&root, &p, c, ip, "cluster.local").unwrap().unwrap();
        let file = root.join("pods/u1/etc-hosts");
        assert_eq!(bind, format!("{}:/etc/hosts", file.display()));
        assert!(fs::read_to_string(&file)
            .unwrap()
            .ends_with("10.244.1.7\tweb\n"));
        assert_eq!(mount(&root, &p, c, None, "cluster.local").unwrap(), None);
        fs::remove_dir_all(&root).unwrap();
    }
}
