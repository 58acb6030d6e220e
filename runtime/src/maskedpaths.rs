//! Masked and read-only paths: the part of `/proc` and `/sys` a container must not read or
//! write although it mounts them. `/proc/kcore` is the host's memory, `/proc/keys` the host's
//! keyrings, `/proc/timer_list` and `/proc/sched_debug` other tenants' activity, and
//! `/proc/sys`, `/proc/sysrq-trigger` reconfigure (or reboot) the whole node: one kernel serves
//! every container, and procfs/sysfs show it unfiltered.
//!
//! A *masked* path is hidden: a file gets `/dev/null` bound over it (reads return nothing), a
//! directory an empty read-only tmpfs. A *read-only* path is bound onto itself and the bind made
//! read-only, recursively (`mount_setattr(2)` with `AT_RECURSIVE`; a plain `MS_REMOUNT|MS_BIND`
//! changes only the top mount, so a mount below the path would stay writable). Without
//! `CAP_SYS_ADMIN` the container cannot unmount either. The lists are Docker's defaults
//! ([`MASKED_PATHS`], [`READONLY_PATHS`]) for `run` and pods, the bundle's own
//! (`linux.maskedPaths`, `linux.readonlyPaths`) for an OCI `create`; `--privileged` clears them.
//!
//! Each path is resolved inside the container's root, as the container would see it, never
//! through the host's: `mount(2)` follows an absolute symlink from the host's root while we
//! prepare the rootfs, so an image whose `/proc` or `/sys/firmware` is a symlink would
//! otherwise have the mask land on a host path and the container's own file stay readable.
//! Read next: `rootfs.rs`, whose step 7 calls [`apply`].

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};

use super::layer::{self, LayerError};

/// Paths hidden from containers (Docker's defaults).
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/interrupts",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths made read-only in containers (Docker's defaults).
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The paths to mask and to make read-only, as absolute paths inside the container.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PathRules {
    pub masked: Vec<PathBuf>,
    pub readonly: Vec<PathBuf>,
}

impl PathRules {
    /// Docker's defaults, or nothing for a privileged container.
    pub fn docker_default(privileged: bool) -> Self {
        if privileged {
            return Self::default();
        }
        let paths = |l: &[&str]| l.iter().map(PathBuf::from).collect();
        Self {
            masked: paths(&MASKED_PATHS),
            readonly: paths(&READONLY_PATHS),
        }
    }
}

/// Why a path could not be masked or made read-only. Every failure is fatal to the start: a
/// container must not run with a mask missing.
#[derive(Debug, thiserror::Error)]
pub enum MaskedPathsError {
    /// The path resolves outside the root, or through a symlink loop.
    #[error("resolve {path:?} in the container's root: {source}")]
    Resolve {
        path: PathBuf,
        #[source]
        source: LayerError,
    },
    /// Mounting the empty tmpfs or binding `/dev/null` over a masked path failed.
    #[error("mask {path:?}: {errno}")]
    Mask { path: PathBuf, errno: nix::Error },
    /// Binding a read-only path onto itself, or making the bind read-only, failed.
    #[error("make {path:?} read-only: {errno}")]
    Readonly { path: PathBuf, errno: nix::Error },
}

/// Apply `rules` to the root filesystem being prepared at `root` (before `pivot_root`), with
/// `null` the container's own `/dev/null`. Read-only paths first, then masks (runc's order), so
/// a masked path below a read-only one is masked whatever its mount. Paths that do not exist
/// (`/proc/kcore` without `CONFIG_PROC_KCORE`) are skipped.
pub fn apply(root: &Path, null: &Path, rules: &PathRules) -> Result<(), MaskedPathsError> {
    for p in &rules.readonly {
        if let Some(target) = resolve(root, p)? {
            make_readonly(&target).map_err(|errno| {
                tracing::debug!(path = ?p, ?errno, "read-only path failed");
                MaskedPathsError::Readonly {
                    path: p.clone(),
                    errno,
                }
            })?;
        }
    }
    for p in &rules.masked {
        if let Some(target) = resolve(root, p)? {
            mask(&target, null).map_err(|errno| {
                tracing::debug!(path = ?p, ?errno, "masked path failed");
                MaskedPathsError::Mask {
                    path: p.clone(),
                    errno,
                }
            })?;
        }
    }
    Ok(())
}

/// `path` resolved inside `root` as the container will see it (symlinks, the last one included,
/// stay in the root), or `None` if nothing is there.
fn resolve(root: &Path, path: &Path) -> Result<Option<PathBuf>, MaskedPathsError> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let resolved = layer::resolve_in_root(root, rel, path, true).map_err(|source| {
        MaskedPathsError::Resolve {
            path: path.to_owned(),
            source,
        }
    })?;
    Ok(fs::symlink_metadata(&resolved).is_ok().then_some(resolved))
}

/// Hide `target`: an empty read-only tmpfs over a directory, `null` over anything else.
fn mask(target: &Path, null: &Path) -> Result<(), nix::Error> {
    if fs::symlink_metadata(target).is_ok_and(|m| m.is_dir()) {
        let flags =
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(Some("tmpfs"), target, Some("tmpfs"), flags, None::<&str>)
    } else {
        mount(
            Some(null),
            target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    }
}

/// Bind `target` onto itself with every mount below it, then make that whole subtree read-only.
fn make_readonly(target: &Path) -> Result<(), nix::Error> {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
    mount(Some(target), target, None::<&str>, flags, None::<&str>)?;
    match set_readonly_recursive(target) {
        Err(nix::Error::ENOSYS) => remount_readonly_each(target),
        other => other,
    }
}

/// `struct mount_attr` of `linux/mount.h`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `MOUNT_ATTR_RDONLY` of `linux/mount.h`.
const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// mount_setattr(2) (Linux 5.12): read-only on `target` and every mount below it, in one call
/// that keeps each mount's other flags (nosuid, nodev, noexec).
fn set_readonly_recursive(target: &Path) -> Result<(), nix::Error> {
    let path = std::ffi::CString::new(target.as_os_str().as_encoded_bytes())
        .map_err(|_| nix::Error::EINVAL)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr reads a NUL-terminated path and `size_of::<MountAttr>()` bytes from
    // valid pointers that outlive the call; it writes nothing to our memory.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r != 0 {
        return Err(nix::Error::last());
    }
    Ok(())
}

/// Before Linux 5.12: remount `target` and each mount below it (`/proc/self/mountinfo`) one by
/// one, keeping the flags each had.
fn remount_readonly_each(target: &Path) -> Result<(), nix::Error> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").map_err(|_| nix::Error::EIO)?;
    let mut points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(target))
        .collect();
    points.dedup();
    for p in points {
        let kept = nix::sys::statvfs::statvfs(&p).map(|s| s.flags())?;
        let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        for (vfs, ms) in [
            (nix::sys::statvfs::FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
            (nix::sys::statvfs::FsFlags::ST_NODEV, MsFlags::MS_NODEV),
            (nix::sys::statvfs::FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        ] {
            if kept.contains(vfs) {
                flags |= ms;
            }
        }
        mount(None::<&str>, &p, None::<&str>, flags, None::<&str>)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn privileged_containers_have_no_rules() {
        assert_eq!(PathRules::docker_default(true), PathRules::default());
        let d = PathRules::docker_default(false);
        assert!(d.masked.contains(&PathBuf::from("/proc/kcore")));
        assert!(d.readonly.contains(&PathBuf::from("/proc/sys")));
    }

    #[test]
    fn paths_resolve_inside_the_root_through_absolute_symlinks() {
        let root = std::env::temp_dir().join(format!("minik8s-mask-{}", crate::random_hex(6)));
        fs::create_dir_all(root.join("realproc")).unwrap();
        fs::write(root.join("realproc/kcore"), "secret").unwrap();
        std::os::unix::fs::symlink("/realproc", root.join("proc")).unwrap();
        let kcore = resolve(&root, Path::new("/proc/kcore")).unwrap();
        let missing = resolve(&root, Path::new("/proc/keys")).unwrap();
        fs::remove_dir_all(&root).unwrap();
        assert_eq!(kcore, Some(root.join("realproc/kcore")));
        assert_eq!(missing, None);
    }
}
