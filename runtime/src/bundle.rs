//! An OCI bundle's `config.json` beyond its namespaces and cgroups (those are `oci.rs`'s):
//! checked (`ociVersion`, settings this runtime cannot honour are refused with a one-line
//! error, never dropped) and translated into the container path's own types: the process's
//! capability sets, rlimits, OOM score, sysctls, groups and hooks (`ociprocess.rs`), and the
//! filesystem's mounts, devices and root propagation (`rootfs.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use oci_spec::runtime::{
    Capabilities, Hook as OciHook, Linux, LinuxDeviceType, LinuxNamespaceType, Process, Spec,
};

use super::capabilities::{self, Sets};
use super::container::ContainerError;
use super::hooks::{Hook, Hooks};
use super::mountopts::{self, Mount};
use super::namespaces::Kind;
use super::ociprocess::BundleProcess;
use super::rlimits::{Resource, Rlimit};
use super::rootfs::{BundleFilesystems, DeviceNode, NodeKind};
use super::sysctl::{self, Sysctl};

fn invalid(reason: &'static str, value: impl Into<String>) -> ContainerError {
    ContainerError::InvalidOption {
        flag: "config.json",
        value: value.into(),
        reason,
    }
}

/// Refuse what we cannot run: another major `ociVersion`, a terminal without a console socket,
/// an AppArmor profile (this runtime has no AppArmor support; runc fails too on a host without
/// AppArmor), an SELinux label on a host with SELinux (without it runc ignores labels, as we
/// do), and the Linux settings we do not implement.
pub fn check(spec: &Spec) -> Result<(), ContainerError> {
    let version = spec.version();
    let major = version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok());
    if major != Some(1) || semver_parts(version).is_none() {
        return Err(invalid(
            "unsupported ociVersion (this runtime implements 1.x)",
            version.clone(),
        ));
    }
    if let Some(p) = spec.process() {
        if p.terminal() == Some(true) {
            return Err(invalid("process.terminal needs --console-socket", "true"));
        }
        if let Some(profile) = p.apparmor_profile().as_ref().filter(|s| !s.is_empty()) {
            return Err(invalid("AppArmor is not supported", profile.clone()));
        }
        let selinux = std::path::Path::new("/sys/fs/selinux/enforce").exists();
        if let Some(label) = p.selinux_label().as_ref().filter(|_| selinux) {
            return Err(invalid("SELinux labels are not supported", label.clone()));
        }
        if p.io_priority().is_some() || p.scheduler().is_some() {
            return Err(invalid("not supported", "process.ioPriority/scheduler"));
        }
    }
    if let Some(l) = spec.linux() {
        let selinux = std::path::Path::new("/sys/fs/selinux/enforce").exists();
        if let Some(label) = l.mount_label().as_ref().filter(|_| selinux) {
            return Err(invalid("SELinux labels are not supported", label.clone()));
        }
        let unsupported = [
            (l.intel_rdt().is_some(), "linux.intelRdt"),
            (l.personality().is_some(), "linux.personality"),
            (l.time_offsets().is_some(), "linux.timeOffsets"),
            (l.memory_policy().is_some(), "linux.memoryPolicy"),
            (l.net_devices().is_some(), "linux.netDevices"),
        ];
        if let Some((_, what)) = unsupported.iter().find(|(set, _)| *set) {
            return Err(invalid("not supported", *what));
        }
    }
    Ok(())
}

/// `MAJOR.MINOR.PATCH` with an optional `-suffix`, as semver.
fn semver_parts(v: &str) -> Option<(u32, u32, u32)> {
    let core = v.split(['-', '+']).next()?;
    let mut it = core.split('.').map(|n| n.parse::<u32>().ok());
    let parts = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(parts)
}

/// The process's additions: capability sets, rlimits, OOM score, sysctls, groups, hooks.
pub fn process(
    spec: &Spec,
    process: &Process,
    linux: &Linux,
) -> Result<BundleProcess, ContainerError> {
    // none listed: none at all (oci-spec's own default would be a few)
    let capabilities = match process.capabilities() {
        None => Sets::default(),
        Some(caps) => {
            let set = |s: &Option<Capabilities>| mask(s.as_ref());
            Sets {
                bounding: set(caps.bounding())?,
                effective: set(caps.effective())?,
                permitted: set(caps.permitted())?,
                inheritable: set(caps.inheritable())?,
                ambient: set(caps.ambient())?,
            }
        }
    };
    let mut rlimits = Vec::new();
    for r in process.rlimits().iter().flatten() {
        let name = serde_json::to_value(r.typ())
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let resource =
            Resource::from_name(&name).ok_or_else(|| invalid("unknown rlimit", name.clone()))?;
        rlimits.push(Rlimit {
            resource,
            soft: r.soft(),
            hard: r.hard(),
        });
    }
    Ok(BundleProcess {
        capabilities,
        rlimits,
        oom_score_adj: process.oom_score_adj(),
        sysctl: sysctls(spec, linux)?,
        umask: process.user().umask(),
        additional_gids: process.user().additional_gids().clone().unwrap_or_default(),
        hooks: hooks(spec)?,
        annotations: spec
            .annotations()
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
    })
}

/// The bit mask of a capability set; an unknown name is an error.
fn mask(set: Option<&Capabilities>) -> Result<u64, ContainerError> {
    let mut m = 0u64;
    for c in set.into_iter().flatten() {
        let name = serde_json::to_value(c)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let n = capabilities::number(&name).ok_or_else(|| invalid("unknown capability", name))?;
        m |= 1 << n;
    }
    Ok(m)
}

/// `linux.sysctl`, only parameters of a namespace the container has of its own (`sysctl.rs`),
/// and `domainname` as `kernel.domainname` (which needs a UTS namespace of its own too).
fn sysctls(spec: &Spec, linux: &Linux) -> Result<Vec<Sysctl>, ContainerError> {
    let listed: Vec<Kind> = linux
        .namespaces()
        .iter()
        .flatten()
        .filter_map(|ns| match ns.typ() {
            LinuxNamespaceType::Network => Some(Kind::Net),
            LinuxNamespaceType::Ipc => Some(Kind::Ipc),
            LinuxNamespaceType::Uts => Some(Kind::Uts),
            _ => None,
        })
        .collect();
    let mut out: Vec<Sysctl> = linux
        .sysctl()
        .iter()
        .flatten()
        .map(|(name, value)| Sysctl {
            name: name.clone(),
            value: value.clone(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(domain) = spec.domainname() {
        out.push(Sysctl {
            name: "kernel.domainname".into(),
            value: domain.clone(),
        });
    }
    for s in &out {
        sysctl::check(&s.name, |k| listed.contains(&k))
            .map_err(|e| invalid("refused", e.to_string()))?;
    }
    Ok(out)
}

/// The hooks of every phase; a non-positive timeout is an error (runtime-spec).
fn hooks(spec: &Spec) -> Result<Hooks, ContainerError> {
    let Some(h) = spec.hooks() else {
        return Ok(Hooks::default());
    };
    let list = |l: &Option<Vec<OciHook>>| -> Result<Vec<Hook>, ContainerError> {
        l.iter().flatten().map(hook).collect()
    };
    #[allow(deprecated)]
    let prestart = list(h.prestart())?;
    Ok(Hooks {
        prestart,
        create_runtime: list(h.create_runtime())?,
        create_container: list(h.create_container())?,
        start_container: list(h.start_container())?,
        poststart: list(h.poststart())?,
        poststop: list(h.poststop())?,
    })
}

fn hook(h: &OciHook) -> Result<Hook, ContainerError> {
    let timeout = match h.timeout() {
        Some(t) if t <= 0 => return Err(invalid("hook timeout must be > 0", t.to_string())),
        t => t.map(|t| t as u64),
    };
    if !h.path().is_absolute() {
        return Err(invalid(
            "hook path must be absolute",
            h.path().display().to_string(),
        ));
    }
    Ok(Hook {
        path: h.path().clone(),
        args: h.args().clone().unwrap_or_default(),
        env: h.env().clone().unwrap_or_default(),
        timeout,
    })
}

/// The filesystem's additions: `mounts` in order, `linux.devices`, `linux.rootfsPropagation`.
pub fn filesystems(spec: &Spec, linux: &Linux) -> Result<BundleFilesystems, ContainerError> {
    let mut mounts: Vec<Mount> = Vec::new();
    for m in spec.mounts().iter().flatten() {
        let parsed = mountopts::parse(
            Some(m.destination().clone()),
            m.typ().as_deref(),
            m.source().as_ref().and_then(|s| s.to_str()),
            m.options().as_deref().unwrap_or_default(),
        )
        .map_err(|e| invalid("bad mount", e.to_string()))?;
        mounts.push(parsed);
    }
    let mut devices = Vec::new();
    for d in linux.devices().iter().flatten() {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => NodeKind::Char,
            LinuxDeviceType::B => NodeKind::Block,
            LinuxDeviceType::P => NodeKind::Fifo,
            LinuxDeviceType::A => {
                return Err(invalid(
                    "device type a is for cgroup rules only",
                    d.path().display().to_string(),
                ))
            }
        };
        let number =
            |n: i64| u64::try_from(n).map_err(|_| invalid("bad device number", n.to_string()));
        devices.push(DeviceNode {
            path: PathBuf::from(d.path()),
            kind,
            major: number(d.major())?,
            minor: number(d.minor())?,
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        });
    }
    let root_propagation = match linux.rootfs_propagation().as_deref() {
        None | Some("") => None,
        Some(p) => Some(
            mountopts::propagation(p)
                .ok_or_else(|| invalid("unknown rootfsPropagation", p))?
                .bits(),
        ),
    };
    Ok(BundleFilesystems {
        mounts,
        devices,
        root_propagation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_versions_are_semver_with_major_one() {
        assert_eq!(semver_parts("1.0.2-dev"), Some((1, 0, 2)));
        assert_eq!(semver_parts("1.2.0"), Some((1, 2, 0)));
        assert_eq!(semver_parts("invalid"), None);
        assert_eq!(semver_parts("1.0"), None);
    }
}
