//! The container's view of its cgroups. Programs size themselves from their cgroup's limits:
//! the JVM and .NET read `memory.max` / `memory.limit_in_bytes` for their heap, Go's
//! automaxprocs and many runtimes read `cpu.max` / `cpu.cfs_quota_us` for their thread count.
//! They look under `/sys/fs/cgroup`, as on any Linux host, so a container gets what runc and
//! Docker give it:
//! - a *cgroup namespace*, entered once the init is in its cgroup: that cgroup becomes the
//!   root of the container's view, `/proc/self/cgroup` shows `/` paths, and nothing of the
//!   node's tree above it is visible;
//! - the cgroup filesystem at `/sys/fs/cgroup`, mounted *after* entering the namespace, so
//!   that the kernel roots each mount at the namespace's root: the top directory is the
//!   container's own cgroup, and its limit files are the container's limits. On cgroup v2 that
//!   is one `cgroup2` mount (which must happen outside the host's namespace: a `cgroup2`
//!   mount in the initial namespace resets the hierarchy's options, `nsdelegate` among them).
//!   On v1 it is a tmpfs with one directory per hierarchy, named after its controllers
//!   (`cpu,cpuacct` when co-mounted, with symlinks `cpu` and `cpuacct` to it, as Docker
//!   makes them), each a cgroup mount of that hierarchy. Only the hierarchies the container
//!   has a cgroup of its own in are mounted (those of `cgroups::V1_CONTROLLERS`): in the others
//!   (`blkio`, `freezer`, `name=systemd`) it stays where its starter was, among the node's
//!   processes, which it has no business seeing.
//!
//! Everything is read-only unless the container is privileged: a container must not raise its
//! own limits. A read-only mount is a property of the mount, not of the cgroup filesystem,
//! which the node keeps writing. Read next: `process.rs`, whose stage 4 calls
//! [`CgroupView::enter`].

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};

use super::cgroups::{Hierarchy, Version};
use super::namespaces::{self, Kind, NamespacesError};

/// Where a container sees its cgroups.
pub const MOUNT_POINT: &str = "/sys/fs/cgroup";

/// Why the container's view of its cgroups could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CgroupnsError {
    /// Reading which v1 hierarchies the process is in (`/proc/self/cgroup`) failed.
    #[error("read {path:?}: {source}")]
    ReadOwn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// unshare(CLONE_NEWCGROUP) failed.
    #[error(transparent)]
    Namespace(#[from] NamespacesError),
    /// A mount(2) of the view failed.
    #[error("mount {fstype} ({options}) on {path:?}: {errno}")]
    Mount {
        fstype: &'static str,
        options: String,
        path: PathBuf,
        errno: nix::Error,
    },
    /// Creating a hierarchy's directory or symlink in the tmpfs failed.
    #[error("create {path:?}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Making the v1 tmpfs read-only once filled failed.
    #[error("remount {path:?} read-only: {errno}")]
    RemountReadonly { path: PathBuf, errno: nix::Error },
}

/// One v1 hierarchy as the container sees it: a directory of the tmpfs at [`MOUNT_POINT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Mount {
    /// The directory: the hierarchy's controllers as the kernel lists them (`cpu,cpuacct`),
    /// the name the node's own mount point has.
    pub dir: String,
    /// The mount(2) data selecting the hierarchy: the same list of controllers.
    pub options: String,
    /// Where the directory is named after several controllers: each one's own name, a symlink
    /// to it (`cpu -> cpu,cpuacct`).
    pub links: Vec<String>,
}

/// What is mounted at [`MOUNT_POINT`], by cgroup layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v2: the unified hierarchy, one `cgroup2` mount.
    Unified,
    /// cgroup v1: a tmpfs holding one cgroup mount per hierarchy.
    PerHierarchy(Vec<V1Mount>),
}

/// The container's view of its cgroups, planned before the init leaves the host's mount
/// tree and made by [`CgroupView::enter`] once it is in its cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupView {
    pub layout: Layout,
    /// Privileged containers may write their cgroups.
    pub writable: bool,
}

impl CgroupView {
    /// Plan the container's view of `hierarchy`, while the host's `/proc` is still ours. On
    /// v1 this reads which hierarchies hold which controllers from `/proc/self/cgroup` (a few
    /// hundred bytes).
    pub fn plan(hierarchy: &Hierarchy, writable: bool) -> Result<Self, CgroupnsError> {
        let layout = match hierarchy.version {
            Version::V2 => Layout::Unified,
            Version::V1 => {
                let path = Path::new("/proc/self/cgroup");
                let own = fs::read_to_string(path).map_err(|source| CgroupnsError::ReadOwn {
                    path: path.to_owned(),
                    source,
                })?;
                Layout::PerHierarchy(v1_mounts(&own, &hierarchy.v1_controllers()))
            }
        };
        Ok(Self { layout, writable })
    }

    /// Enter a new cgroup namespace rooted at the cgroup the caller is in (unless `new_namespace`
    /// is false: an OCI bundle that lists none keeps the runtime's, or joined one by path),
    /// then mount the view at [`MOUNT_POINT`] (of the caller's root: after pivot_root, the
    /// container's).
    pub fn enter(&self, new_namespace: bool) -> Result<(), CgroupnsError> {
        if new_namespace {
            namespaces::create(&[Kind::Cgroup])?;
        }
        let target = Path::new(MOUNT_POINT);
        match &self.layout {
            Layout::Unified => mount_cgroup(target, "cgroup2", None, self.writable),
            Layout::PerHierarchy(mounts) => mount_per_hierarchy(target, mounts, self.writable),
        }
    }
}

/// The v1 hierarchies to mount, from `/proc/self/cgroup` (`ID:CONTROLLERS:PATH` lines; v2's
/// is `0::PATH`, named hierarchies list `name=...`): those holding one of `joined`, the
/// controllers the container has a cgroup of its own in.
pub fn v1_mounts(proc_self_cgroup: &str, joined: &[&str]) -> Vec<V1Mount> {
    let mut out: Vec<V1Mount> = Vec::new();
    for line in proc_self_cgroup.lines() {
        let Some(controllers) = line.split(':').nth(1).filter(|c| !c.is_empty()) else {
            continue;
        };
        let names: Vec<&str> = controllers.split(',').collect();
        if !names.iter().any(|n| joined.contains(n)) || out.iter().any(|m| m.dir == controllers) {
            continue;
        }
        let links = if names.len() > 1 {
            names
                .iter()
                .filter(|n| !n.starts_with("name="))
                .map(|n| n.to_string())
                .collect()
        } else {
            Vec::new()
        };
        out.push(V1Mount {
            dir: controllers.to_string(),
            options: controllers.to_string(),
            links,
        });
    }
    out.sort_by(|a, b| a.dir.cmp(&b.dir));
    out
}

/// Flags of every mount of the view: nothing to execute, no devices, no set-uid.
fn flags(writable: bool) -> MsFlags {
    let base = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RELATIME;
    if writable {
        base
    } else {
        base | MsFlags::MS_RDONLY
    }
}

/// Mount the cgroup filesystem (`cgroup` with `options` selecting a v1 hierarchy, or
/// `cgroup2`) on `target`. The caller is in a non-initial cgroup namespace, so the kernel
/// roots the mount at the namespace's root and reuses the node's superblock as it is:
/// `MS_RDONLY` makes this mount read-only, not the filesystem.
fn mount_cgroup(
    target: &Path,
    fstype: &'static str,
    options: Option<&str>,
    writable: bool,
) -> Result<(), CgroupnsError> {
    mount(Some(fstype), target, Some(fstype), flags(writable), options).map_err(|errno| {
        tracing::debug!(path = ?target, fstype, ?options, ?errno, "cgroup mount failed");
        CgroupnsError::Mount {
            fstype,
            options: options.unwrap_or_default().to_string(),
            path: target.to_owned(),
            errno,
        }
    })
}

/// The v1 view: a tmpfs at `target` with one directory per hierarchy, a cgroup mount on each,
/// the co-mounted controllers' symlinks, then the tmpfs made read-only (unless writable).
fn mount_per_hierarchy(
    target: &Path,
    mounts: &[V1Mount],
    writable: bool,
) -> Result<(), CgroupnsError> {
    let tmpfs_flags = flags(true);
    mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        tmpfs_flags,
        Some("mode=755,size=64k"),
    )
    .map_err(|errno| CgroupnsError::Mount {
        fstype: "tmpfs",
        options: String::new(),
        path: target.to_owned(),
        errno,
    })?;
    let create = |path: PathBuf| move |source| CgroupnsError::Create { path, source };
    for m in mounts {
        let dir = target.join(&m.dir);
        fs::create_dir(&dir).map_err(create(dir.clone()))?;
        mount_cgroup(&dir, "cgroup", Some(&m.options), writable)?;
        for link in &m.links {
            let path = target.join(link);
            symlink(&m.dir, &path).map_err(create(path.clone()))?;
        }
    }
    if writable {
        return Ok(());
    }
    // a per-mount flag: MS_BIND with MS_REMOUNT changes this mount only
    let ro = tmpfs_flags | MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
    mount(None::<&str>, target, None::<&str>, ro, None::<&str>).map_err(|errno| {
        CgroupnsError::RemountReadonly {
            path: target.to_owned(),
            errno,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const JOINED: [&str; 5] = ["cpu", "cpuacct", "memory", "pids", "cpuset"];

    #[test]
    fn separate_hierarchies_get_a_directory_each_and_no_links() {
        let own = "9:name=systemd:/\n8:pids:/\n7:blkio:/\n5:devices:/\n\
                   4:memory:/a/b\n3:cpuset:/\n2:cpuacct:/\n1:cpu:/\n0::/\n";
        let dirs: Vec<String> = v1_mounts(own, &JOINED).into_iter().map(|m| m.dir).collect();
        assert_eq!(dirs, ["cpu", "cpuacct", "cpuset", "memory", "pids"]);
        assert!(v1_mounts(own, &JOINED).iter().all(|m| m.links.is_empty()));
    }

    #[test]
    fn co_mounted_controllers_share_a_directory_with_a_symlink_each() {
        let own = "12:cpu,cpuacct:/docker/x\n11:net_cls,net_prio:/\n\
                   10:memory:/docker/x\n1:name=systemd:/init.scope\n0::/init.scope\n";
        let mounts = v1_mounts(own, &JOINED);
        assert_eq!(
            mounts,
            vec![
                V1Mount {
                    dir: "cpu,cpuacct".into(),
                    options: "cpu,cpuacct".into(),
                    links: vec!["cpu".into(), "cpuacct".into()],
                },
                V1Mount {
                    dir: "memory".into(),
                    options: "memory".into(),
                    links: vec![],
                },
            ]
        );
    }

    #[test]
    fn a_pure_v2_host_lists_no_v1_hierarchy() {
        assert_eq!(v1_mounts("0::/user.slice\n", &JOINED), vec![]);
    }

    #[test]
    fn read_only_unless_writable() {
        assert!(flags(false).contains(MsFlags::MS_RDONLY));
        assert!(!flags(true).contains(MsFlags::MS_RDONLY));
        assert!(flags(true).contains(MsFlags::MS_NOEXEC | MsFlags::MS_NOSUID));
    }
}
