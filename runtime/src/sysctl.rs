//! Kernel parameters a container may set for itself (`linux.sysctl`): only those that belong
//! to one of its own namespaces, so that writing them changes nothing outside the container:
//! the IPC namespace's `kernel.msg*`, `kernel.sem`, `kernel.shm*` and `fs.mqueue.*`, the
//! network namespace's `net.*`, the UTS namespace's `kernel.hostname` and `kernel.domainname`
//! (runc's list). Anything else is refused at create. The init writes them through `/proc/sys`
//! right after entering its namespaces (which the writes then apply to), before its rootfs
//! makes `/proc/sys` read-only.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::namespaces::Kind;

/// One parameter and its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sysctl {
    /// Dotted name (`net.ipv4.ip_forward`).
    pub name: String,
    pub value: String,
}

/// Why a parameter is refused or could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    /// Not in any namespace the container has of its own: it would change the host.
    #[error("sysctl {name:?} is not allowed: not in a namespace of the container's own")]
    NotNamespaced { name: String },
    /// Writing /proc/sys failed.
    #[error("write sysctl {name:?} = {value:?} ({path:?}): {source}")]
    Write {
        name: String,
        value: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The namespace `name` belongs to, if any.
fn namespace_of(name: &str) -> Option<Kind> {
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
    ];
    let ipc_prefixes = ["kernel.shm", "fs.mqueue."];
    if ipc.contains(&name) || ipc_prefixes.iter().any(|p| name.starts_with(p)) {
        return Some(Kind::Ipc);
    }
    if name.starts_with("net.") {
        return Some(Kind::Net);
    }
    if name == "kernel.hostname" || name == "kernel.domainname" {
        return Some(Kind::Uts);
    }
    None
}

/// Check `name`: allowed when it belongs to a namespace `own` says the container has.
pub fn check(name: &str, own: impl Fn(Kind) -> bool) -> Result<(), SysctlError> {
    match namespace_of(name) {
        Some(kind) if own(kind) => Ok(()),
        _ => Err(SysctlError::NotNamespaced {
            name: name.to_string(),
        }),
    }
}

/// Write every parameter (the caller is in the container's namespaces).
pub fn apply(sysctls: &[Sysctl]) -> Result<(), SysctlError> {
    for s in sysctls {
        let path = PathBuf::from("/proc/sys").join(s.name.replace('.', "/"));
        std::fs::write(&path, &s.value).map_err(|source| SysctlError::Write {
            name: s.name.clone(),
            value: s.value.clone(),
            path: path.clone(),
            source,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_namespaced_parameters_pass() {
        let all = |_| true;
        assert!(check("net.ipv4.ip_forward", all).is_ok());
        assert!(check("kernel.shmmax", all).is_ok());
        assert!(check("fs.mqueue.msg_max", all).is_ok());
        assert!(check("vm.swappiness", all).is_err());
        assert!(check("kernel.panic", all).is_err());
        assert!(check("net.ipv4.ip_forward", |k| k != Kind::Net).is_err());
    }
}
