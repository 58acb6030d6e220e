//! Removing a container's records: its cgroups, its directories on tmpfs and on disk, its
//! name; after a failed start; and the writable layers left on disk by containers whose state
//! is gone (a reboot empties tmpfs). The shim calls `cleanup` itself for an auto-removed
//! container, so this sits below it. Read next: `tty.rs`.

use std::fs;
use std::io;
use std::time::Duration;

use crate::error::{io_err, ContainerError};
use crate::rootfs::RootSwitch;
use crate::spec::ContainerSpec;
use crate::Runtime;

/// Detach the mounts a container without a mount namespace of its own made in ours, all of
/// them below its rootfs (`umount2(MNT_DETACH)` takes the tree). The bind-mounted rootfs must be
/// gone before its mount point's directory is removed: removing through it would delete the
/// bundle's files.
fn detach_host_mounts(rootfs: &std::path::Path) -> Result<(), ContainerError> {
    use std::os::unix::fs::MetadataExt;
    let _ = nix::mount::umount2(rootfs, nix::mount::MntFlags::MNT_DETACH);
    let dev = |p: &std::path::Path| fs::metadata(p).map(|m| m.dev());
    match (dev(rootfs), rootfs.parent().map(dev)) {
        (Ok(own), Some(Ok(parent))) if own != parent => Err(ContainerError::Io {
            step: "unmount the rootfs of",
            path: rootfs.to_owned(),
            source: io::Error::other("still mounted"),
        }),
        _ => Ok(()),
    }
}

impl Runtime {
    /// Delete cgroups and files of a container that no longer runs.
    pub fn cleanup(&self, spec: &ContainerSpec) -> Result<(), ContainerError> {
        spec.remove_cgroups()?;
        // the overlay lives only in the container's mount namespace; nothing to unmount here,
        // but for a bundle's container without one of its own (`RootSwitch::HostChroot`)
        if spec.rootfs.switch == RootSwitch::HostChroot {
            detach_host_mounts(&spec.rootfs.merged)?;
        }
        // The disk part first: without its state a leftover is only an orphan to sweep
        for dir in [
            self.container_disk_dir(&spec.id),
            self.container_dir(&spec.id),
        ] {
            fs::remove_dir_all(&dir)
                .or_else(|e| {
                    if e.kind() == io::ErrorKind::NotFound {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(io_err("remove container dir", &dir))?;
        }
        self.release_name(&spec.name, &spec.id);
        Ok(())
    }

    /// Remove what a container left on disk when its state is gone (the node rebooted, or a
    /// crash came between the two removals of `cleanup`). Directories younger than a minute are
    /// spared: they may belong to a `create` in progress in another process.
    pub fn remove_orphans(&self) -> usize {
        let Ok(rd) = fs::read_dir(self.root.join("containers")) else {
            return 0;
        };
        // the shards' entries: `containers/<first two hex digits of the id>/<id>`
        let entries = rd.flatten().flat_map(|e| {
            let name = e.file_name();
            let shard =
                name.len() == 2 && name.as_encoded_bytes().iter().all(u8::is_ascii_hexdigit);
            let inner = shard.then(|| fs::read_dir(e.path()).ok()).flatten();
            inner.into_iter().flat_map(|rd| rd.flatten())
        });
        let mut n = 0;
        for e in entries {
            let id = e.file_name();
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(60));
            if old && !self.state.join("containers").join(&id).exists() {
                tracing::info!(id = %id.to_string_lossy(), "removing an orphaned writable layer");
                if fs::remove_dir_all(e.path()).is_ok() {
                    n += 1;
                }
            }
        }
        n
    }

    /// Remove whatever a failed `start` left (the shim already removed the cgroup).
    pub fn cleanup_failed(&self, id: &str) -> Result<(), ContainerError> {
        let spec = self.spec(id)?;
        self.cleanup(&spec)
    }
}
