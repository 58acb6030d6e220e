//! An OCI bundle's `mounts` (runtime-spec `config.md`, "Mounts"), made ready for mount(2):
//! each option is a mount flag (`ro`, `nosuid`, `strictatime`...), a propagation change
//! (`rprivate`, `shared`...), `bind`/`rbind`, or filesystem data handed to the kernel as is
//! (`mode=755`, `size=65536k`), split the way runc splits them. An option the kernel does not
//! know fails the mount: nothing is dropped. `rootfs.rs` mounts the result in order, in place
//! of the runtime's own `/proc`, `/dev` and `/sys`.

use std::path::PathBuf;

use nix::mount::MsFlags;
use serde::{Deserialize, Serialize};

/// One mount of the bundle, resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mount {
    /// Where, inside the container.
    pub destination: PathBuf,
    /// The filesystem type (`tmpfs`, `proc`...); empty for a bind mount.
    pub fstype: String,
    /// What: a device, a pseudo filesystem's name, or for a bind mount a host path.
    pub source: String,
    /// mount(2) flags (`MsFlags` bits), without bind and propagation.
    pub flags: u64,
    /// Filesystem-specific data, comma-separated.
    pub data: String,
    /// `bind` (false) or `rbind` (true); none: a filesystem mount.
    pub bind: Option<bool>,
    /// Propagation changes applied after the mount, in order (`MsFlags` bits).
    pub propagation: Vec<u64>,
}

/// Why a bundle mount cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum MountOptsError {
    /// A mount without a destination.
    #[error("mount of {mount_source:?}: no destination")]
    NoDestination { mount_source: String },
    /// A mount destination that is not absolute.
    #[error("mount destination {destination:?} is not an absolute path")]
    Relative { destination: PathBuf },
}

/// A flag option: the bits it sets (`true`) or clears (`false`).
fn flag(option: &str) -> Option<(bool, MsFlags)> {
    Some(match option {
        "ro" => (true, MsFlags::MS_RDONLY),
        "rw" => (false, MsFlags::MS_RDONLY),
        "nosuid" => (true, MsFlags::MS_NOSUID),
        "suid" => (false, MsFlags::MS_NOSUID),
        "nodev" => (true, MsFlags::MS_NODEV),
        "dev" => (false, MsFlags::MS_NODEV),
        "noexec" => (true, MsFlags::MS_NOEXEC),
        "exec" => (false, MsFlags::MS_NOEXEC),
        "sync" => (true, MsFlags::MS_SYNCHRONOUS),
        "async" => (false, MsFlags::MS_SYNCHRONOUS),
        "dirsync" => (true, MsFlags::MS_DIRSYNC),
        "remount" => (true, MsFlags::MS_REMOUNT),
        "mand" => (true, MsFlags::MS_MANDLOCK),
        "nomand" => (false, MsFlags::MS_MANDLOCK),
        "atime" => (false, MsFlags::MS_NOATIME),
        "noatime" => (true, MsFlags::MS_NOATIME),
        "diratime" => (false, MsFlags::MS_NODIRATIME),
        "nodiratime" => (true, MsFlags::MS_NODIRATIME),
        "relatime" => (true, MsFlags::MS_RELATIME),
        "norelatime" => (false, MsFlags::MS_RELATIME),
        "strictatime" => (true, MsFlags::MS_STRICTATIME),
        "nostrictatime" => (false, MsFlags::MS_STRICTATIME),
        _ => return None,
    })
}

/// A propagation option's flags.
pub fn propagation(option: &str) -> Option<MsFlags> {
    Some(match option {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// Resolve one mount of the bundle: `type: bind` or a `bind`/`rbind` option make a bind mount.
pub fn parse(
    destination: Option<PathBuf>,
    fstype: Option<&str>,
    source: Option<&str>,
    options: &[String],
) -> Result<Mount, MountOptsError> {
    let source = source.unwrap_or_default().to_string();
    let destination = destination.ok_or_else(|| MountOptsError::NoDestination {
        mount_source: source.clone(),
    })?;
    if !destination.is_absolute() {
        return Err(MountOptsError::Relative { destination });
    }
    let fstype = fstype.unwrap_or_default();
    let mut m = Mount {
        destination,
        fstype: String::new(),
        source,
        flags: 0,
        data: String::new(),
        bind: (fstype == "bind" || fstype == "rbind").then_some(fstype == "rbind"),
        propagation: Vec::new(),
    };
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in options {
        match o.as_str() {
            "bind" => m.bind = Some(m.bind.unwrap_or(false)),
            "rbind" => m.bind = Some(true),
            o => match (flag(o), propagation(o)) {
                (Some((true, f)), _) => flags |= f,
                (Some((false, f)), _) => flags &= !f,
                (None, Some(p)) => m.propagation.push(p.bits()),
                (None, None) => data.push(o.to_string()),
            },
        }
    }
    if m.bind.is_none() {
        m.fstype = fstype.to_string();
    }
    m.flags = flags.bits();
    m.data = data.join(",");
    Ok(m)
}

impl Mount {
    /// The mount(2) flags.
    pub fn ms_flags(&self) -> MsFlags {
        MsFlags::from_bits_truncate(self.flags as libc::c_ulong)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(o: &[&str]) -> Vec<String> {
        o.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_split_into_flags_propagation_and_data() {
        let m = parse(
            Some("/dev/shm".into()),
            Some("tmpfs"),
            Some("shm"),
            &opts(&[
                "nosuid",
                "noexec",
                "nodev",
                "mode=1777",
                "size=65536k",
                "rslave",
            ]),
        )
        .unwrap();
        assert_eq!(
            m.ms_flags(),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV
        );
        assert_eq!(m.data, "mode=1777,size=65536k");
        assert_eq!(
            m.propagation,
            vec![(MsFlags::MS_SLAVE | MsFlags::MS_REC).bits()]
        );
        assert_eq!((m.fstype.as_str(), m.bind), ("tmpfs", None));
    }

    #[test]
    fn bind_comes_from_the_type_or_an_option() {
        let m = parse(Some("/a".into()), None, Some("/b"), &opts(&["rbind", "ro"])).unwrap();
        assert_eq!((m.bind, m.ms_flags()), (Some(true), MsFlags::MS_RDONLY));
        let m = parse(Some("/a".into()), Some("bind"), Some("/b"), &[]).unwrap();
        assert_eq!((m.bind, m.fstype.as_str()), (Some(false), ""));
        assert!(parse(Some("a".into()), Some("tmpfs"), None, &[]).is_err());
        assert!(parse(None, Some("tmpfs"), None, &[]).is_err());
    }
}
