//! Pod sandboxes: what the containers of one pod share. A sandbox pins the pod's net, ipc and
//! uts namespaces as bind-mounted files (`namespaces.rs`) that each container setns(2)s into,
//! holds the pod's `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`, and owns the pod-level
//! cgroup; with `shareProcessNamespace` a pause process (`pause.rs`) is PID 1 of a shared pid
//! namespace. Read next: `create.rs`.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ContainerError, Status};
use crate::error::io_err;
use crate::store::{read_json, write_json};
use crate::{logs, namespaces, pause, Runtime};

/// A pod sandbox: pinned namespaces, per-pod /etc files and the pod cgroup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sandbox {
    pub id: String,
    pub hostname: String,
    pub cgroup: PathBuf,
    pub created_at: String,
    /// Host pid of the pause process, PID 1 of the pod's shared pid namespace (`pause.rs`);
    /// `None`: every container gets its own pid namespace.
    #[serde(default)]
    pub pause_pid: Option<i32>,
}

/// Options of `sandbox create`: the pod-level part of a PodSpec.
#[derive(Debug, Clone, Default)]
pub struct SandboxOptions {
    /// Defaults to the sandbox id.
    pub hostname: Option<String>,
    /// `shareProcessNamespace: true`: all containers in one pid namespace.
    pub share_pid: bool,
    /// The sandbox's resolver, decided by the caller (the kubelet, from the pod's dnsPolicy).
    /// `None` or empty: the host's `/etc/resolv.conf`, as containerd copies it.
    pub dns: Option<DnsConfig>,
}

/// A sandbox's resolver settings, CRI's `DNSConfig`: the lines of its `/etc/resolv.conf`
/// (resolv.conf(5)). The runtime only writes them; which servers and search domains a pod
/// gets is the kubelet's business.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsConfig {
    /// `nameserver` lines, in order (the resolver tries them in turn).
    pub servers: Vec<String>,
    /// The `search` line: domains appended to a name with fewer dots than `ndots`.
    pub searches: Vec<String>,
    /// The `options` line, e.g. `ndots:5`, `edns0`.
    pub options: Vec<String>,
}

impl DnsConfig {
    /// Nothing set: the runtime falls back to the host's file.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.searches.is_empty() && self.options.is_empty()
    }

    /// The file's text, in containerd's order: `search`, one `nameserver` per server,
    /// `options`; lines with nothing to say are left out.
    pub fn to_resolv_conf(&self) -> String {
        let mut text = String::new();
        if !self.searches.is_empty() {
            text += &format!("search {}\n", self.searches.join(" "));
        }
        for server in &self.servers {
            text += &format!("nameserver {server}\n");
        }
        if !self.options.is_empty() {
            text += &format!("options {}\n", self.options.join(" "));
        }
        text
    }
}

impl Runtime {
    /// The sandbox's directory on tmpfs: pinned namespaces, pod /etc files, `sandbox.json`.
    pub fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.state.join("sandboxes").join(id)
    }

    /// Create a sandbox: pinned net/ipc/uts namespaces (loopback up), /etc files, pod cgroup.
    pub fn create_sandbox(
        &self,
        id: &str,
        hostname: Option<&str>,
    ) -> Result<Sandbox, ContainerError> {
        let opts = SandboxOptions {
            hostname: hostname.map(str::to_string),
            ..Default::default()
        };
        self.create_sandbox_with(id, &opts)
    }

    /// Create a sandbox with `opts`; with `share_pid` also its pid namespace and pause process.
    pub fn create_sandbox_with(
        &self,
        id: &str,
        opts: &SandboxOptions,
    ) -> Result<Sandbox, ContainerError> {
        let hostname = opts.hostname.as_deref();
        let dir = self.sandbox_dir(id);
        if dir.exists() {
            return Err(ContainerError::NameInUse {
                name: id.to_string(),
            });
        }
        fs::create_dir_all(&dir).map_err(io_err("create sandbox dir", &dir))?;
        let hostname = hostname.unwrap_or(id).to_string();
        let mut sb = Sandbox {
            id: id.to_string(),
            hostname: hostname.clone(),
            cgroup: self.cgroup_parent.join(id),
            created_at: logs::now(),
            pause_pid: None,
        };
        let result = (|| {
            write_etc_files(&dir, &hostname, opts.dns.as_ref())?;
            namespaces::create_pinned(&dir, &hostname)?;
            self.cgroups.create(&sb.cgroup)?;
            if opts.share_pid {
                let pid = pause::spawn(&self.shim_exe, &self.root, &dir)?;
                sb.pause_pid = Some(pid);
                if let Err(e) = pause::pin(pid, &dir) {
                    pause::remove(Some(pid), &dir);
                    return Err(e.into());
                }
            }
            write_json(&dir.join("sandbox.json"), &sb)
        })();
        if let Err(e) = result {
            let _ = self.remove_sandbox(id, true);
            return Err(e);
        }
        Ok(sb)
    }

    pub fn sandbox(&self, id: &str) -> Result<Sandbox, ContainerError> {
        let path = self.sandbox_dir(id).join("sandbox.json");
        if !path.exists() {
            return Err(ContainerError::SandboxNotFound { id: id.to_string() });
        }
        read_json(&path)
    }

    pub fn sandbox_ids(&self) -> Vec<String> {
        fs::read_dir(self.state.join("sandboxes"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Remove a sandbox; with `force` its containers are stopped and removed first.
    pub fn remove_sandbox(&self, id: &str, force: bool) -> Result<(), ContainerError> {
        let dir = self.sandbox_dir(id);
        for cid in self.container_ids() {
            if self.spec(&cid).ok().and_then(|s| s.sandbox).as_deref() == Some(id) {
                if !force && self.state(&cid)?.status == Status::Running {
                    return Err(ContainerError::WrongState {
                        id: cid,
                        status: Status::Running,
                    });
                }
                self.remove(&cid, true)?;
            }
        }
        let sb = self.sandbox(id).ok();
        pause::remove(sb.as_ref().and_then(|sb| sb.pause_pid), &dir);
        namespaces::remove_pinned(&dir);
        // the pod level the sandbox recorded (its runtime's cgroup parent may not be ours);
        // the parent above it stays: others may be creating under it (cgroups.rs)
        let cg = sb.map_or_else(|| self.cgroup_parent.join(id), |sb| sb.cgroup);
        self.cgroups.remove(&cg)?;
        let _ = fs::remove_dir_all(&dir);
        Ok(())
    }
}

/// The per-pod `/etc/hosts`, `/etc/hostname` and `/etc/resolv.conf`: `dns` when given, else
/// the host's resolver without its loopback nameservers (a stub such as systemd-resolved's
/// 127.0.0.53 is not reachable from the sandbox's own network namespace). The hosts file
/// names the hostname only, as the address comes later; a caller that knows it (the kubelet)
/// mounts a file of its own over `/etc/hosts` (`create.rs`'s `bound_files`).
pub(super) fn write_etc_files(
    dir: &Path,
    hostname: &str,
    dns: Option<&DnsConfig>,
) -> Result<(), ContainerError> {
    let hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
    );
    let resolv = match dns.filter(|d| !d.is_empty()) {
        Some(dns) => dns.to_resolv_conf(),
        None => host_resolv_conf(),
    };
    for (name, content) in [
        ("hosts", hosts),
        ("hostname", format!("{hostname}\n")),
        ("resolv.conf", resolv),
    ] {
        let p = dir.join(name);
        fs::write(&p, content).map_err(io_err("write", &p))?;
    }
    Ok(())
}

/// The host's `/etc/resolv.conf` without loopback nameservers.
fn host_resolv_conf() -> String {
    fs::read_to_string("/etc/resolv.conf")
        .map(|s| {
            s.lines()
                .filter(|l| !l.contains("127.0.0."))
                .collect::<Vec<_>>()
                .join("\n")
                + "\n"
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_config_renders_in_containerds_order() {
        let dns = DnsConfig {
            servers: vec!["10.96.0.10".into(), "10.96.0.11".into()],
            searches: vec!["default.svc.cluster.local".into(), "cluster.local".into()],
            options: vec!["ndots:5".into(), "edns0".into()],
        };
        assert_eq!(
            dns.to_resolv_conf(),
            "search default.svc.cluster.local cluster.local\n\
             nameserver 10.96.0.10\nnameserver 10.96.0.11\noptions ndots:5 edns0\n"
        );
        let only_server = DnsConfig {
            servers: vec!["1.2.3.4".into()],
            ..Default::default()
        };
        assert_eq!(only_server.to_resolv_conf(), "nameserver 1.2.3.4\n");
    }

    #[test]
    fn etc_files_take_the_given_resolver_else_the_hosts() {
        let dir = std::env::temp_dir().join(format!("minik8s-etc-{}", crate::random_hex(6)));
        fs::create_dir_all(&dir).unwrap();
        let dns = DnsConfig {
            servers: vec!["10.96.0.10".into()],
            ..Default::default()
        };
        write_etc_files(&dir, "web", Some(&dns)).unwrap();
        let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap();
        assert_eq!(read("resolv.conf"), "nameserver 10.96.0.10\n");
        assert_eq!(read("hostname"), "web\n");
        write_etc_files(&dir, "web", Some(&DnsConfig::default())).unwrap();
        assert_eq!(read("resolv.conf"), host_resolv_conf());
        assert!(!read("resolv.conf").contains("127.0.0."));
        fs::remove_dir_all(&dir).unwrap();
    }
}
