//! The node's container runtime (what containerd + runc are to a real kubelet), a crate of its
//! own that knows nothing of Kubernetes: no Kubernetes type or client is among its dependencies,
//! so Cargo, not only review, keeps it below the kubelet, which translates a PodSpec into its
//! calls (a sandbox, then containers) as CRI separates kubelet and runtime.
//!
//! A container is: an *image* (`image.rs`, layers unpacked by `layer.rs`, pulled by `registry/` for
//! the node's `platform.rs`) stacked by *overlayfs* (`overlay.rs`) into a root filesystem
//! (`rootfs.rs`), a process in fresh *namespaces* (`namespaces.rs`, a user namespace in
//! `userns.rs`; the pod network in `network/`) limited by *cgroups* (`cgroups.rs`, which the
//! container sees as its own through a cgroup namespace: `cgroupns.rs`), *capabilities*
//! (`capabilities.rs`) and a *seccomp* filter (`seccomp/`), started by a per-container *shim*
//! (`shim/`) that forks the init (`process.rs`) and keeps its logs (`logs.rs`).
//!
//! The modules form layers, each using only those below it:
//! - records: `spec.rs` (what to run, `config.json`), `state.rs` (how it goes, `state.json`),
//!   `wait.rs` (is a process alive, how it ended), `error.rs`, and `store/` (the container
//!   directories, the name index, their removal);
//! - processes: `tty.rs`, `proctitle.rs` (a forked process's own name), `reaper.rs` (the
//!   `--init` PID 1), then `process.rs` (the init), then `shim/` (its monitor);
//! - the CRI-like API: `container/`, one file per operation; above it `exec.rs` (enter a
//!   running container), `oci.rs` (the OCI runtime command line) and `overlay.rs` (commit a
//!   container's layer, `diff`), then `build/` (an image from a Dockerfile by run + commit).
//!
//! An OCI bundle asks for more than the CLI's and the kubelet's containers ever do; those
//! parts live in modules of their own, used only when a bundle sets them, so the common start
//! path does none of their work: `bundle.rs` (check and translate `config.json`),
//! `ociprocess.rs` (capability sets, `rlimits.rs`, OOM score, `sysctl.rs`, groups, umask),
//! `hooks.rs`, `mountopts.rs` (the bundle's mounts), `userns.rs` (uid/gid mappings) and
//! `tuning.rs` (cgroup settings beyond CPU, memory and pids).
//!
//! The `minik8s-runtime` CLI (`src/bin/`) is a docker-like front end and its own shim; the
//! kubelet's binary is the shim when the kubelet runs containers. Nearly all of minik8s's
//! `unsafe` lives here (the kubelet keeps its exec pty's few lines and a malloc tuning), each
//! block with a `// SAFETY:` comment.
//! Start reading at `container/`, then `shim/` and `process.rs`; `docs/runtime.md` is the
//! guide.

pub mod build;
pub mod bundle;
pub mod capabilities;
pub mod cgroupns;
pub mod cgroups;
pub mod container;
pub mod devices;
pub mod error;
pub mod exec;
pub mod hooks;
pub mod image;
pub mod layer;
pub mod logs;
pub mod maskedpaths;
pub mod mountopts;
pub mod namespaces;
pub mod network;
pub mod oci;
pub mod ociprocess;
pub mod overlay;
pub mod pause;
pub mod platform;
pub mod process;
pub mod procfs;
pub mod proctitle;
pub mod reaper;
pub mod registry;
pub mod rlimits;
pub mod rootfs;
pub mod seccomp;
pub mod shim;
pub mod spec;
pub mod state;
mod store;
pub mod sysctl;
pub mod tty;
pub mod tuning;
pub mod userns;
pub mod wait;

use std::io::Read;
use std::path::{Path, PathBuf};

pub use container::{Attach, ContainerError, ContainerSpec, CreateOptions, State, Status};
pub use image::{ImageError, ImageStore};

/// Default root directory: images, layers, and each container's writable layer and log.
pub const DEFAULT_ROOT: &str = "/var/lib/minik8s/runtime";

/// Default cgroup parent, below every hierarchy's root: `minik8s/<pod>/<container>`. It is
/// never removed by the runtime (a container may be creating below it at any time).
pub const DEFAULT_CGROUP_PARENT: &str = "minik8s";

/// The runtime: a root directory on disk, a state directory on tmpfs, an image store and the
/// host's cgroup hierarchy.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// On disk: images, layers, `containers/<shard>/<id>/{upper,work,container.log}`
    /// (see [`spread_subdirectories`]).
    pub root: PathBuf,
    /// On tmpfs: `containers/<id>/` (config.json, state.json, generated /etc and /proc files,
    /// the rootfs mount point), `names/<name>` (a symlink to the id) and `sandboxes/<id>/`
    /// (pinned namespaces, pod /etc files).
    pub state: PathBuf,
    pub images: ImageStore,
    pub cgroups: cgroups::Hierarchy,
    /// Cgroup under which pod cgroups go (relative to the hierarchy root).
    pub cgroup_parent: PathBuf,
    /// The binary started as shim (`<exe> --root R shim ID`).
    pub shim_exe: PathBuf,
}

impl Runtime {
    /// Open (and create) the runtime state under `root`.
    pub fn open(root: &Path) -> Result<Self, ImageError> {
        let images = ImageStore::open(root)?;
        let state = state_dir_for(root);
        for p in [
            root.join("containers"),
            state.join("containers"),
            state.join("sandboxes"),
            state.join("names"),
        ] {
            std::fs::create_dir_all(&p).map_err(|source| ImageError::Io {
                step: "create state dir",
                path: p,
                source,
            })?;
        }
        spread_subdirectories(&root.join("containers"));
        Ok(Self {
            root: root.to_owned(),
            state,
            images,
            cgroups: cgroups::Hierarchy::host(),
            cgroup_parent: PathBuf::from(DEFAULT_CGROUP_PARENT),
            shim_exe: PathBuf::from("/proc/self/exe"),
        })
    }
}

/// The state directory of the runtime rooted at `root`: on tmpfs, like runc's `/run/runc` and
/// containerd's `/run/containerd`. A container's start then writes nothing to the node's disk
/// but its writable layer and log (on ext4, allocating and freeing a dozen inodes per container
/// cost more than the rest of a start), and a reboot, which ends every container, also forgets
/// them. The base is `/run/minik8s` where `/run` is a tmpfs (most distributions), else
/// `/dev/shm/minik8s` (VMs and containers whose `/run` is on disk), else `ROOT/state`; in it
/// `runtime` for `DEFAULT_ROOT` and `runtime-<hash of the root's path>` for any other root (a
/// test's, a lab's second node).
pub fn state_dir_for(root: &Path) -> PathBuf {
    let Some(base) = ["/run", "/dev/shm"]
        .into_iter()
        .find(|d| on_tmpfs(Path::new(d)))
        .map(|d| Path::new(d).join("minik8s"))
        .filter(|b| private_dir(b))
    else {
        return root.join("state");
    };
    if root == Path::new(DEFAULT_ROOT) {
        return base.join("runtime");
    }
    let canonical = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
    let digest = <sha2::Sha256 as sha2::Digest>::digest(canonical.as_os_str().as_encoded_bytes());
    base.join(format!("runtime-{}", layer::hex(&digest[..8])))
}

fn on_tmpfs(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir)
        .map(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
        .unwrap_or(false)
}

/// Create `dir` (mode 0700) or accept it if it already is a directory of ours that nobody else
/// may enter: `/dev/shm` is writable by every user, who must not be able to plant it for us.
fn private_dir(dir: &Path) -> bool {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let _ = std::fs::DirBuilder::new().mode(0o700).create(dir);
    std::fs::symlink_metadata(dir).is_ok_and(|m| {
        m.is_dir() && m.uid() == nix::unistd::geteuid().as_raw() && m.mode() & 0o077 == 0
    })
}

/// Containers' writable layers go in shards, `containers/<first two hex digits of the id>/<id>`,
/// and this marks `containers/` as a *top directory* (`chattr +T`), so that ext4's Orlov
/// allocator places each shard in a block group of its own instead of next to its parent.
/// Everything a container creates on disk (its layer's directories, overlayfs's scratch files
/// at every mount, its log) then lands in its shard's group. It matters on ext4 *without a
/// journal* (some VM images): the inode allocator there skips inodes freed in the last
/// minutes, testing them one by one, and a node that starts and removes hundreds of
/// containers piles thousands of them into one group, costing milliseconds per container.
/// Best effort: other filesystems ignore or refuse the flag.
pub fn spread_subdirectories(dir: &Path) {
    /// `FS_TOPDIR_FL` of `linux/fs.h`.
    const FS_TOPDIR_FL: libc::c_int = 0x0002_0000;
    let Ok(f) = std::fs::File::open(dir) else {
        return;
    };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int to the valid pointer; fd is open for the call.
    if unsafe { libc::ioctl(fd, libc::FS_IOC_GETFLAGS, &mut flags) } != 0
        || flags & FS_TOPDIR_FL != 0
    {
        return;
    }
    flags |= FS_TOPDIR_FL;
    // SAFETY: FS_IOC_SETFLAGS reads one int from the valid pointer; fd is open for the call.
    if unsafe { libc::ioctl(fd, libc::FS_IOC_SETFLAGS, &flags) } != 0 {
        tracing::debug!(
            ?dir,
            "cannot mark as a top directory: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// `n` random bytes as hex (from /dev/urandom).
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    layer::hex(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_containers_directory_is_marked_a_top_directory_on_ext4() {
        let dir = std::env::temp_dir().join(format!("minik8s-topdir-{}", random_hex(6)));
        std::fs::create_dir_all(&dir).unwrap();
        spread_subdirectories(&dir);
        spread_subdirectories(&dir); // idempotent
        let ext4 = nix::sys::statfs::statfs(&dir)
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::EXT4_SUPER_MAGIC);
        let out = std::process::Command::new("lsattr")
            .arg("-d")
            .arg(&dir)
            .output();
        std::fs::remove_dir_all(&dir).unwrap();
        if !ext4 {
            eprintln!("skipped: {dir:?} is not on ext4");
            return;
        }
        let attrs = String::from_utf8_lossy(&out.unwrap().stdout).into_owned();
        let flags = attrs.split_whitespace().next().unwrap_or("");
        assert!(flags.contains('T'), "lsattr -d: {attrs}");
    }
}
