//! Capabilities split root's power into ~40 privileges (capabilities(7)). A container's root
//! keeps only Docker's default 14, so it can chown files or bind port 80 but not load kernel
//! modules or remount filesystems. The *bounding* set caps what any later exec can regain; the
//! effective/permitted/inheritable sets are what the process holds now. `privileged` keeps all.

/// Capability names, indexed by number (linux/capability.h).
pub const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Docker's (and containerd's) default set.
pub const DEFAULT: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Why a capability operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CapabilitiesError {
    /// An add/drop name is not a capability.
    #[error("unknown capability {name:?}")]
    Unknown { name: String },
    /// prctl(PR_CAPBSET_DROP) failed.
    #[error("drop CAP_{name} from the bounding set: {errno}")]
    DropBounding {
        name: &'static str,
        errno: nix::Error,
    },
    /// capset(2) failed.
    #[error("capset: {errno}")]
    Capset { errno: nix::Error },
    /// Raising an ambient capability failed (it must be permitted and inheritable).
    #[error("raise ambient capability CAP_{name}: {errno}")]
    Ambient {
        name: &'static str,
        errno: nix::Error,
    },
}

/// Number of a capability name (with or without `CAP_`, any case).
pub fn number(name: &str) -> Option<u32> {
    let n = name.trim().to_ascii_uppercase();
    let n = n.strip_prefix("CAP_").unwrap_or(&n);
    NAMES.iter().position(|c| *c == n).map(|i| i as u32)
}

/// The bit mask for Docker's defaults adjusted by `add` and `drop` (`ALL` allowed in both).
pub fn mask(privileged: bool, add: &[String], drop: &[String]) -> Result<u64, CapabilitiesError> {
    let all = (1u64 << NAMES.len()) - 1;
    if privileged {
        return Ok(all);
    }
    let mut m = 0u64;
    for c in DEFAULT {
        m |= 1 << number(c).expect("default names are valid");
    }
    let bits = |list: &[String]| -> Result<u64, CapabilitiesError> {
        let mut b = 0;
        for n in list {
            if n.eq_ignore_ascii_case("ALL") {
                b |= all;
            } else {
                b |=
                    1 << number(n).ok_or_else(|| CapabilitiesError::Unknown { name: n.clone() })?;
            }
        }
        Ok(b)
    };
    m |= bits(add)?;
    m &= !bits(drop)?;
    Ok(m)
}

/// Restrict the calling process to `mask`: bounding set first, then capset(2).
pub fn apply(mask: u64) -> Result<(), CapabilitiesError> {
    drop_bounding(mask)?;
    set(mask)
}

/// Drop everything outside `mask` from the bounding set (needs CAP_SETPCAP, so do it as root).
pub fn drop_bounding(mask: u64) -> Result<(), CapabilitiesError> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(40);
    for cap in 0..=last.min(NAMES.len() as u32 - 1) {
        if mask & (1 << cap) == 0 {
            // SAFETY: prctl with integer arguments only.
            let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            if rc != 0 {
                return Err(CapabilitiesError::DropBounding {
                    name: NAMES[cap as usize],
                    errno: nix::Error::last(),
                });
            }
        }
    }
    Ok(())
}

/// The five sets an OCI bundle gives (`process.capabilities`), as masks: the bounding set
/// (applied by [`drop_bounding`] like everyone's), what the process holds (effective,
/// permitted), what an exec may pass on (inheritable), and the ambient set, which an exec
/// keeps even for a non-root user and a program without file capabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

/// Keep the permitted set across the switch to a non-root user (PR_SET_KEEPCAPS), so that
/// [`set_all`] can then give it exactly the bundle's sets.
pub fn keep_across_setuid() -> Result<(), CapabilitiesError> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
        return Err(CapabilitiesError::Capset {
            errno: nix::Error::last(),
        });
    }
    Ok(())
}

/// Set effective, permitted and inheritable exactly as `sets` says, then raise each ambient
/// capability (which must be permitted and inheritable, or the kernel refuses: an error).
pub fn set_all(sets: &Sets) -> Result<(), CapabilitiesError> {
    capset(sets.effective, sets.permitted, sets.inheritable)?;
    for cap in (0..NAMES.len()).filter(|c| sets.ambient & (1 << c) != 0) {
        // SAFETY: prctl with integer arguments only.
        let rc = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap as libc::c_ulong,
                0,
                0,
            )
        };
        if rc != 0 {
            return Err(CapabilitiesError::Ambient {
                name: NAMES[cap],
                errno: nix::Error::last(),
            });
        }
    }
    Ok(())
}

/// Set the effective, permitted and inheritable sets to `mask` and clear the ambient set.
pub fn set(mask: u64) -> Result<(), CapabilitiesError> {
    // SAFETY: prctl with integer arguments only; clearing the ambient set cannot fail harmfully.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    // we can only keep what we hold (a privileged container inherits our own limits)
    let held = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("CapPrm:")
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            })
        });
    let mask = held.map_or(mask, |h| mask & h);
    capset(mask, mask, mask)
}

/// capset(2) of the calling thread's three sets.
fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<(), CapabilitiesError> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let header = Header {
        version: 0x2008_0522,
        pid: 0,
    }; // _LINUX_CAPABILITY_VERSION_3
    let half = |m: u64, hi: bool| if hi { (m >> 32) as u32 } else { m as u32 };
    let data = [false, true].map(|hi| Data {
        effective: half(effective, hi),
        permitted: half(permitted, hi),
        inheritable: half(inheritable, hi),
    });
    // SAFETY: capset(2) reads a v3 header and two data structs, both live for the call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header as *const Header, data.as_ptr()) };
    if rc != 0 {
        return Err(CapabilitiesError::Capset {
            errno: nix::Error::last(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_mask_add_and_drop() {
        let m = mask(false, &[], &[]).unwrap();
        assert_eq!(m.count_ones(), 14);
        assert!(m & (1 << number("SYS_ADMIN").unwrap()) == 0);
        let m = mask(false, &["cap_sys_admin".into()], &["NET_RAW".into()]).unwrap();
        assert!(m & (1 << 21) != 0 && m & (1 << 13) == 0);
        assert_eq!(mask(false, &[], &["ALL".into()]).unwrap(), 0);
        assert_eq!(mask(true, &[], &[]).unwrap().count_ones(), 41);
        assert!(mask(false, &["NOPE".into()], &[]).is_err());
    }
}
